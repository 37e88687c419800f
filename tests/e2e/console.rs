//! The embedded IdP's admin console through the real binary: entry through
//! the IdP's own sign-in with MFA, the pages an operator uses (dashboard,
//! sessions, users, System Log, apps, policies), actions posted with CSRF,
//! protected actions behind re-authentication, and an admin session bound
//! to its ASN (clients bound to 127.0.0.1 and 127.0.0.200, in two ASNs of a
//! fixture database).
//!
//! The demo users and policies: alice (admins) always uses MFA; bob
//! (staff, from loopback) signs in with a password alone.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use http::StatusCode;
use portcullis_idp::directory::{totp_code_at, TotpSecret};
use serde_json::Value;
use test_support::browser::{input_value, set_cookie, url_encode, Browser};
use test_support::{Client, Reply};
use time::OffsetDateTime;

use crate::gateway_sso::{get_json, start_with_idp_files, Fixture};
use crate::universal_logout::{bob_in_b_and_c, until_signed_out};

const IDP: &str = "https://a.test";
const B: &str = "https://b.test";
const DEMO_POLICIES: &str = include_str!("../../demo/policies.toml");
/// A copy is written per test: the console changes it.
const DEMO_USERS: &str = include_str!("../../demo/users.toml");
const ALICE_TOTP: &str = "MFWGSY3FFVSGK3LPFV2G65DQFVVWK6JB";
const ADMIN_COOKIE: &str = "pc_idp_admin";
const BOB_ID: &str = "00u2bob";

/// Two networks on loopback: 127.0.0.0/25 and 127.0.0.128/25.
const ASN_TSV: &str = "127.0.0.0\t127.0.0.127\t64500\tZZ\tExample Loopback Low\n\
                       127.0.0.128\t127.0.0.255\t64501\tZZ\tExample Loopback High\n";

fn start() -> Fixture {
    start_with_idp_files(
        "",
        &[
            ("users_file", "users.toml", DEMO_USERS),
            ("policy_file", "policies.toml", DEMO_POLICIES),
            ("asn_database", "asn.tsv", ASN_TSV),
        ],
        &[],
    )
}

fn browser_from(f: &Fixture, source: &str) -> Browser {
    let source: IpAddr = source.parse().expect("source address");
    Browser::new(Client::http1_from(&f.gw.pki, f.gw.https, source))
}

/// alice's TOTP codes, each from a step later than the last one used (the
/// IdP accepts a step once), waiting for the next step when needed. Also
/// the Chromium journeys' (`browser.rs`).
pub(crate) struct Codes {
    secret: TotpSecret,
    last: Option<i64>,
}

impl Codes {
    pub(crate) fn alice() -> Codes {
        Codes {
            secret: TotpSecret::from_base32(ALICE_TOTP).expect("demo secret"),
            last: None,
        }
    }

    pub(crate) async fn next(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(65);
        loop {
            let now = OffsetDateTime::now_utc().unix_timestamp();
            let current = now / 30;
            // The current step, or the next one (within the ±1 skew).
            if let Some(step) = [current, current + 1]
                .into_iter()
                .find(|s| self.last.is_none_or(|l| *s > l))
            {
                self.last = Some(step);
                let at = OffsetDateTime::from_unix_timestamp(step * 30).expect("time");
                return totp_code_at(&self.secret, at).expect("code");
            }
            assert!(Instant::now() < deadline, "no fresh TOTP step");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A page at the IdP by its path (what a `Location` holds).
async fn at_idp(b: &Browser, path: &str) -> Reply {
    b.get(&format!("{IDP}{path}")).await
}

/// Posts alice's next TOTP code on the MFA form; it must be accepted.
pub(crate) async fn post_code(
    b: &Browser,
    csrf: &str,
    from: &str,
    step_up: bool,
    codes: &mut Codes,
) -> Reply {
    let code = codes.next().await;
    let mut fields = vec![("csrf", csrf), ("fromURI", from), ("code", code.as_str())];
    if step_up {
        fields.push(("stepup", "1"));
    }
    let verified = b.post_form(&format!("{IDP}/login/mfa"), &fields).await;
    assert_eq!(
        verified.status,
        StatusCode::SEE_OTHER,
        "{}",
        verified.text()
    );
    verified
}

/// alice opens the console: sent to sign-in, password, TOTP, back to the
/// console, which starts her admin session.
async fn alice_in_console(b: &Browser, codes: &mut Codes) {
    let first = at_idp(b, "/admin/sessions").await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.text());
    let login = first.location();
    assert_eq!(
        login,
        format!("/login?fromURI={}", url_encode("/admin/sessions"))
    );
    let form = at_idp(b, &login).await;
    let csrf = input_value(&form.text(), "csrf").expect("csrf");
    let password = b
        .post_form(
            &format!("{IDP}/login"),
            &[
                ("csrf", &csrf),
                ("fromURI", "/admin/sessions"),
                ("username", "alice"),
                ("password", "alice-demo-pass"),
            ],
        )
        .await;
    assert_eq!(
        password.status,
        StatusCode::SEE_OTHER,
        "{}",
        password.text()
    );
    let mfa = password.location();
    assert!(mfa.starts_with("/login/mfa?"), "{mfa}");
    let form = at_idp(b, &mfa).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text());
    let csrf = input_value(&form.text(), "csrf").expect("csrf");
    let verified = post_code(b, &csrf, "/admin/sessions", false, codes).await;
    assert_eq!(verified.location(), "/admin/sessions");
    let entered = at_idp(b, "/admin/sessions").await;
    assert_eq!(entered.status, StatusCode::SEE_OTHER, "{}", entered.text());
    let cookie = set_cookie(&entered, ADMIN_COOKIE).expect("admin session cookie");
    assert!(
        cookie.has("HttpOnly") && cookie.has("Secure") && cookie.has("SameSite=Strict"),
        "{cookie:?}"
    );
    let page = at_idp(b, "/admin/sessions").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(
        page.text()
            .contains("Signed in as <strong id=\"admin-user\">alice</strong>"),
        "{}",
        page.text()
    );
}

/// The `data-session` id of `login`'s first row on the sessions page.
fn session_row_id(html: &str, login: &str) -> Option<String> {
    let marker = format!("data-user=\"{login}\"");
    let at = html.find(&marker)?;
    let row = &html[html[..at].rfind("<tr")?..at];
    let start = row.find("data-session=\"")? + "data-session=\"".len();
    Some(row[start..start + row[start..].find('"')?].to_string())
}

/// Posts a console action with the page's CSRF field.
async fn action(
    b: &Browser,
    csrf: &str,
    action: &str,
    target: &str,
    extra: &[(&str, &str)],
) -> Reply {
    let mut fields = vec![
        ("csrf", csrf),
        ("action", action),
        ("target", target),
        ("return", "/admin/users"),
    ];
    fields.extend_from_slice(extra);
    b.post_form(&format!("{IDP}/admin/action"), &fields).await
}

/// A console page's CSRF field.
async fn console_csrf(b: &Browser, path: &str) -> String {
    let page = at_idp(b, path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    input_value(&page.text(), "csrf").expect("csrf field")
}

/// System Log events of `event_type` through the console's JSON export,
/// waiting up to 5 s for `at_least`.
async fn events(b: &Browser, event_type: &str, at_least: usize) -> Vec<Value> {
    let filter = url_encode(&format!("eventType eq \"{event_type}\""));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = at_idp(b, &format!("/admin/logs?filter={filter}&format=json")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let found = reply.json().as_array().cloned().unwrap_or_default();
        if found.len() >= at_least || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_admin_signs_in_with_mfa_sees_bobs_session_and_revokes_it() {
    let f = start();
    let bob = bob_in_b_and_c(&f).await;
    let alice = browser_from(&f, "127.0.0.1");
    let mut codes = Codes::alice();
    alice_in_console(&alice, &mut codes).await;

    let dashboard = at_idp(&alice, "/admin").await;
    assert_eq!(dashboard.status, StatusCode::OK);
    let html = dashboard.text();
    assert!(
        html.contains("<span class=\"figure\" id=\"active-sessions\">2</span>"),
        "{html}"
    );
    assert!(
        html.contains("<tr data-app=\"b\"><td>b</td><td class=\"num\">1</td></tr>"),
        "{html}"
    );
    assert!(
        html.contains("id=\"post-auth-status\">post-auth evaluation off<"),
        "{html}"
    );
    // bob's and alice's sign-ins, no failure, no lockout.
    assert!(html.contains("id=\"sign-ins\">2</span>"), "{html}");
    assert!(html.contains("id=\"sign-in-failures\">0</span>"), "{html}");
    assert!(html.contains("id=\"lockouts\">0</span>"), "{html}");

    let list = at_idp(&alice, "/admin/sessions?user=bob").await;
    let html = list.text();
    assert!(
        html.contains("<p id=\"session-count\">1 of 2 session(s)</p>"),
        "{html}"
    );
    let id = session_row_id(&html, "bob").expect("bob's session is listed");
    // Each session names the node it started on: this host.
    let node = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let here = at_idp(
        &alice,
        &format!("/admin/sessions?user=bob&node={}", node.trim()),
    )
    .await;
    assert!(
        here.text()
            .contains("<p id=\"session-count\">1 of 2 session(s)</p>"),
        "{}",
        here.text()
    );
    assert!(here.text().contains(&format!("<td>{}</td>", node.trim())));
    let elsewhere = at_idp(&alice, "/admin/sessions?node=no-such-node").await;
    assert!(
        elsewhere
            .text()
            .contains("<p id=\"session-count\">0 of 2 session(s)</p>"),
        "{}",
        elsewhere.text()
    );
    let detail = at_idp(&alice, &format!("/admin/sessions/{id}")).await;
    assert_eq!(detail.status, StatusCode::OK);
    assert!(
        detail.text().contains("user.session.start"),
        "the timeline: {}",
        detail.text()
    );

    let csrf = input_value(&html, "csrf").expect("csrf");
    let revoked = action(&alice, &csrf, "session.revoke", &id, &[]).await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.text());
    assert_eq!(revoked.location(), "/admin/users");
    // bob's app sessions end with his IdP session; his next page view goes
    // to sign-in.
    until_signed_out(&bob, &format!("{B}/page")).await;
    let next = bob.get(&format!("{B}/page")).await;
    assert_eq!(next.status, StatusCode::SEE_OTHER);
    assert!(
        next.location().starts_with(&format!("{IDP}/sso/saml?")),
        "{}",
        next.location()
    );
    let cleared = events(&alice, "user.session.clear", 1).await;
    assert_eq!(cleared.len(), 1, "{cleared:?}");
    assert_eq!(cleared[0]["actor"]["alternateId"], "alice", "{cleared:?}");
    let entered = events(&alice, "user.session.access_admin_app", 1).await;
    assert_eq!(entered[0]["outcome"]["result"], "SUCCESS", "{entered:?}");
}

#[tokio::test]
async fn a_non_admin_gets_403_and_a_form_without_its_csrf_field_changes_nothing() {
    let f = start();
    let bob = bob_in_b_and_c(&f).await;
    let refused = at_idp(&bob, "/admin").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
    assert!(
        refused.text().contains("not in an administrator group"),
        "{}",
        refused.text()
    );
    assert!(set_cookie(&refused, ADMIN_COOKIE).is_none());

    let alice = browser_from(&f, "127.0.0.1");
    alice_in_console(&alice, &mut Codes::alice()).await;
    for csrf in [
        "",
        "0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        let forged = action(&alice, csrf, "user.unlock", BOB_ID, &[]).await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.text());
        assert!(
            forged.text().contains("id=\"csrf-refused\""),
            "{}",
            forged.text()
        );
    }
    let session = action(&alice, "", "session.revoke", "x", &[]).await;
    assert_eq!(session.status, StatusCode::FORBIDDEN);
    // bob is still signed in everywhere.
    assert_eq!(
        get_json(&bob, &format!("{B}/page")).await.status,
        StatusCode::OK
    );
    // An unknown action with a good field is a 400, not a change.
    let csrf = console_csrf(&alice, "/admin/users").await;
    let unknown = action(&alice, &csrf, "user.delete", BOB_ID, &[]).await;
    assert_eq!(
        unknown.status,
        StatusCode::BAD_REQUEST,
        "{}",
        unknown.text()
    );
}

#[tokio::test]
async fn suspending_a_user_asks_for_password_and_code_then_signs_them_out() {
    let f = start();
    let bob = bob_in_b_and_c(&f).await;
    let alice = browser_from(&f, "127.0.0.1");
    let mut codes = Codes::alice();
    alice_in_console(&alice, &mut codes).await;

    let users = at_idp(&alice, "/admin/users?q=bob").await;
    let html = users.text();
    assert!(
        html.contains("<p id=\"user-count\">1 of 3 user(s)</p>"),
        "{html}"
    );
    assert!(
        html.contains("data-user=\"bob\" data-status=\"ACTIVE\""),
        "{html}"
    );
    let csrf = input_value(&html, "csrf").expect("csrf");

    // A protected action: the prompt first, nothing done yet.
    let prompt = action(&alice, &csrf, "user.suspend", BOB_ID, &[]).await;
    assert_eq!(prompt.status, StatusCode::OK, "{}", prompt.text());
    assert!(prompt.text().contains("id=\"reauth\""), "{}", prompt.text());
    assert_eq!(
        get_json(&bob, &format!("{B}/page")).await.status,
        StatusCode::OK
    );

    // The wrong password: asked again, the fields marked, still nothing done.
    let code = codes.next().await;
    let wrong = action(
        &alice,
        &csrf,
        "user.suspend",
        BOB_ID,
        &[("password", "not-her-password"), ("code", &code)],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.text());
    assert!(
        wrong
            .text()
            .contains("aria-invalid=\"true\" aria-describedby=\"reauth-error\""),
        "{}",
        wrong.text()
    );
    assert_eq!(
        get_json(&bob, &format!("{B}/page")).await.status,
        StatusCode::OK
    );

    let done = action(
        &alice,
        &csrf,
        "user.suspend",
        BOB_ID,
        &[("password", "alice-demo-pass"), ("code", &code)],
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    until_signed_out(&bob, &format!("{B}/page")).await;
    let users = at_idp(&alice, "/admin/users?status=SUSPENDED").await;
    assert!(
        users
            .text()
            .contains("data-user=\"bob\" data-status=\"SUSPENDED\""),
        "{}",
        users.text()
    );
    let verify = events(&alice, "user.authentication.verify", 3).await;
    let outcomes: Vec<&str> = verify
        .iter()
        .filter_map(|e| e["outcome"]["result"].as_str())
        .collect();
    assert_eq!(outcomes.len(), 3, "{verify:?}");
    for outcome in ["CHALLENGE", "FAILURE", "SUCCESS"] {
        assert!(outcomes.contains(&outcome), "{outcomes:?}");
    }
    assert_eq!(events(&alice, "user.lifecycle.suspend", 1).await.len(), 1);

    // bob cannot sign in again.
    let stranger = f.gw.browser();
    let form = at_idp(&stranger, "/login").await;
    let csrf = input_value(&form.text(), "csrf").expect("csrf");
    let refused = stranger
        .post_form(
            &format!("{IDP}/login"),
            &[
                ("csrf", &csrf),
                ("username", "bob"),
                ("password", "bob-demo-pass"),
            ],
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        refused.text()
    );
}

#[tokio::test]
async fn an_admin_session_used_from_another_asn_is_revoked_and_needs_a_new_factor() {
    let f = start();
    let alice = browser_from(&f, "127.0.0.1");
    let mut codes = Codes::alice();
    alice_in_console(&alice, &mut codes).await;

    let elsewhere = alice.replayed_through(Client::http1_from(
        &f.gw.pki,
        f.gw.https,
        "127.0.0.200".parse().expect("address"),
    ));
    let roamed = at_idp(&elsewhere, "/admin/users").await;
    assert_eq!(roamed.status, StatusCode::UNAUTHORIZED, "{}", roamed.text());
    assert!(
        roamed.text().contains("id=\"admin-roaming\""),
        "{}",
        roamed.text()
    );
    assert!(set_cookie(&roamed, ADMIN_COOKIE).is_some_and(|c| c.deletes()));

    // Neither network gets back in on the old factor: both are asked for a
    // new one.
    for b in [&elsewhere, &alice] {
        let again = at_idp(b, "/admin/users").await;
        assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.text());
        assert!(
            again.location().starts_with("/login/mfa?"),
            "{}",
            again.location()
        );
        assert!(
            again.location().contains("stepup=1"),
            "{}",
            again.location()
        );
    }
    // A new factor from the original network opens the console again.
    let mfa = at_idp(&alice, "/login/mfa?fromURI=%2Fadmin&stepup=1").await;
    let csrf = input_value(&mfa.text(), "csrf").expect("csrf");
    post_code(&alice, &csrf, "/admin", true, &mut codes).await;
    assert_eq!(at_idp(&alice, "/admin").await.status, StatusCode::SEE_OTHER);
    assert_eq!(at_idp(&alice, "/admin").await.status, StatusCode::OK);
    let roaming = events(&alice, "security.session.detect_client_roaming", 1).await;
    assert_eq!(roaming.len(), 1, "{roaming:?}");
    assert_eq!(roaming[0]["outcome"]["result"], "DENY");
    assert_eq!(roaming[0]["debugContext"]["debugData"]["attributes"], "asn");
}

#[tokio::test]
async fn the_log_users_apps_and_policies_pages_answer_an_operators_questions() {
    let f = start();
    let _bob = bob_in_b_and_c(&f).await;
    let alice = browser_from(&f, "127.0.0.1");
    alice_in_console(&alice, &mut Codes::alice()).await;

    let filter =
        url_encode("eventType eq \"user.session.start\" and outcome.result eq \"SUCCESS\"");
    let logs = at_idp(&alice, &format!("/admin/logs?filter={filter}&limit=1")).await;
    assert_eq!(logs.status, StatusCode::OK, "{}", logs.text());
    let html = logs.text();
    assert_eq!(
        html.matches("<tr data-event-type=\"user.session.start\">")
            .count(),
        1,
        "{html}"
    );
    assert!(
        html.contains("id=\"next-page\""),
        "two sign-ins, one per page: {html}"
    );
    let bad = at_idp(
        &alice,
        &format!("/admin/logs?filter={}", url_encode("eventType eq")),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.text().contains("name=\"filter\" value=\"eventType eq\" placeholder=\"eventType eq &quot;user.session.start&quot;\" aria-invalid=\"true\" aria-describedby=\"query-error\""),
        "{}",
        bad.text()
    );
    let export = at_idp(&alice, &format!("/admin/logs?filter={filter}&format=json")).await;
    assert_eq!(export.status, StatusCode::OK);
    assert!(export.headers["content-disposition"]
        .to_str()
        .is_ok_and(|v| v.starts_with("attachment")));
    assert_eq!(export.json().as_array().map(Vec::len), Some(2));

    let apps = at_idp(&alice, "/admin/apps").await.text();
    assert!(
        apps.contains("<tr data-app=\"b\"><td>b</td><td>https://b.test</td><td>embedded IdP</td>"),
        "{apps}"
    );
    assert!(
        apps.contains("https://b.test/_portcullis/saml/metadata"),
        "{apps}"
    );
    assert!(apps.contains("<tr data-sp=\"legacy\">"), "{apps}");

    // The launcher starts a gateway app's own sign-in (it refuses an
    // unsolicited assertion) and keeps IdP-initiated sign-in for the others.
    let home = at_idp(&alice, "/").await.text();
    assert!(
        home.contains("<a href=\"https://b.test\" data-app=\"b\">b</a>"),
        "{home}"
    );
    assert!(
        home.contains("<a href=\"/app/legacy/sso/saml\" data-app=\"legacy\">"),
        "{home}"
    );
    // Sign-in for an app names the app.
    let stranger = f.gw.browser();
    let to_idp = stranger.get(&format!("{B}/page")).await.location();
    let to_login = stranger.get(&to_idp).await.location();
    assert!(
        to_login.starts_with("/login?") && to_login.ends_with("&app=b"),
        "{to_login}"
    );
    let form = at_idp(&stranger, &to_login).await.text();
    assert!(
        form.contains("<p class=\"id\" id=\"signing-in-to\">to <strong>b</strong></p>"),
        "{form}"
    );
    assert_eq!(input_value(&form, "app").as_deref(), Some("b"));
    let launched = at_idp(&alice, "/app/b/sso/saml").await;
    assert_eq!(launched.status, StatusCode::SEE_OTHER);
    assert_eq!(launched.location(), "https://b.test");

    let explain = |user: &str, ip: &str| format!("/admin/policies?user={user}&ip={ip}&app=b");
    let alice_explained = at_idp(&alice, &explain("alice", "203.0.113.7"))
        .await
        .text();
    assert!(
        alice_explained.contains("Global session policy “Administrators” applies"),
        "{alice_explained}"
    );
    assert!(
        alice_explained
            .contains("Decision: CHALLENGE by “Administrators” / “Admins always use MFA”"),
        "{alice_explained}"
    );
    let bob_explained = at_idp(&alice, &explain("bob", "127.0.0.9")).await.text();
    assert!(
        bob_explained.contains("Rule “Staff on this machine” matches."),
        "{bob_explained}"
    );
    let bob_away = at_idp(&alice, &explain("bob", "203.0.113.7")).await.text();
    assert!(
        bob_away.contains(
            "Rule “Staff on this machine” does not match: 203.0.113.7 is in none of its zones."
        ),
        "{bob_away}"
    );
    let nobody = at_idp(&alice, &explain("nobody", "x")).await;
    assert_eq!(nobody.status, StatusCode::BAD_REQUEST);
    assert!(
        nobody.text().contains("aria-describedby=\"x-user-error\""),
        "{}",
        nobody.text()
    );
    assert!(
        nobody.text().contains("aria-describedby=\"x-ip-error\""),
        "{}",
        nobody.text()
    );
}
