//! Per-client-IP rate limits on the gateway's own endpoints that cost real
//! CPU per request (the ACS verifies an RSA signature on every POST), so a
//! single client cannot turn them into a denial of service.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

pub struct ClientLimit {
    limiter: RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>,
    clock: DefaultClock,
}

impl ClientLimit {
    pub fn per_minute(count: u32) -> Self {
        let count = NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN);
        ClientLimit {
            limiter: RateLimiter::keyed(Quota::per_minute(count)),
            clock: DefaultClock::default(),
        }
    }

    /// `Err(retry_after)` when `client` is over its rate, in whole seconds (≥ 1).
    pub fn check(&self, client: IpAddr) -> Result<(), u64> {
        // Forget idle clients now and then so the map stays bounded.
        if self.limiter.len() > 10_000 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&client).map_err(|not_until| {
            let wait: Duration = not_until.wait_time_from(self.clock.now());
            wait.as_secs().max(1) + u64::from(wait.subsec_nanos() > 0 && wait.as_secs() > 0)
        })
    }
}

impl Default for ClientLimit {
    fn default() -> Self {
        ClientLimit::per_minute(portcullis_config::DEFAULT_ACS_PER_MINUTE)
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
        let retry = limit.check(a).expect_err("third post limited");
        assert!((1..=30).contains(&retry), "{retry}");
        assert!(limit.check(b).is_ok(), "another client is not affected");
    }
}
