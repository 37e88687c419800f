//! One app's gateway settings compiled for serving: cookies, session
//! lifetimes, access rules, landing and logout URLs, identity injection and
//! its SAML SP. Built at start and at every reload (once, shared by all
//! workers); in-flight requests finish on the plan they started with.

use std::sync::Arc;
use std::time::Duration;

use portcullis_config::{App, AppAuth, Config, IDP_COOKIE_PREFIX};

use crate::access::AccessRules;
use crate::cookies::{AppCookie, SameSite};
use crate::error::BuildProblem;
use crate::identity::{IdentityPlan, IdentitySigner};
use crate::shared::Shared;
use crate::sp::AppSp;
use crate::state::StateKey;

pub(crate) struct AppPlan {
    pub(crate) name: Arc<str>,
    /// The app's path prefix, `""` for `/`: what app paths are appended to.
    pub(crate) base_path: String,
    pub(crate) session_cookie: AppCookie,
    /// Binds an AuthnRequest (or our LogoutRequest) to the browser that
    /// started it.
    pub(crate) request_state: AppCookie,
    /// What request-state cookies are MAC'd with.
    pub(crate) request_state_key: StateKey,
    /// Every app's session and request-state cookie names: never expired
    /// as a backend's cookies.
    pub(crate) gateway_cookies: Arc<[String]>,
    pub(crate) idle: Duration,
    pub(crate) max: Duration,
    pub(crate) access: AccessRules,
    pub(crate) allow_idp_initiated: bool,
    /// After sign-in, land here (app path, prefix included) instead.
    pub(crate) login_landing: Option<String>,
    /// Where the signed-out page sends the browser instead.
    pub(crate) post_logout_url: Option<String>,
    /// The app has a backend logout hook: after its session ends, the
    /// backend's cookies are expired at the browser's next visit.
    pub(crate) expire_backend_cookies: bool,
    pub(crate) identity: IdentityPlan,
    pub(crate) urls: Urls,
    pub(crate) sp: Arc<AppSp>,
    pub(crate) shared: Arc<Shared>,
    /// Post-auth evaluation is the embedded IdP's policy: it covers the
    /// apps that sign in there.
    pub(crate) on_embedded_idp: bool,
}

/// The app's own gateway URLs.
pub(crate) struct Urls {
    /// The revocation endpoint: the `aud` Universal Logout tokens must carry.
    pub(crate) revocation: String,
}

impl AppPlan {
    pub(crate) fn compile(
        config: &Config,
        app: &App,
        auth: &AppAuth,
        sp: Arc<AppSp>,
        shared: Arc<Shared>,
    ) -> Result<AppPlan, BuildProblem> {
        let base_path = app.public.base_path().to_string();
        let cookie_path = if base_path.is_empty() {
            "/".to_string()
        } else {
            base_path.clone()
        };
        let request_state_key =
            StateKey::derive(&sp.key().rsa_key_der().map_err(|source| BuildProblem::Key {
                what: "sp_signing_key (request state)",
                source,
            })?);
        let identity = IdentityPlan::new(auth, app.public.url(), || IdentitySigner::new(sp.key()))?;
        Ok(AppPlan {
            name: Arc::from(app.name.as_str()),
            session_cookie: AppCookie::new(
                auth.session_cookie.clone(),
                cookie_path.clone(),
                SameSite::Lax,
            ),
            request_state: AppCookie::new(auth.request_cookie.clone(), cookie_path, SameSite::None),
            request_state_key,
            gateway_cookies: gateway_cookie_names(config),
            idle: auth.session_idle,
            max: auth.session_max,
            access: AccessRules::new(&auth.access),
            allow_idp_initiated: auth.allow_idp_initiated,
            login_landing: auth
                .login_landing
                .as_ref()
                .map(|path| format!("{base_path}{path}")),
            post_logout_url: auth.post_logout_url.as_ref().map(|url| {
                if url.starts_with('/') {
                    format!("{base_path}{url}")
                } else {
                    url.clone()
                }
            }),
            expire_backend_cookies: auth.backend_logout_url.is_some(),
            identity,
            urls: Urls {
                revocation: auth.gtr_url.clone(),
            },
            base_path,
            sp,
            shared,
            on_embedded_idp: auth.idp == portcullis_config::AppIdp::Embedded,
        })
    }

    /// The app's root page.
    pub(crate) fn root(&self) -> String {
        format!("{}/", self.base_path)
    }

    /// An app-relative path (`/…`) as a path on the public origin.
    pub(crate) fn path(&self, relative: &str) -> String {
        format!("{}{relative}", self.base_path)
    }

    /// A cookie of the gateway or the embedded IdP, which no backend owns.
    pub(crate) fn is_gateway_cookie(&self, name: &str) -> bool {
        name.starts_with(IDP_COOKIE_PREFIX) || self.gateway_cookies.iter().any(|g| g == name)
    }
}

fn gateway_cookie_names(config: &Config) -> Arc<[String]> {
    config
        .apps
        .iter()
        .filter_map(|app| app.auth.as_ref())
        .flat_map(|auth| [auth.session_cookie.clone(), auth.request_cookie.clone()])
        .collect()
}
