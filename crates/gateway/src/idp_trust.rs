//! What an app's SP trusts about its IdP — entity id, SSO and SLO
//! endpoints, signing certificates — as one value that a metadata refresh
//! replaces while the gateway runs: each SAML message reads it once, so a
//! key rollover takes effect at the next message and no message sees half
//! of an old and half of a new document.

use std::sync::Arc;

use arc_swap::ArcSwap;
use portcullis_config::IdpMetadata;

/// The IdP one app's SP trusts now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrustedIdp {
    pub(crate) entity_id: String,
    /// SingleSignOnService for the HTTP-Redirect binding.
    pub(crate) sso_url: String,
    /// The IdP's SingleLogoutService; `None` when it has none.
    pub(crate) slo_url: Option<String>,
    /// Every signing certificate the IdP publishes (key rollover).
    pub(crate) certs_der: Vec<Vec<u8>>,
}

/// An app's [`TrustedIdp`], replaceable at run time.
#[derive(Debug)]
pub struct IdpTrust {
    current: ArcSwap<TrustedIdp>,
}

impl IdpTrust {
    pub(crate) fn new(idp: TrustedIdp) -> Self {
        IdpTrust {
            current: ArcSwap::from_pointee(idp),
        }
    }

    /// Trusts `metadata` from the next message on; `false` when it is what
    /// was trusted already.
    pub fn publish(&self, metadata: &IdpMetadata) -> bool {
        let next = TrustedIdp {
            entity_id: metadata.entity_id.clone(),
            sso_url: metadata.sso_redirect_url.clone(),
            slo_url: metadata.slo_url.clone(),
            certs_der: metadata.signing_certs_der.clone(),
        };
        if **self.current.load() == next {
            return false;
        }
        self.current.store(Arc::new(next));
        true
    }

    pub(crate) fn load(&self) -> Arc<TrustedIdp> {
        self.current.load_full()
    }
}
