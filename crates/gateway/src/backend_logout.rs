//! Backend logout hooks: when an app's gateway session ends — by logout,
//! Single Logout, Universal Logout or expiry — the gateway calls the app's
//! `backend_logout_url` server-side with the identity it used to inject,
//! so the backend's own session dies too. Calls run in the background,
//! are bounded by a timeout, and every outcome is logged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use portcullis_config::{Config, Upstream};
use portcullis_proxy::X_PORTCULLIS_USER;

use crate::error::{BuildError, BuildProblem};
use crate::session::{Session, Sessions};

const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Every app's hook, ready to call: its URL and an HTTP client that
/// trusts the app's upstream CA.
pub(crate) struct Hooks(HashMap<String, (Uri, HookClient)>);

type HookClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Every app's `backend_logout_url`, checked and given its client (used by
/// `check` and `run` alike, so a bad URL or CA is reported before start).
pub(crate) fn hooks(config: &Config) -> Result<Hooks, Vec<BuildError>> {
    let mut hooks = HashMap::new();
    let mut errors = Vec::new();
    for (index, app) in config.apps.iter().enumerate() {
        let Some(url) = app
            .auth
            .as_ref()
            .and_then(|a| a.backend_logout_url.as_ref())
        else {
            continue;
        };
        let fail = |problem| BuildError {
            app: app.name.clone(),
            key: format!("app[{index}].backend_logout_url"),
            problem,
        };
        let uri: Uri = match url.parse() {
            Ok(uri) => uri,
            Err(source) => {
                errors.push(fail(BuildProblem::BackendLogoutUrl {
                    url: url.clone(),
                    source,
                }));
                continue;
            }
        };
        let ca = match &app.upstream {
            Upstream::Http(target) => target.ca.as_deref(),
            Upstream::Builtin(_) => None,
        };
        match portcullis_proxy::upstream_connector(&app.name, ca, None, CALL_TIMEOUT) {
            Ok(connector) => {
                let client = Client::builder(TokioExecutor::new()).build(connector);
                hooks.insert(app.name.clone(), (uri, client));
            }
            Err(e) => errors.push(fail(BuildProblem::BackendLogoutClient(e))),
        }
    }
    if errors.is_empty() {
        Ok(Hooks(hooks))
    } else {
        Err(errors)
    }
}

/// Starts the background caller on the current runtime; returns at once.
pub(crate) fn spawn(sessions: &Sessions, hooks: Hooks) {
    if hooks.0.is_empty() {
        return;
    }
    let by_app = Arc::new(hooks.0);
    let mut ended = sessions.subscribe();
    tokio::spawn(async move {
        loop {
            match ended.recv().await {
                Ok(ended) => {
                    let session = ended.session;
                    if let Some((url, client)) = by_app.get(session.body.app.as_str()) {
                        tokio::spawn(call(url.clone(), client.clone(), session));
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::error!(missed, "backend logout hooks missed ended sessions");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

async fn call(url: Uri, client: HookClient, session: Session) {
    let mut request = Request::new(Empty::<Bytes>::new());
    *request.method_mut() = Method::POST;
    *request.uri_mut() = url.clone();
    let session = session.body;
    if let Ok(user) = HeaderValue::from_str(&session.user) {
        request
            .headers_mut()
            .insert(X_PORTCULLIS_USER.clone(), user);
    }
    if let Some(index) = session
        .session_index
        .as_deref()
        .and_then(|i| HeaderValue::from_str(i).ok())
    {
        request
            .headers_mut()
            .insert("x-portcullis-session-index", index);
    }
    let outcome = tokio::time::timeout(CALL_TIMEOUT, async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        // Drain so the connection can be reused.
        let _ = response.into_body().collect().await;
        Ok::<_, String>(status)
    })
    .await;
    match outcome {
        Ok(Ok(status)) if status.is_success() => tracing::info!(
            app = %session.app,
            user = %session.user,
            status = status.as_u16(),
            "backend logout called"
        ),
        Ok(Ok(status)) => tracing::warn!(
            app = %session.app,
            user = %session.user,
            status = status.as_u16(),
            url = %url,
            "backend logout answered with an error"
        ),
        Ok(Err(e)) => {
            tracing::warn!(app = %session.app, user = %session.user, error = %e, url = %url, "backend logout failed")
        }
        Err(_) => {
            tracing::warn!(app = %session.app, user = %session.user, url = %url, "backend logout timed out")
        }
    }
}
