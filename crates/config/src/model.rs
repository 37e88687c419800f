//! The validated configuration. Every value here has passed `validate`, so
//! consumers can rely on it without re-checking.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::metadata::IdpMetadata;

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this configuration came from; relative paths in it were
    /// resolved against its directory.
    pub source: PathBuf,
    pub server: Server,
    pub admin: Option<Admin>,
    pub log: Logging,
    /// The embedded identity provider, when `[idp]` is present.
    pub idp: Option<Idp>,
    pub apps: Vec<App>,
    /// `[cluster]`; single mode when the section is absent.
    pub cluster: Cluster,
}

/// `[cluster]`: whether this node works alone, beside peers that own their
/// own sessions, or on a store shared with them. What each mode does at run
/// time belongs to the binary; this is only what the file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub mode: ClusterMode,
    /// Required for sticky and shared. In single mode, when set, only the
    /// label sessions carry.
    pub node_id: Option<String>,
    /// The other nodes' own base URLs (never the balanced one), which
    /// revocations are forwarded to in sticky mode.
    pub peers: Vec<PeerUrl>,
    /// The cookie a balancer pins a browser on in sticky mode.
    pub route_cookie: String,
    /// Shared mode: the longest a revoked session may still be served by
    /// any node (the local caches' bound).
    pub revocation_staleness: Duration,
    /// Shared mode: what existing sessions get while the store is down.
    pub on_store_error: OnStoreError,
    /// Shared mode: the store keys that seal records at rest in Redis, one
    /// per line, the first sealing (rotation: add the new key first,
    /// retire the old one once its records have expired). Every node has
    /// the same file.
    pub store_key_file: Option<PathBuf>,
    /// Sticky mode: extra trust anchors (PEM) for the peers' https
    /// listeners, which revocations are forwarded to; the system roots
    /// otherwise.
    pub peer_ca: Option<PathBuf>,
    /// `[cluster.redis]`, validated whenever present so that switching to
    /// shared mode holds no surprise; only shared mode connects to it.
    pub redis: Option<RedisConfig>,
}

/// Why a store key file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum StoreKeyError {
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no key", path.display())]
    Empty { path: PathBuf },
    #[error("{}: key on line {line} is shorter than 32 bytes", path.display())]
    Short { path: PathBuf, line: usize },
}

/// The keys in a store key file: every non-empty line, trimmed, each at
/// least 32 bytes; the first seals.
pub fn read_store_keys(path: &std::path::Path) -> Result<Vec<String>, StoreKeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| StoreKeyError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    if keys.is_empty() {
        return Err(StoreKeyError::Empty {
            path: path.to_owned(),
        });
    }
    if let Some(n) = keys.iter().position(|k| k.len() < 32) {
        return Err(StoreKeyError::Short {
            path: path.to_owned(),
            line: n + 1,
        });
    }
    Ok(keys)
}

/// `[cluster] route_cookie` when unset.
pub const DEFAULT_ROUTE_COOKIE: &str = "portcullis_route";
/// `[cluster] revocation_staleness` when unset.
pub const DEFAULT_REVOCATION_STALENESS: Duration = Duration::from_secs(1);
/// `[cluster.redis] key_prefix` when unset.
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "portcullis:";
/// `[cluster.redis] connect_timeout` when unset.
pub const DEFAULT_REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// `[cluster.redis] command_timeout` when unset.
pub const DEFAULT_REDIS_COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

impl Default for Cluster {
    /// No `[cluster]`: one node, everything in its memory.
    fn default() -> Self {
        Cluster {
            mode: ClusterMode::Single,
            node_id: None,
            peers: Vec::new(),
            route_cookie: DEFAULT_ROUTE_COOKIE.to_string(),
            revocation_staleness: DEFAULT_REVOCATION_STALENESS,
            on_store_error: OnStoreError::Deny,
            store_key_file: None,
            peer_ca: None,
            redis: None,
        }
    }
}

impl Cluster {
    /// What `check` prints, and `run` logs at WARN, about settings that are
    /// valid but probably not what the operator meant.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.mode == ClusterMode::Sticky && self.peers.is_empty() {
            notes.push(
                "[cluster] peers is empty: Universal Logout and Sessions API revocation reach only this node"
                    .to_string(),
            );
        }
        if self.redis.is_some() && self.mode != ClusterMode::Shared {
            notes.push("[cluster.redis] is unused unless mode = \"shared\"".to_string());
        }
        notes
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterMode {
    /// Everything in this process's memory.
    Single,
    /// Sessions stay on the node that created them; a balancer pins the
    /// browser by the route cookie.
    Sticky,
    /// Sessions, caches and revocations live in Redis; any node serves any
    /// request.
    Shared,
}

/// Shared mode, store unreachable: what a request with an existing session
/// gets. New sign-ins fail closed either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStoreError {
    /// Refused: no revocation can be missed.
    Deny,
    /// Served from this node's cache: availability over revocation.
    ServeCached,
}

/// A peer node's base URL: https, or http to a loopback host; no path,
/// query or fragment. Host lowercased, port explicit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUrl {
    pub scheme: String,
    pub host: String,
    pub port: u16,
    /// `scheme://host[:port]`, the port left out when it is the scheme's
    /// default: endpoint paths are appended to it.
    pub base: String,
}

/// `[cluster.redis]`. The password is not here: only where it comes from,
/// resolved when connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    pub endpoints: RedisEndpoints,
    /// The ACL user; `None` is Redis's `default` user.
    pub username: Option<String>,
    pub password: Option<RedisPassword>,
    /// Extra trust anchors (PEM) for `rediss://`.
    pub tls_ca: Option<PathBuf>,
    /// Prepended to every key and channel, so several deployments can share
    /// one Redis.
    pub key_prefix: String,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
}

impl RedisConfig {
    /// The endpoints are `rediss://` (all of them: one scheme is enforced).
    pub fn uses_tls(&self) -> bool {
        self.endpoints.uses_tls()
    }
}

impl RedisEndpoints {
    /// `rediss://`, judged by the first URL: one scheme is enforced.
    pub fn uses_tls(&self) -> bool {
        let first = match self {
            RedisEndpoints::Single(url) => Some(url),
            RedisEndpoints::Sentinel { nodes, .. } => nodes.first(),
            RedisEndpoints::Cluster(nodes) => nodes.first(),
        };
        first.is_some_and(|url| url.starts_with("rediss://"))
    }
}

/// Where Redis is: exactly one of `url`, `sentinel`, `cluster_nodes`. The
/// URLs are as written (`redis://` or `rediss://`, no user info).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisEndpoints {
    /// `url`: one standalone server.
    Single(String),
    /// `sentinel`: the master's name and the sentinels to ask for it.
    Sentinel { master: String, nodes: Vec<String> },
    /// `cluster_nodes`: seed nodes of a Redis Cluster.
    Cluster(Vec<String>),
}

/// Where the Redis password comes from; never the password itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisPassword {
    /// `password_env`: this environment variable.
    Env(String),
    /// `password_file`: this file, one trailing newline stripped.
    File(PathBuf),
}

/// Why [`RedisPassword::resolve`] found no password.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("environment variable {0} is not set")]
    EnvUnset(String),
    #[error("environment variable {0} is not UTF-8")]
    EnvNotUtf8(String),
    #[error("cannot read {}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RedisPassword {
    /// The password, read now. `check` saw it available, but a secret may
    /// be rotated or unmounted between `check` and a reconnect.
    pub fn resolve(&self) -> Result<String, PasswordError> {
        match self {
            RedisPassword::Env(var) => std::env::var(var).map_err(|e| match e {
                std::env::VarError::NotPresent => PasswordError::EnvUnset(var.clone()),
                std::env::VarError::NotUnicode(_) => PasswordError::EnvNotUtf8(var.clone()),
            }),
            RedisPassword::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| PasswordError::File {
                    path: path.clone(),
                    source,
                })?;
                Ok(strip_one_newline(&text).to_string())
            }
        }
    }
}

/// `echo secret > file` and most secret mounts end the value with one
/// newline that is not part of it; anything more is kept as written.
fn strip_one_newline(text: &str) -> &str {
    text.strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(text)
}

/// `[idp]`: where the embedded IdP is published and the files it reads. The
/// files' own formats belong to the IdP crate, which validates them.
#[derive(Debug, Clone)]
pub struct Idp {
    pub public: PublicUrl,
    pub users_file: PathBuf,
    pub policy_file: Option<PathBuf>,
    /// IP→ASN database (MaxMind `.mmdb` or TSV) for session contexts.
    pub asn_database: Option<PathBuf>,
    pub system_log_file: PathBuf,
    pub system_log_max_bytes: u64,
    pub system_log_keep_files: usize,
    pub lockout_failures: u32,
    pub lockout_duration: Duration,
    pub sign_in_per_minute: u32,
    pub api_per_minute: u32,
    pub session_token_ttl: Duration,
    /// Absolute URL prefixes `sessionCookieRedirect` may send a browser to,
    /// besides the IdP itself and the configured apps.
    pub redirect_allow: Vec<String>,
    pub api_tokens: Vec<ApiTokenConfig>,
    /// SAML IdP signing material and entity id; `None` when `signing_key`
    /// and `signing_cert` are absent (the SAML endpoints then answer 404).
    pub saml: Option<IdpSaml>,
    /// `[[idp.service_provider]]`: the SAML SPs allowed to use the IdP.
    pub service_providers: Vec<ServiceProviderConfig>,
    /// Members of any of these groups may use the admin console
    /// (default `["admins"]`).
    pub admin_groups: Vec<String>,
    /// `[idp.admin]`: how admin console sessions are kept.
    pub admin: IdpAdmin,
}

/// What an admin console session is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminBind {
    Ip,
    Asn,
}

/// `[idp.admin]`, validated. The console always requires password + TOTP
/// (`factors = 2`, the only value accepted).
#[derive(Debug, Clone)]
pub struct IdpAdmin {
    pub max_lifetime: Duration,
    pub max_idle: Duration,
    /// In force: `asn` was replaced by `ip` when there is no ASN database
    /// (see [`IdpAdmin::asn_fallback`]).
    pub bind: Vec<AdminBind>,
    /// `bind` asked for `asn` but `[idp] asn_database` is not set, so
    /// admin sessions are bound to the client IP instead (`check` notes it).
    pub asn_fallback: bool,
    /// A protected action asks for password + TOTP again when the last
    /// verification is older than this; zero is every time.
    pub protected_action_reauth: Duration,
}

/// The embedded IdP's SAML identity.
#[derive(Debug, Clone)]
pub struct IdpSaml {
    pub signing_key: PathBuf,
    pub signing_cert: PathBuf,
    /// Defaults to `{public_url}/sso/saml/metadata`.
    pub entity_id: String,
    /// `name_id_secret_file`: the secret persistent and transient NameIDs
    /// are keyed by (one line of at least 32 bytes, as a store key file);
    /// `None` keys them by `signing_key`, so rotating it changes them.
    pub name_id_secret_file: Option<PathBuf>,
    /// `[idp.saml] clock_skew`: how far an assertion's `NotBefore` is set
    /// before its IssueInstant, so an SP whose clock runs a little behind
    /// still accepts it (default 60 s).
    pub clock_skew: Duration,
}

/// A NameID format: what an IdP's SP receives, or what a gateway app asks
/// its IdP for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpNameIdFormat {
    /// The user's email.
    EmailAddress,
    /// An opaque id, stable per user and SP.
    Persistent,
    /// An opaque id, new for every IdP session.
    Transient,
    /// The user's login.
    Unspecified,
}

impl SpNameIdFormat {
    /// The names the configuration accepts, for problem messages.
    pub const NAMES: &'static str = "emailAddress, persistent, transient, unspecified";

    /// The configuration name (`emailAddress`, …), or `None`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "emailAddress" => Some(Self::EmailAddress),
            "persistent" => Some(Self::Persistent),
            "transient" => Some(Self::Transient),
            "unspecified" => Some(Self::Unspecified),
            _ => None,
        }
    }
}

/// One attribute an SP receives: `source` (a name of [`SP_ATTRIBUTES`] or
/// `profile.<name>`) under `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpAttribute {
    pub name: String,
    pub name_format: SpAttributeNameFormat,
    pub friendly_name: Option<String>,
    pub source: String,
}

impl SpAttribute {
    /// `source` under its own name (`profile.` dropped), NameFormat
    /// `basic`: the short form, `attributes = ["email"]`.
    pub fn as_named(source: &str) -> SpAttribute {
        SpAttribute {
            name: source
                .strip_prefix("profile.")
                .unwrap_or(source)
                .to_string(),
            name_format: SpAttributeNameFormat::Basic,
            friendly_name: None,
            source: source.to_string(),
        }
    }
}

/// An attribute's `NameFormat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpAttributeNameFormat {
    Basic,
    Uri,
    Unspecified,
}

/// `attribute_preset = "oid"`: the names most SPs map out of the box
/// (eduPerson / inetOrgPerson OIDs, NameFormat `uri`, FriendlyName the
/// LDAP name): (FriendlyName, Name, source).
pub const OID_ATTRIBUTE_PRESET: &[(&str, &str, &str)] = &[
    ("uid", "urn:oid:0.9.2342.19200300.100.1.1", "login"),
    ("mail", "urn:oid:0.9.2342.19200300.100.1.3", "email"),
    ("givenName", "urn:oid:2.5.4.42", "firstName"),
    ("sn", "urn:oid:2.5.4.4", "lastName"),
    (
        "displayName",
        "urn:oid:2.16.840.1.113730.3.1.241",
        "displayName",
    ),
    // Scoped (`user@domain`): the email is the one scoped identifier a
    // directory user always has.
    (
        "eduPersonPrincipalName",
        "urn:oid:1.3.6.1.4.1.5923.1.1.1.6",
        "email",
    ),
    ("isMemberOf", "urn:oid:1.3.6.1.4.1.5923.1.5.1.1", "groups"),
    ("memberOf", "urn:oid:1.2.840.113556.1.2.102", "groups"),
];

/// User fields an SP may receive as attributes.
pub const SP_ATTRIBUTES: &[&str] = &[
    "id",
    "login",
    "email",
    "firstName",
    "lastName",
    "displayName",
    "groups",
];

/// One `[[idp.service_provider]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceProviderConfig {
    /// Also the app-policy name (`[app_policy.<name>]`) and the launcher path.
    pub name: String,
    pub entity_id: String,
    pub acs_url: String,
    pub name_id_format: SpNameIdFormat,
    /// Further formats the SP may ask for in its AuthnRequest's
    /// NameIDPolicy (`name_id_format` and `unspecified` always may).
    pub name_id_formats_allowed: Vec<SpNameIdFormat>,
    /// DER of the SP's AuthnRequest signing certificates (from
    /// `signing_cert` or the metadata file).
    pub signing_certs_der: Vec<Vec<u8>>,
    /// Unsigned AuthnRequests are refused: set by `signing_cert`, or by
    /// `AuthnRequestsSigned="true"` in the SP's metadata.
    pub require_signed_requests: bool,
    /// Where the SP takes LogoutRequests, from its metadata.
    pub slo_url: Option<String>,
    /// Where the SP takes LogoutRequests over SOAP (back channel): its
    /// metadata's SOAP SingleLogoutService, or `soap_slo_url`. The IdP
    /// posts there when a session ends without the browser.
    pub soap_slo_url: Option<String>,
    /// The AttributeStatement, in this order: `attribute_preset`'s, then
    /// `attributes`.
    pub attributes: Vec<SpAttribute>,
    /// Sign the Response as well as the (always signed) Assertion.
    pub sign_response: bool,
    /// `encrypt_assertions = true`: the DER certificate assertions are
    /// encrypted for (the SP metadata's encryption key, or
    /// `encryption_cert`). `None` sends assertions in the clear.
    pub encryption_cert_der: Option<Vec<u8>>,
    /// Where a person starts signing in to it: a gateway app's public URL
    /// (its sign-in is SP-initiated: it refuses an unsolicited assertion).
    /// `None` for `[[idp.service_provider]]`s, which the launcher signs in
    /// IdP-initiated.
    pub sign_in_url: Option<String>,
    /// `allow_sha1 = true` (a legacy opt-in, noted by `check` and logged
    /// at start): the SP's AuthnRequests and Single Logout messages may be
    /// signed with RSA-SHA1 and SHA-1 digests. The IdP never signs so.
    pub allow_sha1: bool,
    /// Where the metadata-derived fields above came from, when they did
    /// (`metadata_file` / `metadata_url`); a URL is refreshed while the
    /// IdP runs ([`ServiceProviderConfig::with_metadata`]).
    pub metadata_source: Option<PeerMetadataSource>,
}

impl ServiceProviderConfig {
    /// What `check` prints, and `run` logs at WARN, about this SP's
    /// legacy opt-ins.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.allow_sha1 {
            notes.push(format!(
                "[[idp.service_provider]] {}: allow_sha1 = true: requests and logout messages from {} may be signed with RSA-SHA1",
                self.name, self.entity_id
            ));
        }
        notes
    }
}

#[derive(Debug, Clone)]
pub struct ApiTokenConfig {
    pub name: String,
    /// Hex SHA-256 of the token; the token itself never appears in config.
    pub sha256: String,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub https: Vec<SocketAddr>,
    pub http: Vec<SocketAddr>,
    /// Port that plain-HTTP redirects point at; 443 is left out of the URL.
    pub https_redirect_port: u16,
    pub tls: TlsFiles,
    pub timeouts: Timeouts,
    /// One request head's size limit, HTTP/1.1 and HTTP/2 alike (HTTP/2
    /// heads are measured as their HTTP/1.1 form).
    pub max_header_bytes: usize,
    /// One request head's header count limit, HTTP/1.1 and HTTP/2 alike.
    pub max_headers: usize,
    /// Open client connections on the public listeners beyond which new
    /// ones are closed at once; `None` derives it from the descriptor limit
    /// at start.
    pub max_connections: Option<usize>,
    /// Worker threads, each a single-threaded event loop with its own
    /// upstream pools (thread-per-core, like nginx's worker processes).
    pub workers: usize,
    /// SAML ACS posts accepted per client IP per minute (all apps together).
    pub acs_per_minute: u32,
    /// `trusted_proxies`: the peers whose `Forwarded` / `X-Forwarded-For`
    /// are believed. Host bits cleared; IPv4-mapped IPv6 networks stored as
    /// IPv4, so one entry matches a client however the listener reports it.
    pub trusted_proxies: Vec<IpNet>,
}

/// Default `[server] acs_per_minute`: far above what one browser needs, low
/// enough that one client cannot monopolise signature checks. An office
/// behind one NAT address shares it; raise it there.
pub const DEFAULT_ACS_PER_MINUTE: u32 = 600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A client must send a complete request head within this time.
    pub header_read: Duration,
    /// A keep-alive connection with no request in flight is closed after this.
    pub idle: Duration,
    pub upstream_connect: Duration,
    /// No byte in either direction between the gateway and an upstream for
    /// this long fails the exchange: a 504 before the response head, a cut
    /// body after it.
    pub upstream_inactivity: Duration,
    /// Optional cap on the time from sending the request upstream to
    /// receiving its response head, upload included.
    pub upstream_response: Option<Duration>,
    /// How long a graceful shutdown waits for in-flight requests.
    pub shutdown: Duration,
}

#[derive(Debug, Clone)]
pub struct Admin {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone)]
pub struct Logging {
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive such as `info` or `portcullis=debug`.
    pub level: String,
    pub access_log: bool,
}

#[derive(Debug, Clone)]
pub struct App {
    pub name: String,
    pub public: PublicUrl,
    pub upstream: Upstream,
    /// `auth = "saml"`: browsers need a gateway session from SAML SSO.
    /// `None`: the app is published without authentication.
    pub auth: Option<AppAuth>,
    /// `host_header = "upstream"`: send the upstream's host instead of the
    /// public one.
    pub upstream_host_header: bool,
    /// `[app.error_pages]`: the gateway's own error responses for these
    /// statuses are replaced (browsers only; API clients keep JSON).
    pub error_pages: Vec<(u16, ErrorPage)>,
    /// Further targets after `upstream`'s first (same scheme kind and base
    /// path), for load balancing.
    pub more_targets: Vec<UpstreamTarget>,
    pub load_balancing: LoadBalancing,
    pub health: Health,
    /// Rewrite upstream URLs to public ones inside text/html, CSS and
    /// JavaScript bodies (streaming; gzip and br handled). Off by default.
    pub rewrite_body: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadBalancing {
    RoundRobin,
    LeastConnections,
}

/// Upstream target health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Consecutive failures (connect errors, timeouts, 502/503/504 from the
    /// target) that eject a target.
    pub fail_after: u32,
    /// How long an ejected target rests before it gets traffic again.
    pub cooldown: Duration,
    /// Active check: `GET {target}{check_path}` every `check_interval`;
    /// a non-2xx/3xx answer or no answer marks the target down.
    pub check_path: Option<String>,
    pub check_interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorPage {
    /// Served with the original status.
    File(PathBuf),
    /// The browser is sent there (303).
    Redirect(String),
}

/// The cookie the embedded IdP keeps its session in; no app may use it.
pub const IDP_SESSION_COOKIE: &str = "pc_idp_sid";

/// Every cookie of the embedded IdP starts with this; no app may use such a
/// name, and no backend ever receives one.
pub const IDP_COOKIE_PREFIX: &str = "pc_idp_";

/// An app's SAML service provider and gateway-session settings.
#[derive(Debug, Clone)]
pub struct AppAuth {
    pub idp: AppIdp,
    /// The SP's key for signing AuthnRequests, and its certificate.
    pub sp_signing_key: PathBuf,
    pub sp_signing_cert: PathBuf,
    /// The SP's encryption key pair (`sp_encryption_key`,
    /// `sp_encryption_cert`): published in its metadata, and the key
    /// EncryptedAssertions are decrypted with. `None`: encrypted
    /// assertions are refused.
    pub sp_encryption: Option<SpKeyPair>,
    /// `{origin}{prefix}/_portcullis/saml/metadata`.
    pub entity_id: String,
    /// The NameID format the SP asks for (AuthnRequest NameIDPolicy, SP
    /// metadata NameIDFormat); `None` asks for none and lets the IdP choose.
    pub name_id_format: Option<SpNameIdFormat>,
    /// `{origin}{prefix}/_portcullis/saml/acs`.
    pub acs_url: String,
    /// `{origin}{prefix}/_portcullis/saml/slo`.
    pub slo_url: String,
    /// `{origin}{prefix}/_portcullis/global-token-revocation`: Universal
    /// Logout, and the `aud` its tokens must name.
    pub gtr_url: String,
    /// The gateway session cookie; defaults to `pc_<app name>`.
    pub session_cookie: String,
    /// The short-lived cookie binding an AuthnRequest to the browser:
    /// `<session_cookie>_rs`.
    pub request_cookie: String,
    pub session_idle: Duration,
    pub session_max: Duration,
    /// `[[app.access]]`, in file order; the longest matching path wins.
    pub access: Vec<AccessRule>,
    /// Accept Responses the IdP sends without an AuthnRequest of ours
    /// (IdP-initiated SSO). Off by default: such responses cannot be bound
    /// to the browser that receives them.
    pub allow_idp_initiated: bool,
    /// For an external IdP: whose Universal Logout tokens the app's
    /// revocation endpoint accepts. Apps on the embedded IdP always trust it.
    pub universal_logout: Option<UniversalLogoutTrust>,
    /// Called (POST, with `X-Portcullis-User`) when a gateway session of
    /// this app ends, so the backend's own session ends too; the backend's
    /// cookies are then expired in the browser on its next visit.
    pub backend_logout_url: Option<String>,
    /// `[[app.inject]]` (after `inject_template`'s defaults), in order.
    pub inject: Vec<InjectRule>,
    /// Cap on the bytes of all injected headers and cookies together.
    pub max_identity_bytes: usize,
    /// A header carrying a short-lived RS256 JWT of the identity, signed
    /// with the app's SP key (JWKS at `/_portcullis/jwks`).
    pub identity_jwt_header: Option<String>,
    /// After sign-in, always land here (an app path) instead of the
    /// original URL.
    pub login_landing: Option<String>,
    /// Where the signed-out page sends the browser instead (an absolute
    /// URL or an app path, e.g. the app's own logout page).
    pub post_logout_url: Option<String>,
}

/// A PEM private key file and its PEM certificate file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpKeyPair {
    pub key: PathBuf,
    pub cert: PathBuf,
}

/// Default `max_identity_bytes`: well under the 8 KiB head limit common
/// backends (Apache, IIS, Tomcat) enforce.
pub const DEFAULT_MAX_IDENTITY_BYTES: usize = 4096;

/// One identity value sent toward the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectRule {
    pub source: InjectSource,
    pub target: InjectTarget,
    /// Header or cookie name.
    pub name: String,
    pub multi: MultiValue,
    pub encoding: ValueEncoding,
    /// `false`: resolved but not sent (kept for access rules and logs).
    pub send: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InjectSource {
    /// The assertion's NameID.
    NameId,
    /// A SAML attribute by name.
    Attribute(String),
    /// When the gateway session started, i.e. when the assertion was
    /// accepted (RFC 3339, UTC, whole seconds).
    AuthTime,
    /// The AuthnContextClassRef, as `pwd` or `mfa`.
    Amr,
    /// The IdP's SessionIndex.
    IdpSession,
    Static(String),
    /// A secret from this environment variable, read at start.
    Env(String),
    /// A secret from this file (trailing newline trimmed), read at start.
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectTarget {
    Header,
    Cookie,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiValue {
    Join(String),
    First,
    Last,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueEncoding {
    Raw,
    Url,
    Base64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniversalLogoutTrust {
    /// The `iss` its tokens carry.
    pub issuer: String,
    /// A JWKS document with the keys that sign them.
    pub jwks_file: PathBuf,
}

/// Which IdP an app's SP trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppIdp {
    /// The embedded IdP of `[idp]`; the app is registered with it automatically.
    Embedded,
    /// `idp = { metadata_file = "…" }`: any SAML 2.0 IdP, trusted through
    /// the entity id, SSO endpoint and signing certificates in its metadata.
    External(Box<ExternalIdp>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdp {
    pub source: PeerMetadataSource,
    /// What the caller's `MetadataReader` read at load (from the file, the
    /// URL, or the URL's cache file).
    pub metadata: IdpMetadata,
    /// `false` (a legacy opt-in, noted by `check` and logged at start):
    /// an Assertion signed only through its signed Response is accepted.
    pub want_assertions_signed: bool,
    /// `true` (a legacy opt-in, noted and logged like the other): its
    /// Responses and Single Logout messages may be signed with RSA-SHA1
    /// and SHA-1 digests.
    pub allow_sha1: bool,
}

impl ExternalIdp {
    /// What `check` prints, and `run` logs at WARN, about this IdP's
    /// legacy opt-ins.
    pub fn notes(&self, app: &str) -> Vec<String> {
        let mut notes = Vec::new();
        if !self.want_assertions_signed {
            notes.push(format!(
                "app {app}: want_assertions_signed = false: assertions from {} are accepted with only the Response signed",
                self.metadata.entity_id
            ));
        }
        if self.allow_sha1 {
            notes.push(format!(
                "app {app}: allow_sha1 = true: responses and logout messages from {} may be signed with RSA-SHA1",
                self.metadata.entity_id
            ));
        }
        notes
    }
}

/// Where a peer's metadata comes from and how it is trusted
/// (`metadata_file` or `metadata_url` and the keys beside them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerMetadataSource {
    pub location: MetadataLocation,
    /// `metadata_signing_cert` as DER: the only key the document's
    /// signature may be made with. Required for a URL; for a file, the
    /// signature is checked when it is set.
    pub signing_certs_der: Vec<Vec<u8>>,
    /// `entity_id`: the entity to take out of an aggregate.
    pub entity_id: Option<String>,
    /// `metadata_min_refresh` / `metadata_max_refresh`: the bounds the
    /// next download of a URL is clamped to, whatever `cacheDuration` and
    /// `validUntil` ask for.
    pub min_refresh: Duration,
    pub max_refresh: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataLocation {
    File(PathBuf),
    Url {
        url: String,
        /// `metadata_cache_file`: the last verified copy, started from
        /// when the URL cannot be reached.
        cache_file: Option<PathBuf>,
    },
}

/// One `[[app.access]]` rule. `path` is relative to the app's prefix and
/// matches whole segments (`/admin` matches `/admin/x`, not `/administrator`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRule {
    pub path: String,
    pub policy: AccessPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessPolicy {
    /// No session needed.
    Public,
    /// Any signed-in user.
    Protected,
    /// Signed-in users in at least one of these groups.
    Groups(Vec<String>),
    /// Nobody.
    Deny,
}

/// An app's public origin and path prefix, normalised: lowercase host,
/// explicit port, prefix `/` or `/segment[/segment…]` without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    pub scheme: String,
    pub host: String,
    pub port: u16,
    pub path_prefix: String,
}

impl PublicUrl {
    /// The `host[:port]` form a browser sends in `Host` for this URL.
    pub fn authority(&self) -> String {
        let default_port = if self.scheme == "https" { 443 } else { 80 };
        if self.port == default_port {
            self.host.clone()
        } else if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority())
    }

    /// The prefix as paths are built on it: `""` for `/`, else the prefix
    /// (`/wiki`). The one home of the "prefix `/` means empty" rule, so
    /// nobody writes `https://a.test//_portcullis/…` or checks for `/` again.
    pub fn base_path(&self) -> &str {
        if self.path_prefix == "/" {
            ""
        } else {
            &self.path_prefix
        }
    }

    /// Origin plus base path, no trailing slash (`https://a.test`,
    /// `https://a.test/wiki`): endpoint paths are appended to it.
    pub fn url(&self) -> String {
        format!("{}{}", self.origin(), self.base_path())
    }
}

#[derive(Debug, Clone)]
pub enum Upstream {
    Builtin(Builtin),
    Http(UpstreamTarget),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// Shows the request headers and cookies it received, as HTML or JSON.
    Echo,
}

#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    pub tls: bool,
    /// `host:port` to connect to.
    pub authority: String,
    /// Path prepended to the request path after the app's prefix is removed;
    /// no trailing slash (empty for `/`).
    pub base_path: String,
    /// Extra trust anchor (PEM) for an https upstream with a private CA.
    pub ca: Option<PathBuf>,
    /// TLS server name to send and verify instead of the host in the URL.
    pub sni: Option<String>,
}
