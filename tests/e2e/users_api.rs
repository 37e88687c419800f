//! The Users API and user lifecycle through the real binary: listing,
//! search and paging, one user by id or login, every lifecycle call with
//! its status codes and scopes, what a suspension does to a signed-in
//! user (IdP session, app sessions through Universal Logout, sign-in),
//! changes that survive a restart, and SIGHUP reloads of the users file
//! (a status changed or a user removed by hand) and of the policy file.
//!
//! Each test runs on its own copy of `demo/users.toml` (alice ACTIVE with
//! TOTP, bob ACTIVE, carol SUSPENDED), which the gateway edits.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::Duration;

use http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};
use test_support::{Client, Reply};

use crate::gateway_sso::{start_with_idp_files, Fixture, ADMIN_TOKEN, SESSIONS_TOKEN};
use crate::universal_logout::{bob_in_b_and_c, until_signed_out};

const USERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/users.toml");
const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/policies.toml");
const IDP: &str = "https://a.test";
const B: &str = "https://b.test";
const C: &str = "https://c.test";

fn start() -> Fixture {
    let users = std::fs::read_to_string(USERS).expect("demo users");
    start_with_idp_files("", &[("users_file", "users.toml", &users)], &[])
}

fn users_file(f: &Fixture) -> PathBuf {
    f.file("users.toml")
}

async fn call(f: &Fixture, method: Method, path: &str, token: Option<&str>) -> Reply {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("{IDP}{path}"))
        .header(header::ACCEPT, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("SSWS {token}"));
    }
    Client::http1(&f.gw.pki, f.gw.https)
        .send(request.body(Client::empty()).expect("request"))
        .await
}

async fn admin(f: &Fixture, method: Method, path: &str) -> Reply {
    call(f, method, path, Some(ADMIN_TOKEN)).await
}

async fn lifecycle(f: &Fixture, user: &str, op: &str) -> Reply {
    admin(
        f,
        Method::POST,
        &format!("/api/v1/users/{user}/lifecycle/{op}"),
    )
    .await
}

/// The user's status as the API shows it.
async fn status(f: &Fixture, user: &str) -> String {
    let reply = admin(f, Method::GET, &format!("/api/v1/users/{user}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()["status"].as_str().expect("status").to_string()
}

fn ids(reply: &Reply) -> Vec<String> {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply
        .json()
        .as_array()
        .expect("an array of users")
        .iter()
        .map(|u| u["id"].as_str().expect("id").to_string())
        .collect()
}

fn assert_api_error(reply: &Reply, status: StatusCode, code: &str) -> Value {
    assert_eq!(reply.status, status, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["errorCode"], code, "{body}");
    assert!(body["errorSummary"].is_string(), "{body}");
    assert!(body["errorId"].is_string(), "{body}");
    body
}

async fn authn(f: &Fixture, username: &str, password: &str) -> Reply {
    Client::http1(&f.gw.pki, f.gw.https)
        .send(
            Request::post(format!("{IDP}/api/v1/authn"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Client::body(
                    json!({"username": username, "password": password}).to_string(),
                ))
                .expect("request"),
        )
        .await
}

/// `GET /api/v1/logs` for one event type, with the admin token.
async fn events(f: &Fixture, event_type: &str) -> Vec<Value> {
    let filter = format!("eventType eq \"{event_type}\"");
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("filter", &filter)
        .finish();
    let reply = admin(f, Method::GET, &format!("/api/v1/logs?{query}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json().as_array().expect("events").clone()
}

/// Waits until `needle` has been logged `count` times.
fn wait_for_logs(f: &Fixture, needle: &str, count: usize) -> Vec<String> {
    let lines = f.gw.wait_for_logs(needle, count, Duration::from_secs(15));
    assert!(
        lines.len() >= count,
        "{needle:?} not logged {count} time(s); logs: {:?}",
        f.gw.logs()
    );
    lines
}

/// Replaces the users file the way an editor that renames does.
fn rewrite_users(f: &Fixture, text: &str) {
    let path = users_file(f);
    let tmp = path.with_extension("edit");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
}

#[tokio::test]
async fn lists_search_and_pages_users_and_finds_one_by_id_or_login() {
    let f = start();
    let all = admin(&f, Method::GET, "/api/v1/users").await;
    assert_eq!(ids(&all), ["00u1alice", "00u2bob", "00u3carol"]);
    assert!(all.headers.get(header::LINK).is_none(), "one page");
    let text = all.text();
    for secret in [
        "argon2",
        "MFWGSY3FFVSGK3LPFV2G65DQFVVWK6JB",
        "password",
        "totp",
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let users = all.json();
    let bob = &users[1];
    assert_eq!(bob["status"], "ACTIVE");
    assert_eq!(bob["profile"]["login"], "bob");
    assert_eq!(bob["profile"]["email"], "bob@example.com");
    assert_eq!(bob["profile"]["firstName"], "Bob");
    assert_eq!(bob["profile"]["lastName"], "Baker");
    assert_eq!(bob["profile"]["department"], "Support");
    assert_eq!(
        bob["_links"]["self"]["href"],
        "https://a.test/api/v1/users/00u2bob"
    );
    assert_eq!(
        bob["_links"]["suspend"]["href"],
        "https://a.test/api/v1/users/00u2bob/lifecycle/suspend"
    );
    assert_eq!(users[2]["status"], "SUSPENDED");
    assert!(users[2]["_links"]["unsuspend"].is_object(), "{}", users[2]);
    assert!(users[2]["_links"]["suspend"].is_null(), "{}", users[2]);

    // q: a prefix of login, email, first or last name, ignoring case.
    let q = |q: &str| format!("/api/v1/users?q={q}");
    assert_eq!(ids(&admin(&f, Method::GET, &q("CA")).await), ["00u3carol"]);
    assert_eq!(ids(&admin(&f, Method::GET, &q("bak")).await), ["00u2bob"]);
    assert_eq!(
        ids(&admin(&f, Method::GET, &q("alice%40")).await),
        ["00u1alice"]
    );
    assert!(ids(&admin(&f, Method::GET, &q("zz")).await).is_empty());
    let active = admin(
        &f,
        Method::GET,
        "/api/v1/users?filter=status%20eq%20%22ACTIVE%22",
    )
    .await;
    assert_eq!(ids(&active), ["00u1alice", "00u2bob"]);

    // Paging: limit, then the Link header's next page on the public URL.
    let first = admin(&f, Method::GET, "/api/v1/users?limit=2").await;
    assert_eq!(ids(&first), ["00u1alice", "00u2bob"]);
    let link = first
        .headers
        .get(header::LINK)
        .expect("Link to the next page")
        .to_str()
        .expect("text")
        .to_string();
    assert_eq!(
        link,
        "<https://a.test/api/v1/users?limit=2&after=00u2bob>; rel=\"next\""
    );
    let next = link
        .trim_start_matches("<https://a.test")
        .split('>')
        .next()
        .expect("url");
    let second = admin(&f, Method::GET, next).await;
    assert_eq!(ids(&second), ["00u3carol"]);
    assert!(second.headers.get(header::LINK).is_none(), "the last page");

    // One user, by id or by login (percent-encoded too).
    for key in ["00u2bob", "bob", "BOB", "b%6Fb"] {
        let reply = admin(&f, Method::GET, &format!("/api/v1/users/{key}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{key}: {}", reply.text());
        assert_eq!(reply.json()["id"], "00u2bob", "{key}");
    }
    let missing = admin(&f, Method::GET, "/api/v1/users/nobody").await;
    assert_api_error(&missing, StatusCode::NOT_FOUND, "E0000007");

    // Bounded, checked input.
    for bad in [
        "/api/v1/users?limit=0",
        "/api/v1/users?limit=201",
        "/api/v1/users?filter=status%20gt%20%22A%22",
        "/api/v1/users?search=profile.login",
        &format!("/api/v1/users?q={}", "a".repeat(300)),
    ] {
        let reply = admin(&f, Method::GET, bad).await;
        assert_api_error(&reply, StatusCode::BAD_REQUEST, "E0000001");
    }
    let long = admin(
        &f,
        Method::GET,
        &format!("/api/v1/users/{}", "a".repeat(300)),
    )
    .await;
    assert_api_error(&long, StatusCode::BAD_REQUEST, "E0000001");
}

#[tokio::test]
async fn tokens_scopes_and_methods_are_enforced() {
    let f = start();
    for path in ["/api/v1/users", "/api/v1/users/00u2bob"] {
        assert_api_error(
            &call(&f, Method::GET, path, None).await,
            StatusCode::UNAUTHORIZED,
            "E0000011",
        );
        assert_api_error(
            &call(&f, Method::GET, path, Some("not-a-token")).await,
            StatusCode::UNAUTHORIZED,
            "E0000011",
        );
        assert_api_error(
            &call(&f, Method::GET, path, Some(SESSIONS_TOKEN)).await,
            StatusCode::FORBIDDEN,
            "E0000006",
        );
    }
    let suspend = "/api/v1/users/00u2bob/lifecycle/suspend";
    assert_api_error(
        &call(&f, Method::POST, suspend, Some(SESSIONS_TOKEN)).await,
        StatusCode::FORBIDDEN,
        "E0000006",
    );
    assert_api_error(
        &call(&f, Method::POST, suspend, None).await,
        StatusCode::UNAUTHORIZED,
        "E0000011",
    );
    assert_eq!(
        status(&f, "00u2bob").await,
        "ACTIVE",
        "nothing was suspended"
    );

    for (method, path, allow) in [
        (Method::POST, "/api/v1/users", "GET"),
        (Method::DELETE, "/api/v1/users/00u2bob", "GET"),
        (Method::PUT, "/api/v1/users/00u2bob", "GET"),
        (Method::GET, suspend, "POST"),
    ] {
        let reply = admin(&f, method.clone(), path).await;
        assert_api_error(&reply, StatusCode::METHOD_NOT_ALLOWED, "E0000022");
        assert_eq!(
            reply.headers.get(header::ALLOW).map(|v| v.as_bytes()),
            Some(allow.as_bytes()),
            "{method} {path}"
        );
    }
    let unknown = lifecycle(&f, "00u2bob", "activate").await;
    assert_api_error(&unknown, StatusCode::NOT_FOUND, "E0000007");
    let nobody = lifecycle(&f, "nobody", "suspend").await;
    assert_api_error(&nobody, StatusCode::NOT_FOUND, "E0000007");
}

#[tokio::test]
async fn lifecycle_calls_follow_okta_and_persist_atomically() {
    let f = start();
    let path = users_file(&f);
    let original = std::fs::read_to_string(&path).expect("users file");

    // Not allowed in the user's status: 400, and nothing written.
    for (user, op) in [
        ("00u3carol", "suspend"),
        ("00u2bob", "unsuspend"),
        ("00u3carol", "unlock"),
    ] {
        let reply = lifecycle(&f, user, op).await;
        let body = assert_api_error(&reply, StatusCode::BAD_REQUEST, "E0000001");
        assert!(
            body["errorCauses"][0]["errorSummary"]
                .as_str()
                .is_some_and(|s| s.starts_with(&format!("{op}: Cannot {op} a user"))),
            "{body}"
        );
    }
    assert_eq!(std::fs::read_to_string(&path).expect("read"), original);

    // unsuspend carol: 200 {}, the file says so, the old one is kept.
    let reply = lifecycle(&f, "00u3carol", "unsuspend").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json(), json!({}));
    assert_eq!(status(&f, "carol").await, "ACTIVE");
    let written = std::fs::read_to_string(&path).expect("read");
    assert!(
        written.contains("# Suspended so the demo and the tests"),
        "comments kept"
    );
    assert_eq!(
        written.matches("status = \"ACTIVE\"").count(),
        3,
        "{written}"
    );
    let backup = std::fs::read_to_string(path.with_file_name("users.toml.bak")).expect(".bak");
    assert_eq!(backup, original);
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
    assert_eq!(mode & 0o007, 0, "not readable by others: {mode:o}");
    let authn_carol = authn(&f, "carol", "carol-demo-pass").await;
    assert_eq!(authn_carol.status, StatusCode::OK, "{}", authn_carol.text());

    // deactivate, then it cannot be done twice.
    assert_eq!(
        lifecycle(&f, "carol", "deactivate").await.status,
        StatusCode::OK
    );
    assert_eq!(status(&f, "00u3carol").await, "DEPROVISIONED");
    assert_api_error(
        &lifecycle(&f, "00u3carol", "deactivate").await,
        StatusCode::BAD_REQUEST,
        "E0000001",
    );
    assert_api_error(
        &authn(&f, "carol", "carol-demo-pass").await,
        StatusCode::UNAUTHORIZED,
        "E0000004",
    );

    // reset_factors: alice's TOTP secret leaves the file, her hash stays.
    assert_eq!(
        lifecycle(&f, "00u1alice", "reset_factors").await.status,
        StatusCode::OK
    );
    let written = std::fs::read_to_string(&path).expect("read");
    assert!(
        !written.contains("MFWGSY3FFVSGK3LPFV2G65DQFVVWK6JB"),
        "{written}"
    );
    assert!(
        written.contains("yQZf6Fh6tlnOrUZQoJi8A7WgigW3v/elH2A+gHVZdyg"),
        "hash kept"
    );

    // A lockout shows as LOCKED_OUT and unlock lifts it (and answers 200
    // for a user that is not locked, as Okta does).
    for _ in 0..5 {
        let reply = authn(&f, "bob", "wrong").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text());
    }
    assert_eq!(status(&f, "bob").await, "LOCKED_OUT");
    assert_api_error(
        &authn(&f, "bob", "bob-demo-pass").await,
        StatusCode::UNAUTHORIZED,
        "E0000004",
    );
    assert_eq!(lifecycle(&f, "bob", "unlock").await.status, StatusCode::OK);
    assert_eq!(status(&f, "bob").await, "ACTIVE");
    assert_eq!(
        authn(&f, "bob", "bob-demo-pass").await.status,
        StatusCode::OK
    );
    assert_eq!(lifecycle(&f, "bob", "unlock").await.status, StatusCode::OK);

    // Every operation is in the System Log, the token as actor and the
    // user as target.
    for (event_type, user) in [
        ("user.lifecycle.unsuspend", "00u3carol"),
        ("user.lifecycle.deactivate", "00u3carol"),
        ("user.mfa.factor.reset_all", "00u1alice"),
        ("user.account.unlock", "00u2bob"),
    ] {
        let found = events(&f, event_type).await;
        let event = found.first().unwrap_or_else(|| panic!("no {event_type}"));
        assert_eq!(event["actor"]["type"], "ApiToken", "{event}");
        assert_eq!(event["actor"]["id"], "e2e-admin", "{event}");
        assert_eq!(event["target"][0]["id"], user, "{event}");
        assert_eq!(event["target"][0]["type"], "User", "{event}");
        assert_eq!(event["outcome"]["result"], "SUCCESS", "{event}");
    }
    let unlocks = events(&f, "user.account.unlock").await;
    assert_eq!(unlocks.len(), 2);
    assert_eq!(unlocks[0]["debugContext"]["debugData"]["wasLocked"], "true");
    assert_eq!(
        unlocks[1]["debugContext"]["debugData"]["wasLocked"],
        "false"
    );
}

/// Where the browser's next visit to `url` ends up at the IdP: the
/// `Location` the IdP answers the app's SSO request with.
async fn next_sso_at_idp(b: &test_support::browser::Browser, url: &str) -> String {
    let start = b.get(url).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.text());
    let to_idp = start.location();
    assert!(to_idp.starts_with(&format!("{IDP}/sso/saml?")), "{to_idp}");
    let at_idp = b.get(&to_idp).await;
    assert_eq!(at_idp.status, StatusCode::SEE_OTHER, "{}", at_idp.text());
    at_idp.location()
}

#[tokio::test]
async fn suspension_signs_the_user_out_everywhere_until_unsuspended() {
    let f = start();
    let b = bob_in_b_and_c(&f).await;
    let before = next_sso_at_idp(&f.gw.browser(), &format!("{B}/page")).await;
    assert!(
        before.starts_with("/login?"),
        "a stranger signs in: {before}"
    );

    let reply = lifecycle(&f, "00u2bob", "suspend").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    // Universal Logout ends the app sessions...
    for app in [B, C] {
        until_signed_out(&b, &format!("{app}/page")).await;
    }
    // ...and the IdP session is gone: the next SSO asks for a sign-in.
    let location = next_sso_at_idp(&b, &format!("{B}/page")).await;
    assert!(location.starts_with("/login?"), "{location}");
    let ended = events(&f, "user.session.end").await;
    assert!(
        ended
            .iter()
            .any(|e| e["actor"]["id"] == "00u2bob" && e["outcome"]["reason"] == "USER_SUSPENDED"),
        "{ended:?}"
    );
    assert_eq!(events(&f, "user.lifecycle.suspend").await.len(), 1);
    assert_api_error(
        &authn(&f, "bob", "bob-demo-pass").await,
        StatusCode::UNAUTHORIZED,
        "E0000004",
    );

    assert_eq!(
        lifecycle(&f, "00u2bob", "unsuspend").await.status,
        StatusCode::OK
    );
    let back = authn(&f, "bob", "bob-demo-pass").await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.text());
    assert_eq!(back.json()["status"], "SUCCESS");
    // And through the browser: sign-in and SSO work again.
    bob_in_b_and_c(&f).await;
}

#[tokio::test]
async fn changes_survive_a_restart() {
    let mut f = start();
    assert_eq!(
        lifecycle(&f, "00u2bob", "suspend").await.status,
        StatusCode::OK
    );
    assert_eq!(
        lifecycle(&f, "00u3carol", "unsuspend").await.status,
        StatusCode::OK
    );
    for _ in 0..5 {
        authn(&f, "alice", "wrong").await;
    }
    assert_eq!(status(&f, "alice").await, "LOCKED_OUT");
    assert_eq!(
        lifecycle(&f, "alice", "unlock").await.status,
        StatusCode::OK
    );

    f.gw.restart();
    assert_eq!(status(&f, "bob").await, "SUSPENDED");
    assert_eq!(status(&f, "carol").await, "ACTIVE");
    // The unlock outlives the restart too (the lock alone would come back
    // from the System Log).
    assert_eq!(status(&f, "alice").await, "ACTIVE");
    assert_api_error(
        &authn(&f, "bob", "bob-demo-pass").await,
        StatusCode::UNAUTHORIZED,
        "E0000004",
    );
    assert_eq!(
        authn(&f, "carol", "carol-demo-pass").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn sighup_reloads_an_edited_users_file_and_refuses_a_broken_one() {
    let f = start();
    let b = bob_in_b_and_c(&f).await;
    let original = std::fs::read_to_string(users_file(&f)).expect("read");

    // The operator suspends bob and unsuspends carol in the file.
    let edited = original
        .replacen(
            "status = \"ACTIVE\"\n# Custom attributes",
            "status = \"SUSPENDED\"\n# Custom attributes",
            1,
        )
        .replace(
            "# Suspended so the demo and the tests can exercise a refused sign-in.\nstatus = \"SUSPENDED\"",
            "status = \"ACTIVE\"",
        );
    assert_ne!(edited, original);
    rewrite_users(&f, &edited);
    f.gw.signal("HUP");
    let reloaded = wait_for_logs(&f, "users file reloaded", 1);
    assert!(reloaded[0].contains("\"signed_out\":1"), "{reloaded:?}");
    assert_eq!(status(&f, "bob").await, "SUSPENDED");
    assert_eq!(status(&f, "carol").await, "ACTIVE");
    for app in [B, C] {
        until_signed_out(&b, &format!("{app}/page")).await;
    }
    let location = next_sso_at_idp(&b, &format!("{B}/page")).await;
    assert!(location.starts_with("/login?"), "{location}");
    assert_api_error(
        &authn(&f, "bob", "bob-demo-pass").await,
        StatusCode::UNAUTHORIZED,
        "E0000004",
    );
    let suspended = events(&f, "user.lifecycle.suspend").await;
    assert_eq!(suspended.len(), 1, "{suspended:?}");
    assert_eq!(suspended[0]["actor"]["type"], "SystemPrincipal");

    // A broken file is refused; the running users stay and are served.
    rewrite_users(&f, "[[user]]\nid = \"00u9\"\nlogin = \"mallory\"\n");
    f.gw.signal("HUP");
    let refused = wait_for_logs(&f, "users file not reloaded; the running users stay", 1);
    assert!(refused[0].contains("\"problems\":"), "{refused:?}");
    assert!(!f
        .gw
        .logs()
        .iter()
        .any(|l| l.contains("users file reloaded") && l.contains("\"users\":1")));
    let all = admin(&f, Method::GET, "/api/v1/users").await;
    assert_eq!(ids(&all), ["00u1alice", "00u2bob", "00u3carol"]);
    assert_eq!(
        authn(&f, "carol", "carol-demo-pass").await.status,
        StatusCode::OK
    );

    // Fixed again, it is taken on the next SIGHUP.
    rewrite_users(&f, &original);
    f.gw.signal("HUP");
    wait_for_logs(&f, "users file reloaded", 2);
    assert_eq!(status(&f, "bob").await, "ACTIVE");
}

#[tokio::test]
async fn sighup_reloads_the_policy_file_or_keeps_the_running_policies() {
    let users = std::fs::read_to_string(USERS).expect("demo users");
    let policies = std::fs::read_to_string(POLICIES).expect("demo policies");
    let f = start_with_idp_files(
        "",
        &[
            ("users_file", "users.toml", &users),
            ("policy_file", "policies.toml", &policies),
        ],
        &[],
    );
    assert_eq!(
        authn(&f, "bob", "bob-demo-pass").await.status,
        StatusCode::OK
    );

    // Staff on this machine are now denied.
    let path = f.file("policies.toml");
    let denying = policies.replacen(
        "zones_include = [\"loopback\"]\n  access = \"ALLOW\"",
        "zones_include = [\"loopback\"]\n  access = \"DENY\"",
        1,
    );
    assert_ne!(denying, policies);
    let tmp = path.with_extension("edit");
    std::fs::write(&tmp, &denying).expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
    f.gw.signal("HUP");
    wait_for_logs(&f, "IdP policies reloaded", 1);
    assert_api_error(
        &authn(&f, "bob", "bob-demo-pass").await,
        StatusCode::UNAUTHORIZED,
        "E0000004",
    );

    // A broken policy file is refused; the running (denying) policies stay.
    std::fs::write(&tmp, "[[session_policy]]\nname = \n").expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
    f.gw.signal("HUP");
    wait_for_logs(
        &f,
        "post-auth reload refused; the previous settings stay",
        1,
    );
    assert_eq!(wait_for_logs(&f, "IdP policies reloaded", 1).len(), 1);
    assert_api_error(
        &authn(&f, "bob", "bob-demo-pass").await,
        StatusCode::UNAUTHORIZED,
        "E0000004",
    );
}

#[tokio::test]
async fn a_user_removed_from_the_file_is_signed_out_everywhere_on_sighup() {
    let f = start();
    let b = bob_in_b_and_c(&f).await;
    let original = std::fs::read_to_string(users_file(&f)).expect("read");
    let start_of_bob = original.find("[[user]]\nid = \"00u2bob\"").expect("bob");
    let end_of_bob = start_of_bob
        + 1
        + original[start_of_bob + 1..]
            .find("[[user]]")
            .expect("carol follows");
    let without_bob = format!("{}{}", &original[..start_of_bob], &original[end_of_bob..]);
    rewrite_users(&f, &without_bob);
    f.gw.signal("HUP");
    let reloaded = wait_for_logs(&f, "users file reloaded", 1);
    assert!(reloaded[0].contains("\"users\":2"), "{reloaded:?}");
    assert!(reloaded[0].contains("\"signed_out\":1"), "{reloaded:?}");
    // Universal Logout reaches the apps although bob is no longer in the
    // directory, and his IdP session is gone.
    for app in [B, C] {
        until_signed_out(&b, &format!("{app}/page")).await;
    }
    let location = next_sso_at_idp(&b, &format!("{B}/page")).await;
    assert!(location.starts_with("/login?"), "{location}");
    let gone = admin(&f, Method::GET, "/api/v1/users/00u2bob").await;
    assert_api_error(&gone, StatusCode::NOT_FOUND, "E0000007");
}
