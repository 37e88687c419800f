//! The global session policy, evaluated once at sign-in: which policy and
//! rule apply to this user from this network, whether they may sign in,
//! whether they must pass MFA first, and how long the session may live.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::{Access, RawSessionPolicy, RawSessionRule};
use super::duration::parse_duration;
use super::error::PolicyError;
use super::zone::Zone;

/// Group name that every user is implicitly a member of.
pub const EVERYONE: &str = "Everyone";
/// Name reported when no configured policy (or rule) applies.
pub const DEFAULT_POLICY_NAME: &str = "Default Policy";
/// Name reported when no configured policy (or rule) applies.
pub const DEFAULT_RULE_NAME: &str = "Default Rule";
/// Idle timeout of a rule that does not set `max_idle`.
pub const DEFAULT_MAX_IDLE: Duration = Duration::from_secs(2 * 3_600);
/// Lifetime of sessions created by the built-in default rule.
pub const DEFAULT_RULE_MAX_LIFETIME: Duration = Duration::from_secs(24 * 3_600);

/// Result of sign-on evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Outcome {
    /// Signed in (MFA satisfied or not required).
    Allow,
    /// Access is denied by the matching rule.
    Deny,
    /// Allowed once the user passes MFA in this sign-in.
    Challenge,
}

impl Outcome {
    /// The value logged in the `policy.evaluate_sign_on` System Log event.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "ALLOW",
            Self::Deny => "DENY",
            Self::Challenge => "CHALLENGE",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Session limits chosen by the matching rule.
///
/// Serde derives are for carrying limits inside stored values (a session
/// token's pending sign-in), not for configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionLimits {
    pub max_idle: Duration,
    /// `None` means no absolute limit.
    pub max_lifetime: Option<Duration>,
    pub persistent_cookie: bool,
}

impl SessionLimits {
    /// The session lifetime these limits give (the persistent-cookie flag
    /// is the cookie's business, not the store's).
    pub fn lifetime(self) -> portcullis_session::Lifetime {
        portcullis_session::Lifetime::new(self.max_idle, self.max_lifetime)
    }

    /// Limits of the built-in default rule.
    pub const DEFAULT_RULE: Self = Self {
        max_idle: DEFAULT_MAX_IDLE,
        max_lifetime: Some(DEFAULT_RULE_MAX_LIFETIME),
        persistent_cookie: false,
    };
}

/// Who is signing in and from where.
#[derive(Debug, Clone, Copy)]
pub struct SignOnContext<'a> {
    /// The user's group names (without the implicit "Everyone").
    pub groups: &'a [String],
    pub ip: IpAddr,
    /// The user already passed MFA during this sign-in.
    pub mfa_verified: bool,
}

/// What the global session policy decided, with what the System Log needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignOnDecision {
    pub policy: String,
    pub rule: String,
    pub outcome: Outcome,
    pub session: SessionLimits,
}

impl SignOnDecision {
    pub(super) fn default_rule() -> Self {
        Self {
            policy: DEFAULT_POLICY_NAME.to_owned(),
            rule: DEFAULT_RULE_NAME.to_owned(),
            outcome: Outcome::Allow,
            session: SessionLimits::DEFAULT_RULE,
        }
    }

    /// Whether the built-in catch-all decided (nothing configured matched).
    pub fn is_default(&self) -> bool {
        self.policy == DEFAULT_POLICY_NAME && self.rule == DEFAULT_RULE_NAME
    }
}

/// A compiled global session policy; rules are sorted by priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPolicy {
    name: String,
    priority: u32,
    groups: Vec<String>,
    rules: Vec<SessionRule>,
}

impl SessionPolicy {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn priority(&self) -> u32 {
        self.priority
    }

    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// Rules in evaluation order.
    pub fn rules(&self) -> &[SessionRule] {
        &self.rules
    }

    /// Whether the policy is assigned to this user.
    pub fn applies_to(&self, user_groups: &[String]) -> bool {
        in_any(user_groups, &self.groups)
    }

    /// The first rule (by priority) whose conditions match.
    pub fn matching_rule(&self, ctx: &SignOnContext<'_>) -> Option<&SessionRule> {
        self.rules.iter().find(|rule| rule.matches(ctx))
    }
}

/// Why a [`SessionRule`] does not match a sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleMiss<'r> {
    /// The user is in none of `groups_include`.
    NotInGroups,
    /// The user is in one of `groups_exclude`.
    ExcludedGroup,
    /// The address is in none of `zones_include`.
    OutsideZones,
    /// The address is in this zone of `zones_exclude`.
    ExcludedZone(&'r Zone),
}

/// A compiled rule of a [`SessionPolicy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRule {
    name: String,
    priority: u32,
    groups_include: Vec<String>,
    groups_exclude: Vec<String>,
    zones_include: Vec<Zone>,
    zones_exclude: Vec<Zone>,
    access: Access,
    require_mfa: bool,
    session: SessionLimits,
}

impl SessionRule {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn priority(&self) -> u32 {
        self.priority
    }

    pub fn access(&self) -> Access {
        self.access
    }

    pub fn require_mfa(&self) -> bool {
        self.require_mfa
    }

    pub fn session(&self) -> SessionLimits {
        self.session
    }

    /// The rule's conditions, for showing the policy (admin console).
    pub fn groups_include(&self) -> &[String] {
        &self.groups_include
    }

    pub fn groups_exclude(&self) -> &[String] {
        &self.groups_exclude
    }

    pub fn zones_include(&self) -> &[Zone] {
        &self.zones_include
    }

    pub fn zones_exclude(&self) -> &[Zone] {
        &self.zones_exclude
    }

    /// Whether the rule can match whatever the client's address.
    pub fn ignores_network(&self) -> bool {
        self.zones_include.is_empty() && self.zones_exclude.is_empty()
    }

    /// All conditions hold; an empty include list is "no condition".
    pub fn matches(&self, ctx: &SignOnContext<'_>) -> bool {
        self.miss(ctx).is_none()
    }

    /// The first condition that fails for this sign-in, `None` when the
    /// rule matches (the admin console's "explain" says which).
    pub fn miss(&self, ctx: &SignOnContext<'_>) -> Option<RuleMiss<'_>> {
        if !self.groups_include.is_empty() && !in_any(ctx.groups, &self.groups_include) {
            return Some(RuleMiss::NotInGroups);
        }
        if in_any(ctx.groups, &self.groups_exclude) {
            return Some(RuleMiss::ExcludedGroup);
        }
        if !self.zones_include.is_empty() && !self.zones_include.iter().any(|z| z.contains(ctx.ip))
        {
            return Some(RuleMiss::OutsideZones);
        }
        self.zones_exclude
            .iter()
            .find(|z| z.contains(ctx.ip))
            .map(RuleMiss::ExcludedZone)
    }

    /// Whether the group conditions let a user with `groups` match, from
    /// some network.
    pub fn admits_groups(&self, groups: &[String]) -> bool {
        (self.groups_include.is_empty() || in_any(groups, &self.groups_include))
            && !in_any(groups, &self.groups_exclude)
    }

    /// The outcome for a subject this rule matched.
    pub fn outcome(&self, mfa_verified: bool) -> Outcome {
        match self.access {
            Access::Deny => Outcome::Deny,
            Access::Allow if self.require_mfa && !mfa_verified => Outcome::Challenge,
            Access::Allow => Outcome::Allow,
        }
    }
}

/// Evaluates policies already sorted by priority. A user matched by a
/// policy whose rules all miss gets the default rule rather than the next
/// policy: policy assignment is decided by group alone, as in Okta.
pub(super) fn evaluate(policies: &[SessionPolicy], ctx: &SignOnContext<'_>) -> SignOnDecision {
    let Some(policy) = policies.iter().find(|p| p.applies_to(ctx.groups)) else {
        return SignOnDecision::default_rule();
    };
    match policy.matching_rule(ctx) {
        Some(rule) => SignOnDecision {
            policy: policy.name.clone(),
            rule: rule.name.clone(),
            outcome: rule.outcome(ctx.mfa_verified),
            session: rule.session,
        },
        None => SignOnDecision::default_rule(),
    }
}

/// True when any listed group is "Everyone" or one of the user's groups.
pub(super) fn in_any(user_groups: &[String], listed: &[String]) -> bool {
    listed
        .iter()
        .any(|g| g == EVERYONE || user_groups.contains(g))
}

/// Compiles `[[session_policy]]`, recording every problem in `errors`.
pub(super) fn compile_policies(
    raw: &[RawSessionPolicy],
    zones: &BTreeMap<String, Zone>,
    errors: &mut Vec<PolicyError>,
) -> Vec<SessionPolicy> {
    let mut names = NameChecker::new("session_policy");
    let mut priorities = PriorityChecker::new("session_policy".to_owned());
    let mut policies = Vec::with_capacity(raw.len());
    for (index, raw_policy) in raw.iter().enumerate() {
        let label = names.check(&raw_policy.name, index, errors);
        let what = format!("session_policy {label:?}");
        priorities.check(raw_policy.priority, &label, &what, errors);
        if raw_policy.groups.is_empty() {
            errors.push(PolicyError::NoGroups {
                policy: label.clone(),
            });
        }
        let rules = compile_rules(&label, &raw_policy.rule, zones, errors);
        policies.push(SessionPolicy {
            name: raw_policy.name.clone(),
            priority: raw_policy.priority,
            groups: raw_policy.groups.clone(),
            rules,
        });
    }
    policies.sort_by_key(|p| p.priority);
    policies
}

fn compile_rules(
    policy: &str,
    raw: &[RawSessionRule],
    zones: &BTreeMap<String, Zone>,
    errors: &mut Vec<PolicyError>,
) -> Vec<SessionRule> {
    let mut names = NameChecker::new(&format!("session_policy {policy:?} rule"));
    let mut priorities = PriorityChecker::new(format!("rules of session_policy {policy:?}"));
    let mut rules = Vec::with_capacity(raw.len());
    for (index, raw_rule) in raw.iter().enumerate() {
        let label = names.check(&raw_rule.name, index, errors);
        let what = format!("session_policy {policy:?} rule {label:?}");
        priorities.check(raw_rule.priority, &label, &what, errors);
        let mut resolve = |names: &[String]| -> Vec<Zone> {
            names
                .iter()
                .filter_map(|name| {
                    let zone = zones.get(name).cloned();
                    if zone.is_none() {
                        errors.push(PolicyError::UnknownZone {
                            zone: name.clone(),
                            referenced_by: what.clone(),
                        });
                    }
                    zone
                })
                .collect()
        };
        let zones_include = resolve(&raw_rule.zones_include);
        let zones_exclude = resolve(&raw_rule.zones_exclude);
        let mut duration = |field: &str, value: &Option<String>| {
            let value = value.as_deref()?;
            parse_duration(value)
                .map_err(|source| {
                    errors.push(PolicyError::BadDuration {
                        field: format!("{what} {field}"),
                        value: value.to_owned(),
                        source,
                    });
                })
                .ok()
        };
        let max_idle = duration("max_idle", &raw_rule.max_idle).unwrap_or(DEFAULT_MAX_IDLE);
        let max_lifetime = duration("max_session_lifetime", &raw_rule.max_session_lifetime);
        rules.push(SessionRule {
            name: raw_rule.name.clone(),
            priority: raw_rule.priority,
            groups_include: raw_rule.groups_include.clone(),
            groups_exclude: raw_rule.groups_exclude.clone(),
            zones_include,
            zones_exclude,
            access: raw_rule.access,
            require_mfa: raw_rule.require_mfa,
            session: SessionLimits {
                max_idle,
                max_lifetime,
                persistent_cookie: raw_rule.persistent_cookie,
            },
        });
    }
    rules.sort_by_key(|r| r.priority);
    rules
}

/// Reports empty and duplicate names; returns a label usable in messages.
struct NameChecker {
    what: String,
    seen: Vec<String>,
}

impl NameChecker {
    fn new(what: &str) -> Self {
        Self {
            what: what.to_owned(),
            seen: Vec::new(),
        }
    }

    fn check(&mut self, name: &str, index: usize, errors: &mut Vec<PolicyError>) -> String {
        if name.trim().is_empty() {
            errors.push(PolicyError::EmptyName {
                what: format!("{} #{}", self.what, index + 1),
            });
            return format!("#{}", index + 1);
        }
        if self.seen.iter().any(|s| s == name) {
            errors.push(PolicyError::DuplicateName {
                what: self.what.clone(),
                name: name.to_owned(),
            });
        } else {
            self.seen.push(name.to_owned());
        }
        name.to_owned()
    }
}

/// Reports priority 0 and ties within one scope.
struct PriorityChecker {
    scope: String,
    seen: BTreeMap<u32, String>,
}

impl PriorityChecker {
    fn new(scope: String) -> Self {
        Self {
            scope,
            seen: BTreeMap::new(),
        }
    }

    fn check(&mut self, priority: u32, label: &str, what: &str, errors: &mut Vec<PolicyError>) {
        if priority == 0 {
            errors.push(PolicyError::InvalidPriority {
                what: what.to_owned(),
            });
            return;
        }
        match self.seen.get(&priority) {
            Some(first) => errors.push(PolicyError::DuplicatePriority {
                scope: self.scope.clone(),
                priority,
                first: first.clone(),
                second: label.to_owned(),
            }),
            None => {
                self.seen.insert(priority, label.to_owned());
            }
        }
    }
}
