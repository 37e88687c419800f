//! Peer SAML metadata for config's [`MetadataReader`] seam: documents are
//! verified and parsed by `portcullis-saml` here, in the binary, so
//! `crates/config` (and the proxy above it) need no SAML stack; and a
//! `metadata_url` is downloaded here, bounded in size and time.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portcullis_config::{IdpMetadata, MetadataError, MetadataReader, PeerTrust, SpMetadata};
use portcullis_saml::MetadataTrust;

/// Larger documents are refused unread (the parser's own cap).
const MAX_DOCUMENT_BYTES: usize = 10 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The whole download, connection and body included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(20);

/// Reads metadata with `portcullis_saml`'s hardened parser.
pub struct SamlMetadata;

impl MetadataReader for SamlMetadata {
    fn idp(&self, xml: &str, trust: &PeerTrust<'_>) -> Result<IdpMetadata, MetadataError> {
        read_idp(xml, trust)
            .map(|(meta, _)| meta)
            .map_err(MetadataError::invalid)
    }

    fn sp(&self, xml: &str, trust: &PeerTrust<'_>) -> Result<SpMetadata, MetadataError> {
        read_sp(xml, trust)
            .map(|(meta, _)| meta)
            .map_err(MetadataError::invalid)
    }

    /// Config is loaded before (and, on SIGHUP, inside) the runtime, so
    /// the download gets a thread and a runtime of its own.
    fn fetch(&self, url: &str) -> Result<String, MetadataError> {
        let fetched = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(FetchError::Runtime)?;
                    let fetcher = Fetcher::new()?;
                    runtime.block_on(fetcher.fetch(url))
                })
                .join()
                .unwrap_or(Err(FetchError::Panicked))
        });
        fetched.map_err(|e| MetadataError::Fetch(Box::new(e)))
    }
}

/// An external IdP's document verified as `trust` says, with how long it
/// may be used.
pub fn read_idp(
    xml: &str,
    trust: &PeerTrust<'_>,
) -> Result<(IdpMetadata, portcullis_saml::Freshness), portcullis_saml::Error> {
    let trusted = portcullis_saml::read_idp_metadata(xml, &saml_trust(trust))?;
    let parsed = trusted.metadata;
    Ok((
        IdpMetadata {
            entity_id: parsed.entity_id,
            sso_redirect_url: parsed.sso_redirect_url,
            slo_url: parsed.slo_url,
            signing_certs_der: parsed.signing_certs_der,
        },
        trusted.freshness,
    ))
}

/// An external SP's document verified as `trust` says, with how long it
/// may be used.
pub fn read_sp(
    xml: &str,
    trust: &PeerTrust<'_>,
) -> Result<(SpMetadata, portcullis_saml::Freshness), portcullis_saml::Error> {
    let trusted = portcullis_saml::read_sp_metadata(xml, &saml_trust(trust))?;
    let parsed = trusted.metadata;
    Ok((
        SpMetadata {
            entity_id: parsed.entity_id,
            acs_url: parsed.acs_url,
            slo_url: parsed.slo_url,
            soap_slo_url: parsed.soap_slo_url,
            signing_certs_der: parsed.signing_certs_der,
            authn_requests_signed: parsed.authn_requests_signed,
            encryption_certs_der: parsed.encryption_certs_der,
        },
        trusted.freshness,
    ))
}

fn saml_trust<'a>(trust: &PeerTrust<'a>) -> MetadataTrust<'a> {
    MetadataTrust::now(trust.entity_id, trust.signing_certs_der)
}

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0} is not a URL")]
    Url(String),
    #[error("no HTTP client: {0}")]
    Client(#[source] portcullis_proxy::Error),
    #[error("no runtime for the download: {0}")]
    Runtime(#[source] std::io::Error),
    /// The connection or the exchange failed; the reason with its causes.
    #[error("{0}")]
    Connect(String),
    #[error("HTTP status {0}")]
    Status(http::StatusCode),
    #[error("reading the body: {0} (limit {MAX_DOCUMENT_BYTES} bytes)")]
    Body(String),
    #[error("no answer within {FETCH_TIMEOUT:?}")]
    Timeout,
    #[error("the document is not UTF-8")]
    NotUtf8,
    #[error("the download thread panicked")]
    Panicked,
}

/// An HTTP(S) client for metadata documents (rustls, the system's roots).
#[derive(Clone)]
pub struct Fetcher {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl Fetcher {
    pub fn new() -> Result<Self, FetchError> {
        let connector =
            portcullis_proxy::upstream_connector("saml.metadata", None, None, CONNECT_TIMEOUT)
                .map_err(FetchError::Client)?;
        Ok(Fetcher {
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// `url`'s body: a 200 answer within [`FETCH_TIMEOUT`], at most
    /// [`MAX_DOCUMENT_BYTES`], UTF-8.
    pub async fn fetch(&self, url: &str) -> Result<String, FetchError> {
        let uri: http::Uri = url.parse().map_err(|_| FetchError::Url(url.to_string()))?;
        let request = http::Request::get(uri)
            .header(
                http::header::ACCEPT,
                "application/samlmetadata+xml, application/xml, text/xml",
            )
            .body(Empty::new())
            .map_err(|_| FetchError::Url(url.to_string()))?;
        let download = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| FetchError::Connect(with_causes(&e)))?;
            if response.status() != http::StatusCode::OK {
                return Err(FetchError::Status(response.status()));
            }
            let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
                .collect()
                .await
                .map_err(|e| FetchError::Body(e.to_string()))?
                .to_bytes();
            String::from_utf8(body.to_vec()).map_err(|_| FetchError::NotUtf8)
        };
        tokio::time::timeout(FETCH_TIMEOUT, download)
            .await
            .unwrap_or(Err(FetchError::Timeout))
    }
}

/// `error: cause: cause`: hyper's errors say little without their sources.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
