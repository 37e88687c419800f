//! The "workflow" action of an enforced post-auth policy: each violation
//! goes, signed, to an operator's webhook (`[post_auth.workflow]`).
//!
//! The webhook is told in the background. [`Workflow::deliver`] only puts
//! the violation on a bounded queue, so a slow or dead receiver never holds
//! up the request that caused the violation; a full queue drops the newest
//! violation, with a rate-limited warning and a count. A task drains the
//! queue, signs each violation once, and POSTs it — with the same body and
//! the same `Idempotency-Key` on every attempt — retrying connection
//! failures, timeouts, 5xx and 429 with exponential backoff. Every outcome
//! is logged.
//!
//! Wire format (both modes send `Idempotency-Key: <violation id>`):
//! - HMAC (`secret_file`): the violation as JSON (`application/json`) and
//!   `X-Portcullis-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//!   "<t>.<body>">`. The timestamp is signed so a receiver can refuse
//!   replays of an old body.
//! - JWS (no `secret_file`): a compact RS256 JWT (`application/jwt`) signed
//!   with the IdP's SAML signing key, `kid` from the JWKS at
//!   `/oauth2/v1/keys`; its claims are the violation's fields plus `iss`
//!   (the IdP), `aud` (the webhook URL), `iat`, `exp` (`iat` + 300 s) and
//!   `jti` (the violation id).

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{header, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portcullis_proxy::log_rate::LogRate;
use portcullis_saml::SigningKey;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::{mpsc, watch, Semaphore};

use super::Violation;
use crate::api_token::hex;
use crate::policy::{parse_duration, DurationError};
use crate::signed_token::TokenSigner;

/// Violations waiting for the webhook. A burst beyond this (a receiver
/// down while many sessions move) is dropped rather than held in memory
/// without bound.
pub const QUEUE_CAPACITY: usize = 1024;
/// Deliveries under way at once: enough that one slow violation does not
/// hold up the rest, few enough not to flood a struggling receiver.
const IN_FLIGHT: usize = 8;
/// Attempts per violation before giving up, as Universal Logout does.
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Below a second a TLS handshake to a distant receiver can fail for no
/// fault of its own; above a minute a dead receiver ties up the queue.
const MIN_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// An HMAC key shorter than the hash's output is weaker than SHA-256.
pub const MIN_SECRET_BYTES: usize = 32;
/// The token is signed once, so it must outlive its retries: the last
/// attempt starts at most four timeouts and 3 s of backoff after signing
/// (243 s at the 60 s maximum). Not much longer, so a captured token is
/// soon worthless.
const TOKEN_LIFETIME: u64 = 300;

/// `X-Portcullis-Signature` of HMAC mode.
pub static SIGNATURE: HeaderName = HeaderName::from_static("x-portcullis-signature");
pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// `[post_auth.workflow]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkflow {
    pub url: String,
    /// HMAC key file, relative to the policy file. Absent: sign with the
    /// IdP's signing key instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<String>,
    /// Per attempt, e.g. "5s".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// PEM bundle to trust instead of the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// Why `[post_auth.workflow]` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("url {url:?} is not a valid URL: {source}")]
    Url {
        url: String,
        #[source]
        source: http::uri::InvalidUri,
    },
    #[error(
        "url {url:?} must be https (http only to a loopback host such as 127.0.0.1 or localhost)"
    )]
    Insecure { url: String },
    #[error("secret_file {}: {source}", path.display())]
    SecretUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secret_file {} holds {len} bytes; at least {MIN_SECRET_BYTES} are needed", path.display())]
    SecretTooShort { path: PathBuf, len: usize },
    #[error("timeout {value:?}: {source}")]
    Timeout {
        value: String,
        #[source]
        source: DurationError,
    },
    #[error("timeout {value:?} must be between 1s and 60s")]
    TimeoutOutOfRange { value: String },
    #[error("no secret_file, and the IdP has no signing key to sign the webhook with")]
    NoSigningKey,
    #[error("the IdP signing key cannot sign tokens: {0}")]
    SigningKey(#[from] portcullis_saml::Error),
    #[error("webhook TLS client: {0}")]
    Client(#[source] portcullis_proxy::Error),
}

/// What the webhook's deliveries have come to so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkflowStats {
    /// Accepted by [`Workflow::deliver`] and not yet finished.
    pub pending: u64,
    /// Answered 2xx.
    pub delivered: u64,
    /// Answered with a 4xx other than 429: not retried.
    pub refused: u64,
    /// Still failing after every attempt.
    pub gave_up: u64,
    /// Never queued: the queue was full, or there was no runtime.
    pub dropped: u64,
}

/// A compiled `[post_auth.workflow]`. Cheap to clone: clones share one
/// queue.
///
/// Compiling needs no runtime (`portcullis check` compiles policies
/// without one). [`deliver`](Self::deliver) must be called on a tokio
/// runtime — the request path always is: the first violation starts the
/// queue's task on it. When the last clone is dropped (a policy reload),
/// the task delivers what is still queued, then ends.
#[derive(Clone)]
pub struct Workflow {
    handle: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
    queue: OnceLock<mpsc::Sender<Violation>>,
    /// Queue-full warnings: one line per interval however many are dropped.
    full: LogRate,
}

/// What the queue's task and each delivery need.
struct Shared {
    url: Uri,
    /// `url` as configured: the JWS audience, byte for byte.
    audience: String,
    issuer: String,
    signer: Signer,
    timeout: Duration,
    client: WebhookClient,
    retry: Retry,
    stats: watch::Sender<WorkflowStats>,
}

type WebhookClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

enum Signer {
    Hmac(Box<[u8]>),
    Jws(Box<TokenSigner>),
}

#[derive(Debug, Clone, Copy)]
struct Retry {
    attempts: u32,
    first_backoff: Duration,
}

/// A violation ready to send: signed once, sent as is on every attempt.
struct Signed {
    body: Bytes,
    content_type: HeaderValue,
    signature: Option<HeaderValue>,
    idempotency_key: HeaderValue,
}

impl Workflow {
    /// Checks `raw` and builds its client. `base_dir` is the policy file's
    /// directory, against which `secret_file` and `ca_file` resolve;
    /// `signing` is the IdP's SAML signing key, used when there is no
    /// `secret_file`; `issuer` is the IdP's public URL (the JWS `iss`).
    pub fn compile(
        raw: &RawWorkflow,
        base_dir: &Path,
        signing: Option<&SigningKey>,
        issuer: &str,
    ) -> Result<Workflow, WorkflowError> {
        let retry = Retry {
            attempts: ATTEMPTS,
            first_backoff: FIRST_BACKOFF,
        };
        Workflow::build(raw, base_dir, signing, issuer, retry)
    }

    fn build(
        raw: &RawWorkflow,
        base_dir: &Path,
        signing: Option<&SigningKey>,
        issuer: &str,
        retry: Retry,
    ) -> Result<Workflow, WorkflowError> {
        let url = webhook_url(&raw.url)?;
        let timeout = match &raw.timeout {
            None => DEFAULT_TIMEOUT,
            Some(value) => {
                let timeout = parse_duration(value).map_err(|source| WorkflowError::Timeout {
                    value: value.clone(),
                    source,
                })?;
                if !(MIN_TIMEOUT..=MAX_TIMEOUT).contains(&timeout) {
                    return Err(WorkflowError::TimeoutOutOfRange {
                        value: value.clone(),
                    });
                }
                timeout
            }
        };
        let signer = match &raw.secret_file {
            Some(file) => Signer::Hmac(read_secret(&base_dir.join(file))?),
            None => Signer::Jws(Box::new(TokenSigner::new(
                signing.ok_or(WorkflowError::NoSigningKey)?,
            )?)),
        };
        let ca = raw.ca_file.as_ref().map(|file| base_dir.join(file));
        // The connect timeout is the attempt's; the attempt as a whole is
        // bounded again below, handshake and answer included.
        let connector = portcullis_proxy::upstream_connector(
            "post_auth.workflow",
            ca.as_deref(),
            None,
            timeout,
        )
        .map_err(WorkflowError::Client)?;
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let (stats, _) = watch::channel(WorkflowStats::default());
        Ok(Workflow {
            handle: Arc::new(Handle {
                shared: Arc::new(Shared {
                    url,
                    audience: raw.url.clone(),
                    issuer: issuer.to_string(),
                    signer,
                    timeout,
                    client,
                    retry,
                    stats,
                }),
                queue: OnceLock::new(),
                full: LogRate::default(),
            }),
        })
    }

    /// [`compile`](Self::compile) with a shorter first backoff: tests wait
    /// milliseconds, not seconds, between attempts.
    #[cfg(test)]
    pub(crate) fn compile_with_backoff(
        raw: &RawWorkflow,
        base_dir: &Path,
        signing: Option<&SigningKey>,
        issuer: &str,
        first_backoff: Duration,
    ) -> Result<Workflow, WorkflowError> {
        let retry = Retry {
            attempts: ATTEMPTS,
            first_backoff,
        };
        Workflow::build(raw, base_dir, signing, issuer, retry)
    }

    pub fn url(&self) -> &Uri {
        &self.handle.shared.url
    }

    pub fn timeout(&self) -> Duration {
        self.handle.shared.timeout
    }

    /// Whether the webhook is signed with the IdP's key (JWS) rather than
    /// a shared secret (HMAC).
    pub fn signs_with_idp_key(&self) -> bool {
        matches!(self.handle.shared.signer, Signer::Jws(_))
    }

    /// Hands `violation` to the webhook in the background; returns at once.
    pub fn deliver(&self, violation: Violation) {
        let shared = &self.handle.shared;
        let Some(queue) = self.queue() else {
            shared.stats.send_modify(|s| s.dropped += 1);
            tracing::error!(
                violation.id = %violation.id,
                user = %violation.user.login,
                outcome = "dropped",
                "workflow violation dropped: delivery needs a tokio runtime"
            );
            return;
        };
        shared.stats.send_modify(|s| s.pending += 1);
        let Err(error) = queue.try_send(violation) else {
            return;
        };
        shared.stats.send_modify(|s| {
            s.pending -= 1;
            s.dropped += 1;
        });
        match error {
            mpsc::error::TrySendError::Full(violation) => {
                if let Some(left_out) = self.handle.full.note() {
                    tracing::warn!(
                        violation.id = %violation.id,
                        user = %violation.user.login,
                        outcome = "dropped",
                        capacity = QUEUE_CAPACITY,
                        left_out,
                        "workflow queue full; violation dropped"
                    );
                }
            }
            // The runtime that ran the queue's task has shut down.
            mpsc::error::TrySendError::Closed(violation) => tracing::error!(
                violation.id = %violation.id,
                user = %violation.user.login,
                outcome = "dropped",
                "workflow queue closed; violation dropped"
            ),
        }
    }

    /// The deliveries' counts so far.
    pub fn stats(&self) -> WorkflowStats {
        *self.handle.shared.stats.borrow()
    }

    /// Waits until every violation handed to [`deliver`](Self::deliver)
    /// has been delivered, refused or given up on.
    pub async fn flush(&self) {
        let mut stats = self.handle.shared.stats.subscribe();
        // The sender lives in `shared`, which `self` holds: this cannot
        // fail while we wait.
        let _ = stats.wait_for(|s| s.pending == 0).await;
    }

    /// The queue, its task started on the caller's runtime the first time.
    fn queue(&self) -> Option<&mpsc::Sender<Violation>> {
        if let Some(queue) = self.handle.queue.get() {
            return Some(queue);
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        Some(self.handle.queue.get_or_init(|| {
            let (queue, violations) = mpsc::channel(QUEUE_CAPACITY);
            runtime.spawn(drain(Arc::clone(&self.handle.shared), violations));
            queue
        }))
    }
}

impl fmt::Debug for Workflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.handle.shared;
        f.debug_struct("Workflow")
            .field("url", &shared.audience)
            .field(
                "signing",
                &match shared.signer {
                    Signer::Hmac(_) => "hmac",
                    Signer::Jws(_) => "jws",
                },
            )
            .field("timeout", &shared.timeout)
            .finish_non_exhaustive()
    }
}

/// Two workflows are equal when they are configured alike (what a reload
/// compares), whatever their queues hold.
impl PartialEq for Workflow {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&self.handle.shared, &other.handle.shared);
        let same_signer = match (&a.signer, &b.signer) {
            (Signer::Hmac(x), Signer::Hmac(y)) => x == y,
            (Signer::Jws(x), Signer::Jws(y)) => x.jwks() == y.jwks(),
            _ => false,
        };
        a.audience == b.audience && a.timeout == b.timeout && same_signer
    }
}

impl Eq for Workflow {}

fn webhook_url(text: &str) -> Result<Uri, WorkflowError> {
    let url: Uri = text.parse().map_err(|source| WorkflowError::Url {
        url: text.to_string(),
        source,
    })?;
    let insecure = || WorkflowError::Insecure {
        url: text.to_string(),
    };
    let host = url.host().ok_or_else(insecure)?;
    match url.scheme_str() {
        Some("https") => Ok(url),
        // A sidecar or a test receiver on the same host: nothing crosses a
        // network that TLS would protect.
        Some("http") if is_loopback(host) => Ok(url),
        _ => Err(insecure()),
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn read_secret(path: &Path) -> Result<Box<[u8]>, WorkflowError> {
    let bytes = std::fs::read(path).map_err(|source| WorkflowError::SecretUnreadable {
        path: path.to_path_buf(),
        source,
    })?;
    // Editors and `echo` add a newline the receiver's copy may not have.
    let secret = bytes.trim_ascii();
    if secret.len() < MIN_SECRET_BYTES {
        return Err(WorkflowError::SecretTooShort {
            path: path.to_path_buf(),
            len: secret.len(),
        });
    }
    Ok(secret.into())
}

/// The queue's task: one delivery task per violation, a few at a time.
async fn drain(shared: Arc<Shared>, mut violations: mpsc::Receiver<Violation>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(violation) = violations.recv().await {
        // Never closed, so this only waits for a slot.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let outcome = shared.deliver(&violation).await;
            shared.stats.send_modify(|s| {
                s.pending -= 1;
                match outcome {
                    Outcome::Delivered => s.delivered += 1,
                    Outcome::Refused => s.refused += 1,
                    Outcome::GaveUp => s.gave_up += 1,
                }
            });
            drop(slot);
        });
    }
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Delivered,
    Refused,
    GaveUp,
}

/// One attempt's result.
enum Attempt {
    Answered(u16),
    Failed(String),
    TimedOut,
}

impl Shared {
    async fn deliver(&self, violation: &Violation) -> Outcome {
        let id = violation.id.as_str();
        let user = violation.user.login.as_str();
        let signed = match self.sign(violation) {
            Ok(signed) => signed,
            Err(error) => {
                tracing::error!(
                    violation.id = id,
                    user,
                    attempts = 0,
                    outcome = "gave_up",
                    error = %error,
                    "workflow violation not signed"
                );
                return Outcome::GaveUp;
            }
        };
        let mut backoff = self.retry.first_backoff;
        for attempt in 1..=self.retry.attempts {
            let result = self.attempt(&signed).await;
            match result {
                Attempt::Answered(status @ 200..=299) => {
                    tracing::info!(
                        violation.id = id,
                        user,
                        attempts = attempt,
                        status,
                        outcome = "delivered",
                        "workflow violation delivered"
                    );
                    return Outcome::Delivered;
                }
                Attempt::Answered(status) if status != 429 && status < 500 => {
                    // The receiver rejects this violation itself: the same
                    // body would be rejected again.
                    tracing::warn!(
                        violation.id = id,
                        user,
                        attempts = attempt,
                        status,
                        outcome = "refused",
                        "workflow violation refused by the receiver"
                    );
                    return Outcome::Refused;
                }
                _ if attempt == self.retry.attempts => {
                    tracing::error!(
                        violation.id = id,
                        user,
                        attempts = attempt,
                        status = status_of(&result),
                        outcome = "gave_up",
                        error = %result,
                        "workflow violation not delivered; giving up"
                    );
                    return Outcome::GaveUp;
                }
                _ => {
                    tracing::warn!(
                        violation.id = id,
                        user,
                        attempts = attempt,
                        status = status_of(&result),
                        outcome = "retrying",
                        error = %result,
                        retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                        "workflow violation not delivered; retrying"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
        }
        // Only reached with zero attempts configured.
        Outcome::GaveUp
    }

    fn sign(&self, violation: &Violation) -> Result<Signed, SignError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let idempotency_key = HeaderValue::from_str(&violation.id)?;
        match &self.signer {
            Signer::Hmac(secret) => {
                let body = serde_json::to_vec(violation)?;
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
                    .map_err(|_| SignError::HmacKey)?;
                mac.update(now.to_string().as_bytes());
                mac.update(b".");
                mac.update(&body);
                let signature = format!("t={now},v1={}", hex(&mac.finalize().into_bytes()));
                Ok(Signed {
                    body: body.into(),
                    content_type: HeaderValue::from_static("application/json"),
                    signature: Some(HeaderValue::from_str(&signature)?),
                    idempotency_key,
                })
            }
            Signer::Jws(signer) => {
                let mut claims = match serde_json::to_value(violation)? {
                    serde_json::Value::Object(fields) => fields,
                    _ => return Err(SignError::NotAnObject),
                };
                claims.insert("iss".into(), self.issuer.clone().into());
                claims.insert("aud".into(), self.audience.clone().into());
                claims.insert("iat".into(), now.into());
                claims.insert("exp".into(), (now + TOKEN_LIFETIME).into());
                claims.insert("jti".into(), violation.id.clone().into());
                Ok(Signed {
                    body: signer.sign(&claims)?.into(),
                    content_type: HeaderValue::from_static("application/jwt"),
                    signature: None,
                    idempotency_key,
                })
            }
        }
    }

    async fn attempt(&self, signed: &Signed) -> Attempt {
        let mut request = Request::new(Full::new(signed.body.clone()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.url.clone();
        let headers = request.headers_mut();
        headers.insert(header::CONTENT_TYPE, signed.content_type.clone());
        headers.insert(IDEMPOTENCY_KEY.clone(), signed.idempotency_key.clone());
        if let Some(signature) = &signed.signature {
            headers.insert(SIGNATURE.clone(), signature.clone());
        }
        // The answer's body is not read: the status is all a webhook says.
        match tokio::time::timeout(self.timeout, self.client.request(request)).await {
            Ok(Ok(response)) => Attempt::Answered(response.status().as_u16()),
            Ok(Err(error)) => Attempt::Failed(error_chain(&error)),
            Err(_) => Attempt::TimedOut,
        }
    }
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attempt::Answered(status) => write!(f, "answered {status}"),
            Attempt::Failed(error) => f.write_str(error),
            Attempt::TimedOut => f.write_str("no answer within the timeout"),
        }
    }
}

fn status_of(attempt: &Attempt) -> Option<u16> {
    match attempt {
        Attempt::Answered(status) => Some(*status),
        _ => None,
    }
}

/// hyper's client error says only "client error (Connect)"; the cause is
/// in its sources.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Why a violation could not be signed (a bug, not the receiver's fault).
#[derive(Debug, thiserror::Error)]
enum SignError {
    #[error("violation does not serialise: {0}")]
    Json(#[from] serde_json::Error),
    #[error("violation is not a JSON object")]
    NotAnObject,
    #[error("violation id is not a header value")]
    Header(#[from] http::header::InvalidHeaderValue),
    #[error("HMAC key rejected")]
    HmacKey,
    #[error("JWS not signed: {0}")]
    Jws(#[from] jsonwebtoken::errors::Error),
}

#[cfg(test)]
#[path = "workflow_tests.rs"]
mod tests;
