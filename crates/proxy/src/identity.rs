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

use base64::Engine as _;
use http::header::{self, HeaderName, HeaderValue};
use http::HeaderMap;
use portcullis_config::{
    AppAuth, InjectRule, InjectSource, InjectTarget, MultiValue, ValueEncoding,
};

use crate::session::Session;
use crate::sso::{SamlSp, X_PORTCULLIS_USER};

/// Why the identity could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("injected identity is {bytes} bytes, over the app's limit of {limit}")]
    TooLarge { bytes: usize, limit: usize },
    #[error("signing the identity token failed: {0}")]
    Jwt(String),
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
    jwt_header: Option<HeaderName>,
    /// The app's public URL: the JWT's audience.
    audience: String,
}

fn read_secret(source: &InjectSource) -> Result<Option<String>, String> {
    match source {
        InjectSource::Env(var) => std::env::var(var)
            .map(Some)
            .map_err(|e| format!("environment variable {var}: {e}")),
        InjectSource::File(path) => std::fs::read_to_string(path)
            .map(|s| Some(s.trim_end_matches(['\r', '\n']).to_string()))
            .map_err(|e| format!("{}: {e}", path.display())),
        InjectSource::Static(value) => Ok(Some(value.clone())),
        _ => Ok(None),
    }
}

impl IdentityPlan {
    /// Compiles the rules; secrets are read now, so a missing one stops the
    /// start (or the reload) with its name.
    pub fn new(auth: &AppAuth, audience: String) -> Result<IdentityPlan, String> {
        let mut rules = Vec::new();
        for rule in &auth.inject {
            rules.push(compile(rule)?);
        }
        let jwt_header = match &auth.identity_jwt_header {
            Some(name) => Some(
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| format!("identity_jwt_header {name}: {e}"))?,
            ),
            None => None,
        };
        Ok(IdentityPlan {
            rules,
            max_bytes: auth.max_identity_bytes,
            jwt_header,
            audience,
        })
    }

    /// Strips what the client may not send, then injects the session's
    /// identity (nothing but the strip without a session).
    pub fn apply(
        &self,
        session: Option<&Session>,
        sp: &dyn SamlSp,
        headers: &mut HeaderMap,
    ) -> Result<(), IdentityError> {
        headers.remove(&X_PORTCULLIS_USER);
        if let Some(jwt) = &self.jwt_header {
            headers.remove(jwt);
        }
        for rule in &self.rules {
            if let Some(name) = &rule.header {
                headers.remove(name);
            }
        }
        let mut cookies = client_cookies(headers, &self.rules);
        let Some(session) = session else {
            set_cookie_header(headers, &cookies);
            return Ok(());
        };
        let mut injected: Vec<(HeaderName, HeaderValue)> = Vec::new();
        let mut bytes = 0usize;
        if let Ok(user) = HeaderValue::from_str(&session.user) {
            bytes += X_PORTCULLIS_USER.as_str().len() + user.len();
            injected.push((X_PORTCULLIS_USER.clone(), user));
        }
        for rule in self.rules.iter().filter(|r| r.send) {
            let Some(value) = resolve(rule, session) else {
                continue;
            };
            let Some(value) = encode(rule, value, &session.app) else {
                continue;
            };
            bytes += rule.name.len() + value.len() + 4;
            match (&rule.header, rule.target) {
                (Some(name), InjectTarget::Header) => match HeaderValue::from_str(&value) {
                    Ok(v) => injected.push((name.clone(), v)),
                    Err(_) => dropped(rule, &session.app, "not a valid header value"),
                },
                _ => cookies.push(format!("{}={value}", rule.name)),
            }
        }
        if let Some(name) = &self.jwt_header {
            let token = self.identity_jwt(session, sp)?;
            bytes += name.as_str().len() + token.len();
            let value =
                HeaderValue::from_str(&token).map_err(|e| IdentityError::Jwt(e.to_string()))?;
            injected.push((name.clone(), value));
        }
        if bytes > self.max_bytes {
            return Err(IdentityError::TooLarge {
                bytes,
                limit: self.max_bytes,
            });
        }
        for (name, value) in injected {
            headers.insert(name, value);
        }
        set_cookie_header(headers, &cookies);
        Ok(())
    }

    fn identity_jwt(&self, session: &Session, sp: &dyn SamlSp) -> Result<String, IdentityError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let groups: Vec<&str> = session.groups().collect();
        let jti: [u8; 12] = rand::random();
        let claims = serde_json::json!({
            "iss": self.audience,
            "aud": self.audience,
            "sub": session.user,
            "groups": groups,
            "sid": session.session_index,
            "iat": now,
            // Short: it is minted per request and only proves this request.
            "exp": now + 60,
            "jti": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(jti),
        });
        sp.sign_identity(&claims).map_err(IdentityError::Jwt)
    }
}

fn compile(rule: &InjectRule) -> Result<Rule, String> {
    let value = match &rule.source {
        InjectSource::NameId => Value::NameId,
        InjectSource::Attribute(name) => Value::Attribute(name.clone()),
        InjectSource::AuthTime => Value::AuthTime,
        InjectSource::Amr => Value::Amr,
        InjectSource::IdpSession => Value::IdpSession,
        other => Value::Fixed(read_secret(other)?.unwrap_or_default()),
    };
    let header = match rule.target {
        InjectTarget::Header => Some(
            HeaderName::from_bytes(rule.name.as_bytes())
                .map_err(|e| format!("inject {}: {e}", rule.name))?,
        ),
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
        Value::NameId => vec![session.user.clone()],
        Value::Attribute(name) => session
            .attributes
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, values)| values.iter().cloned())
            .collect(),
        Value::AuthTime => {
            vec![humantime::format_rfc3339_seconds(session.authenticated_at).to_string()]
        }
        Value::Amr => vec![match session.authn_context.as_deref() {
            Some(c) if c.ends_with(":MultiFactor") || c.contains("mfa") => "mfa".into(),
            _ => "pwd".into(),
        }],
        Value::IdpSession => session.session_index.iter().cloned().collect(),
        Value::Fixed(value) => vec![value.clone()],
    };
    match &rule.multi {
        _ if values.is_empty() => None,
        MultiValue::Join(separator) => Some(values.join(separator)),
        MultiValue::First => values.into_iter().next(),
        MultiValue::Last => values.into_iter().last(),
    }
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
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let name = pair.split('=').next().unwrap_or("").trim();
            // Names compared without case: some backends read cookies that way.
            let injected = rules
                .iter()
                .any(|r| r.target == InjectTarget::Cookie && r.name.eq_ignore_ascii_case(name));
            if !injected && !out.iter().any(|p| p == pair) {
                out.push(pair.to_string());
            }
        }
    }
    out
}

fn set_cookie_header(headers: &mut HeaderMap, cookies: &[String]) {
    headers.remove(header::COOKIE);
    if cookies.is_empty() {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(&cookies.join("; ")) {
        headers.insert(header::COOKIE, value);
    }
}
