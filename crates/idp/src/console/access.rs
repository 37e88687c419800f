//! Who may enter the console, and the admin console session.
//!
//! Entry: a live IdP session (else sign-in and back, through `fromURI`),
//! MFA completed, the user in `admin_groups` (else 403) with TOTP enrolled
//! (else a page saying so). A new admin session also needs a second
//! factor verified in the last [`ENTRY_FRESHNESS`]; an older one is
//! verified again (`/login/mfa?stepup=1`), so an admin session that timed
//! out is never silently renewed from a long-lived IdP session.
//!
//! The admin session is its own record in its own store: a random secret
//! in the `pc_idp_admin` cookie (`Path=…/admin`, `Secure; HttpOnly;
//! SameSite=Strict`), kept only as its SHA-256, with `[idp.admin]`'s
//! `max_lifetime` and `max_idle`. It is tied to the IdP session it was
//! made from (a request whose IdP session is gone or another ends it) and
//! bound to the client attributes `[idp.admin] bind` names: a change
//! revokes it and logs `security.session.detect_client_roaming`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use portcullis_context::{Attribute, SessionContext};
use portcullis_session::{
    EndReason, Lifetime, MemoryStore, Session, SessionBody, SessionError, SessionSecret,
    SessionStore,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::directory::User;
use crate::session::{SessionRecord, SessionStatus};
use crate::web::events::{self, Origin};
use crate::web::{cookie, respond, user_agent_bytes, Caller, Idp};

/// The admin session cookie; distinct from the IdP session's.
pub const ADMIN_COOKIE: &str = "pc_idp_admin";

/// A new admin session needs a second factor this recent.
const ENTRY_FRESHNESS: Duration = Duration::from_secs(5 * 60);

/// What an admin session records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminSession {
    pub user_id: String,
    pub login: String,
    /// Public id of the IdP session it was made from.
    pub idp_session: String,
    /// The client when the session started: what `bind` compares with.
    pub context: SessionContext,
    /// The last time the administrator gave password + TOTP: the entry,
    /// then each protected action's re-authentication.
    #[serde(with = "time::serde::rfc3339")]
    pub verified_at: OffsetDateTime,
}

impl SessionBody for AdminSession {
    fn index_keys(&self) -> Vec<String> {
        vec![format!("user:{}", self.user_id)]
    }
}

/// Where admin sessions live: this process's memory, or a shared
/// cluster's Redis, so the console works through any node.
pub type AdminSessions = Arc<dyn SessionStore<AdminSession>>;

pub fn memory_store() -> AdminSessions {
    Arc::new(MemoryStore::<AdminSession>::new())
}

/// An administrator inside the console, for one request.
pub(crate) struct Admin {
    pub user: Arc<User>,
    pub secret: SessionSecret,
    pub session: Session<AdminSession>,
    /// The browser's CSRF cookie value, and whether it must be set.
    pub csrf_cookie: (String, bool),
}

impl Idp {
    pub(crate) fn is_admin(&self, user: &User) -> bool {
        user.groups()
            .iter()
            .any(|g| self.settings.admin.groups.contains(g))
    }

    /// The console path of `relative` (`""` for the dashboard).
    pub(crate) fn console_path(&self, relative: &str) -> String {
        self.path(&format!("/admin{relative}"))
    }

    fn admin_cookie(&self, secret: &SessionSecret) -> String {
        format!(
            "{ADMIN_COOKIE}={}; Path={}; Secure; HttpOnly; SameSite=Strict",
            secret.expose(),
            self.console_path("")
        )
    }

    pub(crate) fn clear_admin_cookie(&self) -> String {
        format!(
            "{ADMIN_COOKIE}=; Path={}; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
            self.console_path("")
        )
    }

    /// The administrator behind the request, or the response that sends
    /// the browser elsewhere (sign-in, MFA) or refuses it.
    pub(crate) async fn admin_access(
        &self,
        request: &Request<Bytes>,
        caller: &Caller,
    ) -> Result<Admin, Response<Bytes>> {
        let now = OffsetDateTime::now_utc();
        let here = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| self.console_path(""));
        // A form posted without a session comes back to the page, not to
        // the action.
        let back = if request.method() == http::Method::GET {
            here
        } else {
            self.console_path("")
        };
        let Some((_, record)) = self.current_session_checked(request, caller, now).await? else {
            return Err(self.without_admin_cookie(self.redirect_with_from("/login", &back, false)));
        };
        if record.body.status == SessionStatus::MfaRequired {
            return Err(self.redirect_with_from("/login/mfa", &back, false));
        }
        let directory = self.directory();
        let Some(user) = directory.shared(&record.body.user_id).cloned() else {
            return Err(self.without_admin_cookie(self.redirect_with_from("/login", &back, false)));
        };
        let origin = self.origin(request, caller);
        if !self.is_admin(&user) {
            self.emit(events::admin_access(
                &user,
                None,
                Some("NOT_AN_ADMINISTRATOR"),
                &origin,
            ));
            return Err(respond::page(
                StatusCode::FORBIDDEN,
                "Not allowed",
                "<h1>Not allowed</h1><p>The admin console is for administrators. Your account is \
                 not in an administrator group.</p>",
            ));
        }
        if !user.has_totp() {
            self.emit(events::admin_access(
                &user,
                None,
                Some("MFA_NOT_ENROLLED"),
                &origin,
            ));
            return Err(respond::page(
                StatusCode::FORBIDDEN,
                "Second factor required",
                "<h1>Second factor required</h1><p id=\"mfa-required\">The admin console \
                 requires a password and an authenticator code, but no authenticator is \
                 enrolled for your account. Ask another administrator to enroll one.</p>",
            ));
        }
        let current = self.post_auth.capture(caller.ip, user_agent_bytes(request));
        let csrf_cookie = Self::csrf_cookie(request);
        match self.existing_admin_session(request, &record, now).await? {
            Some((secret, session)) => {
                let changed: Vec<Attribute> = self
                    .settings
                    .admin
                    .bind
                    .iter()
                    .copied()
                    .filter(|a| a.show(&session.body.context) != a.show(&current))
                    .collect();
                if !changed.is_empty() {
                    return Err(self
                        .admin_roamed(&user, &secret, &session, &changed, &current, &origin)
                        .await);
                }
                Ok(Admin {
                    user,
                    secret,
                    session,
                    csrf_cookie,
                })
            }
            None => {
                // After a roaming revocation the factor must be newer than
                // it: the IdP session may be the stolen part.
                let roamed = self.admin_roamed.since(record.id.as_str(), now);
                let fresh = record.body.last_factor_verification.is_some_and(|at| {
                    at <= now && now - at <= ENTRY_FRESHNESS && roamed.is_none_or(|r| at > r)
                });
                if !fresh {
                    return Err(self.redirect_with_from("/login/mfa", &back, true));
                }
                let body = AdminSession {
                    user_id: user.id().to_string(),
                    login: user.login().to_string(),
                    idp_session: record.id.as_str().to_string(),
                    context: current,
                    verified_at: record.body.last_factor_verification.unwrap_or(now),
                };
                let lifetime = Lifetime::new(
                    self.settings.admin.max_idle,
                    Some(self.settings.admin.max_lifetime),
                );
                let (secret, session) = self
                    .admin_sessions
                    .create(body, lifetime, now)
                    .await
                    .map_err(|e| respond::store_unavailable(&e, "creating an admin session"))?;
                self.emit(events::admin_access(
                    &user,
                    Some(session.id.as_str()),
                    None,
                    &origin,
                ));
                tracing::info!(user = user.id(), "admin console session started");
                // Post-redirect-get: the page is shown with the cookie set.
                let mut response = respond::redirect(&back);
                respond::append(
                    &mut response,
                    header::SET_COOKIE,
                    &self.admin_cookie(&secret),
                );
                Err(response)
            }
        }
    }

    /// The live admin session of the request's cookie if it belongs to
    /// `idp_session`; one made from another IdP session is ended.
    async fn existing_admin_session(
        &self,
        request: &Request<Bytes>,
        idp_session: &SessionRecord,
        now: OffsetDateTime,
    ) -> Result<Option<(SessionSecret, Session<AdminSession>)>, Response<Bytes>> {
        let Some(secret) = cookie(request, ADMIN_COOKIE).and_then(|v| SessionSecret::parse(v).ok())
        else {
            return Ok(None);
        };
        let session = match self.admin_sessions.touch(&secret.hash(), now).await {
            Ok(session) => session,
            Err(SessionError::Store(e)) => {
                return Err(respond::store_unavailable(&e, "reading an admin session"))
            }
            Err(_) => return Ok(None),
        };
        if session.body.idp_session != idp_session.id.as_str()
            || session.body.user_id != idp_session.body.user_id
        {
            self.admin_sessions
                .end(&secret.hash(), EndReason::Replaced)
                .await
                .map_err(|e| respond::store_unavailable(&e, "ending an admin session"))?;
            return Ok(None);
        }
        Ok(Some((secret, session)))
    }

    /// A bound attribute changed: the admin session is revoked, the event
    /// logged, the browser told (and its admin cookie cleared).
    async fn admin_roamed(
        &self,
        user: &User,
        secret: &SessionSecret,
        session: &Session<AdminSession>,
        changed: &[Attribute],
        current: &SessionContext,
        origin: &Origin<'_>,
    ) -> Response<Bytes> {
        if let Err(e) = self
            .admin_sessions
            .end(&secret.hash(), EndReason::PostAuthViolation)
            .await
        {
            return respond::store_unavailable(&e, "ending an admin session");
        }
        self.admin_roamed
            .record(&session.body.idp_session, OffsetDateTime::now_utc());
        tracing::warn!(
            user = user.id(),
            attributes = ?changed,
            "admin console session used from another network; revoked"
        );
        self.emit(events::admin_client_roaming(
            user,
            session.id.as_str(),
            changed,
            &session.body.context,
            current,
            origin,
        ));
        self.without_admin_cookie(respond::page(
            StatusCode::UNAUTHORIZED,
            "Signed out of the console",
            "<h1>Signed out of the console</h1><p id=\"admin-roaming\">Your admin console \
             session was used from a different network than the one it started on, so it was \
             ended to protect it. Open the console again to sign in.</p>",
        ))
    }

    fn without_admin_cookie(&self, mut response: Response<Bytes>) -> Response<Bytes> {
        respond::append(
            &mut response,
            header::SET_COOKIE,
            &self.clear_admin_cookie(),
        );
        response
    }

    /// A redirect to an IdP page (`/login`, `/login/mfa`) that comes back
    /// to `from`.
    fn redirect_with_from(&self, page: &str, from: &str, step_up: bool) -> Response<Bytes> {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("fromURI", from);
        if step_up {
            query.append_pair(crate::web::STEP_UP_PARAM, "1");
        }
        respond::redirect(&format!("{}?{}", self.path(page), query.finish()))
    }

    /// Ends every admin session of a user (suspended, deactivated, their
    /// sessions revoked).
    pub(crate) async fn end_admin_sessions(&self, user_id: &str) {
        let key = format!("user:{user_id}");
        if let Err(e) = self
            .admin_sessions
            .end_indexed(&key, EndReason::UserRevoked, Box::new(|_| true))
            .await
        {
            tracing::error!(error = %e, "ending a user's admin sessions failed");
        }
    }
}

/// IdP sessions whose admin session was revoked for roaming, and when: a
/// new admin session from them needs a second factor verified after that.
/// Entries older than [`ENTRY_FRESHNESS`] no longer matter (any factor
/// that old is refused anyway) and are dropped.
#[derive(Default)]
pub(crate) struct Roamed(std::sync::Mutex<std::collections::HashMap<String, OffsetDateTime>>);

/// Bounds the map whatever happens: roaming revocations are rare, and a
/// flood of them is already an incident in the System Log.
const MAX_ROAMED: usize = 10_000;

impl Roamed {
    fn record(&self, idp_session: &str, at: OffsetDateTime) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, when| at - *when <= ENTRY_FRESHNESS);
        if map.len() < MAX_ROAMED {
            map.insert(idp_session.to_string(), at);
        }
    }

    fn since(&self, idp_session: &str, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(idp_session)
            .copied()
            .filter(|when| now - *when <= ENTRY_FRESHNESS)
    }
}
