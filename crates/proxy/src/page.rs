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

/// Forms post only to the page's own origin; pages that post elsewhere
/// (the IdP's SAML POST binding) replace this header.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f5f7fa;color:#1f2933;margin:0}\
main{margin:4rem auto;background:#fff;padding:2rem;border-radius:.5rem;box-shadow:0 1px 3px rgba(0,0,0,.15)}\
main.narrow{max-width:24rem}main.wide{max-width:60rem;overflow-wrap:anywhere}\
main.full{max-width:96rem;margin:1rem auto}main.full table{display:block;overflow-x:auto;margin-bottom:1rem}\
h1{font-size:1.4rem;margin-top:0}label{display:block;margin:.75rem 0 .25rem;font-weight:600}\
input,select{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem;border:1px solid #7b8794;border-radius:.25rem;background:#fff}\
:focus-visible,input:focus,select:focus{outline:3px solid #2680c2;outline-offset:1px}\
a{color:#0b5a8c}\
button{margin-top:1.25rem;width:100%;padding:.6rem;font-size:1rem;background:#0b69a3;color:#fff;border:0;border-radius:.25rem;cursor:pointer}\
.error{background:#ffe3e3;color:#8a041a;padding:.5rem .75rem;border-radius:.25rem}\
.id{color:#52606d;font-size:.875rem}\
table{border-collapse:collapse}th,td{border:1px solid #cbd2d9;padding:.25rem .5rem;text-align:left;\
font-family:ui-monospace,monospace;font-size:.875rem;vertical-align:top}\
nav{margin-bottom:1rem;border-bottom:1px solid #cbd2d9;padding-bottom:.5rem}nav a{margin-right:1rem}\
nav a[aria-current]{font-weight:700}\
.badge{display:inline-block;padding:.1rem .5rem;border-radius:1rem;background:#e4e7eb;color:#1f2933;font-size:.8rem}\
.badge.ok{background:#e3f9e5;color:#0e5814}.badge.warn{background:#fff3c4;color:#5c4813}\
.badge.bad{background:#ffe3e3;color:#8a041a}\
ul.tiles{display:flex;flex-wrap:wrap;gap:1rem;list-style:none;padding:0}\
ul.tiles li{border:1px solid #cbd2d9;border-radius:.5rem;padding:.75rem 1rem;min-width:10rem}\
.figure{display:block;font-size:1.75rem;font-weight:700}ul.plain{list-style:none;margin:0;padding:0}\
td.num{text-align:right}.hint{color:#52606d;font-size:.875rem}\
.check{display:flex;gap:.5rem;align-items:center}.check input{width:auto}\
button.link{display:inline;width:auto;margin:0;padding:0;background:none;color:#0b5a8c;text-decoration:underline;font-size:inherit}\
form.inline{display:inline}form.inline button,form.filters button{width:auto;margin:0;padding:.25rem .75rem}\
form.filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end;margin-bottom:1rem}\
form.filters label{margin:0}form.filters input,form.filters select{width:10rem}\
form.filters .wide input{width:28rem;max-width:100%}form.filters .narrow input{width:5rem}\
input[aria-invalid=true]{border-color:#8a041a}";

/// A whole document: `title` is the document title as text (escaped
/// here), `main` is trusted markup the caller built with [`escape`] applied
/// to every value in it.
pub fn render(title: &str, main: &str, width: Width) -> String {
    let class = match width {
        Width::Narrow => "narrow",
        Width::Wide => "wide",
        Width::Full => "full",
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{title}</title><style>{STYLE}</style></head>\
<body><main class=\"{class}\">{main}</main></body></html>\n",
        title = escape(title),
    )
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
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// HTML-escapes text for element content and quoted attributes.
pub fn escape(text: &str) -> String {
    html_escape::encode_quoted_attribute(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_is_escaped_and_markup_is_kept() {
        let html = render("<x>", "<h1>Hi</h1>", Width::Narrow);
        assert!(html.contains("<title>&lt;x&gt;</title>"), "{html}");
        assert!(
            html.contains("<main class=\"narrow\"><h1>Hi</h1></main>"),
            "{html}"
        );
    }

    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(
            escape("<a href='x'>&</a>"),
            "&lt;a href=&#x27;x&#x27;&gt;&amp;&lt;/a&gt;"
        );
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
