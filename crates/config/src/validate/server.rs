//! The process-wide sections: `[server]` (listeners, TLS files, timeouts,
//! limits), `[admin]` (the management listener) and `[log]`.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};

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
        let trusted_proxies = self.trusted_proxies(&raw.trusted_proxies);
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
            trusted_proxies,
        })
    }

    /// `trusted_proxies`: every entry that parses, one problem per entry
    /// that does not.
    fn trusted_proxies(&mut self, raw: &[String]) -> Vec<IpNet> {
        let mut nets = Vec::with_capacity(raw.len());
        for (i, entry) in raw.iter().enumerate() {
            match proxy_net(entry) {
                Some(net) => nets.push(net),
                None => self.problem(
                    &[SERVER, Step::Key("trusted_proxies"), Step::Index(i)],
                    format!(
                        "`{entry}` is not an IP address or CIDR such as 10.0.0.0/8, 192.0.2.10 or 2001:db8::/32"
                    ),
                ),
            }
        }
        nets
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

/// One `trusted_proxies` entry: a CIDR, or a bare address meaning one host.
/// Host bits are cleared ("10.1.2.3/8" means 10.0.0.0/8), as the IdP's
/// network zones and most firewalls read it. An IPv4-mapped IPv6 network
/// becomes its IPv4 form: a dual-stack listener reports an IPv4 peer as
/// `::ffff:a.b.c.d`, and the proxy compares peers in their IPv4 form.
fn proxy_net(entry: &str) -> Option<IpNet> {
    let entry = entry.trim();
    let net = match entry.parse::<IpNet>() {
        Ok(net) => net.trunc(),
        Err(_) => IpNet::from(entry.parse::<IpAddr>().ok()?),
    };
    if let IpNet::V6(v6) = net {
        if let (Some(v4), Some(len)) = (
            v6.network().to_ipv4_mapped(),
            v6.prefix_len().checked_sub(96),
        ) {
            return Ipv4Net::new(v4, len).ok().map(IpNet::V4);
        }
    }
    Some(net)
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

    #[test]
    fn trusted_proxies_default_to_none() {
        let config = parse(&with_server("")).expect("valid");
        assert!(config.server.trusted_proxies.is_empty());
    }

    #[test]
    fn trusted_proxies_take_cidrs_and_bare_addresses() {
        let config = parse(&with_server(
            "trusted_proxies = [\"10.1.2.3/8\", \"127.0.0.2\", \"2001:db8::/32\", \"::ffff:192.0.2.0/120\", \"::1\"]",
        ))
        .expect("valid");
        let nets: Vec<String> = config
            .server
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            nets,
            [
                "10.0.0.0/8",
                "127.0.0.2/32",
                "2001:db8::/32",
                "192.0.2.0/24",
                "::1/128"
            ]
        );
    }

    #[test]
    fn every_bad_trusted_proxy_is_a_located_problem() {
        let problems = problems(&with_server(
            "trusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/33\", \"lb.example\", \"\"]",
        ));
        let found: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            found,
            [
                "server.trusted_proxies[1]",
                "server.trusted_proxies[2]",
                "server.trusted_proxies[3]"
            ],
            "{problems:?}"
        );
        assert!(problems[1]
            .message
            .contains("`lb.example` is not an IP address or CIDR"));
        assert!(problems.iter().all(|p| p.line.is_some()), "{problems:?}");
    }
}
