//! The console's frame around every page: the navigation bar, who is
//! signed in, the CSRF cookie, and the small pieces forms share.

use askama::Template;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use portcullis_proxy::page::Width;

use super::Admin;
use crate::web::{respond, Idp};

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

/// A link of the navigation bar.
struct NavLink {
    href: String,
    label: &'static str,
    current: bool,
}

#[derive(Template)]
#[template(path = "console/frame.html")]
struct Frame<'a> {
    nav: Vec<NavLink>,
    login: &'a str,
    title: &'a str,
    /// The page's own template, rendered.
    body: String,
}

/// A console page: the frame around `body`, in the one page shell.
pub(super) fn page(
    idp: &Idp,
    admin: &Admin,
    section: Option<Section>,
    status: StatusCode,
    title: &str,
    body: &impl Template,
) -> Response<Bytes> {
    let frame = Frame {
        nav: Section::ALL
            .into_iter()
            .map(|s| NavLink {
                href: idp.console_path(s.path()),
                label: s.label(),
                current: Some(s) == section,
            })
            .collect(),
        login: admin.user.login(),
        title,
        body: portcullis_proxy::page::body(body),
    };
    let response = respond::page_with(
        status,
        &format!("{title} · Admin"),
        &portcullis_proxy::page::body(&frame),
        Width::Full,
    );
    let (value, new) = &admin.csrf_cookie;
    idp.with_csrf_cookie(response, value, *new)
}

/// A one-paragraph page body.
#[derive(Template)]
#[template(path = "console/notice.html")]
pub(super) struct Notice {
    /// What tests and scripts find the paragraph by, when they need to.
    pub(super) id: Option<&'static str>,
    pub(super) text: &'static str,
}

impl Notice {
    pub(super) fn new(text: &'static str) -> Notice {
        Notice { id: None, text }
    }
}

/// Where every console form posts and the CSRF field it must carry
/// (`console/forms.html`).
#[derive(Debug, Clone)]
pub(super) struct PostTo {
    pub(super) action: String,
    pub(super) csrf: String,
}

impl PostTo {
    /// `/admin/action`, with the field matching this admin's CSRF cookie.
    pub(super) fn console_action(idp: &Idp, admin: &Admin) -> PostTo {
        PostTo {
            action: idp.console_path("/action"),
            csrf: idp.csrf.field_for(&admin.csrf_cookie.0),
        }
    }
}

/// A one-button form posting `action` on `target` to `/admin/action`,
/// coming back to `back` (`console/forms.html`).
#[derive(Debug, Clone)]
pub(super) struct ActionButton {
    pub(super) post: PostTo,
    pub(super) action: &'static str,
    pub(super) target: String,
    pub(super) back: String,
    pub(super) label: &'static str,
}

/// The action buttons of one page: each posts with the admin's CSRF field
/// and comes back to the page.
pub(super) struct Buttons {
    post: PostTo,
    back: String,
}

impl Buttons {
    pub(super) fn new(idp: &Idp, admin: &Admin, back: &str) -> Buttons {
        Buttons {
            post: PostTo::console_action(idp, admin),
            back: back.to_string(),
        }
    }

    pub(super) fn button(
        &self,
        action: &'static str,
        target: &str,
        label: &'static str,
    ) -> ActionButton {
        ActionButton {
            post: self.post.clone(),
            action,
            target: target.to_string(),
            back: self.back.clone(),
            label,
        }
    }
}

pub(super) fn not_found(idp: &Idp, _request: &Request<Bytes>, admin: &Admin) -> Response<Bytes> {
    page(
        idp,
        admin,
        None,
        StatusCode::NOT_FOUND,
        "Page not found",
        &Notice::new("There is no console page at this address."),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_marks_the_current_section_and_escapes_the_login_and_title() {
        let frame = Frame {
            nav: vec![
                NavLink {
                    href: "/admin".into(),
                    label: "Dashboard",
                    current: false,
                },
                NavLink {
                    href: "/admin/users".into(),
                    label: "Users",
                    current: true,
                },
            ],
            login: "<b>alice</b>",
            title: "Session a&b",
            body: "<p id=\"body\">trusted</p>".into(),
        };
        let html = frame.render().expect("renders");
        assert!(
            html.contains(
                "<nav aria-label=\"Admin console\"><a href=\"/admin\">Dashboard</a>\
<a href=\"/admin/users\" aria-current=\"page\">Users</a><span class=\"id\">"
            ),
            "{html}"
        );
        assert!(
            html.contains(
                "Signed in as <strong id=\"admin-user\">&#60;b&#62;alice&#60;/b&#62;</strong>"
            ),
            "{html}"
        );
        assert!(html.contains("<h1>Session a&#38;b</h1>"), "{html}");
        assert!(html.contains("<p id=\"body\">trusted</p>"), "{html}");
    }
}
