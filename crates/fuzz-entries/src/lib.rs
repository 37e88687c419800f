//! Fuzz entry points: one function per parser that takes input from
//! outside (a SAML peer, a browser's headers, an API client, an operator's
//! file), each the whole of what one fuzz target does. The libFuzzer
//! targets in `fuzz/fuzz_targets/` are one line each, handing their bytes
//! to the [`TARGETS`] entry of the same name; the stable test
//! `tests/replay.rs` feeds every seed and every file under
//! `fuzz/regressions/<target>/` through the same function, so a crash once
//! found stays fixed in `make test` without nightly.
//!
//! A panic in an entry is a finding (on network input, a security bug).
//! Some entries also assert what their parser promises: a stripped cookie
//! is gone, an accepted RelayState stays on the app, a printed filter
//! parses back to itself. A failed assertion is a finding too.
//!
//! Each entry returns whether its strictest call accepted the input (a
//! verified Response, a signed request, a parsed filter). Fuzzing ignores
//! it; the replay test checks that the seeds named `accepted-*` are, so a
//! builder change cannot quietly leave the fuzzer stuck in front of the
//! signature check.
//!
pub mod fixtures;

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{HeaderMap, HeaderValue, COOKIE};
use portcullis_idp::syslog::{Actor, Event, Filter, OutcomeResult, Query, Severity, Target};
use portcullis_proxy::cookie;
use portcullis_saml as saml;
use portcullis_saml::{LogoutBinding, LogoutMessage};
use portcullis_session::{SessionSecret, SECRET_LEN};

use crate::fixtures::{MAX_REQUEST_BYTES, SLO_MAX_BYTES};

/// An entry: the fuzzer's bytes in, whether the input was accepted out.
pub type Entry = fn(&[u8]) -> bool;

/// Every target, by the name of its file in `fuzz/fuzz_targets/` and of its
/// directories under `fuzz/seeds/` and `fuzz/regressions/`.
pub const TARGETS: &[(&str, Entry)] = &[
    ("saml_response", saml_response),
    ("authn_request_redirect", authn_request_redirect),
    ("authn_request_post", authn_request_post),
    ("logout_redirect", logout_redirect),
    ("logout_post", logout_post),
    ("metadata", metadata),
    ("syslog_filter", syslog_filter),
    ("syslog_query", syslog_query),
    ("config", config),
    ("cookie_header", cookie_header),
    ("relay_state", relay_state),
    ("session_cookie", session_cookie),
    ("client_ip", client_ip),
];

/// The `client_ip` entry's peers, by its first byte: a trusted proxy, the
/// same as a dual-stack listener reports it, a trusted IPv6 proxy, and a
/// peer that is no proxy.
pub const CLIENT_IP_PEERS: [&str; 4] =
    ["10.0.0.5", "::ffff:10.0.0.5", "2001:db8::1", "198.51.100.9"];
/// The `client_ip` entry's `[server] trusted_proxies`.
pub const CLIENT_IP_TRUSTED: [&str; 3] = ["10.0.0.0/8", "2001:db8::/32", "127.0.0.2/32"];

/// The RelayState entry's choice of app base path, by its first byte.
pub const RELAY_STATE_BASES: [&str; 3] = ["", "/wiki", "/a/b"];

/// Cookie names the cookie entry strips, as the proxy strips the gateway's
/// and the IdP's cookies before a request goes to a backend.
const STRIPPED_COOKIE: &str = "pc_b";

/// The gateway's ACS: the bytes are the Response XML as the IdP would have
/// written it; the entry base64-encodes it (the POST binding) and verifies
/// it as the gateway does, against the fixture IdP's certificate. An input
/// that mentions `InResponseTo` is checked as the answer to
/// [`fixtures::REQUEST_ID`], any other as an IdP-initiated Response.
pub fn saml_response(data: &[u8]) -> bool {
    let expect = if contains(data, b"InResponseTo") {
        fixtures::solicited()
    } else {
        fixtures::unsolicited()
    };
    saml::verify_response(&STANDARD.encode(data), expect, fixtures::verify_time()).is_ok()
}

/// The IdP's SSO endpoint, HTTP-Redirect binding: the bytes are the raw
/// query string (`SAMLRequest=…&RelayState=…&SigAlg=…&Signature=…`), read
/// once as for an SP that does not sign and once as for one that does.
pub fn authn_request_redirect(data: &[u8]) -> bool {
    let Ok(query) = std::str::from_utf8(data) else {
        return false;
    };
    let _ = saml::parse_authn_request_redirect(query, None, MAX_REQUEST_BYTES);
    saml::parse_authn_request_redirect(query, Some(fixtures::sp_certs()), MAX_REQUEST_BYTES).is_ok()
}

/// The IdP's SSO endpoint, HTTP-POST binding: the bytes are the
/// AuthnRequest XML; the entry base64-encodes it, asks whether it is signed,
/// and reads it unverified and verified against the fixture SP.
pub fn authn_request_post(data: &[u8]) -> bool {
    let encoded = STANDARD.encode(data);
    let relay_state = Some("/wiki/page");
    let _ = saml::post_request_is_signed(&encoded, MAX_REQUEST_BYTES);
    let _ = saml::parse_authn_request_post(&encoded, relay_state, None, MAX_REQUEST_BYTES);
    saml::parse_authn_request_post(
        &encoded,
        relay_state,
        Some(fixtures::sp_certs()),
        MAX_REQUEST_BYTES,
    )
    .is_ok()
}

/// Single Logout over HTTP-Redirect, both ends: the bytes are the raw query
/// string. The IdP's reads (unverified, then against the SP's certificate)
/// and the gateway's `verify_logout_message` (against the IdP's).
pub fn logout_redirect(data: &[u8]) -> bool {
    let Ok(query) = std::str::from_utf8(data) else {
        return false;
    };
    let sp = Some(fixtures::sp_certs());
    let _ = saml::parse_logout_request_redirect(query, None, SLO_MAX_BYTES);
    let _ = saml::parse_logout_response_redirect(query, None, SLO_MAX_BYTES);
    let from_sp = saml::parse_logout_request_redirect(query, sp, SLO_MAX_BYTES).is_ok()
        | saml::parse_logout_response_redirect(query, sp, SLO_MAX_BYTES).is_ok();
    let from_idp = verify_from_idp(LogoutBinding::Redirect { query });
    from_sp | from_idp
}

/// Single Logout over HTTP-POST, both ends: the bytes are the
/// LogoutRequest or LogoutResponse XML, base64-encoded by the entry and
/// read as [`logout_redirect`] reads a query.
pub fn logout_post(data: &[u8]) -> bool {
    let encoded = STANDARD.encode(data);
    let relay_state = Some("/wiki/page");
    let sp = Some(fixtures::sp_certs());
    let _ = saml::parse_logout_request_post(&encoded, relay_state, None, SLO_MAX_BYTES);
    let _ = saml::parse_logout_response_post(&encoded, relay_state, None, SLO_MAX_BYTES);
    let from_sp = saml::parse_logout_request_post(&encoded, relay_state, sp, SLO_MAX_BYTES).is_ok()
        | saml::parse_logout_response_post(&encoded, relay_state, sp, SLO_MAX_BYTES).is_ok();
    let as_request = verify_from_idp(LogoutBinding::Post {
        saml_request: Some(&encoded),
        saml_response: None,
        relay_state,
    });
    let as_response = verify_from_idp(LogoutBinding::Post {
        saml_request: None,
        saml_response: Some(&encoded),
        relay_state,
    });
    from_sp | as_request | as_response
}

fn verify_from_idp(binding: LogoutBinding<'_>) -> bool {
    let expect = fixtures::logout_from_idp();
    match saml::verify_logout_message(binding, &expect, fixtures::verify_time()) {
        Ok(LogoutMessage::Request(request)) => {
            assert!(request.signature_verified, "accepted an unverified request");
            true
        }
        Ok(LogoutMessage::Response(response)) => {
            assert!(
                response.signature_verified,
                "accepted an unverified response"
            );
            true
        }
        Err(_) => false,
    }
}

/// A peer's SAML metadata file (an app's external IdP, an SP registered
/// with the embedded IdP), read in both roles.
pub fn metadata(data: &[u8]) -> bool {
    let Ok(xml) = std::str::from_utf8(data) else {
        return false;
    };
    let idp = saml::parse_idp_metadata(xml).is_ok();
    let sp = saml::parse_sp_metadata(xml).is_ok();
    idp | sp
}

/// The System Log API's `filter` parameter. A filter that parses is
/// evaluated on an event, and printed: the print must parse back to the
/// same filter (unless it outgrew the length limit).
pub fn syslog_filter(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(filter) = Filter::parse(text) else {
        return false;
    };
    let _ = filter.matches(sample_event());
    let printed = filter.to_string();
    if printed.len() <= portcullis_idp::syslog::MAX_FILTER_LEN {
        assert_eq!(
            Filter::parse(&printed).as_ref(),
            Ok(&filter),
            "{printed:?} does not parse back"
        );
    }
    true
}

/// The System Log API's whole query string (`filter`, `since`, `until`,
/// `limit`, `after`, `sortOrder`), decoded as the API decodes it.
pub fn syslog_query(data: &[u8]) -> bool {
    let params: Vec<(String, String)> = form_urlencoded::parse(data).into_owned().collect();
    let Ok(query) = Query::from_params(params.iter().map(|(k, v)| (k.as_str(), v.as_str()))) else {
        return false;
    };
    if let (Some(filter), Some(cursor)) = (&query.filter, &query.after) {
        let _ = (filter.matches(sample_event()), cursor.to_string());
    }
    true
}

fn sample_event() -> &'static Event {
    static EVENT: std::sync::OnceLock<Event> = std::sync::OnceLock::new();
    EVENT.get_or_init(|| {
        Event::new(
            "user.session.start",
            "User login to Portcullis",
            Severity::Info,
            OutcomeResult::Success,
        )
        .actor(Actor::new("00u1", "User").alternate_id("alice@example.test"))
        .client(Some(std::net::Ipv4Addr::LOCALHOST.into()), Some("curl/8"))
        .target(Target::new("0oa1", "AppInstance").display_name("Wiki"))
        .session("102abc")
        .debug("risk", "low")
        .debug("mfa", "true")
    })
}

/// The configuration file. Relative paths resolve under a directory that
/// does not exist, so they name nothing; text that names `/dev`, `/proc` or
/// `/sys` is skipped, because reading a device forever is the operator's
/// choice, not a parser bug.
pub fn config(data: &[u8]) -> bool {
    let Ok(source) = std::str::from_utf8(data) else {
        return false;
    };
    if ["/dev", "/proc", "/sys"].iter().any(|p| source.contains(p)) {
        return false;
    }
    let path = Path::new("/nonexistent/portcullis-fuzz/gateway.toml");
    portcullis_config::parse(source, path, &portcullis_config::NoMetadata).is_ok()
}

/// The `Cookie` request header: each line of the input is one header
/// value. Checks `get`'s one rule (a name sent twice counts as not sent)
/// and that `retain` leaves no cookie it was told to strip.
pub fn cookie_header(data: &[u8]) -> bool {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(COOKIE, value);
        }
    }
    let names: Vec<&str> = cookie::pairs(&headers).map(|(name, _)| name).collect();
    for name in &names {
        let sent = names.iter().filter(|n| *n == name).count();
        assert_eq!(
            cookie::get(&headers, name).is_some(),
            sent == 1,
            "{name:?} sent {sent} times"
        );
        let _ = cookie::is_token(name);
    }
    let mut stripped = headers.clone();
    let strip = |name: &str| {
        name == STRIPPED_COOKIE || name.starts_with(portcullis_config::IDP_COOKIE_PREFIX)
    };
    cookie::retain(&mut stripped, |name| !strip(name));
    assert!(
        cookie::pairs(&stripped).all(|(name, _)| !strip(name)),
        "a stripped cookie survived: {:?}",
        stripped.get(COOKIE)
    );
    !names.is_empty()
}

/// The client address behind trusted proxies: the first byte picks the
/// peer from [`CLIENT_IP_PEERS`], then one header line per input line,
/// `f…` a `Forwarded` value and `x…` an `X-Forwarded-For` value. Whatever
/// the chain says: a peer that is no proxy is the client; a walk that
/// stopped at a bad hop names a trusted proxy; the address is never
/// IPv4-mapped; and what lies left of the client's hop changes nothing.
pub fn client_ip(data: &[u8]) -> bool {
    use portcullis_proxy::client_ip::{resolve, ChainHeader, TrustedProxies, MAX_BYTES};
    let Some((first, rest)) = data.split_first() else {
        return false;
    };
    let peers = CLIENT_IP_PEERS.map(|p| p.parse::<std::net::IpAddr>().expect("fixture peer"));
    let peer = peers[usize::from(*first) % peers.len()];
    let trusted = TrustedProxies::new(
        CLIENT_IP_TRUSTED.map(|t| t.parse::<portcullis_config::IpNet>().expect("fixture net")),
    );
    let mut headers = HeaderMap::new();
    for line in rest.split(|b| *b == b'\n') {
        let Some((kind, value)) = line.split_first() else {
            continue;
        };
        let name = match kind {
            b'f' => "forwarded",
            b'x' => "x-forwarded-for",
            _ => continue,
        };
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }
    let resolved = resolve(peer, &headers, &trusted);
    assert!(
        !matches!(resolved.ip, std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some()),
        "{resolved:?}"
    );
    if !trusted.contains(peer) {
        assert_eq!(resolved.header, None);
        assert_eq!(resolved.ip.to_canonical(), peer.to_canonical());
        return false;
    }
    if resolved.error.is_some() {
        assert!(
            trusted.contains(resolved.ip),
            "stopped at an untrusted hop: {resolved:?}"
        );
        return false;
    }
    let found = !trusted.contains(resolved.ip);
    let Some(header) = resolved.header.filter(|_| found) else {
        return false;
    };
    let name = header.name();
    let size: usize = headers.get_all(name).iter().map(|v| v.len() + 1).sum();
    if size < MAX_BYTES / 2 {
        // The sender controls everything left of its own hop, an open
        // quote included: none of it may change who the client is.
        let padding: &[u8] = match header {
            ChainHeader::Forwarded => b"for=\"192.0.2.66, for=192.0.2.66, ",
            ChainHeader::XForwardedFor => b"\"192.0.2.66, 192.0.2.66, ",
        };
        let mut lines = headers.get_all(name).iter();
        let first = lines.next().map(|v| [padding, v.as_bytes()].concat());
        let others: Vec<HeaderValue> = lines.cloned().collect();
        let mut padded = headers.clone();
        padded.remove(name);
        if let Some(Ok(first)) = first.as_deref().map(HeaderValue::from_bytes) {
            padded.append(name, first);
            for other in others {
                padded.append(name, other);
            }
            assert_eq!(
                resolve(peer, &padded, &trusted),
                resolved,
                "padded on the left"
            );
        }
    }
    true
}

/// The ACS's RelayState rule: the first byte picks the app's base path
/// from [`RELAY_STATE_BASES`], the rest is the RelayState. An accepted
/// value, resolved by a browser against the ACS URL, must stay on the app:
/// same origin, under the base path.
pub fn relay_state(data: &[u8]) -> bool {
    let Some((first, rest)) = data.split_first() else {
        return false;
    };
    let Ok(relay_state) = std::str::from_utf8(rest) else {
        return false;
    };
    let base = RELAY_STATE_BASES[usize::from(*first) % RELAY_STATE_BASES.len()];
    if !portcullis_gateway::relay_state_is_safe(base, relay_state) {
        return false;
    }
    let acs = url::Url::parse(&format!("https://app.fuzz.test{base}/_portcullis/saml/acs"))
        .expect("ACS URL parses");
    let landing = acs
        .join(relay_state)
        .unwrap_or_else(|e| panic!("accepted {relay_state:?} is no URL: {e}"));
    assert_eq!(
        landing.origin(),
        acs.origin(),
        "accepted {relay_state:?} leaves the app: {landing}"
    );
    assert!(
        base.is_empty() || portcullis_proxy::under(landing.path(), base),
        "accepted {relay_state:?} leaves {base}: {landing}"
    );
    true
}

/// The session cookie's value, as the gateway reads it before the store
/// lookup.
pub fn session_cookie(data: &[u8]) -> bool {
    let Ok(value) = std::str::from_utf8(data) else {
        return false;
    };
    match SessionSecret::parse(value) {
        Ok(secret) => {
            assert_eq!(secret.expose(), value);
            assert_eq!(value.len(), SECRET_LEN);
            let _ = secret.hash().short();
            true
        }
        Err(_) => false,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
