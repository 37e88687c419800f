//! Public URL and upstream URL parsing, by hand and narrow on purpose: the
//! accepted shapes are the ones the router and the upstream pool handle.

use crate::locate::Step;
use crate::model::{Builtin, PublicUrl, Upstream, UpstreamTarget};

use super::Validator;

impl Validator<'_, '_> {
    /// An absolute http(s) URL the gateway calls or sends browsers to;
    /// `false` (and a problem) otherwise.
    pub(super) fn http_url(&mut self, path: &[Step<'_>], raw: &str) -> bool {
        match split_url(raw) {
            Ok((scheme, _, _)) if scheme == "https" || scheme == "http" => true,
            Ok(_) => {
                self.problem(path, "must be an http or https URL");
                false
            }
            Err(e) => {
                self.problem(path, e);
                false
            }
        }
    }
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
pub(super) fn is_loopback_authority(authority: &str) -> bool {
    let host = match split_host_port(authority, 80) {
        Ok((host, _)) => host,
        Err(_) => return false,
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Splits `scheme://authority/path` without pulling in a URL crate; the
/// accepted shapes are narrow on purpose.
pub(super) fn split_url(raw: &str) -> Result<(&str, &str, &str), String> {
    let (scheme, rest) = raw
        .split_once("://")
        .ok_or_else(|| format!("`{raw}` is not an absolute URL"))?;
    if rest.contains(['?', '#']) {
        return Err(format!("`{raw}` must not carry a query or fragment"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("`{raw}` needs a host (and no user info)"));
    }
    Ok((scheme, authority, path))
}

pub(super) fn split_host_port(authority: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("`{authority}` has an unclosed IPv6 bracket"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("`{p}` is not a valid port"))?,
        None => default_port,
    };
    let valid_host = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'));
    if !valid_host {
        return Err(format!("`{host}` is not a valid host name"));
    }
    Ok((host.to_ascii_lowercase(), port))
}

pub(super) fn normalise_prefix(path: &str) -> Result<String, String> {
    if path.contains("//") || path.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err(format!(
            "path `{path}` must not contain empty, . or .. segments"
        ));
    }
    let trimmed = path.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    })
}

pub(super) fn parse_public_url(raw: &str) -> Result<PublicUrl, String> {
    let (scheme, authority, path) = split_url(raw)?;
    if scheme != "https" {
        return Err(format!(
            "`{raw}` must use https: session cookies are Secure and never travel over plain HTTP"
        ));
    }
    let (host, port) = split_host_port(authority, 443)?;
    Ok(PublicUrl {
        scheme: scheme.to_string(),
        host,
        port,
        path_prefix: normalise_prefix(path)?,
    })
}

pub(super) fn parse_upstream(raw: &str) -> Result<Upstream, String> {
    if let Some(name) = raw.strip_prefix("builtin:") {
        return match name {
            "echo" => Ok(Upstream::Builtin(Builtin::Echo)),
            other => Err(format!(
                "`builtin:{other}` is not a built-in upstream (known: builtin:echo)"
            )),
        };
    }
    let (scheme, authority, path) = split_url(raw)?;
    let (tls, default_port) = match scheme {
        "http" => (false, 80),
        "https" => (true, 443),
        other => {
            return Err(format!(
                "upstream scheme `{other}` is not supported (http, https or builtin:)"
            ))
        }
    };
    let (host, port) = split_host_port(authority, default_port)?;
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let base = normalise_prefix(path)?;
    Ok(Upstream::Http(UpstreamTarget {
        tls,
        authority,
        base_path: if base == "/" { String::new() } else { base },
        ca: None,
        sni: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_is_normalised() {
        let u = parse_public_url("https://App.Example.com:8443/wiki/").expect("valid");
        assert_eq!(u.host, "app.example.com");
        assert_eq!(u.port, 8443);
        assert_eq!(u.path_prefix, "/wiki");
        assert_eq!(u.authority(), "app.example.com:8443");
        assert_eq!(u.base_path(), "/wiki");
        assert_eq!(u.url(), "https://app.example.com:8443/wiki");
        let root = parse_public_url("https://a.test").expect("valid");
        assert_eq!(root.path_prefix, "/");
        assert_eq!(root.authority(), "a.test");
        assert_eq!(root.base_path(), "");
        assert_eq!(root.url(), "https://a.test");
    }

    #[test]
    fn bad_urls_are_refused() {
        assert!(parse_public_url("http://a.test/").is_err());
        assert!(parse_public_url("https://a.test:0/").is_err());
        assert!(parse_public_url("https://u@a.test/").is_err());
        assert!(parse_public_url("https://a.test/x/../y").is_err());
        assert!(parse_upstream("ftp://a.test/").is_err());
        assert!(parse_upstream("builtin:nope").is_err());
        assert!(parse_upstream("http://a test/").is_err());
        assert!(parse_upstream("http://a.test:99999/").is_err());
    }

    #[test]
    fn upstream_keeps_base_path() {
        let Ok(Upstream::Http(t)) = parse_upstream("http://10.0.0.5:8080/legacy/") else {
            panic!("expected http upstream")
        };
        assert_eq!(t.authority, "10.0.0.5:8080");
        assert_eq!(t.base_path, "/legacy");
        assert!(!t.tls);
    }
}
