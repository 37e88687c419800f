//! The `Cookie` request header, read one way everywhere: the gateway's
//! session and request-state cookies, the IdP's, the identity cookies an
//! app injects, and what the echo backend shows.
//!
//! One rule for a name sent more than once: it counts as not sent
//! ([`get`] returns `None`). Browsers share cookies across every port of a
//! host and accept cookies a sibling subdomain sets for the parent domain,
//! so a second cookie of the same name is how a session gets planted
//! (cookie tossing); taking "the first" would let the planter choose,
//! because browsers order cookies by path length, not by who set them.

use http::header::{self, HeaderMap, HeaderValue};

/// Every `name=value` pair of every `Cookie` header, in order. Pairs
/// without `=` and headers that are not visible ASCII are skipped.
pub fn pairs(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            Some((name.trim(), value.trim()))
        })
}

/// The value of cookie `name`, when the request carries it exactly once.
pub fn get<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut found = None;
    for (key, value) in pairs(headers) {
        if key == name {
            if found.is_some() {
                return None;
            }
            found = Some(value);
        }
    }
    found
}

/// Keeps only the cookies `keep` accepts (by name), merged into one
/// `Cookie` header, dropping exact duplicates; no header when none is left.
pub fn retain(headers: &mut HeaderMap, mut keep: impl FnMut(&str) -> bool) {
    if !headers.contains_key(header::COOKIE) {
        return;
    }
    let mut kept: Vec<String> = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name).trim();
            if keep(name) && !kept.iter().any(|p| p == pair) {
                kept.push(pair.to_string());
            }
        }
    }
    set(headers, &kept);
}

/// Replaces every `Cookie` header with one holding `pairs` (`name=value`
/// each); removes it when `pairs` is empty.
pub fn set(headers: &mut HeaderMap, pairs: &[String]) {
    headers.remove(header::COOKIE);
    if pairs.is_empty() {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(&pairs.join("; ")) {
        headers.insert(header::COOKIE, value);
    }
}

/// A cookie name as RFC 6265 allows it (a token), so it can be echoed in a
/// `Set-Cookie` without smuggling attributes.
pub fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::COOKIE, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_cookie_sent_once_is_read_and_a_duplicate_is_not() {
        let h = headers(&["a=1; b=2", "c=3"]);
        assert_eq!(get(&h, "b"), Some("2"));
        assert_eq!(get(&h, "c"), Some("3"));
        assert_eq!(get(&h, "d"), None);
        let planted = headers(&["pc_b=mine; x=1", "pc_b=planted"]);
        assert_eq!(get(&planted, "pc_b"), None, "two of one name count as none");
        assert_eq!(get(&planted, "x"), Some("1"));
    }

    #[test]
    fn retain_merges_into_one_header_without_duplicates() {
        let mut h = headers(&["a=1; pc_b=secret; pc_idp_sid=x", "pc_b_rs=_id; b=2; a=1"]);
        retain(&mut h, |name| !name.starts_with("pc_"));
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h[header::COOKIE], "a=1; b=2");
        let mut only = headers(&["pc_b=secret"]);
        retain(&mut only, |name| name != "pc_b");
        assert!(only.get(header::COOKIE).is_none());
    }

    #[test]
    fn tokens_exclude_separators() {
        assert!(is_token("JSESSIONID"));
        assert!(!is_token("a;b"));
        assert!(!is_token("a=b"));
        assert!(!is_token(""));
        assert!(!is_token("a b"));
    }
}
