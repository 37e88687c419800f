//! The conformance suites every backend runs (feature `conformance`).
//!
//! Each check is a `pub async fn` generic over the backend, taking a
//! constructor so every check starts from an empty store. The macros
//! [`session_store_suite!`](crate::session_store_suite),
//! [`one_time_suite!`](crate::one_time_suite),
//! [`ticket_suite!`](crate::ticket_suite) and
//! [`lockout_suite!`](crate::lockout_suite) turn them into one `#[tokio::test]`
//! each, so a backend's test binary runs the very same checks as the memory
//! backend's:
//!
//! ```text
//! portcullis_session::session_store_suite!(redis_sessions, || RedisStore::connect_test());
//! ```
//!
//! Time never comes from a clock here: every call gets an explicit `now`
//! around the fixed instant [`T0`], so limits are checked at their exact
//! boundary. Waiting is bounded by [`DEADLINE`], never a sleep.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::macros::datetime;
use time::OffsetDateTime;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::TryRecvError;

use crate::{
    EndReason, EndSignal, FailureOutcome, Lifetime, LockoutPolicy, LockoutStore, OneTimeError,
    OneTimeKind, OneTimeStore, SecretHash, Session, SessionBody, SessionEnded, SessionError,
    SessionId, SessionSecret, SessionStore, TicketError, TicketStore,
};

/// The instant every check starts from.
pub const T0: OffsetDateTime = datetime!(2026-11-24 05:15:10.193 UTC);
/// Idle limit of [`lifetime`].
pub const IDLE: Duration = Duration::from_secs(2 * 3_600);
/// Absolute limit of [`lifetime`].
pub const MAX: Duration = Duration::from_secs(8 * 3_600);
/// How long any wait may take before the check fails.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// 2 h idle, 8 h at most.
pub fn lifetime() -> Lifetime {
    Lifetime::new(IDLE, Some(MAX))
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The body the suites store: indexed by user, and by group when it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestBody {
    pub user: String,
    pub group: Option<String>,
    pub note: String,
}

impl TestBody {
    pub fn new(user: &str) -> Self {
        Self {
            user: user.to_owned(),
            group: None,
            note: String::new(),
        }
    }

    pub fn in_group(user: &str, group: &str) -> Self {
        Self {
            group: Some(group.to_owned()),
            ..Self::new(user)
        }
    }
}

impl SessionBody for TestBody {
    fn index_keys(&self) -> Vec<String> {
        let mut keys = vec![format!("user:{}", self.user)];
        if let Some(group) = &self.group {
            keys.push(format!("group:{group}"));
        }
        keys
    }
}

/// Everything published so far.
pub fn drain<B: Clone>(rx: &mut broadcast::Receiver<SessionEnded<B>>) -> Vec<SessionEnded<B>> {
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(ended) => out.push(ended),
            Err(TryRecvError::Empty) => return out,
            Err(other) => panic!("unexpected receive error: {other:?}"),
        }
    }
}

/// Polls once without waiting: whether the signal has fired.
pub fn fired(signal: &mut EndSignal) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    Pin::new(signal).poll(&mut cx).is_ready()
}

async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(DEADLINE, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: not within {DEADLINE:?}"),
    }
}

async fn create<S: SessionStore<TestBody> + ?Sized>(
    store: &S,
    body: TestBody,
    now: OffsetDateTime,
) -> (SessionSecret, Session<TestBody>) {
    store
        .create(body, lifetime(), now)
        .await
        .expect("create succeeds")
}

async fn len<S: SessionStore<TestBody> + ?Sized>(store: &S) -> usize {
    store.len().await.expect("len succeeds")
}

fn always() -> crate::SessionFilter<'static, TestBody> {
    Box::new(|_| true)
}

/// Session-store checks.
pub mod sessions {
    use super::*;

    pub async fn create_returns_a_live_session<S: SessionStore<TestBody>>(make: impl Fn() -> S) {
        let store = make();
        let (secret, session) = create(&store, TestBody::new("u1"), T0).await;
        assert!(session.id.as_str().starts_with("102"), "{}", session.id);
        assert_eq!(session.id.as_str().len(), 25);
        assert_eq!(session.created_at, T0);
        assert_eq!(session.last_activity, T0);
        assert_eq!(session.lifetime, lifetime());
        assert_eq!(session.expires_at(), T0 + IDLE);
        assert_eq!(session.body, TestBody::new("u1"));
        assert_eq!(len(&store).await, 1);
        let parsed = SessionSecret::parse(secret.expose()).expect("own cookie parses");
        let touched = store.touch(&parsed.hash(), T0).await.expect("alive");
        assert_eq!(touched.id, session.id);
        let (other, second) = create(&store, TestBody::new("u1"), T0).await;
        assert_ne!(other.hash(), secret.hash());
        assert_ne!(second.id, session.id);
    }

    pub async fn store_never_holds_the_cookie_value<S: SessionStore<TestBody>>(
        make: impl Fn() -> S,
    ) {
        let store = make();
        let mut rx = store.subscribe();
        let (secret, session) = create(&store, TestBody::new("u1"), T0).await;
        assert!(!session.id.as_str().contains(secret.expose()));
        let shown = serde_json::to_string(&session).expect("serialises");
        assert!(!shown.contains(secret.expose()), "{shown}");
        // Found by the digest of the cookie value, and by nothing else.
        let stranger = SessionSecret::generate();
        assert_eq!(
            store.touch(&stranger.hash(), T0).await,
            Err(SessionError::NotFound)
        );
        let mut raw = [0u8; 32];
        raw.copy_from_slice(&secret.expose().as_bytes()[..32]);
        assert_eq!(
            store.touch(&SecretHash::from_bytes(raw), T0).await,
            Err(SessionError::NotFound),
            "the cookie's own bytes are not a key"
        );
        store
            .end(&secret.hash(), EndReason::SignOut)
            .await
            .expect("end succeeds");
        let ended = drain(&mut rx);
        assert_eq!(ended.len(), 1);
        let shown = format!("{:?}", ended[0]);
        assert!(!shown.contains(secret.expose()), "{shown}");
        assert_eq!(
            ended[0].hash,
            secret.hash(),
            "the end names the cookie digest it was known by"
        );
    }

    pub async fn touch_slides_the_idle_window<S: SessionStore<TestBody>>(make: impl Fn() -> S) {
        let store = make();
        let (secret, _) = create(&store, TestBody::new("u1"), T0).await;
        let later = T0 + secs(3_600);
        let session = store.touch(&secret.hash(), later).await.expect("alive");
        assert_eq!(session.last_activity, later);
        assert_eq!(session.expires_at(), later + IDLE);
        // Idle for 2h counted from the touch, not from creation.
        assert!(store
            .touch(&secret.hash(), T0 + IDLE + secs(1_800))
            .await
            .is_ok());
        // An out-of-order clock reading does not move activity backwards.
        let session = store.touch(&secret.hash(), later).await.expect("alive");
        assert_eq!(session.last_activity, T0 + IDLE + secs(1_800));
    }

    pub async fn touch_at_the_idle_deadline_ends_the_session_once<S: SessionStore<TestBody>>(
        make: impl Fn() -> S,
    ) {
        let store = make();
        let mut rx = store.subscribe();
        let (early, _) = create(&store, TestBody::new("u1"), T0).await;
        let (secret, session) = create(&store, TestBody::new("u1"), T0).await;
        let just_before = T0 + IDLE - time::Duration::nanoseconds(1);
        assert!(store.touch(&early.hash(), just_before).await.is_ok());
        assert_eq!(
            store.touch(&secret.hash(), T0 + IDLE).await,
            Err(SessionError::Expired {
                reason: EndReason::IdleTimeout
            }),
            "the deadline instant itself is ended"
        );
        assert_eq!(
            store.touch(&secret.hash(), T0 + IDLE).await,
            Err(SessionError::NotFound)
        );
        assert_eq!(
            store.get(&session.id, T0).await,
            Err(SessionError::NotFound),
            "the id index is cleaned up too"
        );
        assert_eq!(len(&store).await, 1);
        let ended = drain(&mut rx);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].reason, EndReason::IdleTimeout);
        assert_eq!(ended[0].session.id, session.id);
    }

    pub async fn touch_cannot_outlive_max_lifetime<S: SessionStore<TestBody>>(
        make: impl Fn() -> S,
    ) {
        let store = make();
        let mut rx = store.subscribe();
        let (secret, _) = create(&store, TestBody::new("u1"), T0).await;
        let mut now = T0;
        while now + secs(3_600) < T0 + MAX {
            now += secs(3_600);
            store
                .touch(&secret.hash(), now)
                .await
                .expect("active use keeps it alive");
        }
        let last = store
            .touch(&secret.hash(), T0 + MAX - time::Duration::nanoseconds(1))
            .await
            .expect("alive until the very end");
        assert_eq!(last.expires_at(), T0 + MAX, "capped by the lifetime");
        assert_eq!(
            store.touch(&secret.hash(), T0 + MAX).await,
            Err(SessionError::Expired {
                reason: EndReason::MaxLifetime
            })
        );
        let ended = drain(&mut rx);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].reason, EndReason::MaxLifetime);
    }

    pub async fn unknown_sessions_are_not_found<S: SessionStore<TestBody>>(make: impl Fn() -> S) {
        let store = make();
        create(&store, TestBody::new("u1"), T0).await;
        let stranger = SessionSecret::generate().hash();
        let nobody = SessionId::from("102nope");
        assert_eq!(
            store.touch(&stranger, T0).await,
            Err(SessionError::NotFound)
        );
        assert_eq!(store.get(&nobody, T0).await, Err(SessionError::NotFound));
        assert_eq!(
            store.update(&stranger, T0, Box::new(|_| {})).await,
            Err(SessionError::NotFound)
        );
        assert_eq!(
            store.update_by_id(&nobody, T0, Box::new(|_| {})).await,
            Err(SessionError::NotFound)
        );
        assert_eq!(store.end(&stranger, EndReason::SignOut).await, Ok(None));
        assert_eq!(store.end_by_id(&nobody, EndReason::Revoked).await, Ok(None));
        assert_eq!(
            store
                .end_indexed("user:nobody", EndReason::UserRevoked, always())
                .await,
            Ok(Vec::new())
        );
        assert_eq!(store.list_indexed("user:nobody", T0).await, Ok(Vec::new()));
        assert_eq!(len(&store).await, 1);
    }

    pub async fn get_does_not_record_activity_but_does_expire<S: SessionStore<TestBody>>(
        make: impl Fn() -> S,
    ) {
        let store = make();
        let mut rx = store.subscribe();
        let (_, session) = create(&store, TestBody::new("u1"), T0).await;
        let seen = store
            .get(&session.id, T0 + secs(3_600))
            .await
            .expect("alive");
        assert_eq!(seen.last_activity, T0);
        assert_eq!(seen.expires_at(), T0 + IDLE);
        assert_eq!(
            store.get(&session.id, T0 + IDLE).await,
            Err(SessionError::Expired {
                reason: EndReason::IdleTimeout
            })
        );
        assert_eq!(
            store.get(&session.id, T0 + IDLE).await,
            Err(SessionError::NotFound)
        );
        assert_eq!(drain(&mut rx).len(), 1);
        assert_eq!(len(&store).await, 0);
    }

    pub async fn update_changes_a_live_session<S: SessionStore<TestBody>>(make: impl Fn() -> S) {
        let store = make();
        let (secret, session) = create(&store, TestBody::new("u1"), T0).await;
        let at = T0 + secs(20);
        let updated = store
            .update(
                &secret.hash(),
                at,
                Box::new(move |s| {
                    s.body.note = "mfa".into();
                    s.record_activity(at);
                }),
            )
            .await
            .expect("alive");
        assert_eq!(updated.body.note, "mfa");
        assert_eq!(updated.last_activity, at);
        let seen = store.get(&session.id, at).await.expect("alive");
        assert_eq!(seen, updated, "the change is stored");

        let later = T0 + secs(3_600);
        let refreshed = store
            .update_by_id(
                &session.id,
                later,
                Box::new(move |s| s.record_activity(later)),
            )
            .await
            .expect("alive");
        assert_eq!(refreshed.expires_at(), later + IDLE);
        assert_eq!(refreshed.body.note, "mfa");

        // The id and creation time belong to the store.
        let kept = store
            .update(
                &secret.hash(),
                later,
                Box::new(|s| {
                    s.id = SessionId::from("102forged");
                    s.created_at = T0 + MAX;
                }),
            )
            .await
            .expect("alive");
        assert_eq!(kept.id, session.id);
        assert_eq!(kept.created_at, T0);
        assert!(store.get(&session.id, later).await.is_ok());
    }

    pub async fn update_cannot_revive_an_expired_session<S: SessionStore<TestBody>>(
        make: impl Fn() -> S,
    ) {
        let store = make();
        let mut rx = store.subscribe();
        let (secret, _) = create(&store, TestBody::new("u1"), T0).await;
        let (_, by_id) = create(&store, TestBody::new("u2"), T0).await;
        let ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        assert_eq!(
            store
                .update(
                    &secret.hash(),
                    T0 + IDLE,
                    Box::new(move |s| {
                        flag.store(true, Ordering::SeqCst);
                        s.record_activity(T0 + IDLE);
                    }),
                )
                .await,
            Err(SessionError::Expired {
                reason: EndReason::IdleTimeout
            })
        );
        let flag = Arc::clone(&ran);
        assert_eq!(
            store
                .update_by_id(
                    &by_id.id,
                    T0 + MAX,
                    Box::new(move |_| flag.store(true, Ordering::SeqCst)),
                )
                .await,
            Err(SessionError::Expired {
                reason: EndReason::IdleTimeout
            })
        );
        assert!(
            !ran.load(Ordering::SeqCst),
            "no change ran on a dead session"
        );
        assert_eq!(
            store.touch(&secret.hash(), T0).await,
            Err(SessionError::NotFound),
            "an earlier clock cannot bring it back"
        );
        assert_eq!(drain(&mut rx).len(), 2);
    }

    pub async fn update_reindexes_when_keys_change<S: SessionStore<TestBody>>(
        make: impl Fn() -> S,
    ) {
        let store = make();
        let (secret, session) = create(&store, TestBody::in_group("u1", "staff"), T0).await;
        let listed = store.list_indexed("group:staff", T0).await.expect("lists");
        assert_eq!(listed.len(), 1);
        store
            .update(
                &secret.hash(),
                T0,
                Box::new(|s| s.body.group = Some("admins".into())),
            )
            .await
            .expect("alive");
        assert_eq!(store.list_indexed("group:staff", T0).await, Ok(Vec::new()));
        assert!(store
            .end_indexed("group:staff", EndReason::Revoked, always())
            .await
            .expect("ends")
            .is_empty());
        let ended = store
            .end_indexed("group:admins", EndReason::Revoked, always())
            .await
            .expect("ends");
        assert_eq!(
            ended.iter().map(|s| &s.id).collect::<Vec<_>>(),
            [&session.id]
        );
    }

    pub async fn end_and_end_by_id_publish_exactly_once<S: SessionStore<TestBody>>(
        make: impl Fn() -> S,
    ) {
        let store = make();
        let mut rx = store.subscribe();
        let (secret, session) = create(&store, TestBody::new("u1"), T0).await;
        let (other_secret, other) = create(&store, TestBody::new("u1"), T0).await;
        let ended = store
            .end(&secret.hash(), EndReason::SignOut)
            .await
            .expect("end succeeds");
        assert_eq!(ended.map(|s| s.id), Some(session.id.clone()));
        assert_eq!(
            store.end(&secret.hash(), EndReason::SignOut).await,
            Ok(None)
        );
        assert_eq!(
            store.end_by_id(&session.id, EndReason::Revoked).await,
            Ok(None)
        );
        let revoked = store
            .end_by_id(&other.id, EndReason::Revoked)
            .await
            .expect("end succeeds");
        assert_eq!(revoked.map(|s| s.id), Some(other.id.clone()));
        assert_eq!(
            store.touch(&other_secret.hash(), T0).await,
            Err(SessionError::NotFound)
        );
        assert_eq!(store.list_indexed("user:u1", T0).await, Ok(Vec::new()));
        let ended = drain(&mut rx);
        assert_eq!(
            ended
                .iter()
                .map(|e| (e.session.id.clone(), e.reason))
                .collect::<Vec<_>>(),
            [
                (session.id, EndReason::SignOut),
                (other.id, EndReason::Revoked)
            ]
        );
        assert_eq!(len(&store).await, 0);
        assert_eq!(store.is_empty().await, Ok(true));
    }

    pub async fn end_indexed_ends_what_the_filter_accepts<S: SessionStore<TestBody>>(
        make: impl Fn() -> S,
    ) {
        let store = make();
        let mut rx = store.subscribe();
        let mut alice = Vec::new();
        for i in 0..3 {
            let mut body = TestBody::new("alice");
            body.note = format!("n{i}");
            alice.push(create(&store, body, T0 + secs(i)).await);
        }
        let (bob, _) = create(&store, TestBody::new("bob"), T0).await;
        let ended = store
            .end_indexed(
                "user:alice",
                EndReason::SingleLogout,
                Box::new(|s| s.body.note == "n1"),
            )
            .await
            .expect("ends");
        assert_eq!(
            ended.iter().map(|s| &s.id).collect::<Vec<_>>(),
            [&alice[1].1.id]
        );
        let ended = store
            .end_indexed("user:alice", EndReason::UserRevoked, always())
            .await
            .expect("ends");
        assert_eq!(
            ended.iter().map(|s| &s.id).collect::<Vec<_>>(),
            [&alice[0].1.id, &alice[2].1.id],
            "oldest first"
        );
        assert!(store
            .end_indexed("user:alice", EndReason::UserRevoked, always())
            .await
            .expect("ends")
            .is_empty());
        assert!(store.touch(&bob.hash(), T0).await.is_ok());
        let reasons: Vec<EndReason> = drain(&mut rx).iter().map(|e| e.reason).collect();
        assert_eq!(
            reasons,
            [
                EndReason::SingleLogout,
                EndReason::UserRevoked,
                EndReason::UserRevoked
            ]
        );
    }

    pub async fn end_indexed_ends_expired_sessions_too<S: SessionStore<TestBody>>(
        make: impl Fn() -> S,
    ) {
        let store = make();
        let mut rx = store.subscribe();
        create(&store, TestBody::new("alice"), T0).await;
        // Past its limits but not yet noticed: revoking still ends it, once,
        // with the revocation's reason.
        let ended = store
            .end_indexed("user:alice", EndReason::UserRevoked, always())
            .await
            .expect("ends");
        assert_eq!(ended.len(), 1);
        assert_eq!(store.sweep(T0 + MAX).await, Ok(Vec::new()));
        let ended = drain(&mut rx);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].reason, EndReason::UserRevoked);
    }

    pub async fn list_indexed_is_oldest_first_and_ends_expired<S: SessionStore<TestBody>>(
        make: impl Fn() -> S,
    ) {
        let store = make();
        let mut rx = store.subscribe();
        let (_, old) = create(&store, TestBody::new("alice"), T0).await;
        let (_, newer) = create(&store, TestBody::new("alice"), T0 + secs(3_600)).await;
        let (_, middle) = create(&store, TestBody::new("alice"), T0 + secs(60)).await;
        create(&store, TestBody::new("bob"), T0).await;
        let listed = store
            .list_indexed("user:alice", T0 + secs(3_600))
            .await
            .expect("lists");
        assert_eq!(
            listed.iter().map(|s| &s.id).collect::<Vec<_>>(),
            [&old.id, &middle.id, &newer.id]
        );
        assert!(listed.iter().all(|s| s.last_activity < T0 + secs(3_601)));
        let listed = store
            .list_indexed("user:alice", T0 + IDLE + secs(60))
            .await
            .expect("lists");
        assert_eq!(
            listed.iter().map(|s| &s.id).collect::<Vec<_>>(),
            [&newer.id]
        );
        let ended = drain(&mut rx);
        let mut ended_ids: Vec<&SessionId> = ended.iter().map(|e| &e.session.id).collect();
        ended_ids.sort();
        let mut expected = vec![&old.id, &middle.id];
        expected.sort();
        assert_eq!(ended_ids, expected);
        assert!(ended.iter().all(|e| e.reason == EndReason::IdleTimeout));
        assert_eq!(len(&store).await, 2);
    }

    pub async fn sweep_ends_exactly_the_expired_sessions<S: SessionStore<TestBody>>(
        make: impl Fn() -> S,
    ) {
        let store = make();
        let mut rx = store.subscribe();
        let (old_secret, old) = create(&store, TestBody::new("u1"), T0).await;
        let (_, idle) = create(&store, TestBody::new("u2"), T0 + secs(10)).await;
        let (_, fresh) = create(&store, TestBody::new("u3"), T0 + MAX - secs(60)).await;
        // Keep "old" active so its lifetime, not idleness, ends it.
        let mut now = T0;
        while now + secs(3_600) < T0 + MAX {
            now += secs(3_600);
            store.touch(&old_secret.hash(), now).await.expect("alive");
        }
        assert!(store.sweep(T0 + IDLE).await.expect("sweeps").is_empty());
        let swept = store.sweep(T0 + IDLE + secs(10)).await.expect("sweeps");
        assert_eq!(swept.iter().map(|s| &s.id).collect::<Vec<_>>(), [&idle.id]);
        assert!(store
            .sweep(T0 + MAX - time::Duration::nanoseconds(1))
            .await
            .expect("sweeps")
            .is_empty());
        let swept = store.sweep(T0 + MAX).await.expect("sweeps");
        assert_eq!(swept.iter().map(|s| &s.id).collect::<Vec<_>>(), [&old.id]);
        assert!(store.sweep(T0 + MAX).await.expect("sweeps").is_empty());
        let reasons: HashMap<SessionId, EndReason> = drain(&mut rx)
            .into_iter()
            .map(|e| (e.session.id, e.reason))
            .collect();
        assert_eq!(reasons.len(), 2);
        assert_eq!(reasons.get(&idle.id), Some(&EndReason::IdleTimeout));
        assert_eq!(reasons.get(&old.id), Some(&EndReason::MaxLifetime));
        assert_eq!(len(&store).await, 1);
        assert!(store.get(&fresh.id, T0 + MAX).await.is_ok());
    }

    pub async fn ended_fires_on_every_end_path<S: SessionStore<TestBody>>(make: impl Fn() -> S) {
        let store = make();
        let expired = T0 + IDLE;
        for path in 0..8 {
            let (secret, session) = create(&store, TestBody::new("u1"), T0).await;
            let hash = secret.hash();
            let mut signal = store.ended(&hash);
            let mut twin = store.ended(&hash);
            assert!(!fired(&mut signal), "path {path}: live session");
            assert!(!signal.is_ended());
            match path {
                0 => drop(store.end(&hash, EndReason::SignOut).await),
                1 => drop(store.end_by_id(&session.id, EndReason::Revoked).await),
                2 => drop(
                    store
                        .end_indexed("user:u1", EndReason::UserRevoked, always())
                        .await,
                ),
                3 => drop(store.touch(&hash, expired).await),
                4 => drop(store.get(&session.id, expired).await),
                5 => drop(store.update(&hash, expired, Box::new(|_| {})).await),
                6 => drop(store.list_indexed("user:u1", expired).await),
                _ => drop(store.sweep(expired).await),
            }
            within(&format!("end path {path}"), &mut signal).await;
            within(&format!("second waiter, path {path}"), &mut twin).await;
            assert!(
                fired(&mut signal),
                "path {path}: a fired signal stays fired"
            );
            assert_eq!(len(&store).await, 0, "path {path}");
        }
    }

    pub async fn ended_resolves_at_once_when_not_live<S: SessionStore<TestBody>>(
        make: impl Fn() -> S,
    ) {
        let store = make();
        let mut unknown = store.ended(&SessionSecret::generate().hash());
        assert!(unknown.is_ended());
        assert!(fired(&mut unknown));
        let (secret, _) = create(&store, TestBody::new("u1"), T0).await;
        store
            .end(&secret.hash(), EndReason::SignOut)
            .await
            .expect("end succeeds");
        let mut gone = store.ended(&secret.hash());
        assert!(gone.is_ended());
        assert!(fired(&mut gone));
    }

    pub async fn ended_waiter_moves_into_a_task<S: SessionStore<TestBody> + 'static>(
        make: impl Fn() -> S,
    ) {
        let store = Arc::new(make());
        let (secret, _) = create(&*store, TestBody::new("u1"), T0).await;
        let waiter = tokio::spawn(store.ended(&secret.hash()));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "still live");
        store
            .end(&secret.hash(), EndReason::UniversalLogout)
            .await
            .expect("end succeeds");
        within("spawned waiter", waiter)
            .await
            .expect("waiter did not panic");
    }

    /// The boxed form (what the gateway hands the proxy for streams and
    /// tunnels) fires like the signal: on the end, and at once when gone.
    pub async fn boxed_ended_fires_like_the_signal<S: SessionStore<TestBody> + 'static>(
        make: impl Fn() -> S,
    ) {
        let store = Arc::new(make());
        within(
            "boxed signal of an unknown session",
            store.ended(&SessionSecret::generate().hash()).boxed(),
        )
        .await;
        let (secret, _) = create(&*store, TestBody::new("u1"), T0).await;
        let waiter = tokio::spawn(store.ended(&secret.hash()).boxed());
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "still live");
        store
            .end(&secret.hash(), EndReason::SignOut)
            .await
            .expect("end succeeds");
        within("boxed waiter", waiter)
            .await
            .expect("waiter did not panic");
    }

    /// Many tasks race to end the same sessions by every path at once; each
    /// session must still be removed and published exactly once. Run it on
    /// a multi-threaded runtime.
    pub async fn concurrent_enders_publish_exactly_once<S: SessionStore<TestBody> + 'static>(
        make: impl Fn() -> S,
    ) {
        const SESSIONS: usize = 200;
        const TASKS: usize = 8;
        let store = Arc::new(make());
        let mut rx = store.subscribe();
        let mut sessions = Vec::with_capacity(SESSIONS);
        for i in 0..SESSIONS {
            let (secret, session) =
                create(&*store, TestBody::new(&format!("u{}", i % 10)), T0).await;
            sessions.push((secret.hash(), session));
        }
        let sessions = Arc::new(sessions);
        let expired = T0 + IDLE;
        let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let store = Arc::clone(&store);
                let sessions = Arc::clone(&sessions);
                let barrier = Arc::clone(&barrier);
                tokio::spawn(async move {
                    barrier.wait().await;
                    for (i, (hash, session)) in sessions.iter().enumerate() {
                        let key = format!("user:{}", session.body.user);
                        match (t + i) % 6 {
                            0 => drop(store.touch(hash, expired).await),
                            1 => drop(store.end_by_id(&session.id, EndReason::Revoked).await),
                            2 => drop(store.sweep(expired).await),
                            3 => drop(
                                store
                                    .end_indexed(&key, EndReason::UserRevoked, always())
                                    .await,
                            ),
                            4 => drop(store.get(&session.id, expired).await),
                            _ => drop(store.end(hash, EndReason::SignOut).await),
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            within("ender task", task).await.expect("task finished");
        }
        assert_eq!(len(&*store).await, 0);
        let mut per_session: HashMap<SessionId, usize> = HashMap::new();
        let mut total = 0;
        while total < SESSIONS {
            let ended = within("end notifications", rx.recv())
                .await
                .expect("no notification lost");
            *per_session.entry(ended.session.id).or_default() += 1;
            total += 1;
        }
        assert_eq!(per_session.len(), SESSIONS);
        assert!(per_session.values().all(|n| *n == 1), "{per_session:?}");
        assert!(
            matches!(rx.try_recv(), Err(TryRecvError::Empty)),
            "no duplicates"
        );
    }
}

/// One-time-use checks. `make(capacity)` builds a store holding at most
/// `capacity` entries per kind.
pub mod one_time {
    use super::*;

    fn until(n: u64) -> OffsetDateTime {
        T0 + secs(n)
    }

    pub async fn first_use_wins_until_expiry<S: OneTimeStore>(make: impl Fn(usize) -> S) {
        let store = make(100);
        let kind = OneTimeKind::AssertionId;
        assert_eq!(store.first_use(kind, "a", until(10), T0).await, Ok(()));
        assert_eq!(
            store.first_use(kind, "a", until(60), T0 + secs(9)).await,
            Err(OneTimeError::Replayed)
        );
        assert_eq!(
            store.first_use(kind, "a", until(60), until(10)).await,
            Ok(()),
            "usable again once its until has passed"
        );
        assert_eq!(
            store.first_use(kind, "a", until(90), until(59)).await,
            Err(OneTimeError::Replayed),
            "and remembered for the new until"
        );
    }

    pub async fn kinds_are_separate_namespaces<S: OneTimeStore>(make: impl Fn(usize) -> S) {
        let store = make(100);
        for kind in OneTimeKind::ALL {
            assert_eq!(store.first_use(kind, "same", until(10), T0).await, Ok(()));
        }
        assert_eq!(
            store
                .first_use(OneTimeKind::JwtId, "same", until(10), T0)
                .await,
            Err(OneTimeError::Replayed)
        );
    }

    pub async fn first_use_all_is_all_or_nothing<S: OneTimeStore>(make: impl Fn(usize) -> S) {
        let store = make(100);
        let kind = OneTimeKind::AssertionId;
        assert_eq!(
            store
                .first_use_all(kind, &["response-1", "assertion-1"], until(10), T0)
                .await,
            Ok(())
        );
        for replayed in [
            &["assertion-1"][..],
            &["response-1", "assertion-2"],
            &["assertion-2", "assertion-1"],
        ] {
            assert_eq!(
                store.first_use_all(kind, replayed, until(10), T0).await,
                Err(OneTimeError::Replayed),
                "{replayed:?}"
            );
        }
        assert_eq!(
            store.first_use(kind, "assertion-2", until(10), T0).await,
            Ok(()),
            "a refused batch records nothing"
        );
        assert_eq!(
            store.first_use_all(kind, &[], until(10), T0).await,
            Ok(()),
            "nothing to consume is not a replay"
        );
    }

    pub async fn advance_is_monotonic_per_key<S: OneTimeStore>(make: impl Fn(usize) -> S) {
        let store = make(100);
        let kind = OneTimeKind::TotpStep;
        let until = until(90);
        assert_eq!(store.advance(kind, "u1", 100, until, T0).await, Ok(()));
        assert_eq!(
            store.advance(kind, "u1", 100, until, T0).await,
            Err(OneTimeError::Replayed),
            "same code replayed"
        );
        assert_eq!(
            store.advance(kind, "u1", 99, until, T0).await,
            Err(OneTimeError::Replayed),
            "older code inside the window"
        );
        assert_eq!(store.advance(kind, "u1", 101, until, T0).await, Ok(()));
        assert_eq!(
            store.advance(kind, "u1", 100, until, T0).await,
            Err(OneTimeError::Replayed)
        );
        // Keys are independent.
        assert_eq!(store.advance(kind, "u2", 100, until, T0).await, Ok(()));
        assert_eq!(
            store.advance(kind, "u2", 0, until, T0).await,
            Err(OneTimeError::Replayed)
        );
        // Past its until the mark is forgotten (the caller chose `until` so
        // that nothing at or below it can verify any more).
        assert_eq!(store.advance(kind, "u1", 5, until, until).await, Ok(()));
    }

    pub async fn full_fails_closed<S: OneTimeStore>(make: impl Fn(usize) -> S) {
        let store = make(2);
        let kind = OneTimeKind::AssertionId;
        assert_eq!(store.first_use(kind, "a", until(10), T0).await, Ok(()));
        assert_eq!(store.first_use(kind, "b", until(20), T0).await, Ok(()));
        assert_eq!(
            store.first_use(kind, "c", until(10), T0).await,
            Err(OneTimeError::Full),
            "no live entry is evicted"
        );
        assert_eq!(
            store.first_use(kind, "a", until(10), T0).await,
            Err(OneTimeError::Replayed),
            "a is still remembered"
        );
        assert_eq!(
            store
                .advance(OneTimeKind::TotpStep, "u1", 1, until(10), T0)
                .await,
            Ok(()),
            "capacity is per kind"
        );
        assert_eq!(
            store
                .first_use_all(kind, &["c", "d"], until(30), until(10))
                .await,
            Err(OneTimeError::Full),
            "b is still live, so only one slot frees up"
        );
        assert_eq!(
            store.first_use(kind, "c", until(30), until(10)).await,
            Ok(()),
            "expired entries make room"
        );
        assert_eq!(
            store.first_use(kind, "b", until(30), until(19)).await,
            Err(OneTimeError::Replayed)
        );
        assert_eq!(
            store.advance(kind, "e", 1, until(30), until(19)).await,
            Err(OneTimeError::Full),
            "advance fails closed too"
        );
    }

    /// Run on a multi-threaded runtime.
    pub async fn concurrent_first_use_accepts_exactly_once<S: OneTimeStore + 'static>(
        make: impl Fn(usize) -> S,
    ) {
        let store = Arc::new(make(100));
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = Arc::clone(&store);
                let barrier = Arc::clone(&barrier);
                tokio::spawn(async move {
                    barrier.wait().await;
                    let used = store
                        .first_use(OneTimeKind::JwtId, "jti-1", until(60), T0)
                        .await
                        .is_ok();
                    let advanced = store
                        .advance(OneTimeKind::TotpStep, "u1", 42 + (i % 2), until(60), T0)
                        .await
                        .is_ok();
                    (used, advanced)
                })
            })
            .collect();
        let mut used = 0;
        let mut advanced = 0;
        for task in tasks {
            let (u, a) = within("one-time task", task).await.expect("task finished");
            used += usize::from(u);
            advanced += usize::from(a);
        }
        assert_eq!(used, 1);
        assert!(
            (1..=2).contains(&advanced),
            "42 and 43 each at most once: {advanced}"
        );
    }
}

/// Ticket checks. `make()` builds an empty store of `TestBody` tickets.
pub mod tickets {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    pub async fn ticket_is_256_random_bits_and_redacted<S: TicketStore<TestBody>>(
        make: impl Fn() -> S,
    ) {
        let store = make();
        let a = store
            .issue(TestBody::new("u1"), T0 + TTL, T0)
            .await
            .expect("issued");
        let b = store
            .issue(TestBody::new("u1"), T0 + TTL, T0)
            .await
            .expect("issued");
        assert_eq!(a.expose().len(), 43);
        assert!(a
            .expose()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(a.expose(), b.expose());
        assert_eq!(format!("{a:?}"), "TicketSecret(<redacted>)");
    }

    pub async fn ticket_redeems_once<S: TicketStore<TestBody>>(make: impl Fn() -> S) {
        let store = make();
        let ticket = store
            .issue(TestBody::new("u1"), T0 + TTL, T0)
            .await
            .expect("issued");
        assert_eq!(
            store.redeem(ticket.expose(), T0 + TTL - secs(1)).await,
            Ok(TestBody::new("u1"))
        );
        assert_eq!(
            store.redeem(ticket.expose(), T0).await,
            Err(TicketError::Unknown)
        );
        assert_eq!(
            store.redeem("not-a-ticket", T0).await,
            Err(TicketError::Unknown)
        );
    }

    pub async fn expired_ticket_is_consumed_too<S: TicketStore<TestBody>>(make: impl Fn() -> S) {
        let store = make();
        let ticket = store
            .issue(TestBody::new("u1"), T0 + TTL, T0)
            .await
            .expect("issued");
        assert_eq!(
            store.redeem(ticket.expose(), T0 + TTL).await,
            Err(TicketError::Expired),
            "the expiry instant itself is expired"
        );
        assert_eq!(
            store.redeem(ticket.expose(), T0).await,
            Err(TicketError::Unknown),
            "even an earlier clock can't reuse it"
        );
    }

    pub async fn issue_drops_expired_tickets<S: TicketStore<TestBody>>(make: impl Fn() -> S) {
        let store = make();
        let stale = store
            .issue(TestBody::new("u1"), T0 + TTL, T0)
            .await
            .expect("issued");
        let live = store
            .issue(TestBody::new("u2"), T0 + secs(30) + TTL, T0 + secs(30))
            .await
            .expect("issued");
        store
            .issue(TestBody::new("u3"), T0 + TTL + TTL, T0 + TTL)
            .await
            .expect("issued");
        assert_eq!(
            store.redeem(stale.expose(), T0).await,
            Err(TicketError::Unknown),
            "dropped when a later issue found it expired"
        );
        assert_eq!(
            store
                .redeem(live.expose(), T0 + TTL)
                .await
                .map(|body| body.user),
            Ok("u2".to_owned())
        );
    }

    /// Run on a multi-threaded runtime.
    pub async fn concurrent_redeem_succeeds_once<S: TicketStore<TestBody> + 'static>(
        make: impl Fn() -> S,
    ) {
        let store = Arc::new(make());
        let ticket = store
            .issue(TestBody::new("u1"), T0 + TTL, T0)
            .await
            .expect("issued");
        let presented = Arc::new(ticket.expose().to_owned());
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = Arc::clone(&store);
                let presented = Arc::clone(&presented);
                let barrier = Arc::clone(&barrier);
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.redeem(&presented, T0).await.is_ok()
                })
            })
            .collect();
        let mut redeemed = 0;
        for task in tasks {
            redeemed += usize::from(within("redeem task", task).await.expect("task finished"));
        }
        assert_eq!(redeemed, 1);
    }
}

/// Lockout checks. `make()` builds an empty store.
pub mod lockouts {
    use super::*;

    fn policy(max_failures: u32, lock_secs: u64) -> LockoutPolicy {
        LockoutPolicy {
            max_failures,
            lockout_duration: secs(lock_secs),
        }
    }

    async fn fail<S: LockoutStore>(
        store: &S,
        user: &str,
        policy: &LockoutPolicy,
        at: OffsetDateTime,
    ) -> FailureOutcome {
        store
            .record_failure(user, policy, at)
            .await
            .expect("record_failure succeeds")
    }

    async fn until<S: LockoutStore>(
        store: &S,
        user: &str,
        at: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        store
            .locked_until(user, at)
            .await
            .expect("locked_until succeeds")
    }

    pub async fn locks_at_the_threshold_and_counts_down<S: LockoutStore>(make: impl Fn() -> S) {
        let store = make();
        let policy = policy(5, 900);
        for remaining in (1..=4).rev() {
            assert_eq!(until(&store, "u1", T0).await, None);
            assert_eq!(
                fail(&store, "u1", &policy, T0).await,
                FailureOutcome::Counted { remaining }
            );
        }
        let end = T0 + secs(900);
        assert_eq!(
            fail(&store, "u1", &policy, T0).await,
            FailureOutcome::LockedNow { until: end }
        );
        assert_eq!(until(&store, "u1", T0 + secs(899)).await, Some(end));
        assert_eq!(
            fail(&store, "u1", &policy, T0 + secs(500)).await,
            FailureOutcome::AlreadyLocked { until: end },
            "a failure while locked neither extends the lock nor locks again"
        );
        assert_eq!(
            until(&store, "u1", T0 + secs(900)).await,
            None,
            "the end itself is unlocked"
        );
        assert_eq!(
            until(&store, "u2", T0).await,
            None,
            "other users are unaffected"
        );
        let locked = store.locked(T0 + secs(1)).await.expect("locked succeeds");
        assert_eq!(locked.get("u1"), Some(&end));
        assert_eq!(locked.len(), 1);
    }

    pub async fn an_ended_lock_starts_the_count_over<S: LockoutStore>(make: impl Fn() -> S) {
        let store = make();
        let policy = policy(2, 60);
        fail(&store, "u1", &policy, T0).await;
        assert_eq!(
            fail(&store, "u1", &policy, T0 + secs(1)).await,
            FailureOutcome::LockedNow {
                until: T0 + secs(61)
            }
        );
        assert_eq!(
            fail(&store, "u1", &policy, T0 + secs(100)).await,
            FailureOutcome::Counted { remaining: 1 }
        );
        assert!(
            store
                .locked(T0 + secs(100))
                .await
                .expect("locked")
                .is_empty(),
            "an ended lock is not listed"
        );
    }

    pub async fn success_clears_the_count<S: LockoutStore>(make: impl Fn() -> S) {
        let store = make();
        let policy = policy(3, 60);
        fail(&store, "u1", &policy, T0).await;
        fail(&store, "u1", &policy, T0).await;
        store.record_success("u1").await.expect("record_success");
        assert_eq!(
            fail(&store, "u1", &policy, T0).await,
            FailureOutcome::Counted { remaining: 2 }
        );
    }

    pub async fn zero_max_failures_locks_on_the_first<S: LockoutStore>(make: impl Fn() -> S) {
        let store = make();
        assert_eq!(
            fail(&store, "u1", &policy(0, 60), T0).await,
            FailureOutcome::LockedNow {
                until: T0 + secs(60)
            }
        );
    }

    pub async fn a_restored_lock_holds_and_an_ended_one_is_ignored<S: LockoutStore>(
        make: impl Fn() -> S,
    ) {
        let store = make();
        let policy = policy(3, 60);
        let restore = |user: &'static str, end: OffsetDateTime, at: OffsetDateTime| {
            let store = &store;
            let policy = &policy;
            async move { store.restore(user, end, policy, at).await.expect("restore") }
        };
        restore("u1", T0 + secs(100), T0 + secs(10)).await;
        assert_eq!(
            until(&store, "u1", T0 + secs(50)).await,
            Some(T0 + secs(100))
        );
        assert_eq!(
            fail(&store, "u1", &policy, T0 + secs(50)).await,
            FailureOutcome::AlreadyLocked {
                until: T0 + secs(100)
            }
        );
        restore("u1", T0 + secs(80), T0 + secs(50)).await;
        assert_eq!(
            until(&store, "u1", T0 + secs(90)).await,
            Some(T0 + secs(100)),
            "the later end wins"
        );
        assert_eq!(until(&store, "u1", T0 + secs(100)).await, None);
        restore("u2", T0 + secs(5), T0 + secs(10)).await;
        assert_eq!(until(&store, "u2", T0 + secs(10)).await, None);
        assert_eq!(
            fail(&store, "u2", &policy, T0 + secs(10)).await,
            FailureOutcome::Counted { remaining: 2 }
        );
    }

    pub async fn unlock_lifts_a_running_lock_and_the_count<S: LockoutStore>(make: impl Fn() -> S) {
        let store = make();
        let policy = policy(2, 60);
        fail(&store, "u1", &policy, T0).await;
        fail(&store, "u1", &policy, T0).await;
        assert_eq!(
            until(&store, "u1", T0 + secs(10)).await,
            Some(T0 + secs(60))
        );
        assert!(store.unlock("u1", T0 + secs(10)).await.expect("unlock"));
        assert_eq!(until(&store, "u1", T0 + secs(10)).await, None);
        assert!(store
            .locked(T0 + secs(10))
            .await
            .expect("locked")
            .is_empty());
        assert_eq!(
            fail(&store, "u1", &policy, T0 + secs(11)).await,
            FailureOutcome::Counted { remaining: 1 },
            "counting starts over"
        );
        assert!(
            !store.unlock("u1", T0 + secs(12)).await.expect("unlock"),
            "nothing to lift"
        );
        assert!(!store.unlock("nobody", T0 + secs(12)).await.expect("unlock"));
    }

    pub async fn user_ids_are_data_not_syntax<S: LockoutStore>(make: impl Fn() -> S) {
        let store = make();
        let policy = policy(1, 60);
        let odd = "u:1 {x} * \\ \"'\u{e9}";
        assert!(matches!(
            fail(&store, odd, &policy, T0).await,
            FailureOutcome::LockedNow { .. }
        ));
        assert_eq!(until(&store, "u:1", T0).await, None);
        let locked = store.locked(T0).await.expect("locked");
        assert!(locked.contains_key(odd), "{locked:?}");
    }

    /// Run on a multi-threaded runtime: eight failures at once, as from
    /// eight nodes, lock exactly once.
    pub async fn concurrent_failures_lock_exactly_once<S: LockoutStore + 'static>(
        make: impl Fn() -> S,
    ) {
        let store = Arc::new(make());
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = Arc::clone(&store);
                let barrier = Arc::clone(&barrier);
                tokio::spawn(async move {
                    barrier.wait().await;
                    store
                        .record_failure("u1", &policy(5, 60), T0)
                        .await
                        .expect("record_failure succeeds")
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(within("lockout task", task).await.expect("task finished"));
        }
        let locked_now = outcomes
            .iter()
            .filter(|o| matches!(o, FailureOutcome::LockedNow { .. }))
            .count();
        let already = outcomes
            .iter()
            .filter(|o| matches!(o, FailureOutcome::AlreadyLocked { .. }))
            .count();
        assert_eq!((locked_now, already), (1, 3), "{outcomes:?}");
    }
}

/// One `#[tokio::test]` per session-store check, in a module `$name`, each
/// on a fresh store from `$make` (an expression usable as `Fn() -> S`).
#[macro_export]
macro_rules! session_store_suite {
    ($name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::conformance::sessions as suite;

            $crate::session_store_suite!(@tests $make;
                create_returns_a_live_session,
                store_never_holds_the_cookie_value,
                touch_slides_the_idle_window,
                touch_at_the_idle_deadline_ends_the_session_once,
                touch_cannot_outlive_max_lifetime,
                unknown_sessions_are_not_found,
                get_does_not_record_activity_but_does_expire,
                update_changes_a_live_session,
                update_cannot_revive_an_expired_session,
                update_reindexes_when_keys_change,
                end_and_end_by_id_publish_exactly_once,
                end_indexed_ends_what_the_filter_accepts,
                end_indexed_ends_expired_sessions_too,
                list_indexed_is_oldest_first_and_ends_expired,
                sweep_ends_exactly_the_expired_sessions,
                ended_fires_on_every_end_path,
                ended_resolves_at_once_when_not_live,
                ended_waiter_moves_into_a_task,
                boxed_ended_fires_like_the_signal,
            );

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_enders_publish_exactly_once() {
                suite::concurrent_enders_publish_exactly_once($make).await;
            }
        }
    };
    (@tests $make:expr; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                suite::$test($make).await;
            }
        )*
    };
}

/// One `#[tokio::test]` per one-time check; `$make` is `Fn(usize) -> S`
/// (capacity per kind).
#[macro_export]
macro_rules! one_time_suite {
    ($name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::conformance::one_time as suite;

            $crate::one_time_suite!(@tests $make;
                first_use_wins_until_expiry,
                kinds_are_separate_namespaces,
                first_use_all_is_all_or_nothing,
                advance_is_monotonic_per_key,
                full_fails_closed,
            );

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_first_use_accepts_exactly_once() {
                suite::concurrent_first_use_accepts_exactly_once($make).await;
            }
        }
    };
    (@tests $make:expr; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                suite::$test($make).await;
            }
        )*
    };
}

/// One `#[tokio::test]` per ticket check; `$make` is `Fn() -> S` for
/// `S: TicketStore<TestBody>`.
#[macro_export]
macro_rules! ticket_suite {
    ($name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::conformance::tickets as suite;

            $crate::ticket_suite!(@tests $make;
                ticket_is_256_random_bits_and_redacted,
                ticket_redeems_once,
                expired_ticket_is_consumed_too,
                issue_drops_expired_tickets,
            );

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_redeem_succeeds_once() {
                suite::concurrent_redeem_succeeds_once($make).await;
            }
        }
    };
    (@tests $make:expr; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                suite::$test($make).await;
            }
        )*
    };
}

/// One `#[tokio::test]` per lockout check; `$make` is `Fn() -> S` for
/// `S: LockoutStore`.
#[macro_export]
macro_rules! lockout_suite {
    ($name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::conformance::lockouts as suite;

            $crate::lockout_suite!(@tests $make;
                locks_at_the_threshold_and_counts_down,
                an_ended_lock_starts_the_count_over,
                success_clears_the_count,
                zero_max_failures_locks_on_the_first,
                a_restored_lock_holds_and_an_ended_one_is_ignored,
                unlock_lifts_a_running_lock_and_the_count,
                user_ids_are_data_not_syntax,
            );

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_failures_lock_exactly_once() {
                suite::concurrent_failures_lock_exactly_once($make).await;
            }
        }
    };
    (@tests $make:expr; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                suite::$test($make).await;
            }
        )*
    };
}
