use crate::policy::{DurationError, PolicyError, PolicySet};

const BROKEN: &str = r#"
[[zone]]
name = ""
cidrs = ["10.0.0.0/8"]

[[zone]]
name = "office"
cidrs = ["10.0.0.0/8", "10.0.0.0/33", "not-a-net"]

[[zone]]
name = "office"
cidrs = ["192.168.0.0/16"]

[[zone]]
name = "empty"
cidrs = []

[[session_policy]]
name = "A"
priority = 1
groups = ["admins"]

  [[session_policy.rule]]
  name = "r1"
  priority = 1
  zones_include = ["office", "nowhere"]
  zones_exclude = ["elsewhere"]
  access = "ALLOW"
  max_idle = "30 minutes"

  [[session_policy.rule]]
  name = "r2"
  priority = 1
  access = "DENY"
  max_session_lifetime = "0h"

  [[session_policy.rule]]
  name = ""
  priority = 0
  access = "ALLOW"

  [[session_policy.rule]]
  name = "r1"
  priority = 4
  access = "ALLOW"

[[session_policy]]
name = "B"
priority = 1
groups = []

[[session_policy]]
name = "A"
priority = 0
groups = ["x"]

[app_policy.wiki]
reauthenticate = "12"
mfa = "requried"

[app_policy.""]
mfa = "1d"
"#;

#[test]
fn compile_reports_every_error_at_once() {
    let errors = PolicySet::from_toml_str(BROKEN).expect_err("must not compile");
    let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let count = |pred: &dyn Fn(&PolicyError) -> bool| errors.iter().filter(|e| pred(e)).count();

    // zone #1 name, rule #3 name, app key
    assert_eq!(
        count(&|e| matches!(e, PolicyError::EmptyName { .. })),
        3,
        "{rendered:#?}"
    );
    // zone "office", rule "r1", policy "A"
    assert_eq!(
        count(&|e| matches!(e, PolicyError::DuplicateName { .. })),
        3,
        "{rendered:#?}"
    );
    assert_eq!(
        count(&|e| matches!(e, PolicyError::BadCidr { .. })),
        2,
        "{rendered:#?}"
    );
    assert_eq!(
        count(&|e| matches!(e, PolicyError::EmptyZone { zone } if zone == "empty")),
        1
    );
    // policy "B" ties with "A"; rule "r2" ties with "r1"
    assert_eq!(
        count(&|e| matches!(e, PolicyError::DuplicatePriority { .. })),
        2,
        "{rendered:#?}"
    );
    // rule "" and the second policy "A"
    assert_eq!(
        count(&|e| matches!(e, PolicyError::InvalidPriority { .. })),
        2,
        "{rendered:#?}"
    );
    assert_eq!(
        count(&|e| matches!(e, PolicyError::UnknownZone { .. })),
        2,
        "{rendered:#?}"
    );
    assert_eq!(
        count(&|e| matches!(e, PolicyError::NoGroups { policy } if policy == "B")),
        1
    );
    // max_idle (unknown unit), lifetime (zero), reauthenticate (no unit)
    assert_eq!(
        count(&|e| matches!(e, PolicyError::BadDuration { .. })),
        3,
        "{rendered:#?}"
    );
    assert_eq!(
        count(&|e| matches!(e, PolicyError::BadSetting { .. })),
        1,
        "{rendered:#?}"
    );
    assert_eq!(errors.len(), 20, "{rendered:#?}");

    assert!(errors.iter().any(|e| matches!(
        e,
        PolicyError::BadDuration { source: DurationError::Zero, field, .. }
            if field.contains("max_session_lifetime")
    )));
    assert!(errors.iter().any(|e| matches!(
        e,
        PolicyError::DuplicatePriority { priority: 1, first, second, .. }
            if first == "r1" && second == "r2"
    )));
    assert!(
        rendered
            .iter()
            .any(|m| m.contains("unknown zone \"nowhere\"")),
        "{rendered:#?}"
    );
}

#[test]
fn compile_reports_toml_errors() {
    let errors =
        PolicySet::from_toml_str("[[zone]]\nname = \"a\"\ncidrs = [\"10.0.0.0/8\"]\nextra = 1\n")
            .expect_err("unknown field");
    assert!(matches!(errors.as_slice(), [PolicyError::Toml(_)]));
}

#[test]
fn compile_accepts_empty_config() {
    let set = PolicySet::from_toml_str("").expect("empty config is valid");
    assert_eq!(set, PolicySet::default());
}
