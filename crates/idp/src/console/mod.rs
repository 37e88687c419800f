//! The admin console at `{idp public_url}/admin`: server-rendered pages
//! for the IdP's administrators, in the one page shell, no JavaScript.
//!
//! - [`access`]: who may enter (members of `admin_groups`, signed in with
//!   password + TOTP) and the admin console session — its own record and
//!   cookie (`Path=/admin`, `SameSite=Strict`), its lifetime, idle limit
//!   and binding to the client's ASN or IP.
//! - [`actions`]: everything a console form changes, each CSRF-checked,
//!   the protected ones behind re-authentication (password + TOTP).
//! - one file per section: [`sessions`], [`users`], [`dashboard`],
//!   [`logs`], [`apps`], [`policies`] (with the sign-on "explain" tool).
//! - [`admin_check`]: what `portcullis check` refuses about it.
//!
//! It owns no state of its own beyond the admin sessions: users, IdP
//! sessions, the System Log, policies and the post-auth report are the
//! IdP's, reached through the same code as the APIs.

mod access;
mod actions;
pub mod admin_check;
mod apps;
mod dashboard;
mod logs;
mod policies;
mod sessions;
mod shell;
mod users;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use portcullis_context::Attribute;

pub use access::{memory_store, AdminSession, AdminSessions, ADMIN_COOKIE};
pub(crate) use access::{Admin, Roamed};
pub use apps::{CountFuture, GatewayApp, GatewayView, TargetHealth};

use crate::web::{respond, Caller, Idp};

/// How the admin console is entered and its sessions kept (`[idp]
/// admin_groups` and `[idp.admin]`).
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// Members of any of these groups are administrators.
    pub groups: Vec<String>,
    pub max_lifetime: Duration,
    pub max_idle: Duration,
    /// Attributes of the client an admin session is bound to (`ip`,
    /// `asn`); a change ends the session.
    pub bind: Vec<Attribute>,
    /// A protected action asks for password + TOTP again when the last
    /// verification is older than this; zero asks every time.
    pub protected_action_reauth: Duration,
}

impl Default for AdminSettings {
    /// The configuration's defaults, with IP binding (the fallback without
    /// an ASN database).
    fn default() -> Self {
        Self {
            groups: vec!["admins".to_string()],
            max_lifetime: Duration::from_secs(12 * 3600),
            max_idle: Duration::from_secs(15 * 60),
            bind: vec![Attribute::Ip],
            protected_action_reauth: Duration::ZERO,
        }
    }
}

/// The console's form bodies are a few fields; anything larger is refused
/// before parsing.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// Query strings of the list pages (filters, the System Log filter).
const MAX_QUERY_BYTES: usize = 4 * 1024;

impl Idp {
    /// Handles a request under `/admin`; `rest` are the path segments after
    /// `admin`.
    pub(crate) async fn console(
        self: &Arc<Self>,
        request: &Request<Bytes>,
        caller: &Caller,
        rest: &[&str],
    ) -> Response<Bytes> {
        if request
            .uri()
            .query()
            .is_some_and(|q| q.len() > MAX_QUERY_BYTES)
        {
            return respond::message_page(
                StatusCode::URI_TOO_LONG,
                "Address too long",
                "The address of this page is longer than the console accepts.",
            );
        }
        if request.body().len() > MAX_FORM_BYTES {
            return respond::message_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Form too large",
                "The form you sent is larger than the console accepts.",
            );
        }
        let admin = match self.admin_access(request, caller).await {
            Ok(admin) => admin,
            Err(response) => return response,
        };
        let method = request.method();
        match (method, rest) {
            (&Method::GET, [] | [""]) => self.dashboard_page(request, &admin).await,
            (&Method::GET, ["sessions"]) => self.sessions_page(request, &admin).await,
            (&Method::GET, ["sessions", id]) => self.session_detail_page(request, &admin, id).await,
            (&Method::GET, ["users"]) => self.users_page(request, &admin).await,
            (&Method::GET, ["logs"]) => self.logs_page(request, &admin),
            (&Method::GET, ["apps"]) => self.apps_page(request, &admin).await,
            (&Method::GET, ["policies"]) => self.policies_page(request, &admin),
            (&Method::POST, ["action"]) => self.console_action(request, caller, &admin).await,
            (_, ["action"]) => not_allowed(),
            (&Method::GET, _) => shell::not_found(self, request, &admin),
            _ => not_allowed(),
        }
    }
}

fn not_allowed() -> Response<Bytes> {
    respond::message_page(
        StatusCode::METHOD_NOT_ALLOWED,
        "Not allowed",
        "This page does not take that kind of request.",
    )
}
