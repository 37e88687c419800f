//! Identity toward the backend through the real binary: `inject_template`
//! and `[[app.inject]]` headers and cookies, spoofed client values
//! stripped, values that cannot travel raw dropped, the signed identity JWT
//! verifiable with the app's `/_portcullis/jwks`, and the size cap's page.

use http::{header, Request, StatusCode};
use test_support::{Backend, Client};

use crate::gateway_sso::{post_acs, sso, start_with};

const APP: &str = "https://app.test";

const RULES: &str = r#"inject_template = "header-app"
identity_jwt_header = "X-Identity-JWT"
[[app.inject]]
source = "attribute:groups"
target = "cookie"
name = "roles"
encoding = "url"
[[app.inject]]
source = "static:s3cr3t-shared"
name = "X-Shared-Secret"
[[app.inject]]
source = "session:amr"
name = "X-Amr"
[[app.inject]]
source = "attribute:lastName"
name = "X-Last-B64"
encoding = "base64"
[[app.inject]]
source = "static:line one\r\nX-Evil: 1"
name = "X-Smuggled"
[[app.inject]]
source = "attribute:email"
name = "X-Kept"
send = false
[[app.inject]]
source = "env:HOME"
name = "X-From-Env"
[[app.inject]]
source = "session:auth_time"
name = "X-Auth-Time"
[[app.inject]]
source = "session:idp_session"
name = "X-Idp-Session"
[[app.inject]]
source = "attribute:groups"
name = "X-First-Group"
multi = "first"
[[app.inject]]
source = "attribute:groups"
name = "X-Last-Group"
multi = "last"
[[app.inject]]
source = "attribute:groups"
name = "X-Groups-Piped"
separator = "|"
"#;

#[tokio::test]
async fn identity_headers_and_cookies_reach_the_backend_and_spoofs_do_not() {
    let backend = Backend::start().await;
    let f = start_with("", &[("d", APP, &backend.url(), RULES)]);
    let b = f.gw.browser();
    let acs = format!("{APP}/_portcullis/saml/acs");
    let posted = sso(&b, "pc_d_rs", &format!("{APP}/page"), &acs).await;
    let landed = post_acs(&b, &acs, &posted.saml_response, &posted.relay_state).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text());
    let session = b.cookie("pc_d").expect("session");

    // A client trying to pass as someone else, in every case and twice.
    let reply = b
        .client()
        .send(
            Request::get(format!("{APP}/whoami"))
                .header("x-remote-user", "mallory@evil.example")
                .header("X-REMOTE-USER", "mallory2")
                .header("x-identity-jwt", "forged")
                .header("x-portcullis-user", "mallory")
                .header(
                    header::COOKIE,
                    format!("pc_d={session}; roles=admins; other=1; ROLES=admins"),
                )
                .body(Client::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.echoed("x-remote-user"), ["bob@example.com"]);
    assert_eq!(reply.echoed("x-portcullis-user"), ["bob@example.com"]);
    assert_eq!(reply.echoed("x-remote-email"), ["bob@example.com"]);
    assert_eq!(reply.echoed("x-remote-groups"), ["staff"]);
    assert_eq!(reply.echoed("x-shared-secret"), ["s3cr3t-shared"]);
    assert_eq!(reply.echoed("x-amr"), ["pwd"]);
    assert_eq!(reply.echoed("x-last-b64"), ["QmFrZXI="], "base64 of Baker");
    assert!(
        reply.echoed("x-smuggled").is_empty(),
        "CR/LF value forwarded"
    );
    assert!(reply.echoed("x-evil").is_empty());
    assert!(reply.echoed("x-kept").is_empty(), "send = false");
    assert_eq!(
        reply.echoed("x-from-env"),
        [std::env::var("HOME").expect("HOME")],
        "env: secret"
    );
    let auth_time = reply.echoed("x-auth-time").pop().expect("auth time");
    assert!(
        auth_time.ends_with('Z') && auth_time.len() == 20,
        "{auth_time}"
    );
    assert_eq!(reply.echoed("x-idp-session").len(), 1);
    assert_eq!(reply.echoed("x-first-group"), ["staff"]);
    assert_eq!(reply.echoed("x-last-group"), ["staff"]);
    assert_eq!(reply.echoed("x-groups-piped"), ["staff"]);
    // One Cookie header: the client's own cookie kept, ours injected, the
    // spoofed ones (any case) and the gateway's session cookie gone.
    assert_eq!(reply.echoed("cookie"), ["other=1; roles=staff"]);
    assert!(f
        .gw
        .wait_for_log(
            "identity value not forwarded",
            std::time::Duration::from_secs(5)
        )
        .is_some());

    // The JWT verifies with the app's published key.
    let token = reply.echoed("x-identity-jwt").pop().expect("jwt");
    let jwks = b.get(&format!("{APP}/_portcullis/jwks")).await;
    assert_eq!(jwks.status, StatusCode::OK);
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&jwks.body).expect("jwks");
    let header = jsonwebtoken::decode_header(&token).expect("header");
    let jwk = jwks.find(header.kid.as_deref().expect("kid")).expect("key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[APP]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key"),
        &validation,
    )
    .expect("the identity JWT verifies")
    .claims;
    assert_eq!(claims["sub"], "bob@example.com");
    assert_eq!(claims["groups"], serde_json::json!(["staff"]));
    // A token from anywhere else does not.
    assert!(jsonwebtoken::decode::<serde_json::Value>(
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2ln",
        &jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key"),
        &validation,
    )
    .is_err());
}

#[tokio::test]
async fn an_identity_over_the_size_cap_gets_a_clear_page_not_a_backend_431() {
    let backend = Backend::start().await;
    let big = format!(
        "max_identity_bytes = 256\n[[app.inject]]\nsource = \"static:{}\"\nname = \"X-Big\"\n",
        "x".repeat(300)
    );
    let f = start_with("", &[("d", APP, &backend.url(), &big)]);
    let b = f.gw.browser();
    let acs = format!("{APP}/_portcullis/saml/acs");
    let posted = sso(&b, "pc_d_rs", &format!("{APP}/page"), &acs).await;
    post_acs(&b, &acs, &posted.saml_response, &posted.relay_state).await;
    let before = backend.requests();
    let reply = b.get(&format!("{APP}/page")).await;
    assert_eq!(reply.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert!(
        reply.text().contains("Too much identity data"),
        "{}",
        reply.text()
    );
    assert_eq!(backend.requests(), before, "the backend never saw it");
    assert!(f
        .gw
        .wait_for_log(
            "identity not sent to the backend",
            std::time::Duration::from_secs(5)
        )
        .is_some());
}
