use std::time::Duration;

use super::{groups, matrix_set};
use crate::policy::{
    Outcome, SessionLimits, SignOnContext, DEFAULT_POLICY_NAME, DEFAULT_RULE_NAME,
};

const H: u64 = 3_600;

struct Case {
    groups: &'static [&'static str],
    ip: &'static str,
    mfa_verified: bool,
    policy: &'static str,
    rule: &'static str,
    outcome: Outcome,
}

const fn case(
    groups: &'static [&'static str],
    ip: &'static str,
    mfa_verified: bool,
    policy: &'static str,
    rule: &'static str,
    outcome: Outcome,
) -> Case {
    Case {
        groups,
        ip,
        mfa_verified,
        policy,
        rule,
        outcome,
    }
}

const DEFAULT: (&str, &str) = (DEFAULT_POLICY_NAME, DEFAULT_RULE_NAME);

#[test]
fn sign_on_policy_matrix() {
    use Outcome::{Allow, Challenge, Deny};
    let cases = [
        // Admins: DENY rule first, then zone include, then catch-all with MFA.
        case(
            &["admins"],
            "10.1.2.3",
            false,
            "Admins",
            "Admins in office",
            Allow,
        ),
        case(
            &["admins"],
            "::ffff:10.1.2.3",
            false,
            "Admins",
            "Admins in office",
            Allow,
        ),
        case(
            &["admins"],
            "2001:db8::1",
            false,
            "Admins",
            "Admins in office",
            Allow,
        ),
        case(
            &["admins"],
            "203.0.113.9",
            true,
            "Admins",
            "Admins from blocked networks",
            Deny,
        ),
        case(
            &["admins"],
            "198.51.100.1",
            false,
            "Admins",
            "Admins from blocked networks",
            Deny,
        ),
        case(
            &["admins"],
            "::ffff:198.51.100.1",
            false,
            "Admins",
            "Admins from blocked networks",
            Deny,
        ),
        case(
            &["admins"],
            "8.8.8.8",
            false,
            "Admins",
            "Admins elsewhere need MFA",
            Challenge,
        ),
        case(
            &["admins"],
            "8.8.8.8",
            true,
            "Admins",
            "Admins elsewhere need MFA",
            Allow,
        ),
        case(
            &["admins"],
            "2001:db9::1",
            false,
            "Admins",
            "Admins elsewhere need MFA",
            Challenge,
        ),
        // Priority 1 policy wins for users in several assigned groups.
        case(
            &["contractors", "admins"],
            "8.8.8.8",
            false,
            "Admins",
            "Admins elsewhere need MFA",
            Challenge,
        ),
        case(
            &["staff", "admins"],
            "10.0.0.1",
            false,
            "Admins",
            "Admins in office",
            Allow,
        ),
        // Contractors: zones_exclude DENY, groups_exclude fall-through.
        case(
            &["contractors"],
            "8.8.8.8",
            true,
            "Contractors",
            "Contractors off-network",
            Deny,
        ),
        case(
            &["contractors"],
            "192.168.100.7",
            false,
            "Contractors",
            "Contractors on network",
            Challenge,
        ),
        case(
            &["contractors"],
            "10.0.0.1",
            true,
            "Contractors",
            "Contractors on network",
            Allow,
        ),
        case(
            &["contractors", "suspended"],
            "10.0.0.1",
            false,
            DEFAULT.0,
            DEFAULT.1,
            Allow,
        ),
        case(
            &["contractors", "staff"],
            "8.8.8.8",
            false,
            "Contractors",
            "Contractors off-network",
            Deny,
        ),
        // Everyone policy: groups_include / groups_exclude / zones.
        case(
            &["interns"],
            "8.8.8.8",
            false,
            "Everyone",
            "Interns need MFA",
            Challenge,
        ),
        case(
            &["interns"],
            "10.0.0.1",
            true,
            "Everyone",
            "Interns need MFA",
            Allow,
        ),
        case(
            &["interns", "staff"],
            "10.0.0.1",
            false,
            "Everyone",
            "Staff in office",
            Allow,
        ),
        case(
            &["interns", "staff"],
            "8.8.8.8",
            false,
            "Everyone",
            "Staff outside need MFA",
            Challenge,
        ),
        case(
            &["staff"],
            "10.0.0.1",
            false,
            "Everyone",
            "Staff in office",
            Allow,
        ),
        case(
            &["staff"],
            "2001:db8:ffff::1",
            false,
            "Everyone",
            "Staff in office",
            Allow,
        ),
        case(
            &["staff"],
            "8.8.8.8",
            false,
            "Everyone",
            "Staff outside need MFA",
            Challenge,
        ),
        case(
            &["staff"],
            "::1",
            true,
            "Everyone",
            "Staff outside need MFA",
            Allow,
        ),
        // Matched by the Everyone policy but by none of its rules: default,
        // not the next policy.
        case(&[], "10.0.0.1", false, DEFAULT.0, DEFAULT.1, Allow),
        case(
            &["sales"],
            "203.0.113.9",
            false,
            DEFAULT.0,
            DEFAULT.1,
            Allow,
        ),
    ];
    let set = matrix_set();
    let mut failures = Vec::new();
    for c in &cases {
        let user_groups = groups(c.groups);
        let ctx = SignOnContext {
            groups: &user_groups,
            ip: c.ip.parse().expect("test ip"),
            mfa_verified: c.mfa_verified,
        };
        let d = set.evaluate_sign_on(&ctx);
        if (d.policy.as_str(), d.rule.as_str(), d.outcome) != (c.policy, c.rule, c.outcome) {
            failures.push(format!(
                "{:?} from {} (mfa {}): got {}/{}/{}, want {}/{}/{}",
                c.groups,
                c.ip,
                c.mfa_verified,
                d.policy,
                d.rule,
                d.outcome,
                c.policy,
                c.rule,
                c.outcome
            ));
        }
    }
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}

#[test]
fn sign_on_session_limits_come_from_the_matching_rule() {
    let set = matrix_set();
    let eval = |g: &[&str], ip: &str| {
        let user_groups = groups(g);
        set.evaluate_sign_on(&SignOnContext {
            groups: &user_groups,
            ip: ip.parse().expect("test ip"),
            mfa_verified: false,
        })
    };
    assert_eq!(
        eval(&["admins"], "8.8.8.8").session,
        SessionLimits {
            max_idle: Duration::from_secs(30 * 60),
            max_lifetime: Some(Duration::from_secs(8 * H)),
            persistent_cookie: false,
        }
    );
    // max_idle absent → 2h; lifetime given; persistent cookie on.
    assert_eq!(
        eval(&["staff"], "10.0.0.1").session,
        SessionLimits {
            max_idle: Duration::from_secs(2 * H),
            max_lifetime: Some(Duration::from_secs(7 * 24 * H)),
            persistent_cookie: true,
        }
    );
    // max_session_lifetime absent → no limit.
    assert_eq!(eval(&["staff"], "8.8.8.8").session.max_lifetime, None);
    let d = eval(&[], "8.8.8.8");
    assert!(d.is_default());
    assert_eq!(d.session, SessionLimits::DEFAULT_RULE);
    assert_eq!(d.session.max_lifetime, Some(Duration::from_secs(24 * H)));
    assert_eq!(d.session.max_idle, Duration::from_secs(2 * H));
}

#[test]
fn sign_on_policies_are_sorted_and_outcomes_have_log_strings() {
    let set = matrix_set();
    let order: Vec<_> = set.session_policies().iter().map(|p| p.name()).collect();
    assert_eq!(
        order,
        ["Admins", "Contractors", "Everyone", "Staff shadowed"]
    );
    let everyone_rules: Vec<_> = set.session_policies()[2]
        .rules()
        .iter()
        .map(|r| r.priority())
        .collect();
    assert_eq!(everyone_rules, [1, 2, 3]);
    assert_eq!(Outcome::Allow.as_str(), "ALLOW");
    assert_eq!(Outcome::Deny.as_str(), "DENY");
    assert_eq!(Outcome::Challenge.to_string(), "CHALLENGE");
    assert_eq!(
        serde_json::to_string(&Outcome::Challenge).expect("serializes"),
        "\"CHALLENGE\""
    );
}

#[test]
fn sign_on_with_no_policies_uses_default() {
    let set = crate::policy::PolicySet::default();
    let no_groups: Vec<String> = Vec::new();
    let d = set.evaluate_sign_on(&SignOnContext {
        groups: &no_groups,
        ip: "127.0.0.1".parse().expect("ip"),
        mfa_verified: false,
    });
    assert_eq!((d.policy.as_str(), d.rule.as_str()), DEFAULT);
    assert_eq!(d.outcome, Outcome::Allow);
}
