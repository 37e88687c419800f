//! `/admin/users`: the directory, searchable by login, name or email and
//! filterable by status, with each account's lockout, second factor,
//! live sessions and the lifecycle buttons (through [`super::actions`]).

use askama::Template;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use time::OffsetDateTime;

use super::shell::{self, param, when, ActionButton, Buttons, Section};
use super::Admin;
use crate::directory::{User, UserStatus};
use crate::web::{respond, Idp};

/// At most this many users are listed on one page.
const MAX_LISTED: usize = 500;

fn matches(user: &User, search: Option<&str>, status: Option<&str>) -> bool {
    let found = search.is_none_or(|needle| {
        let needle = needle.to_lowercase();
        [user.login(), user.email(), &user.display_name(), user.id()]
            .iter()
            .any(|field| field.to_lowercase().contains(&needle))
    });
    found && status.is_none_or(|s| user.status().as_str().eq_ignore_ascii_case(s))
}

/// A choice of the status filter.
struct StatusOption {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

/// One account as its row shows it.
struct UserRow {
    login: String,
    name: String,
    email: String,
    id: String,
    status: &'static str,
    status_class: &'static str,
    groups: String,
    factor: &'static str,
    locked: String,
    sessions: String,
    sessions_link: String,
    actions: Vec<ActionButton>,
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    search_action: String,
    search: String,
    status_options: Vec<StatusOption>,
    shown: usize,
    total: usize,
    rows: Vec<UserRow>,
}

impl Idp {
    pub(super) async fn users_page(
        &self,
        request: &Request<Bytes>,
        admin: &Admin,
    ) -> Response<Bytes> {
        let search = param(request, "q");
        let status = param(request, "status");
        let now = OffsetDateTime::now_utc();
        let back = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        let buttons = Buttons::new(self, admin, &back);
        let locked = match self.lockout.locked(now).await {
            Ok(locked) => locked,
            Err(e) => return respond::store_unavailable(&e, "listing account lockouts"),
        };
        let directory = self.directory();
        let mut rows = Vec::new();
        for user in directory.users() {
            if rows.len() >= MAX_LISTED || !matches(user, search.as_deref(), status.as_deref()) {
                continue;
            }
            let sessions = self
                .sessions
                .sessions_of(user.id(), now)
                .await
                .map(|s| s.len().to_string())
                .unwrap_or_else(|_| "unknown".into());
            rows.push(self.user_row(&buttons, user, sessions, locked.get(user.id()).copied()));
        }
        let status_options = ["", "ACTIVE", "SUSPENDED", "DEPROVISIONED"]
            .into_iter()
            .map(|value| StatusOption {
                value,
                label: if value.is_empty() { "Any" } else { value },
                selected: match status.as_deref() {
                    Some(chosen) => chosen.eq_ignore_ascii_case(value),
                    None => value.is_empty(),
                },
            })
            .collect();
        let body = UsersPage {
            search_action: self.console_path("/users"),
            search: search.unwrap_or_default(),
            status_options,
            shown: rows.len(),
            total: directory.len(),
            rows,
        };
        shell::page(
            self,
            admin,
            Some(Section::Users),
            StatusCode::OK,
            "Users",
            &body,
        )
    }

    fn user_row(
        &self,
        buttons: &Buttons,
        user: &User,
        sessions: String,
        locked: Option<OffsetDateTime>,
    ) -> UserRow {
        let id = user.id();
        let button = |action, label| buttons.button(action, id, label);
        let mut actions = Vec::new();
        match user.status() {
            UserStatus::Active => {
                actions.push(button("user.suspend", "Suspend"));
                actions.push(button("user.deactivate", "Deactivate"));
                if locked.is_some() {
                    actions.push(button("user.unlock", "Unlock"));
                }
            }
            UserStatus::Suspended => {
                actions.push(button("user.unsuspend", "Unsuspend"));
                actions.push(button("user.deactivate", "Deactivate"));
            }
            UserStatus::Deprovisioned => {}
        }
        if user.has_totp() && user.status() != UserStatus::Deprovisioned {
            actions.push(button("user.reset_factors", "Reset MFA"));
        }
        if sessions != "0" {
            actions.push(button("user.sessions.revoke", "Revoke sessions"));
        }
        if self.universal_logout.get().is_some() && user.status() != UserStatus::Deprovisioned {
            actions.push(button("user.universal_logout", "Universal Logout"));
        }
        UserRow {
            login: user.login().to_string(),
            name: user.display_name(),
            email: user.email().to_string(),
            id: id.to_string(),
            status: user.status().as_str(),
            status_class: match user.status() {
                UserStatus::Active => "ok",
                UserStatus::Suspended => "warn",
                UserStatus::Deprovisioned => "bad",
            },
            groups: user.groups().join(", "),
            factor: if user.has_totp() { "TOTP" } else { "none" },
            locked: locked
                .map(|until| format!("until {}", when(until)))
                .unwrap_or_else(|| "no".into()),
            sessions_link: format!(
                "{}?user={}",
                self.console_path("/sessions"),
                form_urlencoded::byte_serialize(user.login().as_bytes()).collect::<String>()
            ),
            sessions,
            actions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::shell::PostTo;

    fn row(login: &str, actions: Vec<ActionButton>) -> UserRow {
        UserRow {
            login: login.to_string(),
            name: "Mallory".into(),
            email: "m@example.com".into(),
            id: "00u9m".into(),
            status: "ACTIVE",
            status_class: "ok",
            groups: "staff".into(),
            factor: "none",
            locked: "no".into(),
            sessions: "1".into(),
            sessions_link: "/admin/sessions?user=m".into(),
            actions,
        }
    }

    #[test]
    fn a_row_escapes_what_users_typed_and_every_button_posts_the_csrf_field() {
        let post = PostTo {
            action: "/admin/action".into(),
            csrf: "c5rf".into(),
        };
        let button = |action, label| ActionButton {
            post: post.clone(),
            action,
            target: "00u9m".into(),
            back: "/admin/users?q=a&b".into(),
            label,
        };
        let page = UsersPage {
            search_action: "/admin/users".into(),
            search: "\"><b>".into(),
            status_options: Vec::new(),
            shown: 1,
            total: 1,
            rows: vec![row(
                "<i>m</i>",
                vec![
                    button("user.suspend", "Suspend"),
                    button("user.deactivate", "Deactivate"),
                ],
            )],
        };
        let html = page.render().expect("renders");
        assert!(!html.contains("<i>") && !html.contains("\"><b>"), "{html}");
        assert!(
            html.contains("<p id=\"user-count\">1 of 1 user(s)</p>"),
            "{html}"
        );
        assert!(html.contains("data-status=\"ACTIVE\""), "{html}");
        assert_eq!(
            html.matches("<input type=\"hidden\" name=\"csrf\" value=\"c5rf\">")
                .count(),
            2,
            "{html}"
        );
        assert!(
            html.contains(
                "<button type=\"submit\" name=\"go\" value=\"user.suspend\" data-target=\"00u9m\">Suspend</button></form> <form"
            ),
            "{html}"
        );
        assert!(html.contains("value=\"/admin/users?q=a&#38;b\""), "{html}");
    }
}
