//! Sign-in and SSO policy for the embedded IdP, modelled on Okta's global
//! session policy and app authentication policies.
//!
//! This module owns:
//! - network zones ([`Zone`]): named CIDR lists matched against client IPs;
//! - the global session policy, evaluated once per sign-in
//!   ([`PolicySet::evaluate_sign_on`] → [`SignOnDecision`]): allow / deny /
//!   MFA challenge plus the session's idle and lifetime limits;
//! - per-app authentication policy, evaluated on each SSO request
//!   ([`AppAuthPolicy::evaluate`] → [`AppDecision`]): group access,
//!   password re-authentication and MFA step-up;
//! - the TOML config types ([`RawPolicyConfig`]) and their validation
//!   ([`PolicySet::compile`]), which reports every problem at once.
//!
//! It does not own sessions, factors or logging: callers feed in facts
//! (groups, IP, verification times) and emit the System Log events.

mod app_policy;
mod config;
mod duration;
mod error;
mod policy_set;
mod session_policy;
mod zone;

#[cfg(test)]
mod tests;

pub use app_policy::{
    AppAuthPolicy, AppDecision, AppDenyReason, MfaRequirement, Reauth, SessionFacts,
    DEFAULT_REAUTHENTICATE_AFTER,
};
pub use config::{
    Access, RawAppPolicy, RawPolicyConfig, RawSessionPolicy, RawSessionRule, RawZone,
};
pub use duration::{parse_duration, DurationError, MAX_DURATION};
pub use error::PolicyError;
pub use policy_set::PolicySet;
pub use session_policy::{
    Outcome, RuleMiss, SessionLimits, SessionPolicy, SessionRule, SignOnContext, SignOnDecision,
    DEFAULT_MAX_IDLE, DEFAULT_POLICY_NAME, DEFAULT_RULE_MAX_LIFETIME, DEFAULT_RULE_NAME, EVERYONE,
};
pub use zone::{parse_cidr, Zone};
