//! Identity toward the backend: the headers and cookies an app's
//! `[[app.inject]]` rules (and `inject_template`) compute from the gateway
//! session, plus an optional signed identity JWT.
//!
//! Order matters for safety: first every header and cookie the gateway
//! controls is removed from the client's request — whatever its case or
//! how often it appears — so a client can never supply one; then the
//! session's values are added. A value that cannot travel raw (CR, LF,
//! control bytes, or `;`/`,`/`"`/`\` in a cookie) is dropped and logged
//! instead of being forwarded. Injected cookies join the client's other
//! cookies in one `Cookie` header, without duplicates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use time::macros::format_description;

use base64::Engine as _;
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use portcullis_config::{
    AppAuth, InjectRule, InjectSource, InjectTarget, MultiValue, ValueEncoding,
};
use portcullis_proxy::{cookie, EnhanceError, X_PORTCULLIS_USER};
use portcullis_saml::SigningKey;

use crate::session::Session;

/// Why an app's injection rules could not be compiled (at start or reload).
#[derive(Debug, thiserror::Error)]
pub enum IdentityConfigError {
    #[error("inject {name}: environment variable {var}: {source}")]
    Env {
        name: String,
        var: String,
        source: std::env::VarError,
    },
    #[error("inject {name}: {path}: {source}")]
    File {
        name: String,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {name}: not a valid header name")]
    HeaderName { what: &'static str, name: String },
    #[error("identity token key: {0}")]
    Key(portcullis_saml::Error),
}

/// Signs the identity JWT with the app's SP key (published at
/// `/_portcullis/jwks` under `kid`).
pub struct IdentitySigner {
    key: jsonwebtoken::EncodingKey,
    kid: String,
}

impl IdentitySigner {
    pub fn new(key: &SigningKey) -> Result<IdentitySigner, IdentityConfigError> {
        let der = key.rsa_key_der().map_err(IdentityConfigError::Key)?;
        let kid = key.jwks().map_err(IdentityConfigError::Key)?.kid;
        Ok(IdentitySigner {
            key: jsonwebtoken::EncodingKey::from_rsa_der(&der),
            kid,
        })
    }

    fn sign(&self, claims: &serde_json::Value) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key)
    }
}

enum Value {
    NameId,
    Attribute(String),
    AuthTime,
    Amr,
    IdpSession,
    /// Static values and secrets, resolved when the plan is built.
    Fixed(String),
}

struct Rule {
    value: Value,
    target: InjectTarget,
    header: Option<HeaderName>,
    name: String,
    multi: MultiValue,
    encoding: ValueEncoding,
    send: bool,
}

/// An app's compiled injection rules.
pub struct IdentityPlan {
    /// Tells this plan's [`IdentityMemo`] entries from those of the plan a
    /// reload replaced.
    id: u64,
    rules: Vec<Rule>,
    max_bytes: usize,
    /// The identity JWT's header, and what signs it.
    jwt: Option<(HeaderName, IdentitySigner)>,
    /// The app's public URL: the JWT's audience.
    audience: String,
}

fn read_secret(name: &str, source: &InjectSource) -> Result<Option<String>, IdentityConfigError> {
    match source {
        InjectSource::Env(var) => {
            std::env::var(var)
                .map(Some)
                .map_err(|source| IdentityConfigError::Env {
                    name: name.to_string(),
                    var: var.clone(),
                    source,
                })
        }
        InjectSource::File(path) => std::fs::read_to_string(path)
            .map(|s| Some(s.trim_end_matches(['\r', '\n']).to_string()))
            .map_err(|source| IdentityConfigError::File {
                name: name.to_string(),
                path: path.clone(),
                source,
            }),
        InjectSource::Static(value) => Ok(Some(value.clone())),
        _ => Ok(None),
    }
}

impl IdentityPlan {
    /// Compiles the rules; secrets are read now, so a missing one stops the
    /// start (or the reload) with its name. `signer` signs the identity JWT
    /// when the app asks for one.
    pub fn new(
        auth: &AppAuth,
        audience: String,
        signer: impl FnOnce() -> Result<IdentitySigner, IdentityConfigError>,
    ) -> Result<IdentityPlan, IdentityConfigError> {
        let mut rules = Vec::new();
        for rule in &auth.inject {
            rules.push(compile(rule)?);
        }
        let jwt = match &auth.identity_jwt_header {
            Some(name) => Some((
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    IdentityConfigError::HeaderName {
                        what: "identity_jwt_header",
                        name: name.clone(),
                    }
                })?,
                signer()?,
            )),
            None => None,
        };
        static PLANS: AtomicU64 = AtomicU64::new(0);
        Ok(IdentityPlan {
            id: PLANS.fetch_add(1, Ordering::Relaxed),
            rules,
            max_bytes: auth.max_identity_bytes,
            jwt,
            audience,
        })
    }

    /// The headers and cookies this plan injects, for the echo backend.
    pub fn shown(&self, user: &str, sign_out: String) -> portcullis_proxy::ShownIdentity {
        let sent = || self.rules.iter().filter(|r| r.send);
        let mut headers = vec![X_PORTCULLIS_USER.clone()];
        headers.extend(sent().filter_map(|r| match (&r.header, r.target) {
            (Some(name), InjectTarget::Header) => Some(name.clone()),
            _ => None,
        }));
        let jwt_header = self.jwt.as_ref().map(|(name, _)| name.clone());
        headers.extend(jwt_header.clone());
        let cookies = sent()
            .filter(|r| !matches!((&r.header, r.target), (Some(_), InjectTarget::Header)))
            .map(|r| r.name.clone())
            .collect();
        portcullis_proxy::ShownIdentity {
            user: user.to_string(),
            sign_out,
            headers,
            cookies,
            jwt_header,
        }
    }

    /// Strips what the client may not send, then injects the session's
    /// identity (nothing but the strip without a session).
    pub fn apply(
        &self,
        session: Option<&Session>,
        headers: &mut HeaderMap,
    ) -> Result<(), EnhanceError> {
        headers.remove(&X_PORTCULLIS_USER);
        if let Some((jwt, _)) = &self.jwt {
            headers.remove(jwt);
        }
        for rule in &self.rules {
            if let Some(name) = &rule.header {
                headers.remove(name);
            }
        }
        let mut cookies = client_cookies(headers, &self.rules);
        let Some(session) = session else {
            cookie::set(headers, &cookies);
            return Ok(());
        };
        let prepared = self.prepared(session);
        let mut bytes = prepared.bytes;
        let jwt = match &self.jwt {
            Some((name, signer)) => {
                let token = self.identity_jwt(session, signer)?;
                bytes += name.as_str().len() + token.len();
                let value = HeaderValue::from_str(&token)
                    .map_err(|e| EnhanceError::Unavailable(e.to_string()))?;
                Some((name.clone(), value))
            }
            None => None,
        };
        if bytes > self.max_bytes {
            return Err(EnhanceError::TooLarge {
                bytes,
                limit: self.max_bytes,
            });
        }
        for (name, value) in &prepared.headers {
            headers.insert(name.clone(), value.clone());
        }
        if let Some((name, value)) = jwt {
            headers.insert(name, value);
        }
        cookies.extend(prepared.cookies.iter().cloned());
        cookie::set(headers, &cookies);
        Ok(())
    }

    /// This session's identity under this plan, computed at its first
    /// request and then shared by every copy of the session.
    fn prepared(&self, session: &Session) -> Arc<PreparedIdentity> {
        let memo = &session.body.identity;
        if let Some((plan, prepared)) = &*memo.lock() {
            if *plan == self.id {
                return Arc::clone(prepared);
            }
        }
        let prepared = Arc::new(self.prepare(session));
        *memo.lock() = Some((self.id, Arc::clone(&prepared)));
        prepared
    }

    fn prepare(&self, session: &Session) -> PreparedIdentity {
        let mut prepared = PreparedIdentity::default();
        if let Ok(user) = HeaderValue::from_str(&session.body.user) {
            prepared.bytes += X_PORTCULLIS_USER.as_str().len() + user.len();
            prepared.headers.push((X_PORTCULLIS_USER.clone(), user));
        }
        for rule in self.rules.iter().filter(|r| r.send) {
            let Some(value) = resolve(rule, session) else {
                continue;
            };
            let Some(value) = encode(rule, value, &session.body.app) else {
                continue;
            };
            prepared.bytes += rule.name.len() + value.len() + 4;
            match (&rule.header, rule.target) {
                (Some(name), InjectTarget::Header) => match HeaderValue::from_str(&value) {
                    Ok(v) => prepared.headers.push((name.clone(), v)),
                    Err(_) => dropped(rule, &session.body.app, "not a valid header value"),
                },
                _ => prepared.cookies.push(format!("{}={value}", rule.name)),
            }
        }
        prepared
    }

    fn identity_jwt(
        &self,
        session: &Session,
        signer: &IdentitySigner,
    ) -> Result<String, EnhanceError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let groups: Vec<&str> = session.body.groups().collect();
        let jti: [u8; 12] = rand::random();
        let claims = serde_json::json!({
            "iss": self.audience,
            "aud": self.audience,
            "sub": session.body.user,
            "groups": groups,
            "sid": session.body.session_index,
            "iat": now,
            // Short: it is minted per request and only proves this request.
            "exp": now + 60,
            "jti": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(jti),
        });
        signer
            .sign(&claims)
            .map_err(|e| EnhanceError::Unavailable(format!("signing the identity token: {e}")))
    }
}

/// The headers and cookies one session's identity comes to, and their
/// size (the identity JWT aside: it is minted per request).
#[derive(Default)]
struct PreparedIdentity {
    headers: Vec<(HeaderName, HeaderValue)>,
    cookies: Vec<String>,
    bytes: usize,
}

/// Where a session keeps what [`IdentityPlan`] computed for it. A cache,
/// not data: it compares equal to any other, and a changed copy of the
/// session (`Arc::make_mut`) starts without it.
#[derive(Default)]
pub(crate) struct IdentityMemo(Mutex<Option<(u64, Arc<PreparedIdentity>)>>);

impl IdentityMemo {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(u64, Arc<PreparedIdentity>)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clone for IdentityMemo {
    fn clone(&self) -> Self {
        IdentityMemo::default()
    }
}

impl PartialEq for IdentityMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for IdentityMemo {}

impl std::fmt::Debug for IdentityMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentityMemo")
    }
}

fn compile(rule: &InjectRule) -> Result<Rule, IdentityConfigError> {
    let value = match &rule.source {
        InjectSource::NameId => Value::NameId,
        InjectSource::Attribute(name) => Value::Attribute(name.clone()),
        InjectSource::AuthTime => Value::AuthTime,
        InjectSource::Amr => Value::Amr,
        InjectSource::IdpSession => Value::IdpSession,
        other => Value::Fixed(read_secret(&rule.name, other)?.unwrap_or_default()),
    };
    let header = match rule.target {
        InjectTarget::Header => {
            Some(HeaderName::from_bytes(rule.name.as_bytes()).map_err(|_| {
                IdentityConfigError::HeaderName {
                    what: "inject",
                    name: rule.name.clone(),
                }
            })?)
        }
        InjectTarget::Cookie => None,
    };
    Ok(Rule {
        value,
        target: rule.target,
        header,
        name: rule.name.clone(),
        multi: rule.multi.clone(),
        encoding: rule.encoding,
        send: rule.send,
    })
}

fn resolve(rule: &Rule, session: &Session) -> Option<String> {
    let values: Vec<String> = match &rule.value {
        Value::NameId => vec![session.body.user.to_string()],
        Value::Attribute(name) => session.body.values(name).map(str::to_owned).collect(),
        Value::AuthTime => vec![rfc3339_seconds(session.created_at)],
        Value::Amr => vec![match session.body.authn_context.as_deref() {
            Some(c) if c.ends_with(":MultiFactor") || c.contains("mfa") => "mfa".into(),
            _ => "pwd".into(),
        }],
        Value::IdpSession => session
            .body
            .session_index
            .iter()
            .map(|index| index.to_string())
            .collect(),
        Value::Fixed(value) => vec![value.clone()],
    };
    match &rule.multi {
        _ if values.is_empty() => None,
        MultiValue::Join(separator) => Some(values.join(separator)),
        MultiValue::First => values.into_iter().next(),
        MultiValue::Last => values.into_iter().last(),
    }
}

/// When the gateway session started, `2026-12-01T21:30:00Z` (UTC, whole seconds).
fn rfc3339_seconds(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default()
}

fn encode(rule: &Rule, value: String, app: &str) -> Option<String> {
    match rule.encoding {
        ValueEncoding::Url => Some(form_urlencoded::byte_serialize(value.as_bytes()).collect()),
        ValueEncoding::Base64 => {
            Some(base64::engine::general_purpose::STANDARD.encode(value.as_bytes()))
        }
        ValueEncoding::Raw => {
            let bad_for_header = value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f);
            let bad_for_cookie = rule.target == InjectTarget::Cookie
                && value
                    .bytes()
                    .any(|b| matches!(b, b';' | b',' | b'"' | b'\\' | b' ' | b'\t') || b >= 0x80);
            if bad_for_header || bad_for_cookie {
                dropped(rule, app, "value has bytes that cannot travel raw");
                None
            } else {
                Some(value)
            }
        }
    }
}

fn dropped(rule: &Rule, app: &str, why: &'static str) {
    tracing::warn!(
        app,
        inject = %rule.name,
        reason = why,
        "identity value not forwarded (choose encoding = \"url\" or \"base64\")"
    );
}

/// The client's cookies minus the ones the app's rules inject.
fn client_cookies(headers: &HeaderMap, rules: &[Rule]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (name, value) in cookie::pairs(headers) {
        // Names compared without case: some backends read cookies that way.
        let injected = rules
            .iter()
            .any(|r| r.target == InjectTarget::Cookie && r.name.eq_ignore_ascii_case(name));
        let pair = format!("{name}={value}");
        if !injected && !out.contains(&pair) {
            out.push(pair);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use portcullis_session::{Lifetime, SessionId};

    use super::*;
    use crate::session::{compact, GatewaySession};

    /// One app's plan for `rules` (TOML `[[app.inject]]` tables).
    fn plan(rules: &str) -> IdentityPlan {
        let config = format!(
            r#"
[server]
https = ["127.0.0.1:0"]
tls_cert = "certs-dev/localhost.pem"
tls_key = "certs-dev/localhost-key.pem"

[idp]
public_url = "https://idp.test/"
users_file = "demo/users.toml"
signing_key = "certs-dev/idp-signing-key.pem"
signing_cert = "certs-dev/idp-signing.pem"

[[app]]
name = "wiki"
public_url = "https://wiki.test/"
upstream = "http://127.0.0.1:9"
auth = "saml"
idp = "embedded"
sp_signing_key = "certs-dev/sp-signing-key.pem"
sp_signing_cert = "certs-dev/sp-signing.pem"
{rules}
"#
        );
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../gateway.toml");
        let config = portcullis_config::parse(&config, &base, &portcullis_config::NoMetadata)
            .expect("config");
        let auth = config.apps[0].auth.as_ref().expect("saml app");
        IdentityPlan::new(auth, "https://wiki.test".into(), || {
            unreachable!("no identity JWT configured")
        })
        .expect("plan")
    }

    const FIRST_NAME: &str = r#"
[[app.inject]]
source = "attribute:firstName"
name = "X-First-Name"
"#;

    fn session(first_name: &str) -> Session {
        Session::new(
            SessionId::generate(),
            GatewaySession::new(
                "wiki",
                "bob@example.com".into(),
                vec![("firstName".into(), vec![first_name.into()])],
                None,
                None,
                portcullis_context::ContextSource::default().capture([127, 0, 0, 1].into(), None),
            ),
            Lifetime::new(Duration::from_secs(60), None),
            time::OffsetDateTime::now_utc(),
        )
    }

    fn applied(plan: &IdentityPlan, session: &Session) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-first-name", HeaderValue::from_static("Mallory"));
        headers.insert("x-portcullis-user", HeaderValue::from_static("mallory"));
        plan.apply(Some(session), &mut headers).expect("apply");
        headers
    }

    #[test]
    fn a_kept_identity_still_replaces_what_the_client_sent_at_every_request() {
        let plan = plan(FIRST_NAME);
        let session = session("Bob");
        for _ in 0..3 {
            let headers = applied(&plan, &session.clone());
            let first: Vec<_> = headers.get_all("x-first-name").iter().collect();
            assert_eq!(first, ["Bob"]);
            assert_eq!(headers["x-portcullis-user"], "bob@example.com");
        }
    }

    #[test]
    fn a_changed_session_and_a_reloaded_plan_compute_the_identity_again() {
        let old_plan = plan(FIRST_NAME);
        let mut session = session("Bob");
        assert_eq!(applied(&old_plan, &session)["x-first-name"], "Bob");

        // A copy a request still holds keeps what it had; the store's
        // changed copy does not reuse it.
        let held = session.clone();
        session.body.attributes = compact(vec![("firstName".into(), vec!["Robert".into()])]);
        assert_eq!(applied(&old_plan, &session)["x-first-name"], "Robert");
        assert_eq!(applied(&old_plan, &held)["x-first-name"], "Bob");
        drop(held);
        // Changed in place (no other copy left): computed again all the same.
        session.body.attributes = compact(vec![("firstName".into(), vec!["Rob".into()])]);
        assert_eq!(applied(&old_plan, &session)["x-first-name"], "Rob");

        let reloaded = plan(
            r#"
[[app.inject]]
source = "attribute:firstName"
name = "X-Given-Name"
"#,
        );
        let headers = applied(&reloaded, &session);
        assert_eq!(headers["x-given-name"], "Rob");
        // No longer the gateway's header: what the client sent goes through.
        assert_eq!(headers["x-first-name"], "Mallory");
    }
}
