//! Gateway sessions: one per app and browser, created after a verified
//! assertion. The cookie carries 256 random bits; the store is keyed by the
//! SHA-256 of that value, so a dump of the store yields no usable cookie.
//! Idle and maximum lifetime are enforced on every lookup. One store is
//! shared by every worker and survives reloads (it lives in `LocalApps`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

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
    pub created: Instant,
    pub last_seen: Instant,
    pub client_ip: IpAddr,
    idle: Duration,
    max: Duration,
}

impl Session {
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
    pub client_ip: IpAddr,
    pub idle: Duration,
    pub max: Duration,
}

#[derive(Default)]
pub struct SessionStore {
    records: Mutex<HashMap<[u8; 32], Session>>,
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl SessionStore {
    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A poisoned lock means a panic elsewhere; the map is still a map.
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores a new session and returns its cookie value (64 hex digits).
    pub fn create(&self, new: NewSession, now: Instant) -> String {
        let bytes: [u8; 32] = rand::random();
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let session = Session {
            app: new.app,
            user: new.user,
            attributes: new.attributes,
            session_index: new.session_index,
            created: now,
            last_seen: now,
            client_ip: new.client_ip,
            idle: new.idle,
            max: new.max,
        };
        let mut records = self.records();
        if records.len() >= SWEEP_AT {
            records.retain(|_, s| !s.expired(now));
        }
        records.insert(key(&token), session);
        token
    }

    /// The live session for `token` in `app`, touched; expired ones are removed.
    pub fn get(&self, app: &str, token: &str, now: Instant) -> Option<Session> {
        let key = key(token);
        let mut records = self.records();
        let session = records.get_mut(&key)?;
        if session.app != app {
            return None;
        }
        if session.expired(now) {
            records.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
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
}
