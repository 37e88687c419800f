//! One session as every backend stores it: the common bookkeeping (public
//! id, timestamps, limits) around a body the caller owns.
//!
//! There is one expiry rule for everything: a session is dead from its
//! deadline on, the deadline being min(created + max lifetime, last
//! activity + idle limit).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::end::EndReason;
use crate::id::SessionId;

/// How long a session may live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lifetime {
    /// Longest time without activity.
    pub idle: Duration,
    /// Longest time since creation, whatever the activity; `None` is no
    /// absolute limit.
    pub max: Option<Duration>,
}

impl Lifetime {
    pub fn new(idle: Duration, max: Option<Duration>) -> Self {
        Self { idle, max }
    }
}

/// A snapshot of a session. The store owns the live copy; sessions handed
/// out are copies, so changing one changes nothing (use
/// [`SessionStore::update`](crate::SessionStore::update)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "B: Serialize",
    deserialize = "B: serde::de::DeserializeOwned"
))]
pub struct Session<B> {
    pub id: SessionId,
    pub created_at: OffsetDateTime,
    pub last_activity: OffsetDateTime,
    pub lifetime: Lifetime,
    pub body: B,
}

impl<B> Session<B> {
    /// A session that starts at `now` (stores call this; so may tests).
    pub fn new(id: SessionId, body: B, lifetime: Lifetime, now: OffsetDateTime) -> Self {
        Self {
            id,
            created_at: now,
            last_activity: now,
            lifetime,
            body,
        }
    }

    /// When the session dies if nothing else happens, and of what.
    ///
    /// If both limits fall on the same instant the lifetime is reported:
    /// activity could not have saved the session.
    pub fn deadline(&self) -> (OffsetDateTime, EndReason) {
        let idle = add_std(self.last_activity, self.lifetime.idle);
        match self.lifetime.max {
            Some(max) => {
                let absolute = add_std(self.created_at, max);
                if absolute <= idle {
                    (absolute, EndReason::MaxLifetime)
                } else {
                    (idle, EndReason::IdleTimeout)
                }
            }
            None => (idle, EndReason::IdleTimeout),
        }
    }

    /// The first instant the session is no longer valid.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.deadline().0
    }

    /// `Some(reason)` if the session is dead at `now`. The deadline itself
    /// counts as dead, matching [`expires_at`](Self::expires_at) being the
    /// first instant it is no longer valid.
    pub fn end_reason_at(&self, now: OffsetDateTime) -> Option<EndReason> {
        // Every use of a session asks this, so the common answer ("alive")
        // takes two subtractions; only a session past a limit pays for the
        // calendar additions that say which limit it was.
        let within = |since: OffsetDateTime, limit: Duration| {
            time::Duration::try_from(limit).map_or(true, |limit| now - since < limit)
        };
        let alive = within(self.last_activity, self.lifetime.idle)
            && self
                .lifetime
                .max
                .is_none_or(|max| within(self.created_at, max));
        if alive {
            return None;
        }
        let (deadline, reason) = self.deadline();
        (now >= deadline).then_some(reason)
    }

    /// Records use at `now`. Never moves backwards: concurrent requests may
    /// arrive with slightly out-of-order clock readings.
    pub fn record_activity(&mut self, now: OffsetDateTime) {
        self.last_activity = self.last_activity.max(now);
    }
}

/// `t + d`, saturating: a limit too large for the calendar never expires.
fn add_std(t: OffsetDateTime, d: Duration) -> OffsetDateTime {
    t.saturating_add(time::Duration::try_from(d).unwrap_or(time::Duration::MAX))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const T0: OffsetDateTime = datetime!(2026-11-24 05:15:10.193456 UTC);

    fn minutes(n: u64) -> Duration {
        Duration::from_secs(n * 60)
    }

    fn session(idle_min: u64, max_min: Option<u64>) -> Session<()> {
        Session::new(
            SessionId::from("102x"),
            (),
            Lifetime::new(minutes(idle_min), max_min.map(minutes)),
            T0,
        )
    }

    #[test]
    fn expiry_is_the_earlier_of_idle_and_lifetime() {
        let mut s = session(120, Some(180));
        assert_eq!(
            s.deadline(),
            (T0 + Duration::from_secs(7_200), EndReason::IdleTimeout)
        );
        s.record_activity(T0 + Duration::from_secs(5_400));
        assert_eq!(
            s.deadline(),
            (T0 + Duration::from_secs(10_800), EndReason::MaxLifetime)
        );
        assert_eq!(s.expires_at(), T0 + Duration::from_secs(10_800));
        assert_eq!(s.end_reason_at(T0 + Duration::from_secs(10_799)), None);
        assert_eq!(
            s.end_reason_at(T0 + Duration::from_secs(10_800)),
            Some(EndReason::MaxLifetime)
        );
    }

    #[test]
    fn equal_limits_report_the_lifetime() {
        let s = session(60, Some(60));
        assert_eq!(s.deadline(), (T0 + minutes(60), EndReason::MaxLifetime));
    }

    #[test]
    fn the_deadline_instant_itself_is_ended() {
        let s = session(60, None);
        let just_before = T0 + minutes(60) - time::Duration::nanoseconds(1);
        assert_eq!(s.end_reason_at(just_before), None);
        assert_eq!(
            s.end_reason_at(T0 + minutes(60)),
            Some(EndReason::IdleTimeout)
        );
    }

    #[test]
    fn activity_never_moves_backwards() {
        let mut s = session(120, None);
        s.record_activity(T0 + Duration::from_secs(60));
        s.record_activity(T0);
        assert_eq!(s.last_activity, T0 + Duration::from_secs(60));
        assert_eq!(s.expires_at(), T0 + Duration::from_secs(60) + minutes(120));
    }

    #[test]
    fn huge_limits_saturate_instead_of_overflowing() {
        let mut s = session(0, None);
        s.lifetime = Lifetime::new(Duration::MAX, Some(Duration::MAX));
        assert_eq!(s.end_reason_at(T0 + Duration::from_secs(1 << 30)), None);
        assert_eq!(
            s.expires_at(),
            OffsetDateTime::new_utc(time::Date::MAX, time::Time::MAX)
        );
    }

    #[test]
    fn serde_round_trips() {
        let mut s = session(120, Some(180));
        s.record_activity(T0 + Duration::from_secs(90));
        let json = serde_json::to_string(&s).expect("serialises");
        let back: Session<()> = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back, s);
    }
}
