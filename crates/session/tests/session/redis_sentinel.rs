//! Behind Redis Sentinel: the connection finds the master through the
//! sentinels and follows it through a failover, without a restart.

use std::time::{Duration, Instant};

use portcullis_session::conformance::{lifetime, TestBody, T0};
use portcullis_session::redis::{RedisConnection, RedisEndpoint, RedisStore, SealKeys};
use portcullis_session::SessionStore;
use test_support::redis_sentinel::MASTER_NAME;
use test_support::RedisSentinelSet;

use crate::redis_backend::{
    both_serve_after_a_failover, both_subscribed, options, ready, revoked_on_b_ends_on_a,
    subscribers_on,
};

/// Sentinel's own pace: 500 ms to judge the master down, then an
/// election and the promotion.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(30);
const DEADLINE: Duration = Duration::from_secs(10);

/// Two nodes on one Sentinel set: same prefix and keys, own connections.
fn two_nodes(set: &RedisSentinelSet) -> [(RedisStore<TestBody>, RedisConnection); 2] {
    let mut options = options(String::new());
    options.endpoint = RedisEndpoint::Sentinel {
        master: MASTER_NAME.to_owned(),
        nodes: set.sentinel_urls(),
    };
    let node = || {
        let connection = RedisConnection::open(&options).expect("connection");
        let keys = SealKeys::from_secrets(&[[7u8; 32]]).expect("keys");
        (
            RedisStore::<TestBody>::new(connection.clone(), "s", keys),
            connection,
        )
    };
    [node(), node()]
}

// Several threads: the set's helpers block while they poll the servers,
// and the connections' probes must keep running meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_failover_is_followed_without_a_restart() {
    let mut set = RedisSentinelSet::start(3);
    let [(a, connection_a), (b, connection_b)] = two_nodes(&set);
    ready(&connection_a, true).await;
    ready(&connection_b, true).await;
    let (before, session) = a
        .create(TestBody::new("alice"), lifetime(), T0)
        .await
        .expect("created on the first master");
    let tunnel_on_a = tokio::spawn(a.ended(&before.hash()));
    both_subscribed(&connection_a, |c| subscribers_on(set.master(), c)).await;
    set.wait_replicated();

    let killed = Instant::now();
    set.kill_master();
    ready(&connection_a, false).await;
    let down_after = killed.elapsed();
    let promoted_after = set.wait_failover(killed, FAILOVER_DEADLINE);
    ready(&connection_a, true).await;
    ready(&connection_b, true).await;
    let followed_after = killed.elapsed();
    eprintln!(
        "failover: not ready after {down_after:?}, replica promoted after {promoted_after:?}, \
         both nodes ready again after {followed_after:?}"
    );

    both_serve_after_a_failover(&a, &b, &before.hash(), &session.id).await;

    // Pub/sub moved with the connection: an end on b reaches a's waiter.
    both_subscribed(&connection_a, |c| subscribers_on(set.replica(), c)).await;
    assert!(!tunnel_on_a.is_finished(), "a failover ends no session");
    revoked_on_b_ends_on_a(&b, &session.id, tunnel_on_a).await;
}

/// A switch-over: the old master stays up as a read-only replica and its
/// connections stay open, answering PING; the probe's role check moves
/// the connection to the promoted one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_master_is_left_for_the_promoted_one() {
    let set = RedisSentinelSet::start(1);
    let [(a, connection_a), (b, _)] = two_nodes(&set);
    ready(&connection_a, true).await;
    let (before, _) = a
        .create(TestBody::new("alice"), lifetime(), T0)
        .await
        .expect("created on the first master");
    set.wait_replicated();
    let started = Instant::now();
    set.manual_failover();
    let promoted_after = set.wait_failover(started, FAILOVER_DEADLINE);
    set.demote_old_master();
    let demoted_after = started.elapsed();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let (after, _) = loop {
        match a.create(TestBody::new("bob"), lifetime(), T0).await {
            Ok(created) => break created,
            Err(error) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still refused: {error:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    eprintln!(
        "switch-over: promoted after {promoted_after:?}, old master demoted after \
         {demoted_after:?}, writes accepted after {:?}",
        started.elapsed()
    );
    let record = format!(
        "{}s:s:{}",
        connection_a.prefix(),
        after
            .hash()
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    assert!(
        set.replica()
            .command(&format!("EXISTS {record}"))
            .contains(":1"),
        "written on the promoted server"
    );
    b.touch(&before.hash(), T0).await.expect("the old session");
    b.touch(&after.hash(), T0).await.expect("the new session");
}
