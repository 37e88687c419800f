//! Account lockout: after too many failed sign-ins in a row, a user is
//! refused for a while, even with the right password.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use time::{OffsetDateTime, PrimitiveDateTime};

/// How many failures lock an account, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Consecutive failures that lock the account. 0 is treated as 1 rather
    /// than "never lock", so a config typo can't silently disable lockout.
    pub max_failures: u32,
    pub lockout_duration: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            lockout_duration: Duration::from_secs(15 * 60),
        }
    }
}

/// The account is locked; sign-in must be refused until `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("account locked until {until}")]
pub struct Locked {
    pub until: OffsetDateTime,
}

/// What a recorded failure did to the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Counted; `remaining` more failures lock the account.
    Counted { remaining: u32 },
    /// This failure locked the account: the caller emits `user.account.lock`.
    LockedNow { until: OffsetDateTime },
    /// The account was already locked (the caller skipped `check`); the lock
    /// is not extended and no new lock event is due.
    AlreadyLocked { until: OffsetDateTime },
}

/// Cap on tracked users. Callers only record failures for users that exist
/// (unknown logins have no id), so the directory size bounds the map; the
/// cap is a second line of defence against a caller that gets that wrong.
const DEFAULT_CAPACITY: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    locked_until: Option<OffsetDateTime>,
    last_failure: OffsetDateTime,
}

/// Consecutive-failure counts and locks, per user id. Thread-safe and in
/// memory; the IdP puts the locks still running back at start from the
/// System Log's `user.account.lock` events ([`restore`](Self::restore)),
/// so a restart does not lift them. Counts below the threshold start over.
#[derive(Debug)]
pub struct LockoutTracker {
    policy: LockoutPolicy,
    capacity: usize,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Default for LockoutTracker {
    fn default() -> Self {
        Self::new(LockoutPolicy::default())
    }
}

impl LockoutTracker {
    pub fn new(policy: LockoutPolicy) -> Self {
        Self::with_capacity(policy, DEFAULT_CAPACITY)
    }

    /// Like [`new`](Self::new) with a different cap on tracked users.
    pub fn with_capacity(policy: LockoutPolicy, capacity: usize) -> Self {
        Self {
            policy,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn policy(&self) -> &LockoutPolicy {
        &self.policy
    }

    /// Refuses a locked account. Call before verifying the password, so a
    /// locked account doesn't act as a password oracle.
    pub fn check(&self, user_id: &str, now: OffsetDateTime) -> Result<(), Locked> {
        let mut entries = self.lock();
        match entries.get(user_id).and_then(|e| e.locked_until) {
            Some(until) if until > now => Err(Locked { until }),
            Some(_) => {
                // The lock ran out: start counting from zero again.
                entries.remove(user_id);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a failed sign-in for a user that exists in the directory.
    pub fn record_failure(&self, user_id: &str, now: OffsetDateTime) -> FailureOutcome {
        let max_failures = self.policy.max_failures.max(1);
        let mut entries = self.lock();
        if !entries.contains_key(user_id) {
            Self::make_room(&mut entries, self.capacity, now);
        }
        let fresh = Entry {
            failures: 0,
            locked_until: None,
            last_failure: now,
        };
        let entry = entries.entry(user_id.to_owned()).or_insert(fresh);
        if let Some(until) = entry.locked_until {
            if until > now {
                return FailureOutcome::AlreadyLocked { until };
            }
            *entry = fresh;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        if entry.failures >= max_failures {
            let until = lock_end(now, self.policy.lockout_duration);
            entry.locked_until = Some(until);
            FailureOutcome::LockedNow { until }
        } else {
            FailureOutcome::Counted {
                remaining: max_failures - entry.failures,
            }
        }
    }

    /// Puts back a lock recorded before a restart; one that has already
    /// ended is ignored. No lock event is due: it was written when the lock
    /// began.
    pub fn restore(&self, user_id: &str, until: OffsetDateTime, now: OffsetDateTime) {
        if until <= now {
            return;
        }
        let mut entries = self.lock();
        if !entries.contains_key(user_id) {
            Self::make_room(&mut entries, self.capacity, now);
        }
        let entry = entries.entry(user_id.to_owned()).or_insert(Entry {
            failures: 0,
            locked_until: None,
            last_failure: now,
        });
        entry.failures = entry.failures.max(self.policy.max_failures.max(1));
        entry.locked_until = Some(entry.locked_until.map_or(until, |u| u.max(until)));
    }

    /// A successful sign-in clears the failure count.
    pub fn record_success(&self, user_id: &str) {
        self.lock().remove(user_id);
    }

    /// An administrator lifts the lock and the failure count; `true` when
    /// a lock was still running.
    pub fn unlock(&self, user_id: &str, now: OffsetDateTime) -> bool {
        self.lock()
            .remove(user_id)
            .and_then(|e| e.locked_until)
            .is_some_and(|until| until > now)
    }

    /// Until when the account is locked, without counting as an attempt
    /// (what the Users API shows as `LOCKED_OUT`).
    pub fn locked_until(&self, user_id: &str, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.lock()
            .get(user_id)
            .and_then(|e| e.locked_until)
            .filter(|until| *until > now)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // Each update leaves entries consistent, so a poisoned lock is usable.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Frees one slot when the map is full: expired locks go first, then the
    /// unlocked entry with the oldest failure, and only if every entry is a
    /// live lock, the one closest to expiring.
    fn make_room(entries: &mut HashMap<String, Entry>, capacity: usize, now: OffsetDateTime) {
        if entries.len() < capacity {
            return;
        }
        entries.retain(|_, e| e.locked_until.is_none_or(|until| until > now));
        if entries.len() < capacity {
            return;
        }
        let victim = entries
            .iter()
            .min_by_key(|(_, e)| (e.locked_until.is_some(), e.locked_until, e.last_failure))
            .map(|(id, _)| id.clone());
        if let Some(id) = victim {
            entries.remove(&id);
        }
    }
}

/// `now + duration`, saturating at the far future instead of panicking on
/// an absurd configured duration.
fn lock_end(now: OffsetDateTime, duration: Duration) -> OffsetDateTime {
    time::Duration::try_from(duration)
        .ok()
        .and_then(|d| now.checked_add(d))
        .unwrap_or_else(|| PrimitiveDateTime::MAX.assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).expect("valid timestamp")
    }

    fn policy(max_failures: u32, secs: u64) -> LockoutPolicy {
        LockoutPolicy {
            max_failures,
            lockout_duration: Duration::from_secs(secs),
        }
    }

    #[test]
    fn defaults() {
        let p = LockoutPolicy::default();
        assert_eq!(p.max_failures, 5);
        assert_eq!(p.lockout_duration, Duration::from_secs(900));
    }

    #[test]
    fn locks_at_threshold_and_reports_remaining() {
        let tracker = LockoutTracker::default();
        let now = at(1_000);
        for remaining in (1..=4).rev() {
            assert_eq!(tracker.check("u1", now), Ok(()));
            assert_eq!(
                tracker.record_failure("u1", now),
                FailureOutcome::Counted { remaining }
            );
        }
        let until = at(1_000 + 900);
        assert_eq!(
            tracker.record_failure("u1", now),
            FailureOutcome::LockedNow { until }
        );
        assert_eq!(tracker.check("u1", now), Err(Locked { until }));
        assert_eq!(tracker.check("u1", at(1_899)), Err(Locked { until }));
        // Another failure while locked neither extends the lock nor re-emits it.
        assert_eq!(
            tracker.record_failure("u1", at(1_500)),
            FailureOutcome::AlreadyLocked { until }
        );
        // Other users are unaffected.
        assert_eq!(tracker.check("u2", now), Ok(()));
    }

    #[test]
    fn lock_expires_and_counting_restarts() {
        let tracker = LockoutTracker::new(policy(2, 60));
        tracker.record_failure("u1", at(0));
        assert_eq!(
            tracker.record_failure("u1", at(1)),
            FailureOutcome::LockedNow { until: at(61) }
        );
        assert!(tracker.check("u1", at(60)).is_err());
        assert_eq!(tracker.check("u1", at(61)), Ok(()));
        assert_eq!(
            tracker.record_failure("u1", at(62)),
            FailureOutcome::Counted { remaining: 1 }
        );
    }

    #[test]
    fn expired_lock_restarts_even_without_check() {
        let tracker = LockoutTracker::new(policy(2, 60));
        tracker.record_failure("u1", at(0));
        tracker.record_failure("u1", at(0));
        assert_eq!(
            tracker.record_failure("u1", at(100)),
            FailureOutcome::Counted { remaining: 1 }
        );
    }

    #[test]
    fn success_resets_the_count() {
        let tracker = LockoutTracker::new(policy(3, 60));
        tracker.record_failure("u1", at(0));
        tracker.record_failure("u1", at(0));
        tracker.record_success("u1");
        assert_eq!(
            tracker.record_failure("u1", at(0)),
            FailureOutcome::Counted { remaining: 2 }
        );
    }

    #[test]
    fn zero_max_failures_locks_on_first_failure() {
        let tracker = LockoutTracker::new(policy(0, 60));
        assert_eq!(
            tracker.record_failure("u1", at(0)),
            FailureOutcome::LockedNow { until: at(60) }
        );
    }

    #[test]
    fn huge_duration_saturates() {
        let tracker = LockoutTracker::new(policy(1, u64::MAX));
        let outcome = tracker.record_failure("u1", at(0));
        assert_eq!(
            outcome,
            FailureOutcome::LockedNow {
                until: PrimitiveDateTime::MAX.assume_utc()
            }
        );
    }

    #[test]
    fn a_restored_lock_refuses_until_it_ends_and_an_ended_one_is_ignored() {
        let tracker = LockoutTracker::new(policy(3, 60));
        tracker.restore("u1", at(100), at(10));
        assert_eq!(tracker.check("u1", at(50)), Err(Locked { until: at(100) }));
        assert_eq!(
            tracker.record_failure("u1", at(50)),
            FailureOutcome::AlreadyLocked { until: at(100) }
        );
        assert_eq!(tracker.check("u1", at(100)), Ok(()));
        tracker.restore("u2", at(5), at(10));
        assert_eq!(tracker.check("u2", at(10)), Ok(()));
        assert_eq!(
            tracker.record_failure("u2", at(10)),
            FailureOutcome::Counted { remaining: 2 }
        );
    }

    #[test]
    fn unlock_lifts_a_running_lock_and_the_count() {
        let tracker = LockoutTracker::new(policy(2, 60));
        tracker.record_failure("u1", at(0));
        tracker.record_failure("u1", at(0));
        assert_eq!(tracker.locked_until("u1", at(10)), Some(at(60)));
        assert!(tracker.unlock("u1", at(10)));
        assert_eq!(tracker.check("u1", at(10)), Ok(()));
        assert_eq!(tracker.locked_until("u1", at(10)), None);
        assert_eq!(
            tracker.record_failure("u1", at(11)),
            FailureOutcome::Counted { remaining: 1 },
            "counting starts over"
        );
        assert!(!tracker.unlock("u1", at(12)), "not locked: nothing lifted");
        assert!(!tracker.unlock("nobody", at(12)));
    }

    #[test]
    fn map_is_capped_and_keeps_live_locks() {
        let tracker = LockoutTracker::with_capacity(policy(2, 10_000), 3);
        tracker.record_failure("locked", at(0));
        tracker.record_failure("locked", at(0));
        for i in 0..100 {
            tracker.record_failure(&format!("noise{i}"), at(i));
        }
        assert!(tracker.lock().len() <= 3);
        assert!(tracker.check("locked", at(10)).is_err());
    }
}
