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
    build_logout_request_redirect, build_logout_response_redirect, build_redirect_authn_request,
    cert_der_from_pem, parse_logout_request_post, parse_logout_request_redirect,
    parse_logout_response_post, parse_logout_response_redirect, sp_metadata_xml, verify_response,
    AuthnRequestParams, Error, Expectations, LogoutRequestParams, LogoutResponseParams,
    LogoutStatus, ReplayCache, SigningKey, SpConfig,
};

/// Assertion ids remembered per app (until each assertion expires).
const REPLAY_CAPACITY: usize = 100_000;
/// Single Logout messages are small; larger ones are refused undecoded.
const SLO_MAX_BYTES: usize = 64 * 1024;
const SLO_CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(180);
/// How long the IdP may take to act on our LogoutRequest.
const LOGOUT_REQUEST_VALIDITY: std::time::Duration = std::time::Duration::from_secs(300);

pub struct AppSp {
    config: SpConfig,
    key: SigningKey,
    /// The same key for identity JWTs, its kid and JWKS.
    jwt_key: jsonwebtoken::EncodingKey,
    jwt_kid: String,
    jwks: serde_json::Value,
    idp_sso_url: String,
    /// The IdP's SingleLogoutService; `None` when it has none.
    idp_slo_url: Option<String>,
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
                authn_context: v.authn_context_class,
                attributes: v.attributes,
            }),
            Err(e) => Err(AcsError {
                kind: kind(&e),
                detail: e.to_string(),
            }),
        }
    }

    fn logout_request(
        &self,
        name_id: &str,
        session_index: Option<&str>,
        relay_state: &str,
    ) -> Option<Result<AuthnRedirect, String>> {
        let slo_url = self.idp_slo_url.as_deref()?;
        let params = LogoutRequestParams {
            issuer: &self.config.entity_id,
            destination: slo_url,
            name_id,
            name_id_format: None,
            session_index,
            relay_state: Some(relay_state),
            now: chrono::Utc::now(),
            validity: LOGOUT_REQUEST_VALIDITY,
        };
        Some(
            build_logout_request_redirect(&params, &self.key)
                .map(|r| AuthnRedirect {
                    url: r.url,
                    request_id: r.request_id,
                })
                .map_err(|e| e.to_string()),
        )
    }

    fn slo_message(&self, input: SloInput<'_>) -> Result<SloMessage, AcsError> {
        let refuse = |e: Error| AcsError {
            kind: kind(&e),
            detail: e.to_string(),
        };
        let certs = Some(self.idp_certs_der.as_slice());
        let (request, response) = match &input {
            SloInput::Redirect { query } => {
                let has = |name: &str| {
                    query
                        .split('&')
                        .any(|pair| pair.split('=').next() == Some(name))
                };
                if has("SAMLRequest") {
                    (
                        Some(
                            parse_logout_request_redirect(query, certs, SLO_MAX_BYTES)
                                .map_err(refuse)?,
                        ),
                        None,
                    )
                } else if has("SAMLResponse") {
                    (
                        None,
                        Some(
                            parse_logout_response_redirect(query, certs, SLO_MAX_BYTES)
                                .map_err(refuse)?,
                        ),
                    )
                } else {
                    (None, None)
                }
            }
            SloInput::Post {
                saml_request,
                saml_response,
                relay_state,
            } => match (saml_request, saml_response) {
                (Some(request), None) => (
                    Some(
                        parse_logout_request_post(request, *relay_state, certs, SLO_MAX_BYTES)
                            .map_err(refuse)?,
                    ),
                    None,
                ),
                (None, Some(response)) => (
                    None,
                    Some(
                        parse_logout_response_post(response, *relay_state, certs, SLO_MAX_BYTES)
                            .map_err(refuse)?,
                    ),
                ),
                _ => (None, None),
            },
        };
        let wrong_issuer =
            |issuer: &Option<String>| issuer.as_deref() != Some(self.idp_entity_id.as_str());
        let wrong_destination = |destination: &Option<String>| {
            destination
                .as_deref()
                .is_some_and(|d| d != self.config.slo_url)
        };
        match (request, response) {
            (Some(request), None) => {
                if wrong_issuer(&request.issuer) {
                    return Err(refuse(Error::Issuer {
                        found: request.issuer,
                    }));
                }
                if wrong_destination(&request.destination) {
                    return Err(refuse(Error::Destination {
                        found: request.destination,
                    }));
                }
                request
                    .check_time(chrono::Utc::now(), SLO_CLOCK_SKEW)
                    .map_err(refuse)?;
                Ok(SloMessage::Request {
                    id: request.id,
                    name_id: request.name_id,
                    session_indexes: request.session_indexes,
                    relay_state: request.relay_state,
                })
            }
            (None, Some(response)) => {
                if wrong_issuer(&response.issuer) {
                    return Err(refuse(Error::Issuer {
                        found: response.issuer,
                    }));
                }
                if wrong_destination(&response.destination) {
                    return Err(refuse(Error::Destination {
                        found: response.destination,
                    }));
                }
                Ok(SloMessage::Response {
                    success: response.is_success(),
                    partial: response.is_partial(),
                    in_response_to: response.in_response_to,
                    relay_state: response.relay_state,
                })
            }
            _ => Err(AcsError {
                kind: "binding",
                detail: "neither a SAMLRequest nor a SAMLResponse".into(),
            }),
        }
    }

    fn logout_response(
        &self,
        in_response_to: &str,
        success: bool,
        relay_state: Option<&str>,
    ) -> Option<Result<String, String>> {
        let slo_url = self.idp_slo_url.as_deref()?;
        let params = LogoutResponseParams {
            issuer: &self.config.entity_id,
            destination: slo_url,
            in_response_to: Some(in_response_to),
            status: if success {
                LogoutStatus::Success
            } else {
                LogoutStatus::Responder
            },
            relay_state,
            now: chrono::Utc::now(),
        };
        Some(build_logout_response_redirect(&params, &self.key).map_err(|e| e.to_string()))
    }

    fn sign_identity(&self, claims: &serde_json::Value) -> Result<String, String> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(self.jwt_kid.clone());
        jsonwebtoken::encode(&header, claims, &self.jwt_key).map_err(|e| e.to_string())
    }

    fn jwks(&self) -> serde_json::Value {
        self.jwks.clone()
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
        let (idp_sso_url, idp_slo_url, idp_entity_id, idp_certs_der) = match &auth.idp {
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
                let prefix = idp.public.base_path();
                let der = cert_der_from_pem(&read(&saml.signing_cert)?).with_context(|| {
                    format!("[idp] signing_cert {}", saml.signing_cert.display())
                })?;
                (
                    format!("{}{prefix}/sso/saml", idp.public.origin()),
                    Some(format!("{}{prefix}/sso/saml/logout", idp.public.origin())),
                    saml.entity_id.clone(),
                    vec![der],
                )
            }
            AppIdp::External(external) => (
                external.metadata.sso_redirect_url.clone(),
                external.metadata.slo_url.clone(),
                external.metadata.entity_id.clone(),
                external.metadata.signing_certs_der.clone(),
            ),
        };
        let (jwt_kid, jwks) = portcullis_idp::universal_logout::jwks_for(&key)
            .with_context(|| format!("app {}: SP key for identity tokens", app.name))?;
        let jwt_key = jsonwebtoken::EncodingKey::from_rsa_der(
            &key.rsa_key_der()
                .with_context(|| format!("app {}: SP key", app.name))?,
        );
        let sp = AppSp {
            jwt_key,
            jwt_kid,
            jwks,
            config: SpConfig {
                entity_id: auth.entity_id.clone(),
                acs_url: auth.acs_url.clone(),
                slo_url: auth.slo_url.clone(),
            },
            key,
            idp_sso_url,
            idp_slo_url,
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
