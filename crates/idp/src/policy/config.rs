//! Raw, serde-facing policy configuration exactly as written in TOML.
//! Nothing here is validated beyond types; [`PolicySet::compile`]
//! (super::PolicySet::compile) turns it into evaluable policy. Field names are
//! part of the config file format: the gateway embeds these under `[idp]`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::PolicyError;
use crate::post_auth::RawPostAuth;

/// The whole policy section: zones, global session policies, app policies.
/// Whether a rule lets the user in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Access {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicyConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zone: Vec<RawZone>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub session_policy: Vec<RawSessionPolicy>,
    /// Keyed by app id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub app_policy: BTreeMap<String, RawAppPolicy>,
    /// What a session's context change means after sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_auth: Option<RawPostAuth>,
}

impl RawPolicyConfig {
    /// Parses TOML text; unknown fields are errors so typos don't silently
    /// weaken a policy.
    pub fn from_toml_str(text: &str) -> Result<Self, PolicyError> {
        Ok(toml::from_str(text)?)
    }
}

/// `[[zone]]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZone {
    pub name: String,
    /// CIDRs or single addresses, IPv4 or IPv6.
    pub cidrs: Vec<String>,
}

/// `[[session_policy]]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSessionPolicy {
    pub name: String,
    /// 1 is evaluated first.
    pub priority: u32,
    /// Groups the policy is assigned to; `"Everyone"` means all users.
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rule: Vec<RawSessionRule>,
}

/// `[[session_policy.rule]]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSessionRule {
    pub name: String,
    /// 1 is evaluated first.
    pub priority: u32,
    /// User is in any of these groups (empty = no condition).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups_include: Vec<String>,
    /// User is in none of these groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups_exclude: Vec<String>,
    /// Client IP is in any of these zones (empty = no condition).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones_include: Vec<String>,
    /// Client IP is in none of these zones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones_exclude: Vec<String>,
    /// Required: a rule that silently defaulted to ALLOW would be a hazard.
    pub access: Access,
    #[serde(default)]
    pub require_mfa: bool,
    /// Duration like "12h"; absent means no lifetime limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_session_lifetime: Option<String>,
    /// Duration like "30m"; absent means 2h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_idle: Option<String>,
    #[serde(default)]
    pub persistent_cookie: bool,
}

/// `[app_policy.<app-id>]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAppPolicy {
    /// `"every_sign_in"` or a duration; absent means "12h".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reauthenticate: Option<String>,
    /// `"required"`, `"not_required"` or a duration (MFA within that long);
    /// absent means not required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<String>,
    /// Empty means everyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups_allowed: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_example() {
        let raw = RawPolicyConfig::from_toml_str(
            r#"
[[zone]]
name = "office"
cidrs = ["10.0.0.0/8", "2001:db8::/32"]

[[session_policy]]
name = "Admins"
priority = 1
groups = ["admins"]
  [[session_policy.rule]]
  name = "Admins off-network need MFA"
  priority = 1
  zones_exclude = ["office"]
  access = "ALLOW"
  require_mfa = true
  max_idle = "30m"
  max_session_lifetime = "8h"

[app_policy.some-app]
reauthenticate = "every_sign_in"
mfa = "required"
groups_allowed = ["staff"]
"#,
        )
        .expect("example parses");
        assert_eq!(raw.zone.len(), 1);
        let rule = &raw.session_policy[0].rule[0];
        assert_eq!(rule.access, Access::Allow);
        assert_eq!(rule.max_idle.as_deref(), Some("30m"));
        assert!(!rule.persistent_cookie);
        assert_eq!(
            raw.app_policy["some-app"].reauthenticate.as_deref(),
            Some("every_sign_in")
        );
    }

    #[test]
    fn rejects_unknown_fields_and_bad_access() {
        for text in [
            "[[zone]]\nname = \"a\"\ncidrs = []\ncidr = []\n",
            "[[session_policy]]\nname = \"p\"\npriority = 1\ngroup = [\"x\"]\n",
            "[[session_policy]]\nname = \"p\"\npriority = 1\n[[session_policy.rule]]\nname = \"r\"\npriority = 1\naccess = \"MAYBE\"\n",
            "[[session_policy]]\nname = \"p\"\npriority = 1\n[[session_policy.rule]]\nname = \"r\"\npriority = 1\n",
            "[app_policy.x]\nmfa_required = true\n",
            "[[session_policy]]\nname = \"p\"\npriority = -1\n",
            "unexpected = 1\n",
        ] {
            assert!(
                matches!(RawPolicyConfig::from_toml_str(text), Err(PolicyError::Toml(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn serializes_back_to_equivalent_toml() {
        let raw = RawPolicyConfig::from_toml_str(
            "[[session_policy]]\nname = \"p\"\npriority = 1\ngroups = [\"Everyone\"]\n[[session_policy.rule]]\nname = \"r\"\npriority = 1\naccess = \"DENY\"\n",
        )
        .expect("parses");
        let text = toml::to_string(&raw).expect("serializes");
        assert_eq!(
            RawPolicyConfig::from_toml_str(&text).expect("reparses"),
            raw
        );
    }
}
