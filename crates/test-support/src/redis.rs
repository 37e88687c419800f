//! A real `redis-server` on a free loopback port, for the Redis backends'
//! suites and the cluster tests: started by the test that needs it,
//! stopped when dropped (or, for the one a whole test binary shares, when
//! the test process goes away). `make test` installs Debian's
//! redis-server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a server may take to answer PING after starting.
const START_DEADLINE: Duration = Duration::from_secs(15);

pub struct RedisServer {
    child: Option<Child>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    /// Extra `redis-server` arguments (e.g. `--requirepass`), kept for
    /// restarts.
    args: Vec<String>,
    /// A shell watchdog stands between the test and the server.
    watched: bool,
    /// A Redis Cluster node: its cluster bus gets a free port of its own
    /// (the default, port + 10000, may be taken or out of range).
    cluster_node: bool,
}

impl RedisServer {
    /// A server owned by the caller; killed on drop.
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// With extra `redis-server` arguments.
    pub fn start_with(args: &[&str]) -> RedisServer {
        Self::spawn(args, false, false)
    }

    /// A server with `args`, behind a watchdog when `watched`, a cluster
    /// node when `cluster_node`.
    pub(crate) fn spawn(args: &[&str], watched: bool, cluster_node: bool) -> RedisServer {
        let dir = tempfile::tempdir().expect("redis temp dir");
        let mut server = RedisServer {
            child: None,
            addr: free_port(),
            dir,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            watched,
            cluster_node,
        };
        server.launch();
        server
    }

    /// One server for a whole test binary (stores keep apart by key
    /// prefix). A watchdog shell kills it once the test process is gone,
    /// since statics are never dropped.
    pub fn shared() -> &'static RedisServer {
        static SHARED: OnceLock<RedisServer> = OnceLock::new();
        SHARED.get_or_init(|| Self::spawn(&[], true, false))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Kills the server (an outage); [`restart`](Self::restart) brings it
    /// back on the same port, empty.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + START_DEADLINE;
        while TcpStream::connect(self.addr).is_ok() && Instant::now() < deadline {
            std::thread::yield_now();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Runs one command with `redis-cli`-free RESP (inline command), for
    /// tests that inspect what the store wrote.
    pub fn command(&self, line: &str) -> String {
        command(self.addr, line)
    }

    fn launch(&mut self) {
        for _attempt in 0..5 {
            let mut args: Vec<String> = vec![
                "--port".into(),
                self.addr.port().to_string(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--save".into(),
                String::new(),
                "--appendonly".into(),
                "no".into(),
                "--dir".into(),
                self.dir.path().display().to_string(),
                "--loglevel".into(),
                "warning".into(),
            ];
            args.extend(self.args.iter().cloned());
            if self.cluster_node {
                args.push("--cluster-port".into());
                args.push(free_port().port().to_string());
            }
            let child = if self.watched {
                // Exits with the test process: polls its parent (the test)
                // and kills the server when it is gone.
                Command::new("sh")
                    .arg("-c")
                    .arg(
                        "redis-server \"$@\" & r=$!; \
                         while kill -0 $PPID 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 0.5; done; \
                         kill $r 2>/dev/null",
                    )
                    .arg("sh")
                    .args(&args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
            } else {
                Command::new("redis-server")
                    .args(&args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
            };
            let mut child = child.expect("redis-server runs (make test installs it)");
            if answers(self.addr, &mut child) {
                self.child = Some(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
            // The port was taken between choosing and binding: another.
            self.addr = free_port();
        }
        panic!("redis-server did not start");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One inline command to the server (or sentinel) at `addr`, the raw
/// RESP reply as text.
pub fn command(addr: SocketAddr, line: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to redis");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
        .write_all(format!("{line}\r\n").as_bytes())
        .expect("write");
    let mut reply = Vec::new();
    let mut buf = [0u8; 65_536];
    // One read is enough for the small replies tests look at; a second
    // short wait catches a reply split across segments.
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                reply.extend_from_slice(&buf[..n]);
                stream
                    .set_read_timeout(Some(Duration::from_millis(50)))
                    .expect("timeout");
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

pub(crate) fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr")
}

/// Whether the server at `addr` answers PING before the deadline (and
/// before `child` exits).
pub(crate) fn answers(addr: SocketAddr, child: &mut Child) -> bool {
    let deadline = Instant::now() + START_DEADLINE;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(mut stream) = TcpStream::connect(addr) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut reply = [0u8; 7];
            if stream.write_all(b"PING\r\n").is_ok()
                && stream.read_exact(&mut reply).is_ok()
                && &reply == b"+PONG\r\n"
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}
