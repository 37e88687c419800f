//! Keeps each app's external IdP current from its `metadata_url`: one
//! background task per peer downloads the document again when its
//! `cacheDuration` / `validUntil` say (clamped to the configured bounds),
//! verifies it off the runtime thread, and publishes the new trust to the
//! gateway, so a key rollover needs no restart. A failed or refused
//! download keeps the last good copy in use: a WARN event, a counter, and
//! another try after `metadata_min_refresh`. Each verified copy is written
//! to `metadata_cache_file`, which a restart starts from when the URL is
//! unreachable.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use portcullis_config::{AppIdp, Config, MetadataLocation, PeerMetadataSource, PeerTrust};
use portcullis_gateway::{Gateway, IdpTrust};
use portcullis_proxy::{saml_metadata, PeerLabels};

use crate::metadata::{read_idp, FetchError, Fetcher};

/// Starts a refresh task for every app whose IdP comes from a URL.
pub fn spawn(config: &Config, gateway: &Gateway) {
    for app in &config.apps {
        let Some(auth) = &app.auth else { continue };
        let AppIdp::External(external) = &auth.idp else {
            continue;
        };
        let MetadataLocation::Url { url, cache_file } = &external.source.location else {
            continue;
        };
        let Some(trust) = gateway.idp_trust(&app.name) else {
            continue;
        };
        let fetcher = match Fetcher::new() {
            Ok(fetcher) => fetcher,
            Err(e) => {
                tracing::error!(app = %app.name, url = %url, error = %e, "SAML metadata refresh cannot start");
                continue;
            }
        };
        let peer = Peer {
            label: PeerLabels {
                peer: format!("app/{}", app.name),
            },
            entity_id: external.metadata.entity_id.clone(),
            url: url.clone(),
            cache_file: cache_file.clone(),
            source: external.source.clone(),
            fetcher,
            trust,
        };
        tokio::spawn(peer.run());
    }
}

struct Peer {
    label: PeerLabels,
    /// The entity trusted at start, for the log.
    entity_id: String,
    url: String,
    cache_file: Option<PathBuf>,
    source: PeerMetadataSource,
    fetcher: Fetcher,
    trust: Arc<IdpTrust>,
}

/// Why a refresh kept the last good copy.
#[derive(Debug, thiserror::Error)]
enum RefreshError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("refused: {0}")]
    Refused(#[from] portcullis_saml::Error),
    #[error("the verification task failed")]
    Task,
}

impl Peer {
    async fn run(self) {
        // The document config loaded may be the cache: start with a fresh one.
        let mut wait = Duration::ZERO;
        loop {
            tokio::time::sleep(wait).await;
            wait = match self.refresh().await {
                Ok(next) => next,
                Err(reason) => {
                    saml_metadata()
                        .refresh_failures
                        .get_or_create(&self.label)
                        .inc();
                    tracing::warn!(
                        peer = %self.label.peer,
                        entity = %self.entity_id,
                        url = %self.url,
                        reason = %reason,
                        retry_in = ?self.source.min_refresh,
                        "SAML metadata refresh failed; the last good copy stays in use"
                    );
                    self.source.min_refresh
                }
            };
        }
    }

    /// One download, verified and published; returns when to refresh next.
    async fn refresh(&self) -> Result<Duration, RefreshError> {
        let xml = self.fetcher.fetch(&self.url).await?;
        let source = self.source.clone();
        let (xml, verified) = tokio::task::spawn_blocking(move || {
            let trust = PeerTrust {
                entity_id: source.entity_id.as_deref(),
                signing_certs_der: &source.signing_certs_der,
            };
            let verified = read_idp(&xml, &trust);
            (xml, verified)
        })
        .await
        .map_err(|_| RefreshError::Task)?;
        let (metadata, freshness) = verified?;
        if self.trust.publish(&metadata) {
            tracing::info!(
                peer = %self.label.peer,
                entity = %metadata.entity_id,
                url = %self.url,
                signing_certs = metadata.signing_certs_der.len(),
                sso_url = %metadata.sso_redirect_url,
                "SAML metadata changed; the new trust applies from the next message"
            );
        }
        let now = std::time::SystemTime::now();
        let unix = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        saml_metadata()
            .last_success
            .get_or_create(&self.label)
            .set(unix);
        if let Some(path) = &self.cache_file {
            let path = path.clone();
            let written = tokio::task::spawn_blocking(move || {
                portcullis_idp::atomic_file::replace(&path, xml.as_bytes())
            })
            .await;
            if let Ok(Err(e)) = written {
                tracing::warn!(peer = %self.label.peer, error = %e, "cannot write metadata_cache_file");
            }
        }
        Ok(freshness.next_refresh(self.source.min_refresh, self.source.max_refresh))
    }
}
