//! Replay protection for TOTP codes: a code (time step) that was accepted
//! once for a user can't be accepted again, nor can any older one.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// Remembers, per user id, the last TOTP time step that was accepted.
///
/// Callers only call [`accept`](Self::accept) after
/// [`verify_totp`](super::verify_totp) succeeded for a directory user, so
/// the map holds at most one entry per enrolled user and stays bounded.
#[derive(Debug, Default)]
pub struct TotpReplayGuard {
    last_step: Mutex<HashMap<String, u64>>,
}

impl TotpReplayGuard {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `step` as used by `user_id` and returns true, unless a step
    /// at or after it was already accepted for that user (a replay, or an
    /// older code still inside the skew window), in which case returns false.
    pub fn accept(&self, user_id: &str, step: u64) -> bool {
        // A panic while holding the lock can't leave the map half-updated
        // (each operation is a single insert), so a poisoned lock is usable.
        let mut last_step = self
            .last_step
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match last_step.get_mut(user_id) {
            Some(last) if step <= *last => false,
            Some(last) => {
                *last = step;
                true
            }
            None => {
                last_step.insert(user_id.to_owned(), step);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_or_older_step_is_refused() {
        let guard = TotpReplayGuard::new();
        assert!(guard.accept("u1", 100));
        assert!(!guard.accept("u1", 100), "same code replayed");
        assert!(!guard.accept("u1", 99), "older code inside the window");
        assert!(guard.accept("u1", 101));
        assert!(!guard.accept("u1", 100));
    }

    #[test]
    fn users_are_independent() {
        let guard = TotpReplayGuard::new();
        assert!(guard.accept("u1", 100));
        assert!(guard.accept("u2", 100));
        assert!(!guard.accept("u2", 0));
    }

    #[test]
    fn concurrent_replays_accept_exactly_once() {
        let guard = std::sync::Arc::new(TotpReplayGuard::new());
        let accepted: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let guard = guard.clone();
                    scope.spawn(move || guard.accept("u1", 42))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().expect("thread")))
                .sum()
        });
        assert_eq!(accepted, 1);
    }
}
