//! `/admin/sessions`: every live IdP session, filterable by user, app,
//! IP, ASN, zone, device, node and age; `/admin/sessions/{id}`: one session and
//! its System Log timeline. Revoking goes through [`super::actions`].
//!
//! Sessions are found per user of the directory (the store's user index),
//! so the list is exactly what the Sessions API would return for each
//! user. Each shows the node it started on.

use askama::Template;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use portcullis_context::Attribute;
use time::OffsetDateTime;

use super::logs::{event_rows, EventRow};
use super::shell::{self, param, when, ActionButton, Buttons, Notice, Section};
use super::Admin;
use crate::session::{SessionId, SessionRecord, SessionStatus, SessionsApiJson};
use crate::syslog::Query;
use crate::web::api::valid_id;
use crate::web::{respond, Idp};

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
    node: Option<String>,
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
            node: param(request, "node"),
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
                .node
                .as_deref()
                .is_none_or(|node| record.body.node.eq_ignore_ascii_case(node))
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

/// A field of the list page's filter form.
struct FilterField {
    name: &'static str,
    label: &'static str,
    value: String,
}

/// One session as its row shows it.
struct SessionRow {
    id: String,
    detail: String,
    login: String,
    status: &'static str,
    apps: String,
    ip: String,
    asn: String,
    zone: String,
    device: String,
    node: String,
    created: String,
    last_activity: String,
    expires: String,
    actions: Vec<ActionButton>,
}

#[derive(Template)]
#[template(path = "console/sessions.html")]
struct SessionsPage {
    filter_action: String,
    filters: Vec<FilterField>,
    shown: usize,
    total: usize,
    rows: Vec<SessionRow>,
}

#[derive(Template)]
#[template(path = "console/session.html")]
struct SessionPage {
    login: String,
    apps: String,
    json: String,
    actions: Vec<ActionButton>,
    /// The session's System Log events; `None` when they could not be
    /// asked for.
    timeline: Option<Vec<EventRow>>,
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
        let buttons = Buttons::new(self, admin, &back);
        let mut rows = Vec::new();
        for record in &sessions {
            let apps = self.sso_participants(record.id.as_str());
            if !filters.matches(record, &apps, now) || rows.len() >= MAX_LISTED {
                continue;
            }
            rows.push(self.session_row(&buttons, record, &apps));
        }
        let filter = |name, label, value: &Option<String>| FilterField {
            name,
            label,
            value: value.clone().unwrap_or_default(),
        };
        let age = filters.min_age_minutes.map(|m| m.to_string());
        let body = SessionsPage {
            filter_action: self.console_path("/sessions"),
            filters: vec![
                filter("user", "User", &filters.user),
                filter("app", "App", &filters.app),
                filter("ip", "IP", &filters.ip),
                filter("asn", "ASN", &filters.asn),
                filter("zone", "Zone", &filters.zone),
                filter("device", "Device", &filters.device),
                filter("node", "Node", &filters.node),
                filter("min_age", "Older than (min)", &age),
            ],
            shown: rows.len(),
            total: sessions.len(),
            rows,
        };
        shell::page(
            self,
            admin,
            Some(Section::Sessions),
            StatusCode::OK,
            "Sessions",
            &body,
        )
    }

    fn session_row(
        &self,
        buttons: &Buttons,
        record: &SessionRecord,
        apps: &[String],
    ) -> SessionRow {
        let context =
            |attribute: Attribute| shown(record, attribute).unwrap_or_else(|| "unknown".into());
        let id = record.id.as_str();
        SessionRow {
            id: id.to_string(),
            detail: self.console_path(&format!("/sessions/{id}")),
            login: record.body.login.clone(),
            status: match record.body.status {
                SessionStatus::Active => "ACTIVE",
                SessionStatus::MfaRequired => "MFA_REQUIRED",
            },
            apps: apps.join(", "),
            ip: context(Attribute::Ip),
            asn: context(Attribute::Asn),
            zone: context(Attribute::Zone),
            device: context(Attribute::Device),
            node: record.body.node.clone(),
            created: when(record.created_at),
            last_activity: when(record.last_activity),
            expires: record.expires_at_rfc3339(),
            actions: vec![
                buttons.button("session.revoke", id, "Revoke"),
                buttons.button(
                    "user.sessions.revoke",
                    &record.body.user_id,
                    "Revoke all of user's",
                ),
            ],
        }
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
        let timeline = Query::from_params([("filter", filter.as_str()), ("limit", "200")])
            .ok()
            .map(|query| event_rows(&self.log.query(&query).events));
        let buttons = Buttons::new(self, admin, &back);
        let body = SessionPage {
            login: record.body.login.clone(),
            apps: self.sso_participants(id).join(", "),
            json,
            actions: vec![
                buttons.button("session.revoke", id, "Revoke this session"),
                buttons.button(
                    "user.sessions.revoke",
                    &user_id,
                    "Revoke all of user's sessions",
                ),
                buttons.button("user.universal_logout", &user_id, "Universal Logout"),
            ],
            timeline,
        };
        shell::page(
            self,
            admin,
            Some(Section::Sessions),
            StatusCode::OK,
            &format!("Session {id}"),
            &body,
        )
    }
}
