//! `[[app.access]]`: which paths of a SAML app are public, need a signed-in
//! user, need a group, or are closed.

use crate::locate::Step;
use crate::model::{AccessPolicy, AccessRule};
use crate::raw::RawAccess;

use super::url::normalise_prefix;
use super::Validator;

fn whole(i: usize, j: usize) -> [Step<'static>; 4] {
    [
        Step::Key("app"),
        Step::Index(i),
        Step::Key("access"),
        Step::Index(j),
    ]
}

fn at(i: usize, j: usize, key: &'static str) -> [Step<'static>; 5] {
    let [app, index, access, rule] = whole(i, j);
    [app, index, access, rule, Step::Key(key)]
}

impl Validator<'_, '_> {
    /// App `i`'s rules in file order; `None` when any is wrong.
    pub(super) fn access_rules(
        &mut self,
        i: usize,
        raw: Vec<RawAccess>,
    ) -> Option<Vec<AccessRule>> {
        let mut rules: Vec<AccessRule> = Vec::new();
        let mut ok = true;
        for (j, rule) in raw.into_iter().enumerate() {
            let path = self.access_path(i, j, rule.path.as_deref());
            if let Some(p) = &path {
                if rules.iter().any(|r| &r.path == p) {
                    self.problem(
                        &at(i, j, "path"),
                        format!("another rule already covers `{p}`"),
                    );
                    ok = false;
                }
            }
            if rule.groups.is_some() && rule.policy.as_deref() != Some("groups") {
                self.problem(&at(i, j, "groups"), "groups needs policy = \"groups\"");
                ok = false;
            }
            let policy = self.access_policy(i, j, rule.policy.as_deref(), rule.groups);
            match (path, policy) {
                (Some(path), Some(policy)) => rules.push(AccessRule { path, policy }),
                _ => ok = false,
            }
        }
        ok.then_some(rules)
    }

    /// The rule's path, normalised like an app prefix.
    fn access_path(&mut self, i: usize, j: usize, raw: Option<&str>) -> Option<String> {
        match raw {
            Some(p) if !p.starts_with('/') => {
                self.problem(&at(i, j, "path"), format!("`{p}` must start with /"));
                None
            }
            Some(p) => match normalise_prefix(p) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.problem(&at(i, j, "path"), e);
                    None
                }
            },
            None => {
                self.problem(&whole(i, j), "path is required");
                None
            }
        }
    }

    fn access_policy(
        &mut self,
        i: usize,
        j: usize,
        raw: Option<&str>,
        groups: Option<Vec<String>>,
    ) -> Option<AccessPolicy> {
        match raw {
            Some("public") => Some(AccessPolicy::Public),
            Some("protected") => Some(AccessPolicy::Protected),
            Some("deny") => Some(AccessPolicy::Deny),
            Some("groups") => match groups {
                Some(groups) if !groups.is_empty() && groups.iter().all(|g| !g.is_empty()) => {
                    Some(AccessPolicy::Groups(groups))
                }
                _ => {
                    self.problem(
                        &whole(i, j),
                        "policy = \"groups\" needs a non-empty groups list",
                    );
                    None
                }
            },
            Some(other) => {
                self.problem(
                    &at(i, j, "policy"),
                    format!("`{other}` is not one of public, protected, groups, deny"),
                );
                None
            }
            None => {
                self.problem(&whole(i, j), "policy is required");
                None
            }
        }
    }
}
