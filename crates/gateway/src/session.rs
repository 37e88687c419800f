//! Gateway sessions: one per app and browser, created after a verified
//! assertion. The cookie carries 256 random bits; the store is keyed by the
//! SHA-256 of that value, so a dump of the store yields no usable cookie.
//! Idle and maximum lifetime are enforced on every lookup and by a periodic
//! [`SessionStore::sweep`]. One store is shared by every worker and survives
//! reloads (it lives in `LocalApps`).
//!
//! Every record owns the sending half of a watch channel; each [`Session`]
//! handed out carries a receiver ([`Session::ended`]). Removing the record —
//! logout, Single Logout, Universal Logout, expiry — drops the sender, which
//! is how WebSocket tunnels and streaming responses a session opened learn
//! to close.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::watch;

/// Sweep expired records once the store holds this many.
const SWEEP_AT: usize = 10_000;

/// What the gateway knows about a signed-in browser for one app.
#[derive(Debug, Clone)]
pub struct Session {
    pub app: String,
    /// The assertion's NameID.
    pub user: String,
    /// Assertion attributes (`groups`, `email`, …), in assertion order.
    pub attributes: Vec<(String, Vec<String>)>,
    /// The IdP's SessionIndex, for Single Logout.
    pub session_index: Option<String>,
    /// The assertion's AuthnContextClassRef.
    pub authn_context: Option<String>,
    /// Wall-clock time the session started (the ACS accepted the assertion).
    pub authenticated_at: std::time::SystemTime,
    pub created: Instant,
    pub last_seen: Instant,
    pub client_ip: IpAddr,
    idle: Duration,
    max: Duration,
    ended: watch::Receiver<()>,
}

impl Session {
    /// Resolves once the session has ended, by whatever path.
    pub fn ended(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut ended = self.ended.clone();
        async move {
            // Only the sender's drop completes this: nothing is ever sent.
            while ended.changed().await.is_ok() {}
        }
    }

    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.attributes
            .iter()
            .filter(|(name, _)| name == "groups")
            .flat_map(|(_, values)| values.iter().map(String::as_str))
    }

    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_seen) > self.idle
            || now.saturating_duration_since(self.created) > self.max
    }
}

/// The fields a new session starts with.
pub struct NewSession {
    pub app: String,
    pub user: String,
    pub attributes: Vec<(String, Vec<String>)>,
    pub session_index: Option<String>,
    pub authn_context: Option<String>,
    pub client_ip: IpAddr,
    pub idle: Duration,
    pub max: Duration,
}

/// Why a session ended, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// `/_portcullis/logout` in this browser.
    Logout,
    /// A LogoutRequest from the IdP (Single Logout).
    SingleLogout,
    /// A global token revocation (Universal Logout).
    UniversalLogout,
    /// Idle or maximum lifetime passed.
    Expired,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Logout => "logout",
            EndReason::SingleLogout => "single_logout",
            EndReason::UniversalLogout => "universal_logout",
            EndReason::Expired => "expired",
        }
    }
}

struct Record {
    session: Session,
    /// Dropped with the record; see the module docs.
    _end: watch::Sender<()>,
}

/// Ended sessions buffered per subscriber before it lags.
const ENDED_BACKLOG: usize = 1024;

pub struct SessionStore {
    records: Mutex<HashMap<[u8; 32], Record>>,
    /// Every ended session, for backend logout hooks.
    ended: tokio::sync::broadcast::Sender<Session>,
}

impl Default for SessionStore {
    fn default() -> Self {
        SessionStore {
            records: Mutex::default(),
            ended: tokio::sync::broadcast::channel(ENDED_BACKLOG).0,
        }
    }
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl SessionStore {
    /// Receives every session that ends from now on, by whatever path.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Session> {
        self.ended.subscribe()
    }

    fn announce(&self, session: &Session) {
        // An error only means nobody listens.
        let _ = self.ended.send(session.clone());
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Record>> {
        // A poisoned lock means a panic elsewhere; the map is still a map.
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores a new session and returns its cookie value (64 hex digits).
    pub fn create(&self, new: NewSession, now: Instant) -> String {
        let bytes: [u8; 32] = rand::random();
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let (end, ended) = watch::channel(());
        let session = Session {
            app: new.app,
            user: new.user,
            attributes: new.attributes,
            session_index: new.session_index,
            authn_context: new.authn_context,
            authenticated_at: std::time::SystemTime::now(),
            created: now,
            last_seen: now,
            client_ip: new.client_ip,
            idle: new.idle,
            max: new.max,
            ended,
        };
        let mut records = self.records();
        if records.len() >= SWEEP_AT {
            records.retain(|_, r| {
                let live = !r.session.expired(now);
                if !live {
                    self.announce(&r.session);
                }
                live
            });
        }
        records.insert(key(&token), Record { session, _end: end });
        token
    }

    /// The live session for `token` in `app`, touched; expired ones are removed.
    pub fn get(&self, app: &str, token: &str, now: Instant) -> Option<Session> {
        let key = key(token);
        let mut records = self.records();
        let session = &mut records.get_mut(&key)?.session;
        if session.app != app {
            return None;
        }
        if session.expired(now) {
            if let Some(record) = records.remove(&key) {
                self.announce(&record.session);
            }
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// Ends the session behind `token` in `app` (this browser's logout).
    pub fn end(&self, app: &str, token: &str) -> Option<Session> {
        let key = key(token);
        let mut records = self.records();
        if records.get(&key)?.session.app != app {
            return None;
        }
        let session = records.remove(&key).map(|r| r.session)?;
        self.announce(&session);
        Some(session)
    }

    /// Ends `app`'s sessions of `name_id` that came from one of
    /// `session_indexes` at the IdP (all of that user's sessions in the app
    /// when the IdP names none), as a LogoutRequest asks.
    pub fn end_matching(
        &self,
        app: &str,
        name_id: &str,
        session_indexes: &[String],
    ) -> Vec<Session> {
        self.end_where(|s| {
            s.app == app
                && s.user == name_id
                && (session_indexes.is_empty()
                    || s.session_index
                        .as_ref()
                        .is_some_and(|i| session_indexes.contains(i)))
        })
    }

    /// Ends every session, in any app, that `matches` (Universal Logout).
    pub fn end_where(&self, matches: impl Fn(&Session) -> bool) -> Vec<Session> {
        let mut ended = Vec::new();
        self.records().retain(|_, r| {
            if matches(&r.session) {
                ended.push(r.session.clone());
                false
            } else {
                true
            }
        });
        for session in &ended {
            self.announce(session);
        }
        ended
    }

    /// Removes expired sessions (closing what they opened); returns them.
    pub fn sweep(&self, now: Instant) -> Vec<Session> {
        self.end_where(|s| s.expired(now))
    }

    pub fn len(&self) -> usize {
        self.records().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(app: &str) -> NewSession {
        NewSession {
            app: app.into(),
            user: "bob@example.com".into(),
            attributes: vec![("groups".into(), vec!["staff".into()])],
            session_index: Some("_s1".into()),
            authn_context: None,
            client_ip: IpAddr::from([127, 0, 0, 1]),
            idle: Duration::from_secs(60),
            max: Duration::from_secs(300),
        }
    }

    #[test]
    fn idle_and_max_lifetime_are_enforced() {
        let store = SessionStore::default();
        let t0 = Instant::now();
        let token = store.create(new("b"), t0);
        assert_eq!(token.len(), 64);
        assert!(store.get("other", &token, t0).is_none(), "bound to its app");
        let s = store
            .get("b", &token, t0 + Duration::from_secs(50))
            .expect("live");
        assert_eq!(s.groups().collect::<Vec<_>>(), ["staff"]);
        // Touched at 50s, so still live at 100s; but idle past 161s.
        assert!(store
            .get("b", &token, t0 + Duration::from_secs(100))
            .is_some());
        assert!(store
            .get("b", &token, t0 + Duration::from_secs(161))
            .is_none());
        assert!(store.is_empty(), "expired record removed");

        let token = store.create(new("b"), t0);
        for s in (50..=300).step_by(50) {
            assert!(store
                .get("b", &token, t0 + Duration::from_secs(s))
                .is_some());
        }
        assert!(store
            .get("b", &token, t0 + Duration::from_secs(301))
            .is_none());
    }

    #[test]
    fn the_store_never_holds_the_cookie_value() {
        let store = SessionStore::default();
        let token = store.create(new("b"), Instant::now());
        assert!(store.records().contains_key(&key(&token)));
    }

    #[tokio::test]
    async fn ending_a_session_signals_what_it_opened() {
        let store = SessionStore::default();
        let t0 = Instant::now();
        let token = store.create(new("b"), t0);
        let other = store.create(new("c"), t0);
        let session = store.get("b", &token, t0).expect("live");
        let ended = tokio::spawn(session.ended());
        tokio::task::yield_now().await;
        assert!(!ended.is_finished());
        assert!(store.end("c", &token).is_none(), "bound to its app");
        assert_eq!(
            store.end("b", &token).map(|s| s.user),
            Some("bob@example.com".into())
        );
        tokio::time::timeout(Duration::from_secs(5), ended)
            .await
            .expect("signalled")
            .expect("task");
        assert!(store.get("b", &token, t0).is_none());
        assert!(
            store.get("c", &other, t0).is_some(),
            "other apps keep theirs"
        );
    }

    #[test]
    fn single_logout_matches_name_id_and_session_index() {
        let store = SessionStore::default();
        let t0 = Instant::now();
        let a = store.create(new("b"), t0);
        let mut second = new("b");
        second.session_index = Some("_s2".into());
        let b = store.create(second, t0);
        let c = store.create(new("c"), t0);
        assert!(store.end_matching("b", "eve@example.com", &[]).is_empty());
        let ended = store.end_matching("b", "bob@example.com", &["_s2".into()]);
        assert_eq!(ended.len(), 1);
        assert!(store.get("b", &b, t0).is_none());
        assert!(store.get("b", &a, t0).is_some());
        // No SessionIndex: every session of that user in that app.
        assert_eq!(store.end_matching("b", "bob@example.com", &[]).len(), 1);
        assert!(store.get("c", &c, t0).is_some());
        assert_eq!(store.sweep(t0 + Duration::from_secs(400)).len(), 1);
        assert!(store.is_empty());
    }
}
