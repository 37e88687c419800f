//! Tests of [`SessionStore`](super::SessionStore): expiry on every path,
//! and exactly one `SessionEnded` per removed session.

use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use time::macros::datetime;
use tokio::sync::broadcast::error::TryRecvError;

use super::*;
use crate::policy::SessionLimits;
use crate::session::record::{Amr, SessionStatus};
use crate::session::spawn_sweeper;

const T0: OffsetDateTime = datetime!(2026-11-24 05:15:10.193 UTC);
const IDLE: Duration = Duration::from_secs(2 * 3_600);
const LIFETIME: Duration = Duration::from_secs(8 * 3_600);

fn limits() -> SessionLimits {
    SessionLimits {
        max_idle: IDLE,
        max_lifetime: Some(LIFETIME),
        persistent_cookie: false,
    }
}

fn new_session(user: &str, now: OffsetDateTime) -> NewSession {
    NewSession {
        user_id: user.into(),
        login: format!("{user}@example.com"),
        amr: vec![Amr::Pwd],
        mfa_pending: false,
        limits: limits(),
        policy: "Default Policy".into(),
        rule: "Default Rule".into(),
        client_ip: Some("192.0.2.7".parse().expect("ip")),
        user_agent: Some("curl/8".into()),
        now,
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Everything published so far.
fn drain(rx: &mut broadcast::Receiver<SessionEnded>) -> Vec<SessionEnded> {
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(ended) => out.push(ended),
            Err(TryRecvError::Empty) => return out,
            Err(other) => panic!("unexpected receive error: {other:?}"),
        }
    }
}

#[test]
fn store_is_keyed_by_hash_and_never_holds_the_secret() {
    let store = SessionStore::with_options("00o1", DEFAULT_ENDED_CAPACITY);
    let (secret, record) = store.create(new_session("u1", T0));
    let index = store.lock();
    assert_eq!(index.by_hash.len(), 1);
    let (key, stored) = index.by_hash.iter().next().expect("one session");
    assert_eq!(*key, secret.hash());
    assert_ne!(&key.as_bytes()[..], secret.expose().as_bytes());
    assert_eq!(stored, &record);
    assert_eq!(index.by_id.get(&record.id), Some(key));
    drop(index);
    let dump = format!("{store:?}");
    assert!(!dump.contains(secret.expose()), "{dump}");
}

#[test]
fn create_fills_in_the_record() {
    let store = SessionStore::with_options("00o1", DEFAULT_ENDED_CAPACITY);
    let (_, record) = store.create(new_session("u1", T0));
    assert!(record.id.as_str().starts_with("102"));
    assert_eq!(record.user_id, "u1");
    assert_eq!(record.created_at, T0);
    assert_eq!(record.expires_at, T0 + IDLE);
    assert_eq!(record.status, SessionStatus::Active);
    assert_eq!(record.idp.id, "00o1");
    assert_eq!(record.policy, "Default Policy");
    assert_eq!(record.rule, "Default Rule");
    assert_eq!(store.len(), 1);
}

#[test]
fn touch_slides_the_idle_window() {
    let store = SessionStore::with_options("00o1", DEFAULT_ENDED_CAPACITY);
    let (secret, _) = store.create(new_session("u1", T0));
    let later = T0 + secs(3_600);
    let record = store.touch(&secret, later).expect("alive");
    assert_eq!(record.last_activity, later);
    assert_eq!(record.expires_at, later + IDLE);
    // Idle for 2h counted from the touch, not from creation.
    assert!(store.touch(&secret, T0 + IDLE + secs(1_800)).is_ok());
}

#[test]
fn touch_after_idle_limit_ends_the_session_once() {
    let store = SessionStore::with_options("00o1", DEFAULT_ENDED_CAPACITY);
    let mut rx = store.subscribe();
    let (secret, record) = store.create(new_session("u1", T0));
    assert_eq!(
        store.touch(&secret, T0 + IDLE),
        Err(SessionError::Expired {
            reason: EndReason::IdleTimeout
        })
    );
    assert_eq!(store.touch(&secret, T0 + IDLE), Err(SessionError::NotFound));
    assert!(store.is_empty());
    assert_eq!(
        store.get_by_id(&record.id, T0),
        None,
        "the id index is cleaned up too"
    );
    let ended = drain(&mut rx);
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].reason, EndReason::IdleTimeout);
    assert_eq!(ended[0].record.id, record.id);
}

#[test]
fn touch_cannot_outlive_max_lifetime() {
    let store = SessionStore::with_options("00o1", DEFAULT_ENDED_CAPACITY);
    let mut rx = store.subscribe();
    let (secret, _) = store.create(new_session("u1", T0));
    let mut now = T0;
    while now + secs(3_600) < T0 + LIFETIME {
        now += secs(3_600);
        store
            .touch(&secret, now)
            .expect("active use keeps it alive");
    }
    assert_eq!(
        store.touch(&secret, T0 + LIFETIME),
        Err(SessionError::Expired {
            reason: EndReason::MaxLifetime
        })
    );
    let ended = drain(&mut rx);
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].reason, EndReason::MaxLifetime);
}

#[test]
fn unknown_secret_is_not_found() {
    let store = SessionStore::with_options("00o1", DEFAULT_ENDED_CAPACITY);
    store.create(new_session("u1", T0));
    let stranger = SessionSecret::generate();
    assert_eq!(store.touch(&stranger, T0), Err(SessionError::NotFound));
}

#[test]
fn get_by_id_does_not_touch_but_does_expire() {
    let store = SessionStore::with_options("00o1", DEFAULT_ENDED_CAPACITY);
    let mut rx = store.subscribe();
    let (_, record) = store.create(new_session("u1", T0));
    let seen = store
        .get_by_id(&record.id, T0 + secs(3_600))
        .expect("alive");
    assert_eq!(seen.last_activity, T0);
    assert_eq!(seen.expires_at, T0 + IDLE);
    assert_eq!(
        store.get_by_id(&record.id, T0 + IDLE),
        None,
        "expired is gone"
    );
    assert_eq!(drain(&mut rx).len(), 1);
    assert!(store.is_empty());
}

#[test]
fn refresh_extends_idle_but_not_past_lifetime() {
    let store = SessionStore::with_options("00o1", DEFAULT_ENDED_CAPACITY);
    let (_, record) = store.create(new_session("u1", T0));
    let refreshed = store.refresh(&record.id, T0 + secs(3_600)).expect("alive");
    assert_eq!(refreshed.expires_at, T0 + secs(3_600) + IDLE);
    let late = T0 + LIFETIME - secs(60);
    // Keep it alive up to just before the lifetime ends.
    let mut now = T0;
    while now + secs(3_600) <= late {
        now += secs(3_600);
        store.refresh(&record.id, now).expect("alive");
    }
    let capped = store.refresh(&record.id, late).expect("still alive");
    assert_eq!(capped.expires_at, T0 + LIFETIME, "capped by lifetime");
    assert_eq!(
        store.refresh(&record.id, T0 + LIFETIME),
        Err(SessionError::Expired {
            reason: EndReason::MaxLifetime
        })
    );
    assert_eq!(
        store.refresh(&SessionId::from("102nope"), T0),
        Err(SessionError::NotFound)
    );
}

#[test]
fn mfa_marking_activates_and_extends_amr() {
    let store = SessionStore::with_options("00o1", DEFAULT_ENDED_CAPACITY);
    let mut new = new_session("u1", T0);
    new.mfa_pending = true;
    let (secret, record) = store.create(new);
    assert_eq!(record.status, SessionStatus::MfaRequired);
    assert_eq!(record.last_factor_verification, None);
    assert_eq!(record.amr, vec![Amr::Pwd]);

    let at = T0 + secs(20);
    let record = store.mark_mfa_verified(&secret, at).expect("alive");
    assert_eq!(record.status, SessionStatus::Active);
    assert_eq!(record.last_factor_verification, Some(at));
    assert_eq!(record.amr, vec![Amr::Pwd, Amr::Otp, Amr::Mfa]);
    assert_eq!(record.last_activity, at);

    let again = store
        .mark_mfa_verified(&secret, at + secs(5))
        .expect("alive");
    assert_eq!(
        again.amr,
        vec![Amr::Pwd, Amr::Otp, Amr::Mfa],
        "no duplicates"
    );
    assert_eq!(
        store.get_by_id(&record.id, at).map(|r| r.status),
        Some(SessionStatus::Active)
    );
}

#[test]
fn mfa_marking_does_not_revive_an_expired_session() {
    let store = SessionStore::with_options("00o1", DEFAULT_ENDED_CAPACITY);
    let mut new = new_session("u1", T0);
    new.mfa_pending = true;
    let (secret, _) = store.create(new);
    assert_eq!(
        store.mark_mfa_verified(&secret, T0 + IDLE),
        Err(SessionError::Expired {
            reason: EndReason::IdleTimeout
        })
    );
}

#[test]
fn password_marking_updates_verification_time() {
    let store = SessionStore::with_options("00o1", DEFAULT_ENDED_CAPACITY);
    let (secret, _) = store.create(new_session("u1", T0));
    let at = T0 + secs(600);
    let record = store.mark_password_verified(&secret, at).expect("alive");
    assert_eq!(record.last_password_verification, at);
    assert_eq!(record.created_at, T0);
    assert_eq!(record.last_activity, at);
    assert_eq!(record.amr, vec![Amr::Pwd]);
}

#[test]
fn revoke_publishes_exactly_once() {
    let store = SessionStore::with_options("00o1", DEFAULT_ENDED_CAPACITY);
    let mut rx = store.subscribe();
    let (secret, record) = store.create(new_session("u1", T0));
    let revoked = store
        .revoke(&record.id, EndReason::Revoked)
        .expect("was live");
    assert_eq!(revoked.id, record.id);
    assert_eq!(store.revoke(&record.id, EndReason::Revoked), None);
    assert_eq!(store.touch(&secret, T0), Err(SessionError::NotFound));
    let ended = drain(&mut rx);
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].reason, EndReason::Revoked);
}

#[test]
fn end_by_secret_signs_out() {
    let store = SessionStore::with_options("00o1", DEFAULT_ENDED_CAPACITY);
    let mut rx = store.subscribe();
    let (secret, record) = store.create(new_session("u1", T0));
    assert_eq!(
        store.end(&secret, EndReason::SignOut).map(|r| r.id),
        Some(record.id)
    );
    assert_eq!(store.end(&secret, EndReason::SignOut), None);
    let ended = drain(&mut rx);
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].reason, EndReason::SignOut);
}

#[test]
fn revoke_user_ends_only_that_users_sessions() {
    let store = SessionStore::with_options("00o1", DEFAULT_ENDED_CAPACITY);
    let mut rx = store.subscribe();
    for i in 0..3 {
        store.create(new_session("alice", T0 + secs(i)));
    }
    let (bob, _) = store.create(new_session("bob", T0));
    let revoked = store.revoke_user("alice", EndReason::UserRevoked);
    assert_eq!(revoked.len(), 3);
    assert!(revoked.iter().all(|r| r.user_id == "alice"));
    assert!(store
        .revoke_user("alice", EndReason::UserRevoked)
        .is_empty());
    assert!(store.touch(&bob, T0).is_ok());
    let ended = drain(&mut rx);
    assert_eq!(ended.len(), 3);
    assert!(ended.iter().all(|e| e.reason == EndReason::UserRevoked));
}

#[test]
fn sessions_of_lists_live_ones_and_ends_dead_ones() {
    let store = SessionStore::with_options("00o1", DEFAULT_ENDED_CAPACITY);
    let mut rx = store.subscribe();
    let (_, old) = store.create(new_session("alice", T0));
    let (_, newer) = store.create(new_session("alice", T0 + secs(3_600)));
    store.create(new_session("bob", T0));
    let listed = store.sessions_of("alice", T0 + secs(3_600));
    assert_eq!(
        listed.iter().map(|r| &r.id).collect::<Vec<_>>(),
        vec![&old.id, &newer.id]
    );
    let listed = store.sessions_of("alice", T0 + IDLE);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, newer.id);
    let ended = drain(&mut rx);
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].record.id, old.id);
    assert_eq!(ended[0].reason, EndReason::IdleTimeout);
}

#[test]
fn sweep_ends_active_sessions_at_max_lifetime() {
    let store = SessionStore::with_options("00o1", DEFAULT_ENDED_CAPACITY);
    let mut rx = store.subscribe();
    let (old_secret, old) = store.create(new_session("u1", T0));
    let (_, fresh) = store.create(new_session("u2", T0 + LIFETIME - secs(60)));
    // Keep "old" active so its lifetime, not idleness, ends it.
    let mut now = T0;
    while now + secs(3_600) < T0 + LIFETIME {
        now += secs(3_600);
        store.touch(&old_secret, now).expect("alive");
    }
    assert!(store.sweep(T0 + LIFETIME - secs(1)).is_empty());
    let swept = store.sweep(T0 + LIFETIME);
    assert_eq!(swept.len(), 1);
    assert_eq!(swept[0].id, old.id);
    let ended = drain(&mut rx);
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].reason, EndReason::MaxLifetime);
    assert!(store.get_by_id(&fresh.id, T0 + LIFETIME).is_some());
}

#[test]
fn sweep_reports_idle_and_lifetime_reasons() {
    let store = SessionStore::with_options("00o1", DEFAULT_ENDED_CAPACITY);
    let mut rx = store.subscribe();
    let (_, idle) = store.create(new_session("u1", T0));
    let mut forever = new_session("u2", T0);
    forever.limits.max_lifetime = Some(secs(60));
    let (_, short) = store.create(forever);
    let (_, fresh) = store.create(new_session("u3", T0 + IDLE));

    let swept = store.sweep(T0 + IDLE);
    assert_eq!(swept.len(), 2);
    assert!(store.sweep(T0 + IDLE).is_empty(), "nothing left to sweep");
    let ended = drain(&mut rx);
    let reasons: HashMap<SessionId, EndReason> = ended
        .iter()
        .map(|e| (e.record.id.clone(), e.reason))
        .collect();
    assert_eq!(ended.len(), 2);
    assert_eq!(reasons.get(&idle.id), Some(&EndReason::IdleTimeout));
    assert_eq!(reasons.get(&short.id), Some(&EndReason::MaxLifetime));
    assert_eq!(store.len(), 1);
    assert!(store.get_by_id(&fresh.id, T0 + IDLE).is_some());
}

/// Many threads race to end the same sessions by every path at once; each
/// session must still be removed and published exactly once.
#[test]
fn concurrent_ends_publish_exactly_once_per_session() {
    const SESSIONS: usize = 200;
    const THREADS: usize = 8;
    let store = Arc::new(SessionStore::with_options("00o1", SESSIONS * 2));
    let mut rx = store.subscribe();
    let sessions: Arc<Vec<(SessionSecret, SessionRecord)>> = Arc::new(
        (0..SESSIONS)
            .map(|i| store.create(new_session(&format!("u{}", i % 10), T0)))
            .collect(),
    );
    let expired_at = T0 + IDLE;
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = Arc::clone(&store);
            let sessions = Arc::clone(&sessions);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                for (i, (secret, record)) in sessions.iter().enumerate() {
                    match (t + i) % 6 {
                        0 => {
                            let _ = store.touch(secret, expired_at);
                        }
                        1 => {
                            store.revoke(&record.id, EndReason::Revoked);
                        }
                        2 => {
                            store.sweep(expired_at);
                        }
                        3 => {
                            store.revoke_user(&record.user_id, EndReason::UserRevoked);
                        }
                        4 => {
                            let _ = store.get_by_id(&record.id, expired_at);
                        }
                        _ => {
                            store.end(secret, EndReason::SignOut);
                        }
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("thread finished");
    }
    assert!(store.is_empty());
    let ended = drain(&mut rx);
    let mut per_session: HashMap<SessionId, usize> = HashMap::new();
    for e in &ended {
        *per_session.entry(e.record.id.clone()).or_default() += 1;
    }
    assert_eq!(ended.len(), SESSIONS);
    assert_eq!(per_session.len(), SESSIONS);
    assert!(per_session.values().all(|n| *n == 1));
}

#[tokio::test]
async fn sweeper_ends_expired_sessions_in_the_background() {
    let store = Arc::new(SessionStore::with_options("00o1", DEFAULT_ENDED_CAPACITY));
    let mut rx = store.subscribe();
    let long_ago = OffsetDateTime::now_utc() - IDLE - secs(1);
    let (_, record) = store.create(new_session("u1", long_ago));
    let (live_secret, _) = store.create(new_session("u2", OffsetDateTime::now_utc()));
    let handle = spawn_sweeper(Arc::clone(&store), Duration::from_millis(10));
    let ended = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("swept in time")
        .expect("channel open");
    assert_eq!(ended.record.id, record.id);
    assert_eq!(ended.reason, EndReason::IdleTimeout);
    assert!(store.touch(&live_secret, OffsetDateTime::now_utc()).is_ok());

    // The sweeper holds only a weak reference: dropping the store stops it.
    drop(rx);
    drop(store);
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("sweeper stopped")
        .expect("sweeper did not panic");
}
