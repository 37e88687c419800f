//! Limits on the work a request may buy:
//!
//! - [`ClientLimit`]: per-client-address rate limits (governor) for the
//!   endpoints that cost real work per request or guard credentials: the
//!   gateway's ACS (an RSA signature check per post), the IdP's sign-in
//!   forms and its APIs. Over the budget the caller answers 429 with
//!   `Retry-After` before doing any of that work.
//! - [`WorkLimit`]: a global bound on CPU-heavy work (SAML signature
//!   checks, password hashes), run off the worker threads. The workers are
//!   single-threaded event loops, so such work done inline stalls every
//!   connection of that worker; handed to `spawn_blocking` without a bound
//!   it queues without limit (every worker runtime has its own blocking
//!   pool of up to 512 threads). Past the bound the caller answers 503
//!   with `Retry-After`, whichever clients are asking.

use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use tokio::sync::{Semaphore, TryAcquireError};

use crate::log_rate::LogRate;
use crate::metrics::{work_refused, PoolLabels};

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

/// The CPUs this process may use (at least 1): what work pools are sized
/// from.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// How much of one kind of work may be under way at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkBounds {
    /// Jobs running at once, each on a blocking thread (at least 1).
    pub slots: usize,
    /// Jobs waiting for a slot; more are refused at once.
    pub queue: usize,
    /// How long a waiting job may wait before it is refused.
    pub max_wait: Duration,
}

/// The work was not done: every slot and every place in the queue was
/// taken (or stayed taken for `max_wait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WorkError {
    #[error("{pool}: every slot is busy")]
    Busy { pool: &'static str, wait: Wait },
    /// The job panicked; nothing it would have returned exists.
    #[error("{pool}: the job failed")]
    Failed { pool: &'static str },
}

/// How long a refused caller should wait: about the time the queue takes
/// to drain, rounded up to whole seconds by [`Wait::retry_after_secs`].
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Saturation is logged at most this often, with the count in between: a
/// flood must not turn into a flood of log lines.
const BUSY_LOG_EVERY: Duration = Duration::from_secs(1);

/// A global bound on one kind of CPU-heavy work: at most `slots` jobs run
/// (each on a blocking thread), at most `queue` wait for one, none longer
/// than `max_wait`. Shared by every worker thread.
pub struct WorkLimit {
    pool: &'static str,
    bounds: WorkBounds,
    slots: Arc<Semaphore>,
    queue: Semaphore,
    refused: AtomicU64,
    busy_log: LogRate,
}

impl WorkLimit {
    /// `pool` names the work in logs and errors.
    pub fn new(pool: &'static str, bounds: WorkBounds) -> Self {
        let bounds = WorkBounds {
            slots: bounds.slots.max(1),
            ..bounds
        };
        WorkLimit {
            pool,
            bounds,
            slots: Arc::new(Semaphore::new(bounds.slots)),
            queue: Semaphore::new(bounds.queue),
            refused: AtomicU64::new(0),
            busy_log: LogRate::new(BUSY_LOG_EVERY),
        }
    }

    pub fn bounds(&self) -> WorkBounds {
        self.bounds
    }

    /// Jobs refused since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Runs `job` on a blocking thread once a slot is free. The slot is
    /// held by the job itself, so a caller that goes away (a client that
    /// disconnects) does not free it before the work is done: the bound
    /// counts work, not waiting requests.
    pub async fn run<T, F>(&self, job: F) -> Result<T, WorkError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(TryAcquireError::NoPermits) => {
                // A place in the queue first, so the waiters are bounded
                // in number as well as in time.
                let Ok(_place) = self.queue.try_acquire() else {
                    return Err(self.busy());
                };
                match tokio::time::timeout(self.bounds.max_wait, self.slots.clone().acquire_owned())
                    .await
                {
                    Ok(Ok(slot)) => slot,
                    Ok(Err(_)) | Err(_) => return Err(self.busy()),
                }
            }
            Err(TryAcquireError::Closed) => return Err(self.busy()),
        };
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            job()
        })
        .await
        .map_err(|e| {
            tracing::error!(pool = self.pool, error = %e, "work pool job failed");
            WorkError::Failed { pool: self.pool }
        })
    }

    fn busy(&self) -> WorkError {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        work_refused()
            .get_or_create(&PoolLabels { pool: self.pool })
            .inc();
        if let Some(left_out) = self.busy_log.note() {
            tracing::warn!(
                pool = self.pool,
                slots = self.bounds.slots,
                queue = self.bounds.queue,
                left_out,
                refused.total = refused,
                "work pool saturated; requests refused with 503"
            );
        }
        WorkError::Busy {
            pool: self.pool,
            wait: Wait(BUSY_RETRY_AFTER),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

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

    /// A job that holds its slot until told to finish; returns once it
    /// has started (so it holds the slot by then).
    async fn blocker(
        limit: &Arc<WorkLimit>,
    ) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let limit = limit.clone();
        let task = tokio::spawn(async move {
            limit
                .run(move || {
                    let _ = started_tx.send(());
                    let _ = release_rx.recv();
                })
                .await
                .expect("blocker runs");
        });
        tokio::time::timeout(Duration::from_secs(10), started_rx)
            .await
            .expect("blocker started in time")
            .expect("blocker started");
        (release_tx, task)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn jobs_run_off_the_calling_thread() {
        let limit = WorkLimit::new(
            "test",
            WorkBounds {
                slots: 1,
                queue: 0,
                max_wait: Duration::ZERO,
            },
        );
        let caller = std::thread::current().id();
        let ran_on = limit
            .run(|| std::thread::current().id())
            .await
            .expect("ran");
        assert_ne!(ran_on, caller);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_pool_refuses_at_once_with_retry_after() {
        let limit = Arc::new(WorkLimit::new(
            "test",
            WorkBounds {
                slots: 1,
                queue: 0,
                max_wait: Duration::from_secs(60),
            },
        ));
        let (release, blocker) = blocker(&limit).await;
        let started = Instant::now();
        match limit.run(|| ()).await {
            Err(WorkError::Busy { pool: "test", wait }) => assert_eq!(wait.retry_after_secs(), 1),
            other => panic!("not refused: {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no waiting without a queue place"
        );
        assert_eq!(limit.refused(), 1);
        assert!(
            work_refused()
                .get_or_create(&PoolLabels { pool: "test" })
                .get()
                >= 1,
            "counted in portcullis_work_refused_total"
        );
        release.send(()).expect("release");
        blocker.await.expect("blocker");
        limit.run(|| ()).await.expect("a free slot is used again");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_queue_is_bounded_in_length_and_in_time() {
        let limit = Arc::new(WorkLimit::new(
            "test",
            WorkBounds {
                slots: 1,
                queue: 1,
                max_wait: Duration::from_millis(100),
            },
        ));
        let (release, blocker) = blocker(&limit).await;
        // One waiter may queue; it gives up after max_wait.
        let waiter = {
            let limit = limit.clone();
            tokio::spawn(async move { limit.run(|| ()).await })
        };
        // While it waits, the queue is full: refused at once.
        tokio::task::yield_now().await;
        let mut refused_at_once = false;
        for _ in 0..100 {
            if limit.queue.available_permits() == 0 {
                refused_at_once = matches!(limit.run(|| ()).await, Err(WorkError::Busy { .. }));
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(
            refused_at_once,
            "a second waiter is refused while the queue is full"
        );
        assert!(matches!(
            waiter.await.expect("waiter"),
            Err(WorkError::Busy { .. })
        ));
        release.send(()).expect("release");
        blocker.await.expect("blocker");
        assert_eq!(limit.refused(), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_waiter_gets_the_slot_when_it_frees() {
        let limit = Arc::new(WorkLimit::new(
            "test",
            WorkBounds {
                slots: 1,
                queue: 1,
                max_wait: Duration::from_secs(30),
            },
        ));
        let (release, blocker) = blocker(&limit).await;
        let waiter = {
            let limit = limit.clone();
            tokio::spawn(async move { limit.run(|| 7).await })
        };
        tokio::task::yield_now().await;
        release.send(()).expect("release");
        assert_eq!(waiter.await.expect("waiter").expect("ran"), 7);
        blocker.await.expect("blocker");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_abandoned_job_keeps_its_slot_until_done() {
        let limit = Arc::new(WorkLimit::new(
            "test",
            WorkBounds {
                slots: 1,
                queue: 0,
                max_wait: Duration::ZERO,
            },
        ));
        let (release, blocker) = blocker(&limit).await;
        // The request that started the job goes away; the work does not.
        blocker.abort();
        let _ = blocker.await;
        assert!(matches!(
            limit.run(|| ()).await,
            Err(WorkError::Busy { .. })
        ));
        release.send(()).expect("release");
        let deadline = Instant::now() + Duration::from_secs(10);
        while limit.slots.available_permits() == 0 {
            assert!(Instant::now() < deadline, "slot never freed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        limit.run(|| ()).await.expect("slot free again");
    }
}
