//! A Redis Sentinel deployment on loopback: a master, one replica and a
//! few sentinels on free ports, tuned to fail over within a couple of
//! seconds, for the tests that kill the master.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis::{answers, command, free_port, RedisServer};

/// The name the sentinels monitor.
pub const MASTER_NAME: &str = "mymaster";

/// How long the set may take to settle (replica in sync, sentinels aware
/// of the replica and of each other).
const SETTLE_DEADLINE: Duration = Duration::from_secs(20);

pub struct RedisSentinelSet {
    /// `None` once killed.
    master: Option<RedisServer>,
    replica: RedisServer,
    sentinels: Vec<Sentinel>,
}

struct Sentinel {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl RedisSentinelSet {
    /// A master, a replica in sync with it, and `sentinels` sentinels
    /// (quorum: a majority) that all know the replica and each other. A
    /// master is judged down after 500 ms.
    pub fn start(sentinels: usize) -> RedisSentinelSet {
        assert!(sentinels > 0, "at least one sentinel");
        let master = RedisServer::start();
        let port = master.addr().port().to_string();
        let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
        wait_for(SETTLE_DEADLINE, "the replica to sync", || {
            command(replica.addr(), "INFO replication").contains("master_link_status:up")
        });
        let quorum = sentinels / 2 + 1;
        let sentinels: Vec<Sentinel> = (0..sentinels)
            .map(|_| Sentinel::start(master.addr(), quorum))
            .collect();
        // Flat RESP2 arrays of bulk strings: `name`, `value`, …
        let others = format!("num-other-sentinels\r\n$1\r\n{}\r\n", sentinels.len() - 1);
        for sentinel in &sentinels {
            wait_for(SETTLE_DEADLINE, "the sentinels to see the set", || {
                let view = command(sentinel.addr, &format!("SENTINEL MASTER {MASTER_NAME}"));
                view.contains("num-slaves\r\n$1\r\n1\r\n") && view.contains(&others)
            });
        }
        RedisSentinelSet {
            master: Some(master),
            replica,
            sentinels,
        }
    }

    /// The sentinels' URLs, for `RedisOptions::sentinel`.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("redis://{}/", s.addr))
            .collect()
    }

    pub fn master(&self) -> &RedisServer {
        self.master.as_ref().expect("the master was killed")
    }

    pub fn replica(&self) -> &RedisServer {
        &self.replica
    }

    /// Waits until the replica has everything the master wrote.
    pub fn wait_replicated(&self) {
        let master = self.master();
        wait_for(SETTLE_DEADLINE, "the replica to catch up", || {
            let offset = |info: &str, field: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(field))
                    .map(|v| v.trim().to_owned())
            };
            let on_master = offset(&master.command("INFO replication"), "master_repl_offset:");
            let on_replica = offset(
                &self.replica.command("INFO replication"),
                "slave_repl_offset:",
            );
            on_master.is_some() && on_master == on_replica
        });
    }

    /// Kills the master (SIGKILL, no goodbye to anyone).
    pub fn kill_master(&mut self) {
        if let Some(mut master) = self.master.take() {
            master.stop();
        }
    }

    /// Asks a sentinel to promote the replica while the master is alive:
    /// the old master is demoted to a replica and keeps answering.
    pub fn manual_failover(&self) {
        let reply = command(
            self.sentinels[0].addr,
            &format!("SENTINEL FAILOVER {MASTER_NAME}"),
        );
        assert!(reply.starts_with("+OK"), "SENTINEL FAILOVER: {reply}");
    }

    /// Waits until every sentinel names the replica as the master and the
    /// replica says it is one; returns how long that took from `since`.
    pub fn wait_failover(&self, since: Instant, within: Duration) -> Duration {
        let port = format!("\r\n{}\r\n", self.replica.addr().port());
        wait_for(within, "the failover", || {
            self.sentinels.iter().all(|s| {
                command(
                    s.addr,
                    &format!("SENTINEL GET-MASTER-ADDR-BY-NAME {MASTER_NAME}"),
                )
                .contains(&port)
            }) && self.replica.command("ROLE").contains("master")
        });
        since.elapsed()
    }
}

impl RedisSentinelSet {
    /// After a switch-over: makes the old master a replica of the promoted
    /// one now, as the sentinels would some seconds later (on their next
    /// look at it), without closing its clients' connections.
    pub fn demote_old_master(&self) {
        let reply = self.master().command(&format!(
            "REPLICAOF 127.0.0.1 {}",
            self.replica.addr().port()
        ));
        assert!(reply.starts_with("+OK"), "REPLICAOF: {reply}");
    }
}

impl Sentinel {
    fn start(master: SocketAddr, quorum: usize) -> Sentinel {
        let dir = tempfile::tempdir().expect("sentinel temp dir");
        for _attempt in 0..5 {
            let addr = free_port();
            // Sentinel rewrites its file (what it learnt), so each has its
            // own, in a directory of its own.
            let conf = dir.path().join("sentinel.conf");
            std::fs::write(
                &conf,
                format!(
                    "port {port}\n\
                     bind 127.0.0.1\n\
                     dir {dir}\n\
                     sentinel monitor {MASTER_NAME} {ip} {mport} {quorum}\n\
                     sentinel down-after-milliseconds {MASTER_NAME} 500\n\
                     sentinel failover-timeout {MASTER_NAME} 3000\n\
                     sentinel parallel-syncs {MASTER_NAME} 1\n",
                    port = addr.port(),
                    dir = dir.path().display(),
                    ip = master.ip(),
                    mport = master.port(),
                ),
            )
            .expect("write sentinel.conf");
            let mut child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server --sentinel runs (make test installs redis-server)");
            if answers(addr, &mut child) {
                return Sentinel {
                    child,
                    addr,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis sentinel did not start");
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it holds; panics naming `what` after `within`.
fn wait_for(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
