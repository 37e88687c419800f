//! Warnings h2 and rustls write when a client misbehaves: one per reset
//! flood, one per client sending an IP address as SNI (every curl and wrk
//! does). A client decides how many there are (5,814 h2 lines in 20 s in
//! one test), so each is counted in
//! `portcullis_library_log_events_total{source}` and at most one per
//! source and interval is written. Errors, and the levels below WARN that
//! an operator asks for with `RUST_LOG` while debugging, pass untouched.

use portcullis_proxy::log_rate::LogRate;
use portcullis_proxy::{library_log_events, LogSourceLabels};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::layer::{Context, Layer};

/// Libraries whose warnings are about the peer, not about Portcullis.
const SOURCES: [&str; 2] = ["h2", "rustls"];

pub struct LibraryNoise {
    rates: [LogRate; SOURCES.len()],
}

impl Default for LibraryNoise {
    fn default() -> Self {
        LibraryNoise {
            rates: std::array::from_fn(|_| LogRate::default()),
        }
    }
}

/// Which of [`SOURCES`] `target` (a module path) belongs to.
fn source_of(target: &str) -> Option<usize> {
    SOURCES.iter().position(|crate_name| {
        target
            .strip_prefix(crate_name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

impl<S: Subscriber> Layer<S> for LibraryNoise {
    // `event_enabled` filters for the whole subscriber: an event refused
    // here reaches no output.
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        // rustls logs through the `log` crate; its records arrive under a
        // generic callsite and carry their real target in fields.
        let normalized = event.normalized_metadata();
        let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
        if *metadata.level() != Level::WARN {
            return true;
        }
        let Some(index) = source_of(metadata.target()) else {
            return true;
        };
        library_log_events()
            .get_or_create(&LogSourceLabels {
                source: SOURCES[index],
            })
            .inc();
        self.rates[index].note().is_some()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Counts the events that reach the output, by target.
    #[derive(Clone, Default)]
    struct Written {
        h2: Arc<AtomicUsize>,
        other: Arc<AtomicUsize>,
    }

    impl<S: Subscriber> Layer<S> for Written {
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            let counter = if source_of(event.metadata().target()) == Some(0) {
                &self.h2
            } else {
                &self.other
            };
            counter.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn h2_count() -> u64 {
        library_log_events()
            .get_or_create(&LogSourceLabels { source: "h2" })
            .get()
    }

    #[test]
    fn a_flood_of_library_warnings_is_one_line_and_a_count() {
        let written = Written::default();
        let subscriber = tracing_subscriber::registry()
            .with(LibraryNoise::default())
            .with(written.clone());
        let before = h2_count();
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..1000 {
                tracing::warn!(target: "h2::proto::streams::recv", "remotely-reset streams reached limit");
            }
            tracing::error!(target: "h2::proto", "an error is never held back");
            for _ in 0..3 {
                tracing::warn!(target: "h2x", "another crate that merely starts with h2");
                tracing::warn!(target: "portcullis_proxy::conn", "our own warnings pass");
            }
        });
        assert_eq!(
            written.h2.load(Ordering::SeqCst),
            2,
            "one warning, one error"
        );
        assert_eq!(written.other.load(Ordering::SeqCst), 6);
        assert!(h2_count() - before >= 1000, "every warning is counted");
    }

    #[test]
    fn targets_match_whole_crate_names() {
        assert_eq!(source_of("rustls"), Some(1));
        assert_eq!(source_of("rustls::msgs::handshake"), Some(1));
        assert_eq!(source_of("h2::codec"), Some(0));
        assert_eq!(source_of("h2c"), None);
        assert_eq!(source_of("portcullis::h2"), None);
    }
}
