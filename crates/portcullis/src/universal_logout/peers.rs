//! Sticky mode: a revocation signed by the embedded IdP reaches the app
//! sessions on every node. Each node holds only the sessions it created,
//! so the token is delivered in-process and POSTed to each peer's
//! `/_portcullis/global-token-revocation` for the app (its `Host`), where
//! the peer verifies it like any receiver would.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{Method, Request, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portcullis_config::Cluster;
use portcullis_idp::universal_logout::{DeliveryError, RevocationSink};

use super::InProcess;

/// How long one peer may take to answer; the dispatcher retries.
const PEER_TIMEOUT: Duration = Duration::from_secs(5);

type PeerClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

pub(super) struct ToPeers {
    local: InProcess,
    peers: Vec<String>,
    client: PeerClient,
}

impl ToPeers {
    pub(super) fn new(local: InProcess, cluster: &Cluster) -> anyhow::Result<ToPeers> {
        let connector = portcullis_proxy::upstream_connector(
            "cluster.peers",
            cluster.peer_ca.as_deref(),
            None,
            PEER_TIMEOUT,
        )
        .context("[cluster] peer_ca")?;
        Ok(ToPeers {
            local,
            peers: cluster.peers.iter().map(|p| p.base.clone()).collect(),
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }
}

/// POSTs the token to one peer; the peer routes it by `Host` to the app.
async fn to_peer(
    client: PeerClient,
    peer: String,
    audience: String,
    authorization: String,
    body: Vec<u8>,
) -> Result<u16, DeliveryError> {
    let target: Uri = audience
        .parse()
        .map_err(|e| DeliveryError::Unreachable(format!("audience {audience}: {e}")))?;
    let host = target
        .authority()
        .map(|a| a.as_str().to_owned())
        .ok_or_else(|| DeliveryError::Unreachable(format!("audience {audience} has no host")))?;
    let path = target
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("{peer}{path}"))
        .header(HOST, host)
        .header(AUTHORIZATION, authorization)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| DeliveryError::Unreachable(e.to_string()))?;
    let response = tokio::time::timeout(PEER_TIMEOUT, client.request(request))
        .await
        .map_err(|_| DeliveryError::Timeout)?
        .map_err(|e| DeliveryError::Unreachable(format!("{peer}: {e}")))?;
    let status = response.status().as_u16();
    tracing::debug!(peer = %peer, status, "revocation forwarded to peer");
    Ok(status)
}

impl RevocationSink for ToPeers {
    fn deliver(
        &self,
        app: &str,
        audience: &str,
        authorization: &str,
        body: &[u8],
    ) -> Pin<Box<dyn Future<Output = Result<u16, DeliveryError>> + Send>> {
        let local = self.local.deliver(app, audience, authorization, body);
        let remote: Vec<_> = self
            .peers
            .iter()
            .map(|peer| {
                tokio::spawn(to_peer(
                    self.client.clone(),
                    peer.clone(),
                    audience.to_owned(),
                    authorization.to_owned(),
                    body.to_vec(),
                ))
            })
            .collect();
        let app = app.to_owned();
        Box::pin(async move {
            let mut statuses = vec![local.await?];
            for (peer, task) in remote.into_iter().enumerate() {
                let outcome = task
                    .await
                    .map_err(|e| DeliveryError::Unreachable(e.to_string()))?;
                match outcome {
                    Ok(status) => statuses.push(status),
                    Err(e) => {
                        tracing::warn!(app = %app, peer, error = %e, "revocation not delivered to a peer; retrying");
                        return Err(e);
                    }
                }
            }
            // Retried while any node failed; otherwise "revoked" when any
            // node held a session, else what the nodes agree on (404).
            Ok(statuses
                .iter()
                .copied()
                .find(|s| *s >= 500 || *s == 429)
                .or_else(|| statuses.iter().copied().find(|s| (200..300).contains(s)))
                .unwrap_or(statuses[0]))
        })
    }
}
