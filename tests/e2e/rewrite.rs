//! Response rewriting through the real binary: an upstream that speaks of
//! itself by its internal address (`http://127.0.0.1:PORT/…`) reaches the
//! browser with public URLs — in `Location`, `Content-Location`, `Refresh`
//! and `Set-Cookie`, and (with `rewrite_body`) inside HTML, gzip included.

use std::io::Read as _;

use http::header;
use test_support::{Backend, Client};

use crate::process::{app, Gateway};

#[tokio::test]
async fn internal_urls_in_headers_and_bodies_become_public_ones() {
    let backend = Backend::start().await;
    let internal = format!("http://{}", backend.addr);
    let config =
        app("legacy", "https://app.test/portal", &format!("{internal}/")) + "rewrite_body = true\n";
    let gw = Gateway::start("", &config);
    let client = Client::http1(&gw.pki, gw.https);

    let redirect = client
        .get("https://app.test/portal/internal-redirect")
        .await;
    assert_eq!(redirect.status, http::StatusCode::FOUND);
    let header_of = |name| redirect.headers[name].to_str().expect("ascii").to_string();
    assert_eq!(
        header_of(header::LOCATION),
        "https://app.test/portal/landing?from=redirect"
    );
    assert_eq!(
        header_of(header::CONTENT_LOCATION),
        "https://app.test/portal/resource"
    );
    assert_eq!(
        header_of(header::REFRESH),
        "5; url=https://app.test/portal/landing?from=redirect"
    );
    let cookie = header_of(header::SET_COOKIE);
    assert!(!cookie.contains("Domain"), "{cookie}");
    assert!(cookie.contains("Path=/portal"), "{cookie}");

    let page = client.get("https://app.test/portal/internal-page").await;
    let html = page.text();
    assert!(
        html.contains("href=\"https://app.test/portal/docs/a\""),
        "{html}"
    );
    assert!(html.contains("src=\"//app.test/portal/img.png\""), "{html}");
    assert!(
        html.contains("http://elsewhere.test/"),
        "other hosts untouched: {html}"
    );
    assert!(!html.contains(&internal), "{html}");

    let zipped = client
        .get("https://app.test/portal/internal-page?gzip=1")
        .await;
    assert_eq!(zipped.headers[header::CONTENT_ENCODING], "gzip");
    assert!(!zipped.headers.contains_key(header::CONTENT_LENGTH));
    let mut html = String::new();
    flate2::read::GzDecoder::new(&zipped.body[..])
        .read_to_string(&mut html)
        .expect("still gzip");
    assert!(
        html.contains("href=\"https://app.test/portal/docs/a\""),
        "{html}"
    );
    assert!(!html.contains(&internal), "{html}");
}
