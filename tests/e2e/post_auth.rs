//! Post-auth session evaluation through the real binary: a session signed
//! in from one address is replayed from others (clients bound to other
//! 127.0.0.x addresses, in two ASNs of a fixture database) and with another
//! user agent, under each mode and action.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use http::{header, Method, Request, StatusCode};
use serde_json::Value;
use test_support::browser::{url_encode, Browser};
use test_support::{Client, Reply};

use crate::gateway_sso::{post_acs, sso, start_with_idp_files, Fixture, ADMIN_TOKEN};

const IDP: &str = "https://a.test";
const B: &str = "https://b.test";
const C: &str = "https://c.test";

/// Two networks on loopback: 127.0.0.0/25 and 127.0.0.128/25.
const ASN_TSV: &str = "127.0.0.0\t127.0.0.127\t64500\tZZ\tExample Loopback Low\n\
                       127.0.0.128\t127.0.0.255\t64501\tZZ\tExample Loopback High\n";

const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

fn start(post_auth: &str) -> Fixture {
    let policy = format!("[[zone]]\nname = \"low\"\ncidrs = [\"127.0.0.0/25\"]\n\n{post_auth}");
    start_with_idp_files(
        "",
        &[
            ("policy_file", "policy.toml", &policy),
            ("asn_database", "asn.tsv", ASN_TSV),
        ],
        &[],
    )
}

fn client_from(f: &Fixture, source: &str) -> Client {
    let source: IpAddr = source.parse().expect("source address");
    Client::http1_from(&f.gw.pki, f.gw.https, source)
}

/// bob signs in to each of `apps` from 127.0.0.1.
async fn bob_signed_in(f: &Fixture, apps: &[&str]) -> Browser {
    let b = Browser::new(client_from(f, "127.0.0.1"));
    for app in apps {
        let acs = format!("{app}/_portcullis/saml/acs");
        let rs = format!("pc_{}_rs", &app[8..9]);
        let posted = sso(&b, &rs, &format!("{app}/page"), &acs).await;
        let landed = post_acs(&b, &acs, &posted.saml_response, &posted.relay_state).await;
        assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text());
    }
    b
}

/// An XHR-style request for `url`, with `user_agent` when given.
async fn api_get(b: &Browser, url: &str, user_agent: Option<&str>) -> Reply {
    let mut request = Request::get(url).header(header::ACCEPT, "application/json");
    if let Some(ua) = user_agent {
        request = request.header(header::USER_AGENT, ua);
    }
    b.send(request.body(Client::empty()).expect("request"))
        .await
}

async fn admin_api(f: &Fixture, path: &str) -> Reply {
    f.gw.browser()
        .send(
            Request::builder()
                .method(Method::GET)
                .uri(format!("{IDP}{path}"))
                .header(header::ACCEPT, "application/json")
                .header(header::AUTHORIZATION, format!("SSWS {ADMIN_TOKEN}"))
                .body(Client::empty())
                .expect("request"),
        )
        .await
}

/// The System Log events of `event_type`, waiting up to 5 s for `at_least`.
async fn events(f: &Fixture, event_type: &str, at_least: usize) -> Vec<Value> {
    let filter = url_encode(&format!("eventType eq \"{event_type}\""));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = admin_api(f, &format!("/api/v1/logs?filter={filter}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let found = reply.json().as_array().cloned().unwrap_or_default();
        if found.len() >= at_least || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn changed_attributes(events: &[Value]) -> Vec<String> {
    let mut attributes: Vec<String> = events
        .iter()
        .filter_map(|e| e["debugContext"]["debugData"]["attribute"].as_str())
        .map(str::to_string)
        .collect();
    attributes.sort();
    attributes
}

#[tokio::test]
async fn monitoring_records_each_change_once_and_the_user_notices_nothing() {
    let f = start("[post_auth]\nmode = \"monitoring\"\nbind = [\"asn\"]\n");
    let b = bob_signed_in(&f, &[B]).await;
    assert_eq!(
        api_get(&b, &format!("{B}/page"), None).await.status,
        StatusCode::OK
    );

    // The same cookie from the other network, twice: served both times, one
    // event per changed attribute (the second request is no new change).
    let elsewhere = b.replayed_through(client_from(&f, "127.0.0.200"));
    for _ in 0..2 {
        let reply = api_get(&elsewhere, &format!("{B}/page"), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    let changes = events(&f, "user.session.context.change", 3).await;
    assert_eq!(
        changed_attributes(&changes),
        ["asn", "ip", "zone"],
        "{changes:?}"
    );
    let asn = changes
        .iter()
        .find(|e| e["debugContext"]["debugData"]["attribute"] == "asn")
        .expect("asn change");
    assert_eq!(
        asn["debugContext"]["debugData"]["oldValue"],
        "AS64500 Example Loopback Low"
    );
    assert_eq!(
        asn["debugContext"]["debugData"]["newValue"],
        "AS64501 Example Loopback High"
    );
    assert_eq!(asn["client"]["ipAddress"], "127.0.0.200");
    let roaming = events(&f, "security.session.detect_client_roaming", 1).await;
    assert_eq!(roaming.len(), 1, "{roaming:?}");
    assert_eq!(roaming[0]["outcome"]["result"], "ALLOW");

    // The violations report counts it, by user, app, attribute, outcome.
    let report = admin_api(&f, "/api/v1/post-auth/report").await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text());
    let report = report.json();
    assert_eq!(report["total"], 1, "{report}");
    assert_eq!(report["byUser"]["bob"], 1);
    assert_eq!(report["byApp"]["b"], 1);
    assert_eq!(report["byAttribute"]["asn"], 1);
    assert_eq!(report["byOutcome"]["monitored"], 1);
    assert_eq!(report["latest"][0]["new"]["ip"], "127.0.0.200");
    let bad = admin_api(&f, "/api/v1/post-auth/report?since=yesterday").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text());

    // The Sessions API shows where the IdP session was signed in.
    let started = events(&f, "user.session.start", 1).await;
    assert_eq!(
        started[0]["debugContext"]["debugData"]["context.asn"], "AS64500 Example Loopback Low",
        "the System Log shows where the session started"
    );
    let id = started[0]["authenticationContext"]["externalSessionId"]
        .as_str()
        .expect("the IdP session's id");
    let me = admin_api(&f, &format!("/api/v1/sessions/{id}")).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text());
    let context = &me.json()["context"];
    assert_eq!(context["ip"], "127.0.0.1", "{context}");
    assert_eq!(context["asn"]["number"], 64500);
    assert_eq!(context["zones"][0], "low");
}

#[tokio::test]
async fn enforced_reauthenticates_on_a_bound_change_and_lets_an_unbound_one_through() {
    let f = start("[post_auth]\nmode = \"enforced\"\nbind = [\"asn\", \"device\"]\n");
    let b = bob_signed_in(&f, &[B]).await;

    // Another address in the same network and zone: not bound, served.
    let same_network = b.replayed_through(client_from(&f, "127.0.0.2"));
    let reply = api_get(&same_network, &format!("{B}/page"), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());

    // The other network: an API call gets 401, a page navigation goes to
    // the IdP with ForceAuthn, and the session is over for everyone.
    let elsewhere = b.replayed_through(client_from(&f, "127.0.0.200"));
    let reply = api_get(&elsewhere, &format!("{B}/page"), None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text());
    assert_eq!(
        reply.json()["errorCode"],
        "reauthentication_required",
        "{}",
        reply.text()
    );
    assert_eq!(
        api_get(&b, &format!("{B}/page"), None).await.status,
        StatusCode::UNAUTHORIZED,
        "the session ended"
    );
    let enforce = events(&f, "policy.auth_reevaluate.enforce", 1).await;
    assert!(!enforce.is_empty());
    assert_eq!(enforce[0]["outcome"]["result"], "CHALLENGE");

    let b = bob_signed_in(&f, &[B]).await;
    let elsewhere = b.replayed_through(client_from(&f, "127.0.0.200"));
    let navigation = elsewhere.get(&format!("{B}/deep/link?q=1")).await;
    assert_eq!(
        navigation.status,
        StatusCode::SEE_OTHER,
        "{}",
        navigation.text()
    );
    assert!(
        navigation
            .location()
            .starts_with(&format!("{IDP}/sso/saml?SAMLRequest=")),
        "{}",
        navigation.location()
    );

    // A new user agent on the same address is a device change.
    let b = bob_signed_in(&f, &[B]).await;
    let reply = api_get(&b, &format!("{B}/page"), Some(CHROME_WINDOWS)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text());
    let devices = events(&f, "user.session.context.change", 4).await;
    let device = devices
        .iter()
        .find(|e| e["debugContext"]["debugData"]["attribute"] == "device")
        .expect("a device change");
    assert_eq!(
        device["debugContext"]["debugData"]["newValue"],
        "Chrome on Windows"
    );

    // The IdP session itself, replayed from the other network, ends as
    // well: its next use asks for the password, in either browser.
    let b = bob_signed_in(&f, &[B]).await;
    let thief = b.replayed_through(client_from(&f, "127.0.0.200"));
    for browser in [&thief, &b] {
        let home = browser.get(&format!("{IDP}/")).await;
        assert_eq!(home.status, StatusCode::SEE_OTHER, "{}", home.text());
        assert!(home.location().ends_with("/login"), "{}", home.location());
    }
}

#[tokio::test]
async fn the_logout_action_ends_the_impacted_apps_only_and_says_why() {
    let f = start(
        "[post_auth]\nmode = \"enforced\"\nbind = [\"ip\"]\naction = \"logout\"\n\
         logout_apps = [\"b\"]\nlogout_idp = true\n",
    );
    let b = bob_signed_in(&f, &[B, C]).await;
    let elsewhere = b.replayed_through(client_from(&f, "127.0.0.2"));
    let reply = elsewhere.get(&format!("{B}/page")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text());
    assert!(
        reply.text().contains("Signed out for your protection"),
        "{}",
        reply.text()
    );
    // c is not among the impacted apps: bob's session there goes on.
    assert_eq!(
        api_get(&b, &format!("{C}/page"), None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        api_get(&b, &format!("{B}/page"), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The IdP session ended too, with the reason in the System Log.
    let ended = events(&f, "user.session.end", 1).await;
    assert!(
        ended
            .iter()
            .any(|e| e["outcome"]["reason"] == "POST_AUTH_VIOLATION"),
        "{ended:?}"
    );
    let fresh = b.get(&format!("{IDP}/")).await;
    assert_eq!(fresh.status, StatusCode::SEE_OTHER, "{}", fresh.text());
    assert!(f
        .gw
        .wait_for_log("\"reason\":\"post_auth_violation\"", Duration::from_secs(5))
        .is_some());
}

#[tokio::test]
async fn users_outside_the_groups_impacted_are_not_evaluated() {
    let f = start("[post_auth]\nmode = \"enforced\"\ngroups = [\"admins\"]\nbind = [\"ip\"]\n");
    let b = bob_signed_in(&f, &[B]).await;
    let elsewhere = b.replayed_through(client_from(&f, "127.0.0.200"));
    let reply = api_get(&elsewhere, &format!("{B}/page"), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(events(&f, "user.session.context.change", 0)
        .await
        .is_empty());
}

/// A webhook receiver: every request's headers and body, in order.
struct Receiver {
    url: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<(http::HeaderMap, bytes::Bytes)>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        use http_body_util::BodyExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/violations", listener.local_addr().expect("addr"));
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let journal = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let journal = journal.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: http::Request<hyper::body::Incoming>| {
                            let journal = journal.clone();
                            async move {
                                let (head, body) = request.into_parts();
                                let body = body.collect().await.map(|b| b.to_bytes());
                                let body = body.unwrap_or_default();
                                journal.lock().expect("journal").push((head.headers, body));
                                http::Response::builder()
                                    .status(StatusCode::NO_CONTENT)
                                    .body(http_body_util::Empty::<bytes::Bytes>::new())
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { url, seen }
    }

    async fn wait_for(&self, count: usize) -> Vec<(http::HeaderMap, bytes::Bytes)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let seen = self.seen.lock().expect("journal").clone();
            if seen.len() >= count || Instant::now() > deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

const HOOK_SECRET: &str = "e2e-workflow-secret-of-at-least-32-bytes";

fn hmac_hex(secret: &str, message: &[u8]) -> String {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(message);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn the_workflow_action_signs_one_webhook_per_violation_without_holding_the_user() {
    let receiver = Receiver::start().await;
    let policy = format!(
        "[[zone]]\nname = \"low\"\ncidrs = [\"127.0.0.0/25\"]\n\n[post_auth]\nmode = \"enforced\"\n\
         bind = [\"asn\"]\naction = \"workflow\"\n[post_auth.workflow]\nurl = \"{}\"\n\
         secret_file = \"hook.key\"\n",
        receiver.url
    );
    let f = start_with_idp_files(
        "",
        &[
            ("policy_file", "policy.toml", &policy),
            ("asn_database", "asn.tsv", ASN_TSV),
            ("", "hook.key", HOOK_SECRET),
        ],
        &[],
    );
    let b = bob_signed_in(&f, &[B]).await;
    let elsewhere = b.replayed_through(client_from(&f, "127.0.0.200"));
    let reply = api_get(&elsewhere, &format!("{B}/page"), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());

    let seen = receiver.wait_for(1).await;
    assert_eq!(seen.len(), 1, "one delivery for one violation");
    let (headers, body) = &seen[0];
    let signature = headers["x-portcullis-signature"].to_str().expect("ascii");
    let (t, v1) = signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .expect("t=…,v1=…");
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    assert_eq!(v1, hmac_hex(HOOK_SECRET, &signed), "HMAC over t.body");
    let violation: Value = serde_json::from_slice(body).expect("JSON body");
    assert_eq!(
        headers["idempotency-key"],
        violation["id"].as_str().expect("id")
    );
    assert_eq!(violation["user"]["login"], "bob");
    assert_eq!(violation["session"]["kind"], "gateway");
    assert_eq!(violation["session"]["app"], "b");
    assert_eq!(violation["attributes"], serde_json::json!(["asn"]));
    assert_eq!(violation["old"]["asn"]["number"], 64500);
    assert_eq!(violation["new"]["asn"]["number"], 64501);
    assert_eq!(violation["policy"]["action"], "workflow");
}

#[tokio::test]
async fn a_broken_asn_database_on_reload_leaves_the_last_good_one_running() {
    let f = start("[post_auth]\nmode = \"monitoring\"\nbind = [\"asn\"]\n");
    std::fs::write(f.file("asn.tsv"), "not\ta database\n").expect("write");
    f.gw.signal("HUP");
    assert!(
        f.gw.wait_for_log("post-auth reload refused", Duration::from_secs(10))
            .is_some(),
        "the reload is refused and says so"
    );
    let b = bob_signed_in(&f, &[B]).await;
    let elsewhere = b.replayed_through(client_from(&f, "127.0.0.200"));
    let reply = api_get(&elsewhere, &format!("{B}/page"), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let changes = events(&f, "user.session.context.change", 3).await;
    let asn = changes
        .iter()
        .find(|e| e["debugContext"]["debugData"]["attribute"] == "asn")
        .expect("the old database still tells the networks apart");
    assert_eq!(
        asn["debugContext"]["debugData"]["newValue"],
        "AS64501 Example Loopback High"
    );
}

#[tokio::test]
async fn enforced_evaluates_the_session_policy_again_in_a_new_zone() {
    let f = start(
        "[[session_policy]]\nname = \"Low network only\"\npriority = 1\ngroups = [\"Everyone\"]\n\
         [[session_policy.rule]]\nname = \"Outside low\"\npriority = 1\nzones_exclude = [\"low\"]\naccess = \"DENY\"\n\
         [[session_policy.rule]]\nname = \"Inside low\"\npriority = 2\naccess = \"ALLOW\"\n\n\
         [post_auth]\nmode = \"enforced\"\nbind = [\"device\"]\n",
    );
    let b = bob_signed_in(&f, &[B]).await;
    // A new address in the same zone: the rule still allows.
    let same_zone = b.replayed_through(client_from(&f, "127.0.0.2"));
    let reply = api_get(&same_zone, &format!("{B}/page"), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    // Outside the zone the policy denies: the session ends with a 403.
    let outside = b.replayed_through(client_from(&f, "127.0.0.200"));
    let reply = api_get(&outside, &format!("{B}/page"), None).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
    assert_eq!(reply.json()["errorCode"], "access_denied");
    let failed = events(&f, "policy.auth_reevaluate.fail", 1).await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(
        failed[0]["debugContext"]["debugData"]["rule"],
        "Outside low"
    );
    assert_eq!(
        api_get(&b, &format!("{B}/page"), None).await.status,
        StatusCode::UNAUTHORIZED,
        "the session ended"
    );
}
