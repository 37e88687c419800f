//! The IdP's sessions over any [`SessionStore`] backend, in the IdP's
//! vocabulary (sign-in, MFA verified, refresh, revoke a user).

use std::sync::Arc;

use portcullis_context::SessionContext;
use portcullis_session::{
    CookieCodec, EndReason, MemoryStore, PlainCookies, SessionEnded, SessionError, SessionId,
    SessionSecret, SessionStore, StoreError,
};
use time::OffsetDateTime;
use tokio::sync::broadcast;

use super::record::{record_mfa, record_password, user_key, IdpSession, NewSession, SessionRecord};

/// `idp.id` reported in session records unless configured otherwise;
/// shaped like an Okta IdP id ("00o" + 17 characters).
pub const DEFAULT_IDP_ID: &str = "00oPortcullisIdP0001";

/// All live sessions of the IdP.
#[derive(Clone)]
pub struct IdpSessions {
    store: Arc<dyn SessionStore<IdpSession>>,
    idp_id: String,
    node: String,
    cookies: Arc<dyn CookieCodec>,
}

impl IdpSessions {
    /// `idp_id` is reported as `idp.id` in every record.
    pub fn new(store: Arc<dyn SessionStore<IdpSession>>, idp_id: impl Into<String>) -> Self {
        Self {
            store,
            idp_id: idp_id.into(),
            node: local_node_name(),
            cookies: Arc::new(PlainCookies),
        }
    }

    /// Writes and checks cookie values with `cookies` (a cluster's MAC'd
    /// values) instead of the bare secret.
    pub fn with_cookies(mut self, cookies: Arc<dyn CookieCodec>) -> Self {
        self.cookies = cookies;
        self
    }

    /// The cookie value for a session's secret.
    pub fn cookie_value(&self, secret: &SessionSecret) -> String {
        self.cookies.encode(secret)
    }

    /// The secret in a presented cookie value; `Malformed` for anything
    /// this IdP did not write.
    pub fn parse_cookie(&self, value: &str) -> Result<SessionSecret, SessionError> {
        self.cookies.decode(value)
    }

    /// An in-memory store reporting [`DEFAULT_IDP_ID`].
    pub fn memory() -> Self {
        Self::new(Arc::new(MemoryStore::<IdpSession>::new()), DEFAULT_IDP_ID)
    }

    /// Stamps sessions started here with `node` (a cluster's node id)
    /// instead of the host name.
    pub fn on_node(mut self, node: impl Into<String>) -> Self {
        self.node = node.into();
        self
    }

    /// The node sessions started here are stamped with.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The backend, for callers that need the generic operations.
    pub fn store(&self) -> &Arc<dyn SessionStore<IdpSession>> {
        &self.store
    }

    /// Receives a [`SessionEnded`] for every session removed from now on,
    /// by any path (sign-out, revoke, expiry found on use, sweep).
    pub fn subscribe(&self) -> broadcast::Receiver<SessionEnded<IdpSession>> {
        self.store.subscribe()
    }

    /// Starts a session. The secret goes in the cookie and is not kept.
    pub async fn create(
        &self,
        new: NewSession,
    ) -> Result<(SessionSecret, SessionRecord), StoreError> {
        let now = new.now;
        let (body, lifetime) = IdpSession::start(new, &self.idp_id, &self.node);
        self.store.create(body, lifetime, now).await
    }

    /// Uses the session behind a cookie: checks the idle and lifetime
    /// limits, then records activity at `now`.
    pub async fn touch(
        &self,
        secret: &SessionSecret,
        now: OffsetDateTime,
    ) -> Result<SessionRecord, SessionError> {
        self.store.touch(&secret.hash(), now).await
    }

    /// The live session with this public id, without counting as activity.
    /// A session found past its limits is ended (and published).
    pub async fn get_by_id(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
    ) -> Result<SessionRecord, SessionError> {
        self.store.get(id, now).await
    }

    /// Okta's `POST /api/v1/sessions/{id}/lifecycle/refresh`: restarts the
    /// idle window. The absolute lifetime still caps `expiresAt`.
    pub async fn refresh(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
    ) -> Result<SessionRecord, SessionError> {
        self.store
            .update_by_id(id, now, Box::new(move |s| s.record_activity(now)))
            .await
    }

    /// The user passed a second factor in this session: it becomes ACTIVE
    /// and `amr` gains "otp" and "mfa".
    pub async fn mark_mfa_verified(
        &self,
        secret: &SessionSecret,
        now: OffsetDateTime,
    ) -> Result<SessionRecord, SessionError> {
        self.store
            .update(&secret.hash(), now, Box::new(move |s| record_mfa(s, now)))
            .await
    }

    /// The user re-entered their password in this session (app policy
    /// re-authentication).
    /// The re-authentication happened where `context` says: the session
    /// records it, so post-auth evaluation starts again from there.
    pub async fn mark_password_verified(
        &self,
        secret: &SessionSecret,
        now: OffsetDateTime,
        context: SessionContext,
    ) -> Result<SessionRecord, SessionError> {
        self.store
            .update(
                &secret.hash(),
                now,
                Box::new(move |s| {
                    record_password(s, now);
                    s.body.context = Some(context);
                }),
            )
            .await
    }

    /// Ends the session behind a cookie (sign-out, or replacement by a new
    /// sign-in). `None` if it was already gone.
    pub async fn end(
        &self,
        secret: &SessionSecret,
        reason: EndReason,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.store.end(&secret.hash(), reason).await
    }

    /// Ends one session by public id. `None` if it was already gone.
    pub async fn revoke(
        &self,
        id: &SessionId,
        reason: EndReason,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.store.end_by_id(id, reason).await
    }

    /// Ends every session of a user.
    pub async fn revoke_user(
        &self,
        user_id: &str,
        reason: EndReason,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let key = user_key(user_id);
        self.store
            .end_indexed(&key, reason, Box::new(|_| true))
            .await
    }

    /// The user's live sessions, oldest first. Sessions found past their
    /// limits are ended (and published) instead of listed.
    pub async fn sessions_of(
        &self,
        user_id: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.store.list_indexed(&user_key(user_id), now).await
    }

    /// Removes every session past its limits at `now` and returns them.
    pub async fn sweep(&self, now: OffsetDateTime) -> Result<Vec<SessionRecord>, StoreError> {
        self.store.sweep(now).await
    }

    /// Number of sessions held, including any past their limits that no
    /// call has noticed yet.
    pub async fn len(&self) -> Result<usize, StoreError> {
        self.store.len().await
    }

    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        self.store.is_empty().await
    }
}

impl std::fmt::Debug for IdpSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpSessions")
            .field("idp_id", &self.idp_id)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[path = "sessions_tests.rs"]
mod tests;

/// This host's name, what sessions started here are stamped with; `local`
/// where the kernel does not say.
fn local_node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| "local".to_string())
}
