//! Background expiry: sessions nobody touches again still end on time, so
//! their `user.session.end` is logged and memory is released.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::store::SessionStore;

/// Runs [`SessionStore::sweep`] every `every` (at least 1 ms) on the current
/// Tokio runtime; must be called from within one.
///
/// The task holds only a weak reference, so it stops by itself once the
/// store is dropped; abort the handle to stop it sooner.
pub fn spawn_sweeper(store: Arc<SessionStore>, every: Duration) -> JoinHandle<()> {
    let store = Arc::downgrade(&store);
    let every = every.max(Duration::from_millis(1));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        // After a stall, one sweep catches everything up; a burst would not.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(store) = store.upgrade() else {
                break;
            };
            let ended = store.sweep(OffsetDateTime::now_utc());
            if !ended.is_empty() {
                tracing::debug!(count = ended.len(), "swept expired IdP sessions");
            }
        }
    })
}
