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
        Ok(IdentityPlan {
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
        let mut injected: Vec<(HeaderName, HeaderValue)> = Vec::new();
        let mut bytes = 0usize;
        if let Ok(user) = HeaderValue::from_str(&session.body.user) {
            bytes += X_PORTCULLIS_USER.as_str().len() + user.len();
            injected.push((X_PORTCULLIS_USER.clone(), user));
        }
        for rule in self.rules.iter().filter(|r| r.send) {
            let Some(value) = resolve(rule, session) else {
                continue;
            };
            let Some(value) = encode(rule, value, &session.body.app) else {
                continue;
            };
            bytes += rule.name.len() + value.len() + 4;
            match (&rule.header, rule.target) {
                (Some(name), InjectTarget::Header) => match HeaderValue::from_str(&value) {
                    Ok(v) => injected.push((name.clone(), v)),
                    Err(_) => dropped(rule, &session.body.app, "not a valid header value"),
                },
                _ => cookies.push(format!("{}={value}", rule.name)),
            }
        }
        if let Some((name, signer)) = &self.jwt {
            let token = self.identity_jwt(session, signer)?;
            bytes += name.as_str().len() + token.len();
            let value = HeaderValue::from_str(&token)
                .map_err(|e| EnhanceError::Unavailable(e.to_string()))?;
            injected.push((name.clone(), value));
        }
        if bytes > self.max_bytes {
            return Err(EnhanceError::TooLarge {
                bytes,
                limit: self.max_bytes,
            });
        }
        for (name, value) in injected {
            headers.insert(name, value);
        }
        cookie::set(headers, &cookies);
        Ok(())
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
