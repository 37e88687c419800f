//! `/admin/policies`: the policies in force, read-only — global session
//! policies with their rules, app sign-on policies, zones, post-auth —
//! and the "explain" tool: for user X from IP Y to app Z, which rule
//! applies and why, rule by rule.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};

use super::shell::{self, param, Markup, Section};
use super::Admin;
use crate::directory::{User, UserStatus};
use crate::policy::{
    AppAuthPolicy, MfaRequirement, PolicySet, Reauth, RuleMiss, SessionLimits, SessionRule,
    SignOnContext, EVERYONE,
};
use crate::web::{respond::escape, Idp};

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

impl Idp {
    pub(super) fn policies_page(&self, request: &Request<Bytes>, admin: &Admin) -> Response<Bytes> {
        let policies = self.policies.load();
        let mut body = String::new();
        let (explained, status) = self.explain(request, &policies);
        body.push_str(&explained);
        body.push_str("<h2>Global session policies</h2>");
        body.push_str(
            "<p class=\"hint\">The first policy (by priority) naming one of the user's groups applies; \
then its first matching rule. A user no policy names, or whose policy has no matching rule, gets the \
built-in Default Rule (allow, one factor).</p>",
        );
        if policies.session_policies().is_empty() {
            body.push_str("<p>None configured: everyone gets the Default Rule.</p>");
        }
        for policy in policies.session_policies() {
            let rows: String = policy
                .rules()
                .iter()
                .map(|rule| {
                    format!(
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        rule.priority(),
                        escape(rule.name()),
                        escape(&conditions(rule)),
                        escape(&format!("{:?}", rule.access()).to_uppercase()),
                        if rule.require_mfa() { "yes" } else { "no" },
                        escape(&limits(&rule.session())),
                    )
                })
                .collect();
            body.push_str(&format!(
                "<h3>{priority}. {name} <small>for {groups}</small></h3>\
<table class=\"policy\"><thead><tr><th>Priority</th><th>Rule</th><th>When</th><th>Access</th><th>MFA</th>\
<th>Session</th></tr></thead><tbody>{rows}</tbody></table>",
                priority = policy.priority(),
                name = escape(policy.name()),
                groups = escape(&policy.groups().join(", ")),
            ));
        }
        body.push_str(
            "<h2>App sign-on policies</h2><table id=\"app-policies\"><thead><tr><th>App</th>\
<th>Re-authenticate</th><th>MFA</th><th>Groups allowed</th></tr></thead><tbody>",
        );
        for (app, policy) in policies.app_policies() {
            let (reauth, mfa, groups) = app_policy_text(policy);
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(app),
                escape(&reauth),
                escape(&mfa),
                escape(&groups)
            ));
        }
        let (reauth, mfa, groups) = app_policy_text(&AppAuthPolicy::default());
        body.push_str(&format!(
            "<tr><td><em>any other app</em></td><td>{}</td><td>{}</td><td>{}</td></tr></tbody></table>",
            escape(&reauth),
            escape(&mfa),
            escape(&groups)
        ));
        body.push_str("<h2>Network zones</h2><ul>");
        for zone in policies.zones() {
            let nets: Vec<String> = zone.nets().iter().map(ToString::to_string).collect();
            body.push_str(&format!(
                "<li><strong>{}</strong>: {}</li>",
                escape(zone.name()),
                escape(&nets.join(", "))
            ));
        }
        body.push_str("</ul>");
        let post_auth = policies.post_auth();
        let bound: Vec<&str> = post_auth.bind.iter().map(|a| a.as_str()).collect();
        body.push_str(&format!(
            "<h2>Post-auth session evaluation</h2><p id=\"post-auth-policy\">Mode {mode}; bound to {bound}; \
action {action}; groups {groups}; logout reaches {apps}{idp}.</p>",
            mode = post_auth.mode.as_str(),
            bound = escape(&bound.join(", ")),
            action = post_auth.action.as_str(),
            groups = escape(&list_or(post_auth.groups.listed(), "all")),
            apps = escape(&list_or(post_auth.logout_apps.listed(), "every app")),
            idp = if post_auth.logout_idp { " and the IdP session" } else { "" },
        ));
        let admin_settings = &self.settings.admin;
        let admin_bind: Vec<&str> = admin_settings.bind.iter().map(|a| a.as_str()).collect();
        body.push_str(&format!(
            "<h2>Admin console sessions</h2><p>Groups {groups}; password and authenticator code always; \
lifetime {life}, idle {idle}; bound to {bind}; protected actions re-verify {reauth}.</p>",
            groups = escape(&admin_settings.groups.join(", ")),
            life = duration(admin_settings.max_lifetime),
            idle = duration(admin_settings.max_idle),
            bind = escape(&admin_bind.join(", ")),
            reauth = if admin_settings.protected_action_reauth.is_zero() {
                "every time".to_string()
            } else {
                format!("after {}", duration(admin_settings.protected_action_reauth))
            },
        ));
        shell::page(
            self,
            admin,
            Some(Section::Policies),
            status,
            "Policies",
            &Markup(body),
        )
    }

    /// The explain form, and its answer when it was filled in.
    fn explain(&self, request: &Request<Bytes>, policies: &PolicySet) -> (String, StatusCode) {
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
        let mut errors = Vec::new();
        if login.is_some() && user.is_none() {
            errors.push(("user", "There is no user with this login or id."));
        }
        if ip_text.is_some() && ip.is_none() {
            errors.push(("ip", "This is not an IP address."));
        }
        let error_of = |field: &str| errors.iter().find(|(f, _)| *f == field).map(|(_, m)| *m);
        let input = |field: &str, label: &str, value: &Option<String>, hint: &str| {
            let (attrs, note) = match error_of(field) {
                Some(message) => (
                    format!(" aria-invalid=\"true\" aria-describedby=\"x-{field}-error\""),
                    format!(
                        "<span class=\"error\" id=\"x-{field}-error\">{}</span>",
                        escape(message)
                    ),
                ),
                None => (String::new(), String::new()),
            };
            format!(
                "<div><label for=\"x-{field}\">{label}</label><input id=\"x-{field}\" name=\"{field}\" \
value=\"{}\" placeholder=\"{}\" required{attrs}>{note}</div>",
                escape(value.as_deref().unwrap_or("")),
                escape(hint)
            )
        };
        let options: String = std::iter::once(String::new())
            .chain(apps.iter().cloned())
            .map(|name| {
                let selected = if app.as_deref() == Some(name.as_str()) {
                    " selected"
                } else {
                    ""
                };
                let label = if name.is_empty() {
                    "(IdP sign-in only)".to_string()
                } else {
                    name.clone()
                };
                format!(
                    "<option value=\"{}\"{selected}>{}</option>",
                    escape(&name),
                    escape(&label)
                )
            })
            .collect();
        let mut html = format!(
            "<section aria-labelledby=\"explain-h\" id=\"explain\"><h2 id=\"explain-h\">Explain a sign-in</h2>\
<form class=\"filters\" method=\"get\" action=\"{action}\">{user}{ip}\
<div><label for=\"x-app\">App</label><select id=\"x-app\" name=\"app\">{options}</select></div>\
<div class=\"check\"><input type=\"checkbox\" id=\"x-mfa\" name=\"mfa\" value=\"1\"{checked}><label for=\"x-mfa\">Second factor verified</label></div>\
<button type=\"submit\">Explain</button></form>",
            action = escape(&self.console_path("/policies")),
            user = input("user", "User", &login, "alice"),
            ip = input("ip", "From IP", &ip_text, "203.0.113.7"),
            checked = if mfa { " checked" } else { "" },
        );
        let status = if errors.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        if let (Some(user), Some(ip)) = (&user, ip) {
            html.push_str(&self.explanation(policies, user, ip, app.as_deref(), mfa));
        }
        html.push_str("</section>");
        (html, status)
    }

    fn explanation(
        &self,
        policies: &PolicySet,
        user: &User,
        ip: IpAddr,
        app: Option<&str>,
        mfa: bool,
    ) -> String {
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
        let items: String = steps
            .iter()
            .map(|s| format!("<li>{}</li>", escape(s)))
            .collect();
        format!("<ol id=\"explanation\">{items}</ol>")
    }
}
