//! What `portcullis check` notes about the admin console: global session
//! policy rules that let an administrator sign in to the IdP with one
//! factor, and administrators whom only the built-in Default Rule (one
//! factor) would sign in.
//!
//! Notes, not refusals: the console never relies on them — it asks for
//! password + TOTP itself on entry, and `[idp.admin] factors` (the admin
//! console's own policy) accepts only 2 — and an IdP sign-on policy that
//! lets staff in with a password on a trusted network is a choice the
//! operator may make for the apps. The note says that admins get it too.

use crate::directory::Directory;
use crate::policy::{Access, PolicySet};

/// Every way the policies let an administrator in with one factor, one
/// line each.
pub fn one_factor_admin_paths(
    policies: &PolicySet,
    directory: &Directory,
    admin_groups: &[String],
) -> Vec<String> {
    let mut notes = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for user in directory.users() {
        if !user.groups().iter().any(|g| admin_groups.contains(g)) {
            continue;
        }
        let Some(policy) = policies
            .session_policies()
            .iter()
            .find(|p| p.applies_to(user.groups()))
        else {
            if seen.insert(("default".to_string(), String::new())) {
                notes.push(format!(
                    "administrator {} is named by no global session policy: the Default Rule would let them sign in with a password alone (the console still asks for TOTP); add a policy for the admin groups whose rules require MFA",
                    user.login()
                ));
            }
            continue;
        };
        let mut covered = false;
        for rule in policy.rules() {
            if !rule.admits_groups(user.groups()) {
                continue;
            }
            if rule.access() == Access::Allow
                && !rule.require_mfa()
                && seen.insert((policy.name().to_string(), rule.name().to_string()))
            {
                notes.push(format!(
                    "session policy “{}” rule “{}” lets administrator {} sign in to the IdP without MFA (the console still asks for TOTP); set require_mfa = true for admins",
                    policy.name(),
                    rule.name(),
                    user.login()
                ));
            }
            if rule.ignores_network() {
                covered = true;
                break;
            }
        }
        if !covered && seen.insert((policy.name().to_string(), String::new())) {
            notes.push(format!(
                "session policy “{}” has no rule matching administrator {} from every network: the Default Rule would let them in with one factor (the console still asks for TOTP); end it with a catch-all rule that requires MFA (or denies)",
                policy.name(),
                user.login()
            ));
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Directory {
        let hash = crate::directory::test_hashes::cheap_hash("pw");
        let text = format!(
            "[[user]]\nid = \"00u1\"\nlogin = \"alice\"\nemail = \"a@example.com\"\n\
             first_name = \"A\"\nlast_name = \"A\"\ngroups = [\"admins\"]\npassword_hash = \"{hash}\"\n"
        );
        Directory::from_str(&text, "users.toml").expect("users")
    }

    fn check(policies: &str) -> Vec<String> {
        let directory = users();
        let policies = PolicySet::from_toml_str(policies).expect("policies");
        one_factor_admin_paths(&policies, &directory, &["admins".to_string()])
    }

    #[test]
    fn a_rule_letting_an_admin_in_with_one_factor_is_noted() {
        let result = check(
            r#"
[[session_policy]]
name = "Everyone"
priority = 1
groups = ["Everyone"]
  [[session_policy.rule]]
  name = "Password is enough"
  priority = 1
  access = "ALLOW"
  require_mfa = false
"#,
        );
        assert_eq!(result.len(), 1, "{result:?}");
        assert!(result[0].contains("Password is enough"), "{result:?}");
    }

    #[test]
    fn an_mfa_catch_all_for_admins_passes_and_no_policy_is_noted() {
        let result = check(
            r#"
[[session_policy]]
name = "Administrators"
priority = 1
groups = ["admins"]
  [[session_policy.rule]]
  name = "MFA"
  priority = 1
  access = "ALLOW"
  require_mfa = true
"#,
        );
        assert!(result.is_empty(), "{result:?}");
        let result = check("");
        assert_eq!(result.len(), 1, "{result:?}");
        assert!(result[0].contains("Default Rule"), "{result:?}");
    }
}
