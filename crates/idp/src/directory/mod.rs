//! The directory: who the users are and how they prove who they are.
//!
//! This module owns
//! - the users file (`users.toml`): parsing, and validation that reports
//!   every problem at once ([`Directory::load`], [`DirectoryError`]);
//! - lookups by login (case-insensitive) and by stable id ([`Directory`]);
//! - password verification against argon2id PHC hashes, with no timing or
//!   status oracle for callers without the password: one verification per
//!   attempt whatever the case ([`Directory::authenticate`]), in working
//!   memory that is reused ([`HashMemory`]);
//! - RFC 6238 TOTP verification ([`verify_totp`]), and until when a matched
//!   step stays replayable ([`totp_step_replayable_until`]: the one-time
//!   store remembers it that long, as a per-user high-water mark);
//! - lifecycle operations (suspend, unsuspend, deactivate, unlock, reset
//!   factors) and the statuses that allow them ([`Lifecycle`]);
//! - the directory in force at runtime ([`LiveDirectory`]): edits written
//!   to the users file atomically, keeping its comments, then swapped in;
//!   reloads.
//!
//! It does not own sessions, policies, HTTP, or the System Log: callers turn
//! the outcomes here (e.g. [`AuthFailure`]) into events. Lockout counts
//! live with the other shared state, in `portcullis_session`'s
//! `LockoutStore`.

mod authenticate;
mod error;
mod file_edit;
mod lifecycle;
mod live;
mod password;
mod search;
mod store;
mod totp;
mod user;
mod users_file;

#[cfg(test)]
mod demo_file_tests;
#[cfg(test)]
pub(crate) mod test_hashes;

pub use authenticate::AuthFailure;
pub use error::{DirectoryError, EditError, ProblemKind, UserProblem};
pub use file_edit::FileEditError;
pub use lifecycle::{Lifecycle, TransitionError};
pub use live::{Applied, LiveDirectory, Reloaded};
pub use password::{HashMemory, PasswordHashProblem, PooledVerifier, Verifier};
pub use search::{UserFilter, UserPage, UserQuery, UserQueryError};
pub use store::Directory;
pub use totp::{
    hotp, totp_code_at, totp_step_replayable_until, totp_value, verify_totp, TotpSecret,
    TotpSecretError, TOTP_DIGITS, TOTP_MIN_SECRET_BITS, TOTP_SKEW_STEPS, TOTP_STEP_SECONDS,
};
pub use user::{User, UserStatus};
