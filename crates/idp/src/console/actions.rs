//! What console forms change, all through `POST /admin/action` with the
//! fields `action`, `target`, `return` and `csrf`.
//!
//! Every post must carry the CSRF field matching the browser's cookie
//! (403 otherwise). Protected actions — suspend or deactivate a user,
//! reset their factors, revoke all of a user's sessions, Universal Logout
//! — ask for password + TOTP again when the admin session's last
//! verification is older than `[idp.admin] protected_action_reauth` (zero:
//! every time): the prompt is a page re-posting the same fields with
//! `password` and `code`, so the action's parameters travel in the same
//! CSRF-checked form and are validated again. Each prompt and its outcome
//! is a `user.authentication.verify` event. After the action the browser
//! is redirected (post-redirect-get) back to `return`, a console path.

use std::sync::Arc;

use askama::Template;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use time::OffsetDateTime;

use super::shell::{self, Notice, PostTo};
use super::Admin;
use crate::directory::{EditError, Lifecycle};
use crate::session::{EndReason, SessionId};
use crate::syslog::OutcomeResult;
use crate::user_admin::{ChangedBy, UserAdminError};
use crate::web::api::valid_id;
use crate::web::csrf::CSRF_COOKIE;
use crate::web::events::{self, Origin};
use crate::web::login::{Form, PasswordRefused};
use crate::web::{cookie, respond, user_agent, Caller, Idp};

/// One console action on its target.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// End one IdP session (by public id).
    RevokeSession(String),
    /// End all of a user's IdP sessions.
    RevokeUserSessions(String),
    /// Sign a user out of every logout-enabled app.
    UniversalLogout(String),
    /// A Users-API lifecycle operation.
    Lifecycle(Lifecycle, String),
}

impl Action {
    fn parse(action: &str, target: &str) -> Option<Action> {
        if !valid_id(target) {
            return None;
        }
        let target = target.to_string();
        Some(match action {
            "session.revoke" => Action::RevokeSession(target),
            "user.sessions.revoke" => Action::RevokeUserSessions(target),
            "user.universal_logout" => Action::UniversalLogout(target),
            other => {
                let op = other.strip_prefix("user.")?;
                Action::Lifecycle(Lifecycle::from_api_name(op)?, target)
            }
        })
    }

    /// The `action` field's value (also the event's `protectedAction`).
    fn name(&self) -> String {
        match self {
            Action::RevokeSession(_) => "session.revoke".into(),
            Action::RevokeUserSessions(_) => "user.sessions.revoke".into(),
            Action::UniversalLogout(_) => "user.universal_logout".into(),
            Action::Lifecycle(op, _) => format!("user.{}", op.as_str()),
        }
    }

    fn target(&self) -> &str {
        match self {
            Action::RevokeSession(t)
            | Action::RevokeUserSessions(t)
            | Action::UniversalLogout(t)
            | Action::Lifecycle(_, t) => t,
        }
    }

    fn is_protected(&self) -> bool {
        match self {
            Action::RevokeSession(_) => false,
            Action::RevokeUserSessions(_) | Action::UniversalLogout(_) => true,
            Action::Lifecycle(op, _) => matches!(
                op,
                Lifecycle::Suspend | Lifecycle::Deactivate | Lifecycle::ResetFactors
            ),
        }
    }

    fn describe(&self) -> String {
        match self {
            Action::RevokeSession(id) => format!("revoke session {id}"),
            Action::RevokeUserSessions(u) => format!("revoke all sessions of {u}"),
            Action::UniversalLogout(u) => format!("sign {u} out of every app (Universal Logout)"),
            Action::Lifecycle(Lifecycle::ResetFactors, u) => format!("reset the factors of {u}"),
            Action::Lifecycle(op, u) => format!("{} {u}", op.as_str()),
        }
    }
}

/// The password + TOTP prompt for a protected action, re-posting it.
#[derive(Template)]
#[template(path = "console/reauth.html")]
struct ReauthPrompt<'a> {
    what: String,
    post: PostTo,
    action: String,
    target: &'a str,
    back: &'a str,
    /// Why the last try was refused.
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "console/action_failed.html")]
struct ActionFailed<'a> {
    message: &'a str,
    back: &'a str,
}

impl Idp {
    pub(super) async fn console_action(
        self: &Arc<Self>,
        request: &Request<Bytes>,
        caller: &Caller,
        admin: &Admin,
    ) -> Response<Bytes> {
        let form = Form::parse(request);
        if !self
            .csrf
            .verify(cookie(request, CSRF_COOKIE), form.get("csrf"))
        {
            tracing::warn!(client.addr = %caller.ip, user = admin.user.id(), "console form failed the CSRF check");
            return shell::page(
                self,
                admin,
                None,
                StatusCode::FORBIDDEN,
                "Form expired",
                &Notice {
                    id: Some("csrf-refused"),
                    text: "This form could not be verified (it expired or did not come from the \
                           console). Go back, reload the page and try again.",
                },
            );
        }
        let Some(action) = Action::parse(
            form.get("action").unwrap_or(""),
            form.get("target").unwrap_or(""),
        ) else {
            return shell::page(
                self,
                admin,
                None,
                StatusCode::BAD_REQUEST,
                "Unknown action",
                &Notice::new("The console does not know this action."),
            );
        };
        let back = self.console_return(form.get("return"));
        let origin = self.origin(request, caller);
        let now = OffsetDateTime::now_utc();
        if action.is_protected() && !self.recently_verified(admin, now) {
            match form.get("password") {
                None => {
                    self.emit(events::protected_action_verify(
                        &admin.user,
                        &action.name(),
                        OutcomeResult::Challenge,
                        None,
                        &origin,
                    ));
                    return self.reauth_prompt(admin, &action, &back, None, StatusCode::OK);
                }
                Some(password) => {
                    let code = form.get("code").unwrap_or("").trim().to_string();
                    if let Err(response) = self
                        .reauthenticate(admin, caller, &action, &back, password, &code, &origin)
                        .await
                    {
                        return response;
                    }
                }
            }
        }
        self.perform(admin, caller, request, &action, &back).await
    }

    fn recently_verified(&self, admin: &Admin, now: OffsetDateTime) -> bool {
        let window = self.settings.admin.protected_action_reauth;
        !window.is_zero()
            && admin.session.body.verified_at <= now
            && (now - admin.session.body.verified_at) < window
    }

    /// Where to go after an action: `return` when it is a console path.
    fn console_return(&self, raw: Option<&str>) -> String {
        let console = self.console_path("");
        raw.and_then(|r| self.allowed_redirect(r))
            .filter(|r| r == &console || r.starts_with(&format!("{console}/")))
            .unwrap_or(console)
    }

    /// The password + TOTP page for a protected action, re-posting it.
    fn reauth_prompt(
        &self,
        admin: &Admin,
        action: &Action,
        back: &str,
        error: Option<&str>,
        status: StatusCode,
    ) -> Response<Bytes> {
        let body = ReauthPrompt {
            what: action.describe(),
            post: PostTo::console_action(self, admin),
            action: action.name(),
            target: action.target(),
            back,
            error,
        };
        shell::page(self, admin, None, status, "Confirm it's you", &body)
    }

    /// Checks password + TOTP for the admin; `Err` is the page to answer
    /// (the prompt again with an error, or a busy page).
    #[allow(clippy::too_many_arguments)]
    async fn reauthenticate(
        self: &Arc<Self>,
        admin: &Admin,
        caller: &Caller,
        action: &Action,
        back: &str,
        password: &str,
        code: &str,
        origin: &Origin<'_>,
    ) -> Result<(), Response<Bytes>> {
        let fail = |reason: &'static str| {
            self.emit(events::protected_action_verify(
                &admin.user,
                &action.name(),
                OutcomeResult::Failure,
                Some(reason),
                origin,
            ));
            self.reauth_prompt(
                admin,
                action,
                back,
                Some("That password or code didn't work. Try again with the current code."),
                StatusCode::UNAUTHORIZED,
            )
        };
        if let Err(wait) = self.sign_in_limit.check(caller.ip) {
            let mut response = respond::message_page(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                "Too many attempts from your network. Try again later.",
            );
            respond::insert(
                &mut response,
                http::header::RETRY_AFTER,
                &wait.retry_after_secs().to_string(),
            );
            return Err(response);
        }
        if password.is_empty() || password.len() > 1024 || code.len() > 16 {
            return Err(fail("INVALID_CREDENTIALS"));
        }
        let now = OffsetDateTime::now_utc();
        match self
            .verify_password(admin.user.login(), password.to_string(), now, origin)
            .await
        {
            Ok(user) if user.id() == admin.user.id() => {}
            Ok(_) | Err(PasswordRefused::Failed) => return Err(fail("INVALID_CREDENTIALS")),
            Err(PasswordRefused::Busy(wait)) => {
                return Err(respond::busy_page(
                    "Busy",
                    "Too many people are signing in right now.",
                    wait,
                ))
            }
            Err(PasswordRefused::Store(e)) => {
                return Err(respond::store_unavailable(
                    &e,
                    "checking an account lockout",
                ))
            }
        }
        match self.second_factor_ok(&admin.user, code, now).await {
            Ok(true) => {}
            Ok(false) => {
                if let Err(e) = self.count_failure(&admin.user, now, origin).await {
                    return Err(respond::store_unavailable(&e, "counting a failed code"));
                }
                return Err(fail("INVALID_FACTOR"));
            }
            Err(e) => return Err(respond::store_unavailable(&e, "checking a TOTP code")),
        }
        self.emit(events::protected_action_verify(
            &admin.user,
            &action.name(),
            OutcomeResult::Success,
            None,
            origin,
        ));
        self.admin_sessions
            .update(
                &admin.secret.hash(),
                now,
                Box::new(move |s| s.body.verified_at = now),
            )
            .await
            .map(drop)
            .map_err(|_| {
                respond::message_page(
                    StatusCode::UNAUTHORIZED,
                    "Console session ended",
                    "Your admin console session ended. Open the console again.",
                )
            })
    }

    async fn perform(
        &self,
        admin: &Admin,
        caller: &Caller,
        request: &Request<Bytes>,
        action: &Action,
        back: &str,
    ) -> Response<Bytes> {
        let origin = self.origin(request, caller);
        let actor = events::user_actor(&admin.user);
        let directory = self.directory();
        let failed = |status: StatusCode, message: &str| {
            shell::page(
                self,
                admin,
                None,
                status,
                "Action not done",
                &ActionFailed { message, back },
            )
        };
        match action {
            Action::RevokeSession(id) => {
                match self
                    .sessions
                    .revoke(&SessionId::from(id.as_str()), EndReason::Revoked)
                    .await
                {
                    Ok(Some(record)) => {
                        if let Some(user) = directory.by_id(&record.body.user_id) {
                            self.emit(events::session_clear(
                                actor,
                                user,
                                std::slice::from_ref(id),
                                &origin,
                            ));
                        }
                    }
                    Ok(None) => {
                        return failed(StatusCode::NOT_FOUND, "That session has already ended.")
                    }
                    Err(e) => return respond::store_unavailable(&e, "revoking a session"),
                }
            }
            Action::RevokeUserSessions(user_id) => {
                let Some(user) = directory.by_id(user_id) else {
                    return failed(StatusCode::NOT_FOUND, "There is no such user.");
                };
                let ended = match self
                    .sessions
                    .revoke_user(user.id(), EndReason::UserRevoked)
                    .await
                {
                    Ok(ended) => ended,
                    Err(e) => return respond::store_unavailable(&e, "revoking a user's sessions"),
                };
                let ids: Vec<String> = ended.iter().map(|r| r.id.as_str().to_string()).collect();
                self.emit(events::session_clear(actor, user, &ids, &origin));
                self.end_admin_sessions(user.id()).await;
            }
            Action::UniversalLogout(user_id) => {
                if self.universal_logout.get().is_none() {
                    return failed(
                        StatusCode::CONFLICT,
                        "Universal Logout is not available: no app is logout-enabled.",
                    );
                }
                if !self.dispatch_universal_logout(user_id, "admin_console") {
                    return failed(StatusCode::NOT_FOUND, "There is no such user.");
                }
            }
            Action::Lifecycle(op, user_id) => {
                let by = ChangedBy {
                    actor,
                    ip: Some(caller.ip),
                    user_agent: user_agent(request).map(str::to_owned),
                };
                match self.change_user(user_id, *op, &by).await {
                    Ok(_) => {
                        if op.ends_sessions() {
                            self.end_admin_sessions(user_id).await;
                        }
                    }
                    Err(UserAdminError::Edit(EditError::UnknownUser { .. })) => {
                        return failed(StatusCode::NOT_FOUND, "There is no such user.")
                    }
                    Err(UserAdminError::Edit(EditError::Transition(e))) => {
                        return failed(StatusCode::CONFLICT, &e.to_string())
                    }
                    Err(UserAdminError::Lockout(e)) => {
                        return respond::store_unavailable(&e, "lifting an account lockout")
                    }
                    Err(e) => {
                        tracing::error!(error = %e, user = %user_id, op = op.as_str(), "console lifecycle operation failed");
                        return failed(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "The change could not be saved; nothing was changed.",
                        );
                    }
                }
            }
        }
        tracing::info!(user = admin.user.id(), action = %action.name(), target = action.target(), "console action");
        respond::redirect(back)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_reposts_the_action_with_its_csrf_field_and_marks_a_failed_try() {
        let prompt = |error| ReauthPrompt {
            what: "suspend 00u2bob".into(),
            post: PostTo {
                action: "/admin/action".into(),
                csrf: "c5rf".into(),
            },
            action: "user.suspend".into(),
            target: "00u2bob",
            back: "/admin/users",
            error,
        };
        let first = prompt(None).render().expect("renders");
        for field in [
            "name=\"csrf\" value=\"c5rf\"",
            "name=\"action\" value=\"user.suspend\"",
            "name=\"target\" value=\"00u2bob\"",
            "name=\"return\" value=\"/admin/users\"",
        ] {
            assert!(first.contains(field), "{field}: {first}");
        }
        assert!(
            first.contains("<p id=\"reauth\">To suspend 00u2bob,"),
            "{first}"
        );
        assert!(!first.contains("aria-invalid"), "{first}");
        let again = prompt(Some("That didn't work.")).render().expect("renders");
        assert_eq!(
            again
                .matches(" aria-invalid=\"true\" aria-describedby=\"reauth-error\"")
                .count(),
            2,
            "{again}"
        );
        assert!(
            again.contains("id=\"reauth-error\" role=\"alert\">That didn&#39;t work.</p>"),
            "{again}"
        );
    }

    #[test]
    fn actions_parse_only_known_names_and_safe_targets() {
        assert_eq!(
            Action::parse("user.suspend", "00u2bob"),
            Some(Action::Lifecycle(Lifecycle::Suspend, "00u2bob".into()))
        );
        assert!(Action::parse("user.suspend", "../x").is_none());
        assert!(Action::parse("user.delete", "00u2bob").is_none());
        assert!(Action::parse("session.revoke", "").is_none());
        for (name, protected) in [
            ("session.revoke", false),
            ("user.unsuspend", false),
            ("user.unlock", false),
            ("user.suspend", true),
            ("user.deactivate", true),
            ("user.reset_factors", true),
            ("user.sessions.revoke", true),
            ("user.universal_logout", true),
        ] {
            let action = Action::parse(name, "x1").expect(name);
            assert_eq!(action.is_protected(), protected, "{name}");
            assert_eq!(action.name(), name);
        }
    }
}
