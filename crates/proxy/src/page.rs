//! The one HTML page shell for everything a person sees from Portcullis:
//! the proxy's error pages, the gateway's signed-out and refusal pages, the
//! IdP's sign-in pages and the echo backend. Pages are self-contained (no
//! external assets, so they render even when what failed is the network
//! path to a CDN), never cached, never framed, and load nothing from
//! elsewhere.

use http::header::{self, HeaderMap, HeaderValue};

/// How wide the page's card is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// Forms and messages.
    Narrow,
    /// Tables (the echo backend).
    Wide,
    /// The admin console: many-column tables.
    Full,
}

/// Every page's one style element (no `style` attributes anywhere), so
/// the CSP allows exactly it by hash rather than any inline style.
const STYLE: &str = include_str!("../templates/page.css");

/// `'sha256-…'` of [`STYLE`]: the `style-src` of every page's CSP.
pub fn style_src() -> &'static str {
    static SOURCE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        use base64::Engine as _;
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(STYLE.as_bytes());
        format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        )
    });
    &SOURCE
}

/// Forms post only to the page's own origin, nothing loads from anywhere,
/// no script runs and only the shell's own styles apply. Pages that post
/// elsewhere (the IdP's SAML POST binding) replace this header.
pub fn content_security_policy() -> &'static HeaderValue {
    static POLICY: std::sync::LazyLock<HeaderValue> = std::sync::LazyLock::new(|| {
        let policy = format!(
            "default-src 'none'; style-src {}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            style_src()
        );
        HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("default-src 'none'"))
    });
    &POLICY
}

/// The shell every page shares (`templates/page.html`, its styles in
/// `templates/page.css`).
#[derive(askama::Template)]
#[template(path = "page.html")]
struct Shell<'a> {
    title: &'a str,
    style: &'static str,
    width: &'static str,
    /// Trusted markup: rendered from a template that escaped every value.
    main: &'a str,
}

/// A whole document: `title` is the document title as text (escaped
/// here), `main` is trusted markup: a body rendered by [`body`] from a
/// template that escaped every value in it.
pub fn render(title: &str, main: &str, width: Width) -> String {
    let width = match width {
        Width::Narrow => "narrow",
        Width::Wide => "wide",
        Width::Full => "full",
    };
    let shell = Shell {
        title,
        style: STYLE,
        width,
        main,
    };
    askama::Template::render(&shell).unwrap_or_else(|e| {
        // Only a failing `fmt::Write` into a String gets here.
        tracing::error!(error = %e, "rendering the page shell failed");
        format!("<!doctype html><title>Portcullis</title>{main}")
    })
}

/// A page body from its template (each crate keeps its own under
/// `templates/`, escaping every value it is given), ready for [`render`].
pub fn body(template: &impl askama::Template) -> String {
    template.render().unwrap_or_else(|e| {
        // Only a failing `fmt::Write` into a String, or a template's own
        // `Display` impl failing, gets here.
        tracing::error!(error = %e, "rendering a page body failed");
        String::from("<h1>Something went wrong</h1>")
    })
}

/// The headers every page goes out with.
pub fn set_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        content_security_policy().clone(),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_is_escaped_and_markup_is_kept() {
        let html = render("<x>", "<h1>Hi</h1>", Width::Narrow);
        assert!(!html.contains("<x>"), "{html}");
        assert!(html.contains("<title>&#60;x&#62;</title>"), "{html}");
        assert!(
            html.contains("<main class=\"narrow\"><h1>Hi</h1></main>"),
            "{html}"
        );
    }

    #[test]
    fn the_csp_allows_exactly_the_style_element_the_page_has() {
        use base64::Engine as _;
        use sha2::Digest as _;
        let html = render("t", "<p>x</p>", Width::Full);
        let style = html
            .split_once("<style>")
            .and_then(|(_, rest)| rest.split_once("</style>"))
            .map(|(style, _)| style)
            .expect("one style element");
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(style));
        let mut h = HeaderMap::new();
        set_headers(&mut h);
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().expect("text");
        assert!(
            csp.contains(&format!("style-src 'sha256-{hash}';")),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(html.matches("<style>").count(), 1);
        assert!(!html.contains("style=\""));
    }

    #[test]
    fn pages_are_never_framed_or_cached() {
        let mut h = HeaderMap::new();
        set_headers(&mut h);
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert!(h[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .is_ok_and(|v| v.contains("frame-ancestors 'none'")));
    }
}
