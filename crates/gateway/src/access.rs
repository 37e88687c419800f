//! An app's access rules (`[[app.access]]`): for a path relative to the
//! app's prefix, the longest rule by whole segments decides; without one
//! the path is protected.

use portcullis_config::{AccessPolicy, AccessRule};
use portcullis_proxy::under;

pub(crate) struct AccessRules {
    /// Longest path first, so the first match is the most specific.
    rules: Vec<AccessRule>,
}

impl AccessRules {
    pub(crate) fn new(rules: &[AccessRule]) -> Self {
        let mut rules = rules.to_vec();
        rules.sort_by_key(|rule| std::cmp::Reverse(rule.path.len()));
        AccessRules { rules }
    }

    /// The policy for an app-relative path.
    pub(crate) fn policy(&self, path: &str) -> &AccessPolicy {
        self.rules
            .iter()
            .find(|rule| under(path, &rule.path))
            .map_or(&AccessPolicy::Protected, |rule| &rule.policy)
    }
}

/// Whether a session's groups satisfy `policy` (only `Groups` asks).
pub(crate) fn groups_allow<'g>(
    policy: &AccessPolicy,
    mut groups: impl Iterator<Item = &'g str>,
) -> bool {
    match policy {
        AccessPolicy::Groups(wanted) => groups.any(|g| wanted.iter().any(|w| w == g)),
        AccessPolicy::Public | AccessPolicy::Protected | AccessPolicy::Deny => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_rule_wins_and_the_default_is_protected() {
        let rules = AccessRules::new(&[
            AccessRule {
                path: "/".into(),
                policy: AccessPolicy::Public,
            },
            AccessRule {
                path: "/admin".into(),
                policy: AccessPolicy::Groups(vec!["admins".into()]),
            },
            AccessRule {
                path: "/admin/open".into(),
                policy: AccessPolicy::Deny,
            },
        ]);
        assert_eq!(*rules.policy("/x"), AccessPolicy::Public);
        assert!(matches!(rules.policy("/admin/x"), AccessPolicy::Groups(_)));
        assert_eq!(*rules.policy("/admin/open/y"), AccessPolicy::Deny);
        assert_eq!(*AccessRules::new(&[]).policy("/x"), AccessPolicy::Protected);
        let admins = AccessPolicy::Groups(vec!["admins".into()]);
        assert!(groups_allow(&admins, ["staff", "admins"].into_iter()));
        assert!(!groups_allow(&admins, ["staff"].into_iter()));
        assert!(groups_allow(&AccessPolicy::Protected, std::iter::empty()));
    }
}
