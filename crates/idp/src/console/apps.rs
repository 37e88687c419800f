//! `/admin/apps`: every app the gateway fronts and every SAML SP of the
//! IdP — public address, SP metadata, sessions, upstream targets and
//! their last health check.
//!
//! The IdP does not know the gateway; the binary hands it a
//! [`GatewayView`] once both exist. Without one (an IdP serving only
//! external SPs) the page lists the IdP's SPs alone.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use askama::Template;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use portcullis_session::StoreError;
use time::OffsetDateTime;

use super::shell::{self, Section};
use super::Admin;
use crate::web::Idp;

/// One gateway app as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayApp {
    pub name: String,
    pub public_url: String,
    /// Who signs its users in: `"embedded IdP"`, `"external IdP"`, or
    /// `None` for an app without sign-in.
    pub sign_in: Option<&'static str>,
    pub sp_metadata_url: Option<String>,
    pub targets: Vec<TargetHealth>,
}

/// An upstream target and its last health check (`None`: not known yet,
/// or the app's upstream is built in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealth {
    pub url: String,
    pub up: Option<bool>,
}

pub type CountFuture<'a> =
    Pin<Box<dyn Future<Output = Result<BTreeMap<String, usize>, StoreError>> + Send + 'a>>;

/// What the console reads from the gateway in the same process.
pub trait GatewayView: Send + Sync + 'static {
    fn apps(&self) -> Vec<GatewayApp>;
    /// Live gateway sessions per app name.
    fn sessions_per_app(&self) -> CountFuture<'_>;
}

/// A gateway app's upstream target as its list item shows it.
struct TargetRow {
    url: String,
    class: &'static str,
    state: &'static str,
}

/// A gateway app as its row shows it.
struct AppRow {
    name: String,
    public_url: String,
    sign_in: &'static str,
    sp_metadata_url: Option<String>,
    sessions: String,
    /// Empty for an app whose upstream is built in.
    targets: Vec<TargetRow>,
}

/// A SAML SP of the IdP as its row shows it.
struct ServiceProviderRow {
    name: String,
    entity_id: String,
    acs_url: String,
    signed_requests: &'static str,
    single_logout: String,
    idp_sessions: usize,
}

#[derive(Template)]
#[template(path = "console/apps.html")]
struct AppsPage {
    /// `None` when this IdP is not serving a gateway.
    gateway_apps: Option<Vec<AppRow>>,
    service_providers: Vec<ServiceProviderRow>,
    idp_metadata: String,
}

impl Idp {
    /// Connects the console to the gateway; only the first call counts.
    pub fn set_gateway_view(&self, view: std::sync::Arc<dyn GatewayView>) {
        let _ = self.gateway_view.set(view);
    }

    /// Live gateway sessions per app, empty without a gateway; a store
    /// failure is logged and shown as no figures.
    pub(super) async fn gateway_sessions(&self) -> Option<BTreeMap<String, usize>> {
        let view = self.gateway_view.get()?;
        match view.sessions_per_app().await {
            Ok(counts) => Some(counts),
            Err(e) => {
                tracing::warn!(error = %e, "counting gateway sessions failed");
                None
            }
        }
    }

    /// IdP sessions that sent an assertion to each SP.
    pub(super) async fn idp_sessions_per_sp(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        if let Ok(sessions) = self.all_sessions(OffsetDateTime::now_utc()).await {
            for record in sessions {
                for sp in self.sso_participants(record.id.as_str()) {
                    *counts.entry(sp).or_default() += 1;
                }
            }
        }
        counts
    }

    pub(super) async fn apps_page(
        &self,
        _request: &Request<Bytes>,
        admin: &Admin,
    ) -> Response<Bytes> {
        let gateway_sessions = self.gateway_sessions().await;
        let idp_sessions = self.idp_sessions_per_sp().await;
        let gateway_apps = self.gateway_view.get().map(|view| {
            view.apps()
                .into_iter()
                .map(|app| AppRow {
                    sessions: match &gateway_sessions {
                        Some(counts) => counts.get(&app.name).copied().unwrap_or(0).to_string(),
                        None => "unknown".into(),
                    },
                    targets: app
                        .targets
                        .into_iter()
                        .map(|t| {
                            let (class, state) = match t.up {
                                Some(true) => ("ok", "up"),
                                Some(false) => ("bad", "down"),
                                None => ("unknown", "not checked"),
                            };
                            TargetRow {
                                url: t.url,
                                class,
                                state,
                            }
                        })
                        .collect(),
                    sign_in: app.sign_in.unwrap_or("none"),
                    name: app.name,
                    public_url: app.public_url,
                    sp_metadata_url: app.sp_metadata_url,
                })
                .collect()
        });
        let registered = self
            .saml
            .as_ref()
            .map(|s| s.settings.service_providers.snapshot())
            .unwrap_or_default();
        let service_providers = registered
            .iter()
            .map(|sp| ServiceProviderRow {
                name: sp.name.clone(),
                entity_id: sp.entity_id.clone(),
                acs_url: sp.acs_url.clone(),
                signed_requests: if sp.require_signed_requests {
                    "required"
                } else {
                    "optional"
                },
                single_logout: sp.slo_url.clone().unwrap_or_else(|| "—".into()),
                idp_sessions: idp_sessions.get(&sp.name).copied().unwrap_or(0),
            })
            .collect();
        let body = AppsPage {
            gateway_apps,
            service_providers,
            idp_metadata: self.path("/sso/saml/metadata"),
        };
        shell::page(
            self,
            admin,
            Some(Section::Apps),
            StatusCode::OK,
            "Apps",
            &body,
        )
    }
}
