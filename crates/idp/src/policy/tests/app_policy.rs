use std::time::Duration;

use time::macros::datetime;
use time::OffsetDateTime;

use super::{groups, matrix_set};
use crate::policy::{
    AppAuthPolicy, AppDecision, AppDenyReason, MfaRequirement, PolicySet, Reauth, SessionFacts,
};

const NOW: OffsetDateTime = datetime!(2025-06-01 12:00 UTC);
const H: Duration = Duration::from_secs(3_600);

fn ago(d: Duration) -> Option<OffsetDateTime> {
    Some(NOW - d)
}

fn facts(user_groups: &[String]) -> SessionFacts<'_> {
    SessionFacts {
        groups: user_groups,
        now: NOW,
        last_password_verification: ago(H),
        last_factor_verification: None,
        force_authn: false,
        password_verified_this_request: false,
    }
}

fn policy(reauthenticate: Reauth, mfa: MfaRequirement, allowed: &[&str]) -> AppAuthPolicy {
    AppAuthPolicy {
        reauthenticate,
        mfa,
        groups_allowed: groups(allowed),
    }
}

#[test]
fn app_policy_default_allows_recent_password_without_mfa() {
    let g = groups(&["anyone"]);
    assert_eq!(
        AppAuthPolicy::default().evaluate(&facts(&g)),
        AppDecision::Allow
    );
    assert_eq!(
        AppAuthPolicy::default().reauthenticate,
        Reauth::After(12 * H)
    );
}

#[test]
fn app_policy_group_check_comes_first() {
    let p = policy(
        Reauth::EverySignInAttempt,
        MfaRequirement::Required,
        &["staff"],
    );
    let outsider = groups(&["sales"]);
    let f = SessionFacts {
        force_authn: true,
        ..facts(&outsider)
    };
    assert_eq!(
        p.evaluate(&f),
        AppDecision::Deny {
            reason: AppDenyReason::NotInAllowedGroups
        }
    );
    let none: Vec<String> = Vec::new();
    assert!(matches!(
        p.evaluate(&facts(&none)),
        AppDecision::Deny { .. }
    ));
    let staff = groups(&["sales", "staff"]);
    assert_eq!(p.evaluate(&facts(&staff)), AppDecision::Reauthenticate);
    let everyone = policy(
        Reauth::After(12 * H),
        MfaRequirement::NotRequired,
        &["Everyone"],
    );
    assert_eq!(everyone.evaluate(&facts(&none)), AppDecision::Allow);
}

#[test]
fn app_policy_reauthentication_branches() {
    let g = groups(&["staff"]);
    let twelve = policy(Reauth::After(12 * H), MfaRequirement::NotRequired, &[]);
    let with_password = |at: Option<OffsetDateTime>| SessionFacts {
        last_password_verification: at,
        ..facts(&g)
    };
    assert_eq!(
        twelve.evaluate(&with_password(ago(12 * H))),
        AppDecision::Allow
    );
    assert_eq!(
        twelve.evaluate(&with_password(ago(12 * H + Duration::from_secs(1)))),
        AppDecision::Reauthenticate
    );
    assert_eq!(
        twelve.evaluate(&with_password(None)),
        AppDecision::Reauthenticate
    );
    // Clock skew: a timestamp from the future is as fresh as "now".
    assert_eq!(
        twelve.evaluate(&with_password(Some(NOW + 5 * H))),
        AppDecision::Allow
    );

    let every = policy(Reauth::EverySignInAttempt, MfaRequirement::NotRequired, &[]);
    assert_eq!(
        every.evaluate(&with_password(Some(NOW))),
        AppDecision::Reauthenticate
    );
    // Resuming the request after the password prompt must not loop.
    let resumed = SessionFacts {
        password_verified_this_request: true,
        ..with_password(Some(NOW))
    };
    assert_eq!(every.evaluate(&resumed), AppDecision::Allow);
}

#[test]
fn app_policy_force_authn_overrides_fresh_password() {
    let g = groups(&["staff"]);
    let p = AppAuthPolicy::default();
    let forced = SessionFacts {
        force_authn: true,
        last_password_verification: Some(NOW),
        ..facts(&g)
    };
    assert_eq!(p.evaluate(&forced), AppDecision::Reauthenticate);
    let resumed = SessionFacts {
        password_verified_this_request: true,
        ..forced
    };
    assert_eq!(p.evaluate(&resumed), AppDecision::Allow);
}

#[test]
fn app_policy_mfa_branches() {
    let g = groups(&["staff"]);
    let with_factor = |at: Option<OffsetDateTime>| SessionFacts {
        last_factor_verification: at,
        ..facts(&g)
    };
    let required = policy(Reauth::After(12 * H), MfaRequirement::Required, &[]);
    assert_eq!(
        required.evaluate(&with_factor(None)),
        AppDecision::StepUpMfa
    );
    assert_eq!(
        required.evaluate(&with_factor(ago(11 * H))),
        AppDecision::Allow
    );

    let recent = policy(Reauth::After(12 * H), MfaRequirement::RequiredAfter(H), &[]);
    assert_eq!(recent.evaluate(&with_factor(None)), AppDecision::StepUpMfa);
    assert_eq!(recent.evaluate(&with_factor(ago(H))), AppDecision::Allow);
    assert_eq!(
        recent.evaluate(&with_factor(ago(2 * H))),
        AppDecision::StepUpMfa
    );
    assert_eq!(
        recent.evaluate(&with_factor(Some(NOW + H))),
        AppDecision::Allow
    );

    let none = policy(Reauth::After(12 * H), MfaRequirement::NotRequired, &[]);
    assert_eq!(none.evaluate(&with_factor(None)), AppDecision::Allow);

    // Re-authentication is decided before MFA.
    let stale_both = SessionFacts {
        last_password_verification: ago(13 * H),
        ..with_factor(None)
    };
    assert_eq!(recent.evaluate(&stale_both), AppDecision::Reauthenticate);
}

#[test]
fn app_policy_compiles_keywords_and_durations() {
    let set = PolicySet::from_toml_str(
        r#"
[app_policy.a]
reauthenticate = "every_sign_in"
mfa = "required"
groups_allowed = ["staff"]

[app_policy.b]
reauthenticate = "30m"
mfa = "1h"

[app_policy.c]
mfa = "not_required"
"#,
    )
    .expect("compiles");
    assert_eq!(
        set.app_policy("a"),
        &policy(
            Reauth::EverySignInAttempt,
            MfaRequirement::Required,
            &["staff"]
        )
    );
    assert_eq!(
        set.app_policy("b"),
        &policy(
            Reauth::After(Duration::from_secs(1_800)),
            MfaRequirement::RequiredAfter(H),
            &[]
        )
    );
    assert_eq!(set.app_policy("c"), &AppAuthPolicy::default());
    assert_eq!(set.app_policy("unconfigured"), &AppAuthPolicy::default());
    assert_eq!(
        matrix_set().app_policy("wiki").groups_allowed,
        groups(&["staff", "contractors"])
    );
}
