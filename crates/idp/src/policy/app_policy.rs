//! Per-app authentication policy, evaluated each time an app asks for SSO
//! against an existing session: may this user use the app, and is the
//! session's authentication fresh and strong enough for it?

use std::fmt;
use std::time::Duration;

use time::OffsetDateTime;

use super::config::RawAppPolicy;
use super::duration::parse_duration;
use super::error::PolicyError;
use super::session_policy::in_any;

/// Password re-verification default: 12 hours.
pub const DEFAULT_REAUTHENTICATE_AFTER: Duration = Duration::from_secs(12 * 3_600);

/// When the password must be entered again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reauth {
    /// On every SSO request to the app.
    EverySignInAttempt,
    /// When the last password verification is older than this.
    After(Duration),
}

/// Whether a verified second factor is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaRequirement {
    NotRequired,
    /// A factor verified at any time during the session.
    Required,
    /// A factor verified no longer ago than this.
    RequiredAfter(Duration),
}

/// A compiled `[app_policy.<app>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppAuthPolicy {
    pub reauthenticate: Reauth,
    pub mfa: MfaRequirement,
    /// Empty means everyone; `"Everyone"` also means everyone.
    pub groups_allowed: Vec<String>,
}

impl Default for AppAuthPolicy {
    fn default() -> Self {
        Self {
            reauthenticate: Reauth::After(DEFAULT_REAUTHENTICATE_AFTER),
            mfa: MfaRequirement::NotRequired,
            groups_allowed: Vec::new(),
        }
    }
}

/// What is known about the session asking for SSO.
#[derive(Debug, Clone, Copy)]
pub struct SessionFacts<'a> {
    pub groups: &'a [String],
    pub now: OffsetDateTime,
    pub last_password_verification: Option<OffsetDateTime>,
    pub last_factor_verification: Option<OffsetDateTime>,
    /// The SAML AuthnRequest had `ForceAuthn="true"`.
    pub force_authn: bool,
    /// The password was entered as part of *this* SSO request (the caller is
    /// resuming it after a [`AppDecision::Reauthenticate`]). Without this,
    /// ForceAuthn and [`Reauth::EverySignInAttempt`] could never be satisfied
    /// and the user would loop on the password prompt.
    pub password_verified_this_request: bool,
}

/// Why an app denied access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppDenyReason {
    /// The user is in none of the app's `groups_allowed`.
    NotInAllowedGroups,
}

impl AppDenyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotInAllowedGroups => "user is not in any group allowed to use this app",
        }
    }
}

impl fmt::Display for AppDenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the SSO endpoint must do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppDecision {
    Allow,
    /// Ask for the password again, then re-evaluate with
    /// `password_verified_this_request = true`.
    Reauthenticate,
    /// Ask for a second factor, then re-evaluate.
    StepUpMfa,
    Deny {
        reason: AppDenyReason,
    },
}

impl AppAuthPolicy {
    /// Group check, then password freshness, then MFA. Verification times in
    /// the future (clock skew between nodes) count as "now", never as stale.
    /// Whether a user with `groups` may use the app at all.
    pub fn allows_groups(&self, groups: &[String]) -> bool {
        self.groups_allowed.is_empty() || in_any(groups, &self.groups_allowed)
    }

    pub fn evaluate(&self, facts: &SessionFacts<'_>) -> AppDecision {
        if !self.allows_groups(facts.groups) {
            return AppDecision::Deny {
                reason: AppDenyReason::NotInAllowedGroups,
            };
        }
        if !facts.password_verified_this_request {
            let stale = facts.force_authn
                || match self.reauthenticate {
                    Reauth::EverySignInAttempt => true,
                    Reauth::After(max_age) => {
                        !fresh(facts.now, facts.last_password_verification, max_age)
                    }
                };
            if stale {
                return AppDecision::Reauthenticate;
            }
        }
        let mfa_ok = match self.mfa {
            MfaRequirement::NotRequired => true,
            MfaRequirement::Required => facts.last_factor_verification.is_some(),
            MfaRequirement::RequiredAfter(max_age) => {
                fresh(facts.now, facts.last_factor_verification, max_age)
            }
        };
        if mfa_ok {
            AppDecision::Allow
        } else {
            AppDecision::StepUpMfa
        }
    }
}

/// Verified no longer than `max_age` ago; a future timestamp has age zero.
fn fresh(now: OffsetDateTime, verified_at: Option<OffsetDateTime>, max_age: Duration) -> bool {
    let Some(at) = verified_at else {
        return false;
    };
    // Negative elapsed time fails the conversion: treat it as zero age.
    let age = Duration::try_from(now - at).unwrap_or(Duration::ZERO);
    age <= max_age
}

/// Compiles one `[app_policy.<app>]`, recording every problem in `errors`.
pub(super) fn compile(
    app: &str,
    raw: &RawAppPolicy,
    errors: &mut Vec<PolicyError>,
) -> Option<AppAuthPolicy> {
    let before = errors.len();
    if app.trim().is_empty() {
        errors.push(PolicyError::EmptyName {
            what: "app_policy key".into(),
        });
    }
    let mut policy = AppAuthPolicy {
        groups_allowed: raw.groups_allowed.clone(),
        ..AppAuthPolicy::default()
    };
    if let Some(value) = raw.reauthenticate.as_deref() {
        let field = format!("app_policy {app:?} reauthenticate");
        match value.trim() {
            "every_sign_in" => policy.reauthenticate = Reauth::EverySignInAttempt,
            _ => {
                if let Some(d) = keyword_or_duration(
                    &field,
                    value,
                    "\"every_sign_in\" or a duration like \"12h\"",
                    errors,
                ) {
                    policy.reauthenticate = Reauth::After(d);
                }
            }
        }
    }
    if let Some(value) = raw.mfa.as_deref() {
        let field = format!("app_policy {app:?} mfa");
        match value.trim() {
            "required" => policy.mfa = MfaRequirement::Required,
            "not_required" => policy.mfa = MfaRequirement::NotRequired,
            _ => {
                if let Some(d) = keyword_or_duration(
                    &field,
                    value,
                    "\"required\", \"not_required\" or a duration like \"1h\"",
                    errors,
                ) {
                    policy.mfa = MfaRequirement::RequiredAfter(d);
                }
            }
        }
    }
    (errors.len() == before).then_some(policy)
}

/// Parses the duration form of a keyword-or-duration setting. Values that
/// don't start with a digit are reported as a wrong keyword, since that is
/// the likelier typo ("requried"), rather than as a bad duration.
fn keyword_or_duration(
    field: &str,
    value: &str,
    expected: &'static str,
    errors: &mut Vec<PolicyError>,
) -> Option<Duration> {
    if !value.trim().starts_with(|c: char| c.is_ascii_digit()) {
        errors.push(PolicyError::BadSetting {
            field: field.to_owned(),
            value: value.to_owned(),
            expected,
        });
        return None;
    }
    parse_duration(value)
        .map_err(|source| {
            errors.push(PolicyError::BadDuration {
                field: field.to_owned(),
                value: value.to_owned(),
                source,
            });
        })
        .ok()
}
