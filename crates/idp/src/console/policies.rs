//! `/admin/policies`: the policies in force, read-only — global session
//! policies with their rules, app sign-on policies, zones, post-auth —
//! and the "explain" tool: for user X from IP Y to app Z, which rule
//! applies and why, rule by rule.

use std::net::IpAddr;
use std::time::Duration;

use askama::Template;
use bytes::Bytes;
use http::{Request, Response, StatusCode};

use super::shell::{self, param, Section};
use super::Admin;
use crate::directory::{User, UserStatus};
use crate::policy::{
    AppAuthPolicy, MfaRequirement, PolicySet, Reauth, RuleMiss, SessionLimits, SessionRule,
    SignOnContext, EVERYONE,
};
use crate::web::Idp;

/// `8h`, `30m`, `1h30m`, `45s`: the policy file's own spelling.
fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

fn limits(l: &SessionLimits) -> String {
    format!(
        "idle {}, lifetime {}{}",
        duration(l.max_idle),
        l.max_lifetime.map_or("unlimited".into(), duration),
        if l.persistent_cookie {
            ", persistent cookie"
        } else {
            ""
        }
    )
}

fn list_or(names: &[String], none: &str) -> String {
    if names.is_empty() {
        none.to_string()
    } else {
        names.join(", ")
    }
}

fn conditions(rule: &SessionRule) -> String {
    let zones =
        |z: &[crate::policy::Zone]| z.iter().map(|z| z.name().to_string()).collect::<Vec<_>>();
    let mut parts = Vec::new();
    if !rule.groups_include().is_empty() {
        parts.push(format!("groups in {}", rule.groups_include().join(", ")));
    }
    if !rule.groups_exclude().is_empty() {
        parts.push(format!(
            "groups not in {}",
            rule.groups_exclude().join(", ")
        ));
    }
    if !rule.zones_include().is_empty() {
        parts.push(format!(
            "from zone {}",
            zones(rule.zones_include()).join(", ")
        ));
    }
    if !rule.zones_exclude().is_empty() {
        parts.push(format!(
            "not from zone {}",
            zones(rule.zones_exclude()).join(", ")
        ));
    }
    if parts.is_empty() {
        "any sign-in".into()
    } else {
        parts.join("; ")
    }
}

fn app_policy_text(policy: &AppAuthPolicy) -> (String, String, String) {
    let reauth = match policy.reauthenticate {
        Reauth::EverySignInAttempt => "every sign-in attempt".to_string(),
        Reauth::After(d) => format!("after {}", duration(d)),
    };
    let mfa = match policy.mfa {
        MfaRequirement::NotRequired => "not required".to_string(),
        MfaRequirement::Required => "required once per session".to_string(),
        MfaRequirement::RequiredAfter(d) => format!("required, at most {} ago", duration(d)),
    };
    (reauth, mfa, list_or(&policy.groups_allowed, EVERYONE))
}

/// Why a rule did or did not match the sign-in.
fn rule_verdict(rule: &SessionRule, ctx: &SignOnContext<'_>) -> Result<(), String> {
    match rule.miss(ctx) {
        None => Ok(()),
        Some(RuleMiss::NotInGroups) => Err("the user is in none of its groups".into()),
        Some(RuleMiss::ExcludedGroup) => Err("the user is in an excluded group".into()),
        Some(RuleMiss::OutsideZones) => Err(format!("{} is in none of its zones", ctx.ip)),
        Some(RuleMiss::ExcludedZone(zone)) => Err(format!(
            "{} is in the excluded zone {}",
            ctx.ip,
            zone.name()
        )),
    }
}

/// A text field of the explain form: what was asked, and why it could not
/// be used.
struct ExplainInput {
    value: String,
    error: Option<&'static str>,
}

/// A choice of the explain form's app list.
struct AppOption {
    value: String,
    label: String,
    selected: bool,
}

/// The explain form, and its answer when it was filled in.
struct Explain {
    action: String,
    user: ExplainInput,
    ip: ExplainInput,
    apps: Vec<AppOption>,
    mfa: bool,
    /// How the sign-in is decided, step by step.
    steps: Option<Vec<String>>,
}

struct RuleRow {
    priority: u32,
    name: String,
    conditions: String,
    access: String,
    mfa: &'static str,
    session: String,
}

struct SessionPolicyView {
    priority: u32,
    name: String,
    groups: String,
    rules: Vec<RuleRow>,
}

struct AppPolicyRow {
    app: String,
    reauthenticate: String,
    mfa: String,
    groups: String,
}

impl AppPolicyRow {
    fn new(app: &str, policy: &AppAuthPolicy) -> AppPolicyRow {
        let (reauthenticate, mfa, groups) = app_policy_text(policy);
        AppPolicyRow {
            app: app.to_string(),
            reauthenticate,
            mfa,
            groups,
        }
    }
}

struct ZoneView {
    name: String,
    nets: String,
}

struct PostAuthView {
    mode: &'static str,
    bound: String,
    action: &'static str,
    groups: String,
    logout_apps: String,
    logout_idp: bool,
}

/// How admin console sessions are entered and kept.
struct ConsoleView {
    groups: String,
    lifetime: String,
    idle: String,
    bound: String,
    reauth: String,
}

#[derive(Template)]
#[template(path = "console/policies.html")]
struct PoliciesPage {
    explain: Explain,
    session_policies: Vec<SessionPolicyView>,
    app_policies: Vec<AppPolicyRow>,
    /// What an app without a policy of its own gets.
    default_app_policy: AppPolicyRow,
    zones: Vec<ZoneView>,
    post_auth: PostAuthView,
    console: ConsoleView,
}

impl Idp {
    pub(super) fn policies_page(&self, request: &Request<Bytes>, admin: &Admin) -> Response<Bytes> {
        let policies = self.policies.load();
        let (explain, status) = self.explain(request, &policies);
        let session_policies = policies
            .session_policies()
            .iter()
            .map(|policy| SessionPolicyView {
                priority: policy.priority(),
                name: policy.name().to_string(),
                groups: policy.groups().join(", "),
                rules: policy
                    .rules()
                    .iter()
                    .map(|rule| RuleRow {
                        priority: rule.priority(),
                        name: rule.name().to_string(),
                        conditions: conditions(rule),
                        access: format!("{:?}", rule.access()).to_uppercase(),
                        mfa: if rule.require_mfa() { "yes" } else { "no" },
                        session: limits(&rule.session()),
                    })
                    .collect(),
            })
            .collect();
        let app_policies = policies
            .app_policies()
            .map(|(app, policy)| AppPolicyRow::new(app, policy))
            .collect();
        let zones = policies
            .zones()
            .map(|zone| ZoneView {
                name: zone.name().to_string(),
                nets: zone
                    .nets()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
            .collect();
        let post_auth = policies.post_auth();
        let post_auth = PostAuthView {
            mode: post_auth.mode.as_str(),
            bound: post_auth
                .bind
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            action: post_auth.action.as_str(),
            groups: list_or(post_auth.groups.listed(), "all"),
            logout_apps: list_or(post_auth.logout_apps.listed(), "every app"),
            logout_idp: post_auth.logout_idp,
        };
        let admin_settings = &self.settings.admin;
        let console = ConsoleView {
            groups: admin_settings.groups.join(", "),
            lifetime: duration(admin_settings.max_lifetime),
            idle: duration(admin_settings.max_idle),
            bound: admin_settings
                .bind
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            reauth: if admin_settings.protected_action_reauth.is_zero() {
                "every time".to_string()
            } else {
                format!("after {}", duration(admin_settings.protected_action_reauth))
            },
        };
        let body = PoliciesPage {
            explain,
            session_policies,
            app_policies,
            default_app_policy: AppPolicyRow::new("", &AppAuthPolicy::default()),
            zones,
            post_auth,
            console,
        };
        shell::page(
            self,
            admin,
            Some(Section::Policies),
            status,
            "Policies",
            &body,
        )
    }

    /// The explain form, and its answer when it was filled in.
    fn explain(&self, request: &Request<Bytes>, policies: &PolicySet) -> (Explain, StatusCode) {
        let login = param(request, "user");
        let ip_text = param(request, "ip");
        let app = param(request, "app");
        let mfa = param(request, "mfa").is_some();
        let apps: Vec<String> = self
            .saml
            .as_ref()
            .map(|s| {
                s.settings
                    .service_providers
                    .snapshot()
                    .iter()
                    .map(|sp| sp.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        let directory = self.directory();
        let user = login
            .as_deref()
            .and_then(|l| directory.by_id_or_login(l).cloned());
        let ip: Option<IpAddr> = ip_text.as_deref().and_then(|t| t.parse().ok());
        let user_error = (login.is_some() && user.is_none())
            .then_some("There is no user with this login or id.");
        let ip_error = (ip_text.is_some() && ip.is_none()).then_some("This is not an IP address.");
        let status = if user_error.is_none() && ip_error.is_none() {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        let options = std::iter::once(String::new())
            .chain(apps)
            .map(|name| AppOption {
                selected: app.as_deref() == Some(name.as_str()),
                label: if name.is_empty() {
                    "(IdP sign-in only)".to_string()
                } else {
                    name.clone()
                },
                value: name,
            })
            .collect();
        let steps = match (&user, ip) {
            (Some(user), Some(ip)) => {
                Some(self.explanation(policies, user, ip, app.as_deref(), mfa))
            }
            _ => None,
        };
        let explain = Explain {
            action: self.console_path("/policies"),
            user: ExplainInput {
                value: login.unwrap_or_default(),
                error: user_error,
            },
            ip: ExplainInput {
                value: ip_text.unwrap_or_default(),
                error: ip_error,
            },
            apps: options,
            mfa,
            steps,
        };
        (explain, status)
    }

    fn explanation(
        &self,
        policies: &PolicySet,
        user: &User,
        ip: IpAddr,
        app: Option<&str>,
        mfa: bool,
    ) -> Vec<String> {
        let mut steps: Vec<String> = Vec::new();
        if user.status() != UserStatus::Active {
            steps.push(format!(
                "{} is {}: sign-in is refused before any policy.",
                user.login(),
                user.status()
            ));
        }
        let ctx = SignOnContext {
            groups: user.groups(),
            ip,
            mfa_verified: mfa,
        };
        let decision = policies.evaluate_sign_on(&ctx);
        match policies
            .session_policies()
            .iter()
            .find(|p| p.applies_to(user.groups()))
        {
            None => steps.push(format!(
                "No global session policy names any of {}'s groups ({}).",
                user.login(),
                list_or(user.groups(), "none")
            )),
            Some(policy) => {
                steps.push(format!(
                    "Global session policy “{}” applies: it is the first by priority naming one of the groups {}.",
                    policy.name(),
                    list_or(user.groups(), "none")
                ));
                for rule in policy.rules() {
                    match rule_verdict(rule, &ctx) {
                        Ok(()) => {
                            steps.push(format!("Rule “{}” matches.", rule.name()));
                            break;
                        }
                        Err(why) => {
                            steps.push(format!("Rule “{}” does not match: {why}.", rule.name()))
                        }
                    }
                }
            }
        }
        steps.push(format!(
            "Decision: {} by “{}” / “{}”; session {}.",
            decision.outcome,
            decision.policy,
            decision.rule,
            limits(&decision.session)
        ));
        if let Some(app) = app {
            let policy = policies.app_policy(app);
            let (reauth, mfa_text, groups) = app_policy_text(policy);
            let allowed = policy.allows_groups(user.groups());
            steps.push(format!(
                "App “{app}”: groups allowed {groups} — {}; MFA {mfa_text}; re-authenticate {reauth}.",
                if allowed { "the user is allowed" } else { "the user is NOT allowed (403 at the IdP)" }
            ));
        }
        let post_auth = policies.post_auth();
        if post_auth.is_on() {
            let covered = post_auth
                .groups
                .includes_any(user.groups().iter().map(String::as_str));
            steps.push(format!(
                "Post-auth evaluation ({}): {}",
                post_auth.mode.as_str(),
                if covered {
                    "this user's sessions are evaluated."
                } else {
                    "this user's groups are not covered."
                }
            ));
        }
        steps
    }
}
