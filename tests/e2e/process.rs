//! A `portcullis run` child process with JSON logs captured.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use test_support::Pki;

pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

pub struct Gateway {
    child: Child,
    pub https: SocketAddr,
    pub pki: Pki,
    pub config: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

/// In `server_extra`, replaced by the path of the PKI's CA certificate
/// (e.g. for `[cluster] peer_ca`: the nodes trust each other's listener).
pub const PKI_CA: &str = "@PKI_CA@";

/// A config for one TLS listener on port 0 with JSON logs and `apps`.
pub fn config_text(pki: &Pki, server_extra: &str, apps: &str) -> String {
    let server_extra =
        server_extra.replace(PKI_CA, &pki.dir().join("ca.pem").display().to_string());
    format!(
        "[server]\nhttps = [\"127.0.0.1:0\"]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n{server_extra}\n\n[log]\nformat = \"json\"\nlevel = \"info\"\n\n{apps}",
        pki.cert_path().display(),
        pki.key_path().display(),
    )
}

pub fn app(name: &str, public_url: &str, upstream: &str) -> String {
    format!(
        "[[app]]\nname = \"{name}\"\npublic_url = \"{public_url}\"\nupstream = \"{upstream}\"\n"
    )
}

impl Gateway {
    pub fn start(server_extra: &str, apps: &str) -> Gateway {
        Gateway::start_with_text(|pki| config_text(pki, server_extra, apps))
    }

    /// Starts the gateway on the config `text` returns for a fresh PKI.
    pub fn start_with_text(text: impl FnOnce(&Pki) -> String) -> Gateway {
        let pki = Pki::new();
        let dir = tempfile::tempdir().expect("dir");
        let config = dir.path().join("gateway.toml");
        std::fs::write(&config, text(&pki)).expect("write config");
        let (child, logs, stderr) = spawn(&config);
        let mut gateway = Gateway {
            child,
            https: "0.0.0.0:0".parse().expect("addr"),
            pki,
            config,
            logs,
            stderr,
            _dir: dir,
        };
        gateway.await_listening();
        gateway
    }

    /// The temporary directory holding `gateway.toml`; relative paths in
    /// the config (e.g. `[idp] system_log_file`) resolve against it.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// Stops the process with SIGTERM, waits for it to exit cleanly, then
    /// starts a new one with the same config file (and so the same files it
    /// names). The new process listens on a new port: `https` is updated.
    pub fn restart(&mut self) {
        self.signal("TERM");
        assert_eq!(
            self.wait_exit(Duration::from_secs(20)),
            Some(0),
            "gateway did not exit cleanly on SIGTERM; logs: {:?}",
            self.logs()
        );
        let (child, logs, stderr) = spawn(&self.config);
        self.child = child;
        self.logs = logs;
        self.stderr = stderr;
        self.await_listening();
    }

    fn await_listening(&mut self) {
        let line = self
            .wait_for_log("gateway listening", Duration::from_secs(20))
            .unwrap_or_else(|| {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "gateway did not start; logs: {:?}; stderr: {:?}",
                    self.logs(),
                    self.stderr()
                )
            });
        let event: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        let https = event["https"].as_str().expect("https field");
        self.https = https
            .trim_matches(['[', ']'])
            .split(',')
            .next()
            .and_then(|a| a.trim().parse().ok())
            .expect("bound address");
    }

    /// A cookie-keeping browser whose every connection goes to this gateway.
    pub fn browser(&self) -> test_support::browser::Browser {
        test_support::browser::Browser::new(test_support::Client::http1(&self.pki, self.https))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("logs").clone()
    }

    /// What the process wrote to stderr (problems found at start; nothing
    /// once it serves, when stderr becomes log events).
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().expect("stderr").clone()
    }

    /// The management listener's bound address, from `gateway listening`
    /// (`admin` is written as `Some(127.0.0.1:PORT)`); the config needs
    /// an `[admin]` listener (see [`WITH_ADMIN`]).
    pub fn admin_addr(&self) -> SocketAddr {
        let line = self
            .wait_for_log("gateway listening", Duration::from_secs(5))
            .expect("listening line");
        let event: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        event["admin"]
            .as_str()
            .and_then(|a| a.strip_prefix("Some("))
            .and_then(|a| a.strip_suffix(')'))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no admin address in {line}"))
    }

    /// The first log line containing `needle`, waiting up to `within`.
    pub fn wait_for_log(&self, needle: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self.logs().into_iter().find(|l| l.contains(needle)) {
                return Some(line);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The log lines containing `needle`, once there are at least `count`
    /// of them, waiting up to `within` (lines are written after responses).
    pub fn wait_for_logs(&self, needle: &str, count: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let lines: Vec<String> = self
                .logs()
                .into_iter()
                .filter(|l| l.contains(needle))
                .collect();
            if lines.len() >= count || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Peak resident memory of the gateway process, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }

    /// CPU time the gateway process has used so far, user and system, all
    /// threads (`/proc/<pid>/stat`, in the kernel's 100 Hz ticks).
    pub fn cpu_time(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("proc stat");
        // Fields after the parenthesised command name: state is the 3rd
        // field of the whole line, utime the 14th and stime the 15th.
        let after_name = stat.rsplit_once(')').expect("comm").1;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        Duration::from_millis(ticks * 10)
    }

    pub fn rewrite_config(&self, text: &str) {
        write_atomically(&self.config, text);
    }
}

/// `[server]` keys followed by a management listener on a free port.
pub const WITH_ADMIN: &str = "shutdown_timeout = \"10s\"\n\n[admin]\nlisten = \"127.0.0.1:0\"";

/// `GET path` over plain HTTP on the management listener (or any plain
/// listener, e.g. SimpleSAMLphp's): the status code and the whole reply,
/// or `None` when nothing accepts the connection.
pub async fn admin_get(admin: SocketAddr, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(admin).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut out = String::new();
    stream.read_to_string(&mut out).await.ok()?;
    let status = out.get(9..12)?.parse().ok()?;
    Some((status, out))
}

type Lines = Arc<Mutex<Vec<String>>>;

/// Starts `portcullis run --config <config>` with its stdout (the log)
/// and stderr captured, line by line.
fn spawn(config: &Path) -> (Child, Lines, Lines) {
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn portcullis");
    let logs = collect_lines(child.stdout.take().expect("stdout"));
    let stderr = collect_lines(child.stderr.take().expect("stderr"));
    (child, logs, stderr)
}

fn collect_lines(pipe: impl std::io::Read + Send + 'static) -> Lines {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            sink.lock().expect("lines").push(line);
        }
    });
    lines
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
