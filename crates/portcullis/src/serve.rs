//! `portcullis run`: start the gateway, reload on SIGHUP, drain on SIGTERM.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use std::sync::Arc;

use portcullis_proxy::{ClientLimit, Gateway, LocalApps};
use tokio::signal::unix::{signal, SignalKind};

use crate::logging;

pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let config = match portcullis_config::load(path, &crate::metadata::SamlMetadata) {
        Ok(config) => config,
        Err(problems) => {
            eprintln!("{problems}");
            eprintln!(
                "refusing to start: {} problem(s) found",
                problems.problems.len()
            );
            return Ok(ExitCode::from(crate::EXIT_INVALID_CONFIG));
        }
    };
    logging::init(&config.log);
    // The gateway runs its own worker threads; this runtime only waits for
    // signals and drives reloads and the drain.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(path, config))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(path: &Path, config: portcullis_config::Config) -> anyhow::Result<()> {
    let mut hangup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let idp = crate::idp_service::start(&config)?;
    let mut locals = LocalApps {
        sps: crate::gateway_sp::build(&config)?,
        acs_limit: Arc::new(ClientLimit::per_minute(config.server.acs_per_minute)),
        ..LocalApps::default()
    };
    let universal_logout = crate::universal_logout::wire(&config, &mut locals)?;
    if let Some(idp) = &idp {
        if let Some(ul) = universal_logout {
            idp.set_universal_logout(ul);
        }
        crate::idp_service::spawn_upkeep(idp);
        locals.idp = Some(Arc::new(crate::idp_service::IdpService(idp.clone())));
    }
    spawn_session_sweeper(locals.sessions.clone());
    portcullis_proxy::spawn_backend_logout(&locals.sessions, backend_logout_hooks(&config)?)
        .context("backend logout hooks")?;
    let gateway = Gateway::start(&config, locals)
        .await
        .context("starting the gateway")?;
    let mut shutdown_timeout = config.server.timeouts.shutdown;
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                match portcullis_config::load(path, &crate::metadata::SamlMetadata) {
                    Ok(new) => match gateway.reload(&new) {
                        Ok(()) => {
                            shutdown_timeout = new.server.timeouts.shutdown;
                            tracing::info!(config = %path.display(), apps = new.apps.len(), "configuration reloaded");
                        }
                        Err(e) => tracing::error!(error = %e, "reload failed; still serving the previous configuration"),
                    },
                    Err(problems) => {
                        for problem in &problems.problems {
                            tracing::error!(
                                config = %problems.file.display(),
                                line = problem.line,
                                key = %problem.key,
                                "{}", problem.message
                            );
                        }
                        tracing::error!(problems = problems.problems.len(), "reload refused; still serving the previous configuration");
                    }
                }
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    tracing::info!(timeout = ?shutdown_timeout, "draining");
    let drained = gateway.shutdown(shutdown_timeout).await;
    if let Some(idp) = &idp {
        if let Err(e) = idp.system_log().sync() {
            tracing::error!(error = %e, "System Log sync failed");
        }
    }
    if drained.abandoned > 0 {
        tracing::warn!(
            connections = drained.abandoned,
            "shutdown deadline passed; closing remaining connections"
        );
    } else {
        tracing::info!("drained; exiting");
    }
    Ok(())
}

/// Ends expired gateway sessions every few seconds, so what they opened
/// (WebSocket tunnels, streaming responses) closes on time and not only at
/// their next request.
fn spawn_session_sweeper(sessions: Arc<portcullis_proxy::SessionStore>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            for session in sessions.sweep(std::time::Instant::now()) {
                tracing::info!(
                    app = %session.app,
                    user = %session.user,
                    reason = portcullis_proxy::EndReason::Expired.as_str(),
                    "gateway session ended"
                );
            }
        }
    });
}

/// Every app's `backend_logout_url`, with the app's upstream CA.
fn backend_logout_hooks(
    config: &portcullis_config::Config,
) -> anyhow::Result<Vec<portcullis_proxy::BackendLogout>> {
    let mut hooks = Vec::new();
    for app in &config.apps {
        let Some(url) = app
            .auth
            .as_ref()
            .and_then(|a| a.backend_logout_url.as_ref())
        else {
            continue;
        };
        let ca = match &app.upstream {
            portcullis_config::Upstream::Http(target) => target.ca.clone(),
            portcullis_config::Upstream::Builtin(_) => None,
        };
        hooks.push(portcullis_proxy::BackendLogout {
            app: app.name.clone(),
            url: url
                .parse()
                .with_context(|| format!("app {}: backend_logout_url {url}", app.name))?,
            ca,
        });
    }
    Ok(hooks)
}
