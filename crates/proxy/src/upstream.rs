//! The upstream side: one keep-alive pool per app, URI mapping from the
//! public prefix to the upstream base path, and the timed request.

use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use portcullis_config::UpstreamTarget;

use crate::error::Error;
use crate::respond::Failure;
use crate::tls;

type Pool = Client<HttpsConnector<HttpConnector>, Incoming>;

/// How long an idle pooled upstream connection is kept. Shorter than the
/// common 60–75 s server keep-alive so the gateway closes first and never
/// sends a request on a connection the backend is closing.
const POOL_IDLE: Duration = Duration::from_secs(50);

pub struct HttpUpstream {
    pool: Pool,
    scheme: Scheme,
    authority: Authority,
    /// Upstream path that replaces the app's public prefix; empty for `/`.
    base_path: String,
    /// Length of the public prefix to cut from request paths (0 for `/`).
    public_prefix_len: usize,
    response_timeout: Duration,
    pub label: String,
}

/// What went wrong talking to an upstream, for metrics and the error page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    Connect,
    Timeout,
    Protocol,
}

impl UpstreamError {
    pub fn kind(self) -> &'static str {
        match self {
            UpstreamError::Connect => "connect",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Protocol => "protocol",
        }
    }

    pub fn failure(self) -> Failure {
        match self {
            UpstreamError::Connect => Failure::UpstreamUnavailable,
            UpstreamError::Timeout => Failure::UpstreamTimeout,
            UpstreamError::Protocol => Failure::UpstreamProtocol,
        }
    }
}

impl HttpUpstream {
    pub fn new(
        app: &str,
        target: &UpstreamTarget,
        public_prefix: &str,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<Self, Error> {
        let app_error = |reason: String| Error::App {
            app: app.to_string(),
            reason,
        };
        let authority: Authority = target
            .authority
            .parse()
            .map_err(|e| app_error(format!("upstream authority: {e}")))?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let tls_config = tls::upstream_client_config(target.ca.as_deref())?;
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config)
            .https_or_http();
        let builder = match &target.sni {
            Some(name) => {
                let name = rustls_pki_types::ServerName::try_from(name.clone())
                    .map_err(|e| app_error(format!("upstream_sni: {e}")))?;
                builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
            }
            None => builder,
        };
        let connector = builder.enable_http1().wrap_connector(http);
        let pool = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        let scheme = if target.tls {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        };
        Ok(HttpUpstream {
            label: format!("{}://{}", scheme, target.authority),
            pool,
            scheme,
            authority,
            base_path: target.base_path.clone(),
            public_prefix_len: if public_prefix == "/" {
                0
            } else {
                public_prefix.len()
            },
            response_timeout,
        })
    }

    /// The upstream URI for a client request URI: public prefix replaced by
    /// the upstream base path, query kept.
    pub fn map_uri(&self, uri: &Uri) -> Option<Uri> {
        let path_and_query = if self.public_prefix_len == 0 && self.base_path.is_empty() {
            uri.path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"))
        } else {
            let rest = uri.path().get(self.public_prefix_len..).unwrap_or("");
            let mut joined = String::with_capacity(
                self.base_path.len() + rest.len() + uri.query().map_or(0, |q| q.len() + 1) + 1,
            );
            joined.push_str(&self.base_path);
            if !rest.starts_with('/') {
                joined.push('/');
            }
            joined.push_str(rest);
            if let Some(q) = uri.query() {
                joined.push('?');
                joined.push_str(q);
            }
            PathAndQuery::try_from(joined).ok()?
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .ok()
    }

    pub async fn send(
        &self,
        request: Request<Incoming>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        match tokio::time::timeout(self.response_timeout, self.pool.request(request)).await {
            Err(_) => Err(UpstreamError::Timeout),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) if e.is_connect() => {
                tracing::debug!(error = %e, "upstream connect failed");
                Err(UpstreamError::Connect)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "upstream request failed");
                let malformed = std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<hyper::Error>())
                    .is_some_and(|h| h.is_parse() || h.is_parse_status());
                // A connection closed before any response byte reads as
                // "unavailable" to the user, like a refused connect.
                Err(if malformed {
                    UpstreamError::Protocol
                } else {
                    UpstreamError::Connect
                })
            }
        }
    }
}
