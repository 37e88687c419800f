//! `[[idp.service_provider]]`: the external SAML SPs allowed to use the
//! embedded IdP, written by hand or read from their metadata file.

use crate::locate::Step;
use crate::metadata::SpMetadata;
use crate::model::{
    PeerMetadataSource, ServiceProviderConfig, SpAttribute, SpAttributeNameFormat, SpNameIdFormat,
    OID_ATTRIBUTE_PRESET, SP_ATTRIBUTES,
};
use crate::raw::{RawServiceProvider, RawSpAttribute, RawSpAttributeRule};

use super::names::valid_name;
use super::{PeerMetadataKeys, Validator};

/// What an SP receives when it lists no `attributes` (and what gateway apps
/// on the embedded IdP receive).
pub(super) const DEFAULT_SP_ATTRIBUTES: [&str; 4] = ["email", "firstName", "lastName", "groups"];

fn whole(i: usize) -> [Step<'static>; 3] {
    [
        Step::Key("idp"),
        Step::Key("service_provider"),
        Step::Index(i),
    ]
}

fn at(i: usize, key: &'static str) -> [Step<'static>; 4] {
    let [idp, sp, index] = whole(i);
    [idp, sp, index, Step::Key(key)]
}

/// Where an SP's entity id, ACS URL and signing certificates come from.
enum Source {
    Metadata(SpMetadata, Box<PeerMetadataSource>),
    ByHand,
    /// `metadata_file` is set but was refused (and reported).
    Refused,
}

/// A plain-http SOAP endpoint is allowed to loopback only: the LogoutRequest
/// names the user, and nothing but TLS protects it on a network.
fn soap_slo_url_allowed(url: &str) -> Result<(), String> {
    let plain_remote = super::url::split_url(url).is_ok_and(|(scheme, authority, _)| {
        scheme == "http" && !super::url::is_loopback_authority(authority)
    });
    if plain_remote {
        return Err(format!(
            "the SOAP SingleLogoutService `{url}` must be https (http only to a loopback address)"
        ));
    }
    Ok(())
}

fn http_url_allowed(url: &str) -> Result<(), String> {
    match super::url::split_url(url)? {
        (scheme, _, _) if scheme == "https" || scheme == "http" => Ok(()),
        _ => Err(format!("`{url}` must be an http or https URL")),
    }
}

/// Why a refreshed SP metadata document was not applied (the registration
/// in use stays).
#[derive(Debug, thiserror::Error)]
pub enum SpMetadataRefused {
    #[error("the document describes {found}, not the registered {registered}")]
    OtherEntity { registered: String, found: String },
    #[error("AssertionConsumerService: {0}")]
    AcsUrl(String),
    #[error("{0}")]
    SoapSloUrl(String),
    #[error("encrypt_assertions = true and the document has no encryption certificate")]
    NoEncryptionCertificate,
    #[error("allow_sha1 = true and the document has no signing certificate")]
    NoSigningCertificate,
}

impl ServiceProviderConfig {
    /// This registration with the fields its metadata gives replaced by a
    /// newer document's, held to the rules `check` applied at start. The
    /// entity is the registered one: a document naming another is refused
    /// (the IdP finds SPs by entity id, and a refresh must not re-point a
    /// registration at someone else).
    pub fn with_metadata(&self, meta: SpMetadata) -> Result<Self, SpMetadataRefused> {
        if meta.entity_id != self.entity_id {
            return Err(SpMetadataRefused::OtherEntity {
                registered: self.entity_id.clone(),
                found: meta.entity_id,
            });
        }
        http_url_allowed(&meta.acs_url).map_err(SpMetadataRefused::AcsUrl)?;
        if let Some(soap) = &meta.soap_slo_url {
            http_url_allowed(soap)
                .and_then(|()| soap_slo_url_allowed(soap))
                .map_err(SpMetadataRefused::SoapSloUrl)?;
        }
        let encryption_cert_der = match &self.encryption_cert_der {
            None => None,
            Some(_) => Some(
                meta.encryption_certs_der
                    .first()
                    .cloned()
                    .ok_or(SpMetadataRefused::NoEncryptionCertificate)?,
            ),
        };
        if self.allow_sha1 && meta.signing_certs_der.is_empty() {
            return Err(SpMetadataRefused::NoSigningCertificate);
        }
        Ok(ServiceProviderConfig {
            acs_url: meta.acs_url,
            signing_certs_der: meta.signing_certs_der,
            require_signed_requests: meta.authn_requests_signed,
            slo_url: meta.slo_url,
            soap_slo_url: meta.soap_slo_url,
            encryption_cert_der,
            ..self.clone()
        })
    }
}

/// How an SP's AuthnRequests are checked, and where it takes logouts.
struct Signing {
    certs_der: Vec<Vec<u8>>,
    required: bool,
    slo_url: Option<String>,
}

impl Validator<'_, '_> {
    pub(super) fn service_providers(
        &mut self,
        raw: Vec<RawServiceProvider>,
    ) -> Vec<ServiceProviderConfig> {
        let mut registered = Vec::new();
        for (i, sp) in raw.into_iter().enumerate() {
            if let Some(sp) = self.service_provider(i, sp, &registered) {
                registered.push(sp);
            }
        }
        registered
    }

    /// One SP, checked against those `registered` before it. A refused
    /// metadata file or a missing key does not stop the other keys' checks.
    fn service_provider(
        &mut self,
        i: usize,
        sp: RawServiceProvider,
        registered: &[ServiceProviderConfig],
    ) -> Option<ServiceProviderConfig> {
        let source = self.sp_source(i, &sp);
        let (entity_id, acs_url) = match &source {
            Source::Metadata(meta, _) => (Some(meta.entity_id.clone()), Some(meta.acs_url.clone())),
            Source::ByHand => (sp.entity_id.clone(), sp.acs_url.clone()),
            Source::Refused => (None, None),
        };
        // A refused file leaves entity_id and acs_url unknown, not missing.
        let missing = sp.name.is_none()
            || (!matches!(source, Source::Refused) && (entity_id.is_none() || acs_url.is_none()));
        if missing {
            self.problem(
                &whole(i),
                "name and either metadata_file or entity_id and acs_url are required",
            );
        }
        let mut ok = !missing;
        if let Some(name) = &sp.name {
            ok &= self.sp_name(i, name, registered);
        }
        if let Some(entity_id) = &entity_id {
            ok &= self.sp_entity_id(i, entity_id, registered);
        }
        if let Some(acs_url) = &acs_url {
            ok &= self.http_url(&at(i, "acs_url"), acs_url);
        }
        let name_id_format = self.name_id_format(i, sp.name_id_format.as_deref());
        let name_id_formats_allowed =
            self.name_id_formats_allowed(i, sp.name_id_formats_allowed.as_deref());
        let encryption = self.sp_encryption(i, &source, &sp);
        let metadata_key = if sp.metadata_url.is_some() {
            "metadata_url"
        } else {
            "metadata_file"
        };
        let soap_slo_url =
            self.sp_soap_slo_url(i, &source, metadata_key, sp.soap_slo_url.as_deref());
        let metadata_source = match &source {
            Source::Metadata(_, from) => Some((**from).clone()),
            Source::ByHand | Source::Refused => None,
        };
        let signing = self.sp_signing(i, source, sp.signing_cert.as_deref());
        let attributes = self.sp_attributes(i, sp.attributes, sp.attribute_preset.as_deref());
        let allow_sha1 = sp.allow_sha1.unwrap_or(false);
        if allow_sha1 && signing.as_ref().is_some_and(|s| s.certs_der.is_empty()) {
            // It relaxes only the checking of signatures, and without a
            // certificate none is checked: the key would do nothing.
            self.problem(
                &at(i, "allow_sha1"),
                "allow_sha1 = true needs the SP's signing certificate (signing_cert or its metadata)",
            );
            ok = false;
        }
        let (Some(name), Some(entity_id), Some(acs_url)) = (sp.name, entity_id, acs_url) else {
            return None;
        };
        let (
            true,
            Some(name_id_format),
            Some(signing),
            Some(attributes),
            Some(encryption),
            Some(soap_slo_url),
        ) = (
            ok,
            name_id_format,
            signing,
            attributes,
            encryption,
            soap_slo_url,
        )
        else {
            return None;
        };
        Some(ServiceProviderConfig {
            name,
            entity_id,
            acs_url,
            name_id_format,
            name_id_formats_allowed,
            signing_certs_der: signing.certs_der,
            require_signed_requests: signing.required,
            slo_url: signing.slo_url,
            soap_slo_url,
            attributes,
            sign_response: sp.sign_response.unwrap_or(false),
            encryption_cert_der: encryption,
            sign_in_url: None,
            allow_sha1,
            metadata_source,
        })
    }

    /// `metadata_file` or `metadata_url`, which replace the hand-written
    /// fields (`entity_id` then picks the entity out of an aggregate).
    fn sp_source(&mut self, i: usize, sp: &RawServiceProvider) -> Source {
        if sp.metadata_file.is_none() && sp.metadata_url.is_none() {
            return Source::ByHand;
        }
        for (key, set) in [
            ("acs_url", sp.acs_url.is_some()),
            ("signing_cert", sp.signing_cert.is_some()),
            ("encryption_cert", sp.encryption_cert.is_some()),
            ("soap_slo_url", sp.soap_slo_url.is_some()),
        ] {
            if set {
                self.problem(
                    &at(i, key),
                    format!("{key} comes from the metadata; set one or the other"),
                );
            }
        }
        let keys = PeerMetadataKeys {
            file: sp.metadata_file.as_deref(),
            url: sp.metadata_url.as_deref(),
            signing_cert: sp.metadata_signing_cert.as_deref(),
            cache_file: sp.metadata_cache_file.as_deref(),
            entity_id: sp.entity_id.as_deref(),
            min_refresh: sp.metadata_min_refresh.as_deref(),
            max_refresh: sp.metadata_max_refresh.as_deref(),
        };
        let at_key = |key: &'static str| at(i, key).to_vec();
        match self.peer_metadata(&at_key, &keys, |r, xml, trust| r.sp(xml, trust)) {
            Some((meta, source)) => Source::Metadata(meta, Box::new(source)),
            None => Source::Refused,
        }
    }

    /// Well-formed and not taken by an earlier SP.
    fn sp_name(&mut self, i: usize, name: &str, registered: &[ServiceProviderConfig]) -> bool {
        if !valid_name(name) {
            self.problem(
                &at(i, "name"),
                "must be 1-64 characters of letters, digits, '-' and '_'",
            );
            false
        } else if registered.iter().any(|o| o.name == name) {
            self.problem(
                &at(i, "name"),
                format!("duplicate service provider name `{name}`"),
            );
            false
        } else {
            true
        }
    }

    /// Well-formed and not taken by an earlier SP.
    fn sp_entity_id(
        &mut self,
        i: usize,
        entity_id: &str,
        registered: &[ServiceProviderConfig],
    ) -> bool {
        if entity_id.trim().is_empty() || entity_id.len() > 1024 {
            self.problem(
                &at(i, "entity_id"),
                "must be a non-empty URI of at most 1024 bytes",
            );
            false
        } else if registered.iter().any(|o| o.entity_id == entity_id) {
            self.problem(
                &at(i, "entity_id"),
                format!("duplicate service provider entity_id `{entity_id}`"),
            );
            false
        } else {
            true
        }
    }

    fn name_id_format(&mut self, i: usize, raw: Option<&str>) -> Option<SpNameIdFormat> {
        let Some(raw) = raw else {
            return Some(SpNameIdFormat::EmailAddress);
        };
        let format = SpNameIdFormat::parse(raw);
        if format.is_none() {
            self.problem(
                &at(i, "name_id_format"),
                format!("`{raw}` is not one of {}", SpNameIdFormat::NAMES),
            );
        }
        format
    }

    /// The extra formats an SP may ask for; a bad name is reported and
    /// left out (the SP then gets InvalidNameIDPolicy for it, never more).
    fn name_id_formats_allowed(&mut self, i: usize, raw: Option<&[String]>) -> Vec<SpNameIdFormat> {
        let mut allowed = Vec::new();
        for name in raw.unwrap_or_default() {
            match SpNameIdFormat::parse(name) {
                Some(format) if !allowed.contains(&format) => allowed.push(format),
                Some(_) => {}
                None => self.problem(
                    &at(i, "name_id_formats_allowed"),
                    format!("`{name}` is not one of {}", SpNameIdFormat::NAMES),
                ),
            }
        }
        allowed
    }

    /// `encrypt_assertions` and the certificate to encrypt for: the
    /// metadata's first encryption key, or `encryption_cert`. The outer
    /// `None` is a refusal (reported).
    fn sp_encryption(
        &mut self,
        i: usize,
        source: &Source,
        sp: &RawServiceProvider,
    ) -> Option<Option<Vec<u8>>> {
        let wanted = sp.encrypt_assertions.unwrap_or(false);
        match (source, sp.encryption_cert.as_deref()) {
            (_, Some(_)) if !wanted => {
                self.problem(
                    &at(i, "encryption_cert"),
                    "encryption_cert is used only with encrypt_assertions = true",
                );
                None
            }
            _ if !wanted => Some(None),
            // With metadata_file, encryption_cert was refused as ambiguous.
            (Source::Refused, _) | (Source::Metadata(..), Some(_)) => None,
            (Source::Metadata(meta, _), None) => match meta.encryption_certs_der.first() {
                Some(der) => Some(Some(der.clone())),
                None => {
                    self.problem(
                        &at(i, "encrypt_assertions"),
                        "the SP's metadata has no encryption certificate \
                         (KeyDescriptor use=\"encryption\" or without use)",
                    );
                    None
                }
            },
            (Source::ByHand, Some(cert)) => {
                Some(Some(self.cert_der(&at(i, "encryption_cert"), cert)?))
            }
            (Source::ByHand, None) => {
                self.problem(
                    &at(i, "encrypt_assertions"),
                    "encrypt_assertions = true needs encryption_cert (or metadata_file \
                     with an encryption key)",
                );
                None
            }
        }
    }

    /// The SOAP SingleLogoutService, from the metadata or `soap_slo_url`:
    /// https, or http to a loopback address (a sidecar; nothing crosses a
    /// network). `Some(None)` when there is none, `None` when refused.
    fn sp_soap_slo_url(
        &mut self,
        i: usize,
        source: &Source,
        metadata_key: &'static str,
        by_hand: Option<&str>,
    ) -> Option<Option<String>> {
        let (url, key) = match source {
            Source::Metadata(meta, _) => (meta.soap_slo_url.clone(), metadata_key),
            Source::ByHand => (by_hand.map(str::to_string), "soap_slo_url"),
            Source::Refused => return Some(None),
        };
        let Some(url) = url else {
            return Some(None);
        };
        if !self.http_url(&at(i, key), &url) {
            return None;
        }
        if let Err(refusal) = soap_slo_url_allowed(&url) {
            self.problem(&at(i, key), refusal);
            return None;
        }
        Some(Some(url))
    }

    /// From the metadata, or `signing_cert` (which makes signing required).
    fn sp_signing(
        &mut self,
        i: usize,
        source: Source,
        signing_cert: Option<&str>,
    ) -> Option<Signing> {
        let certs_der = match (source, signing_cert) {
            (Source::Metadata(meta, _), _) => {
                return Some(Signing {
                    certs_der: meta.signing_certs_der,
                    required: meta.authn_requests_signed,
                    slo_url: meta.slo_url,
                })
            }
            // With metadata_file, signing_cert was refused as ambiguous.
            (Source::Refused, _) => return None,
            (Source::ByHand, Some(cert)) => vec![self.cert_der(&at(i, "signing_cert"), cert)?],
            (Source::ByHand, None) => Vec::new(),
        };
        Some(Signing {
            required: !certs_der.is_empty(),
            certs_der,
            slo_url: None,
        })
    }

    /// `attribute_preset`'s attributes, then `attributes`' (the default
    /// set when neither is given). Every source must be a user field, and
    /// no two attributes may share a name.
    fn sp_attributes(
        &mut self,
        i: usize,
        raw: Option<Vec<RawSpAttribute>>,
        preset: Option<&str>,
    ) -> Option<Vec<SpAttribute>> {
        let mut ok = true;
        let mut attributes = match preset {
            None => Vec::new(),
            Some("oid") => OID_ATTRIBUTE_PRESET
                .iter()
                .map(|(friendly, name, source)| SpAttribute {
                    name: (*name).to_string(),
                    name_format: SpAttributeNameFormat::Uri,
                    friendly_name: Some((*friendly).to_string()),
                    source: (*source).to_string(),
                })
                .collect(),
            Some(other) => {
                self.problem(
                    &at(i, "attribute_preset"),
                    format!("`{other}` is not a preset; the one preset is \"oid\""),
                );
                ok = false;
                Vec::new()
            }
        };
        match raw {
            None if preset.is_none() => attributes.extend(
                DEFAULT_SP_ATTRIBUTES
                    .iter()
                    .map(|source| SpAttribute::as_named(source)),
            ),
            None => {}
            Some(raw) => {
                for entry in raw {
                    match self.sp_attribute(i, entry) {
                        Some(attribute) => attributes.push(attribute),
                        None => ok = false,
                    }
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for attribute in &attributes {
            if !seen.insert(&attribute.name) {
                self.problem(
                    &at(i, "attributes"),
                    format!("`{}` is released twice", attribute.name),
                );
                ok = false;
            }
        }
        ok.then_some(attributes)
    }

    fn sp_attribute(&mut self, i: usize, raw: RawSpAttribute) -> Option<SpAttribute> {
        let rule = match raw {
            RawSpAttribute::Field(source) => {
                return self
                    .attribute_source(i, &source)
                    .then(|| SpAttribute::as_named(&source))
            }
            RawSpAttribute::Rule(rule) => rule,
        };
        let RawSpAttributeRule {
            name,
            source,
            name_format,
            friendly_name,
        } = rule;
        let (Some(name), Some(source)) = (name, source) else {
            self.problem(
                &at(i, "attributes"),
                "an attribute rule needs `name` (what the SP sees) and `source` (the user field)",
            );
            return None;
        };
        let mut ok = self.attribute_source(i, &source);
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            self.problem(
                &at(i, "attributes"),
                format!("attribute name `{name}` must be 1–256 printable characters"),
            );
            ok = false;
        }
        // A URN names itself as one; anything else is a plain name.
        let name_format = match name_format.as_deref() {
            None if name.starts_with("urn:") => SpAttributeNameFormat::Uri,
            None | Some("basic") => SpAttributeNameFormat::Basic,
            Some("uri") => SpAttributeNameFormat::Uri,
            Some("unspecified") => SpAttributeNameFormat::Unspecified,
            Some(other) => {
                self.problem(
                    &at(i, "attributes"),
                    format!("name_format `{other}` is not basic, uri or unspecified"),
                );
                return None;
            }
        };
        if name_format == SpAttributeNameFormat::Uri && !name.contains(':') {
            self.problem(
                &at(i, "attributes"),
                format!("`{name}` has name_format uri but is not a URI (e.g. urn:oid:…)"),
            );
            ok = false;
        }
        ok.then_some(SpAttribute {
            name,
            name_format,
            friendly_name,
            source,
        })
    }

    /// A user field an SP may receive: one of [`SP_ATTRIBUTES`] or
    /// `profile.<name>`.
    fn attribute_source(&mut self, i: usize, source: &str) -> bool {
        let custom = source
            .strip_prefix("profile.")
            .is_some_and(|name| !name.is_empty());
        if custom || SP_ATTRIBUTES.contains(&source) {
            return true;
        }
        self.problem(
            &at(i, "attributes"),
            format!(
                "`{source}` is not one of {} or profile.<name>",
                SP_ATTRIBUTES.join(", ")
            ),
        );
        false
    }
}

#[cfg(test)]
mod tests {
    use crate::validate::fixtures::{
        idp_config, metadata_file, parse, parse_with_saml, peer_key, problems, IDP, IDP_KEYS,
        SERVER,
    };

    #[test]
    fn bad_service_providers_are_located() {
        let text = idp_config(&format!(
            "{IDP_KEYS}\n\
[[idp.service_provider]]\nname = \"a\"\nentity_id = \"https://sp.test/md\"\nacs_url = \"https://sp.test/acs\"\n\n\
[[idp.service_provider]]\nname = \"a\"\nentity_id = \"https://sp.test/md\"\nacs_url = \"not a url\"\nname_id_format = \"x509\"\nsigning_cert = \"missing.pem\"\nattributes = [\"shoeSize\"]\n"
        ));
        let problems = problems(&text);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "idp.service_provider[1].name",
            "idp.service_provider[1].entity_id",
            "idp.service_provider[1].acs_url",
            "idp.service_provider[1].name_id_format",
            "idp.service_provider[1].signing_cert",
            "idp.service_provider[1].attributes",
        ] {
            assert!(keys.contains(&key), "{key} missing from {problems:?}");
        }
        assert!(problems.iter().all(|p| p.line.is_some()), "{problems:?}");
    }

    #[test]
    fn attribute_rules_rename_any_user_field_and_the_oid_preset_comes_first() {
        use crate::model::{SpAttribute, SpAttributeNameFormat};
        let text = idp_config(&format!(
            "{IDP_KEYS}\n[[idp.service_provider]]\nname = \"wiki\"\nentity_id = \"https://sp.test/md\"\nacs_url = \"https://sp.test/acs\"\n\
attribute_preset = \"oid\"\nattributes = [\"profile.department\", {{ name = \"urn:oid:2.16.840.1.113730.3.1.3\", source = \"id\", friendly_name = \"employeeNumber\" }}, {{ name = \"roles\", source = \"groups\", name_format = \"unspecified\" }}]\n"
        ));
        let config = parse(&text).expect("valid");
        let sp = &config.idp.expect("idp").service_providers[0];
        let uid = &sp.attributes[0];
        assert_eq!(
            uid,
            &SpAttribute {
                name: "urn:oid:0.9.2342.19200300.100.1.1".into(),
                name_format: SpAttributeNameFormat::Uri,
                friendly_name: Some("uid".into()),
                source: "login".into(),
            }
        );
        let tail: Vec<(&str, SpAttributeNameFormat, &str)> = sp.attributes[8..]
            .iter()
            .map(|a| (a.name.as_str(), a.name_format, a.source.as_str()))
            .collect();
        assert_eq!(
            tail,
            [
                (
                    "department",
                    SpAttributeNameFormat::Basic,
                    "profile.department"
                ),
                (
                    "urn:oid:2.16.840.1.113730.3.1.3",
                    SpAttributeNameFormat::Uri,
                    "id"
                ),
                ("roles", SpAttributeNameFormat::Unspecified, "groups"),
            ]
        );
    }

    #[test]
    fn bad_attribute_rules_and_presets_are_problems() {
        for (attributes, says) in [
            ("attribute_preset = \"ldap\"\n", "not a preset"),
            ("attributes = [{ name = \"uid\" }]\n", "needs `name`"),
            (
                "attributes = [{ name = \"uid\", source = \"shoeSize\" }]\n",
                "shoeSize",
            ),
            (
                "attributes = [{ name = \"uid\", source = \"login\", name_format = \"uri\" }]\n",
                "not a URI",
            ),
            (
                "attributes = [{ name = \"uid\", source = \"login\", name_format = \"x500\" }]\n",
                "x500",
            ),
            (
                "attributes = [\"email\", { name = \"email\", source = \"login\" }]\n",
                "released twice",
            ),
        ] {
            let text = idp_config(&format!(
                "{IDP_KEYS}\n[[idp.service_provider]]\nname = \"wiki\"\nentity_id = \"https://sp.test/md\"\nacs_url = \"https://sp.test/acs\"\n{attributes}"
            ));
            let problems = problems(&text);
            assert!(
                problems.iter().any(|p| p.message.contains(says)
                    && p.key.starts_with("idp.service_provider[0].attribute")),
                "{attributes}: {problems:?}"
            );
        }
    }

    #[test]
    fn an_external_sp_is_registered_from_its_metadata() {
        let key = peer_key();
        let xml = portcullis_saml::sp_metadata_xml(
            &portcullis_saml::SpConfig {
                entity_id: "https://wiki.test/saml/metadata".into(),
                acs_url: "https://wiki.test/saml/acs".into(),
                slo_url: "https://wiki.test/saml/slo".into(),
            },
            &key,
        )
        .expect("metadata");
        let file = metadata_file("sp", &xml);
        let text = format!(
            "{SERVER}{IDP}[[idp.service_provider]]\nname = \"wiki\"\nmetadata_file = \"{file}\"\n"
        );
        let config = parse_with_saml(&text).expect("valid");
        let sp = &config.idp.expect("idp").service_providers[0];
        assert_eq!(sp.entity_id, "https://wiki.test/saml/metadata");
        assert_eq!(sp.acs_url, "https://wiki.test/saml/acs");
        assert_eq!(sp.slo_url.as_deref(), Some("https://wiki.test/saml/slo"));
        assert_eq!(
            sp.soap_slo_url.as_deref(),
            Some("https://wiki.test/saml/slo"),
            "the metadata's SOAP SingleLogoutService"
        );
        assert!(sp.require_signed_requests);
        assert_eq!(sp.signing_certs_der, vec![key.cert_der().expect("der")]);

        // Metadata and hand-written fields together are ambiguous.
        let text = format!(
            "{SERVER}{IDP}[[idp.service_provider]]\nname = \"wiki\"\nmetadata_file = \"{file}\"\nacs_url = \"https://elsewhere.test/acs\"\n"
        );
        let problems = parse_with_saml(&text).expect_err("invalid").problems;
        assert_eq!(
            problems[0].key, "idp.service_provider[0].acs_url",
            "{problems:?}"
        );
        let _ = std::fs::remove_file(file);
    }

    #[test]
    fn a_refreshed_document_replaces_only_what_metadata_gives_and_keeps_the_rules() {
        use crate::{SpMetadata, SpMetadataRefused};
        let key = peer_key();
        let xml = portcullis_saml::sp_metadata_xml(
            &portcullis_saml::SpConfig {
                entity_id: "https://wiki.test/saml/metadata".into(),
                acs_url: "https://wiki.test/saml/acs".into(),
                slo_url: "https://wiki.test/saml/slo".into(),
            },
            &key,
        )
        .expect("metadata");
        let file = metadata_file("sp-refresh", &xml);
        let text = format!(
            "{SERVER}{IDP}[[idp.service_provider]]\nname = \"wiki\"\nmetadata_file = \"{file}\"\nname_id_format = \"persistent\"\nattribute_preset = \"oid\"\n"
        );
        let config = parse_with_saml(&text).expect("valid");
        let _ = std::fs::remove_file(file);
        let sp = config.idp.expect("idp").service_providers.remove(0);
        assert!(
            sp.metadata_source.is_some(),
            "the source is kept for refresh"
        );
        let rolled = SpMetadata {
            entity_id: sp.entity_id.clone(),
            acs_url: "https://wiki.test/saml/acs2".into(),
            slo_url: None,
            soap_slo_url: None,
            signing_certs_der: vec![b"next".to_vec()],
            authn_requests_signed: false,
            encryption_certs_der: Vec::new(),
        };

        let next = sp.with_metadata(rolled.clone()).expect("applies");
        assert_eq!(next.acs_url, "https://wiki.test/saml/acs2");
        assert_eq!(next.signing_certs_der, vec![b"next".to_vec()]);
        assert!(!next.require_signed_requests);
        assert_eq!(
            (next.slo_url.as_deref(), next.soap_slo_url.as_deref()),
            (None, None)
        );
        // What the operator wrote stays.
        assert_eq!(next.name, sp.name);
        assert_eq!(next.name_id_format, sp.name_id_format);
        assert_eq!(next.attributes, sp.attributes);

        let other = SpMetadata {
            entity_id: "https://evil.test/md".into(),
            ..rolled.clone()
        };
        assert!(matches!(
            sp.with_metadata(other),
            Err(SpMetadataRefused::OtherEntity { .. })
        ));
        let plain_soap = SpMetadata {
            soap_slo_url: Some("http://wiki.test/soap".into()),
            ..rolled.clone()
        };
        let refused = sp.with_metadata(plain_soap).expect_err("plain http SOAP");
        assert!(refused.to_string().contains("must be https"), "{refused}");
        let bad_acs = SpMetadata {
            acs_url: "javascript:alert(1)".into(),
            ..rolled.clone()
        };
        assert!(matches!(
            sp.with_metadata(bad_acs),
            Err(SpMetadataRefused::AcsUrl(_))
        ));
        let encrypted = crate::ServiceProviderConfig {
            encryption_cert_der: Some(b"old".to_vec()),
            ..sp.clone()
        };
        assert!(matches!(
            encrypted.with_metadata(rolled),
            Err(SpMetadataRefused::NoEncryptionCertificate)
        ));
    }

    #[test]
    fn soap_slo_url_is_https_or_loopback_http() {
        let sp_with = |url: &str| {
            format!(
                "{SERVER}{IDP}[[idp.service_provider]]\nname = \"wiki\"\nentity_id = \"https://sp.test/md\"\nacs_url = \"https://sp.test/acs\"\nsoap_slo_url = \"{url}\"\n"
            )
        };
        for ok in [
            "https://sp.test/slo/soap",
            "http://127.0.0.1:8080/soap",
            "http://[::1]/soap",
        ] {
            let config = parse(&sp_with(ok)).unwrap_or_else(|p| panic!("{ok}: {p:?}"));
            let idp = config.idp.expect("idp");
            assert_eq!(idp.service_providers[0].soap_slo_url.as_deref(), Some(ok));
        }
        for (bad, says) in [
            ("http://sp.test/soap", "must be https"),
            ("ftp://sp.test/soap", "http or https"),
        ] {
            let problems = parse(&sp_with(bad)).expect_err(bad).problems;
            assert!(
                problems
                    .iter()
                    .any(|p| p.key == "idp.service_provider[0].soap_slo_url"
                        && p.message.contains(says)),
                "{bad}: {problems:?}"
            );
        }
    }

    #[test]
    fn allow_sha1_is_a_noted_opt_in_that_needs_a_signing_certificate() {
        let key = peer_key();
        let xml = portcullis_saml::sp_metadata_xml(
            &portcullis_saml::SpConfig {
                entity_id: "https://old.test/saml/metadata".into(),
                acs_url: "https://old.test/saml/acs".into(),
                slo_url: "https://old.test/saml/slo".into(),
            },
            &key,
        )
        .expect("metadata");
        let file = metadata_file("sp-sha1", &xml);
        let sp_with = |extra: &str| {
            format!(
                "{SERVER}{IDP}[[idp.service_provider]]\nname = \"old\"\nmetadata_file = \"{file}\"\n{extra}"
            )
        };
        let config = parse_with_saml(&sp_with("allow_sha1 = true\n")).expect("valid");
        let sp = &config.idp.expect("idp").service_providers[0];
        assert!(sp.allow_sha1);
        assert_eq!(
            sp.notes(),
            [
                "[[idp.service_provider]] old: allow_sha1 = true: requests and logout messages \
              from https://old.test/saml/metadata may be signed with RSA-SHA1"
            ]
        );
        let config = parse_with_saml(&sp_with("")).expect("valid");
        let sp = &config.idp.expect("idp").service_providers[0];
        assert!(!sp.allow_sha1 && sp.notes().is_empty());
        let _ = std::fs::remove_file(file);

        // Without a certificate nothing is verified: the key would be inert.
        let text = idp_config(&format!(
            "{IDP_KEYS}\n[[idp.service_provider]]\nname = \"wiki\"\nentity_id = \"https://sp.test/md\"\nacs_url = \"https://sp.test/acs\"\nallow_sha1 = true\n"
        ));
        let problems = problems(&text);
        assert!(
            problems
                .iter()
                .any(|p| p.key == "idp.service_provider[0].allow_sha1"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_refused_metadata_file_does_not_hide_the_other_keys() {
        // Without a metadata reader the file is refused; the rest is checked.
        let file = metadata_file("sp-unread", "<md:EntityDescriptor/>");
        let text = format!(
            "{SERVER}{IDP}[[idp.service_provider]]\nname = \"bad name\"\nmetadata_file = \"{file}\"\nname_id_format = \"x509\"\nattributes = [\"shoeSize\"]\n[[idp.service_provider]]\nmetadata_file = \"{file}\"\n"
        );
        let problems = problems(&text);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "idp.service_provider[0].metadata_file",
                "idp.service_provider[0].name",
                "idp.service_provider[0].name_id_format",
                "idp.service_provider[0].attributes",
                "idp.service_provider[1].metadata_file",
                "idp.service_provider[1]",
            ],
            "{problems:?}"
        );
        assert!(problems.iter().all(|p| p.line.is_some()), "{problems:?}");
        let _ = std::fs::remove_file(file);
    }
}
