//! App behaviors through the real binary: a fixed landing path after
//! sign-in, the upstream's Host, a custom page for the gateway's 403, and
//! where the signed-out page leads.

use http::{header, Request, StatusCode};
use test_support::{Backend, Client};

use crate::gateway_sso::{get_json, post_acs, sso, start_with};

const APP: &str = "https://app.test";

#[tokio::test]
async fn landing_host_header_error_page_and_post_logout_url() {
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let page = dir.path().join("denied.html");
    std::fs::write(
        &page,
        "<!doctype html><title>Nope</title><h1>Ask the help desk</h1>",
    )
    .expect("write page");
    let keys = format!(
        "host_header = \"upstream\"\nlogin_landing = \"/home\"\npost_logout_url = \"https://c.test/goodbye\"\n\
[app.error_pages]\n403 = \"{}\"\n[[app.access]]\npath = \"/closed\"\npolicy = \"deny\"\n",
        page.display()
    );
    let f = start_with("", &[("d", APP, &backend.url(), &keys)]);
    let b = f.gw.browser();

    // Whatever deep link started it, sign-in lands on /home.
    let acs = format!("{APP}/_portcullis/saml/acs");
    let posted = sso(&b, "pc_d_rs", &format!("{APP}/deep/link?x=1"), &acs).await;
    let landed = post_acs(&b, &acs, &posted.saml_response, &posted.relay_state).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text());
    assert_eq!(landed.location(), "/home");

    // The backend sees its own host; the public one travels in X-Forwarded-Host.
    let echo = get_json(&b, &format!("{APP}/whoami")).await;
    assert_eq!(echo.status, StatusCode::OK, "{}", echo.text());
    assert_eq!(echo.echoed("host"), [backend.addr.to_string()]);
    assert_eq!(echo.echoed("x-forwarded-host"), ["app.test"]);

    // The gateway's 403 becomes the app's page for browsers...
    let denied = b.get(&format!("{APP}/closed")).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert!(
        denied.text().contains("Ask the help desk"),
        "{}",
        denied.text()
    );
    assert!(denied.headers.contains_key("x-request-id"));
    // ...while API clients keep the JSON error.
    let api = b
        .send(
            Request::get(format!("{APP}/closed"))
                .header(header::ACCEPT, "application/json")
                .body(Client::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(api.status, StatusCode::FORBIDDEN);
    assert_eq!(api.json()["errorCode"], "access_denied", "{}", api.text());

    // After logout the signed-out page hands over to the configured URL.
    let mut next = format!("{APP}/_portcullis/logout");
    for _ in 0..10 {
        let reply = b.get(&next).await;
        assert_eq!(
            reply.status,
            StatusCode::SEE_OTHER,
            "{next}: {}",
            reply.text()
        );
        let location = reply.location();
        if location == "https://c.test/goodbye" {
            return;
        }
        next = if location.starts_with('/') {
            let origin_end = next[8..].find('/').map_or(next.len(), |i| i + 8);
            format!("{}{location}", &next[..origin_end])
        } else {
            location
        };
    }
    panic!("never reached post_logout_url");
}
