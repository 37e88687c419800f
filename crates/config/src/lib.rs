//! Portcullis configuration.
//!
//! Owns the TOML file format: the raw serde types (unknown keys rejected), the
//! validated, immutable model the rest of the gateway consumes, and the
//! located problem reports that `portcullis check` prints. It never opens a
//! socket or builds a TLS context; it only checks that the files it names can
//! be read and hold what they should. It does not speak SAML either: peer
//! metadata files are parsed by the [`MetadataReader`] the caller hands to
//! [`load`] or [`parse`], so depending on config links no SAML stack.

mod load;
mod locate;
mod metadata;
mod model;
mod problem;
mod raw;
mod validate;

/// The CIDR type of `[server] trusted_proxies`, re-exported so that
/// consumers compile against the same version.
pub use ipnet::IpNet;
pub use load::{load, parse};
pub use metadata::{IdpMetadata, MetadataError, MetadataReader, NoMetadata, PeerTrust, SpMetadata};
pub use model::{
    read_store_keys, AccessPolicy, AccessRule, Admin, AdminBind, ApiTokenConfig, App, AppAuth,
    AppIdp, Builtin, Cluster, ClusterMode, Config, ErrorPage, ExternalIdp, Health, Idp, IdpAdmin,
    IdpSaml, InjectRule, InjectSource, InjectTarget, LoadBalancing, LogFormat, Logging,
    MetadataLocation, MultiValue, OnStoreError, PasswordError, PeerMetadataSource, PeerUrl,
    PublicUrl, RedisConfig, RedisEndpoints, RedisPassword, Server, ServiceProviderConfig,
    SpAttribute, SpAttributeNameFormat, SpKeyPair, SpNameIdFormat, StoreKeyError, Timeouts,
    TlsFiles, UniversalLogoutTrust, Upstream, UpstreamTarget, ValueEncoding,
    DEFAULT_ACS_PER_MINUTE, DEFAULT_MAX_IDENTITY_BYTES, DEFAULT_REDIS_COMMAND_TIMEOUT,
    DEFAULT_REDIS_CONNECT_TIMEOUT, DEFAULT_REDIS_KEY_PREFIX, DEFAULT_REVOCATION_STALENESS,
    DEFAULT_ROUTE_COOKIE, IDP_COOKIE_PREFIX, IDP_SESSION_COOKIE, OID_ATTRIBUTE_PRESET,
    SP_ATTRIBUTES,
};
pub use problem::{Problem, Problems};
pub use validate::SpMetadataRefused;
