//! Universal Logout wiring: which issuer each app's revocation endpoint
//! trusts, and how the embedded IdP's dispatcher reaches the gateway.
//!
//! Apps on the embedded IdP trust its key (the JWKS it serves at
//! `/oauth2/v1/keys`) with the IdP's public URL as issuer, and are all
//! logout-enabled: the dispatcher hands them its tokens in-process, through
//! the same verification the HTTP endpoint uses. Apps on an external IdP
//! trust the JWKS file named by `universal_logout_jwks_file`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context;
use portcullis_config::{AppIdp, Config};
use portcullis_idp::universal_logout::{jwks_for, LogoutTarget, RevocationSink, UniversalLogout};
use portcullis_proxy::{GtrTrust, LocalApps};
use portcullis_saml::SigningKey;

/// The embedded IdP's issuer: its public URL without a trailing slash.
pub fn embedded_issuer(config: &Config) -> Option<String> {
    let idp = config.idp.as_ref()?;
    Some(idp.public.url())
}

/// The embedded IdP's dispatcher, when it has a signing key; also fills
/// `locals.gtr_trust` for every app.
pub fn wire(
    config: &Config,
    locals: &mut LocalApps,
) -> anyhow::Result<Option<Arc<UniversalLogout>>> {
    for app in &config.apps {
        let Some(auth) = &app.auth else { continue };
        if let AppIdp::External(_) = &auth.idp {
            if let Some(jwks) = &auth.universal_logout {
                let text = std::fs::read_to_string(&jwks.jwks_file).with_context(|| {
                    format!("app {}: reading {}", app.name, jwks.jwks_file.display())
                })?;
                let trust = GtrTrust::from_jwks_json(jwks.issuer.clone(), &text).map_err(|e| {
                    anyhow::anyhow!("app {}: {}: {e}", app.name, jwks.jwks_file.display())
                })?;
                locals.gtr_trust.insert(app.name.clone(), Arc::new(trust));
            }
        }
    }
    let (Some(idp), Some(issuer)) = (config.idp.as_ref(), embedded_issuer(config)) else {
        return Ok(None);
    };
    let Some(saml) = &idp.saml else {
        return Ok(None);
    };
    let key = SigningKey::from_pem(
        &std::fs::read(&saml.signing_key)
            .with_context(|| format!("reading {}", saml.signing_key.display()))?,
        &std::fs::read(&saml.signing_cert)
            .with_context(|| format!("reading {}", saml.signing_cert.display()))?,
    )
    .context("[idp] signing key")?;
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
    // The trust entries go in before the sink takes its copy of `locals`.
    let jwks = jwks_for(&key)
        .context("Universal Logout key")?
        .1
        .to_string();
    for target in &targets {
        let trust = GtrTrust::from_jwks_json(issuer.clone(), &jwks)
            .map_err(|e| anyhow::anyhow!("the IdP's own JWKS: {e}"))?;
        locals.gtr_trust.insert(target.app.clone(), Arc::new(trust));
    }
    let sink = Arc::new(InProcess(locals.clone()));
    let ul = UniversalLogout::new(issuer, &key, targets, sink).context("Universal Logout key")?;
    Ok(Some(Arc::new(ul)))
}

/// Delivery into this process's gateway.
struct InProcess(LocalApps);

impl RevocationSink for InProcess {
    fn deliver(
        &self,
        app: &str,
        audience: &str,
        authorization: &str,
        body: &[u8],
    ) -> Pin<Box<dyn Future<Output = Result<u16, String>> + Send>> {
        let status = match portcullis_proxy::revoke_in_process(
            &self.0,
            app,
            audience,
            authorization,
            body,
        ) {
            Ok(_) => 204,
            Err(e) => e.status().as_u16(),
        };
        Box::pin(async move { Ok(status) })
    }
}
