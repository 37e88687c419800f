//! The SAML service provider of every `auth = "saml"` app, as the proxy
//! sees it ([`SamlSp`]): SP metadata, signed Redirect-binding
//! AuthnRequests, and hardened Response verification with a replay cache.
//! An app trusts the embedded IdP or an external one from its metadata file.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use portcullis_config::{AppIdp, Config};
use portcullis_proxy::{AcsError, AuthnRedirect, Identity, SamlSp, SloInput, SloMessage};
use portcullis_saml::{
    build_redirect_authn_request, cert_der_from_pem, sp_metadata_xml, verify_response,
    AuthnRequestParams, Error, Expectations, ReplayCache, SigningKey, SpConfig,
};

/// Assertion ids remembered per app (until each assertion expires).
const REPLAY_CAPACITY: usize = 100_000;

pub struct AppSp {
    config: SpConfig,
    key: SigningKey,
    idp_sso_url: String,
    idp_entity_id: String,
    /// Every signing certificate the IdP publishes (key rollover).
    idp_certs_der: Vec<Vec<u8>>,
    replay: ReplayCache,
}

impl SamlSp for AppSp {
    fn metadata(&self) -> Result<String, String> {
        sp_metadata_xml(&self.config, &self.key).map_err(|e| e.to_string())
    }

    fn authn_request(&self, relay_state: &str) -> Result<AuthnRedirect, String> {
        let request = build_redirect_authn_request(
            &self.config,
            &self.key,
            &AuthnRequestParams {
                idp_sso_url: &self.idp_sso_url,
                relay_state: Some(relay_state),
                force_authn: false,
                name_id_format: None,
                now: chrono::Utc::now(),
            },
        )
        .map_err(|e| e.to_string())?;
        Ok(AuthnRedirect {
            url: request.url,
            request_id: request.request_id,
        })
    }

    fn verify(&self, saml_response: &str, request_id: Option<&str>) -> Result<Identity, AcsError> {
        let expect = Expectations::new(
            self.config.entity_id.clone(),
            self.config.acs_url.clone(),
            self.idp_entity_id.clone(),
            self.idp_certs_der.clone(),
            request_id.map(str::to_string),
        );
        match verify_response(saml_response, &expect, &self.replay, chrono::Utc::now()) {
            Ok(v) => Ok(Identity {
                name_id: v.name_id,
                session_index: v.session_index,
                attributes: v.attributes,
            }),
            Err(e) => Err(AcsError {
                kind: kind(&e),
                detail: e.to_string(),
            }),
        }
    }

    // Filled in with the SAML logout messages (branch saml-logout).
    fn logout_request(
        &self,
        _name_id: &str,
        _session_index: Option<&str>,
        _relay_state: &str,
    ) -> Option<Result<AuthnRedirect, String>> {
        None
    }

    fn slo_message(&self, _input: SloInput<'_>) -> Result<SloMessage, AcsError> {
        Err(AcsError {
            kind: "unsupported",
            detail: "Single Logout messages are not handled yet".into(),
        })
    }

    fn logout_response(
        &self,
        _in_response_to: &str,
        _success: bool,
        _relay_state: Option<&str>,
    ) -> Option<Result<String, String>> {
        None
    }
}

/// The error variant, as a stable word for the log.
fn kind(e: &Error) -> &'static str {
    match e {
        Error::Size { .. } => "size",
        Error::Xml(_) => "xml",
        Error::Binding(_) => "binding",
        Error::Signature(_) => "signature",
        Error::Replay { .. } => "replay",
        Error::ReplayCacheFull => "replay_cache_full",
        Error::Condition(_) => "condition",
        Error::Status { .. } => "status",
        Error::Audience => "audience",
        Error::Destination { .. } => "destination",
        Error::Issuer { .. } => "issuer",
        Error::InResponseTo { .. } => "in_response_to",
        Error::Unsupported(_) => "unsupported",
        Error::Key(_) => "key",
        Error::Build(_) => "build",
        _ => "other",
    }
}

/// Builds the SP of every `auth = "saml"` app (used by `check` and `run`).
pub fn build(config: &Config) -> anyhow::Result<HashMap<String, Arc<dyn SamlSp>>> {
    let mut sps: HashMap<String, Arc<dyn SamlSp>> = HashMap::new();
    for app in &config.apps {
        let Some(auth) = &app.auth else { continue };
        let read = |path: &std::path::Path| {
            std::fs::read(path)
                .with_context(|| format!("app {}: reading {}", app.name, path.display()))
        };
        let key = SigningKey::from_pem(&read(&auth.sp_signing_key)?, &read(&auth.sp_signing_cert)?)
            .with_context(|| {
                format!(
                    "app {}: sp_signing_key/sp_signing_cert ({}, {})",
                    app.name,
                    auth.sp_signing_key.display(),
                    auth.sp_signing_cert.display()
                )
            })?;
        let (idp_sso_url, idp_entity_id, idp_certs_der) = match &auth.idp {
            AppIdp::Embedded => {
                let idp = config
                    .idp
                    .as_ref()
                    .with_context(|| format!("app {}: idp = \"embedded\" needs [idp]", app.name))?;
                let saml = idp.saml.as_ref().with_context(|| {
                    format!(
                        "app {}: idp = \"embedded\" needs [idp] signing keys",
                        app.name
                    )
                })?;
                let prefix = if idp.public.path_prefix == "/" {
                    ""
                } else {
                    idp.public.path_prefix.as_str()
                };
                let der = cert_der_from_pem(&read(&saml.signing_cert)?).with_context(|| {
                    format!("[idp] signing_cert {}", saml.signing_cert.display())
                })?;
                (
                    format!("{}{prefix}/sso/saml", idp.public.origin()),
                    saml.entity_id.clone(),
                    vec![der],
                )
            }
            AppIdp::External(external) => (
                external.metadata.sso_redirect_url.clone(),
                external.metadata.entity_id.clone(),
                external.metadata.signing_certs_der.clone(),
            ),
        };
        let sp = AppSp {
            config: SpConfig {
                entity_id: auth.entity_id.clone(),
                acs_url: auth.acs_url.clone(),
                slo_url: auth.slo_url.clone(),
            },
            key,
            idp_sso_url,
            idp_entity_id,
            idp_certs_der,
            replay: ReplayCache::new(REPLAY_CAPACITY),
        };
        sps.insert(app.name.clone(), Arc::new(sp));
    }
    Ok(sps)
}

/// Regenerates the demo SP signing key in `certs-dev/`:
/// `cargo test -p portcullis --bin portcullis -- --ignored generate_dev_sp_signing_key`.
#[cfg(test)]
mod dev_key {
    #[test]
    #[ignore = "writes certs-dev/; run by hand to regenerate the dev SP key"]
    fn generate_dev_sp_signing_key() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../certs-dev");
        let key =
            portcullis_saml::SigningKey::generate_self_signed("Portcullis dev gateway SP", 3650)
                .expect("key");
        std::fs::write(dir.join("sp-signing.pem"), key.cert_pem().expect("cert")).expect("write");
        std::fs::write(dir.join("sp-signing-key.pem"), key.key_pem().expect("key")).expect("write");
    }
}
