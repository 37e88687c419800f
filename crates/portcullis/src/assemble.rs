//! Builds every part a configuration names — the embedded IdP from its
//! files, the gateway's SP side, Universal Logout between them — and
//! collects every problem on the way, so `check` reports them all at once
//! and `run` refuses with the same list.

use std::sync::Arc;

use portcullis_config::{Config, Problem};
use portcullis_gateway::{EmbeddedIssuer, Gateway, GatewayStores};
use portcullis_idp::web::Idp;

use crate::idp_service::{self, IdpFiles};
use crate::universal_logout;

/// What `run` serves.
pub struct Parts {
    pub idp: Option<Arc<Idp>>,
    pub gateway: Arc<Gateway>,
    /// The shared store's readiness, in shared mode.
    pub store_ready: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
}

/// Loads and checks everything `config` names; `Err` holds every problem.
pub fn build(config: &Config) -> Result<(Option<IdpFiles>, Arc<Gateway>), Vec<Problem>> {
    build_with(config, GatewayStores::memory())
}

fn build_with(
    config: &Config,
    stores: GatewayStores,
) -> Result<(Option<IdpFiles>, Arc<Gateway>), Vec<Problem>> {
    let mut problems = Vec::new();
    let files = match &config.idp {
        Some(idp) => match idp_service::load_files(idp) {
            Ok(files) => Some(files),
            Err(lines) => {
                problems.extend(lines.into_iter().map(|message| Problem {
                    key: "idp".into(),
                    line: None,
                    message,
                }));
                None
            }
        },
        None => None,
    };
    let embedded = files
        .as_ref()
        .and_then(|files| embedded_issuer(config, files, &mut problems));
    let gateway = match Gateway::build_with(config, embedded.as_ref(), stores) {
        Ok(gateway) => {
            if let Err(errors) = gateway.check(config) {
                problems.extend(errors.iter().map(problem));
            }
            Some(gateway)
        }
        Err(errors) => {
            problems.extend(errors.iter().map(problem));
            None
        }
    };
    match gateway {
        Some(gateway) if problems.is_empty() => Ok((files, Arc::new(gateway))),
        _ => Err(problems),
    }
}

/// What `check` prints and `run` logs at WARN without refusing: the
/// IdP's admin-console notes, every legacy peer opt-in, a
/// `trusted_proxies` entry that trusts every address, and `[cluster]`
/// settings that reach less than they seem to.
pub fn notes(config: &Config, files: Option<&IdpFiles>) -> Vec<String> {
    let mut notes: Vec<String> = files.iter().flat_map(|f| f.notes.clone()).collect();
    notes.extend(config.cluster.notes());
    for everyone in config
        .server
        .trusted_proxies
        .iter()
        .filter(|net| net.prefix_len() == 0)
    {
        notes.push(format!(
            "[server] trusted_proxies: {everyone} believes every client's Forwarded / X-Forwarded-For, \
             so any client can claim any address (rate limits, post-auth IP and ASN checks, admin session binding)"
        ));
    }
    for sp in config.idp.iter().flat_map(|idp| &idp.service_providers) {
        notes.extend(sp.notes());
    }
    for app in &config.apps {
        if let Some(portcullis_config::AppIdp::External(external)) =
            app.auth.as_ref().map(|auth| &auth.idp)
        {
            notes.extend(external.notes(&app.name));
        }
    }
    notes
}

/// Builds the parts and starts the IdP's side of them (its System Log,
/// Universal Logout dispatch into the gateway). Must run inside a runtime.
pub fn start(config: &Config) -> anyhow::Result<Result<Parts, Vec<Problem>>> {
    let stores = crate::cluster::open(config)?;
    let (files, gateway) = match build_with(config, stores.gateway) {
        Ok(built) => built,
        Err(problems) => return Ok(Err(problems)),
    };
    for note in notes(config, files.as_ref()) {
        tracing::warn!(note = %note, "configuration note");
    }
    let idp = match files {
        Some(files) => {
            let dispatch = universal_logout::dispatcher(config, &files, gateway.clone())?;
            let idp = idp_service::start(config, files, stores.idp)?;
            if let Some(dispatch) = dispatch {
                idp.set_universal_logout(dispatch);
            }
            gateway.set_context_check(Arc::new(crate::post_auth::GatewaySessions(idp.clone())));
            crate::universal_logout::end_idp_sessions_on_peer_revocations(config, &gateway, &idp);
            Some(idp)
        }
        None => None,
    };
    Ok(Ok(Parts {
        idp,
        gateway,
        store_ready: stores.ready,
    }))
}

fn embedded_issuer(
    config: &Config,
    files: &IdpFiles,
    problems: &mut Vec<Problem>,
) -> Option<EmbeddedIssuer> {
    let key = &files.saml.as_ref()?.signing_key;
    match key.jwks() {
        Ok(jwks) => Some(EmbeddedIssuer {
            issuer: universal_logout::embedded_issuer(config)?,
            jwks: jwks.document,
        }),
        Err(e) => {
            problems.push(Problem {
                key: "idp.signing_key".into(),
                line: None,
                message: format!("unusable for Universal Logout tokens: {e}"),
            });
            None
        }
    }
}

fn problem(error: &portcullis_gateway::BuildError) -> Problem {
    Problem {
        key: error.key.clone(),
        line: None,
        message: error.problem.to_string(),
    }
}
