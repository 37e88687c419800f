//! Browser sign-in: `/login` (password), `/login/mfa` (TOTP), the signed-in
//! home page, and the session cookie they set.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use portcullis_proxy::limit::Wait;
use portcullis_proxy::page;
use portcullis_proxy::WorkError;
use time::OffsetDateTime;

use super::csrf::{Csrf, CSRF_COOKIE};
use super::events::{self, Origin};
use super::respond;
use super::{cookie, query_param, user_agent, user_agent_bytes, Caller, Idp, SESSION_COOKIE};
use portcullis_session::{FailureOutcome, OneTimeError, OneTimeKind};

use crate::directory::{totp_step_replayable_until, verify_totp, AuthFailure, User, UserStatus};
use crate::policy::{Outcome, SignOnContext};
use crate::session::{
    Amr, EndReason, NewSession, SessionError, SessionRecord, SessionSecret, SessionStatus,
    SessionsApiJson, StoreError,
};
use crate::syslog::{Query, MAX_LIMIT};
use time::format_description::well_known::Rfc3339;

/// Form fields of a urlencoded body, each taken once.
pub(crate) struct Form(Vec<(String, String)>);

/// Query/form flag on `/login/mfa`: verify a second factor for a session
/// that is already ACTIVE (MFA step-up for an app).
pub(crate) const STEP_UP_PARAM: &str = "stepup";

/// Query/form field naming the service provider being signed in to, so
/// the sign-in and MFA pages can say so. Only known SP names are used.
pub(crate) const APP_PARAM: &str = "app";

/// Form flag on `/login/mfa`: "not you?" — drop the half-signed-in
/// session and sign in again.
pub(crate) const SWITCH_PARAM: &str = "switch";

/// `/login`.
#[derive(askama::Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    action: String,
    csrf: String,
    from: &'a str,
    app: Option<String>,
    notice: Option<&'a str>,
}

/// `/login/mfa`.
#[derive(askama::Template)]
#[template(path = "mfa.html")]
struct MfaPage<'a> {
    action: String,
    csrf: String,
    from: &'a str,
    app: Option<String>,
    notice: Option<&'a str>,
    name: String,
    step_up: bool,
    not_you: NotYou,
}

/// "Not you?" on the MFA page: a half-signed-in session is simply dropped
/// and the sign-in form comes back for the same destination; a signed-in
/// one (step-up) is a full sign-out.
enum NotYou {
    Switch,
    SignOut(String),
}

/// 429 for the sign-in forms.
#[derive(askama::Template)]
#[template(path = "rate_limited.html")]
struct RateLimitedPage {
    secs: u64,
    again: String,
}

/// The signed-in home page with the app launcher.
#[derive(askama::Template)]
#[template(path = "home.html")]
struct HomePage {
    name: String,
    expires: String,
    apps: Vec<super::sso::LauncherLink>,
    sign_out: String,
}

impl Form {
    pub(crate) fn parse(request: &Request<Bytes>) -> Form {
        Form(
            form_urlencoded::parse(request.body())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

enum Notice<'a> {
    Error(&'a str),
}

/// Why [`Idp::verify_password`] let nobody in.
#[derive(Debug)]
pub(crate) enum PasswordRefused {
    /// Show the generic failure (whatever the reason: see [`AuthFailure`]).
    Failed,
    /// The password pool is full; nothing was checked. 503 (429 for the
    /// API) with `Retry-After`.
    Busy(Wait),
    /// The lockout store did not answer: sign-in fails closed (503), as
    /// an attempt that cannot be counted must not be checked.
    Store(StoreError),
}

impl Idp {
    pub(crate) fn origin<'a>(&self, request: &'a Request<Bytes>, caller: &Caller) -> Origin<'a> {
        Origin {
            ip: caller.ip,
            user_agent: user_agent(request),
        }
    }

    /// Rate limit, then the posted form and whether its CSRF field matches
    /// the browser's cookie. `Err` is how long the client must wait.
    fn posted_form(&self, request: &Request<Bytes>, caller: &Caller) -> Result<(Form, bool), Wait> {
        if let Err(wait) = self.sign_in_limit.check(caller.ip) {
            tracing::warn!(client.addr = %caller.ip, "sign-in rate limit");
            return Err(wait);
        }
        let form = Form::parse(request);
        let csrf_ok = self
            .csrf
            .verify(cookie(request, CSRF_COOKIE), form.get("csrf"));
        if !csrf_ok {
            tracing::warn!(client.addr = %caller.ip, "sign-in form failed the CSRF check");
        }
        Ok((form, csrf_ok))
    }

    /// A TOTP code for `user`, within the skew window and never reused: the
    /// matched step must be past the last one accepted for the user.
    /// `Err` when the replay guard could not answer (then the code is not
    /// accepted either: fail closed).
    pub(crate) async fn second_factor_ok(
        &self,
        user: &User,
        code: &str,
        now: OffsetDateTime,
    ) -> Result<bool, OneTimeError> {
        let Some(step) = user
            .totp_secret()
            .and_then(|totp| verify_totp(totp, code, now))
        else {
            return Ok(false);
        };
        let until = totp_step_replayable_until(step);
        match self
            .one_time
            .advance(OneTimeKind::TotpStep, user.id(), step, until, now)
            .await
        {
            Ok(()) => Ok(true),
            Err(OneTimeError::Replayed) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The CSRF cookie the browser already has, or a new one to set.
    pub(crate) fn csrf_cookie(request: &Request<Bytes>) -> (String, bool) {
        match cookie(request, CSRF_COOKIE) {
            Some(v) if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) => {
                (v.to_string(), false)
            }
            _ => (Csrf::new_cookie_value(), true),
        }
    }

    pub(crate) fn with_csrf_cookie(
        &self,
        mut response: Response<Bytes>,
        value: &str,
        new: bool,
    ) -> Response<Bytes> {
        if new {
            let cookie = format!(
                "{CSRF_COOKIE}={value}; Path={}; Secure; HttpOnly; SameSite=Strict",
                self.settings.path_prefix
            );
            respond::append(&mut response, header::SET_COOKIE, &cookie);
        }
        response
    }

    fn destination(&self, raw: Option<&str>) -> String {
        raw.and_then(|t| self.allowed_redirect(t))
            .unwrap_or_else(|| self.path("/"))
    }

    pub(crate) fn login_form(
        &self,
        request: &Request<Bytes>,
        notice: Option<&str>,
        status: StatusCode,
    ) -> Response<Bytes> {
        let (csrf_cookie, new) = Self::csrf_cookie(request);
        let from = query_param(request, "fromURI").unwrap_or_default();
        let app = self.known_app(query_param(request, APP_PARAM).as_deref());
        let body = page::body(&SignInPage {
            action: self.path("/login"),
            csrf: self.csrf.field_for(&csrf_cookie),
            from: &from,
            app,
            notice,
        });
        self.with_csrf_cookie(respond::page(status, "Sign in", &body), &csrf_cookie, new)
    }

    fn login_form_with_from(
        &self,
        request: &Request<Bytes>,
        from: &str,
        error: Notice<'_>,
        status: StatusCode,
    ) -> Response<Bytes> {
        // Re-render keeping the original destination from the posted form.
        let mut rebuilt = Request::new(Bytes::new());
        *rebuilt.headers_mut() = request.headers().clone();
        let app = Form::parse(request).get(APP_PARAM).map(str::to_owned);
        if let Ok(uri) = self
            .login_page_path("/login", from, app.as_deref(), false)
            .parse()
        {
            *rebuilt.uri_mut() = uri;
        }
        let Notice::Error(message) = error;
        self.login_form(&rebuilt, Some(message), status)
    }

    /// `/login` or `/login/mfa` with the destination (and the app being
    /// signed in to) carried along.
    pub(crate) fn login_page_path(
        &self,
        page: &str,
        from: &str,
        app: Option<&str>,
        step_up: bool,
    ) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("fromURI", from);
        if let Some(app) = self.known_app(app) {
            query.append_pair(APP_PARAM, &app);
        }
        if step_up {
            query.append_pair(STEP_UP_PARAM, "1");
        }
        format!("{}?{}", self.path(page), query.finish())
    }

    /// `app` when it names one of the IdP's service providers (the page
    /// then says what is being signed in to); anything else is dropped.
    pub(crate) fn known_app(&self, app: Option<&str>) -> Option<String> {
        let app = app?;
        self.saml
            .as_ref()?
            .settings
            .service_providers
            .by_name(app)
            .map(|sp| sp.name.clone())
    }

    /// 429 for a posted sign-in or MFA form; its "try again" link keeps
    /// where the browser was going.
    fn rate_limited_page(&self, request: &Request<Bytes>, wait: Wait) -> Response<Bytes> {
        let secs = wait.retry_after_secs();
        let form = Form::parse(request);
        let again = self.login_page_path(
            "/login",
            form.get("fromURI").unwrap_or(""),
            form.get(APP_PARAM),
            false,
        );
        let mut response = respond::page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            &page::body(&RateLimitedPage { secs, again }),
        );
        respond::insert(&mut response, header::RETRY_AFTER, &secs.to_string());
        response
    }

    pub(crate) fn session_cookie(&self, secret: &SessionSecret, record: &SessionRecord) -> String {
        let mut cookie = format!(
            "{SESSION_COOKIE}={}; Path={}; Secure; HttpOnly; SameSite=Lax",
            self.sessions.cookie_value(secret),
            self.settings.path_prefix
        );
        if record.body.persistent_cookie {
            if let Some(lifetime) = record.lifetime.max {
                cookie.push_str(&format!("; Max-Age={}", lifetime.as_secs()));
            }
        }
        cookie
    }

    pub(crate) fn clear_session_cookie(&self) -> String {
        format!(
            "{SESSION_COOKIE}=; Path={}; Secure; HttpOnly; SameSite=Lax; Max-Age=0",
            self.settings.path_prefix
        )
    }

    /// The live session behind the request's cookie, touched: `Ok(None)`
    /// when there is none (no cookie, a malformed one, unknown, expired);
    /// `Err` when the store could not say, which callers answer with
    /// [`respond::store_unavailable`] rather than treating the user as
    /// signed out.
    pub(crate) async fn current_session(
        &self,
        request: &Request<Bytes>,
        now: OffsetDateTime,
    ) -> Result<Option<(SessionSecret, SessionRecord)>, StoreError> {
        let Some(value) = cookie(request, SESSION_COOKIE) else {
            return Ok(None);
        };
        let secret = match self.sessions.parse_cookie(value) {
            Ok(secret) => secret,
            Err(SessionError::OtherNode { node }) => {
                tracing::info!(
                    session.node = %node,
                    "IdP session cookie of another node: treated as no session"
                );
                return Ok(None);
            }
            Err(_) => return Ok(None),
        };
        match self.sessions.touch(&secret, now).await {
            Ok(record) => Ok(Some((secret, record))),
            Err(SessionError::Store(e)) => Err(e),
            Err(
                SessionError::Malformed
                | SessionError::NotFound
                | SessionError::Expired { .. }
                | SessionError::OtherNode { .. },
            ) => Ok(None),
        }
    }

    pub(crate) async fn login_submit(
        self: &Arc<Self>,
        request: &Request<Bytes>,
        caller: &Caller,
    ) -> Response<Bytes> {
        let origin = self.origin(request, caller);
        let (form, csrf_ok) = match self.posted_form(request, caller) {
            Ok(checked) => checked,
            Err(wait) => return self.rate_limited_page(request, wait),
        };
        let from = form.get("fromURI").unwrap_or("").to_string();
        if !csrf_ok {
            return self.login_form_with_from(
                request,
                &from,
                Notice::Error("Your sign-in form expired. Please try again."),
                StatusCode::FORBIDDEN,
            );
        }
        let login = form.get("username").unwrap_or("").trim().to_string();
        let password = form.get("password").unwrap_or("").to_string();
        let now = OffsetDateTime::now_utc();
        let generic = Notice::Error(AuthFailure::PUBLIC_MESSAGE);
        if login.is_empty() || password.is_empty() || login.len() > 256 || password.len() > 1024 {
            return self.login_form_with_from(request, &from, generic, StatusCode::UNAUTHORIZED);
        }
        let user = match self.verify_password(&login, password, now, &origin).await {
            Ok(user) => user,
            Err(PasswordRefused::Failed) => {
                return self.login_form_with_from(request, &from, generic, StatusCode::UNAUTHORIZED)
            }
            Err(PasswordRefused::Busy(wait)) => {
                return respond::busy_page(
                    "Sign-in busy",
                    "Too many people are signing in right now.",
                    wait,
                )
            }
            Err(PasswordRefused::Store(e)) => {
                return respond::store_unavailable(&e, "checking an account lockout")
            }
        };
        let user: &User = &user;
        let decision = self.policies().evaluate_sign_on(&SignOnContext {
            groups: user.groups(),
            ip: caller.ip,
            mfa_verified: false,
        });
        self.emit(events::evaluate_sign_on(
            user,
            &decision.policy,
            &decision.rule,
            decision.outcome.as_str(),
            &origin,
        ));
        match decision.outcome {
            Outcome::Deny => {
                self.emit(events::session_start_failed(
                    &login,
                    Some(user),
                    "Denied by sign-on policy",
                    &origin,
                ));
                respond::message_page(
                    StatusCode::FORBIDDEN,
                    "Sign-in not allowed",
                    "Your organisation's policy does not allow you to sign in from here.",
                )
            }
            Outcome::Challenge if !user.has_totp() => {
                self.emit(events::session_start_failed(
                    &login,
                    Some(user),
                    "MFA required but no factor enrolled",
                    &origin,
                ));
                respond::message_page(
                    StatusCode::FORBIDDEN,
                    "Additional verification required",
                    "Your organisation requires a second factor, but none is enrolled for your account. Contact your administrator.",
                )
            }
            outcome => {
                // Re-authentication (ForceAuthn, an app's reauthenticate
                // policy) of the user already signed in here keeps the
                // session — and with it the list of SPs Single Logout must
                // reach; a different user's session in this browser ends.
                let current = match self.current_session(request, now).await {
                    Ok(current) => current,
                    Err(e) => return respond::store_unavailable(&e, "reading the IdP session"),
                };
                if let Some((existing, record)) = current {
                    if record.body.user_id == user.id()
                        && record.body.status == SessionStatus::Active
                    {
                        match self
                            .sessions
                            .mark_password_verified(
                                &existing,
                                now,
                                self.post_auth.capture(caller.ip, user_agent_bytes(request)),
                            )
                            .await
                        {
                            Ok(_) => return respond::redirect(&self.destination(Some(&from))),
                            Err(SessionError::Store(e)) => {
                                return respond::store_unavailable(
                                    &e,
                                    "recording a password re-verification",
                                )
                            }
                            // Gone meanwhile: a new session is started below.
                            Err(_) => {}
                        }
                    } else if let Err(e) = self.sessions.end(&existing, EndReason::Replaced).await {
                        return respond::store_unavailable(&e, "ending a replaced IdP session");
                    }
                }
                let mfa_pending = outcome == Outcome::Challenge;
                let created = self.sessions.create(NewSession {
                    user_id: user.id().to_string(),
                    login: user.login().to_string(),
                    amr: vec![Amr::Pwd],
                    mfa_pending,
                    limits: decision.session,
                    policy: decision.policy.clone(),
                    rule: decision.rule.clone(),
                    client_ip: Some(caller.ip),
                    user_agent: origin.user_agent.map(str::to_string),
                    context: Some(self.post_auth.capture(caller.ip, user_agent_bytes(request))),
                    now,
                });
                let (secret, record) = match created.await {
                    Ok(created) => created,
                    Err(e) => return respond::store_unavailable(&e, "creating an IdP session"),
                };
                let target = if mfa_pending {
                    self.login_page_path("/login/mfa", &from, form.get(APP_PARAM), false)
                } else {
                    self.emit(events::session_start(
                        user,
                        record.id.as_str(),
                        record.body.context.as_ref(),
                        &origin,
                    ));
                    self.destination(Some(&from))
                };
                let mut response = respond::redirect(&target);
                respond::append(
                    &mut response,
                    header::SET_COOKIE,
                    &self.session_cookie(&secret, &record),
                );
                response
            }
        }
    }

    /// Checks the password off the event loop (argon2 is deliberately slow)
    /// on the bounded password pool, with lockout and events. Every attempt
    /// costs one argon2 verification, locked and unknown logins included
    /// ([`Directory::authenticate`](crate::directory::Directory::authenticate)),
    /// so the answer's timing tells nothing about the account.
    pub(crate) async fn verify_password(
        self: &Arc<Self>,
        login: &str,
        password: String,
        now: OffsetDateTime,
        origin: &Origin<'_>,
    ) -> Result<Arc<User>, PasswordRefused> {
        // Asked for unknown logins too (under an id no user has), so the
        // store's round trip tells nothing about which logins exist.
        let lock_key = self
            .directory()
            .by_login(login)
            .map_or_else(String::new, |u| u.id().to_owned());
        let locked = self
            .lockout
            .locked_until(&lock_key, now)
            .await
            .map_err(PasswordRefused::Store)?
            .is_some();
        let idp = self.clone();
        let login_owned = login.to_string();
        let verdict = self
            .password_work
            .run(move || {
                let mut verifier = idp.password_memory.verifier();
                idp.directory()
                    .authenticate(
                        &login_owned,
                        &password,
                        |user| locked && user.id() == lock_key,
                        &mut verifier,
                    )
                    .map(|u| u.id().to_string())
            })
            .await;
        let verdict = match verdict {
            Ok(verdict) => verdict,
            Err(WorkError::Busy { wait, .. }) => {
                // Nothing was checked or counted: no event, no lockout step.
                tracing::debug!(client.addr = %origin.ip, "password pool busy; sign-in refused");
                return Err(PasswordRefused::Busy(wait));
            }
            Err(e @ WorkError::Failed { .. }) => {
                tracing::error!(error = %e, "password check task failed");
                return Err(PasswordRefused::Failed);
            }
        };
        // The version in force now: an administrator may have suspended
        // the user while their password was being checked.
        let directory = self.directory();
        let known = directory.by_login(login);
        match verdict {
            Ok(id) => {
                let user = directory
                    .shared(&id)
                    .filter(|u| u.status() == UserStatus::Active)
                    .cloned()
                    .ok_or(PasswordRefused::Failed)?;
                self.lockout
                    .record_success(user.id())
                    .await
                    .map_err(PasswordRefused::Store)?;
                Ok(user)
            }
            Err(failure) => {
                let reason = match failure {
                    AuthFailure::UnknownUser | AuthFailure::BadPassword => "INVALID_CREDENTIALS",
                    AuthFailure::LockedOut => "LOCKED_OUT",
                    AuthFailure::Suspended => "USER_SUSPENDED",
                    AuthFailure::Deprovisioned => "USER_DEPROVISIONED",
                };
                self.emit(events::session_start_failed(login, known, reason, origin));
                // A locked account's attempts do not count (nor extend the
                // lock): only a wrong password for an unlocked one does.
                if let (Some(user), AuthFailure::BadPassword) = (known, failure) {
                    self.count_failure(user, now, origin)
                        .await
                        .map_err(PasswordRefused::Store)?;
                }
                Err(PasswordRefused::Failed)
            }
        }
    }

    /// Puts back every lock still running from the System Log's
    /// `user.account.lock` events (each carries `lockedUntil`), so a
    /// restart does not lift a lockout. Only the log's in-memory ring is
    /// read (its newest events, refilled from the file at open), and only
    /// events from the last `lockout_duration`. A shared lockout store
    /// keeps its locks across restarts itself.
    pub(crate) fn restore_lockouts(&self, now: OffsetDateTime) {
        let Some(memory) = self.lockout.as_memory() else {
            return;
        };
        // Unlocks too, oldest first, so an administrator's unlock after a
        // lock lifts it again after the restart.
        let Ok(mut query) = Query::from_params([(
            "filter",
            "eventType eq \"user.account.lock\" or eventType eq \"user.account.unlock\"",
        )]) else {
            return;
        };
        let window = time::Duration::try_from(self.settings.lockout.lockout_duration)
            .unwrap_or(time::Duration::MAX);
        query.since = now.checked_sub(window);
        query.limit = MAX_LIMIT;
        let mut restored = 0usize;
        loop {
            let page = self.log.query(&query);
            for event in &page.events {
                if event.event_type == "user.account.unlock" {
                    for target in event.target.iter().filter(|t| t.kind == "User") {
                        memory.lift(&target.id, now);
                    }
                    continue;
                }
                let until = event
                    .debug_context
                    .debug_data
                    .get("lockedUntil")
                    .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
                if let Some(until) = until.filter(|until| *until > now) {
                    memory.put_back(&event.actor.id, until, &self.settings.lockout, now);
                    restored += 1;
                }
            }
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        if restored > 0 {
            tracing::info!(
                accounts = restored,
                "account lockouts restored from the System Log"
            );
        }
    }

    /// Counts a wrong password or code; the failure that locks the account
    /// is logged and becomes `user.account.lock`.
    pub(crate) async fn count_failure(
        &self,
        user: &User,
        now: OffsetDateTime,
        origin: &Origin<'_>,
    ) -> Result<(), StoreError> {
        let outcome = self
            .lockout
            .record_failure(user.id(), &self.settings.lockout, now)
            .await?;
        if let FailureOutcome::LockedNow { until } = outcome {
            let until = until
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            tracing::warn!(user = user.id(), "account locked after repeated failures");
            self.emit(events::account_lock(user, &until, origin));
        }
        Ok(())
    }

    pub(crate) async fn mfa_form(
        &self,
        request: &Request<Bytes>,
        notice: Option<&str>,
        status: StatusCode,
    ) -> Response<Bytes> {
        let now = OffsetDateTime::now_utc();
        // `stepup=1`: an ACTIVE session asked for a fresh second factor by an
        // app's policy (see sso.rs); otherwise only a sign-in waiting for
        // its second factor gets the form.
        let step_up = query_param(request, STEP_UP_PARAM).as_deref() == Some("1");
        let record = match self.current_session(request, now).await {
            Ok(Some((_, record)))
                if record.body.status == SessionStatus::MfaRequired
                    || (step_up && record.body.status == SessionStatus::Active) =>
            {
                record
            }
            Ok(Some(_)) => {
                return respond::redirect(
                    &self.destination(query_param(request, "fromURI").as_deref()),
                )
            }
            Ok(None) => return respond::redirect(&self.path("/login")),
            Err(e) => return respond::store_unavailable(&e, "reading the IdP session"),
        };
        let (csrf_cookie, new) = Self::csrf_cookie(request);
        let from = query_param(request, "fromURI").unwrap_or_default();
        let app = self.known_app(query_param(request, APP_PARAM).as_deref());
        let name = self
            .directory()
            .by_id(&record.body.user_id)
            .map(|u| u.display_name())
            .unwrap_or_else(|| record.body.login.clone());
        let not_you = if step_up {
            let logout: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("fromURI", &from)
                .finish();
            NotYou::SignOut(format!("{}?{logout}", self.path("/logout")))
        } else {
            NotYou::Switch
        };
        let body = page::body(&MfaPage {
            action: self.path("/login/mfa"),
            csrf: self.csrf.field_for(&csrf_cookie),
            from: &from,
            app,
            notice,
            name,
            step_up,
            not_you,
        });
        self.with_csrf_cookie(respond::page(status, "Verify", &body), &csrf_cookie, new)
    }

    pub(crate) async fn mfa_submit(
        &self,
        request: &Request<Bytes>,
        caller: &Caller,
    ) -> Response<Bytes> {
        let origin = self.origin(request, caller);
        let (form, csrf_ok) = match self.posted_form(request, caller) {
            Ok(checked) => checked,
            Err(wait) => return self.rate_limited_page(request, wait),
        };
        let from = form.get("fromURI").unwrap_or("").to_string();
        if !csrf_ok {
            return respond::message_page(
                StatusCode::FORBIDDEN,
                "Form expired",
                "Your verification form expired. Please sign in again.",
            );
        }
        let now = OffsetDateTime::now_utc();
        let (secret, record) = match self.current_session(request, now).await {
            Ok(Some(current)) => current,
            Ok(None) => return respond::redirect(&self.path("/login")),
            Err(e) => return respond::store_unavailable(&e, "reading the IdP session"),
        };
        let step_up =
            form.get(STEP_UP_PARAM) == Some("1") && record.body.status == SessionStatus::Active;
        if form.get(SWITCH_PARAM) == Some("1") && record.body.status == SessionStatus::MfaRequired {
            if let Err(e) = self.sessions.end(&secret, EndReason::SignOut).await {
                return respond::store_unavailable(&e, "ending a half-signed-in session");
            }
            let mut response = respond::redirect(&self.login_page_path(
                "/login",
                &from,
                form.get(APP_PARAM),
                false,
            ));
            respond::append(
                &mut response,
                header::SET_COOKIE,
                &self.clear_session_cookie(),
            );
            return response;
        }
        if record.body.status != SessionStatus::MfaRequired && !step_up {
            return respond::redirect(&self.destination(Some(&from)));
        }
        let directory = self.directory();
        let Some(user) = directory.by_id(&record.body.user_id) else {
            return respond::redirect(&self.path("/login"));
        };
        let locked = match self.lockout.locked_until(user.id(), now).await {
            Ok(locked) => locked.is_some(),
            Err(e) => return respond::store_unavailable(&e, "checking an account lockout"),
        };
        if locked {
            if let Err(e) = self.sessions.end(&secret, EndReason::SignOut).await {
                return respond::store_unavailable(&e, "ending a locked-out IdP session");
            }
            let mut response = respond::message_page(
                StatusCode::FORBIDDEN,
                "Account locked",
                "Too many failed attempts. Try again later or contact your administrator.",
            );
            respond::append(
                &mut response,
                header::SET_COOKIE,
                &self.clear_session_cookie(),
            );
            return response;
        }
        let code = form.get("code").unwrap_or("").trim();
        let verified = match self.second_factor_ok(user, code, now).await {
            Ok(verified) => verified,
            Err(e) => return respond::store_unavailable(&e, "checking a TOTP code for replay"),
        };
        if !verified {
            self.emit(events::auth_via_mfa(
                user,
                record.id.as_str(),
                false,
                &origin,
            ));
            if let Err(e) = self.count_failure(user, now, &origin).await {
                return respond::store_unavailable(&e, "counting a failed code");
            }
            let mut rebuilt = Request::new(Bytes::new());
            *rebuilt.headers_mut() = request.headers().clone();
            // The form comes back for the same destination.
            *rebuilt.uri_mut() = self
                .login_page_path("/login/mfa", &from, form.get(APP_PARAM), step_up)
                .parse()
                .unwrap_or_else(|_| request.uri().clone());
            return self
                .mfa_form(
                    &rebuilt,
                    Some("That code didn't work. Try the current code."),
                    StatusCode::UNAUTHORIZED,
                )
                .await;
        }
        if let Err(e) = self.lockout.record_success(user.id()).await {
            return respond::store_unavailable(&e, "clearing a failure count");
        }
        let record = match self.sessions.mark_mfa_verified(&secret, now).await {
            Ok(record) => record,
            Err(SessionError::Store(e)) => {
                return respond::store_unavailable(&e, "recording a verified second factor")
            }
            Err(_) => return respond::redirect(&self.path("/login")),
        };
        self.emit(events::auth_via_mfa(
            user,
            record.id.as_str(),
            true,
            &origin,
        ));
        if !step_up {
            self.emit(events::session_start(
                user,
                record.id.as_str(),
                record.body.context.as_ref(),
                &origin,
            ));
        }
        respond::redirect(&self.destination(Some(&from)))
    }

    pub(crate) async fn home(&self, request: &Request<Bytes>, caller: &Caller) -> Response<Bytes> {
        let now = OffsetDateTime::now_utc();
        match self.current_session_checked(request, caller, now).await {
            Ok(Some((_, record))) if record.body.status == SessionStatus::Active => {
                let name = self
                    .directory()
                    .by_id(&record.body.user_id)
                    .map(|u| u.display_name())
                    .unwrap_or_else(|| record.body.login.clone());
                respond::page(
                    StatusCode::OK,
                    "Signed in",
                    &page::body(&HomePage {
                        name,
                        expires: record.expires_at_rfc3339(),
                        apps: self.app_launcher(),
                        sign_out: self.path("/logout"),
                    }),
                )
            }
            Ok(_) => respond::redirect(&self.path("/login")),
            Err(response) => response,
        }
    }
}
