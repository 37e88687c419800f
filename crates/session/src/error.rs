//! Why a session operation failed: the session is not usable
//! ([`SessionError`]), or the backend could not answer ([`StoreError`]).

use thiserror::Error;

use crate::end::EndReason;

/// The backend failed; nothing is known about the session.
///
/// The memory backend never fails, but every caller must handle this: a
/// networked backend (Redis) can be down, and the right answer then is a
/// clear 503, never "no session" (which would send a signed-in user to the
/// sign-in page) and never a panic.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or did not answer in time.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// The store holds as many entries as it may, all of them live; it
    /// refuses rather than evicting a live one.
    #[error("session store is full")]
    Full,
    /// A stored record could not be decoded (a newer format, or damage).
    #[error("stored record is unreadable: {0}")]
    Corrupt(String),
}

/// A session operation found no usable session, or could not look.
///
/// HTTP callers answer `Malformed`, `NotFound`, `Expired` and `OtherNode`
/// the same way
/// (no session); the variants exist so logs can say why. `Store` is
/// different in kind: the session may well be alive.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SessionError {
    /// The cookie value is not something this store ever issued.
    #[error("session cookie is malformed")]
    Malformed,
    /// No such session: never existed, signed out, revoked or swept.
    #[error("session not found")]
    NotFound,
    /// The session was alive until this call found it past a limit; it has
    /// now been removed and its end published.
    #[error("session expired ({})", reason.as_str())]
    Expired { reason: EndReason },
    /// The cookie names another node of a sticky cluster as the session's
    /// owner: this node never had it.
    #[error("session belongs to node {node}")]
    OtherNode { node: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SessionError {
    /// The backend failed, as opposed to "there is no usable session".
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            Self::Store(e) => Some(e),
            _ => None,
        }
    }
}
