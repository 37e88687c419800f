//! Universal Logout through the real binary: the gateway's
//! `/_portcullis/global-token-revocation` endpoint (tokens signed with the
//! embedded IdP's key, as its JWKS publishes it, and every way a token can
//! be wrong), and the IdP's own dispatch when a session is revoked through
//! the Sessions API or an admin asks for a universal logout — including a
//! streaming response the ended session had open.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use portcullis_saml::SigningKey;
use serde_json::{json, Value};
use test_support::{Backend, Client, Reply};

use crate::gateway_sso::{
    closes_within, get_json, open_websocket, post_acs, sso, start, start_with, Fixture, ADMIN_TOKEN,
};

const IDP: &str = "https://a.test";
const ISSUER: &str = "https://a.test";
const B: &str = "https://b.test";
const C: &str = "https://c.test";
const B_GTR: &str = "https://b.test/_portcullis/global-token-revocation";
const C_GTR: &str = "https://c.test/_portcullis/global-token-revocation";
const BOB: &str = "bob@example.com";

/// bob signs in to b (password at the IdP) and c (SSO, no password).
pub(crate) async fn bob_in_b_and_c(f: &Fixture) -> test_support::browser::Browser {
    let b = f.gw.browser();
    for (app, acs) in [
        (B, "https://b.test/_portcullis/saml/acs"),
        (C, "https://c.test/_portcullis/saml/acs"),
    ] {
        let posted = sso(
            &b,
            &format!("pc_{}_rs", &app[8..9]),
            &format!("{app}/page"),
            acs,
        )
        .await;
        let landed = post_acs(&b, acs, &posted.saml_response, &posted.relay_state).await;
        assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text());
    }
    for app in [B, C] {
        assert_eq!(
            get_json(&b, &format!("{app}/page")).await.status,
            StatusCode::OK
        );
    }
    b
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A revocation token as the IdP would sign it, with `claims` merged in.
fn token(key: &SigningKey, kid: &str, claims: Value) -> String {
    let mut all = json!({
        "iss": ISSUER,
        "aud": B_GTR,
        "iat": now(),
        "exp": now() + 60,
        "jti": format!("jti-{}", rand_suffix()),
    });
    for (k, v) in claims.as_object().expect("object") {
        all[k] = v.clone();
    }
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(
        &header,
        &all,
        &jsonwebtoken::EncodingKey::from_rsa_der(&key.rsa_key_der().expect("der")),
    )
    .expect("token")
}

fn rand_suffix() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos()
}

fn email_body(email: &str) -> String {
    json!({"sub_id": {"format": "email", "email": email}}).to_string()
}

async fn revoke(f: &Fixture, url: &str, bearer: Option<&str>, body: &str) -> Reply {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(bearer) = bearer {
        request = request.header(header::AUTHORIZATION, format!("Bearer {bearer}"));
    }
    Client::http1(&f.gw.pki, f.gw.https)
        .send(
            request
                .body(Client::body(body.to_string()))
                .expect("request"),
        )
        .await
}

async fn admin(f: &Fixture, method: Method, path: &str) -> Reply {
    Client::http1(&f.gw.pki, f.gw.https)
        .send(
            Request::builder()
                .method(method)
                .uri(format!("{IDP}{path}"))
                .header(header::AUTHORIZATION, format!("SSWS {ADMIN_TOKEN}"))
                .header(header::ACCEPT, "application/json")
                .body(Client::empty())
                .expect("request"),
        )
        .await
}

/// Polls `url` until it no longer answers 200 for this browser; returns
/// how long that took.
pub(crate) async fn until_signed_out(b: &test_support::browser::Browser, url: &str) -> Duration {
    let started = Instant::now();
    loop {
        let reply = get_json(b, url).await;
        if reply.status != StatusCode::OK {
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text());
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{url} still signed in after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn the_revocation_endpoint_checks_every_claim_and_signs_the_subject_out_everywhere() {
    let f = start();
    let b = bob_in_b_and_c(&f).await;

    // The key the endpoint trusts is the one the IdP publishes.
    let jwks = f.gw.browser().get(&format!("{IDP}/oauth2/v1/keys")).await;
    assert_eq!(jwks.status, StatusCode::OK, "{}", jwks.text());
    let jwks = jwks.json();
    let kid = jwks["keys"][0]["kid"].as_str().expect("kid").to_string();
    assert_eq!(jwks["keys"][0]["alg"], "RS256");

    let foreign = SigningKey::generate_self_signed("not the idp", 1).expect("key");
    let replayed = token(&f.idp_key, &kid, json!({}));
    let refused = [
        ("no token", None),
        ("foreign key", Some(token(&foreign, &kid, json!({})))),
        (
            "expired",
            Some(token(
                &f.idp_key,
                &kid,
                json!({"iat": now() - 900, "exp": now() - 600}),
            )),
        ),
        (
            "wrong audience",
            Some(token(&f.idp_key, &kid, json!({"aud": C_GTR}))),
        ),
        (
            "wrong issuer",
            Some(token(&f.idp_key, &kid, json!({"iss": "https://evil.test"}))),
        ),
        ("no jti", Some(token(&f.idp_key, &kid, json!({"jti": ""})))),
    ];
    for (name, bearer) in &refused {
        let reply = revoke(&f, B_GTR, bearer.as_deref(), &email_body(BOB)).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{name}: {}",
            reply.text()
        );
        assert!(
            reply.headers.contains_key(header::WWW_AUTHENTICATE),
            "{name}"
        );
    }
    // Nothing was revoked by any of them.
    assert_eq!(
        get_json(&b, &format!("{B}/page")).await.status,
        StatusCode::OK
    );

    let fresh = || token(&f.idp_key, &kid, json!({}));
    let reply = revoke(&f, B_GTR, Some(&fresh()), "not json").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    let reply = revoke(
        &f,
        B_GTR,
        Some(&fresh()),
        &json!({"sub_id": {"format": "phone_number", "phone_number": "+1"}}).to_string(),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text()
    );
    let reply = revoke(&f, B_GTR, Some(&fresh()), &email_body("nobody@example.com")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());

    // A good token, sent to b, ends bob's sessions in b and c.
    let reply = revoke(&f, B_GTR, Some(&replayed), &email_body(BOB)).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    for app in [B, C] {
        let after = get_json(&b, &format!("{app}/page")).await;
        assert_eq!(
            after.status,
            StatusCode::UNAUTHORIZED,
            "{app}: {}",
            after.text()
        );
    }
    // The same token again is a replay.
    let again = revoke(&f, B_GTR, Some(&replayed), &email_body(BOB)).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "{}", again.text());
    assert!(again.text().contains("replayed_token"), "{}", again.text());
    assert!(f
        .gw
        .wait_for_log("\"reason\":\"universal_logout\"", Duration::from_secs(5))
        .is_some());
}

#[tokio::test]
async fn revoking_the_idp_session_signs_the_user_out_of_every_app_within_a_second() {
    let f = start();
    let b = bob_in_b_and_c(&f).await;
    let revoked_at = Instant::now();
    let reply = admin(&f, Method::DELETE, "/api/v1/users/00u2bob/sessions").await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    let b_took = until_signed_out(&b, &format!("{B}/page")).await;
    let c_took = until_signed_out(&b, &format!("{C}/page")).await;
    let total = revoked_at.elapsed();
    eprintln!(
        "revocation → enforcement: b {b_took:?} after the API answered, c {c_took:?} more; \
         {total:?} from the DELETE"
    );
    assert!(total < Duration::from_secs(1), "{total:?}");
    // The next page navigation goes to sign-in.
    let next = b.get(&format!("{B}/page")).await;
    assert_eq!(next.status, StatusCode::SEE_OTHER);
    assert!(
        next.location().starts_with(&format!("{IDP}/sso/saml?")),
        "{}",
        next.location()
    );
}

#[tokio::test]
async fn an_admin_universal_logout_keeps_the_idp_session_and_cuts_open_streams() {
    let backend = Backend::start().await;
    let hook = format!("backend_logout_url = \"{}/logout-hook\"", backend.url());
    let f = start_with("", &[("d", "https://app.test", &backend.url(), &hook)]);
    let b = bob_in_b_and_c(&f).await;
    let posted = sso(
        &b,
        "pc_d_rs",
        "https://app.test/page",
        "https://app.test/_portcullis/saml/acs",
    )
    .await;
    let landed = post_acs(
        &b,
        "https://app.test/_portcullis/saml/acs",
        &posted.saml_response,
        &posted.relay_state,
    )
    .await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text());

    // A long download through d, opened in bob's session.
    let session = b.cookie("pc_d").expect("d session");
    let response = b
        .client()
        .send_streaming(
            Request::get(format!("https://app.test/source?bytes={}", 64u64 << 30))
                .header(header::COOKIE, format!("pc_d={session}"))
                .body(Client::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = response.into_body();
    let mut before = 0usize;
    while before < 1 << 20 {
        let frame = stream.frame().await.expect("streaming").expect("frame");
        before += frame.data_ref().map_or(0, |d| d.len());
    }

    // And a WebSocket through d, in the same session.
    let mut ws = open_websocket(
        &b,
        "app.test",
        "wss://app.test/ws",
        &format!("pc_d={session}"),
    )
    .await;

    let reply = admin(&f, Method::POST, "/api/v1/users/00u2bob/universal-logout").await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    // The tunnel closes with the session.
    let closed = closes_within(&mut ws, Duration::from_secs(5)).await;
    assert!(closed, "the WebSocket outlived the session");
    for app in [B, C, "https://app.test"] {
        until_signed_out(&b, &format!("{app}/page")).await;
    }
    // The stream ends early instead of running on for 64 GiB.
    let cut = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.frame().await {
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return,
            }
        }
    })
    .await;
    assert!(cut.is_ok(), "the download outlived the session");

    // d's backend hears about it, as bob, and d's next answer expires the
    // backend's own cookie in the browser.
    let hooked = |seen: &[String]| {
        seen.iter()
            .any(|l| l == "POST /logout-hook bob@example.com")
    };
    for _ in 0..100 {
        if hooked(&backend.seen()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(hooked(&backend.seen()), "{:?}", backend.seen());
    b.set_cookie("legacy_sid", "backend-session");
    let next = b.get("https://app.test/page").await;
    assert_eq!(next.status, StatusCode::SEE_OTHER);
    let expired: Vec<_> = next
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| v.starts_with("legacy_sid=;") && v.contains("Max-Age=0"))
        .collect();
    assert!(!expired.is_empty(), "{:?}", next.headers);
    assert!(b.cookie("legacy_sid").is_none());

    // The IdP session survives: b signs in again without a password.
    let again = sso(
        &b,
        "pc_b_rs",
        &format!("{B}/page"),
        "https://b.test/_portcullis/saml/acs",
    )
    .await;
    let landed = post_acs(
        &b,
        "https://b.test/_portcullis/saml/acs",
        &again.saml_response,
        &again.relay_state,
    )
    .await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text());
    assert!(f
        .gw
        .wait_for_log("universal logout delivered", Duration::from_secs(5))
        .is_some());
    let unknown = admin(
        &f,
        Method::POST,
        "/api/v1/users/00u9nobody/universal-logout",
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text());
}
