//! The gateway's own cookies, built and read in one place: the app's
//! session cookie (`pc_<app>`) and its short-lived request-state cookie
//! (`pc_<app>_rs`), both host-only, `Secure`, `HttpOnly`, scoped to the
//! app's path, and read from the request under the proxy's one rule for
//! duplicated names ([`portcullis_proxy::cookie::get`]).

use std::time::Duration;

use http::HeaderMap;

/// `SameSite` as the flow needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SameSite {
    /// The session cookie: sent on top-level navigations from elsewhere,
    /// never on cross-site subrequests or POSTs.
    Lax,
    /// The request-state cookie: the ACS POST (and the IdP's POST-binding
    /// LogoutResponse) arrive as cross-site form submissions, which browsers
    /// send no `Lax` cookie with.
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// One cookie of an app: its name and the path it is scoped to.
#[derive(Debug, Clone)]
pub(crate) struct AppCookie {
    pub(crate) name: String,
    /// `/` or the app's path prefix.
    pub(crate) path: String,
    same_site: SameSite,
}

impl AppCookie {
    pub(crate) fn new(name: String, path: String, same_site: SameSite) -> Self {
        AppCookie {
            name,
            path,
            same_site,
        }
    }

    /// The value the browser sent, if it sent this cookie exactly once.
    pub(crate) fn read<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        portcullis_proxy::cookie::get(headers, &self.name)
    }

    /// `Set-Cookie` for `value`; `max_age` `None` makes a browser-session cookie.
    pub(crate) fn set(&self, value: &str, max_age: Option<Duration>) -> String {
        let mut cookie = format!(
            "{}={value}; Path={}; Secure; HttpOnly; SameSite={}",
            self.name,
            self.path,
            self.same_site.as_str()
        );
        if let Some(age) = max_age {
            cookie.push_str(&format!("; Max-Age={}", age.as_secs()));
        }
        cookie
    }

    /// `Set-Cookie` that removes it.
    pub(crate) fn clear(&self) -> String {
        format!(
            "{}=; Path={}; Max-Age=0; Secure; HttpOnly; SameSite={}",
            self.name,
            self.path,
            self.same_site.as_str()
        )
    }
}

/// `Set-Cookie` values expiring every backend cookie the browser sent
/// (the gateway's and the IdP's own excepted) at `/` and at the app's
/// path, where backends usually scope them: after a backend logout hook
/// ran, the backend's session must not linger in the browser.
pub(crate) fn backend_cookie_expiry(
    headers: &HeaderMap,
    app_path: &str,
    is_gateway_cookie: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut paths = vec!["/"];
    if app_path != "/" {
        paths.push(app_path);
    }
    let mut out = Vec::new();
    for (name, _) in portcullis_proxy::cookie::pairs(headers) {
        if is_gateway_cookie(name) || !portcullis_proxy::cookie::is_token(name) {
            continue;
        }
        for path in &paths {
            out.push(format!("{name}=; Path={path}; Max-Age=0"));
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{self, HeaderValue};

    #[test]
    fn cookies_are_secure_host_only_and_scoped() {
        let session = AppCookie::new("pc_b".into(), "/b".into(), SameSite::Lax);
        assert_eq!(
            session.set("v", None),
            "pc_b=v; Path=/b; Secure; HttpOnly; SameSite=Lax"
        );
        let state = AppCookie::new("pc_b_rs".into(), "/".into(), SameSite::None);
        assert_eq!(
            state.set("id", Some(Duration::from_secs(300))),
            "pc_b_rs=id; Path=/; Secure; HttpOnly; SameSite=None; Max-Age=300"
        );
        assert_eq!(
            state.clear(),
            "pc_b_rs=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=None"
        );
    }

    #[test]
    fn backend_cookies_are_expired_at_root_and_app_path() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("JSESSIONID=1; pc_b=x; pc_idp_sid=y; bad,name=2"),
        );
        let expired = backend_cookie_expiry(&h, "/b", |n| n.starts_with("pc_"));
        assert_eq!(
            expired,
            [
                "JSESSIONID=; Path=/; Max-Age=0",
                "JSESSIONID=; Path=/b; Max-Age=0"
            ]
        );
    }
}
