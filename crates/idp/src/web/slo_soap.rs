//! Back-channel Single Logout: when an IdP session ends without the
//! browser (revocation, expiry, suspension, a post-auth log-out), every SP
//! that received an assertion in it and publishes a SOAP
//! SingleLogoutService gets a signed LogoutRequest over SOAP 1.1.
//!
//! Delivery runs on its own tasks, never on the request that ended the
//! session: a few at a time ([`IN_FLIGHT`]), each attempt bounded in time
//! (connect and whole exchange) and the answer in size, a small retry for
//! failures that may pass (no connection, timeout, 5xx, 429). The SP's
//! LogoutResponse is verified when signed (the SOAP binding lets TLS vouch
//! for an unsigned one) and must answer our request, come from the SP and
//! say Success. Every outcome is a `user.authentication.slo` System Log
//! event and a tracing event.
//!
//! SPs with only a front-channel SingleLogoutService cannot be told
//! without a browser; they are handed back to be told when the browser
//! next comes to the IdP (`slo_pending`). Gateway apps are not among them:
//! Universal Logout reaches those.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portcullis_saml::{self as saml, LogoutRequestParams};
use portcullis_session::EndReason;
use tokio::sync::Semaphore;

use super::events;
use super::slo::Notice;
use super::sso::{IssuedNameId, Saml, ServiceProvider};
use super::Idp;
use crate::post_auth::workflow::error_chain;

/// Deliveries under way at once: a mass revocation must not open a
/// connection per session at the same moment.
const IN_FLIGHT: usize = 8;
/// Deliveries waiting for a slot; beyond this they are dropped (and logged)
/// rather than held in memory without bound.
const QUEUE_MAX: usize = 4096;
const ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One attempt as a whole: handshake, request, answer.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// A LogoutResponse is a few KiB; more is refused unread.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Our LogoutRequest is valid this long.
const REQUEST_VALIDITY: Duration = Duration::from_secs(120);

type SoapClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The back channel's client and its bounds, shared by every delivery.
#[derive(Default)]
pub(crate) struct BackChannel {
    /// Built on first use: loading the system roots is file I/O that an
    /// IdP without SOAP SPs never needs.
    client: OnceLock<Option<SoapClient>>,
    slots: OnceLock<Arc<Semaphore>>,
    queued: Arc<AtomicUsize>,
}

impl BackChannel {
    fn client(&self) -> Option<&SoapClient> {
        self.client
            .get_or_init(|| {
                match portcullis_proxy::upstream_connector(
                    "idp.back_channel_logout",
                    None,
                    None,
                    CONNECT_TIMEOUT,
                ) {
                    Ok(connector) => Some(Client::builder(TokioExecutor::new()).build(connector)),
                    Err(error) => {
                        tracing::error!(error = %error, "back-channel logout client unavailable");
                        None
                    }
                }
            })
            .as_ref()
    }

    fn slots(&self) -> Arc<Semaphore> {
        Arc::clone(
            self.slots
                .get_or_init(|| Arc::new(Semaphore::new(IN_FLIGHT))),
        )
    }
}

/// Whether a session ended this way leaves SPs to be told without the
/// browser (a sign-out in the browser walks it through them instead).
pub(crate) fn ends_without_browser(reason: EndReason) -> bool {
    reason.needs_universal_logout()
        || matches!(
            reason,
            EndReason::PostAuthViolation | EndReason::UniversalLogout
        )
}

/// One SP to tell about one ended session.
struct Delivery {
    sp: String,
    entity_id: String,
    url: Uri,
    user_id: String,
    login: String,
    session_id: String,
    name_id: IssuedNameId,
}

/// How one delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The SP answered Success.
    LoggedOut,
    /// The SP answered, but not Success, or not acceptably.
    Refused,
    /// No usable answer after every attempt.
    GaveUp,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::LoggedOut => "logged_out",
            Self::Refused => "refused",
            Self::GaveUp => "gave_up",
        }
    }
}

/// What one attempt came to.
enum Attempt {
    Answered(StatusCode, Bytes),
    /// Worth another try: no connection, no answer in time, an unreadable
    /// body.
    Failed(String),
}

impl Idp {
    /// Tells every SP of the ended session that can be told without the
    /// browser; `participants` are the SPs that received an assertion in
    /// it, with their NameIDs. Returns at once, with the SPs only the
    /// browser can reach.
    pub(super) fn back_channel_logout(
        self: &Arc<Self>,
        session_id: &str,
        user_id: &str,
        login: &str,
        reason: EndReason,
        participants: BTreeMap<String, IssuedNameId>,
    ) -> VecDeque<Notice> {
        let mut front_channel = VecDeque::new();
        let Some(saml) = &self.saml else {
            return front_channel;
        };
        for (name, name_id) in participants {
            let Some(sp) = saml.sp_by_name(&name) else {
                continue;
            };
            let sp = &*sp;
            let Some(url) = soap_url(sp) else {
                if sp.slo_url.is_some() && !self.reached_by_universal_logout(&sp.name) {
                    tracing::info!(
                        sp = %sp.name,
                        session.id = session_id,
                        reason = %reason,
                        outcome = "pending_front_channel",
                        "service provider has no SOAP SingleLogoutService; told when the browser is next here"
                    );
                    front_channel.push_back(Notice {
                        sp: sp.name.clone(),
                        name_id,
                    });
                }
                continue;
            };
            let delivery = Delivery {
                sp: sp.name.clone(),
                entity_id: sp.entity_id.clone(),
                url,
                user_id: user_id.to_string(),
                login: login.to_string(),
                session_id: session_id.to_string(),
                name_id,
            };
            self.queue_delivery(delivery);
        }
        front_channel
    }

    /// Gateway apps hear of every ended session through Universal Logout.
    fn reached_by_universal_logout(&self, sp: &str) -> bool {
        self.universal_logout
            .get()
            .is_some_and(|ul| ul.targets().iter().any(|target| target.app == sp))
    }

    fn queue_delivery(self: &Arc<Self>, delivery: Delivery) {
        let Some(saml) = &self.saml else { return };
        let queued = Arc::clone(&saml.back_channel.queued);
        if queued.fetch_add(1, Ordering::AcqRel) >= QUEUE_MAX {
            queued.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(
                sp = %delivery.sp,
                session.id = %delivery.session_id,
                outcome = "dropped",
                capacity = QUEUE_MAX,
                "back-channel logout queue full; service provider not told"
            );
            return;
        }
        let slots = saml.back_channel.slots();
        let idp = Arc::clone(self);
        tokio::spawn(async move {
            let slot = slots.acquire_owned().await;
            queued.fetch_sub(1, Ordering::AcqRel);
            let Ok(_slot) = slot else { return };
            let (outcome, detail) = idp.deliver(&delivery).await;
            idp.record(&delivery, outcome, detail.as_deref());
        });
    }

    /// Builds, sends and checks one LogoutRequest; `detail` says why an
    /// outcome is not [`Outcome::LoggedOut`].
    async fn deliver(&self, d: &Delivery) -> (Outcome, Option<String>) {
        let Some(saml) = &self.saml else {
            return (Outcome::GaveUp, Some("SAML is not enabled".into()));
        };
        let Some(client) = saml.back_channel.client() else {
            return (Outcome::GaveUp, Some("no HTTP client".into()));
        };
        let built = match build_request(saml, d).await {
            Ok(built) => built,
            Err(error) => return (Outcome::GaveUp, Some(format!("building: {error}"))),
        };
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            let result = send(client, &d.url, &built.envelope).await;
            let retry = match result {
                Attempt::Answered(status, body) if is_final(status, &body) => {
                    return self.check_answer(saml, d, &built.id, status, body).await;
                }
                Attempt::Answered(status, _) => format!("answered {status}"),
                Attempt::Failed(error) => error,
            };
            if attempt == ATTEMPTS {
                return (Outcome::GaveUp, Some(retry));
            }
            tracing::debug!(sp = %d.sp, attempt, error = %retry, "back-channel logout retrying");
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        (Outcome::GaveUp, None)
    }

    /// The SP's answer: a LogoutResponse to our request, from it, Success.
    async fn check_answer(
        &self,
        saml: &Saml,
        d: &Delivery,
        request_id: &str,
        status: StatusCode,
        body: Bytes,
    ) -> (Outcome, Option<String>) {
        let Ok(text) = String::from_utf8(body.to_vec()) else {
            return (
                Outcome::Refused,
                Some(format!("answered {status}, not UTF-8")),
            );
        };
        let certs = saml
            .sp_by_name(&d.sp)
            .map(|sp| (sp.signing_certs_der.clone(), sp.allow_sha1))
            .unwrap_or_default();
        let parsed = tokio::task::spawn_blocking(move || {
            let signers = (!certs.0.is_empty()).then(|| saml::PeerSigners {
                certs: &certs.0,
                allow_sha1: certs.1,
            });
            saml::parse_logout_response_soap(&text, signers, MAX_RESPONSE_BYTES)
        })
        .await;
        let response = match parsed {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                return (
                    Outcome::Refused,
                    Some(format!(
                        "answered {status}, not an acceptable LogoutResponse: {error}"
                    )),
                )
            }
            Err(error) => {
                return (
                    Outcome::GaveUp,
                    Some(format!("checking the answer: {error}")),
                )
            }
        };
        if response.issuer.as_deref() != Some(d.entity_id.as_str()) {
            return (
                Outcome::Refused,
                Some(format!("LogoutResponse issued by {:?}", response.issuer)),
            );
        }
        if response.in_response_to.as_deref() != Some(request_id) {
            return (
                Outcome::Refused,
                Some("LogoutResponse answers another request".into()),
            );
        }
        if !response.is_success() {
            return (
                Outcome::Refused,
                Some(format!("LogoutResponse status {}", response.status_top)),
            );
        }
        tracing::debug!(
            sp = %d.sp,
            signed = response.signature_verified,
            partial = response.is_partial(),
            "back-channel LogoutResponse accepted"
        );
        (Outcome::LoggedOut, None)
    }

    fn record(&self, d: &Delivery, outcome: Outcome, detail: Option<&str>) {
        match outcome {
            Outcome::LoggedOut => tracing::info!(
                sp = %d.sp,
                session.id = %d.session_id,
                user = %d.login,
                outcome = outcome.as_str(),
                "back-channel logout delivered"
            ),
            _ => tracing::warn!(
                sp = %d.sp,
                session.id = %d.session_id,
                user = %d.login,
                outcome = outcome.as_str(),
                error = detail.unwrap_or(""),
                "back-channel logout not confirmed"
            ),
        }
        self.emit(events::slo_back_channel(
            &d.entity_id,
            &d.sp,
            &d.user_id,
            &d.login,
            &d.session_id,
            detail.filter(|_| outcome != Outcome::LoggedOut),
        ));
    }
}

/// The SP's SOAP SingleLogoutService, when it has a usable one.
fn soap_url(sp: &ServiceProvider) -> Option<Uri> {
    let text = sp.soap_slo_url.as_deref()?;
    match text.parse::<Uri>() {
        Ok(url) => Some(url),
        Err(error) => {
            tracing::warn!(sp = %sp.name, error = %error, "unusable SOAP SingleLogoutService");
            None
        }
    }
}

/// An answer the same request would get again: a success, a refusal of
/// the request itself (4xx but 429), or a SOAP Fault (which SOAP 1.1
/// sends with 500).
fn is_final(status: StatusCode, body: &[u8]) -> bool {
    let soap = std::str::from_utf8(body).is_ok_and(|b| b.contains(saml::NS_SOAP_ENV));
    status.is_success()
        || (status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS)
        || (status == StatusCode::INTERNAL_SERVER_ERROR && soap)
}

/// The signed request, built (xmlsec) off the runtime's threads.
async fn build_request(saml: &Saml, d: &Delivery) -> Result<saml::SoapMessage, String> {
    let key = saml.settings.signing_key.clone();
    let issuer = saml.settings.entity_id.clone();
    let destination = d.url.to_string();
    let sp_entity_id = d.entity_id.clone();
    let name_id = d.name_id.clone();
    let session_index = d.session_id.clone();
    tokio::task::spawn_blocking(move || {
        let params = LogoutRequestParams {
            issuer: &issuer,
            destination: &destination,
            name_id: &name_id.value,
            name_id_format: Some(name_id.format.uri()),
            name_qualifier: name_id.qualified.then_some(issuer.as_str()),
            sp_name_qualifier: name_id.qualified.then_some(sp_entity_id.as_str()),
            session_index: Some(&session_index),
            relay_state: None,
            now: chrono::Utc::now(),
            validity: REQUEST_VALIDITY,
        };
        saml::build_logout_request_soap(&params, &key).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

async fn send(client: &SoapClient, url: &Uri, envelope: &str) -> Attempt {
    let mut request = Request::new(Full::new(Bytes::from(envelope.to_string())));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = url.clone();
    let headers = request.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    headers.insert("soapaction", HeaderValue::from_static(saml::SOAP_ACTION));
    let exchange = async {
        let response = client.request(request).await.map_err(|e| error_chain(&e))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok::<_, String>((status, body))
    };
    match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
        Ok(Ok((status, body))) => Attempt::Answered(status, body),
        Ok(Err(error)) => Attempt::Failed(error),
        Err(_) => Attempt::Failed("no answer within the timeout".into()),
    }
}
