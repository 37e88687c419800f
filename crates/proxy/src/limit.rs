//! Per-client-address rate limits (governor) for the endpoints that cost
//! real work per request or guard credentials: the gateway's ACS (an RSA
//! signature check per post), the IdP's sign-in forms and its APIs. Over
//! the budget the caller answers 429 with `Retry-After` before doing any
//! of that work.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

/// Past this many remembered clients, idle ones are forgotten on the next
/// check, so the map stays bounded even without a periodic sweep.
const FORGET_IDLE_AT: usize = 10_000;

pub struct ClientLimit {
    limiter: RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>,
    clock: DefaultClock,
}

/// How long a client over its budget must wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait(Duration);

impl Wait {
    pub fn duration(self) -> Duration {
        self.0
    }

    /// `Retry-After` in whole seconds: rounded up, at least 1.
    pub fn retry_after_secs(self) -> u64 {
        (self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0)).max(1)
    }
}

impl ClientLimit {
    /// `count` requests per minute per client address (at least 1).
    pub fn per_minute(count: u32) -> Self {
        let count = NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN);
        ClientLimit {
            limiter: RateLimiter::keyed(Quota::per_minute(count)),
            clock: DefaultClock::default(),
        }
    }

    /// `Err` when `client` is over its budget.
    pub fn check(&self, client: IpAddr) -> Result<(), Wait> {
        if self.limiter.len() > FORGET_IDLE_AT {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&client)
            .map_err(|not_until| Wait(not_until.wait_time_from(self.clock.now())))
    }

    /// Forgets clients whose budget is full again.
    pub fn sweep(&self) {
        self.limiter.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_has_its_own_budget() {
        let limit = ClientLimit::per_minute(2);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        assert!(limit.check(a).is_ok());
        assert!(limit.check(a).is_ok());
        let wait = limit.check(a).expect_err("third attempt limited");
        assert!(wait.duration() > Duration::ZERO && wait.duration() <= Duration::from_secs(30));
        assert!((1..=30).contains(&wait.retry_after_secs()));
        assert!(limit.check(b).is_ok(), "another client is not affected");
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(Wait(Duration::from_millis(1500)).retry_after_secs(), 2);
        assert_eq!(Wait(Duration::from_millis(500)).retry_after_secs(), 1);
        assert_eq!(Wait(Duration::from_secs(2)).retry_after_secs(), 2);
        assert_eq!(Wait(Duration::ZERO).retry_after_secs(), 1);
    }
}
