//! `[cluster]` and `[cluster.redis]`: the mode, this node's id, its peers,
//! and the Redis store of shared mode. Nothing is resolved or connected
//! here; only the password's source is read, so `check` finds a missing
//! secret before a reconnect does.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use crate::locate::Step;
use crate::model::{
    App, Cluster, ClusterMode, Idp, OnStoreError, PeerUrl, PublicUrl, RedisConfig, RedisEndpoints,
    RedisPassword, DEFAULT_REDIS_COMMAND_TIMEOUT, DEFAULT_REDIS_CONNECT_TIMEOUT,
    DEFAULT_REDIS_KEY_PREFIX, DEFAULT_REVOCATION_STALENESS, DEFAULT_ROUTE_COOKIE,
};
use crate::raw::{RawCluster, RawRedis, RawSentinel};

use super::names::valid_header_name;
use super::url::{split_host_port, split_url};
use super::{PemKind, Validator};

const CLUSTER: Step<'static> = Step::Key("cluster");
const REDIS: Step<'static> = Step::Key("redis");

/// Below 100 ms the pub/sub round trip itself does not fit; above a minute
/// a revoked session lives on long enough to matter.
const STALENESS_RANGE: RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(60);
const CONNECT_TIMEOUT_RANGE: RangeInclusive<Duration> =
    Duration::from_millis(50)..=Duration::from_secs(60);
const COMMAND_TIMEOUT_RANGE: RangeInclusive<Duration> =
    Duration::from_millis(10)..=Duration::from_secs(30);
const REDIS_PORT: u16 = 6379;

fn at(key: &'static str) -> [Step<'static>; 2] {
    [CLUSTER, Step::Key(key)]
}

fn redis_at(key: &'static str) -> [Step<'static>; 3] {
    [CLUSTER, REDIS, Step::Key(key)]
}

fn mode_name(mode: ClusterMode) -> &'static str {
    match mode {
        ClusterMode::Single => "single",
        ClusterMode::Sticky => "sticky",
        ClusterMode::Shared => "shared",
    }
}

impl Validator<'_, '_> {
    /// `[cluster]`, checked against the apps and the IdP it sits beside.
    pub(super) fn cluster(
        &mut self,
        raw: RawCluster,
        idp: Option<&Idp>,
        apps: &[(usize, App)],
    ) -> Cluster {
        let mode = self.cluster_mode(raw.mode.as_deref());
        let node_id = self.node_id(raw.node_id, mode);
        let peers = self.peers(&raw.peers, idp, apps);
        let route_cookie = self.route_cookie(raw.route_cookie, mode, apps);
        let revocation_staleness = self.duration_within(
            &at("revocation_staleness"),
            raw.revocation_staleness.as_deref(),
            STALENESS_RANGE,
            DEFAULT_REVOCATION_STALENESS,
        );
        let on_store_error = match raw.on_store_error.as_deref() {
            None | Some("deny") => OnStoreError::Deny,
            Some("serve_cached") => OnStoreError::ServeCached,
            Some(other) => {
                self.problem(
                    &at("on_store_error"),
                    format!("`{other}` is not \"deny\" or \"serve_cached\""),
                );
                OnStoreError::Deny
            }
        };
        if mode == ClusterMode::Shared && raw.redis.is_none() {
            self.problem(
                &[CLUSTER],
                "[cluster.redis] is required for mode = \"shared\"",
            );
        }
        let redis = raw.redis.and_then(|r| self.redis(r));
        Cluster {
            mode,
            node_id,
            peers,
            route_cookie,
            revocation_staleness,
            on_store_error,
            redis,
        }
    }

    fn cluster_mode(&mut self, raw: Option<&str>) -> ClusterMode {
        match raw {
            None | Some("single") => ClusterMode::Single,
            Some("sticky") => ClusterMode::Sticky,
            Some("shared") => ClusterMode::Shared,
            Some(other) => {
                self.problem(
                    &at("mode"),
                    format!(
                        "`{other}` is not a cluster mode (expected \"single\", \"sticky\" or \"shared\")"
                    ),
                );
                ClusterMode::Single
            }
        }
    }

    /// Required where sessions name the node that owns them (sticky) or
    /// where nodes must tell each other apart on the store (shared).
    fn node_id(&mut self, raw: Option<String>, mode: ClusterMode) -> Option<String> {
        match raw {
            None if mode != ClusterMode::Single => {
                self.problem(
                    &[CLUSTER],
                    format!(
                        "node_id is required for mode = \"{}\" (unique per node, e.g. \"gw-a\")",
                        mode_name(mode)
                    ),
                );
                None
            }
            Some(id) if !valid_node_id(&id) => {
                self.problem(
                    &at("node_id"),
                    format!(
                        "`{id}` is not a node id: 1-32 characters a-z, 0-9 and -, starting with a letter or digit"
                    ),
                );
                None
            }
            other => other,
        }
    }

    /// Every peer that parses; one problem per peer that does not, or that
    /// names an address this configuration already publishes.
    fn peers(&mut self, raw: &[String], idp: Option<&Idp>, apps: &[(usize, App)]) -> Vec<PeerUrl> {
        let mut peers: Vec<PeerUrl> = Vec::with_capacity(raw.len());
        for (i, entry) in raw.iter().enumerate() {
            let path = [CLUSTER, Step::Key("peers"), Step::Index(i)];
            let peer = match parse_peer(entry) {
                Ok(peer) => peer,
                Err(message) => {
                    self.problem(&path, message);
                    continue;
                }
            };
            if peers.contains(&peer) {
                self.problem(&path, format!("`{entry}` is listed twice"));
                continue;
            }
            // The published origins are the balanced ones: a revocation
            // sent there reaches whichever node the balancer picks (maybe
            // this one), not the peer.
            let published = apps
                .iter()
                .find(|(_, app)| same_origin(&peer, &app.public))
                .map(|(j, app)| format!("app `{}` (app[{j}])", app.name))
                .or_else(|| {
                    idp.filter(|idp| same_origin(&peer, &idp.public))
                        .map(|_| "the embedded IdP".to_string())
                });
            if let Some(owner) = published {
                self.problem(
                    &path,
                    format!(
                        "`{entry}` is the public origin of {owner}: a peer is another node's own address, not the balanced one"
                    ),
                );
                continue;
            }
            peers.push(peer);
        }
        peers
    }

    fn route_cookie(
        &mut self,
        raw: Option<String>,
        mode: ClusterMode,
        apps: &[(usize, App)],
    ) -> String {
        let path = at("route_cookie");
        let Some(name) = raw else {
            return DEFAULT_ROUTE_COOKIE.to_string();
        };
        if !valid_header_name(&name) {
            self.problem(&path, format!("`{name}` is not a cookie name"));
            return DEFAULT_ROUTE_COOKIE.to_string();
        }
        if name.starts_with("pc_") {
            self.problem(
                &path,
                format!("`{name}`: names starting with pc_ are the gateway's own cookies"),
            );
            return DEFAULT_ROUTE_COOKIE.to_string();
        }
        // Only sticky mode sets it; elsewhere a clash harms nothing.
        if mode == ClusterMode::Sticky {
            let clash = apps.iter().find_map(|(i, app)| {
                let auth = app.auth.as_ref()?;
                (auth.session_cookie == name || auth.request_cookie == name)
                    .then(|| format!("app `{}` (app[{i}])", app.name))
            });
            if let Some(owner) = clash {
                self.problem(&path, format!("`{name}` is a session cookie of {owner}"));
            }
        }
        name
    }

    /// `[cluster.redis]`; `None` when it cannot be used (the problems say why).
    fn redis(&mut self, raw: RawRedis) -> Option<RedisConfig> {
        let endpoints = self.redis_endpoints(&raw);
        let username = match raw.username {
            Some(name) if !printable_word(&name) => {
                self.problem(
                    &redis_at("username"),
                    "must be a non-empty name of printable characters without spaces",
                );
                None
            }
            other => other,
        };
        let password = self.redis_password(raw.password_env, raw.password_file);
        let tls_ca = raw
            .tls_ca
            .as_deref()
            .map(|f| self.pem(&redis_at("tls_ca"), f, PemKind::Cert));
        if tls_ca.is_some() && endpoints.as_ref().is_some_and(|e| !e.uses_tls()) {
            self.problem(
                &redis_at("tls_ca"),
                "is only for rediss:// URLs (redis:// is not TLS)",
            );
        }
        let key_prefix = match raw.key_prefix {
            None => DEFAULT_REDIS_KEY_PREFIX.to_string(),
            Some(prefix) if prefix.len() <= 64 && printable_word(&prefix) => prefix,
            Some(_) => {
                self.problem(
                    &redis_at("key_prefix"),
                    "must be 1-64 printable ASCII characters without spaces",
                );
                DEFAULT_REDIS_KEY_PREFIX.to_string()
            }
        };
        let connect_timeout = self.duration_within(
            &redis_at("connect_timeout"),
            raw.connect_timeout.as_deref(),
            CONNECT_TIMEOUT_RANGE,
            DEFAULT_REDIS_CONNECT_TIMEOUT,
        );
        let command_timeout = self.duration_within(
            &redis_at("command_timeout"),
            raw.command_timeout.as_deref(),
            COMMAND_TIMEOUT_RANGE,
            DEFAULT_REDIS_COMMAND_TIMEOUT,
        );
        Some(RedisConfig {
            endpoints: endpoints?,
            username,
            password,
            tls_ca,
            key_prefix,
            connect_timeout,
            command_timeout,
        })
    }

    /// Exactly one of `url`, `sentinel`, `cluster_nodes`.
    fn redis_endpoints(&mut self, raw: &RawRedis) -> Option<RedisEndpoints> {
        let given: Vec<&'static str> = [
            ("url", raw.url.is_some()),
            ("sentinel", raw.sentinel.is_some()),
            ("cluster_nodes", raw.cluster_nodes.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect();
        match given.as_slice() {
            [] => {
                self.problem(
                    &[CLUSTER, REDIS],
                    "one of url, sentinel or cluster_nodes is required",
                );
                return None;
            }
            [first, more @ ..] if !more.is_empty() => {
                for key in more {
                    self.problem(
                        &redis_at(key),
                        format!(
                            "conflicts with {first}: set exactly one of url, sentinel, cluster_nodes"
                        ),
                    );
                }
                return None;
            }
            _ => {}
        }
        if let Some(url) = &raw.url {
            return match parse_redis_url(url, false) {
                Ok(_) => Some(RedisEndpoints::Single(url.clone())),
                Err(message) => {
                    self.problem(&redis_at("url"), message);
                    None
                }
            };
        }
        if let Some(sentinel) = &raw.sentinel {
            return self.sentinel(sentinel);
        }
        let nodes = raw.cluster_nodes.as_deref().unwrap_or_default();
        let path = redis_at("cluster_nodes");
        if nodes.is_empty() {
            self.problem(&path, "needs at least one node");
            return None;
        }
        self.redis_nodes(&path, "cluster_nodes", nodes, true)
            .then(|| RedisEndpoints::Cluster(nodes.to_vec()))
    }

    fn sentinel(&mut self, raw: &RawSentinel) -> Option<RedisEndpoints> {
        let path = redis_at("sentinel");
        let master = match raw.master.as_deref() {
            None => {
                self.problem(&path, "master is required (the name the sentinels monitor)");
                None
            }
            Some(name) if !printable_word(name) => {
                self.problem(
                    &[CLUSTER, REDIS, Step::Key("sentinel"), Step::Key("master")],
                    "must be a non-empty name of printable characters without spaces",
                );
                None
            }
            Some(name) => Some(name.to_string()),
        };
        let nodes_path = [CLUSTER, REDIS, Step::Key("sentinel"), Step::Key("nodes")];
        let nodes_ok = if raw.nodes.is_empty() {
            self.problem(&nodes_path, "needs at least one sentinel");
            false
        } else {
            self.redis_nodes(&nodes_path, "nodes", &raw.nodes, false)
        };
        let master = master?;
        nodes_ok.then(|| RedisEndpoints::Sentinel {
            master,
            nodes: raw.nodes.clone(),
        })
    }

    /// Each node a Redis URL, all on the scheme of the first good one:
    /// the client speaks TLS to all of them or to none.
    fn redis_nodes(
        &mut self,
        path: &[Step<'_>],
        label: &str,
        nodes: &[String],
        cluster: bool,
    ) -> bool {
        let mut ok = true;
        let mut first: Option<(usize, bool)> = None;
        for (i, node) in nodes.iter().enumerate() {
            let mut at = path.to_vec();
            at.push(Step::Index(i));
            match parse_redis_url(node, cluster) {
                Ok(tls) => match first {
                    None => first = Some((i, tls)),
                    Some((j, first_tls)) if first_tls != tls => {
                        self.problem(
                            &at,
                            format!(
                                "uses {} but {label}[{j}] uses {}: every node must use the same scheme",
                                scheme_name(tls),
                                scheme_name(first_tls)
                            ),
                        );
                        ok = false;
                    }
                    Some(_) => {}
                },
                Err(message) => {
                    self.problem(&at, message);
                    ok = false;
                }
            }
        }
        ok
    }

    /// At most one source; the one given must yield a password now, read
    /// the way the binary reads it when connecting.
    fn redis_password(
        &mut self,
        env: Option<String>,
        file: Option<String>,
    ) -> Option<RedisPassword> {
        let (key, password) = match (env, file) {
            (None, None) => return None,
            (Some(_), Some(_)) => {
                self.problem(
                    &redis_at("password_file"),
                    "conflicts with password_env: set at most one",
                );
                return None;
            }
            (Some(var), None) => {
                if var.is_empty() || var.contains(['=', '\0']) {
                    self.problem(
                        &redis_at("password_env"),
                        "is not an environment variable name",
                    );
                    return None;
                }
                ("password_env", RedisPassword::Env(var))
            }
            (None, Some(file)) => ("password_file", RedisPassword::File(self.base.join(file))),
        };
        match password.resolve() {
            Ok(secret) if secret.is_empty() => {
                let source = match &password {
                    RedisPassword::Env(var) => format!("environment variable {var}"),
                    RedisPassword::File(path) => path.display().to_string(),
                };
                self.problem(&redis_at(key), format!("{source} holds an empty password"));
            }
            Ok(_) => {}
            Err(e) => self.problem(&redis_at(key), e.to_string()),
        }
        Some(password)
    }
}

/// `[a-z0-9-]{1,32}`, not starting with `-`: it goes into session ids,
/// route cookie values, Redis keys and log fields.
fn valid_node_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
}

/// Non-empty printable ASCII without spaces.
fn printable_word(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic())
}

fn scheme_name(tls: bool) -> &'static str {
    if tls {
        "rediss://"
    } else {
        "redis://"
    }
}

/// A peer's base URL. http is for a loopback host only: revocations carry
/// the IdP's signed logout tokens.
fn parse_peer(raw: &str) -> Result<PeerUrl, String> {
    let (scheme, authority, path) = split_url(raw)?;
    let default_port = match scheme {
        "https" => 443,
        "http" => 80,
        _ => return Err(format!("`{raw}` must be an https URL")),
    };
    if path != "/" {
        return Err(format!(
            "`{raw}` must be a base URL without a path (the gateway appends its own endpoints)"
        ));
    }
    let (host, port) = split_host_port(authority, default_port)?;
    if scheme == "http" && !loopback(&host) {
        return Err(format!(
            "`{raw}` must use https: http is accepted only for a loopback host"
        ));
    }
    let base = PublicUrl {
        scheme: scheme.to_string(),
        host: host.clone(),
        port,
        path_prefix: "/".to_string(),
    }
    .origin();
    Ok(PeerUrl {
        scheme: scheme.to_string(),
        host,
        port,
        base,
    })
}

fn loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

fn same_origin(peer: &PeerUrl, public: &PublicUrl) -> bool {
    peer.scheme == public.scheme && peer.host == public.host && peer.port == public.port
}

/// A Redis URL's TLS-ness. No message quotes the URL: whatever is in it
/// may be a password.
fn parse_redis_url(raw: &str, cluster: bool) -> Result<bool, String> {
    // User info first, so nothing below ever looks at a password.
    if let Some(at) = raw.rfind('@') {
        let userinfo = raw[..at].split_once("://").map_or(&raw[..at], |(_, u)| u);
        return Err(if userinfo.contains(':') {
            "a password inside the URL is refused: use password_env or password_file".into()
        } else {
            "a user name inside the URL is refused: use username".into()
        });
    }
    let Some((scheme, rest)) = raw.split_once("://") else {
        return Err("is not a URL such as redis://127.0.0.1:6379/0".into());
    };
    let tls = match scheme {
        "redis" => false,
        "rediss" => true,
        _ => return Err("must be a redis:// or rediss:// URL".into()),
    };
    if rest.contains(['?', '#']) {
        return Err(
            "must not carry a query or fragment: options are keys of [cluster.redis]".into(),
        );
    }
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    if authority.is_empty() {
        return Err("needs a host".into());
    }
    split_host_port(authority, REDIS_PORT)?;
    let database = match path.strip_prefix('/').unwrap_or(path) {
        "" => 0,
        db => db
            .parse::<u32>()
            .map_err(|_| "the path must be a database number such as /0".to_string())?,
    };
    if cluster && database != 0 {
        return Err("Redis Cluster has only database 0".into());
    }
    Ok(tls)
}

