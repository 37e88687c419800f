//! `portcullis run`: start the gateway, reload on SIGHUP, drain on SIGTERM.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use portcullis_proxy::{Server, Services};
use tokio::signal::unix::{signal, SignalKind};

use crate::{assemble, logging, metadata};

pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let config = match portcullis_config::load(path, &metadata::SamlMetadata) {
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
    raise_descriptor_limit();
    // The proxy runs its own worker threads; this runtime only waits for
    // signals, drives reloads and the drain, and runs background upkeep.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(path, config))
}

async fn serve(path: &Path, config: portcullis_config::Config) -> anyhow::Result<ExitCode> {
    let mut hangup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let parts = match assemble::start(&config)? {
        Ok(parts) => parts,
        Err(problems) => {
            let problems = portcullis_config::Problems {
                file: config.source.clone(),
                problems,
            };
            eprintln!("{problems}");
            eprintln!(
                "refusing to start: {} problem(s) found",
                problems.problems.len()
            );
            return Ok(ExitCode::from(crate::EXIT_INVALID_CONFIG));
        }
    };
    if let Some(idp) = &parts.idp {
        crate::idp_service::spawn_upkeep(idp);
    }
    parts.gateway.spawn_upkeep();
    crate::metadata_refresh::spawn(&config, &parts.gateway, parts.idp.as_deref());
    let services = Services {
        idp: parts
            .idp
            .clone()
            .map(|idp| Arc::new(crate::idp_service::IdpService(idp)) as _),
        auth: Some(parts.gateway.clone()),
        store_ready: parts.store_ready.clone(),
    };
    let server = Server::start(&config, services)
        .await
        .context("starting the gateway")?;
    if let Some(idp) = &parts.idp {
        idp.set_gateway_view(Arc::new(crate::console_view::ConsoleView::new(
            &config,
            parts.gateway.clone(),
            server.metrics(),
        )));
    }
    if let Err(e) = logging::capture_stderr() {
        tracing::warn!(error = %e, "cannot capture stderr; library output stays unstructured");
    }
    let mut shutdown_timeout = config.server.timeouts.shutdown;
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                if let Some((timeout, config)) = reload(path, &server) {
                    shutdown_timeout = timeout;
                    if let Some(idp) = &parts.idp {
                        crate::post_auth::reload(&config, idp);
                        crate::idp_service::reload_users(&config, idp).await;
                    }
                }
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    tracing::info!(timeout = ?shutdown_timeout, "draining");
    let drained = server.shutdown(shutdown_timeout).await;
    if let Some(idp) = &parts.idp {
        if let Err(e) = idp.system_log().sync() {
            tracing::error!(error = %e, "System Log sync failed");
        }
    }
    // The management listener answers `/readyz` 503 up to here; dropping
    // the server stops it with the workers.
    drop(server);
    if drained.abandoned > 0 {
        tracing::warn!(
            connections = drained.abandoned,
            "shutdown deadline passed; closing remaining connections"
        );
    } else {
        tracing::info!("drained; exiting");
    }
    Ok(ExitCode::SUCCESS)
}

/// SIGHUP: a new plan from the file, or the old one kept with every reason
/// logged. Returns the new shutdown timeout when the reload took.
fn reload(
    path: &Path,
    server: &Server,
) -> Option<(std::time::Duration, portcullis_config::Config)> {
    match portcullis_config::load(path, &metadata::SamlMetadata) {
        Ok(new) => match server.reload(&new) {
            Ok(()) => {
                tracing::info!(config = %path.display(), apps = new.apps.len(), "configuration reloaded");
                Some((new.server.timeouts.shutdown, new))
            }
            Err(e) => {
                tracing::error!(error = %e, "reload failed; still serving the previous configuration");
                None
            }
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
            tracing::error!(
                problems = problems.problems.len(),
                "reload refused; still serving the previous configuration"
            );
            server.reload_refused();
            None
        }
    }
}

/// Raises the soft descriptor limit to the hard one: a gateway holds two
/// descriptors per proxied connection, and the common default soft limit
/// of 1,024 runs out at a few hundred clients. The connection budget
/// (`[server] max_connections`) is sized from the result.
fn raise_descriptor_limit() {
    match portcullis_proxy::descriptors::raise_limit() {
        Ok(limit) => tracing::info!(
            descriptors.soft = limit.soft,
            descriptors.hard = limit.hard,
            "file descriptor limit"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot raise the file descriptor limit"),
    }
}
