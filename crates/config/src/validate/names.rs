//! Which names the configuration accepts: app, SP and session-cookie names,
//! and the header and cookie names identity is injected under.

/// App, service-provider and session-cookie names: they end up in cookie
/// names, paths and log fields, so a narrow alphabet.
pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An HTTP field name (RFC 9110 token).
pub(super) fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Headers an injection must not set: HTTP framing, hop-by-hop, and the
/// ones the gateway itself controls.
pub(super) fn reserved_header(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
        "cookie",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "forwarded",
        "x-real-ip",
        "x-request-id",
    ];
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// A cookie name (RFC 6265 token).
pub(super) fn valid_cookie_name(name: &str) -> bool {
    valid_header_name(name) && !name.starts_with("pc_")
}
