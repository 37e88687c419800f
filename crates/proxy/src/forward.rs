//! What crosses the proxy in headers: hop-by-hop removal (RFC 9110 §7.6.1,
//! including every header named in `Connection`) and the forwarding headers
//! that tell a backend who the client was.

use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::request_id::RequestId;

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The signed-in user toward the backend. Whatever the client sent under
/// this name is removed for every app, with an auth phase or without.
pub static X_PORTCULLIS_USER: HeaderName = HeaderName::from_static("x-portcullis-user");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Headers that describe one connection and must never be forwarded.
fn hop_by_hop() -> [&'static HeaderName; 9] {
    [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::PROXY_AUTHENTICATE,
        &header::PROXY_AUTHORIZATION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ]
}

/// Facts about the client connection, formatted once per connection rather
/// than once per request.
#[derive(Clone)]
pub struct ClientInfo {
    pub addr: SocketAddr,
    x_forwarded_for: HeaderValue,
    /// The `for=` parameter of `Forwarded`, quoted for IPv6 as RFC 7239 requires.
    forwarded_for: String,
    /// `Forwarded` for the first host this connection asked for: nearly every
    /// connection asks for one host only, so the value is built once.
    forwarded_first_host: std::sync::OnceLock<(HeaderValue, Option<HeaderValue>)>,
}

impl ClientInfo {
    pub fn new(addr: SocketAddr) -> Self {
        let ip = addr.ip();
        let ip_text = ip.to_string();
        let forwarded_for = match ip {
            IpAddr::V4(_) => ip_text.clone(),
            IpAddr::V6(_) => format!("\"[{ip_text}]\""),
        };
        ClientInfo {
            addr,
            x_forwarded_for: HeaderValue::from_str(&ip_text)
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            forwarded_for,
            forwarded_first_host: std::sync::OnceLock::new(),
        }
    }

    fn forwarded(&self, host: &HeaderValue) -> Option<HeaderValue> {
        let (cached_host, cached) = self
            .forwarded_first_host
            .get_or_init(|| (own_copy(host), forwarded_value(self, host)));
        if cached_host == host {
            cached.clone()
        } else {
            forwarded_value(self, host)
        }
    }
}

/// A header value in an allocation of its own. A value parsed from a
/// request shares the connection's whole read buffer (hyper's 8 KiB on
/// HTTP/1.1, the frame buffer on HTTP/2); kept for the connection's
/// lifetime, a clone would keep that buffer too.
fn own_copy(value: &HeaderValue) -> HeaderValue {
    let mut copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
    copy.set_sensitive(value.is_sensitive());
    copy
}

/// True when the request asks to switch protocols (`Connection: upgrade`
/// plus an `Upgrade` header), as a WebSocket handshake does.
pub fn upgrade_requested(headers: &HeaderMap) -> Option<HeaderValue> {
    let upgrade = headers.get(header::UPGRADE)?;
    let wants = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    wants.then(|| upgrade.clone())
}

/// Removes hop-by-hop headers, including those the peer named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in hop_by_hop() {
        headers.remove(name);
    }
}

/// Rewrites a client request's headers for the upstream: hop-by-hop gone,
/// the forwarding headers set by the gateway, `Host` set to the public host
/// the client asked for, and the request id attached.
///
/// `peer_trusted`: the peer is one of `[server] trusted_proxies`, so the
/// `X-Forwarded-For` and `Forwarded` chains it sent go on with the peer
/// appended, as every proxy in a chain does. Any other client's chains are
/// replaced by its own address: it must not be able to claim another.
pub fn prepare_request(
    headers: &mut HeaderMap,
    client: &ClientInfo,
    peer_trusted: bool,
    public_host: &HeaderValue,
    request_id: &RequestId,
    upgrade: Option<&HeaderValue>,
) {
    strip_hop_by_hop(headers);
    headers.remove(&X_REAL_IP);
    let x_forwarded_for = match peer_trusted {
        true => chained(headers, &X_FORWARDED_FOR, &client.x_forwarded_for),
        false => client.x_forwarded_for.clone(),
    };
    headers.insert(X_FORWARDED_FOR.clone(), x_forwarded_for);
    let forwarded = client.forwarded(public_host).map(|own| match peer_trusted {
        true => chained(headers, &FORWARDED, &own),
        false => own,
    });
    headers.remove(&FORWARDED);
    if let Some(forwarded) = forwarded {
        headers.insert(FORWARDED.clone(), forwarded);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("https"));
    headers.insert(X_FORWARDED_HOST.clone(), public_host.clone());
    headers.insert(header::HOST, public_host.clone());
    headers.insert(X_REQUEST_ID.clone(), request_id.header_value());
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol.clone());
    }
}

/// Every `name` line the request carries and then `own`, as one
/// comma-separated value: many backends read only the first line.
fn chained(headers: &HeaderMap, name: &HeaderName, own: &HeaderValue) -> HeaderValue {
    let received = headers.get_all(name);
    let mut joined = Vec::new();
    for line in received.iter().filter(|line| !line.is_empty()) {
        joined.extend_from_slice(line.as_bytes());
        joined.extend_from_slice(b", ");
    }
    if joined.is_empty() {
        return own.clone();
    }
    joined.extend_from_slice(own.as_bytes());
    // Joined valid values with ", " are a valid value; should that ever
    // fail, the peer alone is still the truth about this hop.
    HeaderValue::from_bytes(&joined).unwrap_or_else(|_| own.clone())
}

fn forwarded_value(client: &ClientInfo, host: &HeaderValue) -> Option<HeaderValue> {
    let host = host.to_str().ok()?;
    // `host` is a token or quoted-string in RFC 7239; an authority with a
    // port or IPv6 brackets is not a token, so quote it.
    let mut value = String::with_capacity(32 + client.forwarded_for.len() + host.len());
    value.push_str("for=");
    value.push_str(&client.forwarded_for);
    value.push_str(";proto=https;host=\"");
    value.push_str(host);
    value.push('"');
    HeaderValue::from_str(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        map
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = headers(&[
            ("connection", "keep-alive, X-Secret-Hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("accept", "text/html"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn client_forwarding_headers_are_replaced() {
        let mut h = headers(&[
            ("x-forwarded-for", "10.9.9.9"),
            ("forwarded", "for=10.9.9.9"),
            ("x-real-ip", "10.9.9.9"),
        ]);
        let client = ClientInfo::new("[2001:db8::1]:4000".parse().expect("addr"));
        let host = HeaderValue::from_static("app.test:8443");
        prepare_request(&mut h, &client, false, &host, &RequestId::new(), None);
        assert_eq!(h["x-forwarded-for"], "2001:db8::1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "app.test:8443");
        assert_eq!(
            h["forwarded"],
            "for=\"[2001:db8::1]\";proto=https;host=\"app.test:8443\""
        );
        assert!(!h.contains_key("x-real-ip"));
        assert_eq!(h["host"], "app.test:8443");
    }

    #[test]
    fn a_trusted_proxys_chains_go_on_with_the_proxy_appended() {
        let mut h = headers(&[
            ("x-forwarded-for", "192.0.2.1"),
            ("x-forwarded-for", "203.0.113.7"),
            ("forwarded", "for=203.0.113.7;proto=https"),
            ("x-real-ip", "192.0.2.1"),
        ]);
        let client = ClientInfo::new("10.0.0.5:4000".parse().expect("addr"));
        let host = HeaderValue::from_static("app.test");
        prepare_request(&mut h, &client, true, &host, &RequestId::new(), None);
        assert_eq!(h["x-forwarded-for"], "192.0.2.1, 203.0.113.7, 10.0.0.5");
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(
            h["forwarded"],
            "for=203.0.113.7;proto=https, for=10.0.0.5;proto=https;host=\"app.test\""
        );
        assert!(!h.contains_key("x-real-ip"));
        // Without a chain of its own, the proxy is the only hop.
        let mut h = HeaderMap::new();
        prepare_request(&mut h, &client, true, &host, &RequestId::new(), None);
        assert_eq!(h["x-forwarded-for"], "10.0.0.5");
    }

    #[test]
    fn upgrade_is_detected_and_preserved() {
        let h = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        let upgrade = upgrade_requested(&h).expect("upgrade");
        let mut h2 = h.clone();
        let client = ClientInfo::new("127.0.0.1:1".parse().expect("addr"));
        let host = HeaderValue::from_static("a.test");
        prepare_request(
            &mut h2,
            &client,
            false,
            &host,
            &RequestId::new(),
            Some(&upgrade),
        );
        assert_eq!(h2["connection"], "upgrade");
        assert_eq!(h2["upgrade"], "websocket");
        assert!(upgrade_requested(&headers(&[("upgrade", "websocket")])).is_none());
    }
}
