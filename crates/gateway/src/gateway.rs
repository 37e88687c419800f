//! The SP side of every `auth = "saml"` app, built once at start: each app's
//! SAML SP, whom each app takes Universal Logout from, and the state all
//! apps share. It hands the proxy one auth phase per app (as the proxy's
//! [`AuthProvider`]) at start and at every reload.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use portcullis_config::{App, AppIdp, Config};
use portcullis_proxy::auth::CompileError;
use portcullis_proxy::{AuthPhase, AuthProvider, ClientLimit};

use crate::backend_logout;
use crate::error::{BuildError, BuildProblem};
use crate::gate::AppGate;
use crate::idp_trust::IdpTrust;
use crate::plan::AppPlan;
use crate::post_auth::ContextCheck;
use crate::revocation::{RevocationTrust, Revocations};
use crate::session::{log_ended, Sessions};
use crate::shared::{self, Shared};
use crate::sp::AppSp;
use portcullis_session::{EndReason, MemoryOneTime, DEFAULT_ONE_TIME_CAPACITY};

/// How often sessions nobody touches are looked at, so what they opened
/// (tunnels, streams, backend sessions) ends on time.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// The embedded IdP as a Universal Logout issuer: apps on it trust its key.
#[derive(Debug, Clone)]
pub struct EmbeddedIssuer {
    /// The `iss` its tokens carry (its public URL).
    pub issuer: String,
    /// The JWKS it publishes at `/oauth2/v1/keys`.
    pub jwks: serde_json::Value,
}

pub struct Gateway {
    /// Built at start: adding SAML to an app (or changing its SP key) needs
    /// a restart.
    sps: HashMap<String, Arc<AppSp>>,
    shared: Arc<Shared>,
    /// Taken by [`spawn_upkeep`](Self::spawn_upkeep).
    hooks: std::sync::Mutex<Option<backend_logout::Hooks>>,
}

/// Where the gateway keeps app sessions and one-time uses (assertion and
/// request ids, Universal Logout `jti`s): memory by default, the shared
/// backends in a cluster's shared mode.
pub struct GatewayStores {
    pub sessions: Sessions,
    pub one_time: Arc<dyn portcullis_session::OneTimeStore>,
}

impl GatewayStores {
    /// Everything in this process's memory.
    pub fn memory() -> Self {
        Self {
            sessions: Sessions::memory(),
            one_time: Arc::new(MemoryOneTime::new(DEFAULT_ONE_TIME_CAPACITY)),
        }
    }
}

impl Gateway {
    /// What `app`'s SP trusts about its IdP, for a metadata refresh to
    /// replace; `None` for an app without SAML.
    pub fn idp_trust(&self, app: &str) -> Option<Arc<IdpTrust>> {
        self.sps.get(app).map(|sp| sp.idp_trust().clone())
    }

    /// Builds the SP of every `auth` app; every problem is reported, not
    /// just the first. `embedded` is the embedded IdP's signing JWKS, when
    /// there is one.
    pub fn build(
        config: &Config,
        embedded: Option<&EmbeddedIssuer>,
    ) -> Result<Gateway, Vec<BuildError>> {
        Self::build_with(config, embedded, GatewayStores::memory())
    }

    /// [`build`](Self::build), keeping sessions and one-time uses in
    /// `stores` (a cluster's shared backends).
    pub fn build_with(
        config: &Config,
        embedded: Option<&EmbeddedIssuer>,
        stores: GatewayStores,
    ) -> Result<Gateway, Vec<BuildError>> {
        let mut errors = Vec::new();
        let mut sps = HashMap::new();
        let mut trust = HashMap::new();
        for (index, app) in config.apps.iter().enumerate() {
            let Some(auth) = &app.auth else { continue };
            let fail = |key: &str, problem| BuildError {
                app: app.name.clone(),
                key: format!("app[{index}].{key}"),
                problem,
            };
            match AppSp::build(config, auth) {
                Ok(sp) => {
                    sps.insert(app.name.clone(), Arc::new(sp));
                }
                Err(problem) => {
                    let key = match &problem {
                        BuildProblem::Key { what, .. } if what.starts_with("sp_encryption") => {
                            "sp_encryption_key"
                        }
                        _ => "sp_signing_key",
                    };
                    errors.push(fail(key, problem))
                }
            }
            match app_trust(auth, embedded) {
                Ok(Some(t)) => {
                    trust.insert(app.name.clone(), Arc::new(t));
                }
                Ok(None) => {}
                Err(problem) => errors.push(fail("universal_logout_jwks_file", problem)),
            }
        }
        let hooks = match backend_logout::hooks(config) {
            Ok(hooks) => Some(hooks),
            Err(hook_errors) => {
                errors.extend(hook_errors);
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let GatewayStores { sessions, one_time } = stores;
        Ok(Gateway {
            sps,
            shared: Arc::new(Shared {
                acs_limit: ClientLimit::per_minute(config.server.acs_per_minute),
                saml_work: shared::saml_work(),
                revocations: Revocations::new(trust, one_time.clone(), sessions.clone()),
                sessions,
                one_time,
                context: std::sync::OnceLock::new(),
            }),
            hooks: std::sync::Mutex::new(hooks),
        })
    }

    /// Checks every app's plan as a reload would compile it (for `check`).
    pub fn check(&self, config: &Config) -> Result<(), Vec<BuildError>> {
        let errors: Vec<BuildError> = config
            .apps
            .iter()
            .enumerate()
            .filter(|(_, app)| app.auth.is_some())
            .filter_map(|(index, app)| {
                self.plan(config, app).err().map(|problem| BuildError {
                    app: app.name.clone(),
                    key: format!("app[{index}]"),
                    problem,
                })
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Enables post-auth evaluation of gateway sessions. Only the first
    /// call takes effect; the checker swaps its own settings on reload.
    pub fn set_context_check(&self, check: Arc<dyn ContextCheck>) {
        let _ = self.shared.context.set(check);
    }

    /// Live gateway sessions per app name (the admin console's figures).
    pub async fn sessions_per_app(
        &self,
    ) -> Result<std::collections::BTreeMap<String, usize>, portcullis_session::StoreError> {
        self.shared
            .sessions
            .count_per_app(OffsetDateTime::now_utc())
            .await
    }

    /// Universal Logout verification, for the embedded IdP's in-process
    /// delivery.
    pub fn revocations(&self) -> &Revocations {
        &self.shared.revocations
    }

    /// Background upkeep on the caller's runtime: the session sweeper and
    /// the backend logout hooks. Only the first call starts them.
    pub fn spawn_upkeep(&self) {
        let hooks = self
            .hooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(hooks) = hooks else { return };
        backend_logout::spawn(&self.shared.sessions, hooks);
        let shared = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let now = time::OffsetDateTime::now_utc();
                match shared.sessions.sweep(now).await {
                    Ok(ended) => {
                        for session in &ended {
                            let reason =
                                session.end_reason_at(now).unwrap_or(EndReason::IdleTimeout);
                            log_ended(session, reason, None);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "gateway session sweep failed"),
                }
            }
        });
    }

    fn plan(&self, config: &Config, app: &App) -> Result<AppPlan, BuildProblem> {
        let auth = app.auth.as_ref().ok_or(BuildProblem::NotBuiltAtStart)?;
        let sp = self
            .sps
            .get(&app.name)
            .cloned()
            .ok_or(BuildProblem::NotBuiltAtStart)?;
        AppPlan::compile(config, app, auth, sp, self.shared.clone())
    }
}

impl AuthProvider for Gateway {
    fn compile(&self, config: &Config, app: &App) -> Result<Arc<dyn AuthPhase>, CompileError> {
        let plan = self.plan(config, app)?;
        Ok(Arc::new(AppGate(Arc::new(plan))))
    }
}

/// The issuer an app takes Universal Logout from: the embedded IdP for
/// apps on it, the configured JWKS file for apps on an external IdP.
fn app_trust(
    auth: &portcullis_config::AppAuth,
    embedded: Option<&EmbeddedIssuer>,
) -> Result<Option<RevocationTrust>, BuildProblem> {
    match &auth.idp {
        AppIdp::Embedded => match embedded {
            Some(idp) => RevocationTrust::from_jwks_json(idp.issuer.clone(), &idp.jwks.to_string())
                .map(Some)
                .map_err(BuildProblem::EmbeddedJwks),
            None => Ok(None),
        },
        AppIdp::External(_) => {
            let Some(jwks) = &auth.universal_logout else {
                return Ok(None);
            };
            let text =
                std::fs::read_to_string(&jwks.jwks_file).map_err(|source| BuildProblem::Read {
                    path: jwks.jwks_file.clone(),
                    source,
                })?;
            RevocationTrust::from_jwks_json(jwks.issuer.clone(), &text)
                .map(Some)
                .map_err(|source| BuildProblem::Jwks {
                    path: jwks.jwks_file.clone(),
                    source,
                })
        }
    }
}
