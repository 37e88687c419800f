//! What every app's gate shares, across workers and reloads: the gateway
//! sessions, the one-time caches (assertion ids), the ACS rate limit, the
//! SAML verification pool and Universal Logout's trust.

use std::sync::Arc;
use std::time::Duration;

use portcullis_proxy::limit::available_cores;
use portcullis_proxy::{ClientLimit, WorkBounds, WorkLimit};
use portcullis_session::OneTimeStore;

use crate::post_auth::ContextCheck;
use crate::revocation::Revocations;
use crate::session::Sessions;

pub(crate) struct Shared {
    pub(crate) sessions: Sessions,
    /// Assertion and response ids already used, and Universal Logout `jti`s.
    pub(crate) one_time: Arc<dyn OneTimeStore>,
    /// ACS posts per client address, all apps together.
    pub(crate) acs_limit: ClientLimit,
    /// SAML verification (ACS Responses, SLO messages), off the worker
    /// threads and bounded for the whole process.
    pub(crate) saml_work: WorkLimit,
    pub(crate) revocations: Revocations,
    /// Post-auth evaluation, when the binary enables it.
    pub(crate) context: std::sync::OnceLock<Arc<dyn ContextCheck>>,
}

impl Shared {
    /// A new session's context: through post-auth evaluation when it is
    /// enabled (ASN, zones), else the address and device alone.
    pub(crate) fn capture(
        &self,
        ip: std::net::IpAddr,
        user_agent: Option<&[u8]>,
    ) -> portcullis_context::SessionContext {
        match self.context.get() {
            Some(check) => check.capture(ip, user_agent),
            None => portcullis_context::ContextSource::default().capture(ip, user_agent),
        }
    }
}

/// One verification slot per core: a real Response costs 1–2 ms and the
/// worst document the pre-scan's limits let through ~30 ms, so the pool
/// can use every core and the workers still get their share of it from
/// the scheduler, where inline verification held a worker's every
/// connection. 16 waiting per slot is 30–500 ms of backlog; past it, or
/// after a second's wait, a post is answered 503 rather than queued.
pub(crate) fn saml_work_bounds() -> WorkBounds {
    let slots = available_cores();
    WorkBounds {
        slots,
        queue: slots * 16,
        max_wait: Duration::from_secs(1),
    }
}

pub(crate) fn saml_work() -> WorkLimit {
    WorkLimit::new("saml_verify", saml_work_bounds())
}
