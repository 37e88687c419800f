//! Account lifecycle operations and which statuses allow them, as Okta's
//! Users API defines them (`POST /api/v1/users/{id}/lifecycle/{op}`).
//!
//! Only the rules live here; [`LiveDirectory`](super::LiveDirectory)
//! writes the outcome to the users file, and the IdP adds what follows
//! from it (sessions ended, Universal Logout, System Log).

use std::fmt;

use super::user::UserStatus;

/// What an administrator can do to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lifecycle {
    /// ACTIVE → SUSPENDED: sign-in refused, sessions end; reversible.
    Suspend,
    /// SUSPENDED → ACTIVE.
    Unsuspend,
    /// ACTIVE or SUSPENDED → DEPROVISIONED: sessions end. The entry stays
    /// in the file so its id is never given to someone else.
    Deactivate,
    /// Lifts a lockout (ACTIVE only; the status is unchanged). As in Okta
    /// it succeeds whether or not the account was locked: the caller
    /// wants it unlocked, and it is.
    Unlock,
    /// Removes the TOTP enrollment (any status but DEPROVISIONED).
    ResetFactors,
}

impl Lifecycle {
    pub const ALL: [Lifecycle; 5] = [
        Self::Suspend,
        Self::Unsuspend,
        Self::Deactivate,
        Self::Unlock,
        Self::ResetFactors,
    ];

    /// The last path segment of the API call.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Suspend => "suspend",
            Self::Unsuspend => "unsuspend",
            Self::Deactivate => "deactivate",
            Self::Unlock => "unlock",
            Self::ResetFactors => "reset_factors",
        }
    }

    pub fn from_api_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == name)
    }

    /// The Okta System Log event type it is recorded as.
    pub fn event_type(self) -> &'static str {
        match self {
            Self::Suspend => "user.lifecycle.suspend",
            Self::Unsuspend => "user.lifecycle.unsuspend",
            Self::Deactivate => "user.lifecycle.deactivate",
            Self::Unlock => "user.account.unlock",
            Self::ResetFactors => "user.mfa.factor.reset_all",
        }
    }

    /// Whether the user's sessions (IdP and, through Universal Logout, the
    /// apps') end with it.
    pub fn ends_sessions(self) -> bool {
        matches!(self, Self::Suspend | Self::Deactivate)
    }

    /// Whether the users file changes (an unlock only touches the lockout
    /// tracker, which the System Log makes durable).
    pub fn edits_file(self) -> bool {
        !matches!(self, Self::Unlock)
    }

    /// The status after the operation on a user in `from`, or why Okta
    /// refuses it.
    pub fn next_status(self, from: UserStatus) -> Result<UserStatus, TransitionError> {
        use UserStatus::{Active, Deprovisioned, Suspended};
        let next = match (self, from) {
            (Self::Suspend, Active) => Suspended,
            (Self::Unsuspend, Suspended) => Active,
            (Self::Deactivate, Active | Suspended) => Deprovisioned,
            (Self::Unlock, Active) => Active,
            (Self::ResetFactors, Active | Suspended) => from,
            _ => return Err(TransitionError { op: self, from }),
        };
        Ok(next)
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The operation is not allowed in the user's status (Okta answers 400
/// `E0000001` with this as the cause).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.summary())]
pub struct TransitionError {
    pub op: Lifecycle,
    pub from: UserStatus,
}

impl TransitionError {
    fn summary(&self) -> &'static str {
        match self.op {
            Lifecycle::Suspend => "Cannot suspend a user that is not active",
            Lifecycle::Unsuspend => "Cannot unsuspend a user that is not suspended",
            Lifecycle::Deactivate => "Cannot deactivate a user that is already deactivated",
            Lifecycle::Unlock => "Cannot unlock a user that is not active",
            Lifecycle::ResetFactors => "Cannot reset the factors of a deactivated user",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use UserStatus::{Active, Deprovisioned, Suspended};

    #[test]
    fn transitions_follow_okta() {
        let table = [
            (Lifecycle::Suspend, Active, Ok(Suspended)),
            (Lifecycle::Suspend, Suspended, Err(())),
            (Lifecycle::Suspend, Deprovisioned, Err(())),
            (Lifecycle::Unsuspend, Suspended, Ok(Active)),
            (Lifecycle::Unsuspend, Active, Err(())),
            (Lifecycle::Unsuspend, Deprovisioned, Err(())),
            (Lifecycle::Deactivate, Active, Ok(Deprovisioned)),
            (Lifecycle::Deactivate, Suspended, Ok(Deprovisioned)),
            (Lifecycle::Deactivate, Deprovisioned, Err(())),
            (Lifecycle::Unlock, Active, Ok(Active)),
            (Lifecycle::Unlock, Suspended, Err(())),
            (Lifecycle::Unlock, Deprovisioned, Err(())),
            (Lifecycle::ResetFactors, Active, Ok(Active)),
            (Lifecycle::ResetFactors, Suspended, Ok(Suspended)),
            (Lifecycle::ResetFactors, Deprovisioned, Err(())),
        ];
        for (op, from, expected) in table {
            let got = op.next_status(from);
            match expected {
                Ok(to) => assert_eq!(got, Ok(to), "{op} from {from}"),
                Err(()) => assert_eq!(got, Err(TransitionError { op, from }), "{op} from {from}"),
            }
        }
        assert_eq!(
            Lifecycle::Suspend
                .next_status(Suspended)
                .map_err(|e| e.to_string()),
            Err("Cannot suspend a user that is not active".to_string())
        );
    }

    #[test]
    fn api_names_and_event_types() {
        for op in Lifecycle::ALL {
            assert_eq!(Lifecycle::from_api_name(op.as_str()), Some(op));
        }
        assert_eq!(Lifecycle::from_api_name("activate"), None);
        assert_eq!(Lifecycle::from_api_name("SUSPEND"), None);
        assert_eq!(
            Lifecycle::ResetFactors.event_type(),
            "user.mfa.factor.reset_all"
        );
        assert!(Lifecycle::Deactivate.ends_sessions());
        assert!(!Lifecycle::Unsuspend.ends_sessions());
        assert!(!Lifecycle::Unlock.edits_file());
    }
}
