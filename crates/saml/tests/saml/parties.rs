//! The IdP and SP the response tests (plain and encrypted) talk between:
//! their entity ids, the ACS, the request being answered and the IdP's key
//! (generated once per test binary).

use std::sync::OnceLock;

use portcullis_saml::{IdpConfig, SigningKey};

pub const IDP: &str = "https://idp.example.test/saml/metadata";
pub const SP: &str = "https://gateway.example.test/saml/metadata";
pub const ACS: &str = "https://gateway.example.test/saml/acs";
pub const REQ_ID: &str = "_0123456789abcdef0123456789abcdef";

pub fn idp_key() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| SigningKey::generate_self_signed("idp", 30).expect("idp key"))
}

pub fn idp_cfg() -> IdpConfig {
    IdpConfig {
        entity_id: IDP.into(),
        sso_redirect_url: "https://idp.example.test/saml/sso".into(),
        sso_post_url: "https://idp.example.test/saml/sso/post".into(),
        slo_url: "https://idp.example.test/saml/slo".into(),
    }
}
