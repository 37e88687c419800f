//! One app's SAML service provider: its metadata, signed Redirect-binding
//! AuthnRequests and LogoutRequests, hardened Response verification (whose
//! ids the ACS then consumes in the one-time store), and verification of
//! its IdP's Single Logout messages. The
//! app trusts the embedded IdP or an external one from its metadata file.
//! Every SAML check itself lives in `portcullis_saml`; this module only
//! holds what the app is configured to trust.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use portcullis_config::{AppAuth, AppIdp, Config, SpNameIdFormat};
use portcullis_saml::{
    build_logout_request_redirect, build_logout_response_redirect, build_logout_response_soap,
    build_redirect_authn_request, cert_der_from_pem, sp_metadata_xml_with_encryption,
    verify_logout_message, verify_response, AuthnRequestParams, EncryptionKey, Error, Expectations,
    Jwks, LogoutBinding, LogoutExpectations, LogoutMessage, LogoutRequestParams,
    LogoutResponseParams, LogoutStatus, NameIdFormat, RedirectRequest, SigningKey, SoapMessage,
    SpConfig, VerifiedAssertion,
};

use crate::error::BuildProblem;
use crate::idp_trust::{IdpTrust, TrustedIdp};
use crate::session::NameIdQualifiers;

/// Single Logout messages are small; larger ones are refused undecoded.
const SLO_MAX_BYTES: usize = 64 * 1024;
const SLO_CLOCK_SKEW: Duration = Duration::from_secs(180);
/// How long the IdP may take to act on our LogoutRequest.
const LOGOUT_REQUEST_VALIDITY: Duration = Duration::from_secs(300);

pub(crate) struct AppSp {
    config: SpConfig,
    /// The NameID format URI the app asks for (`name_id_format`), if any.
    name_id_format: Option<&'static str>,
    key: SigningKey,
    /// `sp_encryption_key`: published in the metadata, and what
    /// EncryptedAssertions are decrypted with.
    encryption: Option<EncryptionKey>,
    jwks: Jwks,
    /// Replaced by a metadata refresh; read once per message.
    idp: Arc<IdpTrust>,
    /// The legacy opt-in `want_assertions_signed = false`.
    response_signature_suffices: bool,
    /// The legacy opt-in `allow_sha1`: the IdP's Responses and its Single
    /// Logout messages may be signed with RSA-SHA1 and SHA-1 digests.
    sha1_accepted: bool,
}

impl AppSp {
    /// The SP of `auth`, trusting the IdP it names.
    pub(crate) fn build(config: &Config, auth: &AppAuth) -> Result<AppSp, BuildProblem> {
        let key = SigningKey::from_pem(&read(&auth.sp_signing_key)?, &read(&auth.sp_signing_cert)?)
            .map_err(|source| BuildProblem::Key {
                what: "sp_signing_key/sp_signing_cert",
                source,
            })?;
        let encryption = match &auth.sp_encryption {
            Some(pair) => Some(
                EncryptionKey::from_pem(&read(&pair.key)?, &read(&pair.cert)?).map_err(
                    |source| BuildProblem::Key {
                        what: "sp_encryption_key/sp_encryption_cert",
                        source,
                    },
                )?,
            ),
            None => None,
        };
        let (response_signature_suffices, sha1_accepted) = match &auth.idp {
            AppIdp::Embedded => (false, false),
            AppIdp::External(external) => (!external.want_assertions_signed, external.allow_sha1),
        };
        let idp = match &auth.idp {
            AppIdp::Embedded => {
                let idp = config.idp.as_ref().ok_or(BuildProblem::NoEmbeddedIdp)?;
                let saml = idp.saml.as_ref().ok_or(BuildProblem::NoEmbeddedIdp)?;
                let der = cert_der_from_pem(&read(&saml.signing_cert)?).map_err(|source| {
                    BuildProblem::Key {
                        what: "[idp] signing_cert",
                        source,
                    }
                })?;
                let base = idp.public.url();
                TrustedIdp {
                    sso_url: format!("{base}/sso/saml"),
                    slo_url: Some(format!("{base}/sso/saml/logout")),
                    entity_id: saml.entity_id.clone(),
                    certs_der: vec![der],
                }
            }
            AppIdp::External(external) => TrustedIdp {
                sso_url: external.metadata.sso_redirect_url.clone(),
                slo_url: external.metadata.slo_url.clone(),
                entity_id: external.metadata.entity_id.clone(),
                certs_der: external.metadata.signing_certs_der.clone(),
            },
        };
        let jwks = key.jwks().map_err(|source| BuildProblem::Key {
            what: "sp_signing_key (identity tokens)",
            source,
        })?;
        Ok(AppSp {
            config: SpConfig {
                entity_id: auth.entity_id.clone(),
                acs_url: auth.acs_url.clone(),
                slo_url: auth.slo_url.clone(),
            },
            name_id_format: auth.name_id_format.map(|f| name_id_format_uri(f).uri()),
            key,
            encryption,
            jwks,
            idp: Arc::new(IdpTrust::new(idp)),
            response_signature_suffices,
            sha1_accepted,
        })
    }

    /// What this SP trusts about its IdP, for a metadata refresh to replace.
    pub(crate) fn idp_trust(&self) -> &Arc<IdpTrust> {
        &self.idp
    }

    pub(crate) fn metadata(&self) -> Result<String, Error> {
        let formats: Vec<&str> = self.name_id_format.into_iter().collect();
        sp_metadata_xml_with_encryption(&self.config, &self.key, &formats, self.encryption.as_ref())
    }

    /// A signed HTTP-Redirect AuthnRequest carrying `relay_state`.
    /// `force_authn`: the IdP must authenticate the user afresh, whatever
    /// session it holds (post-auth re-authentication).
    pub(crate) fn authn_request(
        &self,
        relay_state: &str,
        force_authn: bool,
    ) -> Result<RedirectRequest, Error> {
        let idp = self.idp.load();
        build_redirect_authn_request(
            &self.config,
            &self.key,
            &AuthnRequestParams {
                idp_sso_url: &idp.sso_url,
                relay_state: Some(relay_state),
                force_authn,
                name_id_format: self.name_id_format,
                now: chrono::Utc::now(),
            },
        )
    }

    /// Verifies a base64 `SAMLResponse` that must answer `request_id`;
    /// `None` accepts only an unsolicited (IdP-initiated) Response. Not yet
    /// replay-proof: the caller consumes its `one_time_ids`.
    pub(crate) fn verify(
        &self,
        saml_response: &str,
        request_id: Option<&str>,
    ) -> Result<VerifiedAssertion, Error> {
        let idp = self.idp.load();
        let mut expect = Expectations::new(
            self.config.entity_id.clone(),
            self.config.acs_url.clone(),
            idp.entity_id.clone(),
            idp.certs_der.clone(),
            request_id.map(str::to_string),
        );
        expect.allow_signed_response_instead_of_assertion = self.response_signature_suffices;
        expect.allow_sha1 = self.sha1_accepted;
        expect.decryption_key = self.encryption.clone();
        verify_response(saml_response, &expect, chrono::Utc::now())
    }

    /// A signed Redirect-binding LogoutRequest for this session at the IdP,
    /// naming the user by the NameID exactly as the assertion had it; `None`
    /// when the IdP publishes no Single Logout endpoint.
    pub(crate) fn logout_request(
        &self,
        name_id: &str,
        qualifiers: &NameIdQualifiers,
        session_index: Option<&str>,
        relay_state: &str,
    ) -> Result<Option<RedirectRequest>, Error> {
        let idp = self.idp.load();
        let Some(slo_url) = idp.slo_url.as_deref() else {
            return Ok(None);
        };
        let params = LogoutRequestParams {
            issuer: &self.config.entity_id,
            destination: slo_url,
            name_id,
            name_id_format: qualifiers.format.as_deref(),
            name_qualifier: qualifiers.name_qualifier.as_deref(),
            sp_name_qualifier: qualifiers.sp_name_qualifier.as_deref(),
            session_index,
            relay_state: Some(relay_state),
            now: chrono::Utc::now(),
            validity: LOGOUT_REQUEST_VALIDITY,
        };
        build_logout_request_redirect(&params, &self.key).map(|r| {
            Some(RedirectRequest {
                url: r.url,
                request_id: r.request_id,
            })
        })
    }

    /// A Single Logout message from the IdP, verified.
    pub(crate) fn logout_message(
        &self,
        binding: LogoutBinding<'_>,
    ) -> Result<LogoutMessage, Error> {
        let idp = self.idp.load();
        verify_logout_message(
            binding,
            &LogoutExpectations {
                peer_entity_id: &idp.entity_id,
                peer_certs: &idp.certs_der,
                allow_sha1: self.sha1_accepted,
                our_slo_url: &self.config.slo_url,
                max_bytes: SLO_MAX_BYTES,
                clock_skew: SLO_CLOCK_SKEW,
            },
            chrono::Utc::now(),
        )
    }

    /// A signed Redirect-binding LogoutResponse URL; `None` when the IdP
    /// publishes no Single Logout endpoint.
    pub(crate) fn logout_response(
        &self,
        in_response_to: &str,
        success: bool,
        relay_state: Option<&str>,
    ) -> Result<Option<String>, Error> {
        let idp = self.idp.load();
        let Some(slo_url) = idp.slo_url.as_deref() else {
            return Ok(None);
        };
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
        build_logout_response_redirect(&params, &self.key).map(Some)
    }

    /// A signed SOAP LogoutResponse (Success) to the IdP's back-channel
    /// LogoutRequest `in_response_to`, for the connection it came on.
    pub(crate) fn soap_logout_response(&self, in_response_to: &str) -> Result<SoapMessage, Error> {
        build_logout_response_soap(
            &LogoutResponseParams {
                issuer: &self.config.entity_id,
                destination: "",
                in_response_to: Some(in_response_to),
                status: LogoutStatus::Success,
                relay_state: None,
                now: chrono::Utc::now(),
            },
            &self.key,
        )
    }

    /// The SP key as a JWKS (served at `/_portcullis/jwks`): it also signs
    /// the app's identity tokens.
    pub(crate) fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    pub(crate) fn key(&self) -> &SigningKey {
        &self.key
    }
}

/// The SAML format of a configured `name_id_format`.
fn name_id_format_uri(format: SpNameIdFormat) -> NameIdFormat {
    match format {
        SpNameIdFormat::EmailAddress => NameIdFormat::EmailAddress,
        SpNameIdFormat::Persistent => NameIdFormat::Persistent,
        SpNameIdFormat::Transient => NameIdFormat::Transient,
        SpNameIdFormat::Unspecified => NameIdFormat::Unspecified,
    }
}

fn read(path: &Path) -> Result<Vec<u8>, BuildProblem> {
    std::fs::read(path).map_err(|source| BuildProblem::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Regenerates the demo SP signing key in `certs-dev/`:
/// `cargo test -p portcullis-gateway --lib -- --ignored generate_dev_sp_signing_key`.
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
