//! The embedded IdP through the real binary over TLS: browser sign-in with
//! CSRF, the TOTP step and its replay guard, lockout, the sign-in and API
//! rate limits, the Sessions API, session tokens and the System Log API.
//!
//! The IdP is published at `https://a.test/` with the demo users and
//! policies (`demo/`); requests come from 127.0.0.1, the policies'
//! "loopback" zone, so bob (staff) signs in with a password alone and alice
//! (admins) always needs her TOTP code. `https://b.test/` is an app, so it
//! is a valid redirect target.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use portcullis_idp::directory::{totp_code_at, AuthFailure, TotpSecret};
use portcullis_idp::session::hash_token;
use serde_json::{json, Value};
use test_support::browser::{input_value, set_cookie, url_encode, Browser};
use test_support::{Client, Reply};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::process::Gateway;

const USERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/users.toml");
const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/policies.toml");
/// Relative, so it lands in the gateway's temporary directory.
const SYSTEM_LOG: &str = "system-log.jsonl";

const IDP: &str = "https://a.test";
const APP: &str = "https://b.test";

/// Holds all three scopes.
const ADMIN_TOKEN: &str = "e2e-admin-token-with-every-scope";
/// Holds only `okta.sessions.read`.
const READ_TOKEN: &str = "e2e-read-token-sessions-read-only";

const ALICE_TOTP: &str = "MFWGSY3FFVSGK3LPFV2G65DQFVVWK6JB";
const BOB_ID: &str = "00u2bob";

const SESSION_COOKIE: &str = "pc_idp_sid";
const CSRF_COOKIE: &str = "pc_idp_csrf";
const TOTP_STEP: i64 = 30;

/// `[idp]` (with `extra` keys), two API tokens and one app.
fn idp_config(extra: &str) -> String {
    format!(
        "[idp]
public_url = \"{IDP}/\"
users_file = \"{USERS}\"
policy_file = \"{POLICIES}\"
system_log_file = \"{SYSTEM_LOG}\"
{extra}

[[idp.api_token]]
name = \"e2e-admin\"
sha256 = \"{admin}\"
scopes = [\"okta.sessions.read\", \"okta.sessions.manage\", \"okta.logs.read\"]

[[idp.api_token]]
name = \"e2e-read\"
sha256 = \"{read}\"
scopes = [\"okta.sessions.read\"]

[[app]]
name = \"b\"
public_url = \"{APP}/\"
upstream = \"builtin:echo\"
",
        admin = hash_token(ADMIN_TOKEN),
        read = hash_token(READ_TOKEN),
    )
}

fn start(extra: &str) -> Gateway {
    Gateway::start("", &idp_config(extra))
}

fn client(gw: &Gateway) -> Client {
    Client::http1(&gw.pki, gw.https)
}

fn retry_after(reply: &Reply) -> u64 {
    reply
        .headers
        .get(header::RETRY_AFTER)
        .unwrap_or_else(|| panic!("no Retry-After: {reply:?}"))
        .to_str()
        .expect("Retry-After is text")
        .parse()
        .expect("Retry-After is whole seconds")
}

fn timestamp(value: &Value) -> OffsetDateTime {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"));
    OffsetDateTime::parse(text, &Rfc3339).expect("RFC 3339 timestamp")
}

/// The text of the page's `role="alert"` paragraph.
fn alert(reply: &Reply) -> String {
    let html = reply.text();
    let start = html
        .find("role=\"alert\">")
        .unwrap_or_else(|| panic!("no alert on the page: {html}"))
        + "role=\"alert\">".len();
    let end = start + html[start..].find('<').expect("alert closes");
    html[start..end].to_string()
}

/// GETs the sign-in form and returns its CSRF field.
async fn csrf_field(browser: &Browser, path_and_query: &str) -> String {
    let form = browser.get(&format!("{IDP}{path_and_query}")).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text());
    input_value(&form.text(), "csrf").expect("csrf field on the form")
}

/// Opens the form, then posts the credentials with its CSRF field.
async fn sign_in(browser: &Browser, username: &str, password: &str, from: &str) -> Reply {
    let csrf = csrf_field(browser, &format!("/login?fromURI={}", url_encode(from))).await;
    browser
        .post_form(
            &format!("{IDP}/login"),
            &[
                ("csrf", &csrf),
                ("fromURI", from),
                ("username", username),
                ("password", password),
            ],
        )
        .await
}

async fn authn(client: &Client, body: &str) -> Reply {
    client
        .send(
            Request::post(format!("{IDP}/api/v1/authn"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(
                    Full::new(Bytes::from(body.to_string()))
                        .map_err(|never| match never {})
                        .boxed(),
                )
                .expect("request"),
        )
        .await
}

/// A session token for `username` from `POST /api/v1/authn`.
/// `/login/sessionCookieRedirect` for a session token and a target.
fn cookie_redirect_url(token: &str, target: &str) -> String {
    format!(
        "{IDP}/login/sessionCookieRedirect?token={}&redirectUrl={}",
        url_encode(token),
        url_encode(target)
    )
}

async fn session_token(client: &Client, username: &str, password: &str) -> String {
    let reply = authn(
        client,
        &json!({"username": username, "password": password}).to_string(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["status"], "SUCCESS", "{body}");
    body["sessionToken"]
        .as_str()
        .expect("sessionToken")
        .to_string()
}

/// A management API call with `Authorization: SSWS <token>` when given.
async fn api(client: &Client, method: Method, path: &str, token: Option<&str>) -> Reply {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("{IDP}{path}"))
        .header(header::ACCEPT, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("SSWS {token}"));
    }
    client
        .send(request.body(Client::empty()).expect("request"))
        .await
}

/// `GET /api/v1/logs?{query}` with the admin token; the JSON array.
async fn logs(client: &Client, query: &str) -> Vec<Value> {
    let reply = api(
        client,
        Method::GET,
        &format!("/api/v1/logs?{query}"),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json().as_array().expect("an array of events").clone()
}

fn filter(expression: &str) -> String {
    format!("filter={}", url_encode(expression))
}

/// The id of `login`'s newest successful session, from its
/// `user.session.start` event in the System Log.
async fn newest_session_id(client: &Client, login: &str) -> String {
    let events = logs(
        client,
        &format!(
            "{}&sortOrder=DESCENDING&limit=1",
            filter(&format!(
                "eventType eq \"user.session.start\" and outcome.result eq \"SUCCESS\" and actor.alternateId eq \"{login}\""
            ))
        ),
    )
    .await;
    let event = events.first().expect("a user.session.start event");
    event["authenticationContext"]["externalSessionId"]
        .as_str()
        .expect("externalSessionId")
        .to_string()
}

/// The URL of a reply's `Link: <…>; rel="next"`.
fn next_link(reply: &Reply) -> String {
    let link = reply
        .headers
        .get(header::LINK)
        .unwrap_or_else(|| panic!("no Link header: {reply:?}"))
        .to_str()
        .expect("Link is text");
    assert!(link.ends_with("; rel=\"next\""), "{link}");
    let start = link.find('<').expect("<") + 1;
    let end = link.find('>').expect(">");
    link[start..end].to_string()
}

/// GETs a reply's next page with the admin token. The link's host is the
/// IdP's public one; the client still connects to the gateway under test.
async fn get_link(client: &Client, reply: &Reply) -> Reply {
    let url = next_link(reply);
    client
        .send(
            Request::get(url.as_str())
                .header(header::AUTHORIZATION, format!("SSWS {ADMIN_TOKEN}"))
                .body(Client::empty())
                .expect("request"),
        )
        .await
}

/// Checks the Okta error shape and returns the body.
fn assert_api_error(reply: &Reply, status: StatusCode, code: &str) -> Value {
    assert_eq!(reply.status, status, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["errorCode"], code, "{body}");
    assert_eq!(body["errorLink"], code, "{body}");
    assert!(
        body["errorSummary"].as_str().is_some_and(|s| !s.is_empty()),
        "{body}"
    );
    assert!(
        body["errorId"].as_str().is_some_and(|s| !s.is_empty()),
        "{body}"
    );
    assert!(body["errorCauses"].is_array(), "{body}");
    body
}

/// A six-digit code that matches none of the steps the server accepts now
/// (current ±1, with a step of margin either side).
fn wrong_code(secret: &TotpSecret) -> String {
    let now = OffsetDateTime::now_utc();
    let valid: HashSet<String> = (-2..=2)
        .filter_map(|k| totp_code_at(secret, now + time::Duration::seconds(k * TOTP_STEP)))
        .collect();
    (0..)
        .map(|n| format!("{n:06}"))
        .find(|c| !valid.contains(c))
        .expect("a wrong code")
}

fn step_of(t: OffsetDateTime) -> i64 {
    t.unix_timestamp() / TOTP_STEP
}

#[tokio::test]
async fn browser_sign_in_needs_csrf_and_valid_credentials() {
    let gw = start("");
    let b = gw.browser();

    // The form sets the CSRF cookie and carries the matching field.
    let form = b.get(&format!("{IDP}/login")).await;
    assert_eq!(form.status, StatusCode::OK);
    let csrf_cookie = set_cookie(&form, CSRF_COOKIE).expect("CSRF cookie set");
    assert!(csrf_cookie.has("Secure") && csrf_cookie.has("HttpOnly"));
    assert!(csrf_cookie.has("SameSite=Strict"), "{csrf_cookie:?}");
    let csrf = input_value(&form.text(), "csrf").expect("csrf field");
    assert_eq!(csrf.len(), 64, "{csrf}");
    for field in ["username", "password", "fromURI"] {
        assert!(
            form.text().contains(&format!("name=\"{field}\"")),
            "no {field}"
        );
    }

    let login = format!("{IDP}/login");
    let bob = [("username", "bob"), ("password", "bob-demo-pass")];
    // No CSRF field, a wrong one, and the right field without the cookie.
    let missing = b.post_form(&login, &bob).await;
    let forged = "0".repeat(64);
    let wrong = b
        .post_form(&login, &[bob[0], bob[1], ("csrf", &forged)])
        .await;
    let cookieless = gw
        .browser()
        .post_form(&login, &[bob[0], bob[1], ("csrf", &csrf)])
        .await;
    for reply in [&missing, &wrong, &cookieless] {
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
        assert!(
            set_cookie(reply, SESSION_COOKIE).is_none(),
            "CSRF failure set a session: {reply:?}"
        );
    }
    assert!(b.cookie(SESSION_COOKIE).is_none());

    // Wrong password and unknown user read the same.
    let bad_password = b
        .post_form(
            &login,
            &[
                ("csrf", &csrf),
                ("username", "bob"),
                ("password", "not-bobs-password"),
            ],
        )
        .await;
    let unknown = b
        .post_form(
            &login,
            &[
                ("csrf", &csrf),
                ("username", "mallory"),
                ("password", "bob-demo-pass"),
            ],
        )
        .await;
    for reply in [&bad_password, &unknown] {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text());
        assert_eq!(alert(reply), AuthFailure::PUBLIC_MESSAGE);
        assert!(set_cookie(reply, SESSION_COOKIE).is_none());
    }

    // The right password: 303 to fromURI with the session cookie.
    let signed_in = b
        .post_form(
            &login,
            &[
                ("csrf", &csrf),
                ("fromURI", "/"),
                ("username", "bob"),
                ("password", "bob-demo-pass"),
            ],
        )
        .await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.text()
    );
    assert_eq!(signed_in.location(), "/");
    let session = set_cookie(&signed_in, SESSION_COOKIE).expect("session cookie");
    assert!(!session.value.is_empty());
    for attribute in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(session.has(attribute), "{attribute} missing: {session:?}");
    }
    let home = b.get(&format!("{IDP}/")).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.text().contains("Bob"), "{}", home.text());

    // fromURI off the allow-list falls back to the IdP home, and is
    // escaped when the form reflects it.
    let elsewhere = sign_in(
        &gw.browser(),
        "bob",
        "bob-demo-pass",
        "https://evil.example/",
    )
    .await;
    assert_eq!(elsewhere.status, StatusCode::SEE_OTHER);
    assert_eq!(elsewhere.location(), "/");
    let reflected = b
        .get(&format!(
            "{IDP}/login?fromURI={}",
            url_encode("\"><script>alert(1)</script>")
        ))
        .await;
    assert_eq!(reflected.status, StatusCode::OK);
    assert!(
        !reflected.text().contains("<script>"),
        "{}",
        reflected.text()
    );

    // Without the cookie the home page sends the browser to sign in.
    let anonymous = client(&gw).get(&format!("{IDP}/")).await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    assert_eq!(anonymous.location(), "/login");

    // A suspended user with her right password gets the same generic page.
    let carol = gw.browser();
    let refused = sign_in(&carol, "carol", "carol-demo-pass", "/").await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        refused.text()
    );
    assert_eq!(alert(&refused), AuthFailure::PUBLIC_MESSAGE);
    assert!(set_cookie(&refused, SESSION_COOKIE).is_none());
}

#[tokio::test]
async fn mfa_step_accepts_the_current_code_once() {
    let gw = start("");
    let secret = TotpSecret::from_base32(ALICE_TOTP).expect("demo secret");
    let from = format!("{APP}/after-sign-in");
    let b = gw.browser();

    let password_ok = sign_in(&b, "alice", "alice-demo-pass", &from).await;
    assert_eq!(password_ok.status, StatusCode::SEE_OTHER);
    let mfa = password_ok.location();
    assert_eq!(mfa, format!("/login/mfa?fromURI={}", url_encode(&from)));
    assert!(set_cookie(&password_ok, SESSION_COOKIE).is_some());
    // Half signed in is not signed in.
    let home = b.get(&format!("{IDP}/")).await;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
    assert_eq!(home.location(), "/login");

    let csrf = csrf_field(&b, &mfa).await;
    let wrong = b
        .post_form(
            &format!("{IDP}/login/mfa"),
            &[
                ("csrf", &csrf),
                ("fromURI", &from),
                ("code", &wrong_code(&secret)),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.text());
    // The deep link survives a wrong code, the field says it is wrong, and
    // the page says who is signing in.
    let again = wrong.text();
    assert_eq!(
        input_value(&again, "fromURI").as_deref(),
        Some(from.as_str()),
        "{again}"
    );
    assert!(
        again.contains("aria-invalid=\"true\" aria-describedby=\"mfa-error\""),
        "{again}"
    );
    assert!(
        again.contains("<strong id=\"mfa-user\">Alice Anders</strong>"),
        "{again}"
    );

    let issued = OffsetDateTime::now_utc();
    let code = totp_code_at(&secret, issued).expect("code");
    let verified = b
        .post_form(
            &format!("{IDP}/login/mfa"),
            &[("csrf", &csrf), ("fromURI", &from), ("code", &code)],
        )
        .await;
    assert_eq!(
        verified.status,
        StatusCode::SEE_OTHER,
        "{}",
        verified.text()
    );
    assert_eq!(verified.location(), from);
    let home = b.get(&format!("{IDP}/")).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.text().contains("Alice"), "{}", home.text());

    // The session records the second factor.
    let c = client(&gw);
    let id = newest_session_id(&c, "alice").await;
    let session = api(
        &c,
        Method::GET,
        &format!("/api/v1/sessions/{id}"),
        Some(READ_TOKEN),
    )
    .await;
    assert_eq!(session.status, StatusCode::OK, "{}", session.text());
    let session = session.json();
    assert_eq!(session["amr"], json!(["pwd", "otp", "mfa"]), "{session}");
    assert!(session["lastFactorVerification"].is_string(), "{session}");

    // The same code in a fresh sign-in is a replay. The server accepts the
    // steps either side of its own, so as long as the replay lands within
    // one step of the code's, the code itself would still verify: a 401
    // here is the replay guard, not expiry.
    let again = gw.browser();
    let password_ok = sign_in(&again, "alice", "alice-demo-pass", &from).await;
    assert_eq!(password_ok.status, StatusCode::SEE_OTHER);
    let csrf = csrf_field(&again, &password_ok.location()).await;
    let replay_at = OffsetDateTime::now_utc();
    let replayed = again
        .post_form(
            &format!("{IDP}/login/mfa"),
            &[("csrf", &csrf), ("fromURI", &from), ("code", &code)],
        )
        .await;
    assert!(
        step_of(OffsetDateTime::now_utc()) - step_of(issued) <= 1,
        "the replay left the skew window (issued {issued}, replayed {replay_at}); the test ran too slowly to show replay protection"
    );
    assert_eq!(
        replayed.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        replayed.text()
    );
    assert!(
        set_cookie(&replayed, SESSION_COOKIE).is_none(),
        "{replayed:?}"
    );
    assert_eq!(
        again.get(&format!("{IDP}/")).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn repeated_failures_lock_the_account() {
    let gw = start("lockout_failures = 3");
    let b = gw.browser();
    for _ in 0..3 {
        let reply = sign_in(&b, "bob", "not-bobs-password", "/").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text());
    }
    let locked = sign_in(&b, "bob", "bob-demo-pass", "/").await;
    assert_eq!(locked.status, StatusCode::UNAUTHORIZED, "{}", locked.text());
    assert_eq!(alert(&locked), AuthFailure::PUBLIC_MESSAGE);
    assert!(set_cookie(&locked, SESSION_COOKIE).is_none());

    let c = client(&gw);
    let api_locked = authn(
        &c,
        &json!({"username": "bob", "password": "bob-demo-pass"}).to_string(),
    )
    .await;
    assert_api_error(&api_locked, StatusCode::UNAUTHORIZED, "E0000004");

    let locks = logs(&c, &filter("eventType eq \"user.account.lock\"")).await;
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert_eq!(locks[0]["actor"]["id"], BOB_ID);
    assert_eq!(locks[0]["actor"]["alternateId"], "bob");
    let refused = logs(
        &c,
        &filter("eventType eq \"user.session.start\" and outcome.reason eq \"LOCKED_OUT\""),
    )
    .await;
    assert_eq!(refused.len(), 2, "browser and API refusals: {refused:?}");
}

/// Locks are in the System Log file, so a restart does not lift them: the
/// right password is still refused, and no second lock event is written.
#[tokio::test]
async fn a_lockout_survives_a_restart() {
    let mut gw = start("lockout_failures = 3");
    let c = client(&gw);
    let wrong = json!({"username": "bob", "password": "not-bobs-password"}).to_string();
    for _ in 0..3 {
        assert_api_error(
            &authn(&c, &wrong).await,
            StatusCode::UNAUTHORIZED,
            "E0000004",
        );
    }
    gw.restart();
    assert!(gw
        .wait_for_log("account lockouts restored", Duration::from_secs(5))
        .is_some());
    let c = client(&gw);
    let right = json!({"username": "bob", "password": "bob-demo-pass"}).to_string();
    assert_api_error(
        &authn(&c, &right).await,
        StatusCode::UNAUTHORIZED,
        "E0000004",
    );
    let refused = logs(
        &c,
        &filter("eventType eq \"user.session.start\" and outcome.reason eq \"LOCKED_OUT\""),
    )
    .await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    let locks = logs(&c, &filter("eventType eq \"user.account.lock\"")).await;
    assert_eq!(locks.len(), 1, "{locks:?}");
}

#[tokio::test]
async fn sign_in_rate_limit_answers_429_with_retry_after() {
    let gw = start("sign_in_per_minute = 3");
    let b = gw.browser();
    let csrf = csrf_field(&b, "/login").await;
    let login = format!("{IDP}/login");
    let attempt = [
        ("csrf", csrf.as_str()),
        ("username", "nobody"),
        ("password", "wrong"),
    ];
    for _ in 0..3 {
        let reply = b.post_form(&login, &attempt).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text());
    }
    let limited = b.post_form(&login, &attempt).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.text()
    );
    let wait = retry_after(&limited);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");

    // The limit is per client, shared with /api/v1/authn.
    let c = client(&gw);
    let api_limited = authn(
        &c,
        &json!({"username": "bob", "password": "bob-demo-pass"}).to_string(),
    )
    .await;
    assert_api_error(&api_limited, StatusCode::TOO_MANY_REQUESTS, "E0000047");
    let wait = retry_after(&api_limited);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");

    // The management APIs have their own budget.
    assert_eq!(
        api(&c, Method::GET, "/api/v1/logs", Some(ADMIN_TOKEN))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn sessions_api_reads_refreshes_and_revokes() {
    let gw = start("");
    let c = client(&gw);
    let b = gw.browser();
    let signed_in = sign_in(&b, "bob", "bob-demo-pass", "/").await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    let id = newest_session_id(&c, "bob").await;
    let path = format!("/api/v1/sessions/{id}");
    let refresh = format!("{path}/lifecycle/refresh");
    let mut error_ids = Vec::new();
    let mut check_error = |reply: &Reply, status: StatusCode, code: &str| {
        let body = assert_api_error(reply, status, code);
        error_ids.push(body["errorId"].as_str().expect("errorId").to_string());
    };

    // 401: no token, an unknown one, another scheme.
    check_error(
        &api(&c, Method::GET, &path, None).await,
        StatusCode::UNAUTHORIZED,
        "E0000011",
    );
    check_error(
        &api(&c, Method::GET, &path, Some("not-a-configured-token")).await,
        StatusCode::UNAUTHORIZED,
        "E0000011",
    );
    let bearer = c
        .send(
            Request::get(format!("{IDP}{path}"))
                .header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
                .body(Client::empty())
                .expect("request"),
        )
        .await;
    check_error(&bearer, StatusCode::UNAUTHORIZED, "E0000011");

    // 403: the read-only token may not manage sessions or read the log.
    let clear_bob = format!("/api/v1/users/{BOB_ID}/sessions");
    for (method, target) in [
        (Method::DELETE, path.as_str()),
        (Method::POST, refresh.as_str()),
        (Method::DELETE, clear_bob.as_str()),
        (Method::GET, "/api/v1/logs"),
    ] {
        check_error(
            &api(&c, method, target, Some(READ_TOKEN)).await,
            StatusCode::FORBIDDEN,
            "E0000006",
        );
    }

    // 400 and 404.
    check_error(
        &api(
            &c,
            Method::GET,
            "/api/v1/sessions/not.an.id",
            Some(ADMIN_TOKEN),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "E0000001",
    );
    check_error(
        &api(
            &c,
            Method::GET,
            "/api/v1/sessions/102NoSuchSession",
            Some(ADMIN_TOKEN),
        )
        .await,
        StatusCode::NOT_FOUND,
        "E0000007",
    );

    // Unknown API paths and methods answer in JSON too.
    check_error(
        &api(&c, Method::GET, "/api/v1/nothing-here", Some(ADMIN_TOKEN)).await,
        StatusCode::NOT_FOUND,
        "E0000007",
    );
    check_error(
        &api(&c, Method::PUT, &path, Some(ADMIN_TOKEN)).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "E0000022",
    );

    // 200 with the Okta session shape.
    let read = api(&c, Method::GET, &path, Some(READ_TOKEN)).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text());
    let session = read.json();
    assert_eq!(session["id"], id.as_str());
    assert_eq!(session["userId"], BOB_ID);
    assert_eq!(session["login"], "bob");
    assert_eq!(session["status"], "ACTIVE");
    assert_eq!(session["amr"], json!(["pwd"]));
    assert_eq!(session["lastFactorVerification"], Value::Null);
    assert!(session["idp"]["id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(session["idp"]["type"], "OKTA");
    let created = timestamp(&session["createdAt"]);
    let expires = timestamp(&session["expiresAt"]);
    let password_at = timestamp(&session["lastPasswordVerification"]);
    assert!(created <= password_at && password_at < expires, "{session}");

    // Refresh restarts the idle window.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let refreshed = api(&c, Method::POST, &refresh, Some(ADMIN_TOKEN)).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text());
    let refreshed = refreshed.json();
    assert_eq!(refreshed["id"], id.as_str());
    assert!(
        timestamp(&refreshed["expiresAt"]) >= expires,
        "{refreshed} vs {session}"
    );

    // DELETE ends it; it is gone for every call after.
    let deleted = api(&c, Method::DELETE, &path, Some(ADMIN_TOKEN)).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
    assert!(deleted.body.is_empty());
    for (method, target) in [
        (Method::GET, path.as_str()),
        (Method::DELETE, path.as_str()),
        (Method::POST, refresh.as_str()),
    ] {
        check_error(
            &api(&c, method, target, Some(ADMIN_TOKEN)).await,
            StatusCode::NOT_FOUND,
            "E0000007",
        );
    }
    let home = b.get(&format!("{IDP}/")).await;
    assert_eq!(
        home.status,
        StatusCode::SEE_OTHER,
        "revoked cookie still works"
    );

    // Clearing a user's sessions ends all of them.
    let b2 = gw.browser();
    let token = session_token(&c, "bob", "bob-demo-pass").await;
    let redeemed = b2
        .get(&format!(
            "{IDP}/login/sessionCookieRedirect?token={}&redirectUrl={}",
            url_encode(&token),
            url_encode(&format!("{IDP}/"))
        ))
        .await;
    assert_eq!(
        redeemed.status,
        StatusCode::SEE_OTHER,
        "{}",
        redeemed.text()
    );
    let second = newest_session_id(&c, "bob").await;
    assert_ne!(second, id);
    assert_eq!(b2.get(&format!("{IDP}/")).await.status, StatusCode::OK);
    let cleared = api(
        &c,
        Method::DELETE,
        &format!("/api/v1/users/{BOB_ID}/sessions"),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(cleared.status, StatusCode::NO_CONTENT, "{}", cleared.text());
    check_error(
        &api(
            &c,
            Method::GET,
            &format!("/api/v1/sessions/{second}"),
            Some(ADMIN_TOKEN),
        )
        .await,
        StatusCode::NOT_FOUND,
        "E0000007",
    );
    assert_eq!(
        b2.get(&format!("{IDP}/")).await.status,
        StatusCode::SEE_OTHER
    );
    check_error(
        &api(
            &c,
            Method::DELETE,
            "/api/v1/users/00u9nobody/sessions",
            Some(ADMIN_TOKEN),
        )
        .await,
        StatusCode::NOT_FOUND,
        "E0000007",
    );
    check_error(
        &api(
            &c,
            Method::DELETE,
            "/api/v1/users/not.a.user/sessions",
            Some(ADMIN_TOKEN),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "E0000001",
    );

    let unique: HashSet<&String> = error_ids.iter().collect();
    assert_eq!(
        unique.len(),
        error_ids.len(),
        "errorId repeated: {error_ids:?}"
    );

    let clears = logs(&c, &filter("eventType eq \"user.session.clear\"")).await;
    assert_eq!(clears.len(), 2, "{clears:?}");
}

#[tokio::test]
async fn sessions_api_rate_limit_answers_429_with_retry_after() {
    let gw = start("api_per_minute = 2");
    let c = client(&gw);
    for _ in 0..2 {
        let reply = api(
            &c,
            Method::GET,
            "/api/v1/sessions/102NoSuchSession",
            Some(ADMIN_TOKEN),
        )
        .await;
        assert_api_error(&reply, StatusCode::NOT_FOUND, "E0000007");
    }
    let limited = api(
        &c,
        Method::GET,
        "/api/v1/sessions/102NoSuchSession",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_api_error(&limited, StatusCode::TOO_MANY_REQUESTS, "E0000047");
    let wait = retry_after(&limited);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    // The log API shares the budget.
    let logs = api(&c, Method::GET, "/api/v1/logs", Some(ADMIN_TOKEN)).await;
    assert_api_error(&logs, StatusCode::TOO_MANY_REQUESTS, "E0000047");
}

#[tokio::test]
async fn authn_session_token_redeems_once_and_only_to_allowed_targets() {
    let gw = start("redirect_allow = [\"https://c.test/portal\"]");
    let c = client(&gw);

    assert_api_error(
        &authn(&c, "{not json").await,
        StatusCode::BAD_REQUEST,
        "E0000003",
    );
    assert_api_error(
        &authn(&c, &json!({"username": "bob"}).to_string()).await,
        StatusCode::BAD_REQUEST,
        "E0000003",
    );
    assert_api_error(
        &authn(
            &c,
            &json!({"username": "bob", "password": "wrong"}).to_string(),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "E0000004",
    );
    let alice = authn(
        &c,
        &json!({"username": "alice", "password": "alice-demo-pass"}).to_string(),
    )
    .await;
    assert_eq!(alice.status, StatusCode::OK, "{}", alice.text());
    assert_eq!(alice.json()["status"], "MFA_REQUIRED");
    assert!(alice.json()["sessionToken"].is_null());

    let before = OffsetDateTime::now_utc();
    let reply = authn(
        &c,
        &json!({"username": "bob", "password": "bob-demo-pass"}).to_string(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["status"], "SUCCESS");
    let token = body["sessionToken"].as_str().expect("sessionToken");
    let expires = timestamp(&body["expiresAt"]);
    assert!(
        expires > before && expires <= OffsetDateTime::now_utc() + time::Duration::minutes(5),
        "{body}"
    );

    // Targets off the allow-list are refused before the token is spent.
    for target in [
        "https://evil.example/",
        "https://b.test.evil.example/",
        "//evil.example/",
        "https://c.test/portalx",
        "https://c.test/",
        "javascript:alert(1)",
    ] {
        let refused = c.get(&cookie_redirect_url(token, target)).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{target}: {refused:?}"
        );
        assert!(set_cookie(&refused, SESSION_COOKIE).is_none());
    }

    // Once: 303 to the target with a working session cookie.
    let b = gw.browser();
    let landing = format!("{APP}/landing?x=1");
    let redeemed = b.get(&cookie_redirect_url(token, &landing)).await;
    assert_eq!(
        redeemed.status,
        StatusCode::SEE_OTHER,
        "{}",
        redeemed.text()
    );
    assert_eq!(redeemed.location(), landing);
    let cookie = set_cookie(&redeemed, SESSION_COOKIE).expect("session cookie");
    for attribute in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(cookie.has(attribute), "{attribute} missing: {cookie:?}");
    }
    let home = b.get(&format!("{IDP}/")).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.text().contains("Bob"), "{}", home.text());

    // Never twice, and never an unknown token.
    let reused = c.get(&cookie_redirect_url(token, &format!("{IDP}/"))).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED, "{}", reused.text());
    assert!(set_cookie(&reused, SESSION_COOKIE).is_none());
    let unknown = c.get(&cookie_redirect_url("no-such-token", "/")).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);

    // A `redirect_allow` prefix, and a path on the IdP.
    for target in [
        "https://c.test/portal/home",
        "https://c.test/portal?x=1",
        "/",
    ] {
        let token = session_token(&c, "bob", "bob-demo-pass").await;
        let allowed = c.get(&cookie_redirect_url(&token, target)).await;
        assert_eq!(
            allowed.status,
            StatusCode::SEE_OTHER,
            "{target}: {}",
            allowed.text()
        );
        assert_eq!(allowed.location(), target);
    }
}

#[tokio::test]
async fn session_cookie_redirect_allows_the_bare_idp_and_app_origins() {
    let gw = start("");
    let c = client(&gw);
    for target in [IDP, APP] {
        let token = session_token(&c, "bob", "bob-demo-pass").await;
        let reply = c.get(&cookie_redirect_url(&token, target)).await;
        assert_eq!(
            reply.status,
            StatusCode::SEE_OTHER,
            "{target}: {}",
            reply.text()
        );
        assert_eq!(reply.location(), target);
    }
}

#[tokio::test]
async fn an_expired_session_token_is_refused() {
    let gw = start("session_token_ttl = \"1s\"");
    let c = client(&gw);
    let token = session_token(&c, "bob", "bob-demo-pass").await;
    // The token expires 1 s after it was issued, which was before now.
    let deadline = Instant::now() + Duration::from_millis(1500);
    tokio::time::sleep_until(deadline.into()).await;
    let expired = c
        .get(&format!(
            "{IDP}/login/sessionCookieRedirect?token={}&redirectUrl=%2F",
            url_encode(&token)
        ))
        .await;
    assert_eq!(
        expired.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        expired.text()
    );
    assert!(set_cookie(&expired, SESSION_COOKIE).is_none());
}

#[tokio::test]
async fn system_log_api_filters_pages_and_survives_a_restart() {
    let mut gw = start("");
    let c = client(&gw);
    for _ in 0..2 {
        let token = session_token(&c, "bob", "bob-demo-pass").await;
        let redeemed = c
            .get(&format!(
                "{IDP}/login/sessionCookieRedirect?token={}&redirectUrl=%2F",
                url_encode(&token)
            ))
            .await;
        assert_eq!(redeemed.status, StatusCode::SEE_OTHER);
    }
    let failed = authn(
        &c,
        &json!({"username": "bob", "password": "wrong"}).to_string(),
    )
    .await;
    assert_eq!(failed.status, StatusCode::UNAUTHORIZED);

    // A filter returns only matching events: two successes, one failure.
    let starts_filter = filter("eventType eq \"user.session.start\"");
    let starts = logs(&c, &starts_filter).await;
    assert_eq!(starts.len(), 3, "{starts:?}");
    assert!(starts
        .iter()
        .all(|e| e["eventType"] == "user.session.start"));
    let outcomes: Vec<&Value> = starts.iter().map(|e| &e["outcome"]["result"]).collect();
    assert_eq!(
        outcomes,
        [&json!("SUCCESS"), &json!("SUCCESS"), &json!("FAILURE")]
    );
    assert!(starts[..2]
        .iter()
        .all(|e| e["authenticationContext"]["externalSessionId"]
            .as_str()
            .is_some_and(|s| !s.is_empty())));
    let all = logs(&c, "").await;
    assert!(all.len() > starts.len(), "other event types are logged too");

    // Paging: limit=1 links to the next matching event.
    let first = api(
        &c,
        Method::GET,
        &format!("/api/v1/logs?{starts_filter}&limit=1"),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(first.json().as_array().map(Vec::len), Some(1));
    assert_eq!(first.json()[0]["uuid"], starts[0]["uuid"]);
    let next_url = next_link(&first);
    assert!(
        next_url.starts_with(&format!("{IDP}/api/v1/logs?")),
        "{next_url}"
    );
    assert!(next_url.contains("after="), "{next_url}");
    let next = get_link(&c, &first).await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.text());
    assert_eq!(next.json().as_array().map(Vec::len), Some(1));
    assert_eq!(next.json()[0]["uuid"], starts[1]["uuid"]);
    // The last page has no next link.
    let whole = api(
        &c,
        Method::GET,
        &format!("/api/v1/logs?{starts_filter}&limit=3"),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert!(whole.headers.get(header::LINK).is_none(), "{whole:?}");

    // Newest first, paged the same way.
    let newest = api(
        &c,
        Method::GET,
        &format!("/api/v1/logs?{starts_filter}&limit=1&sortOrder=DESCENDING"),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(newest.json()[0]["uuid"], starts[2]["uuid"]);
    let older = get_link(&c, &newest).await;
    assert_eq!(older.json()[0]["uuid"], starts[1]["uuid"]);

    // since is inclusive, until exclusive.
    let second_at = starts[1]["published"].as_str().expect("published");
    let third_at = starts[2]["published"].as_str().expect("published");
    let window = logs(
        &c,
        &format!(
            "{starts_filter}&since={}&until={}",
            url_encode(second_at),
            url_encode(third_at)
        ),
    )
    .await;
    if second_at != third_at {
        assert!(
            window.iter().any(|e| e["uuid"] == starts[1]["uuid"]),
            "{window:?}"
        );
        assert!(
            window.iter().all(|e| e["uuid"] != starts[2]["uuid"]),
            "{window:?}"
        );
    }

    // Bad parameters are validation errors naming the parameter.
    for (query, parameter) in [
        ("limit=0".to_string(), "limit"),
        ("since=yesterday".to_string(), "since"),
        ("sortOrder=SIDEWAYS".to_string(), "sortOrder"),
        ("after=not-a-cursor".to_string(), "after"),
        (filter("eventType zz \"x\""), "filter"),
    ] {
        let reply = api(
            &c,
            Method::GET,
            &format!("/api/v1/logs?{query}"),
            Some(ADMIN_TOKEN),
        )
        .await;
        let body = assert_api_error(&reply, StatusCode::BAD_REQUEST, "E0000001");
        let cause = body["errorCauses"][0]["errorSummary"]
            .as_str()
            .unwrap_or_default();
        assert!(cause.contains(parameter), "{query}: {body}");
    }

    // A malformed filter says where it went wrong.
    let malformed = api(
        &c,
        Method::GET,
        &format!("/api/v1/logs?{}", filter("eventType eq \"abc")),
        Some(ADMIN_TOKEN),
    )
    .await;
    let body = assert_api_error(&malformed, StatusCode::BAD_REQUEST, "E0000001");
    let cause = body["errorCauses"][0]["errorSummary"]
        .as_str()
        .unwrap_or_else(|| panic!("no errorCauses: {body}"));
    assert!(cause.contains("filter"), "{cause}");
    assert!(cause.contains("position 13"), "{cause}");

    // The log outlives the process.
    assert!(
        gw.dir().join(SYSTEM_LOG).is_file(),
        "log file not in the temp dir"
    );
    gw.restart();
    let c = client(&gw);
    let after_restart = logs(&c, "").await;
    let uuids: HashSet<&Value> = after_restart.iter().map(|e| &e["uuid"]).collect();
    for event in &all {
        assert!(
            uuids.contains(&event["uuid"]),
            "lost after restart: {event}"
        );
    }
    assert_eq!(logs(&c, &starts_filter).await, starts);
    // A cursor handed out before the restart still pages from the same place.
    let resumed = get_link(&c, &first).await;
    assert_eq!(resumed.status, StatusCode::OK, "{}", resumed.text());
    assert_eq!(resumed.json()[0]["uuid"], starts[1]["uuid"]);
}

#[tokio::test]
async fn redirect_targets_with_a_tab_are_refused() {
    let gw = start("");
    let c = client(&gw);
    let target = "/\t/evil.example/";
    let token = session_token(&c, "bob", "bob-demo-pass").await;
    let reply = c.get(&cookie_redirect_url(&token, target)).await;
    let signed_in = sign_in(&gw.browser(), "bob", "bob-demo-pass", target).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    // Both paths share the check; report both before failing.
    assert_eq!(
        (reply.status, signed_in.location()),
        (StatusCode::BAD_REQUEST, "/".to_string()),
        "sessionCookieRedirect: {:?}; /login fromURI: {:?}",
        reply.headers.get(header::LOCATION),
        signed_in.headers.get(header::LOCATION),
    );
}

/// A password spray at high concurrency, every attempt within its
/// per-address budget: password checks are bounded for the whole process,
/// so the IdP answers each with 401 (checked) or 429 with `Retry-After`
/// (the password pool was full) and resident memory stays far from the
/// ~19 MiB of argon2 memory per concurrent check that 64 unbounded checks
/// cost (1 GB).
#[tokio::test]
async fn a_password_spray_at_any_concurrency_keeps_memory_bounded() {
    const CONCURRENT: usize = 64;
    const ROUNDS: usize = 3;
    const BOUND_KIB: u64 = 200 * 1024;
    let gw = start("sign_in_per_minute = 100000");
    let c = std::sync::Arc::new(client(&gw));
    let (mut checked, mut refused) = (0, 0);
    for round in 0..ROUNDS {
        let attempts: Vec<_> = (0..CONCURRENT)
            .map(|i| {
                let c = c.clone();
                tokio::spawn(async move {
                    let body = json!({"username": format!("spray-{round}-{i}"), "password": "Winter2024!"});
                    authn(&c, &body.to_string()).await
                })
            })
            .collect();
        for attempt in attempts {
            let reply = tokio::time::timeout(Duration::from_secs(60), attempt)
                .await
                .expect("answered in time")
                .expect("attempt");
            match reply.status {
                StatusCode::UNAUTHORIZED => {
                    assert_api_error(&reply, StatusCode::UNAUTHORIZED, "E0000004");
                    checked += 1;
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    assert_api_error(&reply, StatusCode::TOO_MANY_REQUESTS, "E0000047");
                    assert_eq!(retry_after(&reply), 1);
                    refused += 1;
                }
                other => panic!("{other}: {}", reply.text()),
            }
        }
    }
    assert!(checked > 0, "some attempts were checked");
    let peak = gw.peak_rss_kib();
    assert!(
        peak < BOUND_KIB,
        "peak RSS {peak} KiB after {checked} checked and {refused} refused sign-ins"
    );
    assert!(
        gw.wait_for_log("work pool saturated", Duration::from_secs(5))
            .is_some()
            || refused == 0,
        "saturation is logged"
    );
}

#[tokio::test]
async fn not_you_on_the_mfa_page_starts_over_for_the_same_destination() {
    let gw = start("");
    let from = format!("{APP}/deep?x=1");
    let b = gw.browser();
    let password_ok = sign_in(&b, "alice", "alice-demo-pass", &from).await;
    let mfa = b.get(&format!("{IDP}{}", password_ok.location())).await;
    let html = mfa.text();
    assert!(html.contains("id=\"not-you\""), "{html}");
    let csrf = input_value(&html, "csrf").expect("csrf");
    let switched = b
        .post_form(
            &format!("{IDP}/login/mfa"),
            &[("csrf", &csrf), ("fromURI", &from), ("switch", "1")],
        )
        .await;
    assert_eq!(
        switched.status,
        StatusCode::SEE_OTHER,
        "{}",
        switched.text()
    );
    assert_eq!(
        switched.location(),
        format!("/login?fromURI={}", url_encode(&from))
    );
    assert!(set_cookie(&switched, SESSION_COOKIE).is_some_and(|c| c.deletes()));
    // bob signs in instead and lands on the same deep link.
    let bob = sign_in(&b, "bob", "bob-demo-pass", &from).await;
    assert_eq!(bob.status, StatusCode::SEE_OTHER, "{}", bob.text());
    assert_eq!(bob.location(), from);
}

#[tokio::test]
async fn the_429_page_keeps_the_deep_link() {
    let gw = start("sign_in_per_minute = 1");
    let from = format!("{APP}/deep?x=1");
    let b = gw.browser();
    let first = sign_in(&b, "bob", "wrong-password", &from).await;
    assert_eq!(first.status, StatusCode::UNAUTHORIZED);
    let limited = sign_in(&b, "bob", "bob-demo-pass", &from).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.text()
    );
    let html = limited.text();
    let link = format!(
        "href=\"/login?fromURI={}\"",
        url_encode(&from).replace('&', "&amp;")
    );
    assert!(html.contains(&link), "{link} not in {html}");
}

#[tokio::test]
async fn the_signed_out_pages_sign_in_link_comes_back_to_the_app() {
    let gw = start("");
    let from = format!("{APP}/deep?x=1");
    let b = gw.browser();
    let signed_in = sign_in(&b, "bob", "bob-demo-pass", &from).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.text()
    );
    let out = b
        .get(&format!("{IDP}/logout?fromURI={}", url_encode(&from)))
        .await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.text());
    let link = format!(
        "id=\"sign-in\" href=\"/login?fromURI={}\"",
        url_encode(&from)
    );
    assert!(out.text().contains(&link), "{link} not in {}", out.text());
    // Signed out already, and a destination sign-in may not send a
    // browser to: a plain link.
    let elsewhere = b
        .get(&format!(
            "{IDP}/logout?fromURI={}",
            url_encode("https://evil.example/")
        ))
        .await;
    assert!(
        elsewhere.text().contains("id=\"sign-in\" href=\"/login\""),
        "{}",
        elsewhere.text()
    );
}
