//! The one error type for turning raw policy configuration into a
//! [`PolicySet`](super::PolicySet). Compilation collects every problem so an
//! operator fixes the whole file in one pass instead of one error per restart.

use thiserror::Error;

use super::duration::DurationError;

/// A problem found while loading or compiling policy configuration.
#[derive(Debug, Error)]
pub enum PolicyError {
    /// The TOML text could not be parsed, or had unknown or mistyped fields.
    #[error("policy configuration is not valid: {0}")]
    Toml(#[from] toml::de::Error),

    /// A zone, policy, rule or app key has an empty (or blank) name.
    #[error("{what} has an empty name")]
    EmptyName { what: String },

    /// Two items that must be distinguishable in logs share a name.
    #[error("{what} name {name:?} is used more than once")]
    DuplicateName { what: String, name: String },

    /// Priorities start at 1.
    #[error("{what} has priority 0; priorities start at 1")]
    InvalidPriority { what: String },

    /// Two policies, or two rules of one policy, share a priority, which
    /// would make evaluation order depend on file order.
    #[error("{scope}: {first:?} and {second:?} both have priority {priority}")]
    DuplicatePriority {
        scope: String,
        priority: u32,
        first: String,
        second: String,
    },

    /// A rule names a zone that is not defined.
    #[error("{referenced_by} references unknown zone {zone:?}")]
    UnknownZone { zone: String, referenced_by: String },

    /// A zone entry is neither a CIDR nor a single IP address.
    #[error("zone {zone:?}: {value:?} is not a CIDR or IP address: {source}")]
    BadCidr {
        zone: String,
        value: String,
        #[source]
        source: ipnet::AddrParseError,
    },

    /// A zone without CIDRs matches nobody, which is almost surely a mistake.
    #[error("zone {zone:?} has no CIDRs")]
    EmptyZone { zone: String },

    /// A session policy assigned to no group can never apply.
    #[error("session_policy {policy:?} is assigned to no groups (use \"Everyone\" for all users)")]
    NoGroups { policy: String },

    /// A duration setting could not be parsed.
    #[error("{field}: {value:?} is not a valid duration: {source}")]
    BadDuration {
        field: String,
        value: String,
        #[source]
        source: DurationError,
    },

    /// A setting that takes a keyword or a duration got neither.
    #[error("{field}: {value:?} is not valid; expected {expected}")]
    BadSetting {
        field: String,
        value: String,
        expected: &'static str,
    },
}
