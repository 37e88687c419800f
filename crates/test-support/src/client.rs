//! TLS clients that trust the test CA: an HTTP/1.1 or HTTP/2 request client
//! and raw TLS sockets for tests that must misbehave on purpose.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::pki::Pki;

/// What a failed exchange or body reports.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub type TestBody = BoxBody<Bytes, BoxError>;

/// A TLS connection to the gateway with no HTTP on it yet (WebSockets,
/// hand-written requests).
pub type RawTls = TlsStream<TcpStream>;

/// What came back, with the body read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `Location` header; panics with the whole reply when absent.
    pub fn location(&self) -> String {
        self.headers
            .get(http::header::LOCATION)
            .unwrap_or_else(|| panic!("no Location: {self:?}"))
            .to_str()
            .expect("Location is text")
            .to_string()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// Header values the backend echoed under `name` (echo backend shape).
    pub fn echoed(&self, name: &str) -> Vec<String> {
        self.json()["headers"][name]
            .as_array()
            .map(|values| {
                values
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Resolves every host name to one address, like `curl --connect-to`: the
/// URL keeps its public host (so `Host`, `:authority` and SNI are what a
/// browser would send) while the socket goes to the gateway under test.
/// A URL without an explicit port connects to the resolved address's port.
#[derive(Clone)]
pub struct PinnedResolver(SocketAddr);

impl tower_service::Service<Name> for PinnedResolver {
    type Response = std::iter::Once<SocketAddr>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _name: Name) -> Self::Future {
        std::future::ready(Ok(std::iter::once(self.0)))
    }
}

pub struct Client {
    inner:
        hyper_util::client::legacy::Client<HttpsConnector<HttpConnector<PinnedResolver>>, TestBody>,
    tls: Arc<ClientConfig>,
    gateway: SocketAddr,
}

impl Client {
    /// HTTP/1.1 client whose every connection goes to `gateway`.
    pub fn http1(pki: &Pki, gateway: SocketAddr) -> Client {
        Client::build(pki, gateway, false)
    }

    /// HTTP/2-only client whose every connection goes to `gateway`.
    pub fn http2(pki: &Pki, gateway: SocketAddr) -> Client {
        Client::build(pki, gateway, true)
    }

    /// HTTP/1.1 client whose sockets are bound to `source` before they
    /// connect: a load balancer on 127.0.0.2, a stranger on 127.0.0.3.
    pub fn http1_from(pki: &Pki, gateway: SocketAddr, source: IpAddr) -> Client {
        Client::build_from(pki, gateway, false, Some(source))
    }

    fn build(pki: &Pki, gateway: SocketAddr, h2: bool) -> Client {
        Client::build_from(pki, gateway, h2, None)
    }

    fn build_from(pki: &Pki, gateway: SocketAddr, h2: bool, source: Option<IpAddr>) -> Client {
        // hyper-rustls sets ALPN itself from the enabled versions.
        let tls = pki.client_config(&[]);
        let mut http = HttpConnector::new_with_resolver(PinnedResolver(gateway));
        http.enforce_http(false);
        http.set_local_address(source);
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http();
        let connector = if h2 {
            builder.enable_http2().wrap_connector(http)
        } else {
            builder.enable_http1().wrap_connector(http)
        };
        let inner = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .http2_only(h2)
            .build(connector);
        Client {
            inner,
            tls,
            gateway,
        }
    }

    pub fn empty() -> TestBody {
        Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed()
    }

    pub fn body<B>(body: B) -> TestBody
    where
        B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        body.map_err(Into::into).boxed()
    }

    pub async fn send(&self, request: Request<TestBody>) -> Reply {
        self.try_send(request).await.expect("request failed")
    }

    /// [`send`](Self::send) that returns a transport failure (a connection
    /// the server closed mid-exchange, say) instead of panicking: for tests
    /// that wait through a server going away.
    pub async fn try_send(&self, request: Request<TestBody>) -> Result<Reply, BoxError> {
        let response = self.inner.request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
        })
    }

    /// Sends and returns the response with its body still streaming.
    pub async fn send_streaming(
        &self,
        request: Request<TestBody>,
    ) -> http::Response<hyper::body::Incoming> {
        self.inner.request(request).await.expect("request failed")
    }

    pub async fn get(&self, url: &str) -> Reply {
        self.send(Request::get(url).body(Client::empty()).expect("request"))
            .await
    }

    /// A raw TLS connection to the gateway (ALPN http/1.1, SNI `host`) for
    /// hand-written requests.
    pub async fn raw_tls(&self, host: &str) -> RawTls {
        self.raw_tls_alpn(host, b"http/1.1").await
    }

    /// A raw TLS connection to the gateway offering only `alpn`.
    pub async fn raw_tls_alpn(&self, host: &str, alpn: &[u8]) -> TlsStream<TcpStream> {
        let mut config = (*self.tls).clone();
        config.alpn_protocols = vec![alpn.to_vec()];
        let connector = TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(self.gateway).await.expect("connect");
        connector
            .connect(ServerName::try_from(host.to_string()).expect("name"), tcp)
            .await
            .expect("TLS handshake")
    }
}
