use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::matrix_set;
use crate::policy::{Access, Outcome, SignOnContext, DEFAULT_POLICY_NAME};

const GROUP_POOL: [&str; 7] = [
    "admins",
    "contractors",
    "staff",
    "interns",
    "suspended",
    "sales",
    "Everyone",
];

fn ip_strategy() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<u32>().prop_map(|a| IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped())),
        any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
        // Bias towards the configured zones.
        (0u32..=0x00ff_ffff).prop_map(|a| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | a))),
        (0u32..=0xff).prop_map(|a| IpAddr::V4(Ipv4Addr::from(0xcb00_7100 | a))),
        (0u32..=0xff).prop_map(|a| IpAddr::V4(Ipv4Addr::from(0xc0a8_6400 | a))),
    ]
}

proptest! {
    /// Evaluation never panics, names a real (or the default) policy and rule,
    /// and its outcome follows from that rule: DENY rules always deny,
    /// MFA rules challenge until MFA is verified.
    #[test]
    fn policy_sign_on_outcome_follows_matching_rule(
        mask in 0u8..(1 << GROUP_POOL.len()),
        ip in ip_strategy(),
        mfa_verified in any::<bool>(),
    ) {
        let set = matrix_set();
        let user_groups: Vec<String> = GROUP_POOL
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, g)| (*g).to_owned())
            .collect();
        let ctx = SignOnContext { groups: &user_groups, ip, mfa_verified };
        let d = set.evaluate_sign_on(&ctx);
        if d.policy == DEFAULT_POLICY_NAME {
            prop_assert!(d.is_default());
            prop_assert_eq!(d.outcome, Outcome::Allow);
            return Ok(());
        }
        let policy = set
            .session_policies()
            .iter()
            .find(|p| p.name() == d.policy)
            .expect("decision names a configured policy");
        let rule = policy.rules().iter().find(|r| r.name() == d.rule).expect("rule exists");
        prop_assert!(policy.applies_to(&user_groups));
        prop_assert!(rule.matches(&ctx));
        // No higher-priority policy applied.
        prop_assert!(set
            .session_policies()
            .iter()
            .take_while(|p| p.priority() < policy.priority())
            .all(|p| !p.applies_to(&user_groups)));
        let expected = match (rule.access(), rule.require_mfa(), mfa_verified) {
            (Access::Deny, _, _) => Outcome::Deny,
            (Access::Allow, true, false) => Outcome::Challenge,
            (Access::Allow, _, _) => Outcome::Allow,
        };
        prop_assert_eq!(d.outcome, expected);
        prop_assert_eq!(d.session, rule.session());
    }

    /// Admins coming from the blocked zone are denied whatever else holds.
    #[test]
    fn policy_blocked_admins_always_denied(
        host in 0u32..=0xff,
        mapped in any::<bool>(),
        mask in 0u8..(1 << GROUP_POOL.len()),
        mfa_verified in any::<bool>(),
    ) {
        let v4 = Ipv4Addr::from(0xcb00_7100 | host);
        let ip = if mapped { IpAddr::V6(v4.to_ipv6_mapped()) } else { IpAddr::V4(v4) };
        let mut user_groups: Vec<String> = GROUP_POOL
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, g)| (*g).to_owned())
            .collect();
        user_groups.push("admins".to_owned());
        let d = matrix_set().evaluate_sign_on(&SignOnContext { groups: &user_groups, ip, mfa_verified });
        prop_assert_eq!(d.outcome, Outcome::Deny);
    }
}
