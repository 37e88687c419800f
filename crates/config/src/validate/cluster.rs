//! `[cluster]` and `[cluster.redis]`: the mode, this node's id, its peers,
//! and the Redis store of shared mode. Nothing is resolved or connected
//! here; only the password's source is read, so `check` finds a missing
//! secret before a reconnect does.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
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
        let store_key_file = self.store_key_file(raw.store_key_file.as_deref(), mode);
        let peer_ca = raw
            .peer_ca
            .as_deref()
            .map(|f| self.pem(&at("peer_ca"), f, PemKind::Cert));
        let redis = raw.redis.and_then(|r| self.redis(r));
        Cluster {
            mode,
            node_id,
            peers,
            route_cookie,
            revocation_staleness,
            on_store_error,
            store_key_file,
            peer_ca,
            redis,
        }
    }

    /// Shared mode's store keys: readable, at least one, none short.
    fn store_key_file(&mut self, raw: Option<&str>, mode: ClusterMode) -> Option<PathBuf> {
        let Some(raw) = raw else {
            if mode == ClusterMode::Shared {
                self.problem(
                    &at("store_key_file"),
                    "required for mode = \"shared\": a file of store keys (e.g. `openssl rand -base64 48`), one per line".to_owned(),
                );
            }
            return None;
        };
        let path = self.base.join(raw);
        if let Err(e) = crate::model::read_store_keys(&path) {
            self.problem(&at("store_key_file"), e.to_string());
        }
        Some(path)
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
        // Redis hashes the first `{…}` of a name: `{}…` is no tag at all,
        // and the keys would spread over slots the scripts cannot span.
        if key_prefix.starts_with('}') && matches!(endpoints, Some(RedisEndpoints::Cluster(_))) {
            self.problem(
                &redis_at("key_prefix"),
                "must not start with `}` on Redis Cluster: the keys' hash tag would be empty",
            );
        }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::model::{ClusterMode, OnStoreError, RedisEndpoints, RedisPassword};
    use crate::problem::Problem;
    use crate::validate::fixtures::{app, parse, problems as refusals, IDP, SAML, SERVER};

    /// A variable every test process has; its value stands in for a password.
    const SET_VAR: &str = "PATH";
    const UNSET_VAR: &str = "PORTCULLIS_TEST_REDIS_PASSWORD_NEVER_SET";

    fn config(cluster: &str) -> String {
        format!("{SERVER}{cluster}\n\n{}", app("a", "https://a.test/", ""))
    }

    /// A file in the temp directory holding `text`, by absolute path.
    fn secret_file(tag: &str, text: &str) -> String {
        let path = std::env::temp_dir().join(format!(
            "portcullis-config-cluster-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, text).expect("write secret");
        path.to_string_lossy().into_owned()
    }

    fn line_of(text: &str, needle: &str) -> usize {
        text.lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .unwrap_or_else(|| panic!("{needle} not in config"))
    }

    /// The one problem at `key`; its line must be the line holding `needle`.
    fn at<'p>(problems: &'p [Problem], text: &str, key: &str, needle: &str) -> &'p str {
        let found: Vec<&Problem> = problems.iter().filter(|p| p.key == key).collect();
        assert_eq!(found.len(), 1, "one problem at {key} in {problems:#?}");
        assert_eq!(
            found[0].line,
            Some(line_of(text, needle)),
            "{key}: {problems:#?}"
        );
        &found[0].message
    }

    #[test]
    fn no_cluster_section_is_single_mode() {
        let cluster = parse(&config("")).expect("valid").cluster;
        assert_eq!(cluster.mode, ClusterMode::Single);
        assert_eq!(cluster.node_id, None);
        assert!(cluster.peers.is_empty());
        assert_eq!(cluster.route_cookie, "portcullis_route");
        assert_eq!(cluster.revocation_staleness, Duration::from_secs(1));
        assert_eq!(cluster.on_store_error, OnStoreError::Deny);
        assert!(cluster.redis.is_none());
        assert!(cluster.notes().is_empty());
    }

    #[test]
    fn single_mode_may_carry_a_node_id() {
        let cluster = parse(&config("[cluster]\nnode_id = \"gw-a\""))
            .expect("valid")
            .cluster;
        assert_eq!(cluster.mode, ClusterMode::Single);
        assert_eq!(cluster.node_id.as_deref(), Some("gw-a"));
    }

    #[test]
    fn a_full_sticky_section_is_read() {
        let text = config(
            "[cluster]\nmode = \"sticky\"\nnode_id = \"gw-a\"\n\
             peers = [\"https://GW-B.internal:8443/\", \"https://gw-c.internal\", \"http://127.0.0.1:9443\", \"http://[::1]:9444\", \"http://localhost:9445\"]\n\
             route_cookie = \"gw_route\"",
        );
        let cluster = parse(&text).expect("valid").cluster;
        assert_eq!(cluster.mode, ClusterMode::Sticky);
        assert_eq!(cluster.node_id.as_deref(), Some("gw-a"));
        let bases: Vec<&str> = cluster.peers.iter().map(|p| p.base.as_str()).collect();
        assert_eq!(
            bases,
            [
                "https://gw-b.internal:8443",
                "https://gw-c.internal",
                "http://127.0.0.1:9443",
                "http://[::1]:9444",
                "http://localhost:9445"
            ]
        );
        assert_eq!(cluster.peers[0].host, "gw-b.internal");
        assert_eq!(cluster.peers[1].port, 443);
        assert_eq!(cluster.route_cookie, "gw_route");
        assert!(cluster.redis.is_none());
        assert!(cluster.notes().is_empty(), "{:?}", cluster.notes());
    }

    #[test]
    fn sticky_without_peers_is_accepted_with_a_note() {
        let text = config("[cluster]\nmode = \"sticky\"\nnode_id = \"gw-a\"");
        let cluster = parse(&text).expect("valid").cluster;
        assert_eq!(
            cluster.notes(),
            ["[cluster] peers is empty: Universal Logout and Sessions API revocation reach only this node"]
        );
    }

    #[test]
    fn a_full_shared_section_is_read() {
        let password = secret_file("full", "s3cret\n");
        let text = format!(
            "{SERVER}{IDP}[cluster]\nmode = \"shared\"\nnode_id = \"gw-a\"\nstore_key_file = \"tests/fixtures/store-keys.txt\"\nrevocation_staleness = \"250ms\"\non_store_error = \"serve_cached\"\n\n\
             [cluster.redis]\nurl = \"rediss://redis.internal:6380/2\"\nusername = \"portcullis\"\npassword_file = \"{password}\"\n\
             tls_ca = \"certs-dev/ca.pem\"\nkey_prefix = \"gw-prod:\"\nconnect_timeout = \"5s\"\ncommand_timeout = \"100ms\"\n\n{}",
            app("a", "https://a.test/", SAML)
        );
        let cluster = parse(&text).expect("valid").cluster;
        assert_eq!(cluster.mode, ClusterMode::Shared);
        assert_eq!(cluster.revocation_staleness, Duration::from_millis(250));
        assert_eq!(cluster.on_store_error, OnStoreError::ServeCached);
        let redis = cluster.redis.as_ref().expect("redis");
        assert_eq!(
            redis.endpoints,
            RedisEndpoints::Single("rediss://redis.internal:6380/2".into())
        );
        assert!(redis.uses_tls());
        assert_eq!(redis.username.as_deref(), Some("portcullis"));
        let source = redis.password.as_ref().expect("password");
        assert_eq!(source, &RedisPassword::File(password.into()));
        assert_eq!(
            source.resolve().expect("readable"),
            "s3cret",
            "one newline stripped"
        );
        assert!(redis
            .tls_ca
            .as_ref()
            .is_some_and(|ca| ca.ends_with("certs-dev/ca.pem")));
        assert_eq!(redis.key_prefix, "gw-prod:");
        assert_eq!(redis.connect_timeout, Duration::from_secs(5));
        assert_eq!(redis.command_timeout, Duration::from_millis(100));
        assert!(cluster.notes().is_empty(), "{:?}", cluster.notes());
    }

    #[test]
    fn redis_defaults_and_the_other_endpoint_kinds() {
        let shared = |redis: &str| {
            parse(&config(&format!(
                "[cluster]\nmode = \"shared\"\nnode_id = \"gw-a\"\nstore_key_file = \"tests/fixtures/store-keys.txt\"\n[cluster.redis]\n{redis}"
            )))
            .expect("valid")
            .cluster
            .redis
            .expect("redis")
        };
        let plain = shared("url = \"redis://127.0.0.1\"");
        assert!(!plain.uses_tls());
        assert_eq!(plain.username, None);
        assert_eq!(plain.password, None);
        assert_eq!(plain.key_prefix, "portcullis:");
        assert_eq!(plain.connect_timeout, Duration::from_secs(2));
        assert_eq!(plain.command_timeout, Duration::from_millis(500));

        let sentinel = shared(&format!(
            "sentinel = {{ master = \"mymaster\", nodes = [\"redis://10.0.0.5:26379\", \"redis://10.0.0.6:26379\"] }}\npassword_env = \"{SET_VAR}\""
        ));
        assert_eq!(
            sentinel.endpoints,
            RedisEndpoints::Sentinel {
                master: "mymaster".into(),
                nodes: vec![
                    "redis://10.0.0.5:26379".into(),
                    "redis://10.0.0.6:26379".into()
                ],
            }
        );
        assert_eq!(sentinel.password, Some(RedisPassword::Env(SET_VAR.into())));

        let cluster = shared("cluster_nodes = [\"rediss://10.0.0.7:6379\", \"rediss://10.0.0.8\"]");
        assert_eq!(
            cluster.endpoints,
            RedisEndpoints::Cluster(vec![
                "rediss://10.0.0.7:6379".into(),
                "rediss://10.0.0.8".into()
            ])
        );
        assert!(cluster.uses_tls());
    }

    #[test]
    fn redis_outside_shared_mode_is_validated_and_noted() {
        let text = config(
            "[cluster]\nmode = \"sticky\"\nnode_id = \"gw-a\"\npeers = [\"https://gw-b.internal\"]\n[cluster.redis]\nurl = \"redis://127.0.0.1\"",
        );
        let cluster = parse(&text).expect("valid").cluster;
        assert!(cluster.redis.is_some());
        assert_eq!(
            cluster.notes(),
            ["[cluster.redis] is unused unless mode = \"shared\""]
        );
        let problems = refusals(&config(
            "[cluster]\n[cluster.redis]\nurl = \"http://127.0.0.1\"",
        ));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "cluster.redis.url");
    }

    #[test]
    fn missing_node_id_and_missing_redis_are_refused() {
        for (mode, redis) in [
            ("sticky", ""),
            ("shared", "[cluster.redis]\nurl = \"redis://h\""),
        ] {
            let text = config(&format!("[cluster]\nmode = \"{mode}\"\n{redis}"));
            let problems = refusals(&text);
            let message = at(&problems, &text, "cluster", "[cluster]");
            assert!(
                message.contains("node_id is required for mode = \"") && message.contains(mode),
                "{problems:?}"
            );
        }
        let text = config("[cluster]\nmode = \"shared\"\nnode_id = \"gw-a\"\nstore_key_file = \"tests/fixtures/store-keys.txt\"");
        let problems = refusals(&text);
        assert_eq!(
            at(&problems, &text, "cluster", "[cluster]"),
            "[cluster.redis] is required for mode = \"shared\""
        );
    }

    #[test]
    fn store_keys_are_required_for_shared_mode_and_checked() {
        let redis = "[cluster.redis]\nurl = \"redis://h\"";
        let text = config(&format!(
            "[cluster]\nmode = \"shared\"\nnode_id = \"gw-a\"\n{redis}"
        ));
        let problems = refusals(&text);
        assert!(
            at(&problems, &text, "cluster.store_key_file", "[cluster]")
                .starts_with("required for mode = \"shared\""),
            "{problems:?}"
        );
        for (tag, contents, expected) in [
            ("empty", "\n\n", "holds no key"),
            (
                "short",
                "0123456789abcdef0123456789abcdef\nshort\n",
                "line 2 is shorter than 32 bytes",
            ),
        ] {
            let file = secret_file(tag, contents);
            let text = config(&format!(
                "[cluster]\nmode = \"shared\"\nnode_id = \"gw-a\"\nstore_key_file = \"{file}\"\n{redis}"
            ));
            let problems = refusals(&text);
            let message = at(&problems, &text, "cluster.store_key_file", "store_key_file");
            assert!(message.contains(expected), "{message}");
            assert!(
                !message.contains("0123456789abcdef"),
                "no key material: {message}"
            );
        }
        let text = config(&format!(
            "[cluster]\nmode = \"shared\"\nnode_id = \"gw-a\"\nstore_key_file = \"/nonexistent/keys\"\n{redis}"
        ));
        let problems = refusals(&text);
        assert!(
            at(&problems, &text, "cluster.store_key_file", "store_key_file")
                .contains("cannot read")
        );
        let text = config(
            "[cluster]\nmode = \"sticky\"\nnode_id = \"gw-a\"\npeers = [\"https://10.0.0.2:8443\"]\npeer_ca = \"/nonexistent/ca.pem\"",
        );
        let problems = refusals(&text);
        assert!(!at(&problems, &text, "cluster.peer_ca", "peer_ca").is_empty());
    }

    #[test]
    fn password_in_a_redis_url_is_refused_without_echoing_it() {
        for url in [
            "redis://:hunter2hunter2@127.0.0.1:6379/0",
            "rediss://portcullis:hunter2hunter2@redis.internal",
            "redis://user:hunter2hunter2/x@h",
            "ftp://u:hunter2hunter2@h?x#y",
        ] {
            let text = config(&format!(
                "[cluster]\nmode = \"shared\"\nnode_id = \"gw-a\"\nstore_key_file = \"tests/fixtures/store-keys.txt\"\n[cluster.redis]\nurl = \"{url}\""
            ));
            let report = parse(&text).expect_err("invalid");
            let rendered = report.to_string();
            assert!(!rendered.contains("hunter2"), "{rendered}");
            assert_eq!(report.problems.len(), 1, "{rendered}");
            let message = at(&report.problems, &text, "cluster.redis.url", "url =");
            assert_eq!(
                message,
                "a password inside the URL is refused: use password_env or password_file"
            );
        }
    }

    #[test]
    fn an_unknown_cluster_key_is_located() {
        let text = config("[cluster]\nmode = \"sticky\"\nnodeid = \"gw-a\"");
        let problems = refusals(&text);
        let message = at(&problems, &text, "cluster.nodeid", "nodeid");
        assert!(message.contains("unknown field"), "{problems:?}");
        let text = config("[cluster]\n[cluster.redis]\nurl = \"redis://h\"\npassword = \"x\"");
        let problems = refusals(&text);
        let message = at(&problems, &text, "cluster.redis.password", "password =");
        assert!(message.contains("unknown field"), "{problems:?}");
    }

    /// Every other refusal in one file: each at its own key and line, all
    /// reported by one `check`.
    #[test]
    fn every_cluster_problem_is_reported_at_once() {
        let empty = secret_file("empty", "\n");
        let text = format!(
            "{SERVER}[cluster]\n\
             mode = \"sticky\"\n\
             node_id = \"-GW_A\"\n\
             peers = [\"https://gw-b.internal/base\", \"https://gw-c.internal/?x=1\", \"http://gw-d.internal:8080\", \"gw-e.internal\", \"https://a.test\", \"https://gw-f.internal\", \"https://GW-F.internal:443/\"]\n\
             route_cookie = \"pc_route\"\n\
             revocation_staleness = \"90s\"\n\
             on_store_error = \"retry\"\n\
             \n\
             [cluster.redis]\n\
             sentinel = {{ master = \"mymaster\", nodes = [\"redis://10.0.0.5:26379\", \"rediss://10.0.0.6:26379\", \"memcache://10.0.0.7\"] }}\n\
             password_env = \"{UNSET_VAR}\"\n\
             password_file = \"{empty}\"\n\
             tls_ca = \"certs-dev/ca.pem\"\n\
             key_prefix = \"my prefix\"\n\
             connect_timeout = \"10ms\"\n\
             command_timeout = \"31s\"\n\
             \n{}",
            app("a", "https://a.test/", "")
        );
        let report = parse(&text).expect_err("invalid");
        let problems = &report.problems;
        let peers = |i: usize| format!("cluster.peers[{i}]");
        let expected: &[(&str, &str, &str)] = &[
            ("cluster.node_id", "node_id =", "is not a node id"),
            (&peers(0), "peers =", "without a path"),
            (&peers(1), "peers =", "must not carry a query or fragment"),
            (
                &peers(2),
                "peers =",
                "http is accepted only for a loopback host",
            ),
            (&peers(3), "peers =", "is not an absolute URL"),
            (
                &peers(4),
                "peers =",
                "is the public origin of app `a` (app[0])",
            ),
            (&peers(6), "peers =", "is listed twice"),
            ("cluster.route_cookie", "route_cookie", "pc_"),
            (
                "cluster.revocation_staleness",
                "revocation_staleness",
                "must be between 100ms and 1m",
            ),
            (
                "cluster.on_store_error",
                "on_store_error",
                "`retry` is not \"deny\" or \"serve_cached\"",
            ),
            (
                "cluster.redis.sentinel.nodes[1]",
                "sentinel =",
                "uses rediss:// but nodes[0] uses redis://",
            ),
            (
                "cluster.redis.sentinel.nodes[2]",
                "sentinel =",
                "must be a redis:// or rediss:// URL",
            ),
            (
                "cluster.redis.password_file",
                "password_file",
                "conflicts with password_env",
            ),
            ("cluster.redis.key_prefix", "key_prefix", "printable ASCII"),
            (
                "cluster.redis.connect_timeout",
                "connect_timeout",
                "must be between 50ms and 1m",
            ),
            (
                "cluster.redis.command_timeout",
                "command_timeout",
                "must be between 10ms and 30s",
            ),
        ];
        for (key, needle, message) in expected {
            let found = at(problems, &text, key, needle);
            assert!(
                found.contains(message),
                "{key}: `{found}` lacks `{message}`"
            );
        }
        assert_eq!(problems.len(), expected.len(), "{report}");
    }

    #[test]
    fn redis_endpoint_refusals() {
        let redis = |body: &str| {
            let text = config(&format!(
                "[cluster]\nmode = \"shared\"\nnode_id = \"gw-a\"\nstore_key_file = \"tests/fixtures/store-keys.txt\"\n[cluster.redis]\n{body}"
            ));
            let problems = refusals(&text);
            (text, problems)
        };

        let (text, problems) = redis("username = \"portcullis\"");
        assert_eq!(
            at(&problems, &text, "cluster.redis", "[cluster.redis]"),
            "one of url, sentinel or cluster_nodes is required"
        );
        assert_eq!(problems.len(), 1, "{problems:?}");

        let (text, problems) = redis(
            "url = \"redis://h\"\nsentinel = { master = \"m\", nodes = [\"redis://s\"] }\ncluster_nodes = [\"redis://c\"]",
        );
        assert!(at(&problems, &text, "cluster.redis.sentinel", "sentinel =")
            .starts_with("conflicts with url"));
        assert!(at(
            &problems,
            &text,
            "cluster.redis.cluster_nodes",
            "cluster_nodes ="
        )
        .starts_with("conflicts with url"));
        assert_eq!(problems.len(), 2, "{problems:?}");

        let (text, problems) = redis("url = \"http://127.0.0.1:6379\"");
        assert_eq!(
            at(&problems, &text, "cluster.redis.url", "url ="),
            "must be a redis:// or rediss:// URL"
        );

        let (text, problems) =
            redis("cluster_nodes = [\"redis://a\", \"rediss://b\", \"redis://c/3\"]");
        assert!(at(
            &problems,
            &text,
            "cluster.redis.cluster_nodes[1]",
            "cluster_nodes"
        )
        .contains("every node must use the same scheme"));
        assert_eq!(
            at(
                &problems,
                &text,
                "cluster.redis.cluster_nodes[2]",
                "cluster_nodes"
            ),
            "Redis Cluster has only database 0"
        );
        assert_eq!(problems.len(), 2, "{problems:?}");

        let (text, problems) = redis("cluster_nodes = [\"redis://c\"]\nkey_prefix = \"}gw:\"");
        assert!(
            at(&problems, &text, "cluster.redis.key_prefix", "key_prefix")
                .contains("hash tag would be empty")
        );
        assert_eq!(problems.len(), 1, "{problems:?}");

        let (_, problems) = redis("cluster_nodes = []");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "cluster.redis.cluster_nodes");
        assert_eq!(problems[0].message, "needs at least one node");

        let (_, problems) = redis("sentinel = { nodes = [] }");
        let found: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.key.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "cluster.redis.sentinel",
                    "master is required (the name the sentinels monitor)"
                ),
                (
                    "cluster.redis.sentinel.nodes",
                    "needs at least one sentinel"
                ),
            ]
        );

        let (text, problems) = redis("url = \"redis://h/zero\"\nusername = \"a b\"");
        assert_eq!(
            at(&problems, &text, "cluster.redis.url", "url ="),
            "the path must be a database number such as /0"
        );
        assert!(
            at(&problems, &text, "cluster.redis.username", "username").contains("without spaces")
        );

        let (text, problems) = redis("url = \"redis://h?protocol=resp3\"");
        assert!(at(&problems, &text, "cluster.redis.url", "url =").contains("query or fragment"));

        let (text, problems) = redis("url = \"redis://user@h\"");
        assert_eq!(
            at(&problems, &text, "cluster.redis.url", "url ="),
            "a user name inside the URL is refused: use username"
        );
    }

    #[test]
    fn password_sources_are_checked_now() {
        let redis = |body: &str| {
            let text = config(&format!(
                "[cluster]\nmode = \"shared\"\nnode_id = \"gw-a\"\nstore_key_file = \"tests/fixtures/store-keys.txt\"\n[cluster.redis]\nurl = \"redis://h\"\n{body}"
            ));
            let problems = refusals(&text);
            (text, problems)
        };
        let (text, problems) = redis(&format!("password_env = \"{UNSET_VAR}\""));
        assert_eq!(
            at(
                &problems,
                &text,
                "cluster.redis.password_env",
                "password_env"
            ),
            format!("environment variable {UNSET_VAR} is not set")
        );

        let (text, problems) = redis("password_file = \"/nonexistent/redis-password\"");
        assert!(
            at(
                &problems,
                &text,
                "cluster.redis.password_file",
                "password_file"
            )
            .starts_with("cannot read /nonexistent/redis-password: "),
            "{problems:?}"
        );

        let empty = secret_file("only-newline", "\n");
        let (text, problems) = redis(&format!("password_file = \"{empty}\""));
        assert_eq!(
            at(
                &problems,
                &text,
                "cluster.redis.password_file",
                "password_file"
            ),
            format!("{empty} holds an empty password")
        );

        let (text, problems) = redis(&format!(
            "password_env = \"{SET_VAR}\"\npassword_file = \"{empty}\""
        ));
        assert_eq!(
            at(
                &problems,
                &text,
                "cluster.redis.password_file",
                "password_file"
            ),
            "conflicts with password_env: set at most one"
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    #[test]
    fn tls_ca_needs_rediss() {
        let text = config(
            "[cluster]\nmode = \"shared\"\nnode_id = \"gw-a\"\nstore_key_file = \"tests/fixtures/store-keys.txt\"\n[cluster.redis]\nurl = \"redis://h\"\ntls_ca = \"certs-dev/ca.pem\"",
        );
        let problems = refusals(&text);
        assert_eq!(
            at(&problems, &text, "cluster.redis.tls_ca", "tls_ca"),
            "is only for rediss:// URLs (redis:// is not TLS)"
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        let text = config(
            "[cluster]\nmode = \"shared\"\nnode_id = \"gw-a\"\nstore_key_file = \"tests/fixtures/store-keys.txt\"\n[cluster.redis]\nurl = \"rediss://h\"\ntls_ca = \"certs-dev/missing-ca.pem\"",
        );
        let problems = refusals(&text);
        assert!(at(&problems, &text, "cluster.redis.tls_ca", "tls_ca").contains("missing-ca.pem"));
    }

    #[test]
    fn mode_node_id_and_staleness_refusals() {
        let text = config("[cluster]\nmode = \"active-active\"\nrevocation_staleness = \"50ms\"");
        let problems = refusals(&text);
        assert!(at(&problems, &text, "cluster.mode", "mode =")
            .starts_with("`active-active` is not a cluster mode"));
        assert_eq!(
            at(
                &problems,
                &text,
                "cluster.revocation_staleness",
                "revocation_staleness"
            ),
            "must be between 100ms and 1m"
        );
        assert_eq!(problems.len(), 2, "{problems:?}");

        for id in [
            "",
            "Gw-a",
            "gw_a",
            "-gw",
            "gw.a",
            "a23456789012345678901234567890123",
        ] {
            let text = config(&format!("[cluster]\nnode_id = \"{id}\""));
            let problems = refusals(&text);
            assert!(at(&problems, &text, "cluster.node_id", "node_id").contains("is not a node id"));
        }
        for id in ["gw-a", "1", "a2345678901234567890123456789012", "9-"] {
            parse(&config(&format!("[cluster]\nnode_id = \"{id}\""))).expect(id);
        }

        let text = config("[cluster]\nrevocation_staleness = \"soon\"");
        let problems = refusals(&text);
        assert!(at(
            &problems,
            &text,
            "cluster.revocation_staleness",
            "revocation_staleness"
        )
        .starts_with("`soon` is not a duration"));
    }

    #[test]
    fn route_cookie_must_not_be_an_apps_cookie_in_sticky_mode() {
        let text = format!(
            "{SERVER}{IDP}[cluster]\nmode = \"sticky\"\nnode_id = \"gw-a\"\nroute_cookie = \"wiki_sid\"\n\n{}",
            app("wiki", "https://wiki.test/", &format!("{SAML}session_cookie = \"wiki_sid\"\n"))
        );
        let problems = refusals(&text);
        assert_eq!(
            at(&problems, &text, "cluster.route_cookie", "route_cookie"),
            "`wiki_sid` is a session cookie of app `wiki` (app[0])"
        );
        let text = config("[cluster]\nroute_cookie = \"a;b\"");
        let problems = refusals(&text);
        assert_eq!(
            at(&problems, &text, "cluster.route_cookie", "route_cookie"),
            "`a;b` is not a cookie name"
        );
    }

    #[test]
    fn a_peer_must_not_be_the_idps_public_origin() {
        let text = format!(
            "{SERVER}{IDP}[cluster]\nmode = \"sticky\"\nnode_id = \"gw-a\"\npeers = [\"https://idp.test\"]\n\n{}",
            app("a", "https://a.test/", SAML)
        );
        let problems = refusals(&text);
        assert!(at(&problems, &text, "cluster.peers[0]", "peers")
            .contains("is the public origin of the embedded IdP"));
    }
}
