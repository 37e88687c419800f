//! The IdP's HTTP face: sign-in pages, the Sessions API, the Users API,
//! `/api/v1/authn`, the session-cookie redirect and the System Log API.
//! Transport-agnostic: it takes a buffered `http::Request<Bytes>` and
//! returns a response; the binary mounts it on the proxy's
//! `[idp] public_url`.

pub(crate) mod api;
mod context_check;
pub(crate) mod csrf;
pub(crate) mod events;
pub(crate) mod login;
pub(crate) mod respond;
mod service_providers;
mod slo;
mod slo_pending;
mod slo_soap;
mod sso;
mod users_api;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use time::OffsetDateTime;

use portcullis_proxy::limit::available_cores;
use portcullis_proxy::{ClientLimit, WorkBounds, WorkLimit};
use portcullis_session::{
    LockoutPolicy, LockoutStore, MemoryLockouts, MemoryOneTime, MemoryTickets, OneTimeStore,
    TicketStore,
};

use crate::api_token::ApiTokens;
use crate::directory::{Directory, HashMemory, LiveDirectory, User};
use crate::policy::PolicySet;
use crate::session::{IdpSessions, PendingSignIn};
use crate::syslog::{Event, SystemLog};
use crate::universal_logout::UniversalLogout;

pub(crate) use login::STEP_UP_PARAM;
pub use respond::ApiError;

#[cfg(test)]
mod tests;
pub use service_providers::ServiceProviders;
pub use sso::{AttributeRule, NameIdSecret, SamlSettings, ServiceProvider};

/// Name of the IdP session cookie; distinct from every app's cookie.
pub const SESSION_COOKIE: &str = "pc_idp_sid";

/// Settings the IdP's web layer needs beyond its stores.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// `https://host[:port]` of the IdP, no trailing slash.
    pub origin: String,
    /// Path prefix of the IdP (`/` or `/idp`), no trailing slash except `/`:
    /// the `Path` of its cookies.
    pub path_prefix: String,
    /// What its paths are built on: `""` for `/`, else the prefix.
    pub base_path: String,
    pub sign_in_per_minute: u32,
    pub api_per_minute: u32,
    pub session_token_ttl: Duration,
    /// Absolute URL prefixes `sessionCookieRedirect` may redirect to, besides
    /// the IdP's own origin.
    pub redirect_allow: Vec<String>,
    pub lockout: LockoutPolicy,
    /// The admin console's access and sessions.
    pub admin: crate::console::AdminSettings,
}

/// Where the IdP keeps what must survive a request: sessions, one-time
/// uses (TOTP steps) and session tokens, and the key of its sign-in
/// forms' CSRF fields. Memory and a per-process key by default; a cluster
/// in shared mode hands in backends every node sees and a key every node
/// holds, so a form served by one node can be posted to another.
#[derive(Clone)]
pub struct IdpStores {
    pub sessions: IdpSessions,
    pub one_time: Arc<dyn OneTimeStore>,
    pub tickets: Arc<dyn TicketStore<PendingSignIn>>,
    /// Failed sign-in counts and locks.
    pub lockouts: Arc<dyn LockoutStore>,
    /// Admin console sessions.
    pub admin_sessions: crate::console::AdminSessions,
    pub csrf_key: Option<[u8; 32]>,
}

impl IdpStores {
    /// Everything in this process's memory.
    pub fn memory() -> Self {
        Self {
            sessions: IdpSessions::memory(),
            one_time: Arc::new(MemoryOneTime::default()),
            tickets: Arc::new(MemoryTickets::<PendingSignIn>::default()),
            lockouts: Arc::new(MemoryLockouts::default()),
            admin_sessions: crate::console::memory_store(),
            csrf_key: None,
        }
    }
}

/// The embedded IdP with all its state. Shared by every worker thread.
pub struct Idp {
    pub(crate) settings: WebSettings,
    /// Swapped whole by lifecycle edits and reloads; a request takes one
    /// version ([`Idp::directory`]) and keeps it.
    pub(crate) directory: Arc<LiveDirectory>,
    /// Swapped whole on SIGHUP.
    pub(crate) policies: ArcSwap<PolicySet>,
    pub(crate) sessions: IdpSessions,
    /// One-time session tokens from `/api/v1/authn`.
    pub(crate) tokens: Arc<dyn TicketStore<PendingSignIn>>,
    pub(crate) api_tokens: ApiTokens,
    pub(crate) log: Arc<SystemLog>,
    pub(crate) lockout: Arc<dyn LockoutStore>,
    /// TOTP replay guard: the last accepted step per user.
    pub(crate) one_time: Arc<dyn OneTimeStore>,
    pub(crate) csrf: csrf::Csrf,
    pub(crate) sign_in_limit: ClientLimit,
    pub(crate) api_limit: ClientLimit,
    /// Password checks (`/login`, `/api/v1/authn`), off the worker threads
    /// and bounded for the whole process.
    pub(crate) password_work: WorkLimit,
    /// argon2's working memory, one per running check, reused.
    pub(crate) password_memory: HashMemory,
    /// Enveloped-signature checks of POST-binding AuthnRequests and logout
    /// messages (libxml2 and xmlsec), off the worker threads and bounded.
    pub(crate) saml_work: WorkLimit,
    pub(crate) saml: Option<sso::Saml>,
    /// Single Logout walks in progress.
    pub(crate) logouts: slo::Logouts,
    pub(crate) pending_logouts: slo_pending::PendingLogouts,
    /// Set once at start-up, after the gateway it dispatches to exists.
    pub(crate) universal_logout: std::sync::OnceLock<Arc<UniversalLogout>>,
    /// Post-auth session evaluation: the policy, how contexts are told, the
    /// violations report.
    pub(crate) post_auth: crate::post_auth::PostAuth,
    /// Admin console sessions (this process's memory).
    pub(crate) admin_sessions: crate::console::AdminSessions,
    /// IdP sessions whose admin session roamed (a new factor is needed).
    pub(crate) admin_roamed: crate::console::Roamed,
    /// Set once at start-up by the binary: the gateway as the console
    /// shows it.
    pub(crate) gateway_view: std::sync::OnceLock<Arc<dyn crate::console::GatewayView>>,
}

/// Password checks at once: one per core, at most 4. Each holds argon2's
/// working memory (19 MiB with the default parameters, kept for reuse),
/// so the cap bounds it to ~76 MiB whatever the concurrency of a password
/// spray (64 unbounded checks took 1 GB), while 4 checks of 30–80 ms are
/// still 50–130 sign-ins a second. 8 waiting per slot is under a second of
/// backlog; past it, or after 2 s of waiting, a sign-in is answered 503
/// (429 for the API) rather than queued.
fn password_work_bounds() -> WorkBounds {
    let slots = available_cores().clamp(1, 4);
    WorkBounds {
        slots,
        queue: slots * 8,
        max_wait: Duration::from_secs(2),
    }
}

/// Like the gateway's ACS pool: one slot per core, 16 waiting per slot,
/// a second's wait. The pre-scan holds these messages to
/// `XmlLimits::MESSAGE`, so one costs at most ~2 ms (the `slo` bench), but
/// a flood of them is still answered 503 rather than run on the workers.
fn saml_work_bounds() -> WorkBounds {
    let slots = available_cores();
    WorkBounds {
        slots,
        queue: slots * 16,
        max_wait: Duration::from_secs(1),
    }
}

/// Facts about the caller that do not come from HTTP itself.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The client, resolved through `[server] trusted_proxies` by the
    /// proxy: the key of the rate limits, the session's sign-in context and
    /// the System Log's `client.ipAddress`.
    pub ip: IpAddr,
    pub request_id: String,
}

impl Idp {
    /// An IdP keeping its state in memory ([`IdpStores::memory`]).
    pub fn new(
        settings: WebSettings,
        directory: Directory,
        policies: PolicySet,
        api_tokens: ApiTokens,
        log: Arc<SystemLog>,
    ) -> Idp {
        Self::with_stores(
            settings,
            directory,
            policies,
            api_tokens,
            log,
            IdpStores::memory(),
        )
    }

    /// An IdP keeping its state in `stores`.
    pub fn with_stores(
        settings: WebSettings,
        directory: Directory,
        policies: PolicySet,
        api_tokens: ApiTokens,
        log: Arc<SystemLog>,
        stores: IdpStores,
    ) -> Idp {
        let idp = Idp {
            lockout: stores.lockouts,
            sign_in_limit: ClientLimit::per_minute(settings.sign_in_per_minute),
            api_limit: ClientLimit::per_minute(settings.api_per_minute),
            password_work: WorkLimit::new("password", password_work_bounds()),
            password_memory: HashMemory::default(),
            saml_work: WorkLimit::new("idp_saml_verify", saml_work_bounds()),
            settings,
            directory: Arc::new(LiveDirectory::new(directory)),
            policies: ArcSwap::from_pointee(policies),
            sessions: stores.sessions,
            tokens: stores.tickets,
            api_tokens,
            log,
            one_time: stores.one_time,
            csrf: stores
                .csrf_key
                .map_or_else(csrf::Csrf::new, csrf::Csrf::with_key),
            saml: None,
            logouts: slo::Logouts::default(),
            pending_logouts: slo_pending::PendingLogouts::default(),
            universal_logout: std::sync::OnceLock::new(),
            post_auth: crate::post_auth::PostAuth::default(),
            admin_sessions: stores.admin_sessions,
            admin_roamed: crate::console::Roamed::default(),
            gateway_view: std::sync::OnceLock::new(),
        };
        idp.restore_lockouts(OffsetDateTime::now_utc());
        idp
    }

    /// Enables Universal Logout dispatch (and `/oauth2/v1/keys`). Only the
    /// first call takes effect.
    pub fn set_universal_logout(&self, universal_logout: Arc<UniversalLogout>) {
        let _ = self.universal_logout.set(universal_logout);
    }

    /// Signs `user_id`'s user out of every logout-enabled app, in the
    /// background; `false` when the user is unknown.
    pub(crate) fn dispatch_universal_logout(&self, user_id: &str, why: &'static str) -> bool {
        let directory = self.directory();
        let Some(user) = directory.by_id(user_id) else {
            return false;
        };
        self.universal_logout_for(user, why);
        true
    }

    /// [`dispatch_universal_logout`](Self::dispatch_universal_logout) for a
    /// user already in hand, also one no longer in the directory.
    pub(crate) fn universal_logout_for(&self, user: &User, why: &'static str) {
        if let Some(ul) = self.universal_logout.get() {
            ul.dispatch(user.email(), why);
        }
    }

    /// The SAML signing key, which also signs Universal Logout tokens and
    /// workflow webhooks.
    pub fn saml_signing_key(&self) -> Option<&portcullis_saml::SigningKey> {
        self.saml.as_ref().map(|saml| &saml.settings.signing_key)
    }

    /// The directory in force. One reference count: keep it for the whole
    /// request rather than asking again per lookup.
    pub fn directory(&self) -> Arc<Directory> {
        self.directory.current()
    }

    /// The sign-on and app policies in force.
    pub fn policies(&self) -> Arc<PolicySet> {
        self.policies.load_full()
    }

    /// Takes effect for the next evaluation (SIGHUP).
    pub fn replace_policies(&self, policies: PolicySet) {
        self.policies.store(Arc::new(policies));
    }

    /// The IdP's sessions (their backend is [`IdpSessions::store`]).
    pub fn sessions(&self) -> &IdpSessions {
        &self.sessions
    }

    pub fn system_log(&self) -> &Arc<SystemLog> {
        &self.log
    }

    /// Records an event; a failing log file is reported but never fails the
    /// request (the event still reaches the in-memory ring).
    pub(crate) fn emit(&self, event: Event) {
        if let Err(e) = self.log.emit(event) {
            tracing::error!(error = %e, "System Log write failed");
        }
    }

    /// Periodic upkeep: expire sessions and forget idle rate-limit keys. A
    /// store that cannot be reached is logged and tried again next time.
    pub async fn sweep(&self, now: OffsetDateTime) {
        match self.sessions.sweep(now).await {
            Ok(ended) if !ended.is_empty() => {
                tracing::debug!(count = ended.len(), "swept expired IdP sessions");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "sweeping IdP sessions failed"),
        }
        if let Err(e) = self.admin_sessions.sweep(now).await {
            tracing::error!(error = %e, "sweeping admin console sessions failed");
        }
        self.sign_in_limit.sweep();
        self.api_limit.sweep();
        if let Some(saml) = &self.saml {
            saml.sweep(now);
            self.logouts.sweep(now);
            self.pending_logouts.sweep(now);
        }
    }

    /// Turns every ended session (API revocation, expiry, sign-out) into a
    /// `user.session.end` event. Runs until the store is dropped.
    pub fn spawn_session_end_logger(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let mut ended = self.sessions.subscribe();
        let idp = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                match ended.recv().await {
                    Ok(end) => {
                        let Some(idp) = idp.upgrade() else { return };
                        let session = &end.session;
                        let participants = idp
                            .saml
                            .as_ref()
                            .map(|saml| saml.forget_session(session.id.as_str()))
                            .unwrap_or_default();
                        // The SPs that can be told over the back channel
                        // are, whichever way the browser-less end came.
                        if slo_soap::ends_without_browser(end.reason) {
                            let front_channel = idp.back_channel_logout(
                                session.id.as_str(),
                                &session.body.user_id,
                                &session.body.login,
                                end.reason,
                                participants,
                            );
                            if !front_channel.is_empty()
                                && !idp.pending_logouts.remember(
                                    end.hash,
                                    session.id.as_str(),
                                    front_channel,
                                    OffsetDateTime::now_utc(),
                                )
                            {
                                tracing::warn!(
                                    session.id = session.id.as_str(),
                                    outcome = "not_told",
                                    "too many ended sessions wait for their browsers; service providers not told"
                                );
                            }
                        }
                        // Sessions that end without the browser present
                        // (revocation, expiry, suspension) reach the apps
                        // through Universal Logout; a sign-out in the
                        // browser goes through Single Logout instead.
                        if end.reason.needs_universal_logout() {
                            idp.dispatch_universal_logout(
                                &session.body.user_id,
                                end.reason.as_str(),
                            );
                        }
                        idp.emit(events::session_end(
                            &session.body.user_id,
                            &session.body.login,
                            session.id.as_str(),
                            end.reason.system_log_name(),
                        ));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::error!(missed, "System Log missed session-end notifications");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    }

    /// Handles one request addressed to the IdP.
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Bytes>,
        caller: Caller,
    ) -> Response<Bytes> {
        let path = request.uri().path();
        let relative = path
            .strip_prefix(self.settings.base_path.as_str())
            .unwrap_or(path);
        let relative = if relative.is_empty() { "/" } else { relative }.to_string();
        let segments: Vec<&str> = relative.trim_start_matches('/').split('/').collect();
        let method = request.method().clone();
        if method == Method::GET && opens_a_browser_page(&segments) {
            if let Some(walk) = self.front_channel_logout_owed(&request) {
                return walk;
            }
        }
        match (method, segments.as_slice()) {
            (Method::GET, ["login"]) => self.login_form(&request, None, StatusCode::OK),
            (Method::POST, ["login"]) => self.login_submit(&request, &caller).await,
            (Method::GET, ["login", "mfa"]) => self.mfa_form(&request, None, StatusCode::OK).await,
            (Method::POST, ["login", "mfa"]) => self.mfa_submit(&request, &caller).await,
            (Method::GET, ["login", "sessionCookieRedirect"]) => {
                self.session_cookie_redirect(&request, &caller).await
            }
            (Method::GET, [""]) => self.home(&request, &caller).await,
            (_, ["admin", rest @ ..]) => self.console(&request, &caller, rest).await,
            (Method::GET, ["sso", "saml", "metadata"]) => self.saml_metadata(),
            (Method::GET, ["sso", "saml"]) => self.sso_redirect(&request, &caller).await,
            (Method::POST, ["sso", "saml"]) => self.sso_post(&request, &caller).await,
            (Method::GET, ["sso", "saml", "continue"]) => {
                self.sso_continue(&request, &caller).await
            }
            (Method::GET | Method::POST, ["sso", "saml", "logout"]) => {
                self.slo_endpoint(&request, &caller).await
            }
            (Method::GET | Method::POST, ["logout"]) => self.user_logout(&request, &caller).await,
            (Method::GET, ["app", sp, "sso", "saml"]) => {
                self.sso_idp_initiated(&request, &caller, sp).await
            }
            (Method::POST, ["api", "v1", "authn"]) => self.authn(&request, &caller).await,
            (method, ["api", "v1", "sessions", id]) => {
                self.session_api(&request, &caller, method, id, None).await
            }
            (Method::POST, ["api", "v1", "sessions", id, "lifecycle", "refresh"]) => {
                self.session_api(&request, &caller, Method::POST, id, Some("refresh"))
                    .await
            }
            (Method::DELETE, ["api", "v1", "users", user_id, "sessions"]) => {
                self.clear_user_sessions(&request, &caller, user_id).await
            }
            (Method::GET, ["api", "v1", "logs"]) => self.logs(&request, &caller),
            (Method::GET, ["api", "v1", "post-auth", "report"]) => {
                self.post_auth_report(&request, &caller)
            }
            (Method::POST, ["api", "v1", "users", user_id, "universal-logout"]) => {
                self.universal_logout_api(&request, &caller, user_id)
            }
            (Method::GET, ["api", "v1", "users"]) => self.users_list(&request, &caller).await,
            (_, ["api", "v1", "users"]) => respond::method_not_allowed("GET"),
            (Method::GET, ["api", "v1", "users", key]) => {
                self.user_get(&request, &caller, key).await
            }
            (_, ["api", "v1", "users", _]) => respond::method_not_allowed("GET"),
            (Method::POST, ["api", "v1", "users", key, "lifecycle", op]) => {
                self.user_lifecycle_api(&request, &caller, key, op).await
            }
            (_, ["api", "v1", "users", _, "lifecycle", _]) => respond::method_not_allowed("POST"),
            (Method::GET, ["oauth2", "v1", "keys"]) => match self.universal_logout.get() {
                Some(ul) => respond::json_response(StatusCode::OK, ul.jwks()),
                None => respond::api_error(&ApiError::NotFound(relative.clone())),
            },
            (_, ["api", ..]) => respond::api_error(&ApiError::NotFound(relative.clone())),
            _ => respond::message_page(
                StatusCode::NOT_FOUND,
                "Page not found",
                "There is nothing at this address.",
            ),
        }
    }

    /// The `fromURI`/`redirectUrl` target if it is one we may send a browser
    /// to: a path on the IdP itself, or an absolute URL under the IdP origin
    /// or an allow-listed prefix. Anything else is an open redirect.
    pub(crate) fn allowed_redirect(&self, target: &str) -> Option<String> {
        // Browsers drop tabs and newlines from URLs and read `\\` as `/`, so
        // `/\t/evil.example` would become `//evil.example`: refuse them first.
        if target.chars().any(|c| c.is_control() || c == '\\') {
            return None;
        }
        if target.starts_with('/') && !target.starts_with("//") {
            return Some(target.to_string());
        }
        let allowed = std::iter::once(self.settings.origin.as_str())
            .chain(self.settings.redirect_allow.iter().map(String::as_str))
            .any(|prefix| target.starts_with(prefix) && prefix_is_boundary(prefix, target));
        allowed.then(|| target.to_string())
    }

    /// An IdP-relative path (`/login`) as a path on its public origin.
    pub(crate) fn path(&self, relative: &str) -> String {
        format!("{}{relative}", self.settings.base_path)
    }
}

/// A prefix without a trailing `/` must end where a URL component ends, so
/// `https://a.example` does not allow `https://a.example.evil.test`.
fn prefix_is_boundary(prefix: &str, target: &str) -> bool {
    if prefix.ends_with('/') {
        return true;
    }
    matches!(
        target.as_bytes().get(prefix.len()),
        None | Some(b'/') | Some(b'?') | Some(b'#')
    )
}

/// Value of cookie `name` in the request, if present exactly once (the
/// proxy's one rule: a planted duplicate counts as no cookie).
/// The pages a browser opens by itself (not SAML answers, APIs or the
/// console): where a logout walk it is owed can start.
fn opens_a_browser_page(segments: &[&str]) -> bool {
    matches!(
        segments,
        ["login"]
            | ["login", "mfa"]
            | ["login", "sessionCookieRedirect"]
            | [""]
            | ["sso", "saml"]
            | ["sso", "saml", "continue"]
            | ["logout"]
            | ["app", _, "sso", "saml"]
    )
}

pub(crate) fn cookie<'a>(request: &'a Request<Bytes>, name: &str) -> Option<&'a str> {
    portcullis_proxy::cookie::get(request.headers(), name)
}

/// Every decoded query parameter, in order (repeats kept).
pub(crate) fn query_pairs(request: &Request<Bytes>) -> Vec<(String, String)> {
    request
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

pub(crate) fn query_param(request: &Request<Bytes>, name: &str) -> Option<String> {
    let query = request.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The raw header, for the session context (compared byte for byte).
pub(crate) fn user_agent_bytes(request: &Request<Bytes>) -> Option<&[u8]> {
    request
        .headers()
        .get(header::USER_AGENT)
        .map(|v| v.as_bytes())
}

pub(crate) fn user_agent(request: &Request<Bytes>) -> Option<&str> {
    request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
}
