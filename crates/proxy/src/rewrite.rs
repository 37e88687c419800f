//! Response rewriting: makes an upstream that believes it lives at
//! `http://10.0.0.5:8080/legacy` look as if it lived at the app's public URL
//! (`https://app.example.com/wiki`).
//!
//! Two layers:
//!
//! - **Headers** ([`rewrite_response_headers`]): `Location`,
//!   `Content-Location`, `Refresh` and every `Set-Cookie` (`Domain` and
//!   `Path`). Always cheap; a value that cannot be rewritten into a valid
//!   header is left as the upstream sent it.
//! - **Bodies** ([`BodyRewriter`], [`CodedRewriter`], [`RewritingBody`]):
//!   streaming replacement of the upstream's absolute and protocol-relative
//!   URLs in HTML, CSS and JavaScript, through gzip and br. Off by default;
//!   the pipeline decides with [`should_rewrite_body`] and must then call
//!   [`remove_content_length`], because the rewritten body has a different
//!   length than the upstream announced.
//!
//! The mapping mirrors `upstream::HttpUpstream::map_uri`, in reverse: the
//! upstream base path is replaced by the public prefix.

use http::header::{self, Entry, HeaderMap, HeaderName, HeaderValue};
use portcullis_config::{PublicUrl, UpstreamTarget};

/// One spelling of the upstream origin: `scheme://authority`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InternalOrigin {
    scheme: &'static str,
    /// Lowercase `host:port`, `[v6]:port`, or the host alone when the port
    /// is the scheme's default.
    authority: String,
}

/// How the upstream's own URLs map to the app's public URL.
#[derive(Debug, Clone)]
pub(crate) struct UrlMap {
    /// Every spelling of the upstream origin the upstream may use for
    /// itself (with and without a default port).
    internal: Vec<InternalOrigin>,
    /// Lowercase host of the upstream, without IPv6 brackets; what a
    /// `Set-Cookie` `Domain` is compared with.
    upstream_host: String,
    /// `""` or `/segment[/segment…]`, no trailing slash.
    base_path: String,
    /// `scheme://authority` of the app, default port omitted.
    public_origin: String,
    /// `authority` of the app, default port omitted (for protocol-relative
    /// URLs).
    public_authority: String,
    /// `""` for an app at `/`, else `/segment[/segment…]`.
    public_prefix: String,
}

fn default_port(tls: bool) -> u16 {
    if tls {
        443
    } else {
        80
    }
}

/// `host[:port]` as a URL spells it: IPv6 bracketed, default port omitted.
fn url_authority(host: &str, port: u16, tls: bool) -> String {
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    if port == default_port(tls) {
        host
    } else {
        format!("{host}:{port}")
    }
}

/// Splits `host:port`, `[v6]:port`, `host` or `[v6]` into a lowercase host
/// (brackets kept for IPv6) and a port.
fn split_authority(authority: &str, tls: bool) -> (String, u16) {
    let authority = authority.to_ascii_lowercase();
    let (host, port) = if authority.starts_with('[') {
        match authority.rsplit_once("]:") {
            Some((host, port)) => (format!("{host}]"), Some(port.to_string())),
            None => (authority.clone(), None),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), Some(port.to_string())),
            None => (authority.clone(), None),
        }
    };
    let port = port
        .and_then(|p| p.parse().ok())
        .unwrap_or(default_port(tls));
    (host, port)
}

impl UrlMap {
    /// `public_prefix` as in [`PublicUrl`] (`/` or `/a/b`), `upstream_base_path`
    /// as in [`UpstreamTarget`] (`""` or `/a/b`); a trailing slash on either
    /// is tolerated.
    pub(crate) fn new(
        public_scheme: &str,
        public_host: &str,
        public_port: u16,
        public_prefix: &str,
        upstream_tls: bool,
        upstream_authority: &str,
        upstream_base_path: &str,
    ) -> UrlMap {
        let public_tls = public_scheme.eq_ignore_ascii_case("https");
        let public_authority =
            url_authority(&public_host.to_ascii_lowercase(), public_port, public_tls);
        let scheme = if upstream_tls { "https" } else { "http" };
        let (host, port) = split_authority(upstream_authority, upstream_tls);
        let mut internal = vec![InternalOrigin {
            scheme,
            authority: format!("{host}:{port}"),
        }];
        if port == default_port(upstream_tls) {
            // Backends usually build their own URLs from `Host`, which omits
            // a default port; some add it anyway. Both are ours.
            internal.push(InternalOrigin {
                scheme,
                authority: host.clone(),
            });
        }
        UrlMap {
            internal,
            upstream_host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            base_path: upstream_base_path.trim_end_matches('/').to_string(),
            public_origin: format!(
                "{}://{}",
                public_scheme.to_ascii_lowercase(),
                public_authority
            ),
            public_authority,
            public_prefix: public_prefix.trim_end_matches('/').to_string(),
        }
    }

    /// The map for an app from its validated configuration.
    pub(crate) fn from_config(public: &PublicUrl, upstream: &UpstreamTarget) -> UrlMap {
        UrlMap::new(
            &public.scheme,
            &public.host,
            public.port,
            &public.path_prefix,
            upstream.tls,
            &upstream.authority,
            &upstream.base_path,
        )
    }

    /// Maps what follows the upstream authority (`/base/x?q#f`, or a
    /// relative path) to the public path, when it lies under the base path.
    fn map_rest(&self, rest: &str) -> Option<String> {
        let after = if self.base_path.is_empty() {
            rest
        } else {
            let after = rest.strip_prefix(self.base_path.as_str())?;
            if !(after.is_empty() || after.starts_with(['/', '?', '#'])) {
                // `/legacyfoo` is not under `/legacy`.
                return None;
            }
            after
        };
        let mut mapped = String::with_capacity(self.public_prefix.len() + after.len() + 1);
        mapped.push_str(&self.public_prefix);
        if mapped.is_empty() && !after.starts_with('/') {
            // `http://backend/legacy?x` with an app at `/` must still have a
            // path: `/?x`, not `?x`.
            mapped.push('/');
        }
        mapped.push_str(after);
        if mapped.len() > 1 && mapped.starts_with("//") {
            // Never produce a protocol-relative URL from a path.
            return None;
        }
        Some(mapped)
    }

    /// Whether `authority` (as written in a URL) is one of the upstream's
    /// spellings for `scheme`.
    fn is_internal(&self, scheme: Option<&str>, authority: &str) -> bool {
        self.internal.iter().any(|origin| {
            scheme.is_none_or(|s| s.eq_ignore_ascii_case(origin.scheme))
                && authority.eq_ignore_ascii_case(&origin.authority)
        })
    }

    /// A `Location` or `Content-Location` value pointing at the upstream,
    /// mapped to the public URL; `None` when it is left alone (another host,
    /// a path outside the base path, a relative reference, or nothing
    /// changes).
    pub(crate) fn rewrite_location(&self, value: &str) -> Option<String> {
        let value_trimmed = value.trim();
        let rewritten = if let Some(rest) = value_trimmed.strip_prefix("//") {
            // Protocol-relative: resolved against the page's (public)
            // scheme, so it stays protocol-relative.
            let (authority, rest) = split_at_path(rest);
            if !self.is_internal(None, authority) {
                return None;
            }
            format!("//{}{}", self.public_authority, self.map_rest(rest)?)
        } else if value_trimmed.starts_with('/') {
            self.map_rest(value_trimmed)?
        } else {
            let (scheme, rest) = value_trimmed.split_once("://")?;
            if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
                return None;
            }
            let (authority, rest) = split_at_path(rest);
            if !self.is_internal(Some(scheme), authority) {
                return None;
            }
            format!("{}{}", self.public_origin, self.map_rest(rest)?)
        };
        (rewritten != value).then_some(rewritten)
    }

    /// A `Refresh` value (`5; url=http://backend/base/x`) with its URL
    /// mapped like [`Self::rewrite_location`]; everything around the URL is
    /// kept as sent.
    pub(crate) fn rewrite_refresh(&self, value: &str) -> Option<String> {
        let bytes = value.as_bytes();
        let skip_ws = |mut i: usize| {
            while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
                i += 1;
            }
            i
        };
        let mut i = skip_ws(0);
        while bytes
            .get(i)
            .is_some_and(|b| b.is_ascii_digit() || *b == b'.')
        {
            i += 1;
        }
        i = skip_ws(i);
        // The delay and the URL are separated by `;` (or `,`, which
        // browsers accept too); a bare delay has no URL to rewrite.
        if !matches!(bytes.get(i), Some(b';' | b',')) {
            return None;
        }
        i = skip_ws(i + 1);
        if bytes
            .get(i..i + 3)
            .is_some_and(|name| name.eq_ignore_ascii_case(b"url"))
        {
            let eq = skip_ws(i + 3);
            if bytes.get(eq) == Some(&b'=') {
                i = skip_ws(eq + 1);
            }
            // Otherwise the URL itself starts with "url" (a relative one):
            // leave `i` at it.
        }
        let (start, end) = match bytes.get(i) {
            Some(quote @ (b'"' | b'\'')) => {
                let start = i + 1;
                let end = bytes[start..]
                    .iter()
                    .position(|b| b == quote)
                    .map_or(bytes.len(), |p| start + p);
                (start, end)
            }
            Some(_) => (i, value.trim_end().len().max(i)),
            None => return None,
        };
        // `start` and `end` sit next to ASCII bytes, so they are char
        // boundaries.
        let url = value.get(start..end)?;
        let mapped = self.rewrite_location(url)?;
        Some(format!("{}{}{}", &value[..start], mapped, &value[end..]))
    }

    /// A `Set-Cookie` value with `Domain` and `Path` mapped to the public
    /// URL. Done at the attribute level on the string (rather than parsing
    /// and re-serialising with a cookie library) so that every other byte,
    /// including attributes a library would not know (`Partitioned`,
    /// `Priority`) and the exact `Expires` spelling, reaches the browser as
    /// the upstream sent it.
    pub(crate) fn rewrite_set_cookie(&self, value: &str) -> String {
        let mut parts = value.split(';');
        let mut out = String::with_capacity(value.len() + self.public_prefix.len());
        // The `name=value` pair is never touched.
        out.push_str(parts.next().unwrap_or_default());
        for part in parts {
            let (name, attribute_value) = part.split_once('=').unwrap_or((part, ""));
            let name = name.trim();
            if name.eq_ignore_ascii_case("domain") && self.is_upstream_domain(attribute_value) {
                // The upstream scoped the cookie to its own (internal) host
                // or a parent domain of it. Make it host-only rather than
                // `Domain=<public host>`: the public host may be an IP
                // address, which `Domain` cannot name, and a `Domain` would
                // also send the cookie to every subdomain of the public host
                // — other apps behind this gateway — which the upstream
                // never asked for. Host-only is the narrowest scope that
                // still reaches this app.
                continue;
            }
            out.push(';');
            if name.eq_ignore_ascii_case("path") {
                if let Some(mapped) = self.map_cookie_path(attribute_value.trim()) {
                    // Keep the attribute name and the spacing as sent;
                    // replace only the value.
                    let value_start = part.len() - attribute_value.len()
                        + (attribute_value.len() - attribute_value.trim_start().len());
                    let value_end =
                        part.len() - (attribute_value.len() - attribute_value.trim_end().len());
                    out.push_str(&part[..value_start]);
                    out.push_str(&mapped);
                    out.push_str(&part[value_end..]);
                    continue;
                }
            }
            out.push_str(part);
        }
        out
    }

    fn is_upstream_domain(&self, domain: &str) -> bool {
        let domain = domain.trim();
        let domain = domain
            .strip_prefix('.')
            .unwrap_or(domain)
            .to_ascii_lowercase();
        if domain.is_empty() {
            return false;
        }
        if domain == self.upstream_host {
            return true;
        }
        let is_ip = self.upstream_host.parse::<std::net::IpAddr>().is_ok();
        !is_ip
            && self
                .upstream_host
                .strip_suffix(domain.as_str())
                .is_some_and(|sub| sub.ends_with('.'))
    }

    /// A cookie `Path` under the base path, mapped to the public prefix;
    /// `/` (the whole upstream) maps to the app's prefix root.
    fn map_cookie_path(&self, path: &str) -> Option<String> {
        if path.is_empty() || !path.starts_with('/') {
            // An empty or relative Path means "the default path" to a
            // browser (the request's directory), already public.
            return None;
        }
        if path == "/" {
            let root = if self.public_prefix.is_empty() {
                "/"
            } else {
                self.public_prefix.as_str()
            };
            return (root != path).then(|| root.to_string());
        }
        let mapped = self.map_rest(path)?;
        (mapped != path).then_some(mapped)
    }
}

/// `authority` and what follows it (`/path?q#f`, possibly empty).
fn split_at_path(rest: &str) -> (&str, &str) {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    rest.split_at(end)
}

/// Rewrites `Location`, `Content-Location`, `Refresh` and every
/// `Set-Cookie` of an upstream response in place. A value that is not
/// visible ASCII is left alone, and so is one whose rewrite would not be a
/// valid header value (logged).
pub(crate) fn rewrite_response_headers(map: &UrlMap, headers: &mut HeaderMap) {
    type Rewrite = fn(&UrlMap, &str) -> Option<String>;
    let rules: [(HeaderName, Rewrite); 4] = [
        (header::LOCATION, UrlMap::rewrite_location),
        (header::CONTENT_LOCATION, UrlMap::rewrite_location),
        (header::REFRESH, UrlMap::rewrite_refresh),
        (header::SET_COOKIE, |map, value| {
            let rewritten = map.rewrite_set_cookie(value);
            (rewritten != value).then_some(rewritten)
        }),
    ];
    for (name, rewrite) in rules {
        let Entry::Occupied(mut entry) = headers.entry(&name) else {
            continue;
        };
        for value in entry.iter_mut() {
            let Ok(text) = value.to_str() else {
                continue;
            };
            let Some(rewritten) = rewrite(map, text) else {
                continue;
            };
            match HeaderValue::from_str(&rewritten) {
                Ok(mut new_value) => {
                    new_value.set_sensitive(value.is_sensitive());
                    *value = new_value;
                }
                Err(error) => {
                    tracing::warn!(header = %name, %error, "rewritten response header is not a valid value; kept the upstream's");
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `https://app.example.com/wiki` in front of `http://10.0.0.5:8080/legacy`.
    fn wiki() -> UrlMap {
        UrlMap::new(
            "https",
            "app.example.com",
            443,
            "/wiki",
            false,
            "10.0.0.5:8080",
            "/legacy",
        )
    }

    /// An app at `/` in front of `http://Backend.Internal:80` (default port,
    /// no base path).
    fn root_default_port() -> UrlMap {
        UrlMap::new(
            "https",
            "app.example.com",
            443,
            "/",
            false,
            "Backend.Internal:80",
            "",
        )
    }

    const ABS: &str = "http://10.0.0.5:8080/legacy";
    const PUB: &str = "https://app.example.com/wiki";

    // ---- Location / Content-Location -------------------------------------

    #[test]
    fn absolute_location_keeps_query_and_fragment() {
        let map = wiki();
        assert_eq!(
            map.rewrite_location("http://10.0.0.5:8080/legacy/page?a=1&b=2#frag")
                .as_deref(),
            Some("https://app.example.com/wiki/page?a=1&b=2#frag")
        );
        assert_eq!(map.rewrite_location(ABS).as_deref(), Some(PUB));
        assert_eq!(
            map.rewrite_location("http://10.0.0.5:8080/legacy?x=1#y")
                .as_deref(),
            Some("https://app.example.com/wiki?x=1#y")
        );
        assert_eq!(
            map.rewrite_location("http://10.0.0.5:8080/legacy/")
                .as_deref(),
            Some("https://app.example.com/wiki/")
        );
    }

    #[test]
    fn scheme_and_host_compare_case_insensitively() {
        let map = wiki();
        assert_eq!(
            map.rewrite_location("HTTP://10.0.0.5:8080/legacy/x")
                .as_deref(),
            Some("https://app.example.com/wiki/x")
        );
        let map = root_default_port();
        assert_eq!(
            map.rewrite_location("http://BACKEND.internal/x").as_deref(),
            Some("https://app.example.com/x")
        );
        // The base path is case-sensitive.
        assert_eq!(
            wiki().rewrite_location("http://10.0.0.5:8080/LEGACY/x"),
            None
        );
    }

    #[test]
    fn default_port_is_recognised_with_and_without_the_port() {
        let map = root_default_port();
        for location in [
            "http://backend.internal/a?b",
            "http://backend.internal:80/a?b",
        ] {
            assert_eq!(
                map.rewrite_location(location).as_deref(),
                Some("https://app.example.com/a?b"),
                "{location}"
            );
        }
        assert_eq!(
            map.rewrite_location("http://backend.internal").as_deref(),
            Some("https://app.example.com/")
        );
        // https on 443 likewise; the other scheme is another origin.
        let map = UrlMap::new(
            "https",
            "app.example.com",
            443,
            "/api",
            true,
            "api.internal:443",
            "",
        );
        assert_eq!(
            map.rewrite_location("https://api.internal/v1").as_deref(),
            Some("https://app.example.com/api/v1")
        );
        assert_eq!(
            map.rewrite_location("https://api.internal:443/v1")
                .as_deref(),
            Some("https://app.example.com/api/v1")
        );
        assert_eq!(map.rewrite_location("http://api.internal/v1"), None);
        // A non-default port must be spelled out.
        assert_eq!(wiki().rewrite_location("http://10.0.0.5/legacy/x"), None);
    }

    #[test]
    fn other_hosts_and_paths_outside_the_base_are_left_alone() {
        let map = wiki();
        for location in [
            "http://other.example/legacy/x",
            "http://10.0.0.5:8081/legacy/x",
            "http://10.0.0.5:8080/other/x",
            "http://10.0.0.5:8080/legacyx",
            "http://10.0.0.5:8080",
            "https://10.0.0.5:8080/legacy/x",
            "/other/x",
            "/legacy.html",
            "relative/path",
            "../up",
            "?query-only",
            "mailto:someone@example.com",
            "//other.example/legacy/x",
            "",
        ] {
            assert_eq!(map.rewrite_location(location), None, "{location}");
        }
    }

    #[test]
    fn relative_paths_under_the_base_get_the_prefix() {
        let map = wiki();
        assert_eq!(
            map.rewrite_location("/legacy/x?y=1#z").as_deref(),
            Some("/wiki/x?y=1#z")
        );
        assert_eq!(map.rewrite_location("/legacy").as_deref(), Some("/wiki"));
        assert_eq!(
            map.rewrite_location("/legacy?q").as_deref(),
            Some("/wiki?q")
        );
        // An app at `/` over a base path.
        let map = UrlMap::new(
            "https",
            "app.example.com",
            443,
            "/",
            false,
            "10.0.0.5:8080",
            "/legacy",
        );
        assert_eq!(map.rewrite_location("/legacy/a").as_deref(), Some("/a"));
        assert_eq!(map.rewrite_location("/legacy?x").as_deref(), Some("/?x"));
        assert_eq!(
            map.rewrite_location(ABS).as_deref(),
            Some("https://app.example.com/")
        );
        // Never turned into a protocol-relative URL.
        assert_eq!(map.rewrite_location("/legacy//evil.example/"), None);
        // No base path: every absolute path is the upstream's.
        let map = UrlMap::new(
            "https",
            "app.example.com",
            443,
            "/wiki",
            false,
            "backend:8080",
            "",
        );
        assert_eq!(
            map.rewrite_location("/a/b?c").as_deref(),
            Some("/wiki/a/b?c")
        );
        // Nothing to do when prefix and base are both the root.
        assert_eq!(root_default_port().rewrite_location("/a"), None);
    }

    #[test]
    fn protocol_relative_location_stays_protocol_relative() {
        assert_eq!(
            wiki()
                .rewrite_location("//10.0.0.5:8080/legacy/x?q")
                .as_deref(),
            Some("//app.example.com/wiki/x?q")
        );
    }

    #[test]
    fn public_port_and_ipv6_upstream() {
        let map = UrlMap::new(
            "http",
            "192.168.1.10",
            8443,
            "/app",
            false,
            "[FD00::5]:8080",
            "/legacy",
        );
        assert_eq!(
            map.rewrite_location("http://[fd00::5]:8080/legacy/x")
                .as_deref(),
            Some("http://192.168.1.10:8443/app/x")
        );
        let map = UrlMap::new("https", "::1", 443, "/", false, "backend:80", "");
        assert_eq!(
            map.rewrite_location("http://backend/x").as_deref(),
            Some("https://[::1]/x")
        );
    }

    #[test]
    fn from_config_uses_the_normalised_forms() {
        let public = PublicUrl {
            scheme: "https".into(),
            host: "app.example.com".into(),
            port: 443,
            path_prefix: "/wiki".into(),
        };
        let upstream = UpstreamTarget {
            tls: false,
            authority: "10.0.0.5:8080".into(),
            base_path: "/legacy".into(),
            ca: None,
            sni: None,
        };
        let map = UrlMap::from_config(&public, &upstream);
        assert_eq!(
            map.rewrite_location("http://10.0.0.5:8080/legacy/x")
                .as_deref(),
            Some("https://app.example.com/wiki/x")
        );
    }

    // ---- Refresh ----------------------------------------------------------

    #[test]
    fn refresh_url_is_rewritten_and_the_rest_kept() {
        let map = wiki();
        let cases = [
            (
                "5; url=http://10.0.0.5:8080/legacy/x?q=1#f",
                "5; url=https://app.example.com/wiki/x?q=1#f",
            ),
            (
                "0;URL='http://10.0.0.5:8080/legacy/x'",
                "0;URL='https://app.example.com/wiki/x'",
            ),
            ("3 ; Url = \"/legacy/y\" ", "3 ; Url = \"/wiki/y\" "),
            ("1.5,url=/legacy/z", "1.5,url=/wiki/z"),
            (
                "0; http://10.0.0.5:8080/legacy/bare",
                "0; https://app.example.com/wiki/bare",
            ),
            ("2; url='/legacy/unterminated", "2; url='/wiki/unterminated"),
        ];
        for (value, expected) in cases {
            assert_eq!(
                map.rewrite_refresh(value).as_deref(),
                Some(expected),
                "{value}"
            );
        }
        for value in [
            "5",
            "5;",
            "5; url=",
            "5; url=http://other/legacy/x",
            "5; url=/other",
            "x; url=/legacy",
        ] {
            assert_eq!(map.rewrite_refresh(value), None, "{value}");
        }
    }

    // ---- Set-Cookie -------------------------------------------------------

    #[test]
    fn cookie_domain_of_the_upstream_becomes_host_only_and_path_is_mapped() {
        let map = wiki();
        assert_eq!(
            map.rewrite_set_cookie("sid=abc; Path=/legacy/app; Domain=10.0.0.5; HttpOnly; Secure"),
            "sid=abc; Path=/wiki/app; HttpOnly; Secure"
        );
        assert_eq!(
            map.rewrite_set_cookie("a=b; Path=/legacy"),
            "a=b; Path=/wiki"
        );
        assert_eq!(map.rewrite_set_cookie("a=b; path=/"), "a=b; path=/wiki");
        let map = UrlMap::new(
            "https",
            "app.example.com",
            443,
            "/",
            false,
            "app.internal.corp:8080",
            "/legacy",
        );
        assert_eq!(
            map.rewrite_set_cookie("a=b; path=/; domain=.internal.corp; SameSite=Lax"),
            "a=b; path=/; SameSite=Lax"
        );
        assert_eq!(
            map.rewrite_set_cookie("a=b; Domain=APP.internal.corp"),
            "a=b"
        );
        assert_eq!(
            map.rewrite_set_cookie("a=b; Path=/legacy/x"),
            "a=b; Path=/x"
        );
    }

    #[test]
    fn cookie_attributes_outside_the_mapping_are_kept_byte_for_byte() {
        let map = UrlMap::new(
            "https",
            "app.example.com",
            443,
            "/wiki",
            false,
            "app.internal.corp:8080",
            "/legacy",
        );
        for value in [
            "a=b; Domain=example.com",
            "a=b; Domain=nal.corp",
            "a=b; Path=/other",
            "a=b; Path=/legacyx",
            "a=b; Path=",
            "a=b;Max-Age=0;HttpOnly",
            "Domain=app.internal.corp",
            "a=b; Domain=",
        ] {
            assert_eq!(map.rewrite_set_cookie(value), value, "{value}");
        }
        // Only the Path value changes; spacing, case, Expires and unknown
        // attributes stay as sent.
        assert_eq!(
            map.rewrite_set_cookie(
                "a=\"x y\"; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Partitioned;  PATH = /legacy/p ; Priority=High"
            ),
            "a=\"x y\"; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Partitioned;  PATH = /wiki/p ; Priority=High"
        );
        // An IP upstream has no parent domains.
        let map = wiki();
        assert_eq!(
            map.rewrite_set_cookie("a=b; Domain=0.0.5"),
            "a=b; Domain=0.0.5"
        );
    }

    #[test]
    fn cookie_path_with_no_base_path() {
        let map = UrlMap::new(
            "https",
            "app.example.com",
            443,
            "/wiki",
            false,
            "backend:8080",
            "",
        );
        assert_eq!(map.rewrite_set_cookie("a=b; Path=/"), "a=b; Path=/wiki");
        assert_eq!(map.rewrite_set_cookie("a=b; Path=/x"), "a=b; Path=/wiki/x");
        assert_eq!(
            root_default_port().rewrite_set_cookie("a=b; Path=/"),
            "a=b; Path=/"
        );
    }

    // ---- Whole header maps ------------------------------------------------

    fn header_values(headers: &HeaderMap, name: HeaderName) -> Vec<&str> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn every_header_and_every_set_cookie_is_rewritten() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::LOCATION,
            HeaderValue::from_static("http://10.0.0.5:8080/legacy/next?x=1"),
        );
        headers.insert(
            header::CONTENT_LOCATION,
            HeaderValue::from_static("/legacy/doc"),
        );
        headers.insert(
            header::REFRESH,
            HeaderValue::from_static("5; url=/legacy/later"),
        );
        headers.append(
            header::SET_COOKIE,
            HeaderValue::from_static("a=1; Path=/legacy; Domain=10.0.0.5"),
        );
        headers.append(
            header::SET_COOKIE,
            HeaderValue::from_static("b=2; Domain=example.com"),
        );
        let mut sensitive = HeaderValue::from_static("c=3; Path=/legacy/c");
        sensitive.set_sensitive(true);
        headers.append(header::SET_COOKIE, sensitive);
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));

        rewrite_response_headers(&wiki(), &mut headers);

        assert_eq!(
            header_values(&headers, header::LOCATION),
            ["https://app.example.com/wiki/next?x=1"]
        );
        assert_eq!(
            header_values(&headers, header::CONTENT_LOCATION),
            ["/wiki/doc"]
        );
        assert_eq!(
            header_values(&headers, header::REFRESH),
            ["5; url=/wiki/later"]
        );
        assert_eq!(
            header_values(&headers, header::SET_COOKIE),
            [
                "a=1; Path=/wiki",
                "b=2; Domain=example.com",
                "c=3; Path=/wiki/c"
            ]
        );
        assert!(headers
            .get_all(header::SET_COOKIE)
            .iter()
            .nth(2)
            .unwrap()
            .is_sensitive());
        assert_eq!(header_values(&headers, header::CACHE_CONTROL), ["no-store"]);
    }

    #[test]
    fn values_that_cannot_be_rewritten_validly_are_kept() {
        // A prefix that is not valid in a header (cannot come from the
        // validated config, but must not produce an invalid value).
        let map = UrlMap::new(
            "https",
            "app.example.com",
            443,
            "/wi\nki",
            false,
            "10.0.0.5:8080",
            "/legacy",
        );
        let mut headers = HeaderMap::new();
        headers.insert(header::LOCATION, HeaderValue::from_static("/legacy/x"));
        // Not visible ASCII: skipped, not mangled.
        headers.insert(
            header::CONTENT_LOCATION,
            HeaderValue::from_bytes(b"/legacy/\xe9").unwrap(),
        );
        rewrite_response_headers(&map, &mut headers);
        assert_eq!(headers[header::LOCATION], "/legacy/x");
        assert_eq!(
            headers[header::CONTENT_LOCATION].as_bytes(),
            b"/legacy/\xe9"
        );
    }
}
