//! One-time-use enforcement for assertion and response ids. Bearer
//! assertions are replayable by anyone who captured them until they
//! expire, so each id is remembered until its NotOnOrAfter (+ skew).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};

/// Thread-safe, bounded set of consumed ids with per-entry expiry.
///
/// When full of *unexpired* entries it fails closed (`ReplayCacheFull`)
/// rather than evicting: evicting a live id would re-open it for replay.
#[derive(Debug)]
pub struct ReplayCache {
    entries: Mutex<HashMap<String, DateTime<Utc>>>,
    capacity: usize,
}

impl ReplayCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Atomically refuse if any id is known and unexpired, otherwise record
    /// all of them until `expires_at`.
    pub fn check_and_insert(
        &self,
        ids: &[&str],
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        // A poisoned lock only means another thread panicked mid-operation;
        // the map itself is still a valid map, so keep serving.
        let mut map = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for id in ids {
            if map.get(*id).is_some_and(|exp| *exp > now) {
                return Err(Error::Replay {
                    id: (*id).to_owned(),
                });
            }
        }
        if map.len().saturating_add(ids.len()) > self.capacity {
            map.retain(|_, exp| *exp > now);
        }
        if map.len().saturating_add(ids.len()) > self.capacity {
            return Err(Error::ReplayCacheFull);
        }
        for id in ids {
            map.insert((*id).to_owned(), expires_at);
        }
        Ok(())
    }

    /// Number of remembered ids (expired ones included until purged).
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn refuses_replay_until_expiry_and_bounds_size() {
        let cache = ReplayCache::new(2);
        let now = Utc::now();
        cache
            .check_and_insert(&["a"], now + Duration::seconds(10), now)
            .expect("first");
        assert!(matches!(
            cache.check_and_insert(&["a"], now, now),
            Err(Error::Replay { .. })
        ));
        cache
            .check_and_insert(&["b"], now + Duration::seconds(10), now)
            .expect("second");
        assert!(matches!(
            cache.check_and_insert(&["c"], now, now),
            Err(Error::ReplayCacheFull)
        ));
        let later = now + Duration::seconds(11);
        cache
            .check_and_insert(&["a"], later + Duration::seconds(10), later)
            .expect("expired entry reusable");
        assert_eq!(cache.len(), 1);
    }
}
