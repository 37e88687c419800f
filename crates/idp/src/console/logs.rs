//! `/admin/logs`: the System Log with the API's filter language
//! (`eventType eq "user.session.start" and outcome.result eq "FAILURE"`),
//! a time range, paging by cursor, and the same page as JSON
//! (`format=json`, a download).

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};

use super::shell::{self, when, Markup, Section};
use super::Admin;
use crate::syslog::{Event, Query};
use crate::web::{query_pairs, respond, respond::escape, Idp};

/// Events on one page unless `limit` says otherwise.
const PAGE_SIZE: &str = "50";

/// The events as a table, newest first as given.
pub(super) fn events_table(events: &[Event]) -> String {
    if events.is_empty() {
        return "<p class=\"empty\">No events.</p>".into();
    }
    let mut rows = String::new();
    for event in events {
        let targets: Vec<String> = event
            .target
            .iter()
            .map(|t| {
                let name = t.alternate_id.as_deref().unwrap_or(&t.id);
                format!("{} ({})", name, t.kind)
            })
            .collect();
        let outcome = match &event.outcome.reason {
            Some(reason) => format!("{} · {}", event.outcome.result.as_str(), reason),
            None => event.outcome.result.as_str().to_string(),
        };
        let actor = event
            .actor
            .alternate_id
            .as_deref()
            .unwrap_or(&event.actor.id);
        rows.push_str(&format!(
            "<tr data-event-type=\"{kind}\"><td>{time}</td><td><code>{kind}</code><br>{message}</td>\
<td>{severity}</td><td>{outcome}</td><td>{actor}</td><td>{targets}</td><td>{ip}</td></tr>",
            time = escape(&when(event.published)),
            kind = escape(&event.event_type),
            message = escape(&event.display_message),
            severity = event.severity.as_str(),
            outcome = escape(&outcome),
            actor = escape(actor),
            targets = escape(&targets.join(", ")),
            ip = escape(event.client.ip_address.as_deref().unwrap_or("")),
        ));
    }
    format!(
        "<table class=\"events\"><thead><tr><th>Time</th><th>Event</th><th>Severity</th>\
<th>Outcome</th><th>Actor</th><th>Targets</th><th>Client IP</th></tr></thead><tbody>{rows}</tbody></table>"
    )
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
        let invalid = |param: &str| match &error {
            Some((p, _)) if *p == param => {
                " aria-invalid=\"true\" aria-describedby=\"query-error\"".to_string()
            }
            _ => String::new(),
        };
        let field = |name: &str, label: &str, hint: &str, class: &str| {
            format!(
                "<div class=\"{class}\"><label for=\"q-{name}\">{label}</label>\
<input id=\"q-{name}\" name=\"{name}\" value=\"{}\" placeholder=\"{}\"{}></div>",
                escape(value(name)),
                escape(hint),
                invalid(name),
            )
        };
        let notice = match &error {
            Some((_, message)) => format!(
                "<p class=\"error\" id=\"query-error\" role=\"alert\">{}</p>",
                escape(message)
            ),
            None => String::new(),
        };
        let (table, next) = match &page {
            Some(page) => {
                let next = page.next.map(|cursor| {
                    let mut link = form_urlencoded::Serializer::new(String::new());
                    for (k, v) in params.iter().filter(|(k, _)| k != "after") {
                        link.append_pair(k, v);
                    }
                    link.append_pair("after", &cursor.to_string());
                    format!(
                        "<p><a id=\"next-page\" href=\"{}?{}\">Next page</a></p>",
                        escape(&self.console_path("/logs")),
                        escape(&link.finish())
                    )
                });
                (events_table(&page.events), next.unwrap_or_default())
            }
            None => (String::new(), String::new()),
        };
        let mut export_link = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &params {
            export_link.append_pair(k, v);
        }
        export_link.append_pair("format", "json");
        let body = format!(
            "<form class=\"filters\" method=\"get\" action=\"{action}\">{filter}{since}{until}{limit}\
<button type=\"submit\">Search</button></form>{notice}\
<p class=\"hint\">Filters use the System Log API's language: <code>eventType eq \"user.session.start\"</code>, \
<code>outcome.result eq \"FAILURE\"</code>, <code>actor.alternateId sw \"alice\"</code>, joined with <code>and</code>/<code>or</code>. \
Times are RFC 3339 (<code>2026-12-01T00:00:00Z</code>).</p>\
<p><a id=\"export\" href=\"{action}?{export}\">Export this page as JSON</a></p>{table}{next}",
            action = escape(&self.console_path("/logs")),
            filter = field("filter", "Filter", "eventType eq \"user.session.start\"", "wide"),
            since = field("since", "Since", "2026-12-01T00:00:00Z", ""),
            until = field("until", "Until", "", ""),
            limit = field("limit", "Per page", PAGE_SIZE, "narrow"),
            export = escape(&export_link.finish()),
        );
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
            &Markup(body),
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
