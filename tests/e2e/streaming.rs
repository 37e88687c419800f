use http::{Request, StatusCode};
use http_body_util::BodyExt;
use test_support::{Backend, Client, ZeroBody};

use crate::process::{app, Gateway};

/// Moves far more data than the bound through a separate gateway process
/// and checks its peak RSS: any whole-body buffering would blow the bound.
#[tokio::test]
async fn large_bodies_stream_with_bounded_gateway_memory() {
    const SIZE: u64 = 256 * 1024 * 1024;
    const BOUND_KIB: u64 = 96 * 1024;
    let backend = Backend::start().await;
    let gw = Gateway::start("", &app("a", "https://app.test/", &backend.url()));
    let client = Client::http1(&gw.pki, gw.https);

    let reply = client
        .send(
            Request::post("https://app.test/sink")
                .body(Client::body(ZeroBody::new(SIZE)))
                .expect("request"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["bytes"], SIZE);

    let response = client
        .send_streaming(
            Request::get(format!("https://app.test/source?bytes={SIZE}"))
                .body(Client::empty())
                .expect("request"),
        )
        .await;
    let mut body = response.into_body();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.expect("frame").data_ref() {
            total += data.len() as u64;
        }
    }
    assert_eq!(total, SIZE);
    let peak = gw.peak_rss_kib();
    assert!(
        peak < BOUND_KIB,
        "gateway peak RSS {peak} KiB for {SIZE} bytes each way"
    );
}
