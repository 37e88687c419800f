//! What the SAML entries verify against: two fixed test keys (the IdP's
//! and an SP's, checked in under `fixtures/`, test material only), the
//! parties' names and endpoints, and one fixed instant. Seeds made by
//! `fuzz-seeds` are signed with these keys and issued at [`issue_time`],
//! so they verify whenever the fuzzer runs, and mutations of them reach
//! the checks behind the signature.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use portcullis_saml::{Expectations, LogoutExpectations, SigningKey};

pub const IDP_ENTITY_ID: &str = "https://idp.fuzz.test/sso/saml/metadata";
pub const IDP_SSO_URL: &str = "https://idp.fuzz.test/sso/saml";
pub const IDP_SLO_URL: &str = "https://idp.fuzz.test/sso/saml/slo";
pub const SP_ENTITY_ID: &str = "https://app.fuzz.test/wiki/_portcullis/saml/metadata";
pub const ACS_URL: &str = "https://app.fuzz.test/wiki/_portcullis/saml/acs";
pub const SP_SLO_URL: &str = "https://app.fuzz.test/wiki/_portcullis/saml/slo";
/// The AuthnRequest id the SP waits for (what the request-state cookie holds).
pub const REQUEST_ID: &str = "_0123456789abcdef0123456789abcdef";

/// The size caps production uses: the IdP's `MAX_REQUEST_BYTES` for
/// AuthnRequests and the gateway's `SLO_MAX_BYTES` for logout messages
/// (a Response is capped by [`Expectations::new`]'s default).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
pub const SLO_MAX_BYTES: usize = 64 * 1024;
/// The gateway's `SLO_CLOCK_SKEW`.
pub const SLO_CLOCK_SKEW: Duration = Duration::from_secs(180);

/// When every seed was issued: 2026-01-01T00:00:00Z.
pub fn issue_time() -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600, 0)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// When the entries verify: a minute after [`issue_time`], well inside
/// the seeds' five-minute validity.
pub fn verify_time() -> DateTime<Utc> {
    issue_time() + chrono::Duration::seconds(60)
}

fn key(key_pem: &[u8], cert_pem: &[u8]) -> SigningKey {
    SigningKey::from_pem(key_pem, cert_pem).expect("fixture key and certificate load")
}

/// The IdP's signing key: signs Responses and the IdP's logout messages.
pub fn idp_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        key(
            include_bytes!("../fixtures/idp.key.pem"),
            include_bytes!("../fixtures/idp.cert.pem"),
        )
    })
}

/// The SP's signing key: signs AuthnRequests and the SP's logout messages.
pub fn sp_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        key(
            include_bytes!("../fixtures/sp.key.pem"),
            include_bytes!("../fixtures/sp.cert.pem"),
        )
    })
}

fn der(key: &SigningKey) -> Vec<u8> {
    key.cert_der().expect("fixture certificate encodes")
}

/// The IdP's certificate, as the SP pins it.
pub fn idp_certs() -> &'static [Vec<u8>] {
    static CERTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CERTS.get_or_init(|| vec![der(idp_key())])
}

/// The SP's certificate, as the IdP knows it from the SP's metadata.
pub fn sp_certs() -> &'static [Vec<u8>] {
    static CERTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CERTS.get_or_init(|| vec![der(sp_key())])
}

/// The gateway's expectations for a Response to [`REQUEST_ID`], with the
/// production defaults of [`Expectations::new`].
pub fn solicited() -> &'static Expectations {
    static EXPECT: OnceLock<Expectations> = OnceLock::new();
    EXPECT.get_or_init(|| expectations(Some(REQUEST_ID)))
}

/// The same for an app with `allow_idp_initiated`: a Response answering
/// no request.
pub fn unsolicited() -> &'static Expectations {
    static EXPECT: OnceLock<Expectations> = OnceLock::new();
    EXPECT.get_or_init(|| expectations(None))
}

fn expectations(in_response_to: Option<&str>) -> Expectations {
    Expectations::new(
        SP_ENTITY_ID,
        ACS_URL,
        IDP_ENTITY_ID,
        idp_certs().to_vec(),
        in_response_to.map(str::to_owned),
    )
}

/// What the gateway requires of its IdP's Single Logout messages.
pub fn logout_from_idp() -> LogoutExpectations<'static> {
    LogoutExpectations {
        peer_entity_id: IDP_ENTITY_ID,
        peer_certs: idp_certs(),
        allow_sha1: false,
        our_slo_url: SP_SLO_URL,
        max_bytes: SLO_MAX_BYTES,
        clock_skew: SLO_CLOCK_SKEW,
    }
}
