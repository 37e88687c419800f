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

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, Entry, HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame, SizeHint};
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

/// Whether `byte` can continue a host name, port or path segment: a match
/// followed by one of these is a different URL (`http://backend` must not
/// rewrite `http://backend2`, `/legacy` must not rewrite `/legacy.html`).
fn continues_url(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'%' | b':' | b'@' | b'+')
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
            public.base_path(),
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

    /// The byte strings [`BodyRewriter`] looks for, each with its
    /// replacement: `scheme://authority{base}` and `//authority{base}` for
    /// every spelling of the upstream origin.
    fn body_needles(&self) -> Vec<Needle> {
        let mut needles: Vec<Needle> = Vec::new();
        for origin in &self.internal {
            let absolute = format!("{}://{}", origin.scheme, origin.authority);
            let relative = format!("//{}", origin.authority);
            for (origin_part, replacement) in [
                (
                    absolute,
                    format!("{}{}", self.public_origin, self.public_prefix),
                ),
                (
                    relative,
                    format!("//{}{}", self.public_authority, self.public_prefix),
                ),
            ] {
                let mut bytes = origin_part.clone().into_bytes();
                bytes.extend_from_slice(self.base_path.as_bytes());
                if needles.iter().any(|n| n.bytes == bytes) {
                    continue;
                }
                needles.push(Needle {
                    // Scheme and host compare case-insensitively, the base
                    // path exactly.
                    ci_len: origin_part.len(),
                    bytes,
                    replacement: replacement.into_bytes(),
                });
            }
        }
        // Longest first: at one position, the most specific spelling wins.
        needles.sort_by_key(|n| std::cmp::Reverse(n.bytes.len()));
        needles
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

/// Whether a response body is a kind the body rewriter handles: HTML, CSS
/// or JavaScript (media type compared case-insensitively, parameters
/// ignored), and a whole body — a `Content-Range` part cannot be rewritten
/// without breaking its offsets.
pub(crate) fn should_rewrite_body(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::CONTENT_RANGE) {
        return false;
    }
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    [
        "text/html",
        "text/css",
        "application/javascript",
        "text/javascript",
    ]
    .iter()
    .any(|t| media_type.eq_ignore_ascii_case(t))
}

/// Removes `Content-Length` from a response whose body is being rewritten:
/// replacements change the length, and a stale length would make the
/// client cut the body short or wait for bytes that never come. Without
/// it, HTTP/1.1 falls back to chunked encoding and HTTP/2 to END_STREAM.
pub(crate) fn remove_content_length(headers: &mut HeaderMap) {
    headers.remove(header::CONTENT_LENGTH);
}

/// One string the body rewriter replaces.
#[derive(Debug, Clone)]
struct Needle {
    /// Lowercase in its first `ci_len` bytes (scheme and authority).
    bytes: Vec<u8>,
    ci_len: usize,
    replacement: Vec<u8>,
}

/// Streaming replacement of the upstream's URLs in an identity-coded body.
///
/// Holds back at most the longest needle's length between chunks (a match
/// may straddle a chunk boundary, and one more byte is needed to see that a
/// match is not the start of a longer host or path segment); never buffers
/// the body.
#[derive(Debug)]
pub(crate) struct BodyRewriter {
    needles: Vec<Needle>,
    /// Bytes that may start a needle, both cases.
    first_bytes: [bool; 256],
    longest: usize,
    /// The unprocessed tail carried to the next chunk.
    carry: Vec<u8>,
    /// Most bytes ever held at once (carry plus one incoming chunk).
    peak: usize,
}

impl BodyRewriter {
    pub(crate) fn new(map: &UrlMap) -> BodyRewriter {
        let needles = map.body_needles();
        let mut first_bytes = [false; 256];
        for needle in &needles {
            if let Some(&b) = needle.bytes.first() {
                first_bytes[usize::from(b.to_ascii_lowercase())] = true;
                first_bytes[usize::from(b.to_ascii_uppercase())] = true;
            }
        }
        BodyRewriter {
            longest: needles.iter().map(|n| n.bytes.len()).max().unwrap_or(0),
            needles,
            first_bytes,
            carry: Vec::new(),
            peak: 0,
        }
    }

    /// Rewrites the next chunk; returns what can be released so far.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Bytes {
        self.run(chunk, false)
    }

    /// Releases the held-back tail at the end of the body.
    pub(crate) fn finish(&mut self) -> Bytes {
        self.run(&[], true)
    }

    /// Bytes held back between chunks (at most the longest needle's length).
    #[cfg(test)]
    pub(crate) fn buffered_len(&self) -> usize {
        self.carry.len()
    }

    /// Most bytes held at once so far: carry plus one chunk.
    #[cfg(test)]
    pub(crate) fn peak_buffered_len(&self) -> usize {
        self.peak
    }

    fn run(&mut self, chunk: &[u8], last: bool) -> Bytes {
        if self.needles.is_empty() {
            return Bytes::copy_from_slice(chunk);
        }
        self.carry.extend_from_slice(chunk);
        self.peak = self.peak.max(self.carry.len());
        let buf = self.carry.as_slice();
        // A position is decided once the needle and the byte after it are
        // in hand; later positions wait for the next chunk.
        let limit = if last {
            buf.len()
        } else {
            buf.len().saturating_sub(self.longest)
        };
        let mut out = Vec::with_capacity(buf.len());
        let mut emitted = 0;
        let mut i = 0;
        while i < limit {
            match buf[i..limit]
                .iter()
                .position(|&b| self.first_bytes[usize::from(b)])
            {
                Some(offset) => i += offset,
                None => {
                    i = limit;
                    break;
                }
            }
            match self.match_at(buf, i) {
                Some(needle) => {
                    out.extend_from_slice(&buf[emitted..i]);
                    out.extend_from_slice(&needle.replacement);
                    i += needle.bytes.len();
                    emitted = i;
                }
                None => i += 1,
            }
        }
        // A match may have ended past `limit`; everything before `keep` has
        // been examined.
        let keep = i.max(limit);
        out.extend_from_slice(&buf[emitted..keep]);
        self.carry.drain(..keep);
        Bytes::from(out)
    }

    fn match_at(&self, buf: &[u8], at: usize) -> Option<&Needle> {
        self.needles.iter().find(|needle| {
            let end = at + needle.bytes.len();
            let Some(candidate) = buf.get(at..end) else {
                return false;
            };
            let (ci, exact) = candidate.split_at(needle.ci_len);
            ci.eq_ignore_ascii_case(&needle.bytes[..needle.ci_len])
                && exact == &needle.bytes[needle.ci_len..]
                && !buf.get(end).is_some_and(|&b| continues_url(b))
        })
    }
}

/// The `Content-Encoding` of a response, as far as rewriting cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContentCoding {
    Identity,
    Gzip,
    Brotli,
    /// Anything else (`zstd`, `deflate`, stacked codings): passed through.
    Other,
}

impl ContentCoding {
    pub(crate) fn of(headers: &HeaderMap) -> ContentCoding {
        let mut values = headers.get_all(header::CONTENT_ENCODING).iter();
        let Some(first) = values.next() else {
            return ContentCoding::Identity;
        };
        if values.next().is_some() {
            return ContentCoding::Other;
        }
        match first.to_str().map(str::trim) {
            Ok(c) if c.is_empty() || c.eq_ignore_ascii_case("identity") => ContentCoding::Identity,
            Ok(c) if c.eq_ignore_ascii_case("gzip") || c.eq_ignore_ascii_case("x-gzip") => {
                ContentCoding::Gzip
            }
            Ok(c) if c.eq_ignore_ascii_case("br") => ContentCoding::Brotli,
            _ => ContentCoding::Other,
        }
    }
}

/// The decoder's output: rewritten and fed straight to the encoder, so a
/// small compressed chunk that inflates hugely never sits decoded in memory
/// (the decoders write in pieces of their internal buffer size).
struct Sink<E: Write> {
    rewriter: BodyRewriter,
    encoder: E,
}

impl<E: Write> Write for Sink<E> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let rewritten = self.rewriter.push(buf);
        self.encoder.write_all(&rewritten)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.encoder.flush()
    }
}

type GzipChain = flate2::write::MultiGzDecoder<Sink<flate2::write::GzEncoder<Vec<u8>>>>;
type BrotliChain = brotli::DecompressorWriter<Sink<brotli::CompressorWriter<Vec<u8>>>>;

/// Decoder buffer size for br; also the largest piece the rewriter sees.
const BROTLI_BUFFER: usize = 16 * 1024;
/// br quality for re-encoding: a mid setting, as servers use on the fly.
const BROTLI_QUALITY: u32 = 5;
const BROTLI_LGWIN: u32 = 22;

enum Coded {
    // Boxed like the others: the rewriter's first-byte table is 256 bytes.
    Identity(Box<BodyRewriter>),
    Gzip(Option<Box<GzipChain>>),
    Brotli(Option<Box<BrotliChain>>),
    Passthrough,
}

/// [`BodyRewriter`] behind the response's content coding: gzip and br are
/// decoded, rewritten and re-encoded as a stream (same coding, so the
/// `Content-Encoding` header stays right); any other coding passes through
/// untouched.
///
/// Each pushed chunk ends in a flush of the encoder, so the client gets the
/// rewritten bytes as soon as the upstream sent them (server-sent HTML
/// streams keep working), at a small cost in compression.
pub(crate) struct CodedRewriter {
    coded: Coded,
}

impl CodedRewriter {
    pub(crate) fn new(map: &UrlMap, coding: ContentCoding) -> CodedRewriter {
        let coded = match coding {
            ContentCoding::Identity => Coded::Identity(Box::new(BodyRewriter::new(map))),
            ContentCoding::Gzip => {
                Coded::Gzip(Some(Box::new(flate2::write::MultiGzDecoder::new(Sink {
                    rewriter: BodyRewriter::new(map),
                    encoder: flate2::write::GzEncoder::new(
                        Vec::new(),
                        flate2::Compression::default(),
                    ),
                }))))
            }
            ContentCoding::Brotli => {
                Coded::Brotli(Some(Box::new(brotli::DecompressorWriter::new(
                    Sink {
                        rewriter: BodyRewriter::new(map),
                        encoder: brotli::CompressorWriter::new(
                            Vec::new(),
                            BROTLI_BUFFER,
                            BROTLI_QUALITY,
                            BROTLI_LGWIN,
                        ),
                    },
                    BROTLI_BUFFER,
                ))))
            }
            ContentCoding::Other => Coded::Passthrough,
        };
        CodedRewriter { coded }
    }

    /// The rewriter for a response, or `None` when its body is not to be
    /// rewritten ([`should_rewrite_body`]). The caller must then also call
    /// [`remove_content_length`] (unless the coding is passed through).
    pub(crate) fn for_response(map: &UrlMap, headers: &HeaderMap) -> Option<CodedRewriter> {
        should_rewrite_body(headers).then(|| CodedRewriter::new(map, ContentCoding::of(headers)))
    }

    /// Whether bytes pass through unchanged (an unsupported coding).
    pub(crate) fn is_passthrough(&self) -> bool {
        matches!(self.coded, Coded::Passthrough)
    }

    /// Rewrites the next chunk of the (encoded) body.
    pub(crate) fn push(&mut self, chunk: Bytes) -> io::Result<Bytes> {
        match &mut self.coded {
            Coded::Identity(rewriter) => Ok(rewriter.push(&chunk)),
            Coded::Passthrough => Ok(chunk),
            Coded::Gzip(chain) => {
                let chain = chain.as_mut().ok_or_else(finished)?;
                chain.write_all(&chunk)?;
                chain.flush()?;
                Ok(Bytes::from(std::mem::take(
                    chain.get_mut().encoder.get_mut(),
                )))
            }
            Coded::Brotli(chain) => {
                let chain = chain.as_mut().ok_or_else(finished)?;
                chain.write_all(&chunk)?;
                chain.flush()?;
                Ok(Bytes::from(std::mem::take(
                    chain.get_mut().encoder.get_mut(),
                )))
            }
        }
    }

    /// Ends the body: releases the held-back tail and closes the encoder.
    /// A truncated or corrupt compressed body is an error here.
    pub(crate) fn finish(&mut self) -> io::Result<Bytes> {
        match &mut self.coded {
            Coded::Identity(rewriter) => Ok(rewriter.finish()),
            Coded::Passthrough => Ok(Bytes::new()),
            Coded::Gzip(chain) => {
                let chain = chain.take().ok_or_else(finished)?;
                let mut sink = chain.finish()?;
                let tail = sink.rewriter.finish();
                sink.encoder.write_all(&tail)?;
                Ok(Bytes::from(sink.encoder.finish()?))
            }
            Coded::Brotli(chain) => {
                let mut chain = chain.take().ok_or_else(finished)?;
                chain.close()?;
                let mut sink = chain.into_inner().map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, "truncated br stream")
                })?;
                let tail = sink.rewriter.finish();
                sink.encoder.write_all(&tail)?;
                sink.encoder.flush()?;
                // `into_inner` finishes the br stream.
                Ok(Bytes::from(sink.encoder.into_inner()))
            }
        }
    }

    /// Bytes the rewriter itself holds back (see
    /// [`BodyRewriter::buffered_len`]); 0 when passing through.
    #[cfg(test)]
    fn buffered_len(&mut self) -> usize {
        match &mut self.coded {
            Coded::Identity(rewriter) => rewriter.buffered_len(),
            Coded::Passthrough => 0,
            Coded::Gzip(chain) => chain
                .as_mut()
                .map_or(0, |c| c.get_mut().rewriter.buffered_len()),
            Coded::Brotli(chain) => chain
                .as_mut()
                .map_or(0, |c| c.get_mut().rewriter.buffered_len()),
        }
    }
}

fn finished() -> io::Error {
    io::Error::other("body rewriter used after finish")
}

/// Why a rewritten body stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RewriteBodyError<E> {
    #[error(transparent)]
    Inner(E),
    #[error("rewriting the response body: {0}")]
    Codec(#[source] io::Error),
}

pin_project_lite::pin_project! {
    /// A response body rewritten frame by frame through a [`CodedRewriter`].
    /// Trailers pass through, after the rewriter's held-back tail. The
    /// length is unknown (it changes), except when passing through.
    pub(crate) struct RewritingBody<B> {
        #[pin]
        inner: B,
        rewriter: CodedRewriter,
        // Trailers received, sent once the tail is out.
        trailers: Option<HeaderMap>,
        // The inner body has ended and the rewriter is finished.
        done: bool,
    }
}

impl<B> RewritingBody<B> {
    pub(crate) fn new(inner: B, rewriter: CodedRewriter) -> RewritingBody<B> {
        RewritingBody {
            inner,
            rewriter,
            trailers: None,
            done: false,
        }
    }

    /// The body being rewritten.
    pub(crate) fn inner_mut(self: Pin<&mut Self>) -> Pin<&mut B> {
        self.project().inner
    }
}

impl<B> Body for RewritingBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = RewriteBodyError<B::Error>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        loop {
            if *this.done {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            let frame = match this.inner.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(error))) => {
                    *this.done = true;
                    return Poll::Ready(Some(Err(RewriteBodyError::Inner(error))));
                }
                Poll::Ready(Some(Ok(frame))) => Some(frame),
                Poll::Ready(None) => None,
            };
            let at_end = match frame.map(Frame::into_data) {
                Some(Ok(data)) => match this.rewriter.push(data) {
                    // Nothing released yet (all held back or still inside
                    // the encoder): ask the inner body for more.
                    Ok(out) if out.is_empty() => continue,
                    Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                    Err(error) => {
                        *this.done = true;
                        return Poll::Ready(Some(Err(RewriteBodyError::Codec(error))));
                    }
                },
                Some(Err(frame)) => match frame.into_trailers() {
                    Ok(trailers) => {
                        *this.trailers = Some(trailers);
                        true
                    }
                    // A frame kind this body does not know: nothing to
                    // rewrite or forward.
                    Err(_) => false,
                },
                None => true,
            };
            if at_end {
                *this.done = true;
                match this.rewriter.finish() {
                    Ok(tail) if tail.is_empty() => continue,
                    Ok(tail) => return Poll::Ready(Some(Ok(Frame::data(tail)))),
                    Err(error) => {
                        this.trailers.take();
                        return Poll::Ready(Some(Err(RewriteBodyError::Codec(error))));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.rewriter.is_passthrough() {
            self.inner.size_hint()
        } else {
            SizeHint::default()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Read;

    use http_body_util::{BodyExt, StreamBody};

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

    #[test]
    fn body_rewrite_applies_to_html_css_and_javascript_only() {
        let with = |pairs: &[(HeaderName, &'static str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.append(name.clone(), HeaderValue::from_static(value));
            }
            headers
        };
        for content_type in [
            "text/html",
            "Text/HTML; charset=utf-8",
            "text/css",
            "application/javascript",
            "text/javascript;charset=UTF-8",
            " text/html ",
        ] {
            assert!(
                should_rewrite_body(&with(&[(header::CONTENT_TYPE, content_type)])),
                "{content_type}"
            );
        }
        for content_type in [
            "application/json",
            "text/plain",
            "image/png",
            "text/htmlx",
            "",
        ] {
            assert!(
                !should_rewrite_body(&with(&[(header::CONTENT_TYPE, content_type)])),
                "{content_type}"
            );
        }
        assert!(!should_rewrite_body(&HeaderMap::new()));
        assert!(!should_rewrite_body(&with(&[
            (header::CONTENT_TYPE, "text/html"),
            (header::CONTENT_RANGE, "bytes 0-9/100"),
        ])));

        let mut headers = with(&[
            (header::CONTENT_TYPE, "text/html"),
            (header::CONTENT_LENGTH, "10"),
        ]);
        assert!(CodedRewriter::for_response(&wiki(), &headers).is_some());
        remove_content_length(&mut headers);
        assert!(!headers.contains_key(header::CONTENT_LENGTH));
        assert!(CodedRewriter::for_response(
            &wiki(),
            &with(&[(header::CONTENT_TYPE, "image/png")])
        )
        .is_none());
    }

    #[test]
    fn content_coding_is_recognised() {
        let coding = |values: &[&'static str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(header::CONTENT_ENCODING, HeaderValue::from_static(value));
            }
            ContentCoding::of(&headers)
        };
        assert_eq!(coding(&[]), ContentCoding::Identity);
        assert_eq!(coding(&["identity"]), ContentCoding::Identity);
        assert_eq!(coding(&["GZIP"]), ContentCoding::Gzip);
        assert_eq!(coding(&["x-gzip"]), ContentCoding::Gzip);
        assert_eq!(coding(&["br"]), ContentCoding::Brotli);
        for other in [&["zstd"][..], &["deflate"], &["gzip, br"], &["gzip", "br"]] {
            assert_eq!(coding(other), ContentCoding::Other, "{other:?}");
        }
    }

    // ---- Bodies -----------------------------------------------------------

    /// A document whose only upstream URLs are exact-case and end at a
    /// boundary, so a whole-string `replace` is the expected result.
    fn document() -> String {
        format!(
            "<a href=\"{ABS}/page?x=1\">a</a><img src='//10.0.0.5:8080/legacy/i.png'>\
             url({ABS}/s.css) http://10.0.0.5:8080/other stays; //10.0.0.5:8080/legacy\n\
             {ABS}\"{ABS}/"
        )
    }

    fn replace_whole(document: &str) -> String {
        document
            .replace(ABS, PUB)
            .replace("//10.0.0.5:8080/legacy", "//app.example.com/wiki")
    }

    fn run_chunks(rewriter: &mut BodyRewriter, chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend_from_slice(&rewriter.push(chunk));
        }
        out.extend_from_slice(&rewriter.finish());
        out
    }

    #[test]
    fn body_matches_split_at_every_boundary_equal_a_whole_string_replace() {
        let map = wiki();
        let doc = document();
        let expected = replace_whole(&doc);
        assert_ne!(expected, doc);
        let bytes = doc.as_bytes();
        for split in 0..=bytes.len() {
            let (a, b) = bytes.split_at(split);
            let out = run_chunks(&mut BodyRewriter::new(&map), &[a, b]);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                expected,
                "split at {split}"
            );
        }
        // Every chunk size, down to one byte at a time.
        for size in 1..=64 {
            let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
            let out = run_chunks(&mut BodyRewriter::new(&map), &chunks);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                expected,
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn body_host_is_case_insensitive_and_matches_end_at_a_boundary() {
        let map = root_default_port();
        let doc = "A HTTP://Backend.Internal/x B http://backend.internal:80/y C //backend.internal/z \
                   D http://backend.internal2/ E http://backend.internal.evil/ F http://backend.internal:8080/ \
                   G http://backend.internal";
        let expected = "A https://app.example.com/x B https://app.example.com/y C //app.example.com/z \
                        D http://backend.internal2/ E http://backend.internal.evil/ F http://backend.internal:8080/ \
                        G https://app.example.com";
        let bytes = doc.as_bytes();
        for split in 0..=bytes.len() {
            let (a, b) = bytes.split_at(split);
            let out = run_chunks(&mut BodyRewriter::new(&map), &[a, b]);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                expected,
                "split at {split}"
            );
        }
        // The base path is matched exactly and must end a segment.
        let out = run_chunks(
            &mut BodyRewriter::new(&wiki()),
            &[b"http://10.0.0.5:8080/LEGACY/ http://10.0.0.5:8080/legacy.html http://10.0.0.5:8080/legacy?q"],
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "http://10.0.0.5:8080/LEGACY/ http://10.0.0.5:8080/legacy.html https://app.example.com/wiki?q"
        );
    }

    #[test]
    fn sixteen_mib_streams_with_a_bounded_buffer() {
        const CHUNK: usize = 16 * 1024;
        let map = wiki();
        let unit = format!(
            "<p>text text text <a href=\"{ABS}/page\">link</a> more //10.0.0.5:8080/legacy/x</p>\n"
        );
        let repeats = (16 * 1024 * 1024) / unit.len() + 1;
        let doc = unit.repeat(repeats);
        assert!(doc.len() >= 16 * 1024 * 1024);
        let mut rewriter = BodyRewriter::new(&map);
        let longest = rewriter.longest;
        let mut out = Vec::with_capacity(doc.len() + doc.len() / 8);
        for chunk in doc.as_bytes().chunks(CHUNK) {
            out.extend_from_slice(&rewriter.push(chunk));
            assert!(
                rewriter.buffered_len() <= longest,
                "{}",
                rewriter.buffered_len()
            );
        }
        out.extend_from_slice(&rewriter.finish());
        assert_eq!(rewriter.buffered_len(), 0);
        assert!(
            rewriter.peak_buffered_len() <= longest + CHUNK,
            "peak {} > {} + {CHUNK}",
            rewriter.peak_buffered_len(),
            longest
        );
        assert!(out == replace_whole(&doc).into_bytes());
    }

    fn big_document() -> String {
        document().repeat(2000)
    }

    fn through(rewriter: &mut CodedRewriter, encoded: &[u8], chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in encoded.chunks(chunk) {
            out.extend_from_slice(&rewriter.push(Bytes::copy_from_slice(piece)).unwrap());
            assert!(rewriter.buffered_len() <= 64);
        }
        out.extend_from_slice(&rewriter.finish().unwrap());
        out
    }

    #[test]
    fn gzip_round_trip() {
        let doc = big_document();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(doc.as_bytes()).unwrap();
        let gzipped = encoder.finish().unwrap();
        for chunk in [7, 100, 4096] {
            let mut rewriter = CodedRewriter::new(&wiki(), ContentCoding::Gzip);
            let out = through(&mut rewriter, &gzipped, chunk);
            let mut decoded = String::new();
            flate2::read::GzDecoder::new(out.as_slice())
                .read_to_string(&mut decoded)
                .unwrap();
            assert!(decoded == replace_whole(&doc), "chunks of {chunk}");
        }
    }

    #[test]
    fn brotli_round_trip() {
        let doc = big_document();
        let mut encoder = brotli::CompressorWriter::new(Vec::new(), 4096, 9, 22);
        encoder.write_all(doc.as_bytes()).unwrap();
        let compressed = encoder.into_inner();
        for chunk in [7, 100, 4096] {
            let mut rewriter = CodedRewriter::new(&wiki(), ContentCoding::Brotli);
            let out = through(&mut rewriter, &compressed, chunk);
            let mut decoded = String::new();
            brotli::Decompressor::new(out.as_slice(), 4096)
                .read_to_string(&mut decoded)
                .unwrap();
            assert!(decoded == replace_whole(&doc), "chunks of {chunk}");
        }
    }

    #[test]
    fn corrupt_or_truncated_compressed_bodies_are_errors() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(document().as_bytes()).unwrap();
        let gzipped = encoder.finish().unwrap();
        let mut rewriter = CodedRewriter::new(&wiki(), ContentCoding::Gzip);
        rewriter
            .push(Bytes::copy_from_slice(&gzipped[..gzipped.len() / 2]))
            .unwrap();
        assert!(rewriter.finish().is_err());

        let mut rewriter = CodedRewriter::new(&wiki(), ContentCoding::Gzip);
        let garbage = rewriter.push(Bytes::from_static(b"this is not gzip at all"));
        assert!(garbage.is_err() || rewriter.finish().is_err());

        let mut encoder = brotli::CompressorWriter::new(Vec::new(), 4096, 5, 22);
        encoder.write_all(document().as_bytes()).unwrap();
        let compressed = encoder.into_inner();
        let mut rewriter = CodedRewriter::new(&wiki(), ContentCoding::Brotli);
        rewriter
            .push(Bytes::copy_from_slice(&compressed[..compressed.len() / 2]))
            .unwrap();
        assert!(rewriter.finish().is_err());
    }

    #[test]
    fn unknown_codings_pass_through_byte_identical() {
        let mut body = b"\x28\xb5\x2f\xfd not really zstd ".to_vec();
        body.extend_from_slice(ABS.as_bytes());
        body.extend_from_slice(b"/x");
        let mut rewriter = CodedRewriter::new(&wiki(), ContentCoding::Other);
        assert!(rewriter.is_passthrough());
        let out = through(&mut rewriter, &body, 5);
        assert_eq!(out, body);
    }

    // ---- http_body adapter ------------------------------------------------

    type TestFrame = Result<Frame<Bytes>, std::convert::Infallible>;

    fn frames(body: &[u8], chunk: usize, trailers: Option<HeaderMap>) -> Vec<TestFrame> {
        let mut frames: Vec<TestFrame> = body
            .chunks(chunk)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        if let Some(trailers) = trailers {
            frames.push(Ok(Frame::trailers(trailers)));
        }
        frames
    }

    #[tokio::test]
    async fn rewriting_body_rewrites_frames_and_passes_trailers() {
        let doc = document();
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", HeaderValue::from_static("abc"));
        let inner = StreamBody::new(futures_util::stream::iter(frames(
            doc.as_bytes(),
            9,
            Some(trailers),
        )));
        let body = RewritingBody::new(inner, CodedRewriter::new(&wiki(), ContentCoding::Identity));
        assert_eq!(body.size_hint().exact(), None);
        let collected = body.collect().await.unwrap();
        assert_eq!(collected.trailers().unwrap()["x-checksum"], "abc");
        assert_eq!(collected.to_bytes(), replace_whole(&doc).as_bytes());
    }

    #[tokio::test]
    async fn rewriting_body_through_gzip() {
        let doc = big_document();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(doc.as_bytes()).unwrap();
        let gzipped = encoder.finish().unwrap();
        let inner = StreamBody::new(futures_util::stream::iter(frames(&gzipped, 1000, None)));
        let body = RewritingBody::new(inner, CodedRewriter::new(&wiki(), ContentCoding::Gzip));
        let out = body.collect().await.unwrap().to_bytes();
        let mut decoded = String::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_string(&mut decoded)
            .unwrap();
        assert!(decoded == replace_whole(&doc));
    }

    #[tokio::test]
    async fn rewriting_body_reports_a_corrupt_stream() {
        let inner = StreamBody::new(futures_util::stream::iter(frames(b"not gzip", 3, None)));
        let body = RewritingBody::new(inner, CodedRewriter::new(&wiki(), ContentCoding::Gzip));
        assert!(matches!(
            body.collect().await,
            Err(RewriteBodyError::Codec(_))
        ));
    }

    #[tokio::test]
    async fn passthrough_body_keeps_its_length() {
        let body = http_body_util::Full::new(Bytes::from_static(b"0123456789"));
        let body = RewritingBody::new(body, CodedRewriter::new(&wiki(), ContentCoding::Other));
        assert_eq!(body.size_hint().exact(), Some(10));
        assert_eq!(body.collect().await.unwrap().to_bytes(), &b"0123456789"[..]);
    }
}
