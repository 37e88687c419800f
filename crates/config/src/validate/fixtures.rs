//! What the section tests share: configuration snippets on the repository's
//! dev certificates, peer metadata files, and a `MetadataReader` on the real
//! SAML parser (the one the binary passes, rebuilt here because config
//! cannot depend on the binary).

use std::path::PathBuf;

use crate::metadata::{
    IdpMetadata, MetadataError, MetadataReader, NoMetadata, PeerTrust, SpMetadata,
};
use crate::model::Config;
use crate::problem::{Problem, Problems};

/// Relative paths in the snippets resolve against the repository root.
pub fn repo_file() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../gateway.toml"))
}

pub const SERVER: &str = "[server]\nhttps = [\"127.0.0.1:0\"]\ntls_cert = \"certs-dev/localhost.pem\"\ntls_key = \"certs-dev/localhost-key.pem\"\n\n";
pub const IDP_KEYS: &str = "signing_key = \"certs-dev/idp-signing-key.pem\"\nsigning_cert = \"certs-dev/idp-signing.pem\"\n";
/// `[idp]` with SAML keys.
pub const IDP: &str = "[idp]\npublic_url = \"https://idp.test/\"\nusers_file = \"demo/users.toml\"\nsigning_key = \"certs-dev/idp-signing-key.pem\"\nsigning_cert = \"certs-dev/idp-signing.pem\"\n\n";
/// An app's keys for `auth = "saml"` on the embedded IdP.
pub const SAML: &str = "auth = \"saml\"\nidp = \"embedded\"\nsp_signing_key = \"certs-dev/sp-signing-key.pem\"\nsp_signing_cert = \"certs-dev/sp-signing.pem\"\n";

/// `[server]` and a minimal `[idp]` (no SAML keys) with `idp_extra` appended.
pub fn idp_config(idp_extra: &str) -> String {
    format!("{SERVER}[idp]\npublic_url = \"https://idp.test/\"\nusers_file = \"demo/users.toml\"\n{idp_extra}\n")
}

/// One `[[app]]` on the echo backend, with `extra` keys.
pub fn app(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[[app]]\nname = \"{name}\"\npublic_url = \"{url}\"\nupstream = \"builtin:echo\"\n{extra}\n"
    )
}

/// Without a metadata reader, as the proxy's tests load configuration.
pub fn parse(text: &str) -> Result<Config, Problems> {
    crate::parse(text, &repo_file(), &NoMetadata)
}

pub fn parse_with_saml(text: &str) -> Result<Config, Problems> {
    crate::parse(text, &repo_file(), &SamlReader)
}

/// The problems of a file that must be invalid.
pub fn problems(text: &str) -> Vec<Problem> {
    parse(text).expect_err("invalid").problems
}

/// Writes `xml` to a fresh file and returns its absolute path.
pub fn metadata_file(tag: &str, xml: &str) -> String {
    let path = std::env::temp_dir().join(format!(
        "portcullis-config-{tag}-{}-{:?}.xml",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&path, xml).expect("write metadata");
    path.to_string_lossy().into_owned()
}

pub fn peer_key() -> portcullis_saml::SigningKey {
    portcullis_saml::SigningKey::generate_self_signed("config test peer", 1).expect("key")
}

/// The binary's reader, rebuilt on the real parser for these tests.
pub struct SamlReader;

impl MetadataReader for SamlReader {
    fn idp(&self, xml: &str, trust: &PeerTrust<'_>) -> Result<IdpMetadata, MetadataError> {
        let m = portcullis_saml::read_idp_metadata(xml, &saml_trust(trust))
            .map_err(MetadataError::invalid)?
            .metadata;
        Ok(IdpMetadata {
            entity_id: m.entity_id,
            sso_redirect_url: m.sso_redirect_url,
            slo_url: m.slo_url,
            signing_certs_der: m.signing_certs_der,
        })
    }

    fn sp(&self, xml: &str, trust: &PeerTrust<'_>) -> Result<SpMetadata, MetadataError> {
        let m = portcullis_saml::read_sp_metadata(xml, &saml_trust(trust))
            .map_err(MetadataError::invalid)?
            .metadata;
        Ok(SpMetadata {
            entity_id: m.entity_id,
            acs_url: m.acs_url,
            slo_url: m.slo_url,
            soap_slo_url: m.soap_slo_url,
            signing_certs_der: m.signing_certs_der,
            authn_requests_signed: m.authn_requests_signed,
            encryption_certs_der: m.encryption_certs_der,
        })
    }
}

fn saml_trust<'a>(trust: &PeerTrust<'a>) -> portcullis_saml::MetadataTrust<'a> {
    portcullis_saml::MetadataTrust::now(trust.entity_id, trust.signing_certs_der)
}
