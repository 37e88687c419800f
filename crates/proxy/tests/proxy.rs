//! Data-plane behaviour against real listeners on 127.0.0.1:0: a gateway
//! started in-process, a real backend, TLS clients.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use http::{header, Request, StatusCode, Version};
use portcullis_proxy::Server;
use test_support::{Backend, Client, Pki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Harness {
    gateway: Server,
    pki: Pki,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// Starts a gateway with the given `[[app]]` tables and extra `[server]` keys.
    async fn start(server_extra: &str, apps: &str) -> Harness {
        let pki = Pki::new();
        let dir = tempfile::tempdir().expect("dir");
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
access_log = false

{apps}
"#,
            cert = pki.cert_path().display(),
            key = pki.key_path().display(),
        );
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, &text).expect("write config");
        let config = portcullis_config::load(&path, &portcullis_config::NoMetadata)
            .unwrap_or_else(|p| panic!("{p}"));
        let gateway = Server::start(&config, portcullis_proxy::Services::default())
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
