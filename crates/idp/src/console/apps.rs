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

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use portcullis_session::StoreError;
use time::OffsetDateTime;

use super::shell::{self, Markup, Section};
use super::Admin;
use crate::web::{respond::escape, Idp};

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
        let mut body = String::from("<h2>Gateway apps</h2>");
        match self.gateway_view.get() {
            None => body.push_str("<p>This IdP is not serving a gateway.</p>"),
            Some(view) => {
                body.push_str(
                    "<table id=\"gateway-apps\"><thead><tr><th>App</th><th>Public address</th>\
<th>Sign-in</th><th>SP metadata</th><th>Gateway sessions</th><th>Upstream targets</th></tr></thead><tbody>",
                );
                for app in view.apps() {
                    let sessions = match &gateway_sessions {
                        Some(counts) => counts.get(&app.name).copied().unwrap_or(0).to_string(),
                        None => "unknown".into(),
                    };
                    let metadata = match &app.sp_metadata_url {
                        Some(url) => format!("<a href=\"{0}\">{0}</a>", escape(url)),
                        None => "—".into(),
                    };
                    let targets: String = if app.targets.is_empty() {
                        "built in".into()
                    } else {
                        let items: String = app
                            .targets
                            .iter()
                            .map(|t| {
                                let (class, state) = match t.up {
                                    Some(true) => ("ok", "up"),
                                    Some(false) => ("bad", "down"),
                                    None => ("unknown", "not checked"),
                                };
                                format!(
                                    "<li>{} <span class=\"badge {class}\">{state}</span></li>",
                                    escape(&t.url)
                                )
                            })
                            .collect();
                        format!("<ul class=\"plain\">{items}</ul>")
                    };
                    body.push_str(&format!(
                        "<tr data-app=\"{name}\"><td>{name}</td><td>{url}</td><td>{sign_in}</td><td>{metadata}</td>\
<td class=\"num\">{sessions}</td><td>{targets}</td></tr>",
                        name = escape(&app.name),
                        url = escape(&app.public_url),
                        sign_in = app.sign_in.unwrap_or("none"),
                    ));
                }
                body.push_str("</tbody></table>");
            }
        }
        body.push_str("<h2>SAML service providers of the IdP</h2>");
        let sps = self
            .saml
            .as_ref()
            .map(|s| s.settings.service_providers.as_slice())
            .unwrap_or_default();
        if sps.is_empty() {
            body.push_str("<p>No service provider is configured.</p>");
        } else {
            body.push_str(
                "<table id=\"service-providers\"><thead><tr><th>Name</th><th>Entity ID</th><th>ACS</th>\
<th>Signed requests</th><th>Single Logout</th><th>IdP sessions</th></tr></thead><tbody>",
            );
            for sp in sps {
                body.push_str(&format!(
                    "<tr data-sp=\"{name}\"><td>{name}</td><td>{entity}</td><td>{acs}</td><td>{signed}</td>\
<td>{slo}</td><td class=\"num\">{count}</td></tr>",
                    name = escape(&sp.name),
                    entity = escape(&sp.entity_id),
                    acs = escape(&sp.acs_url),
                    signed = if sp.require_signed_requests { "required" } else { "optional" },
                    slo = escape(sp.slo_url.as_deref().unwrap_or("—")),
                    count = idp_sessions.get(&sp.name).copied().unwrap_or(0),
                ));
            }
            body.push_str("</tbody></table>");
        }
        body.push_str(&format!(
            "<p>IdP metadata: <a href=\"{0}\">{0}</a></p>",
            escape(&self.path("/sso/saml/metadata"))
        ));
        shell::page(
            self,
            admin,
            Some(Section::Apps),
            StatusCode::OK,
            "Apps",
            &Markup(body),
        )
    }
}
