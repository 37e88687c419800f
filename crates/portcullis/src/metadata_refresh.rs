//! Keeps every peer that comes from a `metadata_url` current: an app's
//! external IdP, and each `[[idp.service_provider]]` of the embedded IdP.
//! One background task per peer downloads the document again when its
//! `cacheDuration` / `validUntil` say (clamped to the configured bounds),
//! verifies it off the runtime thread, and publishes the new trust to the
//! gateway or the IdP, so a key rollover needs no restart. A failed or
//! refused download keeps the last good copy in use: a WARN event, a
//! counter, and another try after `metadata_min_refresh`. Each verified
//! copy is written to `metadata_cache_file`, which a restart starts from
//! when the URL is unreachable.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use portcullis_config::{
    AppIdp, Config, MetadataLocation, PeerMetadataSource, PeerTrust, ServiceProviderConfig,
    SpMetadataRefused,
};
use portcullis_gateway::{Gateway, IdpTrust};
use portcullis_idp::web::{Idp, ServiceProviders};
use portcullis_proxy::{saml_metadata, PeerLabels};

use crate::metadata::{read_idp, read_sp, FetchError, Fetcher};

/// Starts a refresh task for every peer whose metadata comes from a URL.
pub fn spawn(config: &Config, gateway: &Gateway, idp: Option<&Idp>) {
    for app in &config.apps {
        let Some(auth) = &app.auth else { continue };
        let AppIdp::External(external) = &auth.idp else {
            continue;
        };
        let Some(trust) = gateway.idp_trust(&app.name) else {
            continue;
        };
        start(
            format!("app/{}", app.name),
            external.metadata.entity_id.clone(),
            &external.source,
            Target::AppIdp(trust),
        );
    }
    let registry = idp.and_then(Idp::service_providers);
    let sps = config.idp.iter().flat_map(|idp| &idp.service_providers);
    for (sp, registry) in sps.zip(std::iter::repeat_with(|| registry.clone())) {
        let (Some(source), Some(registry)) = (&sp.metadata_source, registry) else {
            continue;
        };
        start(
            format!("sp/{}", sp.name),
            sp.entity_id.clone(),
            source,
            Target::ServiceProvider {
                registered: Box::new(sp.clone()),
                registry,
            },
        );
    }
}

/// A task for `source` when it is a URL.
fn start(peer: String, entity_id: String, source: &PeerMetadataSource, target: Target) {
    let MetadataLocation::Url { url, cache_file } = &source.location else {
        return;
    };
    let fetcher = match Fetcher::new() {
        Ok(fetcher) => fetcher,
        Err(e) => {
            tracing::error!(peer = %peer, url = %url, error = %e, "SAML metadata refresh cannot start");
            return;
        }
    };
    let peer = Peer {
        label: PeerLabels { peer },
        entity_id,
        url: url.clone(),
        cache_file: cache_file.clone(),
        source: source.clone(),
        fetcher,
        target,
    };
    tokio::spawn(peer.run());
}

/// Where a verified document goes.
enum Target {
    /// An app's SP trusts this IdP.
    AppIdp(Arc<IdpTrust>),
    /// The embedded IdP serves this SP: `registered` is what it serves now
    /// (the configuration with the last good document applied).
    ServiceProvider {
        registered: Box<ServiceProviderConfig>,
        registry: ServiceProviders,
    },
}

struct Peer {
    label: PeerLabels,
    /// The entity trusted at start, for the log.
    entity_id: String,
    url: String,
    cache_file: Option<PathBuf>,
    source: PeerMetadataSource,
    fetcher: Fetcher,
    target: Target,
}

/// Why a refresh kept the last good copy.
#[derive(Debug, thiserror::Error)]
enum RefreshError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("refused: {0}")]
    Refused(#[from] portcullis_saml::Error),
    #[error("refused: {0}")]
    NotApplicable(#[from] SpMetadataRefused),
    #[error("the verification task failed")]
    Task,
}

/// How a role's document is read: [`read_idp`] or [`read_sp`].
type Reader<T> =
    fn(&str, &PeerTrust<'_>) -> Result<(T, portcullis_saml::Freshness), portcullis_saml::Error>;

/// Verifies `xml` on the blocking pool (xmlsec, libxml2); gives the
/// document back for the cache file.
async fn verify<T: Send + 'static>(
    xml: String,
    source: &PeerMetadataSource,
    entity_id: Option<String>,
    read: Reader<T>,
) -> Result<(String, T, portcullis_saml::Freshness), RefreshError> {
    let certs = source.signing_certs_der.clone();
    let (xml, verified) = tokio::task::spawn_blocking(move || {
        let trust = PeerTrust {
            entity_id: entity_id.as_deref(),
            signing_certs_der: &certs,
        };
        let verified = read(&xml, &trust);
        (xml, verified)
    })
    .await
    .map_err(|_| RefreshError::Task)?;
    let (metadata, freshness) = verified?;
    Ok((xml, metadata, freshness))
}

impl Peer {
    async fn run(mut self) {
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
    async fn refresh(&mut self) -> Result<Duration, RefreshError> {
        let xml = self.fetcher.fetch(&self.url).await?;
        let (xml, freshness) = match &mut self.target {
            Target::AppIdp(trust) => {
                let entity = self.source.entity_id.clone();
                let (xml, metadata, freshness) =
                    verify(xml, &self.source, entity, read_idp).await?;
                if trust.publish(&metadata) {
                    tracing::info!(
                        peer = %self.label.peer,
                        entity = %metadata.entity_id,
                        url = %self.url,
                        signing_certs = metadata.signing_certs_der.len(),
                        sso_url = %metadata.sso_redirect_url,
                        "SAML metadata changed; the new trust applies from the next message"
                    );
                }
                (xml, freshness)
            }
            Target::ServiceProvider {
                registered,
                registry,
            } => {
                // An SP's document may only ever describe the registered
                // entity: the IdP finds SPs by entity id.
                let entity = Some(registered.entity_id.clone());
                let (xml, metadata, freshness) = verify(xml, &self.source, entity, read_sp).await?;
                let next = registered.with_metadata(metadata)?;
                if next != **registered {
                    registry.replace(crate::idp_service::service_provider(&next));
                    tracing::info!(
                        peer = %self.label.peer,
                        entity = %next.entity_id,
                        url = %self.url,
                        signing_certs = next.signing_certs_der.len(),
                        acs_url = %next.acs_url,
                        "SAML metadata changed; the new trust applies from the next message"
                    );
                    **registered = next;
                }
                (xml, freshness)
            }
        };
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
