//! The process's log: `tracing` events on stdout, JSON or compact, at the
//! configured level (or `RUST_LOG`'s). Two sources that would otherwise
//! reach it without structure or without bound go through it instead:
//! warnings libraries write when a client misbehaves
//! ([`library_noise`]), and what C libraries write to stderr
//! ([`stderr_capture`]). Panics are log events too, so nothing of the
//! process reaches stderr raw once it serves.

mod library_noise;
mod stderr_capture;

use portcullis_config::{LogFormat, Logging};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

pub use stderr_capture::capture_stderr;

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the
/// configured level so an operator can debug without editing the file.
pub fn init(config: &Logging) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(library_noise::LibraryNoise::default());
    let result = match config.format {
        LogFormat::Json => subscriber
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(true)
                    .json()
                    .flatten_event(true),
            )
            .try_init(),
        LogFormat::Pretty => subscriber
            .with(tracing_subscriber::fmt::layer().with_target(true).compact())
            .try_init(),
    };
    if let Err(e) = result {
        eprintln!("portcullis: logging already initialised: {e}");
        return;
    }
    log_panics();
}

/// A panic becomes one error event with its location (the default hook
/// writes to stderr, which [`capture_stderr`] turns into rate-limited
/// text: a panic must never be the line left out).
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(a non-text panic payload)");
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let thread = std::thread::current();
        tracing::error!(
            target: "portcullis::panic",
            thread = thread.name().unwrap_or("unnamed"),
            location,
            backtrace = %std::backtrace::Backtrace::capture(),
            "panic: {message}"
        );
    }));
}
