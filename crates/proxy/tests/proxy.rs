//! Data-plane behaviour against real listeners on 127.0.0.1:0: a gateway
//! started in-process, a real backend, TLS clients.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use http::{header, Request, StatusCode, Version};
use portcullis_proxy::{LocalApp, Server};
use test_support::{Backend, Client, Pki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Harness {
    gateway: Server,
    pki: Pki,
    _dir: tempfile::TempDir,
}

/// How a test gateway differs from the plain one.
#[derive(Default)]
struct Setup<'a> {
    server_extra: &'a str,
    apps: &'a str,
    access_log: bool,
    /// An `[idp]` section is written, routed to this local service.
    idp: Option<Arc<dyn LocalApp>>,
}

impl Harness {
    /// Starts a gateway with the given `[[app]]` tables and extra `[server]` keys.
    async fn start(server_extra: &str, apps: &str) -> Harness {
        Harness::start_with(Setup {
            server_extra,
            apps,
            ..Setup::default()
        })
        .await
    }

    async fn start_with(setup: Setup<'_>) -> Harness {
        let pki = Pki::new();
        let dir = tempfile::tempdir().expect("dir");
        let idp = match setup.idp {
            Some(_) => {
                let users = dir.path().join("users.toml");
                std::fs::write(&users, "").expect("write users");
                format!(
                    "[idp]\npublic_url = \"https://c.test/\"\nusers_file = \"{}\"\n",
                    users.display()
                )
            }
            None => String::new(),
        };
        let text = format!(
            r#"
[server]
https = ["127.0.0.1:0"]
http = ["127.0.0.1:0"]
tls_cert = "{cert}"
tls_key = "{key}"
{server_extra}

[admin]
listen = "127.0.0.1:0"

[log]
access_log = {access_log}

{idp}
{apps}
"#,
            cert = pki.cert_path().display(),
            key = pki.key_path().display(),
            server_extra = setup.server_extra,
            access_log = setup.access_log,
            apps = setup.apps,
        );
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, &text).expect("write config");
        let config = portcullis_config::load(&path, &portcullis_config::NoMetadata)
            .unwrap_or_else(|p| panic!("{p}"));
        let services = portcullis_proxy::Services {
            idp: setup.idp,
            auth: None,
            store_ready: None,
        };
        let gateway = Server::start(&config, services)
            .await
            .expect("start gateway");
        Harness {
            gateway,
            pki,
            _dir: dir,
        }
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.gateway.addrs().https[0]
    }

    fn h1(&self) -> Client {
        Client::http1(&self.pki, self.addr())
    }

    fn h2(&self) -> Client {
        Client::http2(&self.pki, self.addr())
    }
}

fn app(name: &str, public_url: &str, upstream: &str) -> String {
    format!(
        "[[app]]\nname = \"{name}\"\npublic_url = \"{public_url}\"\nupstream = \"{upstream}\"\n"
    )
}

#[tokio::test]
async fn serves_http1_and_http2_over_tls() {
    let backend = Backend::start().await;
    let gw = Harness::start("", &app("a", "https://app.test/", &backend.url())).await;

    let reply = gw.h1().get("https://app.test/hello?x=1").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.version, Version::HTTP_11);
    assert_eq!(reply.json()["path"], "/hello");
    assert_eq!(reply.json()["query"], "x=1");
    assert_eq!(reply.echoed("host"), vec!["app.test"]);

    let reply = gw.h2().get("https://app.test/over-h2").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.version, Version::HTTP_2);
    assert_eq!(reply.json()["path"], "/over-h2");
    assert_eq!(
        reply.echoed("host"),
        vec!["app.test"],
        "h2 :authority becomes Host upstream"
    );
    assert_eq!(reply.headers["x-request-id"].len(), 32);
}

#[tokio::test]
async fn longest_prefix_wins_and_prefix_maps_to_upstream_base() {
    let root = Backend::start().await;
    let wiki = Backend::start().await;
    let apps = [
        app("root", "https://app.test/", &root.url()),
        app(
            "wiki",
            "https://app.test/wiki",
            &format!("{}/legacy/wiki", wiki.url()),
        ),
        app("other-host", "https://b.test/", &root.url()),
    ]
    .concat();
    let gw = Harness::start("", &apps).await;
    let client = gw.h1();

    let reply = client.get("https://app.test/wiki/Page?rev=2").await;
    assert_eq!(reply.json()["path"], "/legacy/wiki/Page");
    assert_eq!(reply.json()["query"], "rev=2");
    assert_eq!(wiki.requests(), 1);

    let reply = client.get("https://app.test/wikipedia").await;
    assert_eq!(
        reply.json()["path"],
        "/wikipedia",
        "a prefix matches whole segments only"
    );
    assert_eq!(wiki.requests(), 1);

    let reply = client.get("https://app.test/wiki").await;
    assert_eq!(reply.json()["path"], "/legacy/wiki/");

    let reply = client.get("https://b.test/x").await;
    assert_eq!(reply.status, StatusCode::OK);

    let reply = client.get("https://c.test/").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.text().contains("No application is published"));
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways() {
    let backend = Backend::start().await;
    let gw = Harness::start("", &app("a", "https://app.test/", &backend.url())).await;
    let request = Request::get("https://app.test/hop")
        .header(header::CONNECTION, "keep-alive, x-client-hop")
        .header("x-client-hop", "secret")
        .header("keep-alive", "timeout=30")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("x-forwarded-for", "203.0.113.66")
        .header("x-end-to-end", "kept")
        .body(Client::empty())
        .expect("request");
    let reply = gw.h1().send(request).await;
    assert_eq!(reply.status, StatusCode::OK);
    for gone in ["x-client-hop", "keep-alive", "proxy-authorization"] {
        assert!(reply.echoed(gone).is_empty(), "{gone} reached the backend");
    }
    assert_eq!(reply.echoed("x-end-to-end"), vec!["kept"]);
    assert_eq!(
        reply.echoed("x-forwarded-for"),
        vec!["127.0.0.1"],
        "client XFF is replaced"
    );
    assert_eq!(reply.echoed("x-forwarded-proto"), vec!["https"]);
    assert_eq!(
        reply.echoed("forwarded"),
        vec!["for=127.0.0.1;proto=https;host=\"app.test\""]
    );
    assert!(!reply.headers.contains_key("x-backend-hop"));
    assert!(!reply.headers.contains_key("keep-alive"));
    assert_eq!(reply.headers["x-backend-end-to-end"], "kept");
}

#[tokio::test]
async fn upstream_down_is_502_and_slow_is_504() {
    let closed = Backend::closed_addr();
    let slow = Backend::start().await;
    let apps = [
        app("down", "https://a.test/", &format!("http://{closed}")),
        app("slow", "https://b.test/", &slow.url()),
    ]
    .concat();
    let gw = Harness::start(
        "upstream_connect_timeout = \"500ms\"\nupstream_response_timeout = \"700ms\"",
        &apps,
    )
    .await;
    let client = gw.h1();

    let started = Instant::now();
    let reply = client.get("https://a.test/").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "502 took {:?}",
        started.elapsed()
    );
    assert!(reply.text().contains("could not reach the application"));
    let id = reply.headers["x-request-id"]
        .to_str()
        .expect("id")
        .to_string();
    assert!(reply.text().contains(&id), "the page shows the request id");

    let json = client
        .send(
            Request::get("https://a.test/api")
                .header(header::ACCEPT, "application/json")
                .body(Client::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(json.status, StatusCode::BAD_GATEWAY);
    assert_eq!(json.json()["errorCode"], "upstream_unavailable");

    let reply = client.get("https://b.test/slow?ms=3000").await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);

    let metrics = reqwest_metrics(&gw).await;
    assert!(
        metrics.contains("portcullis_upstream_errors_total{app=\"down\",kind=\"connect\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_upstream_errors_total{app=\"slow\",kind=\"timeout\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_http_requests_total{app=\"slow\",code=\"504\"} 1"),
        "{metrics}"
    );
}

/// Reads `/metrics` from the management listener over plain HTTP.
async fn reqwest_metrics(gw: &Harness) -> String {
    let admin = gw.gateway.addrs().admin.expect("admin listener");
    let mut stream = tokio::net::TcpStream::connect(admin)
        .await
        .expect("connect admin");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = String::new();
    stream.read_to_string(&mut out).await.expect("read");
    out
}

#[tokio::test]
async fn slowloris_client_is_cut_off() {
    let backend = Backend::start().await;
    let gw = Harness::start(
        "header_read_timeout = \"600ms\"\nidle_timeout = \"5s\"",
        &app("a", "https://app.test/", &backend.url()),
    )
    .await;
    let client = gw.h1();

    // Completes TLS, then dribbles a request head that never ends.
    let mut tls = client.raw_tls("app.test").await;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Slow: ")
        .await
        .expect("write");
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "connection still open after 5 s");
    assert!(started.elapsed() >= Duration::from_millis(400));

    // Never even starts TLS.
    let mut tcp = tokio::net::TcpStream::connect(gw.addr())
        .await
        .expect("connect");
    let closed = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "silent TCP client not cut off"
    );
    assert_eq!(backend.requests(), 0);
}

#[tokio::test]
async fn websocket_is_tunnelled() {
    let backend = Backend::start().await;
    let gw = Harness::start("", &app("a", "https://app.test/", &backend.url())).await;
    let tls = gw.h1().raw_tls("app.test").await;
    let (mut ws, response) = tokio_tungstenite::client_async("wss://app.test/ws", tls)
        .await
        .expect("websocket handshake through the gateway");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    for text in ["hello", "through the gateway"] {
        ws.send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .expect("send");
        let echoed = ws.next().await.expect("message").expect("frame");
        assert_eq!(echoed.into_text().expect("text").as_str(), text);
    }
    ws.close(None).await.expect("close");
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    const SIZE: u64 = 64 * 1024 * 1024;
    let backend = Backend::start().await;
    let gw = Harness::start("", &app("a", "https://app.test/", &backend.url())).await;
    for client in [gw.h1(), gw.h2()] {
        let upload = Request::post("https://app.test/sink")
            .body(Client::body(test_support::ZeroBody::new(SIZE)))
            .expect("request");
        let reply = client.send(upload).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json()["bytes"], SIZE);

        let response = client
            .send_streaming(
                Request::get(format!("https://app.test/source?bytes={SIZE}"))
                    .body(Client::empty())
                    .expect("request"),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        let mut total = 0u64;
        use http_body_util::BodyExt;
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame.expect("frame").data_ref() {
                total += data.len() as u64;
            }
        }
        assert_eq!(total, SIZE);
    }
}

#[tokio::test]
async fn plain_http_redirects_only_known_hosts() {
    let gw = Harness::start("", &app("a", "https://app.test/", "builtin:echo")).await;
    let http = gw.gateway.addrs().http[0];
    let port = gw.addr().port();
    let ask = |host: &'static str| async move {
        let mut stream = tokio::net::TcpStream::connect(http).await.expect("connect");
        let request =
            format!("GET /deep/path?q=1 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut out = String::new();
        stream.read_to_string(&mut out).await.expect("read");
        out
    };
    let known = ask("app.test").await;
    assert!(known.starts_with("HTTP/1.1 308"), "{known}");
    assert!(
        known.contains(&format!("location: https://app.test:{port}/deep/path?q=1")),
        "{known}"
    );
    let unknown = ask("evil.example").await;
    assert!(unknown.starts_with("HTTP/1.1 404"), "{unknown}");
}

#[tokio::test]
async fn builtin_echo_and_management_endpoints() {
    let gw = Harness::start("", &app("demo", "https://app.test/", "builtin:echo")).await;
    let reply = gw
        .h2()
        .send(
            Request::get("https://app.test/?format=json")
                .header(header::COOKIE, "a=1; b=2")
                .body(Client::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["cookies"]["b"], "2");
    assert_eq!(reply.echoed("x-forwarded-proto"), vec!["https"]);
    let html = gw.h1().get("https://app.test/page").await;
    assert!(html.text().contains("What the backend received"));

    let metrics = reqwest_metrics(&gw).await;
    assert!(
        metrics.contains("portcullis_http_requests_total{app=\"demo\",code=\"200\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("portcullis_open_connections"), "{metrics}");
}

#[tokio::test]
async fn reload_swaps_routes_and_graceful_shutdown_drains() {
    let backend = Backend::start().await;
    let gw = Harness::start("", &app("a", "https://app.test/", &backend.url())).await;
    let client = gw.h1();
    assert_eq!(
        client.get("https://b.test/").await.status,
        StatusCode::NOT_FOUND
    );

    let dir = tempfile::tempdir().expect("dir");
    let text = format!(
        "[server]\nhttps = [\"127.0.0.1:0\"]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n{}{}",
        gw.pki.cert_path().display(),
        gw.pki.key_path().display(),
        app("a", "https://app.test/", &backend.url()),
        app("b", "https://b.test/", "builtin:echo"),
    );
    let path = dir.path().join("new.toml");
    std::fs::write(&path, text).expect("write");
    let config = portcullis_config::load(&path, &portcullis_config::NoMetadata)
        .unwrap_or_else(|p| panic!("{p}"));
    gw.gateway.reload(&config).expect("reload");
    assert_eq!(client.get("https://b.test/").await.status, StatusCode::OK);

    // An in-flight slow request finishes during the drain.
    let slow_client = gw.h1();
    let slow = tokio::spawn(async move { slow_client.get("https://app.test/slow?ms=800").await });
    assert!(test_support::eventually(Duration::from_secs(2), || backend.requests() >= 1).await);
    let drained = gw.gateway.shutdown(Duration::from_secs(5)).await;
    let reply = slow.await.expect("join");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(drained.abandoned, 0);
}

#[tokio::test]
async fn https_upstream_with_private_ca_and_sni() {
    let upstream_pki = Pki::new();
    let backend = Backend::start_tls(&upstream_pki).await;
    let port = backend.addr.port();
    let apps = format!(
        "{}upstream_ca = \"{ca}\"\nupstream_sni = \"localhost\"\n{}",
        app(
            "trusted",
            "https://a.test/",
            &format!("https://127.0.0.1:{port}/base")
        ),
        // Without the private CA the backend's certificate is not trusted.
        app(
            "untrusted",
            "https://b.test/",
            &format!("https://localhost:{port}/")
        ),
        ca = upstream_pki.ca_path().display(),
    );
    let gw = Harness::start("", &apps).await;
    let client = gw.h1();
    let reply = client.get("https://a.test/x").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["path"], "/base/x");
    assert_eq!(backend.requests(), 1);
    let reply = client.get("https://b.test/x").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(backend.requests(), 1, "an untrusted upstream got a request");
}

#[tokio::test]
async fn oversized_request_head_is_refused_with_431() {
    let backend = Backend::start().await;
    let gw = Harness::start(
        "max_header_bytes = 8192",
        &app("a", "https://app.test/", &backend.url()),
    )
    .await;
    let mut tls = gw.h1().raw_tls("app.test").await;
    let huge = "x".repeat(12 * 1024);
    let request = format!("GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: {huge}\r\n\r\n");
    tls.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    assert_eq!(backend.requests(), 0);
}

#[tokio::test]
async fn idle_http2_connection_is_closed() {
    let gw = Harness::start(
        "header_read_timeout = \"300ms\"\nidle_timeout = \"400ms\"",
        &app("a", "https://app.test/", "builtin:echo"),
    )
    .await;
    let tls = gw.h1().raw_tls_alpn("app.test", b"h2").await;
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .expect("h2 handshake");
    let connection = tokio::spawn(connection);
    let request = Request::get("https://app.test/")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    drop(response);
    // Idle from here: the gateway closes the connection within two periods.
    let closed = tokio::time::timeout(Duration::from_secs(3), connection).await;
    assert!(
        closed.is_ok(),
        "idle HTTP/2 connection still open after 3 s"
    );
}

/// The patched h2 and rustls (vendor/README.md) give a connection's buffers
/// back whenever it has nothing pending and size them again when it wakes.
/// One HTTP/2 connection that goes idle between exchanges must still carry
/// each of them whole: headers the client's HPACK encoder indexed (decoded
/// from the gateway's dynamic table from the second round on), an upload and
/// a download larger than any buffer, and concurrent streams.
#[tokio::test]
async fn one_http2_connection_carries_every_exchange_across_idle_gaps() {
    use http_body_util::{BodyExt, Full};

    let backend = Backend::start().await;
    let gw = Harness::start("", &app("a", "https://app.test/", &backend.url())).await;
    let tls = gw.h1().raw_tls_alpn("app.test", b"h2").await;
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .expect("h2 handshake");
    let connection = tokio::spawn(connection);

    let custom: Vec<(String, String)> = (0..24)
        .map(|i| {
            (
                format!("x-test-{i}"),
                format!("value {i} {}", "abcxyz".repeat(24)),
            )
        })
        .collect();
    let send = |request: Request<Full<bytes::Bytes>>| {
        let mut sender = sender.clone();
        async move {
            let exchange = async {
                let response = sender.send_request(request).await.expect("response");
                let status = response.status();
                let body = response.into_body().collect().await.expect("body");
                (status, body.to_bytes())
            };
            // A buffer that is never sized again stalls the connection.
            tokio::time::timeout(Duration::from_secs(30), exchange)
                .await
                .expect("exchange finished within 30 s")
        }
    };

    for round in 0..3 {
        let mut request = Request::get("https://app.test/echo");
        for (name, value) in &custom {
            request = request.header(name, value);
        }
        let (status, body) = send(request.body(Full::default()).expect("request")).await;
        assert_eq!(status, StatusCode::OK, "round {round}");
        let echoed: serde_json::Value = serde_json::from_slice(&body).expect("echo json");
        for (name, value) in &custom {
            assert_eq!(
                echoed["headers"][name.as_str()],
                serde_json::json!([value]),
                "round {round}: {name}"
            );
        }

        let upload = bytes::Bytes::from(vec![7u8; 3 << 20]);
        let (status, body) = send(
            Request::post("https://app.test/sink")
                .body(Full::new(upload))
                .expect("request"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "round {round}");
        let sunk: serde_json::Value = serde_json::from_slice(&body).expect("sink json");
        assert_eq!(sunk["bytes"], 3 << 20, "round {round}");

        let (status, body) = send(
            Request::get("https://app.test/source?bytes=5000000")
                .body(Full::default())
                .expect("request"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "round {round}");
        assert_eq!(body.len(), 5_000_000, "round {round}");
    }

    let concurrent = (0..16).map(|i| {
        send(
            Request::get(format!("https://app.test/together/{i}"))
                .header("x-test-0", &custom[0].1)
                .body(Full::default())
                .expect("request"),
        )
    });
    for (i, (status, body)) in futures_util::future::join_all(concurrent)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(status, StatusCode::OK);
        let echoed: serde_json::Value = serde_json::from_slice(&body).expect("echo json");
        assert_eq!(echoed["path"], format!("/together/{i}"));
        assert_eq!(
            echoed["headers"]["x-test-0"],
            serde_json::json!([custom[0].1])
        );
    }
    assert!(
        !connection.is_finished(),
        "the connection stayed open throughout"
    );
}

/// A bare HTTP/1.1 backend that counts the connections it accepts. Each
/// request gets a fixed answer chosen by its path: a `Content-Length` body,
/// a chunked body, or a 204.
async fn counting_backend() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    let n = match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end + 4);
                        let head_only = head.starts_with("HEAD ");
                        let reply: &[u8] = if head.contains(" /chunked ") {
                            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
                        } else if head.contains(" /empty ") {
                            b"HTTP/1.1 204 No Content\r\n\r\n"
                        } else if head_only {
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"
                        } else {
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                        };
                        if stream.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let (addr, accepted) = counting_backend().await;
    let gw = Harness::start(
        "workers = 1",
        &app("a", "https://app.test/", &format!("http://{addr}")),
    )
    .await;
    let client = gw.h1();
    for _ in 0..3 {
        for path in ["/len", "/chunked", "/empty"] {
            let reply = client.get(&format!("https://app.test{path}")).await;
            assert!(reply.status.is_success(), "{path}: {}", reply.status);
            if path != "/empty" {
                assert_eq!(reply.text(), "ok", "{path}");
            }
        }
        let head = client
            .send(
                Request::head("https://app.test/len")
                    .body(Client::empty())
                    .expect("request"),
            )
            .await;
        assert_eq!(head.status, StatusCode::OK);
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "sequential requests share one upstream connection"
    );
}

// ---- Connection clocks, limits and budgets ---------------------------------

/// GETs `path` from the management listener over plain HTTP/1.1: status
/// line and body.
async fn admin_get(gw: &Harness, path: &str) -> String {
    let admin = gw.gateway.addrs().admin.expect("admin listener");
    let mut stream = tokio::net::TcpStream::connect(admin)
        .await
        .expect("connect admin");
    let request = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut out = String::new();
    stream.read_to_string(&mut out).await.expect("read");
    out
}

/// Waits until `stream` is closed by the gateway (end of file, TLS
/// close_notify or a reset), at most `within`; returns how long that took,
/// or `None` when it was still open. Whatever the gateway sends is read.
async fn closed_within<R: tokio::io::AsyncRead + Unpin>(
    stream: &mut R,
    within: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .ok()
    .map(|()| started.elapsed())
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const H2_HEADERS: u8 = 0x1;
const H2_SETTINGS: u8 = 0x4;
const H2_PING: u8 = 0x6;
const H2_END_STREAM: u8 = 0x1;
const H2_END_HEADERS: u8 = 0x4;

fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("short payload");
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// HPACK for `GET https://app.test/`: indexed :method GET, :scheme https,
/// :path /, and :authority as a literal.
fn h2_get_block() -> Vec<u8> {
    let mut block = vec![0x82, 0x87, 0x84, 0x41, 8];
    block.extend_from_slice(b"app.test");
    block
}

/// Reads frames until the gateway sends HEADERS on `stream` (a response).
async fn h2_await_response<R: tokio::io::AsyncRead + Unpin>(reader: &mut R, stream: u32) {
    let wait = async {
        loop {
            let mut head = [0u8; 9];
            reader.read_exact(&mut head).await.expect("frame header");
            let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let mut payload = vec![0u8; len];
            reader
                .read_exact(&mut payload)
                .await
                .expect("frame payload");
            let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            if head[3] == H2_HEADERS && id == stream {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .expect("no response on the stream");
}

/// Writes `frame`'s bytes one at a time, every `pace`, until the connection
/// breaks or `bytes` are out; runs on its own so the test can watch the
/// other direction.
fn trickle<W: tokio::io::AsyncWrite + Unpin + Send + 'static>(
    mut writer: W,
    bytes: Vec<u8>,
    pace: Duration,
) -> tokio::task::JoinHandle<W> {
    tokio::spawn(async move {
        for byte in bytes {
            if writer.write_all(&[byte]).await.is_err() || writer.flush().await.is_err() {
                break;
            }
            tokio::time::sleep(pace).await;
        }
        writer
    })
}

#[tokio::test]
async fn http1_keep_alive_outlives_header_read_and_closes_at_idle() {
    let gw = Harness::start(
        "header_read_timeout = \"300ms\"\nidle_timeout = \"2s\"",
        &app("a", "https://app.test/", "builtin:echo"),
    )
    .await;
    let tls = gw.h1().raw_tls("app.test").await;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .expect("h1 handshake");
    let mut connection = tokio::spawn(connection);
    let get = || {
        Request::get("/")
            .header(header::HOST, "app.test")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("request")
    };
    use http_body_util::BodyExt;
    let response = sender.send_request(get()).await.expect("first response");
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body().collect().await.expect("body");

    // Idle for more than three header_read periods: still open.
    let early = tokio::time::timeout(Duration::from_secs(1), &mut connection).await;
    assert!(
        early.is_err(),
        "idle keep-alive connection closed at header_read_timeout"
    );
    let response = sender.send_request(get()).await.expect("second response");
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body().collect().await.expect("body");
    let idle_from = Instant::now();

    // Then closed by the idle clock: between one and two idle periods.
    let closed = tokio::time::timeout(Duration::from_secs(6), &mut connection).await;
    assert!(closed.is_ok(), "idle connection still open after 6 s");
    let idle = idle_from.elapsed();
    assert!(idle >= Duration::from_millis(1900), "closed after {idle:?}");
}

/// An idle keep-alive connection leaves hyper between requests (about a
/// second after it goes idle); whatever the client sends next is still
/// read whole: a head split across writes after a pause, a pipelined head
/// that arrived with the previous request, and a request after a pause.
#[tokio::test]
async fn an_idle_http1_connection_reads_every_next_request_whole() {
    let gw = Harness::start(
        "header_read_timeout = \"5s\"\nidle_timeout = \"10s\"",
        &app("a", "https://app.test/", "builtin:echo"),
    )
    .await;
    let mut tls = gw.h1().raw_tls("app.test").await;
    let get = "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n";
    let pause = || tokio::time::sleep(Duration::from_millis(1500));
    tls.write_all(get.as_bytes()).await.expect("first");
    pause().await;
    // The second head's first bytes come with nothing else.
    tls.write_all(b"GET / HTTP/1.1\r\nHo")
        .await
        .expect("second, start");
    pause().await;
    // Its end, with the start of a third in the same write.
    tls.write_all(b"st: app.test\r\n\r\nGET / HT")
        .await
        .expect("second, end");
    pause().await;
    tls.write_all(b"TP/1.1\r\nHost: app.test\r\n\r\n")
        .await
        .expect("third, end");
    pause().await;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
        .await
        .expect("last");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out))
        .await
        .expect("the connection closes after the last request")
        .expect("read");
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 4, "{text}");
}

#[tokio::test]
async fn http2_header_trickle_is_cut_at_header_read() {
    let gw = Harness::start(
        "header_read_timeout = \"500ms\"\nidle_timeout = \"20s\"",
        &app("a", "https://app.test/", "builtin:echo"),
    )
    .await;
    let tls = gw.h1().raw_tls_alpn("app.test", b"h2").await;
    let (mut reader, mut writer) = tokio::io::split(tls);
    let mut start = H2_PREFACE.to_vec();
    start.extend(h2_frame(H2_SETTINGS, 0, 0, &[]));
    // A first request completes normally.
    start.extend(h2_frame(
        H2_HEADERS,
        H2_END_HEADERS | H2_END_STREAM,
        1,
        &h2_get_block(),
    ));
    writer.write_all(&start).await.expect("write");
    h2_await_response(&mut reader, 1).await;

    // The next head trickles: a HEADERS frame of 200 bytes, one byte every
    // 40 ms (8 s in all), PINGs and all bytes moving.
    let slow = h2_frame(H2_HEADERS, H2_END_STREAM, 3, &[0x82; 200]);
    let trickling = trickle(writer, slow, Duration::from_millis(40));
    let closed = closed_within(&mut reader, Duration::from_secs(6)).await;
    trickling.abort();
    let after = closed.expect("trickling HTTP/2 head still open after 6 s");
    assert!(
        after >= Duration::from_millis(400) && after < Duration::from_secs(3),
        "closed after {after:?}, header_read_timeout is 500ms"
    );
    let metrics = admin_get(&gw, "/metrics").await;
    assert!(
        metrics.contains("portcullis_header_timeouts_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn http2_connection_without_a_complete_head_is_cut_at_header_read() {
    let gw = Harness::start(
        "header_read_timeout = \"500ms\"\nidle_timeout = \"20s\"",
        &app("a", "https://app.test/", "builtin:echo"),
    )
    .await;
    let tls = gw.h1().raw_tls_alpn("app.test", b"h2").await;
    let opened = Instant::now();
    let (mut reader, mut writer) = tokio::io::split(tls);
    let mut start = H2_PREFACE.to_vec();
    start.extend(h2_frame(H2_SETTINGS, 0, 0, &[]));
    writer.write_all(&start).await.expect("write");
    // Then only PINGs, never a request.
    let pings = tokio::spawn(async move {
        for _ in 0..200 {
            let ping = h2_frame(H2_PING, 0, 0, &[7; 8]);
            if writer.write_all(&ping).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    });
    let closed = closed_within(&mut reader, Duration::from_secs(6)).await;
    pings.abort();
    assert!(
        closed.is_some(),
        "HTTP/2 connection without a request still open after 6 s"
    );
    let after = opened.elapsed();
    assert!(after < Duration::from_secs(3), "closed after {after:?}");
}

#[tokio::test]
async fn http2_pings_do_not_keep_an_idle_connection_open() {
    let gw = Harness::start(
        "header_read_timeout = \"300ms\"\nidle_timeout = \"800ms\"",
        &app("a", "https://app.test/", "builtin:echo"),
    )
    .await;
    let tls = gw.h1().raw_tls_alpn("app.test", b"h2").await;
    let (mut reader, mut writer) = tokio::io::split(tls);
    let mut start = H2_PREFACE.to_vec();
    start.extend(h2_frame(H2_SETTINGS, 0, 0, &[]));
    start.extend(h2_frame(
        H2_HEADERS,
        H2_END_HEADERS | H2_END_STREAM,
        1,
        &h2_get_block(),
    ));
    writer.write_all(&start).await.expect("write");
    h2_await_response(&mut reader, 1).await;
    let pings = tokio::spawn(async move {
        for _ in 0..200 {
            let ping = h2_frame(H2_PING, 0, 0, &[7; 8]);
            if writer.write_all(&ping).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    });
    let closed = closed_within(&mut reader, Duration::from_secs(5)).await;
    pings.abort();
    let after = closed.expect("PINGs kept an idle HTTP/2 connection open");
    assert!(
        after >= Duration::from_millis(700),
        "closed after {after:?}"
    );
}

#[tokio::test]
async fn header_limits_are_the_same_on_http1_and_http2() {
    let gw = Harness::start(
        "max_headers = 40",
        &app("a", "https://app.test/", "builtin:echo"),
    )
    .await;
    let with_headers = |count: usize, value: &str| {
        let mut builder = Request::get("https://app.test/");
        for i in 0..count {
            builder = builder.header(format!("x-h-{i}"), value);
        }
        builder.body(Client::empty()).expect("request")
    };
    for (client, version) in [(gw.h1(), "h1"), (gw.h2(), "h2")] {
        assert_eq!(
            client.send(with_headers(30, "v")).await.status,
            StatusCode::OK,
            "{version}"
        );
        assert_eq!(
            client.send(with_headers(45, "v")).await.status,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "{version}: 45 headers over max_headers = 40"
        );
        // 20 headers of 1 KiB are under the count but over 16 KiB.
        let kib = "k".repeat(1024);
        assert_eq!(
            client.send(with_headers(20, &kib)).await.status,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "{version}: over max_header_bytes"
        );
        assert_eq!(
            client.send(with_headers(12, &kib)).await.status,
            StatusCode::OK,
            "{version}: 12 KiB of headers"
        );
    }

    // The default count is 100 on both protocols.
    let gw = Harness::start("", &app("a", "https://app.test/", "builtin:echo")).await;
    for (client, version) in [(gw.h1(), "h1"), (gw.h2(), "h2")] {
        assert_eq!(
            client.send(with_headers(95, "v")).await.status,
            StatusCode::OK,
            "{version}"
        );
        assert_eq!(
            client.send(with_headers(200, "v")).await.status,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "{version}"
        );
    }
}

/// A local service (where the gateway itself answers 413 over 64 KiB).
struct Local;

impl LocalApp for Local {
    fn call(
        &self,
        _: Request<bytes::Bytes>,
        _: portcullis_proxy::LocalMeta,
    ) -> portcullis_proxy::LocalFuture {
        Box::pin(async { http::Response::new(bytes::Bytes::from_static(b"local")) })
    }
}

#[tokio::test]
async fn a_413_reaches_an_http1_client_that_is_still_uploading() {
    let gw = Harness::start_with(Setup {
        idp: Some(Arc::new(Local)),
        ..Setup::default()
    })
    .await;
    // Like curl without Expect: the whole body is written, then the answer
    // read. The gateway answers after 64 KiB; the rest must not make its
    // kernel reset the connection under the answer.
    for attempt in 0..3 {
        let mut tls = gw.h1().raw_tls("c.test").await;
        const BODY: usize = 8 * 1024 * 1024;
        let head =
            format!("POST /login HTTP/1.1\r\nHost: c.test\r\nContent-Length: {BODY}\r\n\r\n");
        tls.write_all(head.as_bytes()).await.expect("head");
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..BODY / chunk.len() {
            if tls.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = tls.flush().await;
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out)).await;
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("HTTP/1.1 413"),
            "attempt {attempt}: {read:?} {text}"
        );
    }
}

#[tokio::test]
async fn a_431_reaches_an_http1_client_that_sends_more() {
    let backend = Backend::start().await;
    let gw = Harness::start(
        "max_header_bytes = 8192",
        &app("a", "https://app.test/", &backend.url()),
    )
    .await;
    let mut tls = gw.h1().raw_tls("app.test").await;
    let huge = "x".repeat(12 * 1024);
    let request = format!(
        "POST / HTTP/1.1\r\nHost: app.test\r\nX-Big: {huge}\r\nContent-Length: 4194304\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await.expect("write");
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..64 {
        if tls.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    assert_eq!(backend.requests(), 0);
}

#[tokio::test]
async fn connections_over_max_connections_are_shed_and_admin_stays_reachable() {
    let gw = Harness::start(
        "max_connections = 3",
        &app("a", "https://app.test/", "builtin:echo"),
    )
    .await;
    let log = captured_logs();
    // Three clients that hold their connections (they have not even begun TLS).
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            tokio::net::TcpStream::connect(gw.addr())
                .await
                .expect("connect"),
        );
    }
    let mut open = String::new();
    for _ in 0..100 {
        open = admin_get(&gw, "/metrics").await;
        if open.contains("portcullis_open_connections 3") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(open.contains("portcullis_open_connections 3"), "{open}");
    assert!(open.contains("portcullis_connection_limit 3"), "{open}");

    // Every further one is closed at once, and the management listener
    // still answers.
    for _ in 0..5 {
        let mut extra = tokio::net::TcpStream::connect(gw.addr())
            .await
            .expect("connect");
        let closed = closed_within(&mut extra, Duration::from_secs(2)).await;
        assert!(closed.is_some(), "a connection over the budget was kept");
    }
    assert!(admin_get(&gw, "/healthz").await.starts_with("HTTP/1.1 200"));
    let metrics = admin_get(&gw, "/metrics").await;
    assert!(
        metrics.contains("portcullis_connections_shed_total{listener=\"public\"} 5"),
        "{metrics}"
    );
    // Logged once, not once per connection.
    let lines = log.lines_with("connection limit reached");
    assert_eq!(lines.len(), 1, "{lines:?}");

    // Once one leaves, a new client is served again.
    drop(held.pop());
    let mut served = false;
    for _ in 0..100 {
        if admin_get(&gw, "/metrics")
            .await
            .contains("portcullis_open_connections 2")
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "the released slot was not freed");
    assert_eq!(
        gw.h1().get("https://app.test/").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_management_listener_has_a_budget_of_its_own() {
    let gw = Harness::start(
        "max_connections = 1",
        &app("a", "https://app.test/", "builtin:echo"),
    )
    .await;
    let admin = gw.gateway.addrs().admin.expect("admin listener");
    // While a scrape may itself be shed, it answers `None`.
    let get = |path: &'static str| async move {
        let mut stream = tokio::net::TcpStream::connect(admin).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut out = String::new();
        stream.read_to_string(&mut out).await.ok()?;
        out.starts_with("HTTP/1.1 200").then_some(out)
    };
    // The public budget is full; the management listener answers.
    let _public = tokio::net::TcpStream::connect(gw.addr())
        .await
        .expect("connect");
    assert!(get("/healthz").await.is_some());
    // It takes 32 connections of its own, and closes one more at once.
    // Which one is the workers' race (two accept loops share the count);
    // that one of the 33 is closed is not.
    let mut held = Vec::new();
    for _ in 0..33 {
        held.push(
            tokio::net::TcpStream::connect(admin)
                .await
                .expect("connect admin"),
        );
    }
    let closed = futures_util::future::select_all(
        held.iter_mut()
            .map(|stream| Box::pin(closed_within(stream, Duration::from_secs(2)))),
    )
    .await
    .0;
    assert!(
        closed.is_some(),
        "a connection over the admin budget was kept"
    );
    drop(held);
    let mut metrics = None;
    for _ in 0..100 {
        metrics = get("/metrics").await;
        if metrics.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = metrics.expect("the admin listener did not come back");
    let shed: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("portcullis_connections_shed_total{listener=\"admin\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(shed >= 1, "{metrics}");
}

#[tokio::test]
async fn readyz_answers_503_through_a_drain_and_admin_survives_it() {
    let backend = Backend::start().await;
    let gw = Harness::start("", &app("a", "https://app.test/", &backend.url())).await;
    assert!(admin_get(&gw, "/readyz").await.starts_with("HTTP/1.1 200"));
    let slow_client = gw.h1();
    let slow = tokio::spawn(async move { slow_client.get("https://app.test/slow?ms=800").await });
    assert!(test_support::eventually(Duration::from_secs(2), || backend.requests() >= 1).await);
    let drained = gw.gateway.shutdown(Duration::from_secs(5)).await;
    assert_eq!(drained.abandoned, 0);
    assert_eq!(slow.await.expect("join").status, StatusCode::OK);
    // Drained, not yet dropped: the public listener refuses, admin answers.
    assert!(tokio::net::TcpStream::connect(gw.addr()).await.is_err());
    let ready = admin_get(&gw, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
    assert!(admin_get(&gw, "/healthz").await.starts_with("HTTP/1.1 200"));
}

// ---- Upstream inactivity and truncated bodies ------------------------------

/// A request body of `chunks` chunks of 16 KiB, one every `pace`.
fn paced_body(chunks: usize, pace: Duration) -> test_support::client::TestBody {
    let stream = futures_util::stream::unfold(0, move |sent| async move {
        if sent == chunks {
            return None;
        }
        tokio::time::sleep(pace).await;
        let frame = http_body::Frame::data(bytes::Bytes::from(vec![0u8; 16 * 1024]));
        Some((Ok::<_, std::convert::Infallible>(frame), sent + 1))
    });
    Client::body(http_body_util::StreamBody::new(stream))
}

/// A bare HTTP/1.1 backend: reads a request head, writes `head` at once,
/// then each of `chunks` after `pace`, then closes.
async fn scripted_backend(
    head: &'static [u8],
    chunks: Vec<&'static [u8]>,
    pace: Duration,
) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let chunks = chunks.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                if stream.write_all(head).await.is_err() {
                    return;
                }
                for part in chunks {
                    tokio::time::sleep(pace).await;
                    if stream.write_all(part).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_slow_but_moving_upload_and_download_outlast_the_inactivity_timeout() {
    let backend = Backend::start().await;
    let slow_source = scripted_backend(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        std::iter::repeat_n(&b"3\r\nabc\r\n"[..], 16)
            .chain(std::iter::once(&b"0\r\n\r\n"[..]))
            .collect(),
        Duration::from_millis(100),
    )
    .await;
    let apps = [
        app("a", "https://app.test/", &backend.url()),
        app("dl", "https://b.test/", &format!("http://{slow_source}")),
    ]
    .concat();
    let gw = Harness::start("upstream_inactivity_timeout = \"400ms\"", &apps).await;
    for (client, version) in [(gw.h1(), "h1"), (gw.h2(), "h2")] {
        // 16 chunks, 100 ms apart: 1.6 s in all, four inactivity periods.
        let started = Instant::now();
        let upload = Request::post("https://app.test/sink")
            .body(paced_body(16, Duration::from_millis(100)))
            .expect("request");
        let reply = client.send(upload).await;
        assert_eq!(reply.status, StatusCode::OK, "{version}: {}", reply.text());
        assert_eq!(reply.json()["bytes"], 16 * 16 * 1024, "{version}");
        assert!(started.elapsed() >= Duration::from_millis(1500));

        let reply = client.get("https://b.test/").await;
        assert_eq!(reply.status, StatusCode::OK, "{version}");
        assert_eq!(reply.text(), "abc".repeat(16), "{version}");
    }
    // A silent upstream still gets its 504.
    let reply = gw.h1().get("https://app.test/slow?ms=2000").await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn a_truncated_or_stalled_upstream_body_is_an_error_in_the_log_and_a_metric() {
    let log = captured_logs();
    // 10 bytes of 1,000, then the connection closes.
    let truncated = scripted_backend(
        b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nonly ten b",
        Vec::new(),
        Duration::ZERO,
    )
    .await;
    // 10 bytes of 1,000, then nothing for 30 s.
    let stalled = scripted_backend(
        b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nten, then ",
        vec![&b"too late"[..]],
        Duration::from_secs(30),
    )
    .await;
    let apps = [
        app(
            "trunc-app",
            "https://a.test/",
            &format!("http://{truncated}"),
        ),
        app("stall-app", "https://b.test/", &format!("http://{stalled}")),
    ]
    .concat();
    let gw = Harness::start_with(Setup {
        server_extra: "upstream_inactivity_timeout = \"500ms\"",
        apps: &apps,
        access_log: true,
        idp: None,
    })
    .await;
    for url in ["https://a.test/", "https://b.test/"] {
        let response = gw
            .h1()
            .send_streaming(Request::get(url).body(Client::empty()).expect("request"))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        use http_body_util::BodyExt;
        let body = tokio::time::timeout(Duration::from_secs(5), response.into_body().collect())
            .await
            .expect("body did not end");
        assert!(body.is_err(), "{url}: a cut body read as complete");
    }
    let mut metrics = String::new();
    let mut counted = false;
    for _ in 0..100 {
        metrics = admin_get(&gw, "/metrics").await;
        counted = metrics
            .contains("portcullis_upstream_errors_total{app=\"trunc-app\",kind=\"truncated\"} 1")
            && metrics.contains(
                "portcullis_upstream_errors_total{app=\"stall-app\",kind=\"truncated\"} 1",
            );
        if counted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(counted, "{metrics}");
    let access = log.lines_with("portcullis::access");
    let trunc: Vec<_> = access.iter().filter(|l| l.contains("trunc-app")).collect();
    assert_eq!(trunc.len(), 1, "{access:?}");
    assert!(trunc[0].contains("upstream_truncated"), "{}", trunc[0]);
    assert!(trunc[0].contains("\"http.status\":200"), "{}", trunc[0]);
    let stall: Vec<_> = access.iter().filter(|l| l.contains("stall-app")).collect();
    assert_eq!(stall.len(), 1, "{access:?}");
    assert!(stall[0].contains("upstream_stalled"), "{}", stall[0]);
}

#[tokio::test]
async fn repeated_upstream_failures_are_logged_once_per_interval() {
    let log = captured_logs();
    let closed = Backend::closed_addr();
    let gw = Harness::start(
        "workers = 1",
        &app("outage-app", "https://a.test/", &format!("http://{closed}")),
    )
    .await;
    let client = gw.h1();
    for _ in 0..20 {
        assert_eq!(
            client.get("https://a.test/").await.status,
            StatusCode::BAD_GATEWAY
        );
    }
    let metrics = admin_get(&gw, "/metrics").await;
    assert!(
        metrics
            .contains("portcullis_upstream_errors_total{app=\"outage-app\",kind=\"connect\"} 20"),
        "{metrics}"
    );
    let warned: Vec<_> = log
        .lines_with("upstream request failed")
        .into_iter()
        .filter(|l| l.contains("outage-app") && l.contains("WARN"))
        .collect();
    assert_eq!(warned.len(), 1, "{warned:?}");
}

/// Every log event of this test binary, as JSON lines (a global subscriber:
/// the workers are threads of their own).
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    fn lines_with(&self, needle: &str) -> Vec<String> {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }
}

#[derive(Clone)]
struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut out) = self.0.lock() {
            out.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured_logs() -> Captured {
    static BUFFER: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    let buffer = BUFFER.get_or_init(|| {
        let buffer = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Sink(buffer.clone());
        let _ = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || sink.clone())
            .try_init();
        buffer
    });
    Captured(buffer.clone())
}
