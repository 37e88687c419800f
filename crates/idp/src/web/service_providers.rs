//! The SAML service providers the embedded IdP serves, replaceable while
//! it runs: a metadata refresh swaps one SP's registration (its keys and
//! endpoints after a rollover) and every message reads one whole
//! registration, never half of an old one and half of a new one.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::sso::ServiceProvider;

/// Every registered SP; clones share one registry, so the handle the
/// binary keeps for the metadata refresh publishes to the running IdP.
#[derive(Debug, Clone)]
pub struct ServiceProviders {
    current: Arc<ArcSwap<Vec<Arc<ServiceProvider>>>>,
}

impl ServiceProviders {
    pub fn new(sps: Vec<ServiceProvider>) -> Self {
        ServiceProviders {
            current: Arc::new(ArcSwap::from_pointee(
                sps.into_iter().map(Arc::new).collect(),
            )),
        }
    }

    /// Every SP as registered now, in configuration order.
    pub fn snapshot(&self) -> Arc<Vec<Arc<ServiceProvider>>> {
        self.current.load_full()
    }

    pub fn by_name(&self, name: &str) -> Option<Arc<ServiceProvider>> {
        self.current
            .load()
            .iter()
            .find(|sp| sp.name == name)
            .cloned()
    }

    pub fn by_entity_id(&self, entity_id: &str) -> Option<Arc<ServiceProvider>> {
        self.current
            .load()
            .iter()
            .find(|sp| sp.entity_id == entity_id)
            .cloned()
    }

    /// Replaces the SP registered under `sp.name` from the next message on;
    /// `false` when no SP has that name (nothing is added: the set of SPs
    /// is the configuration's).
    pub fn replace(&self, sp: ServiceProvider) -> bool {
        let sp = Arc::new(sp);
        let mut found = false;
        self.current.rcu(|sps| {
            found = false;
            sps.iter()
                .map(|old| {
                    if old.name == sp.name {
                        found = true;
                        sp.clone()
                    } else {
                        old.clone()
                    }
                })
                .collect::<Vec<_>>()
        });
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_saml::NameIdFormat;

    fn sp(name: &str, entity_id: &str, cert: &[u8]) -> ServiceProvider {
        ServiceProvider {
            name: name.into(),
            entity_id: entity_id.into(),
            acs_url: format!("{entity_id}/acs"),
            name_id_format: NameIdFormat::EmailAddress,
            name_id_formats_allowed: Vec::new(),
            signing_certs_der: vec![cert.to_vec()],
            require_signed_requests: true,
            allow_sha1: false,
            slo_url: None,
            soap_slo_url: None,
            attributes: Vec::new(),
            sign_response: false,
            encryption_cert_der: None,
            sign_in_url: None,
        }
    }

    #[test]
    fn a_replaced_sp_is_served_from_the_next_lookup_and_a_held_one_is_unchanged() {
        let registry = ServiceProviders::new(vec![
            sp("wiki", "https://wiki.test", b"old"),
            sp("crm", "https://crm.test", b"crm"),
        ]);
        let handle = registry.clone();
        let held = registry.by_entity_id("https://wiki.test").expect("wiki");

        assert!(handle.replace(sp("wiki", "https://wiki.test", b"new")));
        assert_eq!(
            held.signing_certs_der,
            vec![b"old".to_vec()],
            "a message in flight keeps its SP"
        );
        let now = registry.by_name("wiki").expect("wiki");
        assert_eq!(now.signing_certs_der, vec![b"new".to_vec()]);
        let names: Vec<String> = registry.snapshot().iter().map(|s| s.name.clone()).collect();
        assert_eq!(names, ["wiki", "crm"], "order and the other SPs stay");

        assert!(
            !handle.replace(sp("stranger", "https://x.test", b"x")),
            "nothing is added"
        );
        assert!(registry.by_name("stranger").is_none());
    }
}
