//! The `[post_auth]` table of the policy file: what a session's context
//! change means (Okta's "Post auth session" settings).
//!
//! ```toml
//! [post_auth]
//! mode = "enforced"     # "off" (default) | "monitoring" | "enforced"
//! groups = "all"        # or ["staff", …]
//! bind = ["ip", "asn"]  # which changes are violations (default ["asn", "device"])
//! action = "logout"     # with "enforced": "none" | "logout" | "workflow"
//! logout_apps = "all"   # or [app names]
//! logout_idp = true
//! ```

use portcullis_context::{Attribute, Changes};
use serde::{Deserialize, Serialize};

use super::workflow::RawWorkflow;
use crate::policy::PolicyError;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Off,
    /// Events and the report only: the user notices nothing.
    Monitoring,
    /// Policies are enforced again when the context changes.
    Enforced,
}

/// With `enforced`: what a violation (a change of a bound attribute) does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The user re-authenticates before the request continues.
    #[default]
    None,
    /// The sessions end through the Universal Logout path.
    Logout,
    /// A signed webhook reports it; the user is not held up.
    Workflow,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Logout => "logout",
            Self::Workflow => "workflow",
        }
    }
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Monitoring => "monitoring",
            Self::Enforced => "enforced",
        }
    }
}

/// `"all"` or a list of names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawSelection {
    Keyword(String),
    Listed(Vec<String>),
}

impl Default for RawSelection {
    fn default() -> Self {
        RawSelection::Keyword("all".into())
    }
}

/// `[post_auth]` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPostAuth {
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub groups: RawSelection,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<Vec<Attribute>>,
    #[serde(default)]
    pub action: Action,
    #[serde(default)]
    pub logout_apps: RawSelection,
    #[serde(default = "yes")]
    pub logout_idp: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<RawWorkflow>,
}

fn yes() -> bool {
    true
}

/// Users or apps a setting covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Selection {
    #[default]
    All,
    Listed(Vec<String>),
}

impl Selection {
    pub fn includes(&self, name: &str) -> bool {
        match self {
            Selection::All => true,
            Selection::Listed(names) => names.iter().any(|n| n == name),
        }
    }

    /// Whether any of `names` (a user's groups) is covered.
    pub fn includes_any<'n>(&self, mut names: impl Iterator<Item = &'n str>) -> bool {
        match self {
            Selection::All => true,
            Selection::Listed(listed) => names.any(|n| listed.iter().any(|l| l == n)),
        }
    }

    pub fn listed(&self) -> &[String] {
        match self {
            Selection::All => &[],
            Selection::Listed(names) => names,
        }
    }
}

/// Which bound attributes a session's context may not change.
pub const DEFAULT_BIND: [Attribute; 2] = [Attribute::Asn, Attribute::Device];

/// `[post_auth]`, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostAuthPolicy {
    pub mode: Mode,
    pub groups: Selection,
    pub bind: Changes,
    pub action: Action,
    pub logout_apps: Selection,
    pub logout_idp: bool,
    /// `[post_auth.workflow]`, compiled by whoever knows the IdP's signing
    /// key and where the policy file is ([`super::workflow::Workflow::compile`]).
    pub workflow: Option<RawWorkflow>,
}

/// What one context change amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Recorded (events, report); the session goes on with its new context.
    Record,
    /// Enforced, no bound attribute changed: the policies are evaluated
    /// again against the new context.
    Reevaluate,
    /// Enforced, a bound attribute changed, `action = "none"`.
    Reauthenticate,
    Logout,
    Workflow,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Record => "monitored",
            Self::Reevaluate => "reevaluated",
            Self::Reauthenticate => "reauthenticate",
            Self::Logout => "logout",
            Self::Workflow => "workflow",
        }
    }
}

impl PostAuthPolicy {
    pub fn is_on(&self) -> bool {
        self.mode != Mode::Off
    }

    /// The bound attributes among `changes`: the violation, if not empty.
    pub fn violation(&self, changes: Changes) -> Changes {
        self.bind.intersection(changes)
    }

    pub fn verdict(&self, changes: Changes) -> Verdict {
        match self.mode {
            Mode::Off | Mode::Monitoring => Verdict::Record,
            Mode::Enforced if self.violation(changes).is_empty() => Verdict::Reevaluate,
            Mode::Enforced => match self.action {
                Action::None => Verdict::Reauthenticate,
                Action::Logout => Verdict::Logout,
                Action::Workflow => Verdict::Workflow,
            },
        }
    }

    pub(crate) fn compile(raw: &RawPostAuth, errors: &mut Vec<PolicyError>) -> Self {
        let mut selection = |field: &str, raw: &RawSelection| match raw {
            RawSelection::Keyword(word) if word == "all" => Selection::All,
            RawSelection::Keyword(word) => {
                errors.push(PolicyError::BadSetting {
                    field: format!("post_auth.{field}"),
                    value: word.clone(),
                    expected: "\"all\" or a list of names",
                });
                Selection::All
            }
            RawSelection::Listed(names) => Selection::Listed(names.clone()),
        };
        let groups = selection("groups", &raw.groups);
        let logout_apps = selection("logout_apps", &raw.logout_apps);
        let bind = raw.bind.as_deref().unwrap_or(&DEFAULT_BIND);
        if raw.action == Action::Workflow && raw.workflow.is_none() {
            errors.push(PolicyError::BadSetting {
                field: "post_auth.action".into(),
                value: "workflow".into(),
                expected: "a [post_auth.workflow] table with the webhook's url",
            });
        }
        if raw.action != Action::None && raw.mode != Mode::Enforced {
            errors.push(PolicyError::BadSetting {
                field: "post_auth.action".into(),
                value: raw.action.as_str().into(),
                expected: "\"none\" unless mode = \"enforced\" (actions are what enforcement does)",
            });
        }
        PostAuthPolicy {
            mode: raw.mode,
            groups,
            bind: Changes::of(bind.iter().copied()),
            action: raw.action,
            logout_apps,
            logout_idp: raw.logout_idp,
            workflow: raw.workflow.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicySet;

    #[test]
    fn the_documented_table_compiles() {
        let set = PolicySet::from_toml_str(
            "[post_auth]\nmode = \"enforced\"\ngroups = [\"staff\"]\nbind = [\"ip\", \"asn\"]\n\
             action = \"logout\"\nlogout_apps = [\"wiki\"]\nlogout_idp = false\n",
        )
        .expect("compiles");
        let policy = set.post_auth();
        assert_eq!(policy.mode, Mode::Enforced);
        assert!(policy.groups.includes_any(["x", "staff"].into_iter()));
        assert!(!policy.groups.includes_any(["x"].into_iter()));
        assert!(policy.logout_apps.includes("wiki") && !policy.logout_apps.includes("crm"));
        assert!(!policy.logout_idp);
        let ip_only = Changes::of([Attribute::Ip]);
        assert_eq!(policy.verdict(ip_only), Verdict::Logout);
        assert_eq!(
            policy.verdict(Changes::of([Attribute::Device])),
            Verdict::Reevaluate
        );
    }

    #[test]
    fn defaults_are_off_and_bind_asn_and_device() {
        let policy = PolicySet::from_toml_str("[post_auth]\n")
            .expect("compiles")
            .post_auth()
            .clone();
        assert_eq!(policy.mode, Mode::Off);
        assert!(!policy.is_on());
        assert!(policy.logout_idp);
        assert_eq!(policy.bind, Changes::of(DEFAULT_BIND));
        assert_eq!(PolicySet::default().post_auth().mode, Mode::Off);
        let monitoring =
            PolicySet::from_toml_str("[post_auth]\nmode = \"monitoring\"\n").expect("compiles");
        assert_eq!(
            monitoring
                .post_auth()
                .verdict(Changes::of([Attribute::Asn])),
            Verdict::Record
        );
    }

    #[test]
    fn contradictions_and_typos_are_errors() {
        for text in [
            "[post_auth]\nmode = \"strict\"\n",
            "[post_auth]\nbind = [\"port\"]\n",
            "[post_auth]\ngroups = \"everyone\"\n",
            "[post_auth]\nmode = \"enforced\"\naction = \"workflow\"\n",
            "[post_auth]\nmode = \"monitoring\"\naction = \"logout\"\n",
            "[post_auth]\nmod = \"enforced\"\n",
        ] {
            assert!(PolicySet::from_toml_str(text).is_err(), "{text}");
        }
    }
}
