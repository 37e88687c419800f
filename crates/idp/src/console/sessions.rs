//! `/admin/sessions`: every live IdP session, filterable by user, app,
//! IP, ASN, zone, device and age; `/admin/sessions/{id}`: one session and
//! its System Log timeline. Revoking goes through [`super::actions`].
//!
//! Sessions are found per user of the directory (the store's user index),
//! so the list is exactly what the Sessions API would return for each
//! user. This process is the only node a single-mode gateway has, so
//! there is no node column.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use portcullis_context::Attribute;
use time::OffsetDateTime;

use super::shell::{self, action_button, param, when, Markup, Notice, Section};
use super::Admin;
use crate::session::{SessionId, SessionRecord, SessionStatus, SessionsApiJson};
use crate::syslog::Query;
use crate::web::api::valid_id;
use crate::web::{respond, respond::escape, Idp};

/// At most this many sessions are listed on one page.
const MAX_LISTED: usize = 500;

/// The list page's filters; each matches when absent.
#[derive(Debug, Default)]
struct Filters {
    user: Option<String>,
    app: Option<String>,
    ip: Option<String>,
    asn: Option<String>,
    zone: Option<String>,
    device: Option<String>,
    /// Only sessions at least this many minutes old.
    min_age_minutes: Option<i64>,
}

impl Filters {
    fn from_request(request: &Request<Bytes>) -> Filters {
        Filters {
            user: param(request, "user"),
            app: param(request, "app"),
            ip: param(request, "ip"),
            asn: param(request, "asn"),
            zone: param(request, "zone"),
            device: param(request, "device"),
            min_age_minutes: param(request, "min_age").and_then(|v| v.parse().ok()),
        }
    }

    fn matches(&self, record: &SessionRecord, apps: &[String], now: OffsetDateTime) -> bool {
        let contains = |haystack: &str, needle: &Option<String>| {
            needle
                .as_deref()
                .is_none_or(|n| haystack.to_lowercase().contains(&n.to_lowercase()))
        };
        let context = |attribute: Attribute| shown(record, attribute).unwrap_or_default();
        let ip = record
            .body
            .client_ip
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        contains(&record.body.login, &self.user)
            && self
                .app
                .as_deref()
                .is_none_or(|app| apps.iter().any(|a| a.eq_ignore_ascii_case(app)))
            && self.ip.as_deref().is_none_or(|p| ip.starts_with(p))
            && contains(&context(Attribute::Asn), &self.asn)
            && contains(&context(Attribute::Zone), &self.zone)
            && contains(&context(Attribute::Device), &self.device)
            && self
                .min_age_minutes
                .is_none_or(|m| (now - record.created_at).whole_minutes() >= m)
    }
}

/// One attribute of the session's recorded context, as the System Log
/// writes it; `None` for a session without a context.
fn shown(record: &SessionRecord, attribute: Attribute) -> Option<String> {
    record.body.context.as_ref().map(|c| attribute.show(c))
}

impl Idp {
    /// Every live IdP session, user by user.
    pub(super) async fn all_sessions(
        &self,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionRecord>, crate::session::StoreError> {
        let directory = self.directory();
        let mut all = Vec::new();
        for user in directory.users() {
            all.extend(self.sessions.sessions_of(user.id(), now).await?);
        }
        Ok(all)
    }

    pub(super) async fn sessions_page(
        &self,
        request: &Request<Bytes>,
        admin: &Admin,
    ) -> Response<Bytes> {
        let now = OffsetDateTime::now_utc();
        let filters = Filters::from_request(request);
        let sessions = match self.all_sessions(now).await {
            Ok(sessions) => sessions,
            Err(e) => return respond::store_unavailable(&e, "listing IdP sessions"),
        };
        let back = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        let mut rows = String::new();
        let mut shown = 0usize;
        for record in &sessions {
            let apps = self.sso_participants(record.id.as_str());
            if !filters.matches(record, &apps, now) || shown >= MAX_LISTED {
                continue;
            }
            shown += 1;
            rows.push_str(&self.session_row(admin, record, &apps, &back));
        }
        let field = |name: &str, label: &str, value: &Option<String>| {
            format!(
                "<div><label for=\"f-{name}\">{label}</label><input id=\"f-{name}\" name=\"{name}\" value=\"{}\"></div>",
                escape(value.as_deref().unwrap_or(""))
            )
        };
        let age = filters.min_age_minutes.map(|m| m.to_string());
        let body = format!(
            "<form class=\"filters\" method=\"get\" action=\"{action}\">{}{}{}{}{}{}{}\
<button type=\"submit\">Filter</button></form>\
<p id=\"session-count\">{shown} of {total} session(s)</p>\
<table id=\"sessions\"><thead><tr><th>Session</th><th>User</th><th>Status</th><th>Apps</th>\
<th>IP</th><th>ASN</th><th>Zone</th><th>Device</th><th>Started</th><th>Last activity</th>\
<th>Expires</th><th>Actions</th></tr></thead><tbody>{rows}</tbody></table>",
            field("user", "User", &filters.user),
            field("app", "App", &filters.app),
            field("ip", "IP", &filters.ip),
            field("asn", "ASN", &filters.asn),
            field("zone", "Zone", &filters.zone),
            field("device", "Device", &filters.device),
            field("min_age", "Older than (min)", &age),
            action = escape(&self.console_path("/sessions")),
            total = sessions.len(),
        );
        shell::page(
            self,
            admin,
            Some(Section::Sessions),
            StatusCode::OK,
            "Sessions",
            &Markup(body),
        )
    }

    fn session_row(
        &self,
        admin: &Admin,
        record: &SessionRecord,
        apps: &[String],
        back: &str,
    ) -> String {
        let context =
            |attribute: Attribute| shown(record, attribute).unwrap_or_else(|| "unknown".into());
        let id = record.id.as_str();
        let status = match record.body.status {
            SessionStatus::Active => "ACTIVE",
            SessionStatus::MfaRequired => "MFA_REQUIRED",
        };
        format!(
            "<tr data-session=\"{id}\" data-user=\"{login}\"><td><a href=\"{detail}\">{id}</a></td><td>{login}</td><td>{status}</td><td>{apps}</td>\
<td>{ip}</td><td>{asn}</td><td>{zone}</td><td>{device}</td><td>{created}</td><td>{last}</td><td>{expires}</td><td>{revoke} {all}</td></tr>",
            id = escape(id),
            detail = escape(&self.console_path(&format!("/sessions/{id}"))),
            login = escape(&record.body.login),
            apps = escape(&apps.join(", ")),
            ip = escape(&context(Attribute::Ip)),
            asn = escape(&context(Attribute::Asn)),
            zone = escape(&context(Attribute::Zone)),
            device = escape(&context(Attribute::Device)),
            created = escape(&when(record.created_at)),
            last = escape(&when(record.last_activity)),
            expires = escape(&record.expires_at_rfc3339()),
            revoke = action_button(self, admin, "session.revoke", id, back, "Revoke"),
            all = action_button(
                self,
                admin,
                "user.sessions.revoke",
                &record.body.user_id,
                back,
                "Revoke all of user's"
            ),
        )
    }

    pub(super) async fn session_detail_page(
        &self,
        _request: &Request<Bytes>,
        admin: &Admin,
        id: &str,
    ) -> Response<Bytes> {
        let not_found = || {
            shell::page(
                self,
                admin,
                Some(Section::Sessions),
                StatusCode::NOT_FOUND,
                "Session not found",
                &Notice::new("There is no live session with this id."),
            )
        };
        if !valid_id(id) {
            return not_found();
        }
        let now = OffsetDateTime::now_utc();
        let record = match self.sessions.get_by_id(&SessionId::from(id), now).await {
            Ok(record) => record,
            Err(crate::session::SessionError::Store(e)) => {
                return respond::store_unavailable(&e, "reading an IdP session")
            }
            Err(_) => return not_found(),
        };
        let json = serde_json::to_string_pretty(&record.to_api_json()).unwrap_or_default();
        let back = self.console_path("/sessions");
        let user_id = record.body.user_id.clone();
        // The id passed `valid_id`: nothing in it can break the filter.
        let filter =
            format!("authenticationContext.externalSessionId eq \"{id}\" or target.id eq \"{id}\"");
        let timeline = match Query::from_params([("filter", filter.as_str()), ("limit", "200")]) {
            Ok(query) => super::logs::events_table(&self.log.query(&query).events),
            Err(_) => String::new(),
        };
        let body = format!(
            "<p>User <strong>{login}</strong>; apps: {apps}</p><pre id=\"session-json\">{json}</pre>\
<p>{revoke} {all} {ul}</p><h2>Timeline</h2>{timeline}",
            login = escape(&record.body.login),
            apps = escape(&self.sso_participants(id).join(", ")),
            json = escape(&json),
            revoke = action_button(self, admin, "session.revoke", id, &back, "Revoke this session"),
            all = action_button(self, admin, "user.sessions.revoke", &user_id, &back, "Revoke all of user's sessions"),
            ul = action_button(self, admin, "user.universal_logout", &user_id, &back, "Universal Logout"),
        );
        shell::page(
            self,
            admin,
            Some(Section::Sessions),
            StatusCode::OK,
            &format!("Session {id}"),
            &Markup(body),
        )
    }
}
