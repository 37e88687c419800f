//! Several upstream targets through the real binary: round-robin spreads
//! requests, a dead target is ejected after `fail_after` failures, and an
//! active health check keeps traffic off a dead target from the start.

use std::time::Duration;

use http::StatusCode;
use test_support::{Backend, Client};

use crate::process::{app, Gateway};

fn targets_app(urls: &[String], extra: &str) -> String {
    let list = urls
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>()
        .join(", ");
    app("lb", "https://app.test/", "X")
        .replace("upstream = \"X\"", &format!("upstream = [{list}]\n{extra}"))
}

#[tokio::test]
async fn round_robin_spreads_requests_over_every_target() {
    let (one, two) = (Backend::start().await, Backend::start().await);
    let gw = Gateway::start("workers = 1\n", &targets_app(&[one.url(), two.url()], ""));
    let client = Client::http1(&gw.pki, gw.https);
    for _ in 0..10 {
        assert_eq!(
            client.get("https://app.test/x").await.status,
            StatusCode::OK
        );
    }
    assert_eq!((one.requests(), two.requests()), (5, 5));
}

#[tokio::test]
async fn a_dead_target_is_ejected_after_fail_after_failures() {
    let live = Backend::start().await;
    let dead = format!("http://{}", Backend::closed_addr());
    let gw = Gateway::start(
        "workers = 1\n",
        &targets_app(
            &[dead, live.url()],
            "[app.health]\nfail_after = 2\ncooldown = \"1h\"\n",
        ),
    );
    let client = Client::http1(&gw.pki, gw.https);
    for _ in 0..20 {
        // Each GET the dead target gets is retried on the live one.
        let reply = client.get("https://app.test/x").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    assert_eq!(live.requests(), 20);
    let retries = gw
        .logs()
        .iter()
        .filter(|l| l.contains("retrying on another upstream target"))
        .count();
    assert_eq!(
        retries, 2,
        "the dead target got exactly fail_after requests"
    );
    assert!(gw
        .wait_for_log("upstream target ejected", Duration::from_secs(5))
        .is_some());
}

#[tokio::test]
async fn an_active_check_keeps_traffic_off_a_dead_target() {
    let live = Backend::start().await;
    let dead = format!("http://{}", Backend::closed_addr());
    let gw = Gateway::start(
        "workers = 1\n",
        &targets_app(
            &[dead, live.url()],
            "load_balancing = \"least_connections\"\n[app.health]\ncheck_path = \"/\"\ncheck_interval = \"100ms\"\n",
        ),
    );
    assert!(gw
        .wait_for_log("upstream health check changed", Duration::from_secs(5))
        .is_some());
    let client = Client::http1(&gw.pki, gw.https);
    for _ in 0..10 {
        assert_eq!(
            client.get("https://app.test/x").await.status,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn an_idempotent_request_that_never_left_is_retried_on_another_target() {
    let live = Backend::start().await;
    let dead = format!("http://{}", Backend::closed_addr());
    let gw = Gateway::start(
        "workers = 1\n",
        &targets_app(&[dead, live.url()], "[app.health]\nfail_after = 1000\n"),
    );
    let client = Client::http1(&gw.pki, gw.https);
    for _ in 0..6 {
        let reply = client.get("https://app.test/x").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    assert_eq!(live.requests(), 6);
    assert!(gw
        .wait_for_log(
            "retrying on another upstream target",
            Duration::from_secs(5)
        )
        .is_some());
    // A POST is not retried: the one that lands on the dead target fails.
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let reply = client
            .send(
                http::Request::post("https://app.test/x")
                    .body(Client::body(http_body_util::Full::new(
                        bytes::Bytes::from_static(b"form"),
                    )))
                    .expect("request"),
            )
            .await;
        statuses.push(reply.status);
    }
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::BAD_GATEWAY]);
}

#[tokio::test]
async fn when_one_of_two_targets_dies_requests_fail_over_to_the_other() {
    let (one, two) = (Backend::start().await, Backend::start().await);
    let gw = Gateway::start("workers = 1\n", &targets_app(&[one.url(), two.url()], ""));
    let client = Client::http1(&gw.pki, gw.https);
    for _ in 0..4 {
        assert_eq!(
            client.get("https://app.test/x").await.status,
            StatusCode::OK
        );
    }
    let before = two.requests();
    drop(one);
    // Its listener and connections are gone. A request already written to
    // the gateway's pooled connection when it broke cannot be replayed (at
    // most one here: one worker, sequential requests); every other one —
    // connection refused before any byte left — goes to the live target.
    let mut failed = 0;
    for _ in 0..10 {
        let reply = client.get("https://app.test/x").await;
        match reply.status {
            StatusCode::OK => {}
            StatusCode::BAD_GATEWAY => failed += 1,
            other => panic!("{other}: {}", reply.text()),
        }
    }
    assert!(failed <= 1, "{failed} requests failed");
    assert_eq!(two.requests() - before, 10 - failed);
    for _ in 0..5 {
        assert_eq!(
            client.get("https://app.test/x").await.status,
            StatusCode::OK
        );
    }
}
