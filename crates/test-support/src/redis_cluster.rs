//! A Redis Cluster on loopback: masters (and optionally one replica each)
//! on free ports, joined with `redis-cli --cluster create`, tuned to fail
//! over within a couple of seconds, for the Redis backends' suites and the
//! tests that kill a master.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::redis::RedisServer;

/// How long the cluster may take to form (every node agreeing on the slot
/// map, replicas in sync).
const SETTLE_DEADLINE: Duration = Duration::from_secs(30);

/// A node is judged failing after this long: failovers take 1–2 s.
const NODE_TIMEOUT_MS: &str = "500";

pub struct RedisClusterSet {
    /// `None` once killed.
    nodes: Vec<Option<RedisServer>>,
}

impl RedisClusterSet {
    /// `masters` masters sharing the 16384 slots, each with `replicas`
    /// replicas; killed on drop.
    pub fn start(masters: usize, replicas: usize) -> RedisClusterSet {
        Self::launch(masters, replicas, false)
    }

    /// Three masters without replicas for a whole test binary (stores keep
    /// apart by key prefix), killed by watchdogs once the test process is
    /// gone, since statics are never dropped.
    pub fn shared() -> &'static RedisClusterSet {
        static SHARED: OnceLock<RedisClusterSet> = OnceLock::new();
        SHARED.get_or_init(|| Self::launch(3, 0, true))
    }

    fn launch(masters: usize, replicas: usize, watched: bool) -> RedisClusterSet {
        let set = Self::spawn(masters, replicas, watched);
        set.form(replicas);
        set
    }

    /// The nodes of [`start`](Self::start), running but not yet joined:
    /// they answer every command on a key with CLUSTERDOWN until
    /// [`form`](Self::form).
    pub fn unformed(masters: usize, replicas: usize) -> RedisClusterSet {
        Self::spawn(masters, replicas, false)
    }

    fn spawn(masters: usize, replicas: usize, watched: bool) -> RedisClusterSet {
        assert!(
            masters >= 3,
            "redis-cli creates clusters of 3 masters or more"
        );
        let args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            NODE_TIMEOUT_MS,
        ];
        let nodes = (0..masters * (1 + replicas))
            .map(|_| Some(RedisServer::spawn(&args, watched, true)))
            .collect();
        RedisClusterSet { nodes }
    }

    /// Joins the nodes, `replicas` replicas per master, and waits until
    /// they all agree.
    pub fn form(&self, replicas: usize) {
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for (_, node) in self.alive() {
            create.arg(node.addr().to_string());
        }
        let mut child = create
            .arg("--cluster-replicas")
            .arg(replicas.to_string())
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-cli runs (redis-tools, which Debian's redis-server brings)");
        // redis-cli waits for the nodes to agree, without a bound of its own.
        let deadline = Instant::now() + SETTLE_DEADLINE;
        let status = loop {
            if let Some(status) = child.try_wait().expect("redis-cli status") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("redis-cli --cluster create did not finish");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "redis-cli --cluster create: {status}");
        self.wait_settled(SETTLE_DEADLINE);
    }

    /// The seed URLs of the nodes alive, for `RedisOptions::cluster`.
    pub fn urls(&self) -> Vec<String> {
        self.alive().map(|(_, n)| n.url()).collect()
    }

    /// Node `index` (in start order); panics if it was killed.
    pub fn node(&self, index: usize) -> &RedisServer {
        self.nodes[index].as_ref().expect("the node was killed")
    }

    /// Kills node `index` (SIGKILL, no goodbye to anyone).
    pub fn kill(&mut self, index: usize) {
        if let Some(mut node) = self.nodes[index].take() {
            node.stop();
        }
    }

    /// The index of the node serving `key`'s slot as master now, as the
    /// nodes alive see it (`None` while none of them names a live one).
    pub fn master_of(&self, key: &str) -> Option<usize> {
        let slot = self.slot_of(key);
        let view = self.view()?;
        let master = view
            .iter()
            .find(|n| n.master && !n.failing && n.slots.iter().any(|r| r.contains(&slot)))?;
        self.index_of(master.addr)
    }

    /// The index of a replica of node `master`, once the nodes know one.
    pub fn replica_of(&self, master: usize) -> Option<usize> {
        let view = self.view()?;
        let addr = self.node(master).addr();
        let id = &view.iter().find(|n| n.addr == addr)?.id;
        let replica = view
            .iter()
            .find(|n| !n.master && n.master_id.as_deref() == Some(id.as_str()))?;
        self.index_of(replica.addr)
    }

    /// Waits until every live node reports a healthy cluster and `key`'s
    /// slot is served by a live master; returns that master's index and
    /// how long it took from `since`.
    pub fn wait_served(&self, key: &str, since: Instant, within: Duration) -> (usize, Duration) {
        let deadline = Instant::now() + within;
        loop {
            let ok = self
                .alive()
                .all(|(_, n)| n.command("CLUSTER INFO").contains("cluster_state:ok"));
            if ok {
                if let Some(master) = self.master_of(key) {
                    if self.node(master).command("ROLE").contains("master") {
                        return (master, since.elapsed());
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for the slot of {key} to be served"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts resharding `key`'s slot to master `to` as an operator (or
    /// `redis-cli --cluster reshard`) does: the slot marked importing on
    /// `to` and migrating on its owner, then every key in it moved with
    /// MIGRATE. The owner still holds the slot: clients asking it for
    /// those keys are sent on with ASK until [`finish`](Migration::finish).
    pub fn start_migration(&self, key: &str, to: usize) -> Migration<'_> {
        let slot = self.slot_of(key);
        let from = self.master_of(key).expect("the slot is served");
        assert_ne!(from, to, "the slot is on node {to} already");
        let id = |i: usize| {
            self.node(i)
                .command("CLUSTER MYID")
                .lines()
                .nth(1)
                .unwrap_or("")
                .to_owned()
        };
        let (from_id, to_id) = (id(from), id(to));
        let ok = |reply: String, what: &str| assert!(reply.starts_with("+OK"), "{what}: {reply}");
        ok(
            self.node(to)
                .command(&format!("CLUSTER SETSLOT {slot} IMPORTING {from_id}")),
            "IMPORTING",
        );
        ok(
            self.node(from)
                .command(&format!("CLUSTER SETSLOT {slot} MIGRATING {to_id}")),
            "MIGRATING",
        );
        let target = self.node(to).addr();
        loop {
            let reply = self
                .node(from)
                .command(&format!("CLUSTER GETKEYSINSLOT {slot} 100"));
            // `*n`, then `$len` and the key for each.
            let keys: Vec<&str> = reply
                .lines()
                .filter(|l| !l.starts_with('*') && !l.starts_with('$') && !l.is_empty())
                .collect();
            if keys.is_empty() {
                break;
            }
            let reply = self.node(from).command(&format!(
                "MIGRATE {} {} \"\" 0 5000 KEYS {}",
                target.ip(),
                target.port(),
                keys.join(" ")
            ));
            assert!(reply.starts_with("+OK"), "MIGRATE: {reply}");
        }
        Migration {
            set: self,
            slot,
            to_id,
        }
    }

    fn wait_settled(&self, within: Duration) {
        let known = format!("cluster_known_nodes:{}", self.nodes.len());
        let deadline = Instant::now() + within;
        for (_, node) in self.alive() {
            loop {
                let info = node.command("CLUSTER INFO");
                let replica_synced = {
                    let replication = node.command("INFO replication");
                    replication.contains("role:master")
                        || replication.contains("master_link_status:up")
                };
                if info.contains("cluster_state:ok") && info.contains(&known) && replica_synced {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for the cluster to settle: {info}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn alive(&self) -> impl Iterator<Item = (usize, &RedisServer)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (i, n)))
    }

    fn index_of(&self, addr: SocketAddr) -> Option<usize> {
        self.alive().find(|(_, n)| n.addr() == addr).map(|(i, _)| i)
    }

    fn slot_of(&self, key: &str) -> u16 {
        let (_, node) = self.alive().next().expect("a live node");
        let reply = node.command(&format!("CLUSTER KEYSLOT {key}"));
        reply
            .trim()
            .trim_start_matches(':')
            .parse()
            .unwrap_or_else(|_| panic!("CLUSTER KEYSLOT: {reply}"))
    }

    /// `CLUSTER NODES` as the first live node sees it.
    fn view(&self) -> Option<Vec<NodeLine>> {
        let (_, node) = self.alive().next()?;
        Some(
            node.command("CLUSTER NODES")
                .lines()
                .filter_map(NodeLine::parse)
                .collect(),
        )
    }
}

/// A slot on its way to another master ([`RedisClusterSet::start_migration`]).
pub struct Migration<'a> {
    set: &'a RedisClusterSet,
    slot: u16,
    to_id: String,
}

impl Migration<'_> {
    /// Names the new owner to every master: clients asking the old one get
    /// MOVED from now on.
    pub fn finish(self) {
        for (_, node) in self.set.alive() {
            if node.command("ROLE").contains("master") {
                let reply = node.command(&format!(
                    "CLUSTER SETSLOT {} NODE {}",
                    self.slot, self.to_id
                ));
                assert!(reply.starts_with("+OK"), "SETSLOT NODE: {reply}");
            }
        }
    }
}

/// One line of `CLUSTER NODES`.
struct NodeLine {
    id: String,
    addr: SocketAddr,
    master: bool,
    failing: bool,
    master_id: Option<String>,
    slots: Vec<std::ops::RangeInclusive<u16>>,
}

impl NodeLine {
    fn parse(line: &str) -> Option<NodeLine> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            return None;
        }
        // `ip:port@cport[,hostname]`
        let addr = fields[1].split('@').next()?.parse().ok()?;
        let flags = fields[2];
        let slots = fields[8..]
            .iter()
            .filter_map(|s| {
                // `[slot-<-id]` entries are slots being migrated.
                if s.starts_with('[') {
                    return None;
                }
                let (from, to) = s.split_once('-').unwrap_or((s, s));
                Some(from.parse().ok()?..=to.parse().ok()?)
            })
            .collect();
        Some(NodeLine {
            id: fields[0].to_owned(),
            addr,
            master: flags.contains("master"),
            failing: flags.contains("fail"),
            master_id: (fields[3] != "-").then(|| fields[3].to_owned()),
            slots,
        })
    }
}
