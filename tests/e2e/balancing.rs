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
    let mut failures = 0;
    for _ in 0..20 {
        let reply = client.get("https://app.test/x").await;
        match reply.status {
            StatusCode::OK => {}
            StatusCode::BAD_GATEWAY => failures += 1,
            other => panic!("unexpected {other}: {}", reply.text()),
        }
    }
    assert_eq!(
        failures, 2,
        "the dead target got exactly fail_after requests"
    );
    assert_eq!(live.requests(), 18);
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
