//! `/admin`: the figures an operator looks at first — live IdP sessions,
//! gateway sessions per app, sign-ins and failures and lockouts over the
//! last 24 hours, and the post-auth violations widget with its status
//! badge.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use time::OffsetDateTime;

use super::shell::{self, when, Markup, Section};
use super::Admin;
use crate::post_auth::{Action, Mode};
use crate::session::SessionStatus;
use crate::syslog::{OutcomeResult, Query, MAX_LIMIT};
use crate::web::{respond::escape, Idp};

/// The dashboard's window.
const WINDOW: time::Duration = time::Duration::hours(24);
/// Events walked for the sign-in figures at most (20 pages of the log's maximum):
/// more is shown as "at least".
const MAX_COUNTED: usize = 20 * MAX_LIMIT;
/// Latest violations in the widget.
const LATEST_VIOLATIONS: usize = 5;

/// The 24-hour sign-in figures, from one walk over the System Log;
/// `capped` when the walk stopped at [`MAX_COUNTED`] events.
#[derive(Default)]
struct SignInFigures {
    sign_ins: usize,
    failures: usize,
    lockouts: usize,
    capped: bool,
}

impl SignInFigures {
    fn show(&self, n: usize) -> String {
        if self.capped {
            format!("≥{n}")
        } else {
            n.to_string()
        }
    }
}

/// The post-auth widget's badge: what evaluation does now.
pub(super) fn post_auth_badge(mode: Mode, action: Action) -> (&'static str, &'static str) {
    match (mode, action) {
        (Mode::Off, _) => ("off", "post-auth evaluation off"),
        (Mode::Monitoring, _) => ("warn", "Monitoring"),
        (Mode::Enforced, Action::None) => ("ok", "Enforced"),
        (Mode::Enforced, Action::Logout | Action::Workflow) => ("ok", "Enforced with action"),
    }
}

impl Idp {
    /// Sign-ins, failed sign-ins and lockouts since `since`, paging
    /// through the log once.
    fn sign_in_figures(&self, since: OffsetDateTime) -> SignInFigures {
        let since = since
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let limit = MAX_LIMIT.to_string();
        let mut figures = SignInFigures::default();
        let Ok(mut query) = Query::from_params([
            (
                "filter",
                "eventType eq \"user.session.start\" or eventType eq \"user.account.lock\"",
            ),
            ("since", since.as_str()),
            ("limit", limit.as_str()),
        ]) else {
            return figures;
        };
        let mut walked = 0;
        loop {
            let page = self.log.query(&query);
            walked += page.events.len();
            for event in &page.events {
                match (event.event_type.as_str(), event.outcome.result) {
                    ("user.account.lock", _) => figures.lockouts += 1,
                    (_, OutcomeResult::Success) => figures.sign_ins += 1,
                    _ => figures.failures += 1,
                }
            }
            match page.next {
                Some(cursor) if walked < MAX_COUNTED => query.after = Some(cursor),
                Some(_) => {
                    figures.capped = true;
                    return figures;
                }
                None => return figures,
            }
        }
    }

    pub(super) async fn dashboard_page(
        &self,
        _request: &Request<Bytes>,
        admin: &Admin,
    ) -> Response<Bytes> {
        let now = OffsetDateTime::now_utc();
        let since = now - WINDOW;
        let (active, pending) = match self.all_sessions(now).await {
            Ok(sessions) => {
                let active = sessions
                    .iter()
                    .filter(|s| s.body.status == SessionStatus::Active)
                    .count();
                (active.to_string(), (sessions.len() - active).to_string())
            }
            Err(e) => {
                tracing::warn!(error = %e, "listing IdP sessions for the dashboard failed");
                ("unknown".into(), "unknown".into())
            }
        };
        let figures = self.sign_in_figures(since);
        let directory = self.directory();
        let locked_now = directory
            .users()
            .filter(|u| self.lockout.locked_until(u.id(), now).is_some())
            .count();
        let gateway = match self.gateway_sessions().await {
            Some(counts) if counts.is_empty() => "<p>No gateway sessions.</p>".to_string(),
            Some(counts) => {
                let rows: String = counts
                    .iter()
                    .map(|(app, n)| {
                        format!(
                            "<tr data-app=\"{0}\"><td>{0}</td><td class=\"num\">{n}</td></tr>",
                            escape(app)
                        )
                    })
                    .collect();
                format!(
                    "<table id=\"gateway-sessions\"><thead><tr><th>App</th><th>Sessions</th></tr></thead><tbody>{rows}</tbody></table>"
                )
            }
            None => "<p>Gateway sessions are not available.</p>".to_string(),
        };
        let tiles = format!(
            "<ul class=\"tiles\">\
<li><span class=\"figure\" id=\"active-sessions\">{active}</span> active IdP sessions</li>\
<li><span class=\"figure\" id=\"pending-sessions\">{pending}</span> waiting for a second factor</li>\
<li><span class=\"figure\" id=\"sign-ins\">{sign_ins}</span> sign-ins (24 h)</li>\
<li><span class=\"figure\" id=\"sign-in-failures\">{failures}</span> failed sign-ins (24 h)</li>\
<li><span class=\"figure\" id=\"lockouts\">{lockouts}</span> lockouts (24 h), <span id=\"locked-now\">{locked_now}</span> locked now</li>\
</ul>",
            sign_ins = figures.show(figures.sign_ins),
            failures = figures.show(figures.failures),
            lockouts = figures.show(figures.lockouts),
        );
        let body = format!(
            "{tiles}<section aria-labelledby=\"gw-h\"><h2 id=\"gw-h\">Gateway sessions per app</h2>{gateway}</section>{widget}",
            widget = self.post_auth_widget(since, now),
        );
        shell::page(
            self,
            admin,
            Some(Section::Dashboard),
            StatusCode::OK,
            "Dashboard",
            &Markup(body),
        )
    }

    /// The post-auth violations widget: the badge, 24-hour counts and the
    /// latest violations, from the same report as the API.
    fn post_auth_widget(&self, since: OffsetDateTime, now: OffsetDateTime) -> String {
        let settings = self.post_auth.settings();
        let (class, badge) = post_auth_badge(settings.policy.mode, settings.policy.action);
        let head = format!(
            "<h2 id=\"pa-h\">Post-auth session violations <span class=\"badge {class}\" id=\"post-auth-status\">{badge}</span></h2>"
        );
        if !settings.policy.is_on() {
            return format!(
                "<section aria-labelledby=\"pa-h\" id=\"post-auth\">{head}<p>Sessions are not \
re-evaluated when their IP, ASN or device changes. Set <code>[post_auth] mode</code> in the \
policy file to monitor or enforce it.</p></section>"
            );
        }
        let bound: Vec<&str> = settings.policy.bind.iter().map(|a| a.as_str()).collect();
        let summary = self
            .post_auth
            .report
            .summarise(since, now, LATEST_VIOLATIONS, |summary| {
                let by = |map: &std::collections::BTreeMap<&'static str, usize>| {
                    if map.is_empty() {
                        "none".to_string()
                    } else {
                        map.iter()
                            .map(|(k, v)| format!("{k} {v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                };
                let latest: String = summary
                    .latest
                    .iter()
                    .map(|l| {
                        let attributes: Vec<&str> =
                            l.violation.attributes.iter().map(|a| a.as_str()).collect();
                        format!(
                            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            escape(&when(l.violation.published)),
                            escape(&l.violation.user.login),
                            escape(l.violation.session.app.as_deref().unwrap_or("idp")),
                            escape(&attributes.join(", ")),
                            l.outcome,
                        )
                    })
                    .collect();
                format!(
                    "<p><span class=\"figure\" id=\"violations\">{total}</span> violations in 24 h · by attribute: {attrs} · by outcome: {outcomes}</p>\
<table id=\"latest-violations\"><thead><tr><th>Time</th><th>User</th><th>App</th><th>Changed</th><th>Outcome</th></tr></thead><tbody>{latest}</tbody></table>",
                    total = summary.total,
                    attrs = escape(&by(&summary.by_attribute)),
                    outcomes = escape(&by(&summary.by_outcome)),
                )
            });
        format!(
            "<section aria-labelledby=\"pa-h\" id=\"post-auth\">{head}<p>Bound to: {bound}; action: {action}.</p>{summary}\
<p>The full report: <code>GET {api}</code></p></section>",
            bound = escape(&bound.join(", ")),
            action = settings.policy.action.as_str(),
            api = escape(&self.path("/api/v1/post-auth/report")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_badge_names_what_evaluation_does() {
        assert_eq!(
            post_auth_badge(Mode::Off, Action::Logout).1,
            "post-auth evaluation off"
        );
        assert_eq!(
            post_auth_badge(Mode::Monitoring, Action::None).1,
            "Monitoring"
        );
        assert_eq!(post_auth_badge(Mode::Enforced, Action::None).1, "Enforced");
        assert_eq!(
            post_auth_badge(Mode::Enforced, Action::Workflow).1,
            "Enforced with action"
        );
    }
}
