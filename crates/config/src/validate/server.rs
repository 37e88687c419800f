//! The process-wide sections: `[server]` (listeners, TLS files, timeouts,
//! limits), `[admin]` (the management listener) and `[log]`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use crate::locate::Step;
use crate::model::{Admin, LogFormat, Logging, Server, Timeouts, TlsFiles, DEFAULT_ACS_PER_MINUTE};
use crate::raw::{RawAdmin, RawLog, RawServer};

use super::{PemKind, Validator};

const DEFAULT_HEADER_READ: Duration = Duration::from_secs(10);
const DEFAULT_IDLE: Duration = Duration::from_secs(75);
const DEFAULT_UPSTREAM_CONNECT: Duration = Duration::from_secs(3);
/// nginx's `proxy_read_timeout` and `proxy_send_timeout`: a stalled upstream
/// is given up after a minute without a byte, however long a moving
/// exchange takes. There is no total by default, as in nginx.
const DEFAULT_UPSTREAM_INACTIVITY: Duration = Duration::from_secs(60);
const DEFAULT_SHUTDOWN: Duration = Duration::from_secs(30);
/// Well under the 8 KiB many backends accept per header block once the
/// gateway has added its own headers.
const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// hyper cannot buffer less than this for an HTTP/1 head.
const MIN_MAX_HEADER_BYTES: u64 = 8 * 1024;
const MAX_MAX_HEADER_BYTES: u64 = 1024 * 1024;
/// hyper's own HTTP/1.1 default, which it parses on the stack; a browser
/// sends 10–30 headers.
const DEFAULT_MAX_HEADERS: usize = 100;
const MAX_HEADERS_RANGE: std::ops::RangeInclusive<u64> = 16..=4096;
const MAX_CONNECTIONS_RANGE: std::ops::RangeInclusive<u64> = 1..=1_000_000;

const SERVER: Step<'static> = Step::Key("server");

impl Validator<'_, '_> {
    pub(super) fn server(&mut self, raw: RawServer) -> Option<Server> {
        let https = self.listeners("https", &raw.https);
        let http = self.listeners("http", &raw.http);
        if raw.https.is_empty() {
            self.problem(
                &[SERVER, Step::Key("https")],
                "at least one TLS listener is required",
            );
        }
        self.listeners_distinct(&https, &http);
        let tls = self.tls_files(raw.tls_cert.as_deref(), raw.tls_key.as_deref());
        let timeouts = self.timeouts(&raw);
        let max_header_bytes = self.bounded(
            &[SERVER, Step::Key("max_header_bytes")],
            raw.max_header_bytes,
            MIN_MAX_HEADER_BYTES..=MAX_MAX_HEADER_BYTES,
            DEFAULT_MAX_HEADER_BYTES,
        );
        let max_headers = self.bounded(
            &[SERVER, Step::Key("max_headers")],
            raw.max_headers,
            MAX_HEADERS_RANGE,
            DEFAULT_MAX_HEADERS,
        );
        // Unset: the server derives it from the descriptor limit at start,
        // which `check` (another user, another shell) cannot know.
        let max_connections = raw.max_connections.map(|_| {
            self.bounded(
                &[SERVER, Step::Key("max_connections")],
                raw.max_connections,
                MAX_CONNECTIONS_RANGE,
                0,
            )
        });
        let workers = match raw.workers {
            None => std::thread::available_parallelism().map_or(1, usize::from),
            Some(_) => self.bounded(&[SERVER, Step::Key("workers")], raw.workers, 1..=256, 1),
        };
        let acs_per_minute = self.bounded(
            &[SERVER, Step::Key("acs_per_minute")],
            raw.acs_per_minute,
            1..=1_000_000,
            DEFAULT_ACS_PER_MINUTE,
        );
        let https_redirect_port = raw
            .https_redirect_port
            .or_else(|| https.first().map(|a| a.port()))
            .unwrap_or(443);
        Some(Server {
            https,
            http,
            https_redirect_port,
            tls: tls?,
            timeouts,
            max_header_bytes,
            max_headers,
            max_connections,
            workers,
            acs_per_minute,
        })
    }

    /// `https` or `http`: the addresses that parse.
    fn listeners(&mut self, key: &'static str, raw: &[String]) -> Vec<SocketAddr> {
        let mut addrs = Vec::new();
        for (i, a) in raw.iter().enumerate() {
            if let Some(addr) = self.addr(&[SERVER, Step::Key(key), Step::Index(i)], a) {
                addrs.push(addr);
            }
        }
        addrs
    }

    fn listeners_distinct(&mut self, https: &[SocketAddr], http: &[SocketAddr]) {
        let mut seen = HashSet::new();
        // Port 0 asks the OS for a fresh port each time, so it never clashes.
        for addr in https.iter().chain(http).filter(|a| a.port() != 0) {
            if !seen.insert(*addr) {
                self.problem(&[SERVER], format!("listener {addr} is configured twice"));
            }
        }
    }

    fn tls_files(&mut self, cert: Option<&str>, key: Option<&str>) -> Option<TlsFiles> {
        let (Some(cert), Some(key)) = (cert, key) else {
            self.problem(
                &[SERVER],
                "tls_cert and tls_key are required (make them with `portcullis dev-certs DIR`)",
            );
            return None;
        };
        let cert = self.pem(&[SERVER, Step::Key("tls_cert")], cert, PemKind::Cert);
        let key = self.pem(&[SERVER, Step::Key("tls_key")], key, PemKind::Key);
        Some(TlsFiles { cert, key })
    }

    /// Each timeout, then the orderings between them.
    fn timeouts(&mut self, raw: &RawServer) -> Timeouts {
        let timeouts = Timeouts {
            header_read: self.timeout(
                "header_read_timeout",
                raw.header_read_timeout.as_deref(),
                DEFAULT_HEADER_READ,
            ),
            idle: self.timeout("idle_timeout", raw.idle_timeout.as_deref(), DEFAULT_IDLE),
            upstream_connect: self.timeout(
                "upstream_connect_timeout",
                raw.upstream_connect_timeout.as_deref(),
                DEFAULT_UPSTREAM_CONNECT,
            ),
            upstream_inactivity: self.timeout(
                "upstream_inactivity_timeout",
                raw.upstream_inactivity_timeout.as_deref(),
                DEFAULT_UPSTREAM_INACTIVITY,
            ),
            // Optional: without it a slow but moving upload or answer is
            // bounded only by inactivity.
            upstream_response: raw.upstream_response_timeout.as_deref().map(|text| {
                self.timeout(
                    "upstream_response_timeout",
                    Some(text),
                    DEFAULT_UPSTREAM_INACTIVITY,
                )
            }),
            shutdown: self.timeout(
                "shutdown_timeout",
                raw.shutdown_timeout.as_deref(),
                DEFAULT_SHUTDOWN,
            ),
        };
        if timeouts
            .upstream_response
            .is_some_and(|total| timeouts.upstream_connect > total)
        {
            self.problem(
                &[SERVER, Step::Key("upstream_connect_timeout")],
                "must not exceed upstream_response_timeout (the response wait includes the connect)",
            );
        }
        if timeouts.header_read > timeouts.idle {
            self.problem(
                &[SERVER, Step::Key("header_read_timeout")],
                "must not exceed idle_timeout (an idle connection would outlive its own header deadline)",
            );
        }
        timeouts
    }

    fn timeout(&mut self, key: &'static str, raw: Option<&str>, default: Duration) -> Duration {
        self.duration(&[SERVER, Step::Key(key)], raw, default, "10s or 2m")
    }

    pub(super) fn admin(&mut self, raw: RawAdmin) -> Option<Admin> {
        let listen = raw.listen.as_deref().unwrap_or("127.0.0.1:9090");
        let listen = self.addr(&[Step::Key("admin"), Step::Key("listen")], listen)?;
        Some(Admin { listen })
    }

    pub(super) fn log(&mut self, raw: RawLog) -> Logging {
        let format = match raw.format.as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                self.problem(
                    &[Step::Key("log"), Step::Key("format")],
                    format!("`{other}` is not a log format (expected \"pretty\" or \"json\")"),
                );
                LogFormat::Pretty
            }
        };
        Logging {
            format,
            level: raw.level.unwrap_or_else(|| "info".into()),
            access_log: raw.access_log.unwrap_or(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::fixtures::{app, parse, problems, SERVER};

    fn with_server(keys: &str) -> String {
        format!(
            "{}\n{keys}\n\n{}",
            SERVER.trim_end(),
            app("a", "https://a.test/", "")
        )
    }

    #[test]
    fn connection_and_upstream_limits_default_like_nginx() {
        let config = parse(&with_server("")).expect("valid");
        let server = &config.server;
        assert_eq!(server.timeouts.upstream_inactivity, Duration::from_secs(60));
        assert_eq!(
            server.timeouts.upstream_response, None,
            "no total by default"
        );
        assert_eq!(server.max_headers, 100);
        assert_eq!(server.max_connections, None, "derived at start");
    }

    #[test]
    fn connection_and_upstream_limits_are_read() {
        let config = parse(&with_server(
            "upstream_inactivity_timeout = \"2m\"\nupstream_response_timeout = \"5m\"\nmax_headers = 64\nmax_connections = 5000",
        ))
        .expect("valid");
        let server = &config.server;
        assert_eq!(
            server.timeouts.upstream_inactivity,
            Duration::from_secs(120)
        );
        assert_eq!(
            server.timeouts.upstream_response,
            Some(Duration::from_secs(300))
        );
        assert_eq!(server.max_headers, 64);
        assert_eq!(server.max_connections, Some(5000));
    }

    #[test]
    fn connection_and_upstream_limits_out_of_range_are_located() {
        let problems = problems(&with_server(
            "upstream_inactivity_timeout = \"0s\"\nupstream_response_timeout = \"soon\"\nmax_headers = 2\nmax_connections = 0",
        ));
        let found: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.key.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(found.len(), 4, "{problems:?}");
        assert_eq!(
            found[0],
            (
                "server.upstream_inactivity_timeout",
                "must be longer than zero"
            )
        );
        assert_eq!(found[1].0, "server.upstream_response_timeout");
        assert!(found[1].1.contains("not a duration"), "{problems:?}");
        assert_eq!(
            found[2],
            ("server.max_headers", "must be between 16 and 4096")
        );
        assert_eq!(
            found[3],
            ("server.max_connections", "must be between 1 and 1000000")
        );
    }

    #[test]
    fn connect_timeout_is_checked_only_against_a_configured_total() {
        parse(&with_server("upstream_connect_timeout = \"90s\"")).expect("no total: valid");
        let problems = problems(&with_server(
            "upstream_connect_timeout = \"90s\"\nupstream_response_timeout = \"30s\"",
        ));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "server.upstream_connect_timeout");
    }
}
