//! A real HTTP/1.1 backend on 127.0.0.1:0 with the behaviours proxy tests
//! need, chosen by path:
//!
//! - `/slow?ms=N` waits N ms, then echoes;
//! - `/sink` reads the whole body and answers `{"bytes": N}`;
//! - `/source?bytes=N` streams N zero bytes;
//! - `/ws` is a WebSocket echo;
//! - `/hop` answers with hop-by-hop headers a proxy must drop;
//! - `/internal-redirect` answers 302 to its own internal URL, with an
//!   internal `Refresh`, `Content-Location` and a `Set-Cookie` scoped to
//!   its own host;
//! - `/internal-page` (`?gzip=1` to compress) is HTML linking to its own
//!   internal URLs;
//! - anything else echoes method, path, query and headers as JSON.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use crate::body::ZeroBody;

type BackendBody = Either<Full<Bytes>, ZeroBody>;

pub struct Backend {
    pub addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    /// `"METHOD /path x-portcullis-user"` of every request, in order.
    seen: Arc<std::sync::Mutex<Vec<String>>>,
    _alive: tokio::sync::watch::Sender<()>,
    task: JoinHandle<()>,
}

impl Backend {
    pub async fn start() -> Backend {
        Backend::serve(None).await
    }

    /// The same backend behind TLS with `pki`'s certificate (valid for
    /// localhost, 127.0.0.1 and the test hosts).
    pub async fn start_tls(pki: &crate::Pki) -> Backend {
        let config = pki.server_config(&[b"http/1.1"]);
        Backend::serve(Some(tokio_rustls::TlsAcceptor::from(config))).await
    }

    async fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = listener.local_addr().expect("backend addr");
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let journal = seen.clone();
        // Dropping the Backend drops `alive`: every connection closes too, as
        // when a real backend process dies.
        let (alive, died) = tokio::sync::watch::channel(());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let counter = counter.clone();
                let journal = journal.clone();
                let tls = tls.clone();
                let mut died = died.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let user = req
                            .headers()
                            .get("x-portcullis-user")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-");
                        if let Ok(mut journal) = journal.lock() {
                            journal.push(format!("{} {} {user}", req.method(), req.uri().path()));
                        }
                        handle(req, addr)
                    });
                    let builder = hyper::server::conn::http1::Builder::new();
                    let serve = async {
                        match tls {
                            Some(acceptor) => {
                                let Ok(stream) = acceptor.accept(stream).await else {
                                    return;
                                };
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .with_upgrades()
                                    .await;
                            }
                            None => {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .with_upgrades()
                                    .await;
                            }
                        }
                    };
                    tokio::select! {
                        () = serve => {}
                        _ = died.changed() => {}
                    }
                });
            }
        });
        Backend {
            addr,
            requests,
            seen,
            _alive: alive,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests this backend has received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// `"METHOD /path x-portcullis-user"` (`-` without the header) of every
    /// request so far.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// An address on which nothing listens (bound, then released).
    pub fn closed_addr() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn query_number(req: &Request<Incoming>, key: &str) -> Option<u64> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<BackendBody> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(value.to_string()))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn echo(req: &Request<Incoming>) -> Response<BackendBody> {
    let mut headers = serde_json::Map::new();
    for (name, value) in req.headers() {
        let entry = headers
            .entry(name.as_str())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let serde_json::Value::Array(values) = entry {
            values.push(
                String::from_utf8_lossy(value.as_bytes())
                    .into_owned()
                    .into(),
            );
        }
    }
    json(
        StatusCode::OK,
        serde_json::json!({
            "method": req.method().as_str(),
            "path": req.uri().path(),
            "query": req.uri().query().unwrap_or(""),
            "headers": headers,
        }),
    )
}

async fn handle(
    mut req: Request<Incoming>,
    addr: SocketAddr,
) -> Result<Response<BackendBody>, Infallible> {
    let response = match req.uri().path() {
        "/slow" => {
            let ms = query_number(&req, "ms").unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            echo(&req)
        }
        "/sink" => {
            let mut body = req.into_body();
            let mut total: u64 = 0;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => {
                        if let Some(data) = frame.data_ref() {
                            total += data.len() as u64;
                        }
                    }
                    Err(_) => break,
                }
            }
            json(StatusCode::OK, serde_json::json!({ "bytes": total }))
        }
        "/source" => {
            let len = query_number(&req, "bytes").unwrap_or(0);
            Response::new(Either::Right(ZeroBody::new(len)))
        }
        "/internal-redirect" => {
            let mut response = Response::new(Either::Left(Full::new(Bytes::new())));
            *response.status_mut() = StatusCode::FOUND;
            let headers = response.headers_mut();
            let internal = format!("http://{addr}/landing?from=redirect");
            for (name, value) in [
                ("location", internal.clone()),
                ("content-location", format!("http://{addr}/resource")),
                ("refresh", format!("5; url={internal}")),
                (
                    "set-cookie",
                    format!("legacy=1; Domain={}; Path=/", addr.ip()),
                ),
            ] {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.append(name, value);
                }
            }
            response
        }
        "/internal-page" => {
            let html = format!(
                "<!doctype html><a href=\"http://{addr}/docs/a\">a</a> <img src=\"//{addr}/img.png\"> <a href=\"http://elsewhere.test/\">x</a>"
            );
            let gzip = req.uri().query().is_some_and(|q| q.contains("gzip=1"));
            let body = if gzip {
                use std::io::Write as _;
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                let _ = encoder.write_all(html.as_bytes());
                encoder.finish().unwrap_or_default()
            } else {
                html.into_bytes()
            };
            let mut response = Response::new(Either::Left(Full::new(Bytes::from(body))));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            if gzip {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            response
        }
        "/hop" => {
            let mut response = echo(&req);
            let headers = response.headers_mut();
            headers.insert(
                header::CONNECTION,
                HeaderValue::from_static("x-backend-hop"),
            );
            headers.insert("x-backend-hop", HeaderValue::from_static("secret"));
            headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
            headers.insert("x-backend-end-to-end", HeaderValue::from_static("kept"));
            response
        }
        "/ws" => {
            let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
                return Ok(json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"error": "not a websocket"}),
                ));
            };
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = upgrade.await else { return };
                let mut ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_close() {
                        break;
                    }
                    if ws.send(message).await.is_err() {
                        break;
                    }
                }
            });
            let mut response = Response::new(Either::Left(Full::new(Bytes::new())));
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let headers = response.headers_mut();
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            let accept = derive_accept_key(key.as_bytes());
            headers.insert(
                "sec-websocket-accept",
                HeaderValue::from_str(&accept).expect("accept key"),
            );
            response
        }
        _ => echo(&req),
    };
    Ok(response)
}
