//! What every app's gate shares, across workers and reloads: the gateway
//! sessions, the one-time caches (assertion ids), the ACS rate limit and
//! Universal Logout's trust.

use std::sync::Arc;

use portcullis_proxy::ClientLimit;
use portcullis_session::OneTimeStore;

use crate::revocation::Revocations;
use crate::session::Sessions;

pub(crate) struct Shared {
    pub(crate) sessions: Sessions,
    /// Assertion and response ids already used, and Universal Logout `jti`s.
    pub(crate) one_time: Arc<dyn OneTimeStore>,
    /// ACS posts per client address, all apps together.
    pub(crate) acs_limit: ClientLimit,
    pub(crate) revocations: Revocations,
}
