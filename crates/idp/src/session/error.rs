//! Why a session lookup or update failed.

use thiserror::Error;

use super::end::EndReason;

/// A session operation found no usable session.
///
/// HTTP callers answer all three the same way (no session / 404); the
/// variants exist so logs and the System Log can say why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SessionError {
    /// The cookie value is not something this IdP ever issued.
    #[error("session cookie is malformed")]
    Malformed,
    /// No such session: never existed, signed out, revoked or swept.
    #[error("session not found")]
    NotFound,
    /// The session was alive until this call found it past a limit; it has
    /// now been removed and its end published.
    #[error("session expired ({})", reason.as_str())]
    Expired { reason: EndReason },
}
