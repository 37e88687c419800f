//! Universal Logout between the embedded IdP and the gateway in this
//! process: apps on the embedded IdP trust its signing key (the JWKS it
//! serves at `/oauth2/v1/keys`) with its public URL as issuer, and are all
//! logout-enabled; the IdP's dispatcher hands them its signed tokens
//! in-process, through the same verification the HTTP endpoint uses. In
//! sticky mode the same tokens also go to every peer node's endpoint over
//! HTTPS ([`peers`]), since each node holds only its own sessions.

mod peers;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context;
use portcullis_config::{AppIdp, ClusterMode, Config};
use portcullis_gateway::{Gateway, Subject};
use portcullis_idp::universal_logout::{
    DeliveryError, LogoutTarget, RevocationSink, UniversalLogout,
};
use portcullis_idp::web::Idp;
use portcullis_session::EndReason;

use crate::idp_service::IdpFiles;

/// The embedded IdP's issuer: its public URL without a trailing slash.
pub fn embedded_issuer(config: &Config) -> Option<String> {
    Some(config.idp.as_ref()?.public.url())
}

/// The embedded IdP's dispatcher, when it has a signing key and there are
/// apps on it.
pub fn dispatcher(
    config: &Config,
    files: &IdpFiles,
    gateway: Arc<Gateway>,
) -> anyhow::Result<Option<Arc<UniversalLogout>>> {
    let (Some(saml), Some(issuer)) = (&files.saml, embedded_issuer(config)) else {
        return Ok(None);
    };
    let targets: Vec<LogoutTarget> = config
        .apps
        .iter()
        .filter_map(|app| {
            let auth = app.auth.as_ref()?;
            (auth.idp == AppIdp::Embedded).then(|| LogoutTarget {
                app: app.name.clone(),
                audience: auth.gtr_url.clone(),
            })
        })
        .collect();
    if targets.is_empty() {
        return Ok(None);
    }
    let local = InProcess(gateway);
    let sink: Arc<dyn RevocationSink> = match config.cluster.mode {
        ClusterMode::Sticky if !config.cluster.peers.is_empty() => {
            Arc::new(peers::ToPeers::new(local, &config.cluster)?)
        }
        _ => Arc::new(local),
    };
    let dispatcher = UniversalLogout::new(issuer, &saml.signing_key, targets, sink)
        .context("Universal Logout key")?;
    Ok(Some(Arc::new(dispatcher)))
}

/// Delivery into this process's gateway.
struct InProcess(Arc<Gateway>);

impl RevocationSink for InProcess {
    fn deliver(
        &self,
        app: &str,
        audience: &str,
        authorization: &str,
        body: &[u8],
    ) -> Pin<Box<dyn Future<Output = Result<u16, DeliveryError>> + Send>> {
        let gateway = self.0.clone();
        let (app, audience, authorization, body) = (
            app.to_string(),
            audience.to_string(),
            authorization.to_string(),
            body.to_vec(),
        );
        Box::pin(async move {
            let status = match gateway
                .revocations()
                .revoke(&app, &audience, Some(&authorization), &body, None)
                .await
            {
                Ok(_) => 204,
                Err(e) => e.status().as_u16(),
            };
            Ok(status)
        })
    }
}

/// Sticky mode: a revocation a peer's embedded IdP sends here ends this
/// node's own IdP sessions of the subject too, or the browser would be
/// signed in again silently at this node's IdP. Ended as
/// `UNIVERSAL_LOGOUT`, which does not fan out again.
pub fn end_idp_sessions_on_peer_revocations(config: &Config, gateway: &Gateway, idp: &Arc<Idp>) {
    if config.cluster.mode != ClusterMode::Sticky {
        return;
    }
    let Some(issuer) = embedded_issuer(config) else {
        return;
    };
    let idp = Arc::downgrade(idp);
    gateway.revocations().observe(Arc::new(
        move |from: &str, subject: &Subject, _reason: EndReason| {
            let Subject::Email(email) = subject else {
                return;
            };
            if from != issuer {
                return;
            }
            let (Some(idp), email) = (idp.upgrade(), email.clone()) else {
                return;
            };
            tokio::spawn(async move {
                let users: Vec<String> = idp
                    .directory()
                    .users()
                    .filter(|u| u.email().eq_ignore_ascii_case(&email))
                    .map(|u| u.id().to_owned())
                    .collect();
                for user in users {
                    match idp
                        .sessions()
                        .revoke_user(&user, EndReason::UniversalLogout)
                        .await
                    {
                        Ok(ended) => tracing::info!(
                            user = %user,
                            sessions = ended.len(),
                            "peer revocation ended this node's IdP sessions"
                        ),
                        Err(e) => tracing::error!(
                            user = %user,
                            error = %e,
                            "peer revocation could not end this node's IdP sessions"
                        ),
                    }
                }
            });
        },
    ));
}
