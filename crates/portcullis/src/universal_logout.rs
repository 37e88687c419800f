//! Universal Logout between the embedded IdP and the gateway in this
//! process: apps on the embedded IdP trust its signing key (the JWKS it
//! serves at `/oauth2/v1/keys`) with its public URL as issuer, and are all
//! logout-enabled; the IdP's dispatcher hands them its signed tokens
//! in-process, through the same verification the HTTP endpoint uses.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context;
use portcullis_config::{AppIdp, Config};
use portcullis_gateway::Gateway;
use portcullis_idp::universal_logout::{
    DeliveryError, LogoutTarget, RevocationSink, UniversalLogout,
};

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
    let sink = Arc::new(InProcess(gateway));
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
