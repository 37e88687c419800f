//! `/admin/users`: the directory, searchable by login, name or email and
//! filterable by status, with each account's lockout, second factor,
//! live sessions and the lifecycle buttons (through [`super::actions`]).

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use time::OffsetDateTime;

use super::shell::{self, action_button, param, when, Markup, Section};
use super::Admin;
use crate::directory::{User, UserStatus};
use crate::web::{respond::escape, Idp};

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
        let directory = self.directory();
        let mut rows = String::new();
        let mut shown = 0usize;
        for user in directory.users() {
            if shown >= MAX_LISTED || !matches(user, search.as_deref(), status.as_deref()) {
                continue;
            }
            shown += 1;
            let sessions = self
                .sessions
                .sessions_of(user.id(), now)
                .await
                .map(|s| s.len().to_string())
                .unwrap_or_else(|_| "unknown".into());
            rows.push_str(&self.user_row(admin, user, &sessions, now, &back));
        }
        let options: String = ["", "ACTIVE", "SUSPENDED", "DEPROVISIONED"]
            .iter()
            .map(|s| {
                let selected = if status.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(s))
                    || (s.is_empty() && status.is_none())
                {
                    " selected"
                } else {
                    ""
                };
                let label = if s.is_empty() { "Any" } else { s };
                format!("<option value=\"{s}\"{selected}>{label}</option>")
            })
            .collect();
        let body = format!(
            "<form class=\"filters\" method=\"get\" action=\"{action}\">\
<div class=\"wide\"><label for=\"f-q\">Search</label><input id=\"f-q\" name=\"q\" value=\"{q}\" placeholder=\"login, name or email\"></div>\
<div><label for=\"f-status\">Status</label><select id=\"f-status\" name=\"status\">{options}</select></div>\
<button type=\"submit\">Search</button></form>\
<p id=\"user-count\">{shown} of {total} user(s)</p>\
<table id=\"users\"><thead><tr><th>User</th><th>Status</th><th>Groups</th><th>Second factor</th>\
<th>Locked</th><th>Sessions</th><th>Actions</th></tr></thead><tbody>{rows}</tbody></table>",
            action = escape(&self.console_path("/users")),
            q = escape(search.as_deref().unwrap_or("")),
            total = directory.len(),
        );
        shell::page(
            self,
            admin,
            Some(Section::Users),
            StatusCode::OK,
            "Users",
            &Markup(body),
        )
    }

    fn user_row(
        &self,
        admin: &Admin,
        user: &User,
        sessions: &str,
        now: OffsetDateTime,
        back: &str,
    ) -> String {
        let id = user.id();
        let locked = self.lockout.locked_until(id, now);
        let button =
            |action: &str, label: &str| action_button(self, admin, action, id, back, label);
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
        format!(
            "<tr data-user=\"{login}\" data-status=\"{status}\"><td><strong>{login}</strong><br>{name} · {email}<br><small>{id}</small></td>\
<td><span class=\"badge {class}\">{status}</span></td><td>{groups}</td><td>{factor}</td><td>{locked}</td>\
<td class=\"num\"><a href=\"{sessions_link}\">{sessions}</a></td><td>{actions}</td></tr>",
            login = escape(user.login()),
            name = escape(&user.display_name()),
            email = escape(user.email()),
            id = escape(id),
            status = user.status().as_str(),
            class = match user.status() {
                UserStatus::Active => "ok",
                UserStatus::Suspended => "warn",
                UserStatus::Deprovisioned => "bad",
            },
            groups = escape(&user.groups().join(", ")),
            factor = if user.has_totp() { "TOTP" } else { "none" },
            locked = locked
                .map(|until| format!("until {}", escape(&when(until))))
                .unwrap_or_else(|| "no".into()),
            sessions_link = escape(&format!(
                "{}?user={}",
                self.console_path("/sessions"),
                form_urlencoded::byte_serialize(user.login().as_bytes()).collect::<String>()
            )),
            actions = actions.join(" "),
        )
    }
}
