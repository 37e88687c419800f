//! The console's frame around every page: the navigation bar, who is
//! signed in, the CSRF cookie, and the small pieces forms share.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use portcullis_proxy::page::Width;

use super::Admin;
use crate::web::{respond, respond::escape, Idp};

/// The console's sections, in the navigation bar's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Dashboard,
    Sessions,
    Users,
    Logs,
    Apps,
    Policies,
}

impl Section {
    const ALL: [Section; 6] = [
        Self::Dashboard,
        Self::Sessions,
        Self::Users,
        Self::Logs,
        Self::Apps,
        Self::Policies,
    ];

    fn path(self) -> &'static str {
        match self {
            Self::Dashboard => "",
            Self::Sessions => "/sessions",
            Self::Users => "/users",
            Self::Logs => "/logs",
            Self::Apps => "/apps",
            Self::Policies => "/policies",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Dashboard => "Dashboard",
            Self::Sessions => "Sessions",
            Self::Users => "Users",
            Self::Logs => "System Log",
            Self::Apps => "Apps",
            Self::Policies => "Policies",
        }
    }
}

/// A console page: `body` is trusted markup with every value escaped.
pub(super) fn page(
    idp: &Idp,
    admin: &Admin,
    section: Option<Section>,
    status: StatusCode,
    title: &str,
    body: &str,
) -> Response<Bytes> {
    let mut nav = String::from("<nav aria-label=\"Admin console\">");
    for s in Section::ALL {
        let current = if Some(s) == section {
            " aria-current=\"page\""
        } else {
            ""
        };
        nav.push_str(&format!(
            "<a href=\"{}\"{current}>{}</a>",
            escape(&idp.console_path(s.path())),
            s.label()
        ));
    }
    nav.push_str(&format!(
        "<span class=\"id\">Signed in as <strong id=\"admin-user\">{}</strong></span></nav>",
        escape(admin.user.login())
    ));
    let response = respond::page_with(
        status,
        &format!("{title} · Admin"),
        &format!("{nav}<h1>{}</h1>{body}", escape(title)),
        Width::Full,
    );
    let (value, new) = &admin.csrf_cookie;
    idp.with_csrf_cookie(response, value, *new)
}

/// The hidden CSRF field of every console form.
pub(super) fn csrf_field(idp: &Idp, admin: &Admin) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        idp.csrf.field_for(&admin.csrf_cookie.0)
    )
}

/// A one-button form posting `action` on `target` to `/admin/action`,
/// coming back to `back`.
pub(super) fn action_button(
    idp: &Idp,
    admin: &Admin,
    action: &str,
    target: &str,
    back: &str,
    label: &str,
) -> String {
    format!(
        "<form class=\"inline\" method=\"post\" action=\"{post}\">{csrf}\
<input type=\"hidden\" name=\"action\" value=\"{action}\">\
<input type=\"hidden\" name=\"target\" value=\"{target}\">\
<input type=\"hidden\" name=\"return\" value=\"{back}\">\
<button type=\"submit\" name=\"go\" value=\"{action}\" data-target=\"{target}\">{label}</button></form>",
        post = escape(&idp.console_path("/action")),
        csrf = csrf_field(idp, admin),
        action = escape(action),
        target = escape(target),
        back = escape(back),
        label = escape(label),
    )
}

pub(super) fn not_found(idp: &Idp, _request: &Request<Bytes>, admin: &Admin) -> Response<Bytes> {
    page(
        idp,
        admin,
        None,
        StatusCode::NOT_FOUND,
        "Page not found",
        "<p>There is no console page at this address.</p>",
    )
}

/// A query parameter of a list page, trimmed; empty counts as absent.
pub(super) fn param(request: &Request<Bytes>, name: &str) -> Option<String> {
    crate::web::query_param(request, name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// An RFC 3339 time for display.
pub(super) fn when(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
