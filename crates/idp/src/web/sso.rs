//! The embedded IdP's SAML 2.0 endpoints: IdP metadata, SP-initiated SSO
//! (HTTP-Redirect and HTTP-POST bindings), IdP-initiated SSO from the app
//! launcher, and the auto-submitting form that carries the signed Response
//! to the SP's ACS URL.
//!
//! Without `[idp] signing_key`/`signing_cert` every endpoint here answers 404.
//!
//! Flow: the AuthnRequest is checked (registered issuer, ACS URL, query
//! signature when the SP has a signing certificate); without an ACTIVE IdP
//! session the browser signs in first and comes back to the same URL; with
//! one, the app's [`AppAuthPolicy`](crate::policy::AppAuthPolicy) decides.
//!
//! * POST-binding requests are parked server-side for 10 minutes under a
//!   random id and resumed at `/sso/saml/continue?id=…` after sign-in.
//! * Re-authentication (ForceAuthn, stale password) sends the browser to
//!   `/login` with a server-side nonce (`pc_reauth`) in the return URL; the
//!   password counts as entered "for this request" only when the session's
//!   `lastPasswordVerification` is newer than the nonce.
//! * IsPassive that would need a sign-in page is answered at the SP's ACS
//!   with a signed `Responder/NoPassive` Response.
//! * MFA step-up for an already-ACTIVE session sends the browser to
//!   `/login/mfa?stepup=1` and back; a user without an enrolled factor gets
//!   a 403 page.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use portcullis_saml::{
    self as saml, AttributeNameFormat, AuthnContextClass, IdpConfig, NameIdFormat,
    ParsedAuthnRequest, ReleasedAttribute, ResponseParams, SigningKey,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::events::{self, Origin};
use super::respond;
use super::service_providers::ServiceProviders;
use super::{query_param, Caller, Idp};
use crate::directory::{User, UserStatus};
use crate::policy::{AppDecision, SessionFacts};
use crate::session::{Amr, SessionRecord, SessionStatus};

/// Largest encoded AuthnRequest accepted (and its inflated size).
const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Lifetime of the Assertion's Conditions / SubjectConfirmationData.
const RESPONSE_VALIDITY: Duration = Duration::from_secs(5 * 60);
/// How long a parked POST request or a re-authentication nonce lives.
const PENDING_TTL: time::Duration = time::Duration::minutes(10);
/// Bound on parked requests and nonces (each map).
const PENDING_MAX: usize = 10_000;
/// Query parameter carrying the re-authentication nonce.
const REAUTH_PARAM: &str = "pc_reauth";
/// How far an SP's clock may run ahead of ours.
const REQUEST_CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(3);
/// How old an AuthnRequest may be when the IdP acts on it.
const REQUEST_MAX_AGE: chrono::TimeDelta = chrono::TimeDelta::minutes(30);
/// The auto-submit script; allowed by its hash in the page's CSP.
const AUTO_SUBMIT: &str = "document.getElementById('saml-post').submit();";

/// One SAML service provider the IdP serves (`[[idp.service_provider]]`).
#[derive(Debug, Clone)]
pub struct ServiceProvider {
    /// Also the `[app_policy.<name>]` key and the launcher path segment.
    pub name: String,
    pub entity_id: String,
    pub acs_url: String,
    pub name_id_format: NameIdFormat,
    /// Further formats the SP may ask for in a NameIDPolicy; the configured
    /// one and `unspecified` (which means "the configured one") always may.
    pub name_id_formats_allowed: Vec<NameIdFormat>,
    /// DER of the SP's request-signing certificates. A signed request is
    /// verified against them whenever there are any.
    pub signing_certs_der: Vec<Vec<u8>>,
    /// Unsigned AuthnRequests from this SP are refused.
    pub require_signed_requests: bool,
    /// The legacy opt-in: this SP's AuthnRequests and Single Logout
    /// messages may be signed with RSA-SHA1 and SHA-1 digests.
    pub allow_sha1: bool,
    /// The SP's SingleLogoutService, when it has one.
    pub slo_url: Option<String>,
    /// The SP's SOAP SingleLogoutService: sessions that end without the
    /// browser are reported there (back-channel logout).
    pub soap_slo_url: Option<String>,
    /// The AttributeStatement, in this order.
    pub attributes: Vec<AttributeRule>,
    pub sign_response: bool,
    /// The SP's encryption certificate (DER) when its assertions are to
    /// be encrypted (`encrypt_assertions`).
    pub encryption_cert_der: Option<Vec<u8>>,
    /// Where the launcher sends a person: the app itself for an SP that
    /// signs in SP-initiated only (a gateway app); `None` links to
    /// IdP-initiated sign-in.
    pub sign_in_url: Option<String>,
}

/// One attribute an SP receives: the user field `source` (id, login,
/// email, firstName, lastName, displayName, groups, `profile.<name>`)
/// under `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeRule {
    pub name: String,
    pub name_format: AttributeNameFormat,
    pub friendly_name: Option<String>,
    pub source: String,
}

impl ServiceProvider {
    /// Whether a request's signature is checked: always when the SP must
    /// sign, and whenever it signed and we hold its certificates.
    fn must_verify(&self, request_signed: bool) -> bool {
        self.require_signed_requests || (request_signed && !self.signing_certs_der.is_empty())
    }

    /// Whose signatures this SP's messages must carry, and with what.
    pub(crate) fn signers(&self) -> saml::PeerSigners<'_> {
        saml::PeerSigners {
            certs: &self.signing_certs_der,
            allow_sha1: self.allow_sha1,
        }
    }

    /// The format to issue for a NameIDPolicy Format (SAML core §3.4.1.1):
    /// none or `unspecified` leaves the choice to us (the configured one);
    /// anything else must be a format this SP may receive. `Err` says why
    /// not, for the log.
    fn name_id_format_for(&self, asked: Option<&str>) -> Result<NameIdFormat, &'static str> {
        let Some(uri) = asked.filter(|uri| *uri != NameIdFormat::Unspecified.uri()) else {
            return Ok(self.name_id_format);
        };
        match NameIdFormat::from_uri(uri) {
            Some(f) if f == self.name_id_format || self.name_id_formats_allowed.contains(&f) => {
                Ok(f)
            }
            Some(_) => Err("NameIDPolicy asks for a format this service provider is not allowed"),
            None => Err("NameIDPolicy asks for a format this identity provider does not issue"),
        }
    }
}

/// The NameID one SP received in one IdP session: Single Logout names the
/// user to that SP by it, and matches the SP's own LogoutRequest against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IssuedNameId {
    pub(crate) value: String,
    pub(crate) format: NameIdFormat,
    /// NameQualifier (the IdP) and SPNameQualifier (the SP): set for the
    /// opaque formats, whose values mean something only between the two.
    pub(crate) qualified: bool,
}

/// Derives the opaque NameIDs: HMAC-SHA256 under a key derived from the
/// IdP's NameID secret (`name_id_secret_file`), or without one from its
/// signing key, so every node with the same files issues the same
/// persistent id, and no SP can compute another SP's id or recover the user.
pub(crate) struct NameIdKey([u8; 32]);

impl NameIdKey {
    fn derive(
        signing_key: &SigningKey,
        secret: Option<&NameIdSecret>,
    ) -> Result<NameIdKey, portcullis_saml::Error> {
        let mut hash = Sha256::new();
        match secret {
            // A key of its own: the signing key can be rotated without
            // changing the ids SPs have stored.
            Some(secret) => {
                hash.update(b"portcullis idp name-id secret v1\0");
                hash.update(&secret.0);
            }
            None => {
                hash.update(b"portcullis idp name-id key v1\0");
                hash.update(signing_key.rsa_key_der()?);
            }
        }
        Ok(NameIdKey(hash.finalize().into()))
    }

    /// Base64url of the HMAC over `parts`, each length-prefixed so no two
    /// different inputs run together into the same bytes.
    fn mac(&self, parts: &[&str]) -> String {
        use hmac::Mac as _;
        let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(&self.0) else {
            // HMAC takes keys of any length; unreachable, never a panic.
            return String::new();
        };
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Stable per user and SP, from the user's immutable id (not the login,
    /// which may be renamed and would reveal who it is).
    pub(crate) fn persistent(&self, user_id: &str, sp_entity_id: &str) -> String {
        self.mac(&["persistent", user_id, sp_entity_id])
    }

    /// New for every IdP session, the same within it (so a second
    /// assertion in the session, and Single Logout, name the same subject).
    pub(crate) fn transient(&self, session_id: &str, sp_entity_id: &str) -> String {
        format!("_{}", self.mac(&["transient", session_id, sp_entity_id]))
    }
}

impl Saml {
    /// The NameID `sp` receives for `user` in IdP session `session_id`.
    pub(crate) fn name_id(
        &self,
        sp: &ServiceProvider,
        format: NameIdFormat,
        user: &User,
        session_id: &str,
    ) -> IssuedNameId {
        let (value, qualified) = match format {
            NameIdFormat::EmailAddress => (user.email().to_string(), false),
            NameIdFormat::Unspecified => (user.login().to_string(), false),
            NameIdFormat::Persistent => {
                (self.name_id_key.persistent(user.id(), &sp.entity_id), true)
            }
            NameIdFormat::Transient => {
                (self.name_id_key.transient(session_id, &sp.entity_id), true)
            }
        };
        IssuedNameId {
            value,
            format,
            qualified,
        }
    }
}

/// The secret NameIDs are keyed by (`name_id_secret_file`).
#[derive(Clone)]
pub struct NameIdSecret(Vec<u8>);

impl NameIdSecret {
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self(secret.into())
    }
}

impl std::fmt::Debug for NameIdSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NameIdSecret(<redacted>)")
    }
}

/// The IdP's SAML identity and its SPs.
#[derive(Debug, Clone)]
pub struct SamlSettings {
    pub entity_id: String,
    pub signing_key: SigningKey,
    /// Keys persistent and transient NameIDs; `None`: the signing key does.
    pub name_id_secret: Option<NameIdSecret>,
    /// How far an assertion's NotBefore is set before its IssueInstant.
    pub clock_skew: Duration,
    pub service_providers: ServiceProviders,
}

/// What one SSO attempt asks for, however it arrived.
#[derive(Debug, Clone)]
struct Ask {
    sp: String,
    in_response_to: Option<String>,
    relay_state: Option<String>,
    force_authn: bool,
    is_passive: bool,
    /// The NameID format to issue, chosen from the NameIDPolicy.
    name_id_format: NameIdFormat,
    /// Path (with query, without `pc_reauth`) sign-in returns to.
    return_to: String,
    /// The parked POST request this resumes, if any.
    parked: Option<String>,
}

/// Runtime SAML state of the IdP.
pub(crate) struct Saml {
    pub(crate) settings: SamlSettings,
    pub(crate) config: IdpConfig,
    metadata: String,
    parked: Mutex<HashMap<String, (Ask, OffsetDateTime)>>,
    reauth: Mutex<HashMap<String, OffsetDateTime>>,
    /// IdP session id → the SPs that received an assertion in it, each
    /// with the NameID it received (for Single Logout).
    pub(crate) participants: Mutex<HashMap<String, BTreeMap<String, IssuedNameId>>>,
    name_id_key: NameIdKey,
    /// Back-channel (SOAP) logout deliveries.
    pub(crate) back_channel: super::slo_soap::BackChannel,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn random_id() -> String {
    rand::random::<[u8; 16]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Inserts with expiry-sweeping; `false` when the map is full of live entries.
fn insert_pending<V>(
    map: &mut HashMap<String, (V, OffsetDateTime)>,
    key: String,
    value: V,
    now: OffsetDateTime,
) -> bool {
    if map.len() >= PENDING_MAX {
        map.retain(|_, (_, at)| now - *at < PENDING_TTL);
        if map.len() >= PENDING_MAX {
            return false;
        }
    }
    map.insert(key, (value, now));
    true
}

impl Saml {
    pub(crate) fn new(
        settings: SamlSettings,
        base_url: &str,
    ) -> Result<Saml, portcullis_saml::Error> {
        let sso = format!("{base_url}/sso/saml");
        let config = IdpConfig {
            entity_id: settings.entity_id.clone(),
            sso_redirect_url: sso.clone(),
            sso_post_url: sso,
            slo_url: format!("{base_url}/sso/saml/logout"),
        };
        let metadata = saml::idp_metadata_xml(&config, &settings.signing_key)?;
        let name_id_key =
            NameIdKey::derive(&settings.signing_key, settings.name_id_secret.as_ref())?;
        Ok(Saml {
            name_id_key,
            settings,
            config,
            metadata,
            parked: Mutex::new(HashMap::new()),
            reauth: Mutex::new(HashMap::new()),
            participants: Mutex::new(HashMap::new()),
            back_channel: super::slo_soap::BackChannel::default(),
        })
    }

    /// The registered SP that issued a request; `Err` is the page for an
    /// unknown (or missing) issuer.
    fn registered_sp(
        &self,
        issuer: Option<&str>,
    ) -> Result<Arc<ServiceProvider>, Box<Response<Bytes>>> {
        issuer
            .and_then(|id| self.settings.service_providers.by_entity_id(id))
            .ok_or_else(|| {
                tracing::warn!(issuer = ?issuer, "SAML AuthnRequest from an unknown service provider");
                Box::new(bad_request(
                    "The application that sent you here is not registered with this identity provider.",
                ))
            })
    }

    pub(crate) fn sp_by_name(&self, name: &str) -> Option<Arc<ServiceProvider>> {
        self.settings.service_providers.by_name(name)
    }

    pub(crate) fn sweep(&self, now: OffsetDateTime) {
        lock(&self.parked).retain(|_, (_, at)| now - *at < PENDING_TTL);
        lock(&self.reauth).retain(|_, at| now - *at < PENDING_TTL);
    }

    /// Forgets an ended session; returns the SPs that took part in it.
    pub(crate) fn forget_session(&self, session_id: &str) -> BTreeMap<String, IssuedNameId> {
        lock(&self.participants)
            .remove(session_id)
            .unwrap_or_default()
    }
}

fn user_attribute(user: &User, name: &str) -> Vec<String> {
    match name {
        "id" => vec![user.id().to_string()],
        "login" => vec![user.login().to_string()],
        "email" => vec![user.email().to_string()],
        "firstName" => vec![user.first_name().to_string()],
        "lastName" => vec![user.last_name().to_string()],
        "displayName" => vec![user.display_name()],
        "groups" => user.groups().to_vec(),
        other => match other.strip_prefix("profile.") {
            Some(custom) => user.profile(custom).to_vec(),
            None => Vec::new(),
        },
    }
}

/// `scheme://authority` of an absolute URL.
fn url_origin(url: &str) -> &str {
    let Some(scheme_end) = url.find("://") else {
        return url;
    };
    let rest = &url[scheme_end + 3..];
    match rest.find(['/', '?', '#']) {
        Some(i) => &url[..scheme_end + 3 + i],
        None => url,
    }
}

/// The raw query without any `pc_reauth` pair (it is ours, not the SP's).
fn without_reauth(raw_query: &str) -> String {
    raw_query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with(&format!("{REAUTH_PARAM}=")))
        .collect::<Vec<_>>()
        .join("&")
}

fn to_chrono(t: OffsetDateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond())
        .unwrap_or_else(chrono::Utc::now)
}

fn not_found() -> Response<Bytes> {
    respond::message_page(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is nothing at this address.",
    )
}

/// An AuthnRequest that could not be decoded or parsed.
fn unreadable(error: &saml::Error, binding: &'static str) -> Response<Bytes> {
    tracing::warn!(error = %error, binding, "unreadable SAML AuthnRequest");
    bad_request("The application sent a sign-in request that could not be read.")
}

fn bad_request(message: &str) -> Response<Bytes> {
    respond::message_page(StatusCode::BAD_REQUEST, "Invalid sign-in request", message)
}

impl Idp {
    /// Enables the SAML endpoints. Fails if the metadata cannot be built
    /// from the key (a broken certificate).
    pub fn with_saml(mut self, settings: SamlSettings) -> Result<Idp, portcullis_saml::Error> {
        let base = format!("{}{}", self.settings.origin, self.path(""));
        let base = base.trim_end_matches('/').to_string();
        self.saml = Some(Saml::new(settings, &base)?);
        Ok(self)
    }

    /// The running IdP's SPs, for the metadata refresh to publish to;
    /// `None` without SAML.
    pub fn service_providers(&self) -> Option<ServiceProviders> {
        self.saml
            .as_ref()
            .map(|saml| saml.settings.service_providers.clone())
    }

    /// Names of the SPs that received an assertion in this IdP session.
    pub fn sso_participants(&self, session_id: &str) -> Vec<String> {
        self.saml
            .as_ref()
            .and_then(|s| {
                lock(&s.participants)
                    .get(session_id)
                    .map(|sps| sps.keys().cloned().collect())
            })
            .unwrap_or_default()
    }

    /// `GET /sso/saml/metadata`.
    pub(crate) fn saml_metadata(&self) -> Response<Bytes> {
        let Some(saml) = &self.saml else {
            return not_found();
        };
        let mut response = Response::new(Bytes::from(saml.metadata.clone()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/samlmetadata+xml"),
        );
        response
    }

    /// Where each SP is signed in to from the signed-in home page: its
    /// own sign-in URL when it has one (a gateway app starts SP-initiated
    /// sign-in itself), else IdP-initiated SSO.
    pub(crate) fn app_launcher(&self) -> Vec<LauncherLink> {
        let Some(saml) = &self.saml else {
            return Vec::new();
        };
        saml.settings
            .service_providers
            .snapshot()
            .iter()
            .map(|sp| LauncherLink {
                href: sp
                    .sign_in_url
                    .clone()
                    .unwrap_or_else(|| self.path(&format!("/app/{}/sso/saml", sp.name))),
                name: sp.name.clone(),
            })
            .collect()
    }

    /// An AuthnRequest whose signature failed: logged as an SSO failure,
    /// answered with a page.
    fn badly_signed(
        &self,
        sp: &ServiceProvider,
        error: &saml::Error,
        origin: &Origin<'_>,
    ) -> Response<Bytes> {
        self.sso_failure(
            sp,
            None,
            false,
            &format!("AuthnRequest signature: {error}"),
            origin,
        );
        bad_request("The application's sign-in request is not correctly signed.")
    }

    fn sso_failure(
        &self,
        sp: &ServiceProvider,
        user: Option<&User>,
        deny: bool,
        reason: &str,
        origin: &Origin<'_>,
    ) {
        tracing::info!(sp = %sp.name, reason, "SAML SSO refused");
        self.emit(events::sso(
            &sp.entity_id,
            &sp.name,
            user,
            None,
            Some(reason),
            deny,
            origin,
        ));
    }

    /// Checks that apply to every AuthnRequest once its issuer is known.
    fn check_request(
        &self,
        saml: &Saml,
        sp: &ServiceProvider,
        parsed: &ParsedAuthnRequest,
    ) -> Result<(), &'static str> {
        if parsed
            .acs_url
            .as_deref()
            .is_some_and(|acs| acs != sp.acs_url)
        {
            return Err(
                "AssertionConsumerServiceURL is not the one registered for this service provider",
            );
        }
        if parsed
            .destination
            .as_deref()
            .is_some_and(|d| d != saml.config.sso_redirect_url && d != saml.config.sso_post_url)
        {
            return Err("Destination is not this identity provider");
        }
        // A Redirect-binding request is re-read when the browser comes back
        // from the sign-in page, so its age allows for a slow sign-in.
        let age = chrono::Utc::now() - parsed.issue_instant;
        if age < -REQUEST_CLOCK_SKEW {
            return Err("IssueInstant is in the future");
        }
        if age > REQUEST_MAX_AGE {
            return Err("the sign-in request is too old; start again from the application");
        }
        Ok(())
    }

    /// `GET /sso/saml` (HTTP-Redirect binding).
    pub(crate) async fn sso_redirect(
        &self,
        request: &Request<Bytes>,
        caller: &Caller,
    ) -> Response<Bytes> {
        let Some(saml) = &self.saml else {
            return not_found();
        };
        let origin = self.origin(request, caller);
        let raw_query = request.uri().query().unwrap_or("");
        let unverified =
            match saml::parse_authn_request_redirect(raw_query, None, MAX_REQUEST_BYTES) {
                Ok(parsed) => parsed,
                Err(e) => return unreadable(&e, "redirect"),
            };
        let sp = match saml.registered_sp(unverified.issuer.as_deref()) {
            Ok(sp) => sp,
            Err(page) => return *page,
        };
        let sp = &*sp;
        let signed = form_urlencoded::parse(raw_query.as_bytes()).any(|(k, _)| k == "Signature");
        let parsed = if sp.must_verify(signed) {
            match saml::parse_authn_request_redirect_with(
                raw_query,
                Some(sp.signers()),
                MAX_REQUEST_BYTES,
            ) {
                Ok(parsed) => parsed,
                Err(e) => return self.badly_signed(sp, &e, &origin),
            }
        } else {
            unverified
        };
        if let Err(reason) = self.check_request(saml, sp, &parsed) {
            self.sso_failure(sp, None, false, reason, &origin);
            return bad_request(reason);
        }
        let name_id_format = match self.name_id_policy(saml, sp, &parsed, &origin) {
            Ok(format) => format,
            Err(answer) => return *answer,
        };
        let query = without_reauth(raw_query);
        let ask = Ask {
            sp: sp.name.clone(),
            in_response_to: Some(parsed.id),
            relay_state: parsed.relay_state,
            force_authn: parsed.force_authn,
            is_passive: parsed.is_passive,
            name_id_format,
            return_to: format!("{}?{query}", self.path("/sso/saml")),
            parked: None,
        };
        self.sso_flow(request, caller, saml, sp, ask).await
    }

    /// `POST /sso/saml` (HTTP-POST binding); an enveloped request signature
    /// is verified like the Redirect binding's query signature.
    pub(crate) async fn sso_post(
        &self,
        request: &Request<Bytes>,
        caller: &Caller,
    ) -> Response<Bytes> {
        let Some(saml) = &self.saml else {
            return not_found();
        };
        let origin = self.origin(request, caller);
        let form: Vec<(String, String)> = form_urlencoded::parse(request.body())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let Some(encoded) = field("SAMLRequest") else {
            return bad_request("The sign-in request is missing.");
        };
        let unverified = match saml::parse_authn_request_post(
            encoded,
            field("RelayState"),
            None,
            MAX_REQUEST_BYTES,
        ) {
            Ok(parsed) => parsed,
            Err(e) => return unreadable(&e, "post"),
        };
        let sp = match saml.registered_sp(unverified.issuer.as_deref()) {
            Ok(sp) => sp,
            Err(page) => return *page,
        };
        let sp = &*sp;
        let signed = saml::post_request_is_signed(encoded, MAX_REQUEST_BYTES).unwrap_or(false);
        let parsed = if sp.must_verify(signed) {
            // The enveloped signature goes through libxml2 and xmlsec: on
            // the bounded pool, off the worker thread.
            let (encoded, relay_state, certs, allow_sha1) = (
                encoded.to_owned(),
                field("RelayState").map(str::to_owned),
                sp.signing_certs_der.clone(),
                sp.allow_sha1,
            );
            let verified = self
                .saml_work
                .run(move || {
                    saml::parse_authn_request_post_with(
                        &encoded,
                        relay_state.as_deref(),
                        Some(saml::PeerSigners {
                            certs: &certs,
                            allow_sha1,
                        }),
                        MAX_REQUEST_BYTES,
                    )
                })
                .await;
            match verified {
                Ok(Ok(parsed)) => parsed,
                Ok(Err(e)) => return self.badly_signed(sp, &e, &origin),
                Err(e) => return respond::saml_work_refused(&e),
            }
        } else {
            unverified
        };
        if let Err(reason) = self.check_request(saml, sp, &parsed) {
            self.sso_failure(sp, None, false, reason, &origin);
            return bad_request(reason);
        }
        let name_id_format = match self.name_id_policy(saml, sp, &parsed, &origin) {
            Ok(format) => format,
            Err(answer) => return *answer,
        };
        let id = random_id();
        let ask = Ask {
            sp: sp.name.clone(),
            in_response_to: Some(parsed.id),
            relay_state: parsed.relay_state,
            force_authn: parsed.force_authn,
            is_passive: parsed.is_passive,
            name_id_format,
            return_to: format!("{}?id={id}", self.path("/sso/saml/continue")),
            parked: Some(id.clone()),
        };
        let now = OffsetDateTime::now_utc();
        if !insert_pending(&mut lock(&saml.parked), id, ask.clone(), now) {
            return respond::message_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again later",
                "Too many sign-in requests are waiting. Please try again in a few minutes.",
            );
        }
        self.sso_flow(request, caller, saml, sp, ask).await
    }

    /// `GET /sso/saml/continue?id=…`: a parked POST-binding request after sign-in.
    pub(crate) async fn sso_continue(
        &self,
        request: &Request<Bytes>,
        caller: &Caller,
    ) -> Response<Bytes> {
        let Some(saml) = &self.saml else {
            return not_found();
        };
        let now = OffsetDateTime::now_utc();
        let ask = query_param(request, "id").and_then(|id| {
            lock(&saml.parked)
                .get(&id)
                .filter(|(_, at)| now - *at < PENDING_TTL)
                .map(|(ask, _)| ask.clone())
        });
        let Some(ask) = ask else {
            return bad_request(
                "This sign-in request has expired. Go back to the application and try again.",
            );
        };
        let Some(sp) = saml.sp_by_name(&ask.sp) else {
            return not_found();
        };
        let sp = &*sp;
        self.sso_flow(request, caller, saml, sp, ask).await
    }

    /// `GET /app/{sp}/sso/saml`: IdP-initiated (unsolicited) SSO.
    pub(crate) async fn sso_idp_initiated(
        &self,
        request: &Request<Bytes>,
        caller: &Caller,
        name: &str,
    ) -> Response<Bytes> {
        let Some(saml) = &self.saml else {
            return not_found();
        };
        let Some(sp) = saml.sp_by_name(name) else {
            return not_found();
        };
        let sp = &*sp;
        // A gateway app refuses an assertion it did not ask for: start its
        // own (SP-initiated) sign-in instead of sending one.
        if let Some(url) = &sp.sign_in_url {
            return respond::redirect(url);
        }
        let ask = Ask {
            sp: sp.name.clone(),
            in_response_to: None,
            relay_state: None,
            force_authn: false,
            is_passive: false,
            name_id_format: sp.name_id_format,
            return_to: self.path(&format!("/app/{}/sso/saml", sp.name)),
            parked: None,
        };
        self.sso_flow(request, caller, saml, sp, ask).await
    }

    fn to_login(&self, return_to: &str, sp: &str) -> Response<Bytes> {
        respond::redirect(&self.login_page_path("/login", return_to, Some(sp), false))
    }

    /// IsPassive could not be honoured: the SP gets a signed Response with
    /// `Responder/NoPassive` at its ACS (SAML core §3.4.1), never a page.
    fn no_passive(
        &self,
        saml: &Saml,
        sp: &ServiceProvider,
        user: Option<&User>,
        ask: &Ask,
        origin: &Origin<'_>,
    ) -> Response<Bytes> {
        self.sso_failure(
            sp,
            user,
            false,
            "NoPassive: sign-in needed but IsPassive was requested",
            origin,
        );
        status_answer(
            saml,
            sp,
            ask.in_response_to.as_deref(),
            ask.relay_state.as_deref(),
            saml::STATUS_RESPONDER,
            saml::STATUS_NO_PASSIVE,
        )
    }

    /// The NameID format to issue for this request; a NameIDPolicy the SP
    /// may not have is answered at its ACS with a signed
    /// `Requester/InvalidNameIDPolicy` Response (core §3.4.1.1), before
    /// anyone signs in for nothing.
    fn name_id_policy(
        &self,
        saml: &Saml,
        sp: &ServiceProvider,
        parsed: &ParsedAuthnRequest,
        origin: &Origin<'_>,
    ) -> Result<NameIdFormat, Box<Response<Bytes>>> {
        let asked = parsed.name_id_policy_format.as_deref();
        sp.name_id_format_for(asked).map_err(|reason| {
            tracing::warn!(
                sp = %sp.name,
                name_id_policy = asked.unwrap_or(""),
                reason,
                "SAML AuthnRequest refused: InvalidNameIDPolicy"
            );
            self.sso_failure(sp, None, false, reason, origin);
            Box::new(status_answer(
                saml,
                sp,
                Some(&parsed.id),
                parsed.relay_state.as_deref(),
                saml::STATUS_REQUESTER,
                saml::STATUS_INVALID_NAME_ID_POLICY,
            ))
        })
    }

    /// Session, app policy, then the Response.
    async fn sso_flow(
        &self,
        request: &Request<Bytes>,
        caller: &Caller,
        saml: &Saml,
        sp: &ServiceProvider,
        ask: Ask,
    ) -> Response<Bytes> {
        let origin = self.origin(request, caller);
        let now = OffsetDateTime::now_utc();
        let session = match self.current_session_checked(request, caller, now).await {
            Ok(session) => {
                session.filter(|(_, record)| record.body.status == SessionStatus::Active)
            }
            Err(response) => return response,
        };
        let Some((_, record)) = session else {
            if ask.is_passive {
                return self.no_passive(saml, sp, None, &ask, &origin);
            }
            return self.to_login(&ask.return_to, &sp.name);
        };
        // A session outliving its user's suspension (a reload racing the
        // sign-in) is worth nothing: the status in force decides.
        let directory = self.directory();
        let Some(user) = directory
            .by_id(&record.body.user_id)
            .filter(|u| u.status() == UserStatus::Active)
        else {
            return self.to_login(&ask.return_to, &sp.name);
        };
        let nonce = query_param(request, REAUTH_PARAM);
        let asked_at = nonce
            .as_deref()
            .and_then(|n| lock(&saml.reauth).get(n).copied())
            .filter(|at| now - *at < PENDING_TTL);
        let facts = SessionFacts {
            groups: user.groups(),
            now,
            last_password_verification: Some(record.body.last_password_verification),
            last_factor_verification: record.body.last_factor_verification,
            force_authn: ask.force_authn,
            password_verified_this_request: asked_at
                .is_some_and(|at| record.body.last_password_verification > at),
        };
        let decision = self.policies().app_policy(&sp.name).evaluate(&facts);
        match decision {
            AppDecision::Allow => {
                if let Some(n) = nonce {
                    lock(&saml.reauth).remove(&n);
                }
                self.issue(saml, sp, user, &record, &ask, &origin)
            }
            AppDecision::Reauthenticate => {
                if ask.is_passive {
                    return self.no_passive(saml, sp, Some(user), &ask, &origin);
                }
                let nonce = random_id();
                let mut reauth = lock(&saml.reauth);
                if reauth.len() >= PENDING_MAX {
                    reauth.retain(|_, at| now - *at < PENDING_TTL);
                    if reauth.len() >= PENDING_MAX {
                        return respond::message_page(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "Try again later",
                            "Too many sign-in requests are waiting. Please try again in a few minutes.",
                        );
                    }
                }
                reauth.insert(nonce.clone(), now);
                drop(reauth);
                let sep = if ask.return_to.contains('?') {
                    '&'
                } else {
                    '?'
                };
                self.to_login(
                    &format!("{}{sep}{REAUTH_PARAM}={nonce}", ask.return_to),
                    &sp.name,
                )
            }
            AppDecision::StepUpMfa if user.has_totp() => {
                if ask.is_passive {
                    return self.no_passive(saml, sp, Some(user), &ask, &origin);
                }
                // Verify a fresh factor in this session, then come back to
                // the same request; the policy then sees it.
                respond::redirect(&self.login_page_path(
                    "/login/mfa",
                    &ask.return_to,
                    Some(&sp.name),
                    true,
                ))
            }
            AppDecision::StepUpMfa => {
                self.sso_failure(
                    sp,
                    Some(user),
                    false,
                    "MFA step-up required by app policy but no factor is enrolled",
                    &origin,
                );
                respond::message_page(
                    StatusCode::FORBIDDEN,
                    "Additional verification required",
                    "This application needs a second-factor verification, but none is enrolled for your account. Contact your administrator.",
                )
            }
            AppDecision::Deny { reason } => {
                self.sso_failure(sp, Some(user), true, reason.as_str(), &origin);
                respond::message_page(
                    StatusCode::FORBIDDEN,
                    "Access denied",
                    "You are not allowed to use this application.",
                )
            }
        }
    }

    fn issue(
        &self,
        saml: &Saml,
        sp: &ServiceProvider,
        user: &User,
        record: &SessionRecord,
        ask: &Ask,
        origin: &Origin<'_>,
    ) -> Response<Bytes> {
        let name_id = saml.name_id(sp, ask.name_id_format, user, record.id.as_str());
        let attributes: Vec<ReleasedAttribute> = sp
            .attributes
            .iter()
            .map(|rule| ReleasedAttribute {
                name: rule.name.clone(),
                name_format: rule.name_format,
                friendly_name: rule.friendly_name.clone(),
                values: user_attribute(user, &rule.source),
            })
            .collect();
        let authn_context = if record.body.amr.contains(&Amr::Mfa) {
            AuthnContextClass::MultiFactor
        } else {
            AuthnContextClass::PasswordProtectedTransport
        };
        let params = ResponseParams {
            sp_entity_id: &sp.entity_id,
            acs_url: &sp.acs_url,
            in_response_to: ask.in_response_to.as_deref(),
            name_id: &name_id.value,
            name_id_format: name_id.format,
            name_qualifier: name_id
                .qualified
                .then_some(saml.settings.entity_id.as_str()),
            sp_name_qualifier: name_id.qualified.then_some(sp.entity_id.as_str()),
            session_index: record.id.as_str(),
            authn_context,
            authn_instant: to_chrono(record.body.last_password_verification),
            attributes: &attributes,
            validity: RESPONSE_VALIDITY,
            clock_skew: saml.settings.clock_skew,
            now: chrono::Utc::now(),
            sign_assertion: true,
            sign_response: sp.sign_response,
            encrypt_for: sp.encryption_cert_der.as_deref(),
        };
        let issued = match saml::build_response(&saml.config, &saml.settings.signing_key, &params) {
            Ok(issued) => issued,
            Err(e) => {
                tracing::error!(error = %e, sp = %sp.name, "building the SAML response failed");
                self.sso_failure(
                    sp,
                    Some(user),
                    false,
                    "internal error building the response",
                    origin,
                );
                return respond::message_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Sign-in failed",
                    "The identity provider could not complete the sign-in. Please try again later.",
                );
            }
        };
        if let Some(id) = &ask.parked {
            lock(&saml.parked).remove(id);
        }
        lock(&saml.participants)
            .entry(record.id.as_str().to_string())
            .or_default()
            .insert(sp.name.clone(), name_id);
        self.emit(
            events::sso(
                &sp.entity_id,
                &sp.name,
                Some(user),
                Some(record.id.as_str()),
                None,
                false,
                origin,
            )
            .debug("responseId", issued.response_id.clone())
            .debug("assertionId", issued.assertion_id.clone()),
        );
        post_form(
            &sp.acs_url,
            &issued.post_form_value(),
            ask.relay_state.as_deref(),
        )
    }
}

/// A signed Response that carries only a status, auto-posted to the SP's
/// ACS: the SP learns why there is no assertion instead of a page.
fn status_answer(
    saml: &Saml,
    sp: &ServiceProvider,
    in_response_to: Option<&str>,
    relay_state: Option<&str>,
    top_level: &str,
    second_level: &str,
) -> Response<Bytes> {
    let params = saml::StatusParams {
        acs_url: &sp.acs_url,
        in_response_to,
        top_level,
        second_level: Some(second_level),
        now: chrono::Utc::now(),
    };
    match saml::build_status_response(&saml.config, &saml.settings.signing_key, &params) {
        Ok(status) => post_form(&sp.acs_url, &status.post_form_value(), relay_state),
        Err(e) => {
            tracing::error!(error = %e, sp = %sp.name, status = second_level, "building a status response failed");
            respond::message_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Sign-in failed",
                "The identity provider could not complete the sign-in. Please try again later.",
            )
        }
    }
}

/// One app on the signed-in home page.
pub(crate) struct LauncherLink {
    pub(crate) href: String,
    pub(crate) name: String,
}

/// The HTTP-POST binding page.
#[derive(askama::Template)]
#[template(path = "saml_post.html")]
struct SamlPostPage<'a> {
    acs: &'a str,
    saml_response: &'a str,
    relay_state: Option<&'a str>,
    auto_submit: &'static str,
}

/// The HTTP-POST binding page: auto-submits with JavaScript, with a visible
/// button for browsers without it. Its CSP allows posting to the ACS origin.
fn post_form(acs_url: &str, saml_response: &str, relay_state: Option<&str>) -> Response<Bytes> {
    let body = portcullis_proxy::page::body(&SamlPostPage {
        acs: acs_url,
        saml_response,
        relay_state,
        auto_submit: AUTO_SUBMIT,
    });
    let mut response = respond::page(StatusCode::OK, "Signing in", &body);
    let hash =
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(AUTO_SUBMIT.as_bytes()));
    respond::insert(
        &mut response,
        header::CONTENT_SECURITY_POLICY,
        &format!(
            "default-src 'none'; style-src {}; script-src 'sha256-{hash}'; form-action {}; frame-ancestors 'none'; base-uri 'none'",
            portcullis_proxy::page::style_src(),
            url_origin(acs_url)
        ),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_id_secret_keeps_persistent_ids_across_a_signing_key_rotation() {
        let old = SigningKey::generate_self_signed("old", 1).expect("key");
        let new = SigningKey::generate_self_signed("new", 1).expect("key");
        let secret = NameIdSecret::new(*b"0123456789abcdef0123456789abcdef");
        let id = |key: &SigningKey, secret: Option<&NameIdSecret>| {
            NameIdKey::derive(key, secret)
                .expect("derive")
                .persistent("00u2bob", "https://sp.test")
        };
        assert_eq!(id(&old, Some(&secret)), id(&new, Some(&secret)));
        assert_ne!(id(&old, None), id(&new, None), "keyed by the signing key");
        assert_ne!(id(&old, Some(&secret)), id(&old, None));
        let other = NameIdSecret::new(*b"another secret of 32 bytes or more");
        assert_ne!(id(&old, Some(&secret)), id(&old, Some(&other)));
        assert_eq!(format!("{secret:?}"), "NameIdSecret(<redacted>)");
    }

    #[test]
    fn url_origin_stops_at_the_path() {
        assert_eq!(
            url_origin("https://sp.test:8443/acs?x=1"),
            "https://sp.test:8443"
        );
        assert_eq!(url_origin("https://sp.test"), "https://sp.test");
    }

    #[test]
    fn reauth_nonce_is_dropped_from_the_return_query() {
        assert_eq!(
            without_reauth("SAMLRequest=abc&pc_reauth=1234&Signature=x"),
            "SAMLRequest=abc&Signature=x"
        );
    }

    #[test]
    fn post_form_allows_only_the_acs_origin() {
        let page = post_form("https://sp.test/acs", "PHg+", Some("a\"b"));
        let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("text");
        assert!(csp.contains("form-action https://sp.test;"), "{csp}");
        let html = String::from_utf8_lossy(page.body()).into_owned();
        assert!(html.contains("value=\"PHg+\""), "{html}");
        assert!(html.contains("value=\"a&#34;b\""), "{html}");
        assert!(html.contains("<button type=\"submit\">"), "{html}");
    }
}

/// Regenerates the committed development IdP signing key and certificate:
/// `cargo test -p portcullis-idp -- --ignored generate_dev_idp_signing_key`.
#[cfg(test)]
mod dev_key {
    #[test]
    #[ignore = "writes certs-dev/; run by hand to regenerate the dev IdP key"]
    fn generate_dev_idp_signing_key() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../certs-dev");
        let key = portcullis_saml::SigningKey::generate_self_signed("Portcullis dev IdP", 3650)
            .expect("key");
        std::fs::write(dir.join("idp-signing.pem"), key.cert_pem().expect("cert")).expect("write");
        std::fs::write(dir.join("idp-signing-key.pem"), key.key_pem().expect("key"))
            .expect("write");
    }
}
