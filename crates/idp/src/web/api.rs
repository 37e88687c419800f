//! JSON APIs: Sessions API, `/api/v1/authn`, the session-cookie redirect
//! and the System Log query API.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use super::events::{self, Origin};
use super::login::PasswordRefused;
use super::respond::{self, api_error, ApiError};
use super::{query_pairs, query_param, user_agent, Caller, Idp};
use portcullis_session::TicketError;

use crate::api_token::{ApiAuthError, ApiToken, Scope};
use crate::policy::{Outcome, SignOnContext};
use crate::session::{EndReason, PendingSignIn, SessionError, SessionId, SessionsApiJson};
use crate::syslog::Query;

/// Session ids are short opaque tokens; anything else is a client mistake.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthnBody {
    username: String,
    password: String,
    #[serde(default)]
    pass_code: Option<String>,
}

impl Idp {
    /// Token check and per-client API rate limit; `Err` is the response.
    pub(super) fn api_guard(
        &self,
        request: &Request<Bytes>,
        caller: &Caller,
        scope: Scope,
    ) -> Result<&ApiToken, Box<Response<Bytes>>> {
        if let Err(wait) = self.api_limit.check(caller.ip) {
            return Err(Box::new(api_error(&ApiError::RateLimited {
                retry_after_secs: wait.retry_after_secs(),
            })));
        }
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        self.api_tokens
            .authorize(authorization, scope)
            .map_err(|e| {
                Box::new(match e {
                    ApiAuthError::Forbidden => api_error(&ApiError::Forbidden),
                    ApiAuthError::Missing | ApiAuthError::Malformed | ApiAuthError::Invalid => {
                        api_error(&ApiError::InvalidToken)
                    }
                })
            })
    }

    pub(crate) async fn session_api(
        &self,
        request: &Request<Bytes>,
        caller: &Caller,
        method: Method,
        id: &str,
        action: Option<&str>,
    ) -> Response<Bytes> {
        let scope = match (&method, action) {
            (&Method::GET, None) => Scope::SessionsRead,
            (&Method::DELETE, None) | (&Method::POST, Some("refresh")) => Scope::SessionsManage,
            _ => return api_error(&ApiError::MethodNotAllowed),
        };
        let token = match self.api_guard(request, caller, scope) {
            Ok(token) => token,
            Err(response) => return *response,
        };
        if !valid_id(id) {
            return api_error(&ApiError::Validation {
                field: "id".into(),
                summary: "session id is malformed".into(),
            });
        }
        let session_id = SessionId::from_public(id);
        let now = OffsetDateTime::now_utc();
        let found = match (method, action) {
            (Method::GET, None) => self.sessions.get_by_id(&session_id, now).await,
            (Method::POST, Some(_)) => self.sessions.refresh(&session_id, now).await,
            _ => match self.sessions.revoke(&session_id, EndReason::Revoked).await {
                Ok(Some(record)) => {
                    if let Some(user) = self.directory().by_id(&record.body.user_id) {
                        let origin = Origin {
                            ip: caller.ip,
                            user_agent: user_agent(request),
                        };
                        self.emit(events::session_clear(
                            events::api_token_actor(&token.name),
                            user,
                            &[id.to_string()],
                            &origin,
                        ));
                    }
                    return respond::empty(StatusCode::NO_CONTENT);
                }
                Ok(None) => Err(SessionError::NotFound),
                Err(e) => Err(SessionError::Store(e)),
            },
        };
        match found {
            Ok(record) => respond::json_response(StatusCode::OK, &record.to_api_json()),
            Err(SessionError::Store(e)) => respond::api_store_unavailable(&e, "Sessions API"),
            Err(
                SessionError::Malformed
                | SessionError::NotFound
                | SessionError::Expired { .. }
                | SessionError::OtherNode { .. },
            ) => api_error(&ApiError::NotFound(format!("{id} (Session)"))),
        }
    }

    pub(crate) async fn clear_user_sessions(
        &self,
        request: &Request<Bytes>,
        caller: &Caller,
        user_id: &str,
    ) -> Response<Bytes> {
        let token = match self.api_guard(request, caller, Scope::SessionsManage) {
            Ok(token) => token,
            Err(response) => return *response,
        };
        if !valid_id(user_id) {
            return api_error(&ApiError::Validation {
                field: "userId".into(),
                summary: "user id is malformed".into(),
            });
        }
        let directory = self.directory();
        let Some(user) = directory.by_id(user_id) else {
            return api_error(&ApiError::NotFound(format!("{user_id} (User)")));
        };
        let ended = match self
            .sessions
            .revoke_user(user.id(), EndReason::UserRevoked)
            .await
        {
            Ok(ended) => ended,
            Err(e) => return respond::api_store_unavailable(&e, "clearing a user's sessions"),
        };
        let ids: Vec<String> = ended.iter().map(|r| r.id.as_str().to_string()).collect();
        let origin = Origin {
            ip: caller.ip,
            user_agent: user_agent(request),
        };
        self.emit(events::session_clear(
            events::api_token_actor(&token.name),
            user,
            &ids,
            &origin,
        ));
        respond::empty(StatusCode::NO_CONTENT)
    }

    /// `POST /api/v1/users/{userId}/universal-logout`: signs the user out of
    /// every logout-enabled app (their gateway sessions end, with what they
    /// opened); the IdP session is kept. Dispatch runs in the background.
    pub(crate) fn universal_logout_api(
        &self,
        request: &Request<Bytes>,
        caller: &Caller,
        user_id: &str,
    ) -> Response<Bytes> {
        if let Err(response) = self.api_guard(request, caller, Scope::SessionsManage) {
            return *response;
        }
        if !valid_id(user_id) {
            return api_error(&ApiError::Validation {
                field: "userId".into(),
                summary: "user id is malformed".into(),
            });
        }
        if self.universal_logout.get().is_none() {
            return api_error(&ApiError::NotFound(
                "universal logout (no logout-enabled app)".into(),
            ));
        }
        if !self.dispatch_universal_logout(user_id, "api") {
            return api_error(&ApiError::NotFound(format!("{user_id} (User)")));
        }
        respond::empty(StatusCode::NO_CONTENT)
    }

    /// `POST /api/v1/authn`: primary authentication (and TOTP when the
    /// sign-on policy asks for it) → a one-time session token.
    pub(crate) async fn authn(
        self: &Arc<Self>,
        request: &Request<Bytes>,
        caller: &Caller,
    ) -> Response<Bytes> {
        if let Err(wait) = self.sign_in_limit.check(caller.ip) {
            return api_error(&ApiError::RateLimited {
                retry_after_secs: wait.retry_after_secs(),
            });
        }
        let Ok(body) = serde_json::from_slice::<AuthnBody>(request.body()) else {
            return api_error(&ApiError::MalformedBody);
        };
        let origin = Origin {
            ip: caller.ip,
            user_agent: user_agent(request),
        };
        let now = OffsetDateTime::now_utc();
        if body.username.is_empty() || body.username.len() > 256 || body.password.len() > 1024 {
            return api_error(&ApiError::AuthenticationFailed);
        }
        let user = match self
            .verify_password(&body.username, body.password, now, &origin)
            .await
        {
            Ok(user) => user,
            Err(PasswordRefused::Failed) => return api_error(&ApiError::AuthenticationFailed),
            // Okta answers its own concurrency limit with 429 E0000047,
            // which API clients already back off from.
            Err(PasswordRefused::Busy(wait)) => {
                return api_error(&ApiError::RateLimited {
                    retry_after_secs: wait.retry_after_secs(),
                })
            }
            Err(PasswordRefused::Store(e)) => {
                return respond::api_store_unavailable(&e, "checking an account lockout")
            }
        };
        let user: &crate::directory::User = &user;
        let mut decision = self.policies().evaluate_sign_on(&SignOnContext {
            groups: user.groups(),
            ip: caller.ip,
            mfa_verified: false,
        });
        let mut mfa_verified = false;
        if decision.outcome == Outcome::Challenge {
            let Some(code) = body.pass_code.as_deref() else {
                self.emit(events::evaluate_sign_on(
                    user,
                    &decision.policy,
                    &decision.rule,
                    "CHALLENGE",
                    &origin,
                ));
                return respond::json_response(
                    StatusCode::OK,
                    &json!({
                        "status": "MFA_REQUIRED",
                        "_embedded": { "factors": [{ "factorType": "token:software:totp", "provider": "GOOGLE" }] },
                    }),
                );
            };
            let verified = match self.second_factor_ok(user, code, now).await {
                Ok(verified) => verified,
                Err(e) => return respond::api_store_unavailable(&e, "checking a TOTP code"),
            };
            if !verified {
                self.emit(events::auth_via_mfa(user, "", false, &origin));
                if let Err(e) = self.count_failure(user, now, &origin).await {
                    return respond::api_store_unavailable(&e, "counting a failed code");
                }
                return api_error(&ApiError::AuthenticationFailed);
            }
            mfa_verified = true;
            decision = self.policies().evaluate_sign_on(&SignOnContext {
                groups: user.groups(),
                ip: caller.ip,
                mfa_verified: true,
            });
        }
        self.emit(events::evaluate_sign_on(
            user,
            &decision.policy,
            &decision.rule,
            decision.outcome.as_str(),
            &origin,
        ));
        if decision.outcome != Outcome::Allow {
            self.emit(events::session_start_failed(
                &body.username,
                Some(user),
                "Denied by sign-on policy",
                &origin,
            ));
            return api_error(&ApiError::AuthenticationFailed);
        }
        let ttl = time::Duration::try_from(self.settings.session_token_ttl)
            .unwrap_or(time::Duration::MAX);
        let expires_at = now.saturating_add(ttl);
        let issued = self
            .tokens
            .issue(
                PendingSignIn {
                    user_id: user.id().to_string(),
                    login: user.login().to_string(),
                    mfa_verified,
                    limits: decision.session,
                    policy: decision.policy.clone(),
                    rule: decision.rule.clone(),
                },
                expires_at,
                now,
            )
            .await;
        let token = match issued {
            Ok(token) => token,
            Err(e) => return respond::api_store_unavailable(&e, "issuing a session token"),
        };
        let expires = crate::syslog::format_published(expires_at).unwrap_or_default();
        respond::json_response(
            StatusCode::OK,
            &json!({
                "status": "SUCCESS",
                "sessionToken": token.expose(),
                "expiresAt": expires,
                "_embedded": { "user": {
                    "id": user.id(),
                    "profile": {
                        "login": user.login(),
                        "firstName": user.first_name(),
                        "lastName": user.last_name(),
                    }
                }},
            }),
        )
    }

    /// `GET /login/sessionCookieRedirect?token=…&redirectUrl=…`: exchanges a
    /// one-time session token for the IdP session cookie.
    pub(crate) async fn session_cookie_redirect(
        &self,
        request: &Request<Bytes>,
        caller: &Caller,
    ) -> Response<Bytes> {
        let Some(target) =
            query_param(request, "redirectUrl").and_then(|t| self.allowed_redirect(&t))
        else {
            tracing::warn!(client.addr = %caller.ip, "sessionCookieRedirect to a target outside the allow-list");
            return respond::message_page(
                StatusCode::BAD_REQUEST,
                "Invalid redirect",
                "The address this link wants to send you to is not allowed.",
            );
        };
        let now = OffsetDateTime::now_utc();
        let redeemed = match query_param(request, "token") {
            Some(token) => self.tokens.redeem(&token, now).await,
            None => Err(TicketError::Unknown),
        };
        let pending = match redeemed {
            Ok(pending) => pending,
            Err(TicketError::Store(e)) => {
                return respond::store_unavailable(&e, "redeeming a session token")
            }
            Err(TicketError::Unknown | TicketError::Expired) => return respond::message_page(
                StatusCode::UNAUTHORIZED,
                "Link expired",
                "This sign-in link is invalid, expired or was already used. Please sign in again.",
            ),
        };
        let directory = self.directory();
        // The token was issued before an administrator may have suspended
        // the user: the status in force decides.
        let Some(user) = directory
            .by_id(&pending.user_id)
            .filter(|u| u.status() == crate::directory::UserStatus::Active)
        else {
            return respond::message_page(
                StatusCode::UNAUTHORIZED,
                "Link expired",
                "Please sign in again.",
            );
        };
        let created = self
            .sessions
            .create(
                pending.into_new_session(
                    Some(caller.ip),
                    user_agent(request).map(str::to_string),
                    Some(
                        self.post_auth
                            .capture(caller.ip, super::user_agent_bytes(request)),
                    ),
                    now,
                ),
            )
            .await;
        let (secret, record) = match created {
            Ok(created) => created,
            Err(e) => return respond::store_unavailable(&e, "creating an IdP session"),
        };
        let origin = Origin {
            ip: caller.ip,
            user_agent: user_agent(request),
        };
        self.emit(events::session_start(
            user,
            record.id.as_str(),
            record.body.context.as_ref(),
            &origin,
        ));
        let mut response = respond::redirect(&target);
        respond::append(
            &mut response,
            header::SET_COOKIE,
            &self.session_cookie(&secret, &record),
        );
        response
    }

    /// `GET /api/v1/logs`.
    pub(crate) fn logs(&self, request: &Request<Bytes>, caller: &Caller) -> Response<Bytes> {
        if let Err(response) = self.api_guard(request, caller, Scope::LogsRead) {
            return *response;
        }
        let params = query_pairs(request);
        let query = match Query::from_params(params.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
            Ok(query) => query,
            Err(e) => {
                return api_error(&ApiError::Validation {
                    field: e.parameter().to_string(),
                    summary: e.to_string(),
                })
            }
        };
        let page = self.log.query(&query);
        let base = format!("{}{}", self.settings.origin, request.uri().path());
        let link = page.link_header(&base, params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let body = serde_json::to_value(&page.events).unwrap_or_else(|_| json!([]));
        let mut response = respond::json_response(StatusCode::OK, &body);
        if let Some(link) = link {
            respond::insert(&mut response, header::LINK, &link);
        }
        response
    }
}

/// Latest violations listed by default, and at most.
const REPORT_LATEST: usize = 20;
const REPORT_LATEST_MAX: usize = 100;
/// The window when `since` is not given.
const REPORT_WINDOW: time::Duration = time::Duration::hours(24);

impl Idp {
    /// `GET /api/v1/post-auth/report?since=&until=&limit=`: violations
    /// counted by user, app, attribute and outcome over the window (the
    /// last 24 hours by default), plus the latest ones.
    pub(crate) fn post_auth_report(
        &self,
        request: &Request<Bytes>,
        caller: &Caller,
    ) -> Response<Bytes> {
        if let Err(response) = self.api_guard(request, caller, Scope::LogsRead) {
            return *response;
        }
        let invalid = |field: &str, summary: String| {
            api_error(&ApiError::Validation {
                field: field.to_string(),
                summary,
            })
        };
        // `Err` names the parameter that is not a time.
        let time_param = |name: &'static str| -> Result<Option<OffsetDateTime>, &'static str> {
            query_param(request, name)
                .map(|text| {
                    OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                        .map_err(|_| name)
                })
                .transpose()
        };
        let not_a_time = |name: &str| invalid(name, format!("{name}: not an RFC 3339 time"));
        let until = match time_param("until") {
            Ok(until) => until.unwrap_or_else(OffsetDateTime::now_utc),
            Err(name) => return not_a_time(name),
        };
        let since = match time_param("since") {
            Ok(since) => since.unwrap_or(until - REPORT_WINDOW),
            Err(name) => return not_a_time(name),
        };
        if since > until {
            return invalid("since", "since: after until".into());
        }
        let latest = match query_param(request, "limit").map(|l| l.parse::<usize>()) {
            None => REPORT_LATEST,
            Some(Ok(n)) if n <= REPORT_LATEST_MAX => n,
            Some(_) => {
                return invalid(
                    "limit",
                    format!("limit: a number from 0 to {REPORT_LATEST_MAX}"),
                )
            }
        };
        self.post_auth
            .report
            .summarise(since, until, latest, |summary| {
                let body = serde_json::to_value(summary).unwrap_or_else(|_| json!({}));
                respond::json_response(StatusCode::OK, &body)
            })
    }
}
