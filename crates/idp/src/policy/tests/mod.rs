//! Cross-file tests of the policy module: the sign-on evaluation matrix,
//! app policy branches, compile errors and property tests.

mod app_policy;
mod compile_errors;
mod properties;
mod sign_on_matrix;

use super::PolicySet;

/// Three assigned policies plus one shadowed one, listed out of priority
/// order (policies and rules) to prove evaluation sorts them.
pub(super) const MATRIX_TOML: &str = r#"
[[zone]]
name = "office"
cidrs = ["10.0.0.0/8", "2001:db8::/32"]

[[zone]]
name = "vpn"
cidrs = ["192.168.100.0/24"]

[[zone]]
name = "blocked"
cidrs = ["203.0.113.0/24", "::ffff:198.51.100.0/120"]

[[session_policy]]
name = "Everyone"
priority = 3
groups = ["Everyone"]

  [[session_policy.rule]]
  name = "Staff outside need MFA"
  priority = 3
  groups_include = ["staff"]
  zones_exclude = ["office"]
  access = "ALLOW"
  require_mfa = true

  [[session_policy.rule]]
  name = "Interns need MFA"
  priority = 1
  groups_include = ["interns"]
  groups_exclude = ["staff"]
  access = "ALLOW"
  require_mfa = true
  max_idle = "1h"

  [[session_policy.rule]]
  name = "Staff in office"
  priority = 2
  groups_include = ["staff"]
  zones_include = ["office"]
  access = "ALLOW"
  max_session_lifetime = "7d"
  persistent_cookie = true

[[session_policy]]
name = "Admins"
priority = 1
groups = ["admins"]

  [[session_policy.rule]]
  name = "Admins from blocked networks"
  priority = 1
  zones_include = ["blocked"]
  access = "DENY"

  [[session_policy.rule]]
  name = "Admins in office"
  priority = 2
  zones_include = ["office"]
  access = "ALLOW"
  max_idle = "1h"
  max_session_lifetime = "8h"

  [[session_policy.rule]]
  name = "Admins elsewhere need MFA"
  priority = 3
  access = "ALLOW"
  require_mfa = true
  max_idle = "30m"
  max_session_lifetime = "8h"

[[session_policy]]
name = "Staff shadowed"
priority = 4
groups = ["staff"]

  [[session_policy.rule]]
  name = "Never reached"
  priority = 1
  access = "DENY"

[[session_policy]]
name = "Contractors"
priority = 2
groups = ["contractors"]

  [[session_policy.rule]]
  name = "Contractors off-network"
  priority = 1
  zones_exclude = ["office", "vpn"]
  access = "DENY"

  [[session_policy.rule]]
  name = "Contractors on network"
  priority = 2
  groups_exclude = ["suspended"]
  access = "ALLOW"
  require_mfa = true
  max_idle = "15m"

[app_policy.wiki]
groups_allowed = ["staff", "contractors"]
"#;

pub(super) fn matrix_set() -> PolicySet {
    PolicySet::from_toml_str(MATRIX_TOML).expect("matrix policy compiles")
}

pub(super) fn groups(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}
