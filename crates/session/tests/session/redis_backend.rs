//! What only the Redis backends have: several nodes on one Redis, records
//! sealed at rest, and Redis going away and coming back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use portcullis_session::conformance::{lifetime, TestBody, T0};
use portcullis_session::redis::{CachePolicy, RedisConnection, RedisOptions, RedisStore, SealKeys};
use portcullis_session::{EndReason, SessionError, SessionStore, StoreError};
use test_support::RedisServer;

const DEADLINE: Duration = Duration::from_secs(10);

pub(crate) fn options(url: String) -> RedisOptions {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let mut options = RedisOptions::new(url);
    options.key_prefix = format!(
        "t{}-{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    options.probe_interval = Duration::from_millis(50);
    options
}

/// A connection to the binary's shared server under a prefix of its own,
/// so every store built on it starts empty.
pub fn connection() -> RedisConnection {
    RedisConnection::open(&options(RedisServer::shared().url())).expect("connection")
}

pub(crate) async fn ready(connection: &RedisConnection, up: bool) {
    let mut readiness = connection.readiness();
    tokio::time::timeout(DEADLINE, readiness.wait_for(|r| *r == up))
        .await
        .unwrap_or_else(|_| panic!("readiness never became {up}"))
        .expect("connection alive");
}

/// Waits until two stores listen on the `s` namespace's ended channel of
/// `connection`'s prefix (subscribing is asynchronous); `subscribers`
/// counts them for a channel, on whatever servers the test runs.
pub async fn both_subscribed(connection: &RedisConnection, subscribers: impl Fn(&str) -> usize) {
    let channel = format!("{}s:ended", connection.prefix());
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while subscribers(&channel) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nodes never subscribed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Subscribers of `channel` on `server`.
pub fn subscribers_on(server: &RedisServer, channel: &str) -> usize {
    numsub(&server.command(&format!("PUBSUB NUMSUB {channel}")))
}

/// The count in a `PUBSUB NUMSUB` reply: `*2 $len channel :count`.
pub fn numsub(reply: &str) -> usize {
    reply
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(':'))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// After a failover: the session made before (`before`, public id `id`)
/// is still served by b, and a session made on b now is served by a.
pub async fn both_serve_after_a_failover(
    a: &RedisStore<TestBody>,
    b: &RedisStore<TestBody>,
    before: &portcullis_session::SecretHash,
    id: &portcullis_session::SessionId,
) {
    let on_b = b
        .touch(before, T0)
        .await
        .expect("the session made before the failover is still there");
    assert_eq!(&on_b.id, id);
    let (after, _) = b
        .create(TestBody::new("bob"), lifetime(), T0)
        .await
        .expect("sign-ins work on the new master");
    a.touch(&after.hash(), T0).await.expect("a serves it too");
}

/// Node b revokes session `id`; node a's `waiter` (its end signal) must
/// fire through pub/sub.
pub async fn revoked_on_b_ends_on_a(
    b: &RedisStore<TestBody>,
    id: &portcullis_session::SessionId,
    waiter: tokio::task::JoinHandle<()>,
) {
    b.end_by_id(id, EndReason::Revoked)
        .await
        .expect("revoked on b")
        .expect("b removed it");
    tokio::time::timeout(DEADLINE, waiter)
        .await
        .expect("a's end signal fired through pub/sub")
        .expect("waiter ran");
}

/// Two nodes: same Redis, same prefix and keys, separate connections.
fn two_nodes(url: String) -> (RedisStore<TestBody>, RedisStore<TestBody>, RedisConnection) {
    let options = options(url);
    let secret = [42u8; 32];
    let node = |options: &RedisOptions| {
        let connection = RedisConnection::open(options).expect("connection");
        let keys = SealKeys::from_secrets(&[secret]).expect("keys");
        (
            RedisStore::<TestBody>::new(connection.clone(), "s", keys),
            connection,
        )
    };
    let (a, _) = node(&options);
    let (b, connection_b) = node(&options);
    (a, b, connection_b)
}

#[tokio::test]
async fn a_session_from_one_node_is_served_and_ended_by_another() {
    let (a, b, connection_b) = two_nodes(RedisServer::shared().url());
    ready(&connection_b, true).await;
    let mut ended_on_a = a.subscribe();
    let mut ended_on_b = b.subscribe();
    let (secret, session) = a
        .create(TestBody::new("alice"), lifetime(), T0)
        .await
        .expect("created on a");
    let on_b = b.touch(&secret.hash(), T0).await.expect("b serves it");
    assert_eq!(on_b.id, session.id);
    assert_eq!(on_b.body, TestBody::new("alice"));
    // A tunnel on node a waits on its end signal; b revokes the session.
    let tunnel_on_a = tokio::spawn(a.ended(&secret.hash()));
    // Both nodes must be listening before b publishes the end.
    both_subscribed(&connection_b, |c| subscribers_on(RedisServer::shared(), c)).await;
    revoked_on_b_ends_on_a(&b, &session.id, tunnel_on_a).await;
    assert_eq!(
        a.touch(&secret.hash(), T0).await,
        Err(SessionError::NotFound)
    );
    // Exactly one node reports the end to its own subscribers: the one
    // that removed it (side effects such as logout fan-out happen once).
    assert_eq!(
        ended_on_b.try_recv().expect("b published").reason,
        EndReason::Revoked
    );
    assert!(ended_on_a.try_recv().is_err(), "a did not end it");
}

#[tokio::test]
async fn a_dump_of_redis_holds_neither_bodies_nor_cookies() {
    let server = RedisServer::shared();
    let connection = connection();
    let store = RedisStore::<TestBody>::new(connection.clone(), "s", SealKeys::generate());
    let mut body = TestBody::new("u-7f3a");
    body.note = "secret-attribute-value".to_owned();
    let (secret, session) = store.create(body, lifetime(), T0).await.expect("created");
    let prefix = connection.prefix().to_owned();
    let keys = server.command(&format!("KEYS {prefix}*"));
    let mut dump = keys.clone();
    for line in keys.lines().filter(|l| l.starts_with(&prefix)) {
        dump.push_str(&server.command(&format!("DUMP {line}")));
        dump.push_str(&server.command(&format!("HGETALL {line}")));
    }
    assert!(
        dump.contains(session.id.as_str()),
        "the public id is there: {keys}"
    );
    assert!(!dump.contains("secret-attribute-value"), "{dump}");
    assert!(!dump.contains(secret.expose()), "{dump}");
    // Tampering with the sealed record is an error, never a session.
    let record = keys
        .lines()
        .find(|l| l.starts_with(&prefix) && l.contains(":s:"))
        .expect("the record's key")
        .to_owned();
    server.command(&format!("HSET {record} rec garbage"));
    assert!(matches!(
        store.touch(&secret.hash(), T0).await,
        Err(SessionError::Store(StoreError::Corrupt(_)))
    ));
}

#[tokio::test]
async fn an_outage_is_an_error_not_a_sign_out_and_recovery_needs_no_restart() {
    let mut server = RedisServer::start();
    let connection = RedisConnection::open(&options(server.url())).expect("connection");
    let store = RedisStore::<TestBody>::new(connection.clone(), "s", SealKeys::generate());
    ready(&connection, true).await;
    let (secret, _) = store
        .create(TestBody::new("u1"), lifetime(), T0)
        .await
        .expect("created");
    let tunnel = tokio::spawn(store.ended(&secret.hash()));

    server.stop();
    ready(&connection, false).await;
    match store.touch(&secret.hash(), T0).await {
        Err(SessionError::Store(StoreError::Unavailable(_))) => {}
        other => panic!("an outage must not read as 'no session': {other:?}"),
    }
    assert!(!tunnel.is_finished(), "an outage does not end sessions");

    // This Redis keeps nothing across a restart: after reconnecting the
    // node re-checks what it watches and fires the signals of sessions
    // that are gone (pub/sub could not tell it).
    server.restart();
    ready(&connection, true).await;
    tokio::time::timeout(DEADLINE, tunnel)
        .await
        .expect("re-sync fired the signal")
        .expect("waiter ran");
    let (again, _) = store
        .create(TestBody::new("u1"), lifetime(), T0)
        .await
        .expect("sign-ins work again without restarting");
    store.touch(&again.hash(), T0).await.expect("alive");
}

#[tokio::test]
async fn starting_while_redis_is_down_starts_not_ready() {
    let mut server = RedisServer::start();
    server.stop();
    let connection = RedisConnection::open(&options(server.url())).expect("opens without Redis");
    let store = RedisStore::<TestBody>::new(connection.clone(), "s", SealKeys::generate());
    assert!(!connection.is_ready());
    assert!(matches!(
        store.create(TestBody::new("u1"), lifetime(), T0).await,
        Err(StoreError::Unavailable(_))
    ));
    server.restart();
    ready(&connection, true).await;
    store
        .create(TestBody::new("u1"), lifetime(), T0)
        .await
        .expect("created once Redis is up");
}

fn cached(
    connection: RedisConnection,
    staleness: Duration,
    serve_cached: bool,
) -> RedisStore<TestBody> {
    RedisStore::with_cache(
        connection,
        "s",
        SealKeys::from_secrets(&[[42u8; 32]]).expect("keys"),
        CachePolicy {
            staleness,
            serve_cached,
        },
    )
}

#[tokio::test]
async fn a_cached_session_drops_out_at_once_when_another_node_ends_it() {
    let options = options(RedisServer::shared().url());
    let connection_a = RedisConnection::open(&options).expect("connection");
    let connection_b = RedisConnection::open(&options).expect("connection");
    let a = cached(connection_a.clone(), Duration::from_secs(60), false);
    let b = cached(connection_b.clone(), Duration::from_secs(60), false);
    ready(&connection_a, true).await;
    let (secret, session) = b
        .create(TestBody::new("u1"), lifetime(), T0)
        .await
        .expect("created");
    a.touch(&secret.hash(), T0).await.expect("a caches it");
    both_subscribed(&connection_a, |c| subscribers_on(RedisServer::shared(), c)).await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    b.end_by_id(&session.id, EndReason::Revoked)
        .await
        .expect("ended on b");
    // Well inside the 60 s bound: the announcement, not the bound, ends it.
    loop {
        match a.touch(&secret.hash(), T0 + Duration::from_secs(1)).await {
            Err(SessionError::NotFound) => break,
            Ok(_) => {
                assert!(tokio::time::Instant::now() < deadline, "a kept serving it");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_lost_announcement_is_bounded_by_the_staleness() {
    let server = RedisServer::shared();
    let connection = connection();
    let store = cached(connection.clone(), Duration::from_secs(1), false);
    ready(&connection, true).await;
    let (secret, _) = store
        .create(TestBody::new("u1"), lifetime(), T0)
        .await
        .expect("created");
    store.touch(&secret.hash(), T0).await.expect("cached");
    // Removed behind the store's back: nothing is announced.
    let record = format!(
        "{}s:s:{}",
        connection.prefix(),
        secret
            .hash()
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    assert!(server.command(&format!("DEL {record}")).contains(":1"));
    let within = T0 + Duration::from_millis(900);
    store
        .touch(&secret.hash(), within)
        .await
        .expect("still served from the cache inside the bound");
    assert_eq!(
        store
            .touch(&secret.hash(), T0 + Duration::from_secs(1))
            .await,
        Err(SessionError::NotFound),
        "never past revocation_staleness"
    );
}

#[tokio::test]
async fn during_an_outage_deny_refuses_and_serve_cached_serves_within_the_bound() {
    let mut server = RedisServer::start();
    let options = options(server.url());
    let connection = RedisConnection::open(&options).expect("connection");
    let deny = cached(connection.clone(), Duration::from_secs(1), false);
    let lenient = cached(connection.clone(), Duration::from_secs(1), true);
    ready(&connection, true).await;
    let (denied, _) = deny
        .create(TestBody::new("u1"), lifetime(), T0)
        .await
        .expect("created");
    let (served, _) = lenient
        .create(TestBody::new("u2"), lifetime(), T0)
        .await
        .expect("created");
    deny.touch(&denied.hash(), T0).await.expect("cached");
    lenient.touch(&served.hash(), T0).await.expect("cached");

    server.stop();
    ready(&connection, false).await;
    let soon = T0 + Duration::from_millis(500);
    assert!(matches!(
        deny.touch(&denied.hash(), soon).await,
        Err(SessionError::Store(StoreError::Unavailable(_)))
    ));
    lenient
        .touch(&served.hash(), soon)
        .await
        .expect("serve_cached serves a fresh entry");
    assert!(
        matches!(
            lenient
                .touch(&served.hash(), T0 + Duration::from_secs(1))
                .await,
            Err(SessionError::Store(StoreError::Unavailable(_)))
        ),
        "but never past revocation_staleness"
    );
}
