//! Who the client is behind load balancers: `[server] trusted_proxies`.
//!
//! The socket peer is the client unless it is a trusted proxy. Then the
//! forwarding chain it sent is read from the right — `Forwarded` (RFC 7239)
//! when present, else `X-Forwarded-For` — skipping hops that are trusted
//! proxies too; the first untrusted hop is the client. Everything left of
//! it was written by someone we do not trust and is never looked at.
//!
//! A hop that cannot be read (malformed, `unknown`, an obfuscated
//! identifier), or a chain longer than [`MAX_HOPS`] or [`MAX_BYTES`], stops
//! the walk at the last trusted address reached: the proxy that passed the
//! bad value on is the best-known client, and no header can make the
//! gateway believe an address its proxies did not vouch for.
//!
//! Resolution never allocates: the common paths (no trusted proxies, an
//! untrusted peer, no header) return before reading a header, and the walk
//! reads the header values in place.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use portcullis_config::IpNet;

use crate::log_rate::LogRate;

static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Hops read from the right at most. A real chain has a handful; past this
/// a header buys the sender nothing but the last trusted address.
pub const MAX_HOPS: usize = 32;
/// Header bytes read from the right at most, all lines together, so that
/// the work per request is bounded whatever `max_header_bytes` allows.
pub const MAX_BYTES: usize = 8 * 1024;

/// The compiled `[server] trusted_proxies`.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// `nets` as the configuration validated them: host bits cleared and
    /// IPv4-mapped networks in their IPv4 form.
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        TrustedProxies {
            nets: nets.into_iter().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` (in its IPv4 form when IPv4-mapped) is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = unmap(ip);
        self.nets.iter().any(|net| net.contains(&ip))
    }
}

/// Which forwarding header the client address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainHeader {
    Forwarded,
    XForwardedFor,
}

impl ChainHeader {
    pub fn name(self) -> &'static str {
        match self {
            ChainHeader::Forwarded => "forwarded",
            ChainHeader::XForwardedFor => "x-forwarded-for",
        }
    }
}

/// Why the walk stopped before reaching an untrusted hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// Not an address, an `ip:port`, a `[ipv6]:port` or a `for=` element.
    #[error("a hop is not an IP address")]
    Malformed,
    /// RFC 7239 `unknown`: the proxy did not know who sent it the request.
    #[error("a hop is `unknown`")]
    Unknown,
    /// RFC 7239 obfuscated identifier (`_hidden`): deliberately no address.
    #[error("a hop is an obfuscated identifier")]
    Obfuscated,
    #[error("more than {MAX_HOPS} hops")]
    TooManyHops,
    #[error("more than {MAX_BYTES} bytes")]
    TooLarge,
}

/// The client address of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp {
    /// The client: the peer, or the hop its trusted proxies vouch for.
    /// IPv4-mapped addresses in their IPv4 form.
    pub ip: IpAddr,
    /// The socket peer is a trusted proxy: its forwarding chain is passed
    /// on to the backend with the peer appended.
    pub peer_trusted: bool,
    /// The header the chain was read from, when one was.
    pub header: Option<ChainHeader>,
    /// Why the walk stopped early, when it did.
    pub error: Option<ChainError>,
}

/// The client address of a request from `peer` carrying `headers`.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> ClientIp {
    let peer = unmap(peer);
    let untouched = ClientIp {
        ip: peer,
        peer_trusted: false,
        header: None,
        error: None,
    };
    if trusted.is_empty() || !trusted.contains(peer) {
        return untouched;
    }
    let trusted_peer = ClientIp {
        peer_trusted: true,
        ..untouched
    };
    let (header, lines) = if headers.contains_key(&FORWARDED) {
        (ChainHeader::Forwarded, headers.get_all(&FORWARDED))
    } else if headers.contains_key(&X_FORWARDED_FOR) {
        (
            ChainHeader::XForwardedFor,
            headers.get_all(&X_FORWARDED_FOR),
        )
    } else {
        return trusted_peer;
    };
    let (ip, error) = walk(peer, lines.iter().rev(), header, trusted);
    ClientIp {
        ip,
        header: Some(header),
        error,
        ..trusted_peer
    }
}

/// One warning per interval for chains that stopped early: a client
/// behind a proxy can send one with every request.
static BAD_CHAIN: std::sync::LazyLock<LogRate> = std::sync::LazyLock::new(LogRate::default);

/// Logs, rate-limited, that `resolved`'s chain stopped early. The header's
/// content is not logged: the client wrote it, and it may be 8 KiB.
pub fn note(resolved: &ClientIp, peer: IpAddr, request_id: &str) {
    let (Some(error), Some(header)) = (resolved.error, resolved.header) else {
        return;
    };
    if let Some(left_out) = BAD_CHAIN.note() {
        tracing::warn!(
            request.id = request_id,
            client.addr = %peer,
            client.ip = %resolved.ip,
            header = header.name(),
            error = %error,
            left_out,
            "forwarding header read only up to a bad hop; the last trusted proxy is the client"
        );
    }
}

/// Walks `lines` (rightmost first) hop by hop from the trusted `peer`:
/// the first untrusted hop, or the last trusted one with why it stopped.
fn walk<'h>(
    peer: IpAddr,
    lines: impl Iterator<Item = &'h HeaderValue>,
    header: ChainHeader,
    trusted: &TrustedProxies,
) -> (IpAddr, Option<ChainError>) {
    let mut reached = peer;
    let mut budget = MAX_BYTES;
    let mut hops = 0;
    for line in lines {
        let bytes = line.as_bytes();
        let start = bytes.len().saturating_sub(budget);
        let mut rest = bytes.get(start..).unwrap_or_default();
        // The line separator counts too, so that empty lines are not free.
        budget = budget.saturating_sub(rest.len() + 1);
        loop {
            let (left, element) = split_last(rest, header);
            if left.is_none() && start > 0 {
                // The element reaches past the bytes we agreed to read.
                return (reached, Some(ChainError::TooLarge));
            }
            hops += 1;
            if hops > MAX_HOPS {
                return (reached, Some(ChainError::TooManyHops));
            }
            let hop = match header {
                ChainHeader::Forwarded => forwarded_for(element),
                ChainHeader::XForwardedFor => node(trim(element)),
            };
            let hop = match hop {
                Ok(hop) => unmap(hop),
                Err(error) => return (reached, Some(error)),
            };
            if !trusted.contains(hop) {
                return (hop, None);
            }
            reached = hop;
            match left {
                Some(left) => rest = left,
                None => break,
            }
        }
    }
    (reached, None)
}

/// The last comma-separated element of `rest` and what lies before it.
/// `Forwarded` values may hold commas inside quoted strings; scanning from
/// the right keeps the hops the trusted proxies appended readable even when
/// the sender left a quote open further left.
fn split_last(rest: &[u8], header: ChainHeader) -> (Option<&[u8]>, &[u8]) {
    let quotes = header == ChainHeader::Forwarded;
    let mut quoted = false;
    for (i, &byte) in rest.iter().enumerate().rev() {
        match byte {
            b'"' if quotes && !escaped(rest, i) => quoted = !quoted,
            b',' if !quoted => {
                return (rest.get(..i), rest.get(i + 1..).unwrap_or_default());
            }
            _ => {}
        }
    }
    (None, rest)
}

/// Whether the byte at `i` follows an odd run of backslashes (a quoted-pair).
fn escaped(bytes: &[u8], i: usize) -> bool {
    let before = bytes.get(..i).unwrap_or_default();
    before.iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}

/// The `for=` node of one `Forwarded` element (`for=…;proto=…;by=…`).
fn forwarded_for(element: &[u8]) -> Result<IpAddr, ChainError> {
    let mut found = None;
    let mut rest = element;
    loop {
        let (pair, more) = split_pair(rest)?;
        let pair = trim(pair);
        let eq = pair
            .iter()
            .position(|&b| b == b'=')
            .ok_or(ChainError::Malformed)?;
        let (name, value) = (
            pair.get(..eq).unwrap_or_default(),
            pair.get(eq + 1..).unwrap_or_default(),
        );
        if name.eq_ignore_ascii_case(b"for") {
            // RFC 7239 §4: a parameter occurs at most once per element.
            if found.is_some() {
                return Err(ChainError::Malformed);
            }
            found = Some(value);
        }
        match more {
            Some(more) => rest = more,
            None => break,
        }
    }
    let value = found.ok_or(ChainError::Malformed)?;
    let value = match value.strip_prefix(b"\"") {
        // An address never needs a quoted-pair: a backslash or a stray
        // quote inside means it is not one.
        Some(quoted) => quoted.strip_suffix(b"\"").ok_or(ChainError::Malformed)?,
        None => value,
    };
    node(value)
}

/// The first `;`-separated pair of `element` and the rest, quotes
/// respected; `Err` when a quoted string is left open.
fn split_pair(element: &[u8]) -> Result<(&[u8], Option<&[u8]>), ChainError> {
    let mut quoted = false;
    let mut escape = false;
    for (i, &byte) in element.iter().enumerate() {
        match byte {
            _ if escape => escape = false,
            b'\\' if quoted => escape = true,
            // No token character, and `split_last` would read it as an
            // escape: refused, so that both scans agree on every element.
            b'\\' => return Err(ChainError::Malformed),
            b'"' => quoted = !quoted,
            b';' if !quoted => {
                return Ok((element.get(..i).unwrap_or_default(), element.get(i + 1..)));
            }
            _ => {}
        }
    }
    match quoted {
        true => Err(ChainError::Malformed),
        false => Ok((element, None)),
    }
}

/// One hop: `ip`, `ipv4:port`, `[ipv6]` or `[ipv6]:port` (RFC 7239 §6), or
/// `unknown` / an obfuscated `_identifier`, which name no address.
fn node(text: &[u8]) -> Result<IpAddr, ChainError> {
    let text = std::str::from_utf8(text).map_err(|_| ChainError::Malformed)?;
    if text.eq_ignore_ascii_case("unknown") {
        return Err(ChainError::Unknown);
    }
    if text.starts_with('_') {
        return Err(ChainError::Obfuscated);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(ip);
    }
    if let Some(bracketed) = text.strip_prefix('[') {
        let (inner, after) = bracketed.split_once(']').ok_or(ChainError::Malformed)?;
        let ip = inner
            .parse::<Ipv6Addr>()
            .map_err(|_| ChainError::Malformed)?;
        return match after {
            "" => Ok(IpAddr::V6(ip)),
            _ => port(after.strip_prefix(':')).map(|()| IpAddr::V6(ip)),
        };
    }
    let (ip, after) = text.split_once(':').ok_or(ChainError::Malformed)?;
    let ip = ip.parse::<Ipv4Addr>().map_err(|_| ChainError::Malformed)?;
    port(Some(after)).map(|()| IpAddr::V4(ip))
}

/// A port after a hop's address: a number, or an obfuscated `_port`.
fn port(text: Option<&str>) -> Result<(), ChainError> {
    let text = text.ok_or(ChainError::Malformed)?;
    let number = !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit());
    let obfuscated = text.len() > 1
        && text.starts_with('_')
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if (number && text.parse::<u16>().is_ok()) || obfuscated {
        Ok(())
    } else {
        Err(ChainError::Malformed)
    }
}

/// Without optional whitespace (RFC 9110 OWS) at either end.
fn trim(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or_default()
}

/// `::ffff:a.b.c.d` as `a.b.c.d`: a dual-stack listener reports IPv4 peers
/// that way, and rate limits, zones and logs must see one client, not two.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::new(entries.iter().map(|e| e.parse::<IpNet>().expect("cidr")))
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    /// The client a request from `peer` with `pairs` resolves to, behind
    /// proxies in 10.0.0.0/8 and 2001:db8::/32.
    fn client(peer: &str, pairs: &[(&str, &str)]) -> ClientIp {
        resolve(
            ip(peer),
            &headers(pairs),
            &trusted(&["10.0.0.0/8", "2001:db8::/32"]),
        )
    }

    #[test]
    fn x_forwarded_for_from_a_trusted_proxy_names_the_client() {
        let resolved = client("10.0.0.5", &[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(resolved.ip, ip("203.0.113.7"));
        assert!(resolved.peer_trusted);
        assert_eq!(resolved.error, None);
    }

    #[test]
    fn x_forwarded_for_from_an_untrusted_peer_is_ignored() {
        let resolved = client("198.51.100.9", &[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(resolved.ip, ip("198.51.100.9"));
        assert!(!resolved.peer_trusted);
        assert_eq!(resolved.header, None, "the header is not even read");
    }

    #[test]
    fn without_trusted_proxies_every_peer_is_the_client() {
        let resolved = resolve(
            ip("10.0.0.5"),
            &headers(&[("x-forwarded-for", "203.0.113.7")]),
            &TrustedProxies::default(),
        );
        assert_eq!(resolved.ip, ip("10.0.0.5"));
        assert!(!resolved.peer_trusted);
    }

    #[test]
    fn a_trusted_peer_without_a_header_is_the_client() {
        let resolved = client("10.0.0.5", &[]);
        assert_eq!(resolved.ip, ip("10.0.0.5"));
        assert!(resolved.peer_trusted);
    }

    #[test]
    fn the_rightmost_untrusted_hop_wins_over_what_the_client_claims() {
        // The client claims 192.0.2.1; its first proxy saw 203.0.113.7.
        let resolved = client(
            "10.0.0.5",
            &[(
                "x-forwarded-for",
                "192.0.2.1, 203.0.113.7, 10.1.1.1,10.2.2.2",
            )],
        );
        assert_eq!(resolved.ip, ip("203.0.113.7"));
        assert_eq!(resolved.error, None);
    }

    #[test]
    fn an_all_trusted_chain_yields_its_leftmost_proxy() {
        let resolved = client("10.0.0.5", &[("x-forwarded-for", "10.9.9.9, 10.1.1.1")]);
        assert_eq!(resolved.ip, ip("10.9.9.9"));
        assert_eq!(resolved.error, None);
    }

    #[test]
    fn several_header_lines_are_one_chain_in_order() {
        let resolved = client(
            "10.0.0.5",
            &[
                ("x-forwarded-for", "192.0.2.1"),
                ("x-forwarded-for", "203.0.113.7, 10.1.1.1"),
                ("x-forwarded-for", "10.2.2.2"),
            ],
        );
        assert_eq!(resolved.ip, ip("203.0.113.7"));
        let resolved = client(
            "10.0.0.5",
            &[
                ("forwarded", "for=192.0.2.1"),
                ("forwarded", "for=203.0.113.7, for=10.1.1.1"),
            ],
        );
        assert_eq!(resolved.ip, ip("203.0.113.7"));
    }

    #[test]
    fn x_forwarded_for_hops_may_carry_ports_and_brackets() {
        for (chain, want) in [
            ("203.0.113.7:4711", "203.0.113.7"),
            ("[2001:db9::7]:443", "2001:db9::7"),
            ("[2001:db9::7]", "2001:db9::7"),
            ("  2001:db9::7\t", "2001:db9::7"),
        ] {
            let resolved = client("10.0.0.5", &[("x-forwarded-for", chain)]);
            assert_eq!(resolved.ip, ip(want), "{chain}");
            assert_eq!(resolved.error, None, "{chain}");
        }
    }

    #[test]
    fn forwarded_reads_for_with_quoted_ipv6_and_port_case_insensitively() {
        let resolved = client(
            "2001:db8::1",
            &[(
                "forwarded",
                "for=192.0.2.1;proto=http, For=\"[2001:db9::7]:4711\";proto=https;by=\"[2001:db8::1]\", FOR=10.1.1.1:80",
            )],
        );
        assert_eq!(resolved.ip, ip("2001:db9::7"));
        assert_eq!(resolved.header, Some(ChainHeader::Forwarded));
        assert_eq!(resolved.error, None);
    }

    #[test]
    fn forwarded_takes_precedence_over_x_forwarded_for() {
        let resolved = client(
            "10.0.0.5",
            &[
                ("x-forwarded-for", "192.0.2.66"),
                ("forwarded", "for=203.0.113.7"),
            ],
        );
        assert_eq!(resolved.ip, ip("203.0.113.7"));
    }

    #[test]
    fn forwarded_quoted_strings_may_hold_commas_and_semicolons() {
        let resolved = client(
            "10.0.0.5",
            &[(
                "forwarded",
                "for=203.0.113.7;host=\"a,b;c\\\"d\", for=10.1.1.1",
            )],
        );
        assert_eq!(resolved.ip, ip("203.0.113.7"));
        assert_eq!(resolved.error, None);
    }

    #[test]
    fn a_malformed_hop_stops_at_the_proxy_that_passed_it_on() {
        for chain in [
            "203.0.113.7, not-an-ip, 10.1.1.1",
            "203.0.113.7,,10.1.1.1",
            "203.0.113.7, 10.1.1.1:99999",
            "203.0.113.7, 1.2.3.4:",
            "203.0.113.7, [2001:db9::7",
            "203.0.113.7, fe80::1%eth0, 10.1.1.1",
            "203.0.113.7, 010.1.2.3, 10.1.1.1",
        ] {
            let resolved = client("10.0.0.5", &[("x-forwarded-for", chain)]);
            let want = if chain.ends_with("10.1.1.1") {
                "10.1.1.1"
            } else {
                "10.0.0.5"
            };
            assert_eq!(resolved.ip, ip(want), "{chain}");
            assert_eq!(resolved.error, Some(ChainError::Malformed), "{chain}");
        }
        let resolved = client("10.0.0.5", &[("x-forwarded-for", "")]);
        assert_eq!(resolved.ip, ip("10.0.0.5"));
        assert_eq!(resolved.error, Some(ChainError::Malformed));
    }

    #[test]
    fn malformed_forwarded_elements_stop_the_walk() {
        for element in [
            "proto=https",
            "for=203.0.113.7;for=192.0.2.1",
            "for=\"203.0.113.7",
            "for",
            "for=[2001:db9::7]:",
            "for=\"[2001:db9::7]\\\"\"",
            "for=203.0.113.7;host=\"open",
            "x=\\\"\";for=203.0.113.7",
        ] {
            let chain = format!("for=192.0.2.1, {element}, for=10.1.1.1");
            let resolved = client("10.0.0.5", &[("forwarded", &chain)]);
            assert_eq!(resolved.ip, ip("10.1.1.1"), "{chain}");
            assert_eq!(resolved.error, Some(ChainError::Malformed), "{chain}");
        }
    }

    #[test]
    fn unknown_and_obfuscated_hops_name_no_address() {
        let resolved = client("10.0.0.5", &[("forwarded", "for=unknown, for=10.1.1.1")]);
        assert_eq!(resolved.ip, ip("10.1.1.1"));
        assert_eq!(resolved.error, Some(ChainError::Unknown));
        let resolved = client("10.0.0.5", &[("forwarded", "for=_hidden")]);
        assert_eq!(resolved.ip, ip("10.0.0.5"));
        assert_eq!(resolved.error, Some(ChainError::Obfuscated));
        let resolved = client("10.0.0.5", &[("x-forwarded-for", "UNKNOWN")]);
        assert_eq!(resolved.error, Some(ChainError::Unknown));
        // An obfuscated port is fine: the address is still there.
        let resolved = client("10.0.0.5", &[("forwarded", "for=\"203.0.113.7:_p1\"")]);
        assert_eq!(resolved.ip, ip("203.0.113.7"));
    }

    #[test]
    fn an_oversized_header_buys_nothing_past_the_bound() {
        // The client pads the left; its proxy's hop on the right still counts.
        let padding = "192.0.2.1, ".repeat(2000);
        let chain = format!("{padding}203.0.113.7, 10.1.1.1");
        let resolved = client("10.0.0.5", &[("x-forwarded-for", &chain)]);
        assert_eq!(resolved.ip, ip("203.0.113.7"));
        // A chain of trusted hops past the bound ends at the last one read.
        let chain = "10.1.1.1, ".repeat(100) + "10.2.2.2";
        let resolved = client("10.0.0.5", &[("x-forwarded-for", &chain)]);
        assert_eq!(resolved.ip, ip("10.1.1.1"));
        assert_eq!(resolved.error, Some(ChainError::TooManyHops));
        // One hop longer than the byte bound is not read at all.
        let chain = format!("{}, 10.1.1.1", "9".repeat(MAX_BYTES));
        let resolved = client("10.0.0.5", &[("x-forwarded-for", &chain)]);
        assert_eq!(resolved.ip, ip("10.1.1.1"));
        assert_eq!(resolved.error, Some(ChainError::TooLarge));
    }

    #[test]
    fn ipv4_mapped_peers_and_hops_match_ipv4_proxies() {
        let resolved = client(
            "::ffff:10.0.0.5",
            &[("x-forwarded-for", "::ffff:203.0.113.7")],
        );
        assert!(resolved.peer_trusted);
        assert_eq!(resolved.ip, ip("203.0.113.7"), "reported in IPv4 form");
        let resolved = client("::ffff:198.51.100.9", &[]);
        assert_eq!(resolved.ip, ip("198.51.100.9"));
        assert!(!resolved.peer_trusted);
        let resolved = client(
            "10.0.0.5",
            &[("x-forwarded-for", "203.0.113.7, ::ffff:10.1.1.1")],
        );
        assert_eq!(
            resolved.ip,
            ip("203.0.113.7"),
            "a mapped proxy hop is trusted"
        );
    }
}
