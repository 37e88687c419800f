//! Warnings that a client or a failing upstream can repeat thousands of
//! times a second (a 502 per request in an outage, a connection shed per
//! accept in a flood): one line per interval, saying how many were left
//! out, while a metric counts every one. A 5 s upstream outage once wrote
//! 54,000 lines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a repeated warning is written at most.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// "Never written" in `last_ms`.
const NEVER: u64 = u64::MAX;

/// One repeated warning's rate limit. Lock-free: workers may share one.
pub struct LogRate {
    base: Instant,
    interval_ms: u64,
    /// Milliseconds after `base` of the last line written.
    last_ms: AtomicU64,
    /// Occurrences since that line.
    left_out: AtomicU64,
}

impl LogRate {
    pub fn new(interval: Duration) -> Self {
        LogRate {
            base: Instant::now(),
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            last_ms: AtomicU64::new(NEVER),
            left_out: AtomicU64::new(0),
        }
    }

    /// Counts one occurrence. `Some(n)` means: write the line now, and say
    /// that `n` like it were left out since the previous one.
    pub fn note(&self) -> Option<u64> {
        self.note_at(u64::try_from(self.base.elapsed().as_millis()).unwrap_or(NEVER - 1))
    }

    /// [`note`](Self::note) at `now`, in milliseconds after `base`.
    fn note_at(&self, now: u64) -> Option<u64> {
        let last = self.last_ms.load(Ordering::Relaxed);
        let due = last == NEVER || now.saturating_sub(last) >= self.interval_ms;
        if due
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.left_out.swap(0, Ordering::Relaxed));
        }
        self.left_out.fetch_add(1, Ordering::Relaxed);
        None
    }
}

impl Default for LogRate {
    fn default() -> Self {
        LogRate::new(INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_left_out() {
        let rate = LogRate::new(Duration::from_secs(10));
        assert_eq!(rate.note_at(5), Some(0), "the first is written");
        for ms in 6..1005 {
            assert_eq!(rate.note_at(ms), None);
        }
        assert_eq!(rate.note_at(10_004), None, "not a whole interval yet");
        assert_eq!(rate.note_at(10_005), Some(1000));
        assert_eq!(rate.note_at(10_006), None);
    }
}
