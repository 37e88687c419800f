//! The file as written: serde types that reject unknown keys. Nothing here is
//! trusted until `validate` has turned it into the model.

use serde::Deserialize;

/// Every section of one file, each deserialised on its own (`None` or the
/// default when absent or unreadable).
#[derive(Debug, Default)]
pub struct RawFile {
    pub server: RawServer,
    pub admin: Option<RawAdmin>,
    pub log: RawLog,
    pub cluster: Option<RawCluster>,
    pub idp: Option<RawIdp>,
    pub apps: Vec<Option<RawApp>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    #[serde(default)]
    pub https: Vec<String>,
    #[serde(default)]
    pub http: Vec<String>,
    pub https_redirect_port: Option<u16>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub header_read_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub upstream_connect_timeout: Option<String>,
    pub upstream_inactivity_timeout: Option<String>,
    pub upstream_response_timeout: Option<String>,
    pub shutdown_timeout: Option<String>,
    pub max_header_bytes: Option<u64>,
    pub max_headers: Option<u64>,
    pub max_connections: Option<u64>,
    pub workers: Option<u64>,
    pub acs_per_minute: Option<u64>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<String>,
    pub level: Option<String>,
    pub access_log: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApp {
    pub name: Option<String>,
    pub public_url: Option<String>,
    pub upstream: Option<RawUpstream>,
    pub load_balancing: Option<String>,
    pub rewrite_body: Option<bool>,
    pub health: Option<RawHealth>,
    pub upstream_ca: Option<String>,
    pub upstream_sni: Option<String>,
    pub auth: Option<String>,
    pub idp: Option<RawAppIdp>,
    pub allow_idp_initiated: Option<bool>,
    pub universal_logout_issuer: Option<String>,
    pub backend_logout_url: Option<String>,
    pub inject_template: Option<String>,
    #[serde(default)]
    pub inject: Vec<RawInject>,
    pub max_identity_bytes: Option<u64>,
    pub identity_jwt_header: Option<String>,
    pub login_landing: Option<String>,
    pub post_logout_url: Option<String>,
    pub host_header: Option<String>,
    pub error_pages: Option<std::collections::BTreeMap<String, String>>,
    pub universal_logout_jwks_file: Option<String>,
    pub sp_signing_key: Option<String>,
    pub sp_signing_cert: Option<String>,
    pub sp_encryption_key: Option<String>,
    pub sp_encryption_cert: Option<String>,
    pub session_cookie: Option<String>,
    pub session_idle: Option<String>,
    pub session_max: Option<String>,
    pub name_id_format: Option<String>,
    #[serde(default)]
    pub access: Vec<RawAccess>,
}

/// `upstream = "http://…"` or several: `upstream = ["http://…", "http://…"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawUpstream {
    One(String),
    Many(Vec<String>),
}

/// `[app.health]`: passive ejection and optional active checks.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub fail_after: Option<u64>,
    pub cooldown: Option<String>,
    pub check_path: Option<String>,
    pub check_interval: Option<String>,
}

/// One `[[app.inject]]`: an identity value sent to the backend.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInject {
    pub source: Option<String>,
    pub target: Option<String>,
    pub name: Option<String>,
    pub multi: Option<String>,
    pub separator: Option<String>,
    pub encoding: Option<String>,
    pub send: Option<bool>,
}

/// `idp = "embedded"` or `idp = { metadata_file = "…" }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawAppIdp {
    Named(String),
    External(RawExternalIdp),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExternalIdp {
    pub metadata_file: Option<String>,
    pub metadata_url: Option<String>,
    pub metadata_signing_cert: Option<String>,
    pub metadata_cache_file: Option<String>,
    pub metadata_min_refresh: Option<String>,
    pub metadata_max_refresh: Option<String>,
    pub entity_id: Option<String>,
    pub want_assertions_signed: Option<bool>,
    pub allow_sha1: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccess {
    pub path: Option<String>,
    pub policy: Option<String>,
    pub groups: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdp {
    pub public_url: Option<String>,
    pub users_file: Option<String>,
    pub policy_file: Option<String>,
    pub asn_database: Option<String>,
    pub system_log_file: Option<String>,
    pub system_log_max_bytes: Option<u64>,
    pub system_log_keep_files: Option<u64>,
    pub lockout_failures: Option<u64>,
    pub lockout_duration: Option<String>,
    pub sign_in_per_minute: Option<u64>,
    pub api_per_minute: Option<u64>,
    pub session_token_ttl: Option<String>,
    #[serde(default)]
    pub redirect_allow: Vec<String>,
    #[serde(default)]
    pub api_token: Vec<RawApiToken>,
    pub signing_key: Option<String>,
    pub signing_cert: Option<String>,
    /// Keys persistent and transient NameIDs instead of `signing_key`.
    pub name_id_secret_file: Option<String>,
    pub entity_id: Option<String>,
    #[serde(default)]
    pub service_provider: Vec<RawServiceProvider>,
    /// Groups whose members may use the admin console.
    pub admin_groups: Option<Vec<String>>,
    /// `[idp.admin]`: the admin console's sessions.
    pub admin: Option<RawIdpAdmin>,
    /// `[idp.saml]`: how the IdP writes its assertions.
    pub saml: Option<RawIdpSaml>,
}

/// `[idp.saml]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdpSaml {
    pub clock_skew: Option<String>,
}

/// `[idp.admin]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdpAdmin {
    pub max_lifetime: Option<String>,
    pub max_idle: Option<String>,
    pub bind: Option<Vec<String>>,
    pub protected_action_reauth: Option<String>,
    pub factors: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServiceProvider {
    pub name: Option<String>,
    pub metadata_file: Option<String>,
    pub metadata_url: Option<String>,
    pub metadata_signing_cert: Option<String>,
    pub metadata_cache_file: Option<String>,
    pub metadata_min_refresh: Option<String>,
    pub metadata_max_refresh: Option<String>,
    pub entity_id: Option<String>,
    pub acs_url: Option<String>,
    pub name_id_format: Option<String>,
    pub name_id_formats_allowed: Option<Vec<String>>,
    pub signing_cert: Option<String>,
    pub attributes: Option<Vec<RawSpAttribute>>,
    pub attribute_preset: Option<String>,
    pub sign_response: Option<bool>,
    pub encrypt_assertions: Option<bool>,
    pub encryption_cert: Option<String>,
    pub allow_sha1: Option<bool>,
    pub soap_slo_url: Option<String>,
}

/// One entry of an SP's `attributes`: a user field by its own name, or a
/// rule naming it.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawSpAttribute {
    Field(String),
    Rule(RawSpAttributeRule),
}

/// `{ name = "uid", source = "login", name_format = "uri" }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpAttributeRule {
    pub name: Option<String>,
    pub source: Option<String>,
    pub name_format: Option<String>,
    pub friendly_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiToken {
    pub name: Option<String>,
    pub sha256: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// `[cluster]`: how several nodes share the work.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub mode: Option<String>,
    pub node_id: Option<String>,
    #[serde(default)]
    pub peers: Vec<String>,
    pub route_cookie: Option<String>,
    pub revocation_staleness: Option<String>,
    pub on_store_error: Option<String>,
    pub store_key_file: Option<String>,
    pub peer_ca: Option<String>,
    /// `[cluster.redis]`: the store of `mode = "shared"`.
    pub redis: Option<RawRedis>,
}

/// `[cluster.redis]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    pub url: Option<String>,
    pub sentinel: Option<RawSentinel>,
    pub cluster_nodes: Option<Vec<String>>,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    pub tls_ca: Option<String>,
    pub key_prefix: Option<String>,
    pub connect_timeout: Option<String>,
    pub command_timeout: Option<String>,
}

/// `sentinel = { master = "…", nodes = ["redis://…", …] }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSentinel {
    pub master: Option<String>,
    #[serde(default)]
    pub nodes: Vec<String>,
}
