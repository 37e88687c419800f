//! `/admin`: the figures an operator looks at first — live IdP sessions,
//! gateway sessions per app, sign-ins and failures and lockouts over the
//! last 24 hours, and the post-auth violations widget with its status
//! badge.

use std::collections::BTreeMap;

use askama::Template;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use time::OffsetDateTime;

use super::shell::{self, when, Section};
use super::Admin;
use crate::post_auth::{Action, Mode};
use crate::session::SessionStatus;
use crate::syslog::{OutcomeResult, Query, MAX_LIMIT};
use crate::web::Idp;

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

/// One of the latest post-auth violations.
struct ViolationRow {
    time: String,
    login: String,
    app: String,
    changed: String,
    outcome: &'static str,
}

/// The widget's figures while post-auth evaluation is on.
struct Evaluation {
    bound: String,
    action: &'static str,
    total: usize,
    by_attribute: String,
    by_outcome: String,
    latest: Vec<ViolationRow>,
    report_api: String,
}

/// The post-auth violations widget.
struct PostAuthWidget {
    class: &'static str,
    badge: &'static str,
    /// `None` while evaluation is off.
    evaluation: Option<Evaluation>,
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage {
    active: String,
    pending: String,
    sign_ins: String,
    failures: String,
    lockouts: String,
    locked_now: String,
    /// Per app; `None` when they could not be counted or there is no
    /// gateway.
    gateway_sessions: Option<BTreeMap<String, usize>>,
    post_auth: PostAuthWidget,
}

/// `app 2, idp 1`, or `none`.
fn counts_text(counts: &BTreeMap<&'static str, usize>) -> String {
    if counts.is_empty() {
        "none".to_string()
    } else {
        counts
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
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
        let locked_now = match self.lockout.locked(now).await {
            Ok(locked) => locked
                .keys()
                .filter(|id| directory.by_id(id).is_some())
                .count()
                .to_string(),
            Err(e) => {
                tracing::warn!(error = %e, "listing account lockouts for the dashboard failed");
                "unknown".into()
            }
        };
        let body = DashboardPage {
            active,
            pending,
            sign_ins: figures.show(figures.sign_ins),
            failures: figures.show(figures.failures),
            lockouts: figures.show(figures.lockouts),
            locked_now,
            gateway_sessions: self.gateway_sessions().await,
            post_auth: self.post_auth_widget(since, now),
        };
        shell::page(
            self,
            admin,
            Some(Section::Dashboard),
            StatusCode::OK,
            "Dashboard",
            &body,
        )
    }

    /// The post-auth violations widget: the badge, 24-hour counts and the
    /// latest violations, from the same report as the API.
    fn post_auth_widget(&self, since: OffsetDateTime, now: OffsetDateTime) -> PostAuthWidget {
        let settings = self.post_auth.settings();
        let (class, badge) = post_auth_badge(settings.policy.mode, settings.policy.action);
        if !settings.policy.is_on() {
            return PostAuthWidget {
                class,
                badge,
                evaluation: None,
            };
        }
        let bound: Vec<&str> = settings.policy.bind.iter().map(|a| a.as_str()).collect();
        let evaluation =
            self.post_auth
                .report
                .summarise(since, now, LATEST_VIOLATIONS, |summary| Evaluation {
                    bound: bound.join(", "),
                    action: settings.policy.action.as_str(),
                    total: summary.total,
                    by_attribute: counts_text(&summary.by_attribute),
                    by_outcome: counts_text(&summary.by_outcome),
                    latest: summary
                        .latest
                        .iter()
                        .map(|l| ViolationRow {
                            time: when(l.violation.published),
                            login: l.violation.user.login.clone(),
                            app: l
                                .violation
                                .session
                                .app
                                .clone()
                                .unwrap_or_else(|| "idp".into()),
                            changed: l
                                .violation
                                .attributes
                                .iter()
                                .map(|a| a.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                            outcome: l.outcome,
                        })
                        .collect(),
                    report_api: self.path("/api/v1/post-auth/report"),
                });
        PostAuthWidget {
            class,
            badge,
            evaluation: Some(evaluation),
        }
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
