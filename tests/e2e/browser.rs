//! A real browser through the real binary: headless Chromium, driven over
//! WebDriver by chromedriver, follows a deep link on an SSO-protected app
//! through the embedded IdP's sign-in form, the auto-submitting SAML form
//! (which runs only if the IdP's CSP allows its script), a second app
//! signed in without a password, and the gateway's 403 page.
//!
//! Needs the Debian packages `chromium` and `chromium-driver`
//! (`make test` installs them); the test fails, not skips, without them.

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

use crate::gateway_sso::start_with;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const WAIT: Duration = Duration::from_secs(10);
const EMAIL: &str = "bob@example.com";

/// chromedriver on a free port in its own process group, which is killed
/// on drop (so a failed test leaves no Chromium behind either).
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(path).exists(),
                "{path} not found: the browser e2e test needs the Debian packages \
                 `chromium` and `chromium-driver` (apt-get install -y chromium chromium-driver, \
                 or `make test-deps`)"
            );
        }
        // chromedriver has no "port 0 and tell me": take a free port and
        // release it just before the driver binds it.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn chromedriver");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session in which a.test, b.test and c.test (port
/// 443 in the URLs) all reach the gateway on 127.0.0.1:`port`.
async fn chromium(driver: &Driver, port: u16, profile: &Path) -> Client {
    let map = ["a.test", "b.test", "c.test", "app.test"]
        .map(|host| format!("MAP {host} 127.0.0.1:{port}"))
        .join(", ");
    let args = [
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--disable-quic".to_owned(),
        "--no-first-run".to_owned(),
        // No outside network here: keep Chromium from trying.
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        // The gateway's certificate is from the test's throwaway CA;
        // trusting it this way is fine for a test.
        "--ignore-certificate-errors".to_owned(),
        format!("--host-resolver-rules={map}"),
        format!("--user-data-dir={}", profile.display()),
        "--window-size=1024,768".to_owned(),
    ];
    let capabilities = serde_json::json!({
        "browserName": "chrome",
        "acceptInsecureCerts": true,
        "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("start a Chromium session through chromedriver")
}

fn url(text: &str) -> ::url::Url {
    text.parse().expect("url")
}

async fn body_text(c: &Client) -> String {
    c.find(Locator::Css("body"))
        .await
        .expect("body")
        .text()
        .await
        .expect("body text")
}

#[tokio::test]
async fn browser_journey_deep_link_sso_second_app_forbidden_page_and_single_logout() {
    let f = start_with("", &[("d", "https://app.test", "builtin:echo", "")]);
    let driver = Driver::start();
    let tmp = tempfile::tempdir().expect("dir");
    let profile = tmp.path().join("profile");
    let c = chromium(&driver, f.gw.https.port(), &profile).await;

    // Deep link → the IdP's sign-in form.
    c.goto("https://b.test/deep/page?x=1").await.expect("goto");
    let username = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("input[name=username]"))
        .await
        .expect("the IdP's sign-in form");
    let at = c.current_url().await.expect("url");
    assert_eq!(at.host_str(), Some("a.test"), "{at}");

    // Sign in; the IdP's auto-submit form posts to b.test's ACS, which
    // sends the browser back to the deep link.
    username.send_keys("bob").await.expect("type");
    c.find(Locator::Css("input[name=password]"))
        .await
        .expect("password field")
        .send_keys("bob-demo-pass")
        .await
        .expect("type");
    c.find(Locator::Css("button[type=submit]"))
        .await
        .expect("submit")
        .click()
        .await
        .expect("click");
    let deep = url("https://b.test/deep/page?x=1");
    c.wait()
        .at_most(WAIT)
        .for_url(&deep)
        .await
        .unwrap_or_else(|e| panic!("did not land on the deep link: {e}"));
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("table#headers"))
        .await
        .expect("the echo page");
    let text = body_text(&c).await;
    assert!(text.contains("x-portcullis-user"), "{text}");
    assert!(text.contains(EMAIL), "{text}");
    assert!(text.contains("/deep/page?x=1"), "{text}");
    // The echo page leads with who is signed in, then the identity headers.
    assert!(
        text.starts_with(&format!("Signed in as {EMAIL}")),
        "the page does not lead with the user: {text}"
    );
    let identity = c
        .find(Locator::Css("table#identity"))
        .await
        .expect("the identity table")
        .text()
        .await
        .expect("identity text");
    assert!(identity.contains("x-portcullis-user"), "{identity}");
    c.find(Locator::XPath(
        "//form[@method='post']/button[text()='Sign out']",
    ))
    .await
    .expect("a sign-out button");

    // The second app: SSO via the IdP session, no password.
    c.goto("https://c.test/").await.expect("goto");
    c.wait()
        .at_most(WAIT)
        .for_url(&url("https://c.test/"))
        .await
        .unwrap_or_else(|e| panic!("did not land on c.test: {e}"));
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("table#headers"))
        .await
        .expect("the echo page on c.test");
    let text = body_text(&c).await;
    assert!(text.contains(EMAIL), "{text}");
    assert!(c.find(Locator::Css("input[name=password]")).await.is_err());

    // bob is not in admins: the gateway's 403 page.
    c.goto("https://b.test/admin/").await.expect("goto");
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath("//h1[text()='Access denied']"))
        .await
        .expect("the 403 page");
    assert_eq!(c.title().await.expect("title"), "403 Access denied");
    let text = body_text(&c).await;
    assert!(
        text.contains(&format!("You are signed in as {EMAIL}")) && text.contains("\"admins\""),
        "the 403 page does not say who is signed in and what the path needs: {text}"
    );
    assert_eq!(
        c.current_url().await.expect("url"),
        url("https://b.test/admin/")
    );

    // Proof it rendered: a PNG of the 403 page.
    let png = c.screenshot().await.expect("screenshot");
    let shot = tmp.path().join("forbidden.png");
    std::fs::write(&shot, &png).expect("write screenshot");
    assert!(png.len() > 1000, "tiny screenshot: {} bytes", png.len());
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");

    // A third app, then logout from b: every app and the IdP sign out.
    c.goto("https://app.test/").await.expect("goto");
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("table#headers"))
        .await
        .expect("the echo page on app.test");
    c.goto("https://b.test/_portcullis/logout")
        .await
        .expect("goto");
    let signed_out = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#signed-out"))
        .await
        .expect("b's signed-out page");
    let text = signed_out.text().await.expect("text");
    assert_eq!(text, "You are signed out.", "not a complete logout");
    assert_eq!(
        c.current_url().await.expect("url").host_str(),
        Some("b.test")
    );
    for app in ["https://c.test/", "https://app.test/", "https://b.test/"] {
        c.goto(app).await.expect("goto");
        c.wait()
            .at_most(WAIT)
            .for_element(Locator::Css("input[name=username]"))
            .await
            .unwrap_or_else(|e| panic!("{app} did not ask for a sign-in: {e}"));
        let at = c.current_url().await.expect("url");
        assert_eq!(at.host_str(), Some("a.test"), "{app}: {at}");
    }

    c.close().await.expect("close the session");
}

/// Types `text` into whatever has the keyboard focus.
async fn type_keys(c: &Client, text: &str) {
    c.active_element()
        .await
        .expect("a focused element")
        .send_keys(text)
        .await
        .expect("type");
}

const TAB: &str = "\u{e004}";
const ENTER: &str = "\u{e007}";

/// Opens `url` (which sends a browser without a session to sign-in) and
/// gets through the sign-in form with the keyboard alone: autofocus, Tab,
/// Enter.
async fn keyboard_sign_in(c: &Client, url: &str, login: &str, password: &str) {
    c.goto(url).await.expect("goto");
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("input[name=username]"))
        .await
        .expect("the sign-in form");
    type_keys(c, &format!("{login}{TAB}{password}{ENTER}")).await;
}

/// Types the next code into the authenticator form once it shows.
async fn keyboard_code(c: &Client, codes: &mut crate::console::Codes) {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("input[name=code]"))
        .await
        .expect("the authenticator code form");
    type_keys(c, &format!("{}{ENTER}", codes.next().await)).await;
}

#[tokio::test]
async fn browser_journey_admin_console_by_keyboard_revokes_bobs_session() {
    let f = start_with("", &[]);
    let bob = crate::universal_logout::bob_in_b_and_c(&f).await;
    let driver = Driver::start();
    let tmp = tempfile::tempdir().expect("dir");
    let c = chromium(&driver, f.gw.https.port(), &tmp.path().join("profile")).await;

    // The console sends a browser without a session to sign-in; the
    // keyboard alone gets alice through it (autofocus, Tab, Enter).
    keyboard_sign_in(&c, "https://a.test/admin", "alice", "alice-demo-pass").await;
    // A new admin session needs a fresh second factor.
    keyboard_code(&c, &mut crate::console::Codes::alice()).await;
    let figure = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#active-sessions"))
        .await
        .expect("the dashboard");
    assert_eq!(figure.text().await.expect("text"), "2");
    assert!(body_text(&c).await.contains("Signed in as alice"));

    c.goto("https://a.test/admin/sessions?user=bob")
        .await
        .expect("goto");
    let revoke = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(
            "//tr[@data-user='bob']//button[text()='Revoke']",
        ))
        .await
        .expect("bob's session with a Revoke button");
    revoke.send_keys(ENTER).await.expect("press Revoke");
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(
            "//p[@id='session-count' and starts-with(text(), '0 of 1')]",
        ))
        .await
        .expect("the list without bob's session");
    crate::universal_logout::until_signed_out(&bob, "https://b.test/page").await;

    // Framed nowhere, cached nowhere, no script but none needed.
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(tmp.path().join("sessions.png"), &png).expect("write screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    c.close().await.expect("close the session");
}

#[tokio::test]
async fn browser_journey_a_protected_action_asks_again_and_a_non_admin_is_refused() {
    let users = include_str!("../../demo/users.toml");
    let f =
        crate::gateway_sso::start_with_idp_files("", &[("users_file", "users.toml", users)], &[]);
    let bob = crate::universal_logout::bob_in_b_and_c(&f).await;
    let driver = Driver::start();

    // bob, in a browser of his own, is not an administrator: 403.
    let tmp = tempfile::tempdir().expect("dir");
    let c = chromium(&driver, f.gw.https.port(), &tmp.path().join("profile")).await;
    keyboard_sign_in(&c, "https://a.test/admin", "bob", "bob-demo-pass").await;
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath("//h1[text()='Not allowed']"))
        .await
        .expect("the console's 403 page");
    assert!(body_text(&c)
        .await
        .contains("not in an administrator group"));
    c.close().await.expect("close the session");

    let tmp = tempfile::tempdir().expect("dir");
    let c = chromium(&driver, f.gw.https.port(), &tmp.path().join("profile")).await;
    let mut codes = crate::console::Codes::alice();
    keyboard_sign_in(&c, "https://a.test/admin/users", "alice", "alice-demo-pass").await;
    keyboard_code(&c, &mut codes).await;
    let suspend = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(
            "//tr[@data-user='bob']//button[text()='Suspend']",
        ))
        .await
        .expect("bob's row with a Suspend button");
    suspend.click().await.expect("click Suspend");
    // Suspending is protected: password and a code again, nothing done yet.
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#reauth"))
        .await
        .expect("the re-authentication prompt");
    assert_eq!(
        crate::gateway_sso::get_json(&bob, "https://b.test/page")
            .await
            .status,
        http::StatusCode::OK
    );
    type_keys(
        &c,
        &format!("alice-demo-pass{TAB}{}{ENTER}", codes.next().await),
    )
    .await;
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(
            "//tr[@data-user='bob' and @data-status='SUSPENDED']",
        ))
        .await
        .expect("bob suspended on the users page");
    crate::universal_logout::until_signed_out(&bob, "https://b.test/page").await;
    c.close().await.expect("close the session");

    // A suspended bob, in a fresh browser, is turned away at sign-in with
    // the same words as a wrong password: the page names no account state.
    let tmp = tempfile::tempdir().expect("dir");
    let c = chromium(&driver, f.gw.https.port(), &tmp.path().join("profile")).await;
    keyboard_sign_in(&c, "https://b.test/page", "bob", "bob-demo-pass").await;
    let refusal = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#sign-in-error"))
        .await
        .expect("the sign-in form again, with its error");
    let said = refusal.text().await.expect("text");
    assert!(!said.to_lowercase().contains("suspend"), "{said}");
    let field = c
        .find(Locator::Css("#username"))
        .await
        .expect("username field");
    assert_eq!(
        field
            .attr("aria-describedby")
            .await
            .expect("attr")
            .as_deref(),
        Some("sign-in-error")
    );
    c.close().await.expect("close the session");
}
