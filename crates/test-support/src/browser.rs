//! A cookie-keeping wrapper around [`Client`] for sign-in flows: it stores
//! what `Set-Cookie` sets (name and value only, one host's worth, which is
//! all the tests need), sends it back, and posts urlencoded forms. Like the
//! plain client it never follows redirects.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;
use http::{header, Request};
use http_body_util::{BodyExt, Full};

use crate::client::{Client, Reply, TestBody};

/// One `Set-Cookie` header, split into its name, value and attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCookie {
    pub name: String,
    pub value: String,
    /// Attributes as written (`Path=/`, `Secure`, …), trimmed.
    pub attributes: Vec<String>,
}

impl SetCookie {
    pub fn parse(header: &str) -> Option<SetCookie> {
        let mut parts = header.split(';');
        let (name, value) = parts.next()?.trim().split_once('=')?;
        Some(SetCookie {
            name: name.trim().to_string(),
            value: value.trim().to_string(),
            attributes: parts
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect(),
        })
    }

    /// Whether an attribute is present, ignoring ASCII case (`Secure`, or
    /// `Path=/` compared whole).
    pub fn has(&self, attribute: &str) -> bool {
        self.attributes
            .iter()
            .any(|a| a.eq_ignore_ascii_case(attribute))
    }

    pub fn deletes(&self) -> bool {
        self.attributes.iter().any(|a| {
            a.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("max-age") && v.trim().starts_with(['0', '-'])
            })
        })
    }
}

/// Every `Set-Cookie` of a reply.
pub fn set_cookies(reply: &Reply) -> Vec<SetCookie> {
    reply
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(SetCookie::parse)
        .collect()
}

/// The `Set-Cookie` of `name` in a reply, if any.
pub fn set_cookie(reply: &Reply, name: &str) -> Option<SetCookie> {
    set_cookies(reply).into_iter().find(|c| c.name == name)
}

/// `application/x-www-form-urlencoded` for `fields`.
pub fn form_encode(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but RFC 3986 unreserved characters, which is
/// valid both in a query string and in a form body.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A [`Client`] with a cookie jar.
pub struct Browser {
    client: Client,
    jar: Mutex<BTreeMap<String, String>>,
}

impl Browser {
    pub fn new(client: Client) -> Browser {
        Browser {
            client,
            jar: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The jar's value for `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().expect("jar").get(name).cloned()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.jar
            .lock()
            .expect("jar")
            .insert(name.to_string(), value.to_string());
    }

    /// Another browser holding this one's cookies, connecting through
    /// `client`: the same session replayed from another address or device.
    pub fn replayed_through(&self, client: Client) -> Browser {
        Browser {
            client,
            jar: Mutex::new(self.jar.lock().expect("jar").clone()),
        }
    }

    pub fn remove_cookie(&self, name: &str) {
        self.jar.lock().expect("jar").remove(name);
    }

    /// Sends `request` with the jar's cookies and stores what the reply sets.
    pub async fn send(&self, request: Request<TestBody>) -> Reply {
        self.try_send(request).await.expect("request failed")
    }

    /// [`send`](Self::send) that returns a transport failure instead of
    /// panicking.
    pub async fn try_send(
        &self,
        mut request: Request<TestBody>,
    ) -> Result<Reply, crate::client::BoxError> {
        let cookies = {
            let jar = self.jar.lock().expect("jar");
            jar.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        if !cookies.is_empty() {
            request.headers_mut().insert(
                header::COOKIE,
                cookies.parse().expect("cookie header value"),
            );
        }
        let reply = self.client.try_send(request).await?;
        let mut jar = self.jar.lock().expect("jar");
        for cookie in set_cookies(&reply) {
            if cookie.deletes() {
                jar.remove(&cookie.name);
            } else {
                jar.insert(cookie.name, cookie.value);
            }
        }
        Ok(reply)
    }

    pub async fn get(&self, url: &str) -> Reply {
        self.send(Request::get(url).body(Client::empty()).expect("request"))
            .await
    }

    /// POSTs `fields` as an urlencoded form.
    pub async fn post_form(&self, url: &str, fields: &[(&str, &str)]) -> Reply {
        let body: TestBody = Full::new(Bytes::from(form_encode(fields)))
            .map_err(|never| match never {})
            .boxed();
        self.send(
            Request::post(url)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body)
                .expect("request"),
        )
        .await
    }
}

/// The `value` of the `<input … name="{name}" … value="…">` in an HTML page
/// (attribute order as the IdP writes it: `name` before `value`).
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\"");
    let at = html.find(&needle)?;
    let tag_start = html.get(..at)?.rfind('<')?;
    let tag_end = at + html.get(at..)?.find('>')?;
    let tag = html.get(tag_start..tag_end)?;
    let value_at = tag.find("value=\"")? + "value=\"".len();
    let rest = tag.get(value_at..)?;
    Some(rest.get(..rest.find('"')?)?.to_string())
}
