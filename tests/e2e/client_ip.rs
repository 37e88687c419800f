//! `[server] trusted_proxies` through the real binary: a load balancer on
//! 127.0.0.2 is believed about the client behind it, a stranger on
//! 127.0.0.3 is not, and a malformed chain from the balancer leaves the
//! balancer as the client. What is checked is what operators and backends
//! see: the System Log's `client.ipAddress`, the access log's `client.ip`
//! and the `X-Forwarded-For` the backend receives.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use portcullis_idp::session::hash_token;
use serde_json::Value;
use test_support::browser::url_encode;
use test_support::{Client, Reply};

use crate::process::Gateway;

const USERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/users.toml");
const IDP: &str = "https://a.test";
const APP: &str = "https://b.test";
const TOKEN: &str = "e2e-client-ip-token-logs-read";

const BALANCER: &str = "127.0.0.2";
const STRANGER: &str = "127.0.0.3";
const BEHIND: &str = "203.0.113.7";

fn start() -> Gateway {
    let apps = format!(
        "[idp]
public_url = \"{IDP}/\"
users_file = \"{USERS}\"
system_log_file = \"system-log.jsonl\"

[[idp.api_token]]
name = \"logs\"
sha256 = \"{token}\"
scopes = [\"okta.logs.read\"]

[[app]]
name = \"b\"
public_url = \"{APP}/\"
upstream = \"builtin:echo\"
",
        token = hash_token(TOKEN),
    );
    Gateway::start(&format!("trusted_proxies = [\"{BALANCER}\"]"), &apps)
}

fn from(gw: &Gateway, source: &str) -> Client {
    let source: IpAddr = source.parse().expect("source address");
    Client::http1_from(&gw.pki, gw.https, source)
}

/// The echo app's view of a request carrying `X-Forwarded-For: chain`.
async fn echo(client: &Client, chain: &str) -> Reply {
    client
        .send(
            Request::get(format!("{APP}/whoami?format=json"))
                .header("x-forwarded-for", chain)
                .body(Client::empty())
                .expect("request"),
        )
        .await
}

/// A failed `POST /api/v1/authn` for `username`, which the IdP records in
/// the System Log with the client's address.
async fn failed_sign_in(client: &Client, chain: &str, username: &str) -> Reply {
    let body = serde_json::json!({"username": username, "password": "wrong"}).to_string();
    client
        .send(
            Request::post(format!("{IDP}/api/v1/authn"))
                .header(header::CONTENT_TYPE, "application/json")
                .header("x-forwarded-for", chain)
                .body(
                    Full::new(Bytes::from(body))
                        .map_err(|never| match never {})
                        .boxed(),
                )
                .expect("request"),
        )
        .await
}

/// The `client.ipAddress` of every System Log event about `username`,
/// once there is one (events are written off the request path).
async fn logged_ips(client: &Client, username: &str) -> Vec<String> {
    let filter = url_encode(&format!("actor.alternateId eq \"{username}\""));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = client
            .send(
                Request::get(format!("{IDP}/api/v1/logs?filter={filter}"))
                    .header(header::ACCEPT, "application/json")
                    .header(header::AUTHORIZATION, format!("SSWS {TOKEN}"))
                    .body(Client::empty())
                    .expect("request"),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let ips: Vec<String> = reply
            .json()
            .as_array()
            .expect("an array of events")
            .iter()
            .map(|event| {
                event["client"]["ipAddress"]
                    .as_str()
                    .unwrap_or("null")
                    .to_string()
            })
            .collect();
        if !ips.is_empty() {
            return ips;
        }
        assert!(
            Instant::now() < deadline,
            "no System Log event for {username}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The access log's `client.ip` for the request `reply` answered.
fn access_logged_ip(gw: &Gateway, reply: &Reply) -> String {
    let id = reply
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("x-request-id");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let event = gw.logs().iter().find_map(|line| {
            let event: Value = serde_json::from_str(line).ok()?;
            (event["target"] == "portcullis::access" && event["request.id"] == id).then_some(event)
        });
        if let Some(event) = event {
            return event["client.ip"]
                .as_str()
                .unwrap_or_else(|| panic!("no client.ip in {event}"))
                .to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no access log line for {id}: {:?}",
            gw.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn x_forwarded_for_is_believed_from_a_trusted_proxy_only() {
    let gw = start();
    let balancer = from(&gw, BALANCER);
    let stranger = from(&gw, STRANGER);

    // Behind the balancer: the client it names is the client everywhere.
    let seen = echo(&balancer, BEHIND).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.text());
    assert_eq!(
        seen.echoed("x-forwarded-for"),
        [format!("{BEHIND}, {BALANCER}")],
        "the backend gets the chain with the balancer appended"
    );
    assert_eq!(access_logged_ip(&gw, &seen), BEHIND);
    let refused = failed_sign_in(&balancer, BEHIND, "via-balancer@example.test").await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        refused.text()
    );
    assert_eq!(
        logged_ips(&balancer, "via-balancer@example.test").await,
        [BEHIND]
    );

    // The same header from anyone else is theirs to claim, not ours to believe.
    let seen = echo(&stranger, BEHIND).await;
    assert_eq!(seen.echoed("x-forwarded-for"), [STRANGER]);
    assert_eq!(access_logged_ip(&gw, &seen), STRANGER);
    failed_sign_in(&stranger, BEHIND, "stranger@example.test").await;
    assert_eq!(
        logged_ips(&balancer, "stranger@example.test").await,
        [STRANGER]
    );
}

#[tokio::test]
async fn a_malformed_x_forwarded_for_leaves_the_proxy_as_the_client() {
    let gw = start();
    let balancer = from(&gw, BALANCER);
    let chain = format!("{BEHIND}, not-an-address");

    let seen = echo(&balancer, &chain).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.text());
    assert_eq!(access_logged_ip(&gw, &seen), BALANCER);
    let refused = failed_sign_in(&balancer, &chain, "malformed@example.test").await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        refused.text()
    );
    assert_eq!(
        logged_ips(&balancer, "malformed@example.test").await,
        [BALANCER]
    );
    assert!(
        gw.wait_for_log("read only up to a bad hop", Duration::from_secs(10))
            .is_some(),
        "the bad chain is logged: {:?}",
        gw.logs()
    );
}
