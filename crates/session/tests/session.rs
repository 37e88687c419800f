//! The crate's one integration-test binary: the conformance suites run
//! against the memory backends and the Redis backends alike (on a real
//! redis-server the binary starts), then what is specific to each — the
//! memory backends' sharding, eight-thread race and footprint; Redis's
//! cross-node ends, sealed records and outages (`redis_backend`), a
//! Sentinel failover (`redis_sentinel`); and the Redis suites once more on
//! a three-master Redis Cluster, with pub/sub across its nodes and a
//! master failover (`redis_cluster`).

use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use portcullis_session::conformance::{drain, lifetime, TestBody, IDLE, T0};
use portcullis_session::redis::{
    CachePolicy, RedisLockouts, RedisOneTime, RedisStore, RedisTickets, SealKeys,
};
use portcullis_session::{
    EndReason, MemoryLockouts, MemoryOneTime, MemoryStore, MemoryTickets, OneTimeKind,
    OneTimeStore, SecretHash, SessionId, SessionStore, StoreError, TicketStore,
};

portcullis_session::session_store_suite!(memory_sessions, MemoryStore::<TestBody>::new);
portcullis_session::one_time_suite!(memory_one_time, MemoryOneTime::new);
portcullis_session::ticket_suite!(memory_tickets, MemoryTickets::<TestBody>::default);
portcullis_session::lockout_suite!(memory_lockouts, MemoryLockouts::default);

#[path = "session/redis_backend.rs"]
mod redis_backend;
#[path = "session/redis_cluster.rs"]
mod redis_cluster;
#[path = "session/redis_sentinel.rs"]
mod redis_sentinel;

use redis_backend::connection as redis_connection;
portcullis_session::session_store_suite!(redis_sessions, || {
    RedisStore::<TestBody>::new(redis_connection(), "s", SealKeys::generate())
});
// The same checks with the node-local cache on: the caller's clock
// decides freshness, so the suite's jumps in time always reach Redis.
portcullis_session::session_store_suite!(redis_cached_sessions, || {
    RedisStore::<TestBody>::with_cache(
        redis_connection(),
        "s",
        SealKeys::generate(),
        CachePolicy {
            staleness: Duration::from_secs(1),
            serve_cached: false,
        },
    )
});
portcullis_session::one_time_suite!(redis_one_time, |capacity| {
    RedisOneTime::new(redis_connection(), "o", capacity)
});
portcullis_session::ticket_suite!(redis_tickets, || {
    RedisTickets::<TestBody>::new(redis_connection(), "t", SealKeys::generate())
});
portcullis_session::lockout_suite!(redis_lockouts, || {
    RedisLockouts::new(redis_connection(), "l")
});

// On Redis Cluster: every key of a deployment in one slot, so the same
// scripts run unchanged, routed to that slot's master.
use redis_cluster::connection as cluster_connection;
portcullis_session::session_store_suite!(cluster_sessions, || {
    RedisStore::<TestBody>::new(cluster_connection(), "s", SealKeys::generate())
});
portcullis_session::one_time_suite!(cluster_one_time, |capacity| {
    RedisOneTime::new(cluster_connection(), "o", capacity)
});
portcullis_session::ticket_suite!(cluster_tickets, || {
    RedisTickets::<TestBody>::new(cluster_connection(), "t", SealKeys::generate())
});
portcullis_session::lockout_suite!(cluster_lockouts, || {
    RedisLockouts::new(cluster_connection(), "l")
});

/// The memory futures never wait, so a thread can drive one by itself.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(future)
}

#[tokio::test]
async fn debug_output_shows_digests_never_secrets() {
    let store = MemoryStore::<TestBody>::new();
    let (secret, session) = store
        .create(TestBody::new("u1"), lifetime(), T0)
        .await
        .expect("created");
    let dump = format!("{store:?}");
    assert!(!dump.contains(secret.expose()), "{dump}");
    assert!(!dump.contains(session.id.as_str()), "{dump}");
    assert!(dump.contains(&secret.hash().short()), "{dump}");
}

/// Eight threads race to end one session, each by a different path; the
/// session is removed and published exactly once.
#[test]
fn eight_threads_racing_to_end_one_session_publish_once() {
    for _round in 0..50 {
        let store = Arc::new(MemoryStore::<TestBody>::new());
        let mut rx = store.subscribe();
        let (secret, session) =
            block_on(store.create(TestBody::new("u1"), lifetime(), T0)).expect("created");
        let hash = secret.hash();
        let expired = T0 + IDLE;
        let barrier = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = Arc::clone(&store);
                let barrier = Arc::clone(&barrier);
                let id = session.id.clone();
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .expect("runtime");
                    barrier.wait();
                    runtime.block_on(async {
                        match t {
                            0 => drop(store.end(&hash, EndReason::SignOut).await),
                            1 => drop(store.end_by_id(&id, EndReason::Revoked).await),
                            2 => drop(store.touch(&hash, expired).await),
                            3 => drop(store.get(&id, expired).await),
                            4 => drop(store.sweep(expired).await),
                            5 => drop(
                                store
                                    .end_indexed(
                                        "user:u1",
                                        EndReason::UserRevoked,
                                        Box::new(|_| true),
                                    )
                                    .await,
                            ),
                            6 => drop(store.list_indexed("user:u1", expired).await),
                            _ => drop(store.update(&hash, expired, Box::new(|_| {})).await),
                        }
                    });
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread finished");
        }
        assert_eq!(drain(&mut rx).len(), 1);
        assert_eq!(block_on(store.len()), Ok(0));
        assert_eq!(store.footprint().ids, 0);
        assert_eq!(store.footprint().index_keys, 0);
    }
}

/// The same race across 200 sessions and every path, on plain threads.
#[test]
fn concurrent_ends_publish_exactly_once_per_session() {
    const SESSIONS: usize = 200;
    const THREADS: usize = 8;
    let store = Arc::new(MemoryStore::<TestBody>::with_capacity(SESSIONS * 2));
    let mut rx = store.subscribe();
    let sessions: Arc<Vec<(SecretHash, SessionId, String)>> = Arc::new(
        (0..SESSIONS)
            .map(|i| {
                let user = format!("u{}", i % 10);
                let (secret, session) =
                    block_on(store.create(TestBody::new(&user), lifetime(), T0)).expect("created");
                (secret.hash(), session.id, format!("user:{user}"))
            })
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
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("runtime");
                barrier.wait();
                runtime.block_on(async {
                    for (i, (hash, id, key)) in sessions.iter().enumerate() {
                        match (t + i) % 6 {
                            0 => drop(store.touch(hash, expired_at).await),
                            1 => drop(store.end_by_id(id, EndReason::Revoked).await),
                            2 => drop(store.sweep(expired_at).await),
                            3 => drop(
                                store
                                    .end_indexed(key, EndReason::UserRevoked, Box::new(|_| true))
                                    .await,
                            ),
                            4 => drop(store.get(id, expired_at).await),
                            _ => drop(store.end(hash, EndReason::SignOut).await),
                        }
                    }
                });
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("thread finished");
    }
    assert_eq!(block_on(store.len()), Ok(0));
    let ended = drain(&mut rx);
    let mut ids: Vec<&SessionId> = ended.iter().map(|e| &e.session.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ended.len(), SESSIONS);
    assert_eq!(ids.len(), SESSIONS);
}

/// While one session's shard is locked (a filter that blocks inside
/// `end_indexed`), sessions in other shards stay usable: the store does not
/// serialise every worker on one lock.
#[test]
fn a_locked_shard_does_not_block_the_others() {
    const OTHERS: usize = 64;
    let store = Arc::new(MemoryStore::<TestBody>::new());
    block_on(store.create(TestBody::new("blocker"), lifetime(), T0)).expect("created");
    let others: Vec<SecretHash> = (0..OTHERS)
        .map(|i| {
            block_on(store.create(TestBody::new(&format!("u{i}")), lifetime(), T0))
                .expect("created")
                .0
                .hash()
        })
        .collect();

    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let entered_tx = Mutex::new(entered_tx);
    let release_rx = Mutex::new(release_rx);
    let blocker = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            block_on(store.end_indexed(
                "user:blocker",
                EndReason::Revoked,
                Box::new(move |_| {
                    let _ = entered_tx.lock().expect("sender").send(());
                    let _ = release_rx
                        .lock()
                        .expect("receiver")
                        .recv_timeout(Duration::from_secs(30));
                    true
                }),
            ))
            .expect("ends")
            .len()
        })
    };
    entered_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the filter runs");

    let (done_tx, done_rx) = mpsc::channel::<()>();
    let touchers: Vec<_> = others
        .into_iter()
        .map(|hash| {
            let store = Arc::clone(&store);
            let done_tx = done_tx.clone();
            std::thread::spawn(move || {
                block_on(store.touch(&hash, T0)).expect("alive");
                let _ = done_tx.send(());
            })
        })
        .collect();
    // With one global lock no toucher could finish before the release; with
    // shards, the ones outside the blocker's shard do (the chance that all
    // 64 share its shard is nil).
    let progressed = done_rx.recv_timeout(Duration::from_secs(5)).is_ok();
    release_tx.send(()).expect("blocker waiting");
    assert_eq!(blocker.join().expect("blocker finished"), 1);
    for toucher in touchers {
        toucher.join().expect("toucher finished");
    }
    assert!(progressed, "a touch elsewhere waited for the locked shard");
}

#[tokio::test]
async fn memory_follows_the_live_sessions() {
    let store = MemoryStore::<TestBody>::new();
    for i in 0..100u64 {
        store
            .create(
                TestBody::in_group(&format!("u{i}"), "staff"),
                lifetime(),
                T0 + Duration::from_secs(i),
            )
            .await
            .expect("created");
    }
    let footprint = store.footprint();
    assert_eq!(footprint.sessions, 100);
    assert_eq!(footprint.ids, 100);
    assert_eq!(footprint.index_keys, 101, "one per user, plus the group");
    assert_eq!(footprint.index_entries, 200);
    // The first half idles out; a sweep leaves only the rest and their keys.
    let swept = store
        .sweep(T0 + IDLE + Duration::from_secs(49))
        .await
        .expect("sweeps");
    assert_eq!(swept.len(), 50);
    let footprint = store.footprint();
    assert_eq!(footprint.sessions, 50);
    assert_eq!(footprint.ids, 50);
    assert_eq!(footprint.index_keys, 51);
    assert_eq!(footprint.index_entries, 100);
    store
        .end_indexed("group:staff", EndReason::Revoked, Box::new(|_| true))
        .await
        .expect("ends");
    let footprint = store.footprint();
    assert_eq!(
        (
            footprint.sessions,
            footprint.ids,
            footprint.index_keys,
            footprint.index_entries
        ),
        (0, 0, 0, 0)
    );
}

#[tokio::test]
async fn a_slow_subscriber_lags_instead_of_growing_memory() {
    let store = MemoryStore::<TestBody>::with_capacity(2);
    let mut rx = store.subscribe();
    for _ in 0..3 {
        let (secret, _) = store
            .create(TestBody::new("u1"), lifetime(), T0)
            .await
            .expect("created");
        store
            .end(&secret.hash(), EndReason::SignOut)
            .await
            .expect("ends");
    }
    assert!(matches!(
        rx.try_recv(),
        Err(tokio::sync::broadcast::error::TryRecvError::Lagged(1))
    ));
    assert_eq!(drain(&mut rx).len(), 2);
}

#[tokio::test]
async fn one_time_purges_expired_entries_only_when_needed() {
    let store = MemoryOneTime::new(2);
    let kind = OneTimeKind::AssertionId;
    let soon = T0 + Duration::from_secs(10);
    store.first_use(kind, "a", soon, T0).await.expect("first");
    store.first_use(kind, "b", soon, T0).await.expect("second");
    assert_eq!(store.len(kind), 2);
    store
        .first_use(kind, "c", soon + Duration::from_secs(10), soon)
        .await
        .expect("room made by purging");
    assert_eq!(store.len(kind), 1);
    assert!(store.is_empty(OneTimeKind::JwtId));
}

#[tokio::test]
async fn tickets_are_dropped_on_issue_and_bounded() {
    let ttl = Duration::from_secs(60);
    let store = MemoryTickets::<TestBody>::new(3);
    for _ in 0..3 {
        store
            .issue(TestBody::new("u1"), T0 + ttl, T0)
            .await
            .expect("issued");
    }
    assert_eq!(store.len(), 3);
    assert_eq!(
        store
            .issue(TestBody::new("u1"), T0 + ttl, T0)
            .await
            .map(|_| ()),
        Err(StoreError::Full),
        "full of live tickets: refuse"
    );
    store
        .issue(TestBody::new("u2"), T0 + ttl + ttl, T0 + ttl)
        .await
        .expect("issued");
    assert_eq!(store.len(), 1, "the three from T0 expired at T0 + ttl");
    let dump = format!("{store:?}");
    assert!(dump.contains("pending: 1"), "{dump}");
}
