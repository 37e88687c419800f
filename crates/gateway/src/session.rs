//! Gateway sessions: one per app and browser, created after a verified
//! assertion and a passed access check, kept in the one session model
//! (`portcullis-session`): a 256-bit secret in the app's cookie, the store
//! keyed by its SHA-256, idle and maximum lifetime, and one end signal that
//! closes the WebSocket tunnels and streaming responses the session opened.
//!
//! Indexed by user (NameID), by email attribute (Universal Logout names a
//! subject by email) and by the IdP's SessionIndex (Single Logout), so no
//! logout walks every session.

use std::sync::Arc;
use std::time::Duration;

use crate::identity::IdentityMemo;
use portcullis_context::SessionContext;
use portcullis_session::{
    CookieCodec, EndReason, EndSignal, Lifetime, MemoryStore, Name, PlainCookies, SecretHash,
    SessionBody, SessionEnded, SessionError, SessionSecret, SessionStore, StoreError,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::broadcast;

/// Assertion attributes as a session keeps them: names interned (every
/// session of an IdP repeats the same few), values in exact-size boxes.
pub type Attributes = Box<[(Name, Box<[Box<str>]>)]>;

/// What the gateway knows about a signed-in browser for one app.
///
/// Shared, not copied: every request hands its session around, and a
/// clone is a reference count. A change copies the data first if another
/// request still holds it, and forgets the identity computed from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySession {
    data: Arc<SessionData>,
}

/// Stored as its fields alone (the shared store holds no `Arc`).
impl Serialize for GatewaySession {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.data.serialize(serializer)
    }
}

impl std::ops::DerefMut for GatewaySession {
    fn deref_mut(&mut self) -> &mut SessionData {
        let data = Arc::make_mut(&mut self.data);
        data.identity = IdentityMemo::default();
        data
    }
}

impl<'de> Deserialize<'de> for GatewaySession {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        SessionData::deserialize(deserializer).map(|data| GatewaySession {
            data: Arc::new(data),
        })
    }
}

impl std::ops::Deref for GatewaySession {
    type Target = SessionData;

    fn deref(&self) -> &SessionData {
        &self.data
    }
}

/// The fields of a [`GatewaySession`].
///
/// Tens of thousands of these live in one process, so the strings every
/// session repeats are interned ([`Name`]) and the rest sit in exact-size
/// boxes. Serialises exactly as the plain `String`/`Vec` form would.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionData {
    pub app: Name,
    /// The assertion's NameID.
    pub user: Box<str>,
    /// The rest of the NameID (Format, NameQualifier, SPNameQualifier),
    /// repeated in this session's LogoutRequest (core §3.7.1). Absent in
    /// sessions stored before they were kept.
    #[serde(default, skip_serializing_if = "NameIdQualifiers::is_empty")]
    pub name_id: NameIdQualifiers,
    /// Assertion attributes (`groups`, `email`, …), in assertion order.
    pub attributes: Attributes,
    /// The IdP's SessionIndex, for Single Logout.
    pub session_index: Option<Box<str>>,
    /// The assertion's AuthnContextClassRef (a handful of URIs: interned).
    pub authn_context: Option<Name>,
    /// Where and on what the browser signed in; after a change that
    /// post-auth evaluation let through, where it is now.
    pub context: SessionContext,
    /// What the app's identity rules make of this session, kept from its
    /// first request: nothing it depends on changes while the session lives.
    #[serde(skip)]
    pub(crate) identity: IdentityMemo,
}

/// What a NameID carries besides its value. Interned: every session of an
/// app repeats the same format URI and entity ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameIdQualifiers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_qualifier: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_name_qualifier: Option<Name>,
}

impl NameIdQualifiers {
    pub fn new(
        format: Option<&str>,
        name_qualifier: Option<&str>,
        sp_name_qualifier: Option<&str>,
    ) -> Self {
        NameIdQualifiers {
            format: format.map(Name::new),
            name_qualifier: name_qualifier.map(Name::new),
            sp_name_qualifier: sp_name_qualifier.map(Name::new),
        }
    }

    fn is_empty(&self) -> bool {
        self.format.is_none() && self.name_qualifier.is_none() && self.sp_name_qualifier.is_none()
    }
}

impl GatewaySession {
    /// A session body from what a verified assertion carries.
    pub fn new(
        app: &str,
        user: String,
        attributes: Vec<(String, Vec<String>)>,
        session_index: Option<String>,
        authn_context: Option<String>,
        context: SessionContext,
    ) -> Self {
        GatewaySession {
            data: Arc::new(SessionData {
                app: Name::new(app),
                user: user.into_boxed_str(),
                name_id: NameIdQualifiers::default(),
                attributes: compact(attributes),
                session_index: session_index.map(String::into_boxed_str),
                authn_context: authn_context.as_deref().map(Name::new),
                context,
                identity: IdentityMemo::default(),
            }),
        }
    }

    /// The NameID's Format and qualifiers, as the assertion had them.
    pub fn with_name_id(mut self, name_id: NameIdQualifiers) -> Self {
        self.name_id = name_id;
        self
    }

    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.values("groups")
    }

    /// Every value of attribute `name`, in assertion order.
    pub fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> {
        self.attributes
            .iter()
            .filter(move |(n, _)| n.as_str() == name)
            .flat_map(|(_, values)| values.iter().map(|v| &**v))
    }
}

/// Attributes in their stored form.
pub fn compact(attributes: Vec<(String, Vec<String>)>) -> Attributes {
    attributes
        .into_iter()
        .map(|(name, values)| {
            let values: Box<[Box<str>]> = values.into_iter().map(String::into_boxed_str).collect();
            (Name::new(&name), values)
        })
        .collect()
}

const USER: &str = "user:";
const EMAIL: &str = "email:";
const IDP_SESSION: &str = "idp-session:";

impl SessionBody for GatewaySession {
    fn index_keys(&self) -> Vec<String> {
        // Lower-cased: Universal Logout matches emails without case; the
        // filters below check the exact rule on what the index finds.
        let mut keys = vec![format!("{USER}{}", self.user.to_lowercase())];
        keys.extend(
            self.values("email")
                .map(|email| format!("{EMAIL}{}", email.to_lowercase())),
        );
        keys.extend(
            self.session_index
                .iter()
                .map(|index| format!("{IDP_SESSION}{index}")),
        );
        keys.sort();
        keys.dedup();
        keys
    }
}

/// A live gateway session as a request sees it.
pub type Session = portcullis_session::Session<GatewaySession>;

/// Who Universal Logout names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Email(String),
    IssSub { iss: String, sub: String },
}

/// The gateway sessions of every app, shared by all workers and kept
/// across reloads.
#[derive(Clone)]
pub struct Sessions {
    store: Arc<dyn SessionStore<GatewaySession>>,
    cookies: Arc<dyn CookieCodec>,
}

impl Sessions {
    pub fn new(store: Arc<dyn SessionStore<GatewaySession>>) -> Self {
        Self::with_cookies(store, Arc::new(PlainCookies))
    }

    /// Sessions whose cookie values `cookies` writes and checks (a
    /// cluster's MAC'd values, refused before any store lookup).
    pub fn with_cookies(
        store: Arc<dyn SessionStore<GatewaySession>>,
        cookies: Arc<dyn CookieCodec>,
    ) -> Self {
        Sessions { store, cookies }
    }

    /// The cookie value for a session's secret.
    pub fn cookie_value(&self, secret: &SessionSecret) -> String {
        self.cookies.encode(secret)
    }

    /// An in-memory store (sharded: requests of different sessions never
    /// wait on each other).
    pub fn memory() -> Self {
        Sessions::new(Arc::new(MemoryStore::<GatewaySession>::new()))
    }

    /// Live sessions per app name, for the admin console.
    pub async fn count_per_app(
        &self,
        now: OffsetDateTime,
    ) -> Result<std::collections::BTreeMap<String, usize>, StoreError> {
        self.store
            .count_by(now, &|session: &GatewaySession| {
                session.app.as_str().to_owned()
            })
            .await
    }

    /// Starts a session; the secret goes in the app's cookie.
    pub async fn create(
        &self,
        body: GatewaySession,
        idle: Duration,
        max: Duration,
        now: OffsetDateTime,
    ) -> Result<SessionSecret, StoreError> {
        let (secret, _) = self
            .store
            .create(body, Lifetime::new(idle, Some(max)), now)
            .await?;
        Ok(secret)
    }

    /// The live session behind `cookie` in `app`, its activity recorded.
    /// `Ok(None)`: no such session (never was, ended, expired, another
    /// app's, or not a value this gateway issues).
    pub async fn get(
        &self,
        app: &str,
        cookie: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(Session, SecretHash)>, StoreError> {
        let secret = match self.cookies.decode(cookie) {
            Ok(secret) => secret,
            Err(SessionError::OtherNode { node }) => {
                // Its owner is down or the balancer moved the browser: the
                // request goes through SSO again, never to an error page.
                tracing::info!(
                    app,
                    session.node = %node,
                    "session cookie of another node: treated as no session"
                );
                return Ok(None);
            }
            Err(_) => return Ok(None),
        };
        let hash = secret.hash();
        // A touch, not an update: nothing of the body changes, so nothing is
        // re-indexed on the request path. Another app's session found here
        // means a cookie replayed across apps; it gets no access (its own
        // cookie already grants it at its app).
        match self.store.touch(&hash, now).await {
            Ok(session) if session.body.app.as_str() == app => Ok(Some((session, hash))),
            Ok(_) => Ok(None),
            Err(SessionError::Store(e)) => Err(e),
            Err(
                SessionError::Malformed
                | SessionError::NotFound
                | SessionError::Expired { .. }
                | SessionError::OtherNode { .. },
            ) => Ok(None),
        }
    }

    /// Records the context post-auth evaluation let through.
    pub(crate) async fn record_context(
        &self,
        hash: &SecretHash,
        context: SessionContext,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        match self
            .store
            .update(hash, now, Box::new(move |s| s.body.context = context))
            .await
        {
            Ok(_) => Ok(()),
            Err(SessionError::Store(e)) => Err(e),
            // Ended meanwhile: the request's own check already passed.
            Err(_) => Ok(()),
        }
    }

    /// Ends one session (post-auth evaluation's verdict).
    pub(crate) async fn end_hash(
        &self,
        hash: &SecretHash,
        reason: EndReason,
    ) -> Result<Option<Session>, StoreError> {
        self.store.end(hash, reason).await
    }

    /// Ends the session behind `cookie` in `app` (this browser's logout).
    pub async fn end(
        &self,
        app: &str,
        cookie: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
        let Some((_, hash)) = self.get(app, cookie, now).await? else {
            return Ok(None);
        };
        self.store.end(&hash, EndReason::SignOut).await
    }

    /// Ends `app`'s sessions of `name_id` that came from one of
    /// `session_indexes` at the IdP (all of that user's sessions in the app
    /// when the IdP names none), as a LogoutRequest asks.
    pub async fn end_matching(
        &self,
        app: &str,
        name_id: &str,
        session_indexes: &[String],
    ) -> Result<Vec<Session>, StoreError> {
        let ours = |s: &Session| s.body.app.as_str() == app && *s.body.user == *name_id;
        if session_indexes.is_empty() {
            let key = format!("{USER}{}", name_id.to_lowercase());
            return self
                .store
                .end_indexed(&key, EndReason::SingleLogout, Box::new(ours))
                .await;
        }
        let mut ended = Vec::new();
        for index in session_indexes {
            let key = format!("{IDP_SESSION}{index}");
            ended.extend(
                self.store
                    .end_indexed(&key, EndReason::SingleLogout, Box::new(ours))
                    .await?,
            );
        }
        Ok(ended)
    }

    /// Ends the subject's sessions (Universal Logout): in every app, or in
    /// `only` (the post-auth logout action names each impacted app).
    pub async fn end_subject(
        &self,
        only: Option<&str>,
        subject: &Subject,
        reason: EndReason,
    ) -> Result<Vec<Session>, StoreError> {
        let in_app = |s: &Session| only.is_none_or(|app| s.body.app.as_str() == app);
        match subject {
            Subject::Email(email) => {
                let lower = email.to_lowercase();
                let mut ended = self
                    .store
                    .end_indexed(
                        &format!("{USER}{lower}"),
                        reason,
                        Box::new(|s: &Session| {
                            in_app(s) && s.body.user.eq_ignore_ascii_case(email)
                        }),
                    )
                    .await?;
                ended.extend(
                    self.store
                        .end_indexed(
                            &format!("{EMAIL}{lower}"),
                            reason,
                            Box::new(|s: &Session| {
                                in_app(s)
                                    && s.body
                                        .values("email")
                                        .any(|e| e.eq_ignore_ascii_case(email))
                            }),
                        )
                        .await?,
                );
                Ok(ended)
            }
            Subject::IssSub { sub, .. } => {
                self.store
                    .end_indexed(
                        &format!("{USER}{}", sub.to_lowercase()),
                        reason,
                        Box::new(|s: &Session| in_app(s) && *s.body.user == **sub),
                    )
                    .await
            }
        }
    }

    /// Ends every session past its limits; returns them.
    pub async fn sweep(&self, now: OffsetDateTime) -> Result<Vec<Session>, StoreError> {
        self.store.sweep(now).await
    }

    /// Every session that ends from now on, by whatever path.
    pub fn subscribe(&self) -> broadcast::Receiver<SessionEnded<GatewaySession>> {
        self.store.subscribe()
    }

    /// Resolves when the session behind `hash` ends.
    pub fn ended(&self, hash: &SecretHash) -> EndSignal {
        self.store.ended(hash)
    }
}

/// Logs one ended gateway session.
pub(crate) fn log_ended(session: &Session, reason: EndReason, request_id: Option<&str>) {
    tracing::info!(
        request.id = request_id,
        app = %session.body.app,
        user = %session.body.user,
        session.index = session.body.session_index.as_deref(),
        reason = reason.as_str(),
        "gateway session ended"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(app: &str, index: &str) -> GatewaySession {
        GatewaySession::new(
            app,
            "Bob@Example.com".into(),
            vec![
                ("groups".into(), vec!["staff".into()]),
                ("email".into(), vec!["bob@example.com".into()]),
            ],
            Some(index.into()),
            None,
            portcullis_context::ContextSource::default().capture([127, 0, 0, 1].into(), None),
        )
    }

    const IDLE: Duration = Duration::from_secs(60);
    const MAX: Duration = Duration::from_secs(300);

    #[test]
    fn the_full_name_id_is_stored_and_older_sessions_still_read() {
        let full = body("wiki", "s1").with_name_id(NameIdQualifiers::new(
            Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"),
            Some("https://idp.test/md"),
            Some("https://wiki.test/md"),
        ));
        let json = serde_json::to_string(&full).expect("serialises");
        let back: GatewaySession = serde_json::from_str(&json).expect("reads");
        assert_eq!(back, full);
        // A session stored before the qualifiers were kept has none.
        let mut old = serde_json::to_value(body("wiki", "s1")).expect("serialises");
        assert!(old.get("name_id").is_none(), "{old}");
        old.as_object_mut().expect("object").remove("name_id");
        let back: GatewaySession = serde_json::from_value(old).expect("reads");
        assert_eq!(back.name_id, NameIdQualifiers::default());
    }

    #[tokio::test]
    async fn a_session_belongs_to_its_app_and_ends_at_its_limits() {
        let sessions = Sessions::memory();
        let t0 = OffsetDateTime::now_utc();
        let secret = sessions
            .create(body("b", "_s1"), IDLE, MAX, t0)
            .await
            .expect("create");
        let cookie = secret.expose();
        assert!(sessions.get("c", cookie, t0).await.expect("get").is_none());
        assert!(sessions
            .get("b", "not a cookie", t0)
            .await
            .expect("get")
            .is_none());
        let (s, _) = sessions
            .get("b", cookie, t0)
            .await
            .expect("get")
            .expect("live");
        assert_eq!(s.body.groups().collect::<Vec<_>>(), ["staff"]);
        // Touched at 50 s: live at 100 s, idle at 110 s (the deadline itself ends it).
        let at = |secs| t0 + Duration::from_secs(secs);
        assert!(sessions
            .get("b", cookie, at(50))
            .await
            .expect("get")
            .is_some());
        assert!(sessions
            .get("b", cookie, at(100))
            .await
            .expect("get")
            .is_some());
        assert!(sessions
            .get("b", cookie, at(160))
            .await
            .expect("get")
            .is_none());
        let secret = sessions
            .create(body("b", "_s1"), IDLE, MAX, t0)
            .await
            .expect("create");
        for secs in (50..300).step_by(50) {
            assert!(sessions
                .get("b", secret.expose(), at(secs))
                .await
                .expect("get")
                .is_some());
        }
        assert!(sessions
            .get("b", secret.expose(), at(300))
            .await
            .expect("get")
            .is_none());
    }

    #[tokio::test]
    async fn ending_a_session_signals_what_it_opened() {
        let sessions = Sessions::memory();
        let t0 = OffsetDateTime::now_utc();
        let b = sessions
            .create(body("b", "_s1"), IDLE, MAX, t0)
            .await
            .expect("create");
        let c = sessions
            .create(body("c", "_s1"), IDLE, MAX, t0)
            .await
            .expect("create");
        let (_, hash) = sessions
            .get("b", b.expose(), t0)
            .await
            .expect("get")
            .expect("live");
        let ended = tokio::spawn(sessions.ended(&hash));
        tokio::task::yield_now().await;
        assert!(!ended.is_finished());
        assert!(
            sessions
                .end("c", b.expose(), t0)
                .await
                .expect("end")
                .is_none(),
            "its app only"
        );
        assert!(sessions
            .end("b", b.expose(), t0)
            .await
            .expect("end")
            .is_some());
        tokio::time::timeout(Duration::from_secs(5), ended)
            .await
            .expect("signalled")
            .expect("task");
        assert!(sessions
            .get("c", c.expose(), t0)
            .await
            .expect("get")
            .is_some());
    }

    #[tokio::test]
    async fn single_logout_matches_name_id_and_session_index() {
        let sessions = Sessions::memory();
        let t0 = OffsetDateTime::now_utc();
        let first = sessions
            .create(body("b", "_s1"), IDLE, MAX, t0)
            .await
            .expect("create");
        let second = sessions
            .create(body("b", "_s2"), IDLE, MAX, t0)
            .await
            .expect("create");
        let other_app = sessions
            .create(body("c", "_s2"), IDLE, MAX, t0)
            .await
            .expect("create");
        let end = |app, user, indexes: &'static [&'static str]| {
            let sessions = sessions.clone();
            let indexes: Vec<String> = indexes.iter().map(|s| s.to_string()).collect();
            async move {
                sessions
                    .end_matching(app, user, &indexes)
                    .await
                    .expect("end")
                    .len()
            }
        };
        assert_eq!(end("b", "eve@example.com", &[]).await, 0);
        assert_eq!(end("b", "Bob@Example.com", &["_s2"]).await, 1);
        assert!(sessions
            .get("b", second.expose(), t0)
            .await
            .expect("get")
            .is_none());
        assert!(sessions
            .get("b", first.expose(), t0)
            .await
            .expect("get")
            .is_some());
        // No SessionIndex: every session of that user in that app.
        assert_eq!(end("b", "Bob@Example.com", &[]).await, 1);
        assert!(sessions
            .get("c", other_app.expose(), t0)
            .await
            .expect("get")
            .is_some());
    }

    #[tokio::test]
    async fn universal_logout_finds_the_subject_by_name_id_or_email_in_every_app_or_one() {
        let sessions = Sessions::memory();
        let t0 = OffsetDateTime::now_utc();
        sessions
            .create(body("b", "_s1"), IDLE, MAX, t0)
            .await
            .expect("create");
        sessions
            .create(body("c", "_s2"), IDLE, MAX, t0)
            .await
            .expect("create");
        let mut by_email = body("d", "_s3");
        by_email.user = "00u1".into();
        sessions
            .create(by_email, IDLE, MAX, t0)
            .await
            .expect("create");
        let bob = Subject::Email("BOB@example.com".into());
        let mut apps = Vec::new();
        for app in ["b", "d"] {
            let ended = sessions
                .end_subject(Some(app), &bob, EndReason::PostAuthViolation)
                .await
                .expect("end");
            assert_eq!(ended.len(), 1, "{app}");
            apps.push(ended[0].body.app.to_string());
            // The other apps' sessions are still there for their own
            // revocations.
            assert_eq!(sessions.store.len().await.expect("len"), 3 - apps.len());
        }
        assert_eq!(apps, ["b", "d"]);
        let rest = sessions
            .end_subject(None, &bob, EndReason::UniversalLogout)
            .await
            .expect("end");
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].body.app.as_str(), "c");
        let sub = Subject::IssSub {
            iss: "https://idp.test".into(),
            sub: "00u1".into(),
        };
        assert!(sessions
            .end_subject(None, &sub, EndReason::UniversalLogout)
            .await
            .expect("end")
            .is_empty());
    }

    #[test]
    fn the_stored_form_serialises_as_the_plain_one() {
        let mut session = body("b", "_s1");
        session.authn_context = Some(Name::new(
            "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
        ));
        let plain = serde_json::json!({
            "app": "b",
            "user": "Bob@Example.com",
            "attributes": [["groups", ["staff"]], ["email", ["bob@example.com"]]],
            "session_index": "_s1",
            "authn_context": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
            "context": serde_json::to_value(&session.context).expect("context serialises"),
        });
        assert_eq!(serde_json::to_value(&session).expect("serialises"), plain);
        let back: GatewaySession = serde_json::from_value(plain).expect("deserialises");
        assert_eq!(back, session);
        assert_eq!(
            back.values("email").collect::<Vec<_>>(),
            ["bob@example.com"]
        );
    }

    #[test]
    fn sessions_of_one_app_share_its_names() {
        let (a, b) = (body("wiki", "_s1"), body("wiki", "_s2"));
        assert!(std::ptr::eq(a.app.as_str(), b.app.as_str()));
        assert!(std::ptr::eq(
            a.attributes[0].0.as_str(),
            b.attributes[0].0.as_str()
        ));
    }
}
