use std::time::Duration;

use http::StatusCode;
use test_support::{Backend, Client};

use crate::process::{app, config_text, Gateway};

#[tokio::test]
async fn sighup_with_a_broken_file_keeps_serving_and_a_good_one_applies() {
    let backend = Backend::start().await;
    let gw = Gateway::start("", &app("a", "https://app.test/", &backend.url()));
    let client = Client::http1(&gw.pki, gw.https);
    assert_eq!(client.get("https://app.test/").await.status, StatusCode::OK);

    gw.rewrite_config("[server\nthis is not toml");
    gw.signal("HUP");
    assert!(
        gw.wait_for_log("reload refused", Duration::from_secs(10))
            .is_some(),
        "no refusal logged: {:?}",
        gw.logs()
    );
    assert_eq!(client.get("https://app.test/").await.status, StatusCode::OK);
    assert_eq!(
        client.get("https://b.test/").await.status,
        StatusCode::NOT_FOUND
    );

    let apps = [
        app("a", "https://app.test/", &backend.url()),
        app("b", "https://b.test/", "builtin:echo"),
    ]
    .concat();
    gw.rewrite_config(&config_text(&gw.pki, "", &apps));
    gw.signal("HUP");
    assert!(gw
        .wait_for_log("configuration reloaded", Duration::from_secs(10))
        .is_some());
    assert_eq!(client.get("https://b.test/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn sigterm_drains_an_in_flight_request_then_exits() {
    let backend = Backend::start().await;
    let mut gw = Gateway::start(
        "shutdown_timeout = \"10s\"",
        &app("a", "https://app.test/", &backend.url()),
    );
    let client = Client::http1(&gw.pki, gw.https);
    let slow = tokio::spawn(async move { client.get("https://app.test/slow?ms=1500").await });
    assert!(test_support::eventually(Duration::from_secs(5), || backend.requests() == 1).await);
    gw.signal("TERM");
    assert!(gw
        .wait_for_log("listeners closed", Duration::from_secs(5))
        .is_some());
    // New connections are refused while draining.
    let refused = tokio::net::TcpStream::connect(gw.https).await;
    assert!(refused.is_err(), "listener still accepting during drain");
    let reply = slow.await.expect("join");
    assert_eq!(reply.status, StatusCode::OK, "in-flight request was cut");
    assert_eq!(gw.wait_exit(Duration::from_secs(10)), Some(0));
}
