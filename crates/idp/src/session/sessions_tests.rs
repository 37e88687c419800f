//! Tests of [`IdpSessions`](super::IdpSessions) over the memory backend:
//! the IdP's operations and that expiry and end notifications hold on
//! every one of them. The backend itself is held to
//! `portcullis-session`'s conformance suite.

use std::collections::HashMap;
use std::time::Duration;

use portcullis_session::MemoryStore;
use time::macros::datetime;
use tokio::sync::broadcast::error::TryRecvError;

use super::*;
use crate::policy::SessionLimits;
use crate::session::record::{Amr, SessionStatus};

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
        context: None,
        now,
    }
}

fn store() -> IdpSessions {
    IdpSessions::new(Arc::new(MemoryStore::<IdpSession>::new()), "00o1")
}

async fn create(store: &IdpSessions, new: NewSession) -> (SessionSecret, SessionRecord) {
    store.create(new).await.expect("memory store never fails")
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Everything published so far.
fn drain(rx: &mut broadcast::Receiver<SessionEnded<IdpSession>>) -> Vec<SessionEnded<IdpSession>> {
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(ended) => out.push(ended),
            Err(TryRecvError::Empty) => return out,
            Err(other) => panic!("unexpected receive error: {other:?}"),
        }
    }
}

#[tokio::test]
async fn create_fills_in_the_record() {
    let store = store();
    let (_, record) = create(&store, new_session("u1", T0)).await;
    assert!(record.id.as_str().starts_with("102"));
    assert_eq!(record.body.user_id, "u1");
    assert_eq!(record.created_at, T0);
    assert_eq!(record.expires_at(), T0 + IDLE);
    assert_eq!(record.body.status, SessionStatus::Active);
    assert_eq!(record.body.idp.id, "00o1");
    assert_eq!(record.body.policy, "Default Policy");
    assert_eq!(record.body.rule, "Default Rule");
    assert_eq!(store.len().await, Ok(1));
}

#[tokio::test]
async fn memory_default_reports_the_default_idp_id() {
    let store = IdpSessions::memory();
    let (_, record) = create(&store, new_session("u1", T0)).await;
    assert_eq!(record.body.idp.id, DEFAULT_IDP_ID);
}

#[tokio::test]
async fn touch_slides_the_idle_window() {
    let store = store();
    let (secret, _) = create(&store, new_session("u1", T0)).await;
    let later = T0 + secs(3_600);
    let record = store.touch(&secret, later).await.expect("alive");
    assert_eq!(record.last_activity, later);
    assert_eq!(record.expires_at(), later + IDLE);
    // Idle for 2h counted from the touch, not from creation.
    assert!(store.touch(&secret, T0 + IDLE + secs(1_800)).await.is_ok());
}

#[tokio::test]
async fn touch_after_idle_limit_ends_the_session_once() {
    let store = store();
    let mut rx = store.subscribe();
    let (secret, record) = create(&store, new_session("u1", T0)).await;
    assert_eq!(
        store.touch(&secret, T0 + IDLE).await,
        Err(SessionError::Expired {
            reason: EndReason::IdleTimeout
        })
    );
    assert_eq!(
        store.touch(&secret, T0 + IDLE).await,
        Err(SessionError::NotFound)
    );
    assert_eq!(store.is_empty().await, Ok(true));
    assert_eq!(
        store.get_by_id(&record.id, T0).await,
        Err(SessionError::NotFound),
        "the id index is cleaned up too"
    );
    let ended = drain(&mut rx);
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].reason, EndReason::IdleTimeout);
    assert_eq!(ended[0].session.id, record.id);
}

#[tokio::test]
async fn get_by_id_does_not_touch_but_does_expire() {
    let store = store();
    let mut rx = store.subscribe();
    let (_, record) = create(&store, new_session("u1", T0)).await;
    let seen = store
        .get_by_id(&record.id, T0 + secs(3_600))
        .await
        .expect("alive");
    assert_eq!(seen.last_activity, T0);
    assert_eq!(seen.expires_at(), T0 + IDLE);
    assert!(
        store.get_by_id(&record.id, T0 + IDLE).await.is_err(),
        "expired is gone"
    );
    assert_eq!(drain(&mut rx).len(), 1);
    assert_eq!(store.is_empty().await, Ok(true));
}

#[tokio::test]
async fn refresh_extends_idle_but_not_past_lifetime() {
    let store = store();
    let (_, record) = create(&store, new_session("u1", T0)).await;
    let refreshed = store
        .refresh(&record.id, T0 + secs(3_600))
        .await
        .expect("alive");
    assert_eq!(refreshed.expires_at(), T0 + secs(3_600) + IDLE);
    let late = T0 + LIFETIME - secs(60);
    // Keep it alive up to just before the lifetime ends.
    let mut now = T0;
    while now + secs(3_600) <= late {
        now += secs(3_600);
        store.refresh(&record.id, now).await.expect("alive");
    }
    let capped = store.refresh(&record.id, late).await.expect("still alive");
    assert_eq!(capped.expires_at(), T0 + LIFETIME, "capped by lifetime");
    assert_eq!(
        store.refresh(&record.id, T0 + LIFETIME).await,
        Err(SessionError::Expired {
            reason: EndReason::MaxLifetime
        })
    );
    assert_eq!(
        store.refresh(&SessionId::from("102nope"), T0).await,
        Err(SessionError::NotFound)
    );
}

#[tokio::test]
async fn mfa_marking_activates_and_extends_amr() {
    let store = store();
    let mut new = new_session("u1", T0);
    new.mfa_pending = true;
    let (secret, record) = create(&store, new).await;
    assert_eq!(record.body.status, SessionStatus::MfaRequired);
    assert_eq!(record.body.last_factor_verification, None);
    assert_eq!(record.body.amr, vec![Amr::Pwd]);

    let at = T0 + secs(20);
    let record = store.mark_mfa_verified(&secret, at).await.expect("alive");
    assert_eq!(record.body.status, SessionStatus::Active);
    assert_eq!(record.body.last_factor_verification, Some(at));
    assert_eq!(record.body.amr, vec![Amr::Pwd, Amr::Otp, Amr::Mfa]);
    assert_eq!(record.last_activity, at);

    let again = store
        .mark_mfa_verified(&secret, at + secs(5))
        .await
        .expect("alive");
    assert_eq!(
        again.body.amr,
        vec![Amr::Pwd, Amr::Otp, Amr::Mfa],
        "no duplicates"
    );
    assert_eq!(
        store.get_by_id(&record.id, at).await.map(|r| r.body.status),
        Ok(SessionStatus::Active)
    );
}

#[tokio::test]
async fn mfa_marking_does_not_revive_an_expired_session() {
    let store = store();
    let mut new = new_session("u1", T0);
    new.mfa_pending = true;
    let (secret, _) = create(&store, new).await;
    assert_eq!(
        store.mark_mfa_verified(&secret, T0 + IDLE).await,
        Err(SessionError::Expired {
            reason: EndReason::IdleTimeout
        })
    );
}

#[tokio::test]
async fn password_marking_updates_verification_time() {
    let store = store();
    let (secret, _) = create(&store, new_session("u1", T0)).await;
    let at = T0 + secs(600);
    let elsewhere = portcullis_context::ContextSource::default()
        .capture([198, 51, 100, 7].into(), Some(b"curl/8.11"));
    let record = store
        .mark_password_verified(&secret, at, elsewhere.clone())
        .await
        .expect("alive");
    assert_eq!(record.body.last_password_verification, at);
    // The re-authentication is where post-auth evaluation starts again.
    assert_eq!(record.body.context, Some(elsewhere));
    assert_eq!(record.created_at, T0);
    assert_eq!(record.last_activity, at);
    assert_eq!(record.body.amr, vec![Amr::Pwd]);
}

#[tokio::test]
async fn revoke_publishes_exactly_once() {
    let store = store();
    let mut rx = store.subscribe();
    let (secret, record) = create(&store, new_session("u1", T0)).await;
    let revoked = store
        .revoke(&record.id, EndReason::Revoked)
        .await
        .expect("memory store never fails")
        .expect("was live");
    assert_eq!(revoked.id, record.id);
    assert_eq!(store.revoke(&record.id, EndReason::Revoked).await, Ok(None));
    assert_eq!(store.touch(&secret, T0).await, Err(SessionError::NotFound));
    let ended = drain(&mut rx);
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].reason, EndReason::Revoked);
}

#[tokio::test]
async fn end_by_secret_signs_out() {
    let store = store();
    let mut rx = store.subscribe();
    let (secret, record) = create(&store, new_session("u1", T0)).await;
    assert_eq!(
        store
            .end(&secret, EndReason::SignOut)
            .await
            .map(|r| r.map(|r| r.id)),
        Ok(Some(record.id))
    );
    assert_eq!(store.end(&secret, EndReason::SignOut).await, Ok(None));
    let ended = drain(&mut rx);
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].reason, EndReason::SignOut);
}

#[tokio::test]
async fn revoke_user_ends_only_that_users_sessions() {
    let store = store();
    let mut rx = store.subscribe();
    for i in 0..3 {
        create(&store, new_session("alice", T0 + secs(i))).await;
    }
    let (bob, _) = create(&store, new_session("bob", T0)).await;
    let revoked = store
        .revoke_user("alice", EndReason::UserRevoked)
        .await
        .expect("memory store never fails");
    assert_eq!(revoked.len(), 3);
    assert!(revoked.iter().all(|r| r.body.user_id == "alice"));
    assert_eq!(
        store.revoke_user("alice", EndReason::UserRevoked).await,
        Ok(Vec::new())
    );
    assert!(store.touch(&bob, T0).await.is_ok());
    let ended = drain(&mut rx);
    assert_eq!(ended.len(), 3);
    assert!(ended.iter().all(|e| e.reason == EndReason::UserRevoked));
}

#[tokio::test]
async fn sessions_of_lists_live_ones_and_ends_dead_ones() {
    let store = store();
    let mut rx = store.subscribe();
    let (_, old) = create(&store, new_session("alice", T0)).await;
    let (_, newer) = create(&store, new_session("alice", T0 + secs(3_600))).await;
    create(&store, new_session("bob", T0)).await;
    let listed = store
        .sessions_of("alice", T0 + secs(3_600))
        .await
        .expect("lists");
    assert_eq!(
        listed.iter().map(|r| &r.id).collect::<Vec<_>>(),
        vec![&old.id, &newer.id]
    );
    let listed = store.sessions_of("alice", T0 + IDLE).await.expect("lists");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, newer.id);
    let ended = drain(&mut rx);
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].session.id, old.id);
    assert_eq!(ended[0].reason, EndReason::IdleTimeout);
}

#[tokio::test]
async fn sweep_ends_active_sessions_at_max_lifetime() {
    let store = store();
    let mut rx = store.subscribe();
    let (old_secret, old) = create(&store, new_session("u1", T0)).await;
    let (_, fresh) = create(&store, new_session("u2", T0 + LIFETIME - secs(60))).await;
    // Keep "old" active so its lifetime, not idleness, ends it.
    let mut now = T0;
    while now + secs(3_600) < T0 + LIFETIME {
        now += secs(3_600);
        store.touch(&old_secret, now).await.expect("alive");
    }
    assert_eq!(store.sweep(T0 + LIFETIME - secs(1)).await, Ok(Vec::new()));
    let swept = store.sweep(T0 + LIFETIME).await.expect("sweeps");
    assert_eq!(swept.len(), 1);
    assert_eq!(swept[0].id, old.id);
    let ended = drain(&mut rx);
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].reason, EndReason::MaxLifetime);
    assert!(store.get_by_id(&fresh.id, T0 + LIFETIME).await.is_ok());
}

#[tokio::test]
async fn sweep_reports_idle_and_lifetime_reasons() {
    let store = store();
    let mut rx = store.subscribe();
    let (_, idle) = create(&store, new_session("u1", T0)).await;
    let mut forever = new_session("u2", T0);
    forever.limits.max_lifetime = Some(secs(60));
    let (_, short) = create(&store, forever).await;
    let (_, fresh) = create(&store, new_session("u3", T0 + IDLE)).await;

    let swept = store.sweep(T0 + IDLE).await.expect("sweeps");
    assert_eq!(swept.len(), 2);
    assert_eq!(
        store.sweep(T0 + IDLE).await,
        Ok(Vec::new()),
        "nothing left to sweep"
    );
    let ended = drain(&mut rx);
    let reasons: HashMap<SessionId, EndReason> = ended
        .iter()
        .map(|e| (e.session.id.clone(), e.reason))
        .collect();
    assert_eq!(ended.len(), 2);
    assert_eq!(reasons.get(&idle.id), Some(&EndReason::IdleTimeout));
    assert_eq!(reasons.get(&short.id), Some(&EndReason::MaxLifetime));
    assert_eq!(store.len().await, Ok(1));
    assert!(store.get_by_id(&fresh.id, T0 + IDLE).await.is_ok());
}
