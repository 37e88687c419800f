//! What every app's gate shares, across workers and reloads: the gateway
//! sessions, the ACS rate limit and Universal Logout's trust and replay
//! state.

use std::sync::Arc;

use portcullis_proxy::ClientLimit;

use crate::revocation::Revocations;
use crate::session::SessionStore;

pub(crate) struct Shared {
    pub(crate) sessions: Arc<SessionStore>,
    /// ACS posts per client address, all apps together.
    pub(crate) acs_limit: ClientLimit,
    pub(crate) revocations: Revocations,
}
