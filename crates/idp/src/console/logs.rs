//! `/admin/logs`: the System Log with the API's filter language
//! (`eventType eq "user.session.start" and outcome.result eq "FAILURE"`),
//! a time range, paging by cursor, and the same page as JSON
//! (`format=json`, a download).

use askama::Template;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};

use super::shell::{self, when, Section};
use super::Admin;
use crate::syslog::{Event, Query};
use crate::web::{query_pairs, respond, Idp};

/// Events on one page unless `limit` says otherwise.
const PAGE_SIZE: &str = "50";

/// One System Log event as a row of `console/events.html` shows it.
pub(super) struct EventRow {
    pub(super) time: String,
    pub(super) kind: String,
    pub(super) message: String,
    pub(super) severity: &'static str,
    pub(super) outcome: String,
    pub(super) actor: String,
    pub(super) targets: String,
    pub(super) ip: String,
}

/// The events as rows, newest first as given.
pub(super) fn event_rows(events: &[Event]) -> Vec<EventRow> {
    events
        .iter()
        .map(|event| {
            let targets: Vec<String> = event
                .target
                .iter()
                .map(|t| {
                    let name = t.alternate_id.as_deref().unwrap_or(&t.id);
                    format!("{} ({})", name, t.kind)
                })
                .collect();
            EventRow {
                time: when(event.published),
                kind: event.event_type.clone(),
                message: event.display_message.clone(),
                severity: event.severity.as_str(),
                outcome: match &event.outcome.reason {
                    Some(reason) => format!("{} · {}", event.outcome.result.as_str(), reason),
                    None => event.outcome.result.as_str().to_string(),
                },
                actor: event
                    .actor
                    .alternate_id
                    .clone()
                    .unwrap_or_else(|| event.actor.id.clone()),
                targets: targets.join(", "),
                ip: event.client.ip_address.clone().unwrap_or_default(),
            }
        })
        .collect()
}

/// A field of the query form, with what was asked.
struct QueryField {
    value: String,
    /// The query error is about this field.
    invalid: bool,
}

#[derive(Template)]
#[template(path = "console/logs.html")]
struct LogsPage {
    action: String,
    filter: QueryField,
    since: QueryField,
    until: QueryField,
    limit: QueryField,
    page_size: &'static str,
    error: Option<String>,
    export_query: String,
    /// The page of events; `None` when the query was not understood.
    events: Option<Vec<EventRow>>,
    next_query: Option<String>,
}

impl Idp {
    pub(super) fn logs_page(&self, request: &Request<Bytes>, admin: &Admin) -> Response<Bytes> {
        let mut params = query_pairs(request);
        let export = params.iter().any(|(k, v)| k == "format" && v == "json");
        params.retain(|(k, v)| k != "format" && !v.trim().is_empty());
        if !params.iter().any(|(k, _)| k == "limit") {
            params.push(("limit".into(), PAGE_SIZE.into()));
        }
        let value = |name: &str| {
            params
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or("")
        };
        let query = Query::from_params(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let (page, error) = match &query {
            Ok(query) => (Some(self.log.query(query)), None),
            Err(e) => (None, Some((e.parameter(), e.to_string()))),
        };
        if export {
            return match page {
                Some(page) => json_download(&page.events),
                None => respond::message_page(
                    StatusCode::BAD_REQUEST,
                    "Query not understood",
                    "The System Log query is not valid; fix it on the System Log page.",
                ),
            };
        }
        let field = |name: &str| QueryField {
            value: value(name).to_string(),
            invalid: error.as_ref().is_some_and(|(p, _)| *p == name),
        };
        let next_query = page.as_ref().and_then(|page| page.next).map(|cursor| {
            let mut link = form_urlencoded::Serializer::new(String::new());
            for (k, v) in params.iter().filter(|(k, _)| k != "after") {
                link.append_pair(k, v);
            }
            link.append_pair("after", &cursor.to_string());
            link.finish()
        });
        let mut export_link = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &params {
            export_link.append_pair(k, v);
        }
        export_link.append_pair("format", "json");
        let body = LogsPage {
            action: self.console_path("/logs"),
            filter: field("filter"),
            since: field("since"),
            until: field("until"),
            limit: field("limit"),
            page_size: PAGE_SIZE,
            error: error.as_ref().map(|(_, message)| message.clone()),
            export_query: export_link.finish(),
            events: page.as_ref().map(|page| event_rows(&page.events)),
            next_query,
        };
        let status = if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        shell::page(
            self,
            admin,
            Some(Section::Logs),
            status,
            "System Log",
            &body,
        )
    }
}

fn json_download(events: &[Event]) -> Response<Bytes> {
    let body = serde_json::to_vec_pretty(events).unwrap_or_else(|_| b"[]".to_vec());
    let mut response = Response::new(Bytes::from(body));
    portcullis_proxy::respond::set_json_headers(response.headers_mut());
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"system-log.json\""),
    );
    response
}
