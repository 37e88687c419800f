//! The Users API, shaped like Okta's: `GET /api/v1/users` (list, `q`,
//! `filter`, paging), `GET /api/v1/users/{id or login}`, and
//! `POST /api/v1/users/{id}/lifecycle/{suspend,unsuspend,deactivate,unlock,reset_factors}`.
//! Reading takes `okta.users.read`, lifecycle operations
//! `okta.users.manage`. A user's JSON never carries the password hash or
//! the TOTP secret.

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::events;
use super::respond::{self, api_error, ApiError};
use super::{query_pairs, user_agent, Caller, Idp};
use crate::api_token::Scope;
use crate::directory::{EditError, Lifecycle, User, UserQuery, UserStatus};
use crate::syslog::next_link;
use crate::user_admin::{ChangedBy, UserAdminError};

/// Longest `{id}` accepted, decoded: ids and logins are far shorter.
const MAX_KEY_LEN: usize = 256;

impl Idp {
    /// `GET /api/v1/users`.
    pub(crate) async fn users_list(
        &self,
        request: &Request<Bytes>,
        caller: &Caller,
    ) -> Response<Bytes> {
        if let Err(response) = self.api_guard(request, caller, Scope::UsersRead) {
            return *response;
        }
        let params = query_pairs(request);
        let query =
            match UserQuery::from_params(params.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
                Ok(query) => query,
                Err(e) => {
                    return api_error(&ApiError::Validation {
                        field: e.parameter().to_string(),
                        summary: e.to_string(),
                    })
                }
            };
        // One store call for the whole page, not one per user.
        let locked = match self.lockout.locked(OffsetDateTime::now_utc()).await {
            Ok(locked) => locked,
            Err(e) => return respond::api_store_unavailable(&e, "listing account lockouts"),
        };
        let directory = self.directory();
        let status = |u: &User| api_status(u, locked.contains_key(u.id()));
        let page = query.page(&directory, status);
        let base = self.users_url();
        let body: Vec<Value> = page
            .users
            .iter()
            .map(|u| user_json(u, status(u), &base))
            .collect();
        let mut response = respond::json_response(StatusCode::OK, &Value::Array(body));
        if let Some(after) = &page.next {
            let link = next_link(
                &format!("{}{}", self.settings.origin, request.uri().path()),
                params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                after,
            );
            respond::insert(&mut response, header::LINK, &link);
        }
        response
    }

    /// `GET /api/v1/users/{id}`: by id, else by login (as Okta accepts).
    pub(crate) async fn user_get(
        &self,
        request: &Request<Bytes>,
        caller: &Caller,
        key: &str,
    ) -> Response<Bytes> {
        if let Err(response) = self.api_guard(request, caller, Scope::UsersRead) {
            return *response;
        }
        let key = match user_key(key) {
            Ok(key) => key,
            Err(response) => return *response,
        };
        let directory = self.directory();
        let Some(user) = directory.by_id_or_login(&key) else {
            return api_error(&ApiError::NotFound(format!("{key} (User)")));
        };
        let locked = match self
            .is_locked_out(user.id(), OffsetDateTime::now_utc())
            .await
        {
            Ok(locked) => locked,
            Err(e) => return respond::api_store_unavailable(&e, "checking an account lockout"),
        };
        let status = api_status(user, locked);
        respond::json_response(StatusCode::OK, &user_json(user, status, &self.users_url()))
    }

    /// `POST /api/v1/users/{id}/lifecycle/{op}`: 200 `{}` as Okta answers,
    /// 400 `E0000001` when the user's status does not allow `op`.
    pub(crate) async fn user_lifecycle_api(
        &self,
        request: &Request<Bytes>,
        caller: &Caller,
        key: &str,
        op: &str,
    ) -> Response<Bytes> {
        let token = match self.api_guard(request, caller, Scope::UsersManage) {
            Ok(token) => token.name.clone(),
            Err(response) => return *response,
        };
        let Some(op) = Lifecycle::from_api_name(op) else {
            return api_error(&ApiError::NotFound(format!("lifecycle/{op}")));
        };
        let key = match user_key(key) {
            Ok(key) => key,
            Err(response) => return *response,
        };
        let Some(user_id) = self
            .directory()
            .by_id_or_login(&key)
            .map(|u| u.id().to_owned())
        else {
            return api_error(&ApiError::NotFound(format!("{key} (User)")));
        };
        let by = ChangedBy {
            actor: events::api_token_actor(&token),
            ip: Some(caller.ip),
            user_agent: user_agent(request).map(str::to_owned),
        };
        match self.change_user(&user_id, op, &by).await {
            Ok(_) => respond::json_response(StatusCode::OK, &json!({})),
            Err(UserAdminError::Edit(EditError::UnknownUser { .. })) => {
                api_error(&ApiError::NotFound(format!("{key} (User)")))
            }
            Err(UserAdminError::Edit(EditError::Transition(e))) => {
                api_error(&ApiError::Validation {
                    field: op.as_str().to_string(),
                    summary: e.to_string(),
                })
            }
            Err(UserAdminError::Lockout(e)) => {
                respond::api_store_unavailable(&e, "lifting an account lockout")
            }
            Err(e) => {
                tracing::error!(
                    request.id = %caller.request_id,
                    user = %user_id,
                    op = op.as_str(),
                    error = %e,
                    "user lifecycle operation failed"
                );
                api_error(&ApiError::Internal)
            }
        }
    }

    fn users_url(&self) -> String {
        format!("{}{}", self.settings.origin, self.path("/api/v1/users"))
    }
}

/// The status the API shows: Okta's `LOCKED_OUT` for an ACTIVE user
/// whose lockout is running.
fn api_status(user: &User, locked: bool) -> &'static str {
    if user.status() == UserStatus::Active && locked {
        "LOCKED_OUT"
    } else {
        user.status().as_str()
    }
}

/// The `{id}` segment, percent-decoded and bounded; `Err` is the 400.
fn user_key(raw: &str) -> Result<String, Box<Response<Bytes>>> {
    percent_decode(raw)
        .filter(|key| {
            !key.is_empty() && key.len() <= MAX_KEY_LEN && !key.chars().any(char::is_control)
        })
        .ok_or_else(|| {
            Box::new(api_error(&ApiError::Validation {
                field: "id".into(),
                summary: "user id or login is malformed".into(),
            }))
        })
}

/// RFC 3986 percent-decoding of a path segment (`+` stays a plus); `None`
/// for a broken escape or text that is not UTF-8.
fn percent_decode(raw: &str) -> Option<String> {
    if raw.len() > MAX_KEY_LEN * 3 {
        return None;
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A user in Okta's shape: `id`, `status`, `profile`, `credentials.provider`
/// and `_links` to what may be done next. Times Portcullis does not keep
/// (`created`, `lastUpdated`, …) are left out rather than made up.
fn user_json(user: &User, status: &str, users_url: &str) -> Value {
    let mut profile = Map::new();
    for (name, values) in user.profile_attributes() {
        let value = match values {
            [one] => Value::from(one.as_str()),
            many => Value::from(many.to_vec()),
        };
        profile.insert(name.to_string(), value);
    }
    // The standard attributes win over a custom one of the same name.
    for (name, value) in [
        ("login", user.login()),
        ("email", user.email()),
        ("firstName", user.first_name()),
        ("lastName", user.last_name()),
    ] {
        profile.insert(name.to_string(), Value::from(value));
    }
    let href = format!("{users_url}/{}", user.id());
    let mut links = Map::new();
    links.insert("self".into(), json!({ "href": href }));
    let next_ops: &[(&str, Lifecycle)] = match status {
        "ACTIVE" => &[
            ("suspend", Lifecycle::Suspend),
            ("deactivate", Lifecycle::Deactivate),
            ("resetFactors", Lifecycle::ResetFactors),
        ],
        "LOCKED_OUT" => &[
            ("unlock", Lifecycle::Unlock),
            ("suspend", Lifecycle::Suspend),
            ("deactivate", Lifecycle::Deactivate),
            ("resetFactors", Lifecycle::ResetFactors),
        ],
        "SUSPENDED" => &[
            ("unsuspend", Lifecycle::Unsuspend),
            ("deactivate", Lifecycle::Deactivate),
            ("resetFactors", Lifecycle::ResetFactors),
        ],
        _ => &[],
    };
    for (name, op) in next_ops {
        links.insert(
            (*name).to_string(),
            json!({ "href": format!("{href}/lifecycle/{}", op.as_str()), "method": "POST" }),
        );
    }
    json!({
        "id": user.id(),
        "status": status,
        "profile": profile,
        "credentials": { "provider": { "type": "OKTA", "name": "OKTA" } },
        "_links": links,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_keys_are_percent_decoded_and_bounded() {
        assert_eq!(
            percent_decode("alice%40example.com").as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(percent_decode("a+b").as_deref(), Some("a+b"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%ff"), None, "not UTF-8");
        assert!(user_key("%0a").is_err(), "control characters");
        assert!(user_key("").is_err());
        assert!(user_key(&"a".repeat(MAX_KEY_LEN + 1)).is_err());
        assert_eq!(user_key("00u1alice").ok().as_deref(), Some("00u1alice"));
    }
}
