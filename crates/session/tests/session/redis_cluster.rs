//! On Redis Cluster: the stores on the cluster client, pub/sub delivered
//! whichever node a message is published on, a master failover followed
//! without a restart, and a resharded slot followed through ASK and MOVED.

use std::time::{Duration, Instant};

use portcullis_session::conformance::{lifetime, TestBody, T0};
use portcullis_session::redis::{RedisConnection, RedisEndpoint, RedisStore, SealKeys};
use portcullis_session::SessionStore;
use test_support::RedisClusterSet;

use crate::redis_backend::{
    both_serve_after_a_failover, both_subscribed, numsub, options, ready, revoked_on_b_ends_on_a,
};

/// The cluster's own pace: 500 ms to judge a node failing, then the
/// replica's election and promotion.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(30);
const DEADLINE: Duration = Duration::from_secs(10);

fn cluster_options(set: &RedisClusterSet) -> portcullis_session::redis::RedisOptions {
    let mut options = options(String::new());
    options.endpoint = RedisEndpoint::Cluster { nodes: set.urls() };
    options
}

/// A connection to the binary's shared cluster under a prefix of its own,
/// so every store built on it starts empty.
pub fn connection() -> RedisConnection {
    RedisConnection::open(&cluster_options(RedisClusterSet::shared())).expect("connection")
}

/// Two nodes on one cluster: same prefix and keys, own connections.
fn two_nodes(set: &RedisClusterSet) -> [(RedisStore<TestBody>, RedisConnection); 2] {
    let options = cluster_options(set);
    let node = || {
        let connection = RedisConnection::open(&options).expect("connection");
        let keys = SealKeys::from_secrets(&[[9u8; 32]]).expect("keys");
        (
            RedisStore::<TestBody>::new(connection.clone(), "s", keys),
            connection,
        )
    };
    [node(), node()]
}

/// Subscribers of `channel` over the cluster nodes `nodes`.
fn subscribers_over(set: &RedisClusterSet, nodes: &[usize], channel: &str) -> usize {
    nodes
        .iter()
        .map(|&i| numsub(&set.node(i).command(&format!("PUBSUB NUMSUB {channel}"))))
        .sum()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ends_reach_a_store_whichever_cluster_node_they_are_published_on() {
    let set = RedisClusterSet::shared();
    let [(a, connection_a), (b, connection_b)] = two_nodes(set);
    ready(&connection_a, true).await;
    ready(&connection_b, true).await;
    both_subscribed(&connection_a, |c| subscribers_over(set, &[0, 1, 2], c)).await;

    // An end announced on a node that does not serve the deployment's
    // slot: classic pub/sub is broadcast to the whole cluster.
    let key = format!("{}s:ended", connection_a.prefix());
    let owner = set.master_of(&key).expect("the slot is served");
    let elsewhere = (0..3).find(|&i| i != owner).expect("another node");
    let (first, _) = a
        .create(TestBody::new("alice"), lifetime(), T0)
        .await
        .expect("created on a");
    let waiter = tokio::spawn(a.ended(&first.hash()));
    let reply = set.node(elsewhere).command(&format!(
        "PUBLISH {key} \"e elsewhere {}\"",
        hex(first.hash().as_bytes())
    ));
    assert!(reply.starts_with(':'), "PUBLISH: {reply}");
    tokio::time::timeout(DEADLINE, waiter)
        .await
        .expect("a heard the end published on another node")
        .expect("waiter ran");

    // The usual path: b ends a session, its script publishes on the
    // slot's master, a's waiter fires and a no longer serves it.
    let (second, session) = a
        .create(TestBody::new("bob"), lifetime(), T0)
        .await
        .expect("created on a");
    b.touch(&second.hash(), T0).await.expect("b serves it");
    let waiter = tokio::spawn(a.ended(&second.hash()));
    revoked_on_b_ends_on_a(&b, &session.id, waiter).await;
    assert!(a.touch(&second.hash(), T0).await.is_err(), "gone on a");
}

// Several threads: the set's helpers block while they poll the servers,
// and the connections' probes must keep running meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_master_failover_is_followed_without_a_restart() {
    let mut set = RedisClusterSet::start(3, 1);
    let [(a, connection_a), (b, connection_b)] = two_nodes(&set);
    ready(&connection_a, true).await;
    ready(&connection_b, true).await;
    let key = format!("{}s:ended", connection_a.prefix());
    let master = set.master_of(&key).expect("the slot is served");
    let replica = set.replica_of(master).expect("the master has a replica");
    let (before, session) = a
        .create(TestBody::new("alice"), lifetime(), T0)
        .await
        .expect("created before the failover");
    let waiter = tokio::spawn(a.ended(&before.hash()));
    let all: Vec<usize> = (0..6).collect();
    both_subscribed(&connection_a, |c| subscribers_over(&set, &all, c)).await;
    // The session must be on the replica before its master dies.
    let synced = set.node(master).command("WAIT 1 1000");
    assert!(synced.starts_with(":1"), "WAIT: {synced}");

    let killed = Instant::now();
    set.kill(master);
    ready(&connection_a, false).await;
    let down_after = killed.elapsed();
    let (promoted, promoted_after) = set.wait_served(&key, killed, FAILOVER_DEADLINE);
    assert_eq!(promoted, replica, "the replica took the slot over");
    ready(&connection_a, true).await;
    ready(&connection_b, true).await;
    let followed_after = killed.elapsed();
    eprintln!(
        "cluster failover: not ready after {down_after:?}, replica promoted after \
         {promoted_after:?}, both nodes ready again after {followed_after:?}"
    );

    both_serve_after_a_failover(&a, &b, &before.hash(), &session.id).await;

    // Pub/sub moved with the slot: an end on b reaches a's waiter.
    let alive: Vec<usize> = all.into_iter().filter(|&i| i != master).collect();
    both_subscribed(&connection_a, |c| subscribers_over(&set, &alive, c)).await;
    assert!(!waiter.is_finished(), "a failover ends no session");
    revoked_on_b_ends_on_a(&b, &session.id, waiter).await;
}

/// A node may start before the cluster is formed (or while no seed
/// answers): it starts not ready and becomes ready once the slot is
/// served, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_opened_before_the_cluster_formed_becomes_ready() {
    let set = RedisClusterSet::unformed(3, 0);
    let [(a, connection_a), (b, _)] = two_nodes(&set);
    assert!(
        a.create(TestBody::new("alice"), lifetime(), T0)
            .await
            .is_err(),
        "no slot is served yet"
    );
    assert!(!connection_a.is_ready());
    set.form(0);
    let formed = Instant::now();
    ready(&connection_a, true).await;
    eprintln!(
        "cluster formed after the connection: ready {:?} after every node said ok",
        formed.elapsed()
    );
    let (secret, _) = a
        .create(TestBody::new("alice"), lifetime(), T0)
        .await
        .expect("created once formed");
    b.touch(&secret.hash(), T0).await.expect("b serves it");
}

/// An operator reshards the deployment's slot to another master while both
/// nodes run: mid-migration (ASK redirects) and after it (MOVED) the
/// sessions made before are served; after it new ones are made, and an
/// end on b still reaches a.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resharded_slot_is_followed_through_ask_and_moved() {
    let set = RedisClusterSet::start(3, 0);
    let [(a, connection_a), (b, connection_b)] = two_nodes(&set);
    ready(&connection_a, true).await;
    ready(&connection_b, true).await;
    let key = format!("{}s:ended", connection_a.prefix());
    let (before, session) = a
        .create(TestBody::new("alice"), lifetime(), T0)
        .await
        .expect("created before the resharding");
    let waiter = tokio::spawn(a.ended(&before.hash()));
    both_subscribed(&connection_a, |c| subscribers_over(&set, &[0, 1, 2], c)).await;
    let owner = set.master_of(&key).expect("the slot is served");
    let to = (0..3).find(|&i| i != owner).expect("another master");

    let migration = set.start_migration(&key, to);
    let during = b
        .touch(&before.hash(), T0)
        .await
        .expect("served mid-migration (ASK)");
    assert_eq!(during.id, session.id);
    // A script over several keys, some not there yet, is answered
    // TRYAGAIN while the slot is half-way; the client's few retries ride
    // out a resharding's usual milliseconds. One stuck half-way (as here)
    // makes new sessions fail as "store unavailable" (a 503 page), never
    // as something else.
    let stuck = a.create(TestBody::new("carol"), lifetime(), T0).await;
    assert!(
        matches!(stuck, Err(portcullis_session::StoreError::Unavailable(_))),
        "{stuck:?}"
    );
    migration.finish();
    assert_eq!(set.master_of(&key), Some(to), "the slot moved");

    both_serve_after_a_failover(&a, &b, &before.hash(), &session.id).await;
    assert!(!waiter.is_finished(), "a resharding ends no session");
    revoked_on_b_ends_on_a(&b, &session.id, waiter).await;
}
