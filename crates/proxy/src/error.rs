use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Failures of the data plane's set-up: what stops it from starting or
/// reloading. Per-request failures never surface here; they become a
/// response in [`crate::respond`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot bind {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot load TLS material from {path}: {reason}")]
    TlsMaterial { path: PathBuf, reason: String },
    #[error("TLS configuration rejected: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot start a worker thread: {source}")]
    Runtime { source: io::Error },
    #[error("app {app}: {reason}")]
    App { app: String, reason: String },
    /// The app's auth phase (handed in by the binary) could not be compiled.
    #[error("app {app}: {source}")]
    Auth { app: String, source: CompileError },
}

/// Why an app's auth phase (handed in by the binary) could not be compiled.
pub type CompileError = Box<dyn std::error::Error + Send + Sync>;
