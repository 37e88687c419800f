//! The gateway as the embedded IdP's admin console shows it: every app
//! with its public address, sign-in, SP metadata and upstream targets
//! (their last health check, from the metrics every worker writes), and
//! the live gateway sessions per app.

use std::sync::Arc;

use portcullis_config::{AppIdp, Config, Upstream};
use portcullis_gateway::Gateway;
use portcullis_idp::console::{CountFuture, GatewayApp, GatewayView, TargetHealth};
use portcullis_proxy::{target_label, Metrics};

pub struct ConsoleView {
    apps: Vec<GatewayApp>,
    gateway: Arc<Gateway>,
    metrics: Option<Arc<Metrics>>,
}

impl ConsoleView {
    pub fn new(config: &Config, gateway: Arc<Gateway>, metrics: Option<Arc<Metrics>>) -> Self {
        let apps = config
            .apps
            .iter()
            .map(|app| {
                let targets = match &app.upstream {
                    Upstream::Builtin(_) => Vec::new(),
                    Upstream::Http(first) => std::iter::once(first)
                        .chain(&app.more_targets)
                        .map(|t| TargetHealth {
                            url: target_label(t),
                            up: None,
                        })
                        .collect(),
                };
                GatewayApp {
                    name: app.name.clone(),
                    public_url: app.public.url(),
                    sign_in: app.auth.as_ref().map(|auth| match auth.idp {
                        AppIdp::Embedded => "embedded IdP",
                        AppIdp::External(_) => "external IdP",
                    }),
                    // The SP's entity id is its metadata URL.
                    sp_metadata_url: app.auth.as_ref().map(|auth| auth.entity_id.clone()),
                    targets,
                }
            })
            .collect();
        ConsoleView {
            apps,
            gateway,
            metrics,
        }
    }
}

impl GatewayView for ConsoleView {
    fn apps(&self) -> Vec<GatewayApp> {
        let mut apps = self.apps.clone();
        if let Some(metrics) = &self.metrics {
            for app in &mut apps {
                for target in &mut app.targets {
                    target.up = metrics.target_up(&app.name, &target.url);
                }
            }
        }
        apps
    }

    fn sessions_per_app(&self) -> CountFuture<'_> {
        Box::pin(self.gateway.sessions_per_app())
    }
}
