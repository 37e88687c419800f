//! How sessions end, and the notification published when one does.

use std::fmt;

use serde::Serialize;

use super::record::SessionRecord;

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EndReason {
    /// The user signed out.
    SignOut,
    /// This one session was closed through the Sessions API.
    Revoked,
    /// All of the user's sessions were closed through the API.
    UserRevoked,
    /// No activity for longer than the policy's idle limit.
    IdleTimeout,
    /// Older than the policy's absolute lifetime.
    MaxLifetime,
    /// The user was suspended or deactivated.
    UserSuspended,
    /// A new sign-in in the same browser superseded it.
    Replaced,
}

impl EndReason {
    /// Ended without the user's browser in the loop, so the apps must be
    /// told out of band (Universal Logout).
    pub fn needs_universal_logout(self) -> bool {
        matches!(
            self,
            EndReason::Revoked
                | EndReason::UserRevoked
                | EndReason::IdleTimeout
                | EndReason::MaxLifetime
                | EndReason::UserSuspended
        )
    }

    /// Stable text for logs and the System Log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignOut => "SIGN_OUT",
            Self::Revoked => "REVOKED",
            Self::UserRevoked => "USER_REVOKED",
            Self::IdleTimeout => "IDLE_TIMEOUT",
            Self::MaxLifetime => "MAX_LIFETIME",
            Self::UserSuspended => "USER_SUSPENDED",
            Self::Replaced => "REPLACED",
        }
    }

    /// Whether the session ran out on its own rather than being ended.
    pub fn is_expiry(self) -> bool {
        matches!(self, Self::IdleTimeout | Self::MaxLifetime)
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Published exactly once for every session removed from the store,
/// whatever removed it; see [`SessionStore::subscribe`](super::SessionStore::subscribe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnded {
    /// The session as it was when removed.
    pub record: SessionRecord,
    pub reason: EndReason,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_matches_serde_name() {
        for reason in [
            EndReason::SignOut,
            EndReason::Revoked,
            EndReason::UserRevoked,
            EndReason::IdleTimeout,
            EndReason::MaxLifetime,
            EndReason::UserSuspended,
            EndReason::Replaced,
        ] {
            let json = serde_json::to_value(reason).expect("serialises");
            assert_eq!(json, serde_json::Value::from(reason.as_str()));
            assert_eq!(
                reason.is_expiry(),
                matches!(reason, EndReason::IdleTimeout | EndReason::MaxLifetime)
            );
        }
    }
}
