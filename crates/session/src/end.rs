//! How sessions end, and the notification published when one does.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a session ended: one vocabulary for IdP and gateway sessions alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EndReason {
    /// The user signed out in this browser.
    SignOut,
    /// This one session was closed through an API.
    Revoked,
    /// All of the user's sessions were closed through an API.
    UserRevoked,
    /// No activity for longer than the idle limit.
    IdleTimeout,
    /// Older than the absolute lifetime.
    MaxLifetime,
    /// The user was suspended or deactivated.
    UserSuspended,
    /// A new sign-in in the same browser superseded it.
    Replaced,
    /// A SAML LogoutRequest ended it (Single Logout).
    SingleLogout,
    /// A global token revocation ended it (Universal Logout).
    UniversalLogout,
    /// Post-auth evaluation ended it: its context changed in a way the
    /// policy does not allow (a likely stolen cookie).
    PostAuthViolation,
}

impl EndReason {
    /// Every reason, for exhaustive tests and metrics labels.
    pub const ALL: [EndReason; 10] = [
        Self::SignOut,
        Self::Revoked,
        Self::UserRevoked,
        Self::IdleTimeout,
        Self::MaxLifetime,
        Self::UserSuspended,
        Self::Replaced,
        Self::SingleLogout,
        Self::UniversalLogout,
        Self::PostAuthViolation,
    ];

    /// Stable snake_case text for tracing fields and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignOut => "sign_out",
            Self::Revoked => "revoked",
            Self::UserRevoked => "user_revoked",
            Self::IdleTimeout => "idle_timeout",
            Self::MaxLifetime => "max_lifetime",
            Self::UserSuspended => "user_suspended",
            Self::Replaced => "replaced",
            Self::SingleLogout => "single_logout",
            Self::UniversalLogout => "universal_logout",
            Self::PostAuthViolation => "post_auth_violation",
        }
    }

    /// The name the IdP's System Log shows (`outcome.reason`), which is also
    /// the serde form: SCREAMING_SNAKE, as Okta writes reasons.
    pub fn system_log_name(self) -> &'static str {
        match self {
            Self::SignOut => "SIGN_OUT",
            Self::Revoked => "REVOKED",
            Self::UserRevoked => "USER_REVOKED",
            Self::IdleTimeout => "IDLE_TIMEOUT",
            Self::MaxLifetime => "MAX_LIFETIME",
            Self::UserSuspended => "USER_SUSPENDED",
            Self::Replaced => "REPLACED",
            Self::SingleLogout => "SINGLE_LOGOUT",
            Self::UniversalLogout => "UNIVERSAL_LOGOUT",
            Self::PostAuthViolation => "POST_AUTH_VIOLATION",
        }
    }

    /// Whether the session ran out on its own rather than being ended.
    pub fn is_expiry(self) -> bool {
        matches!(self, Self::IdleTimeout | Self::MaxLifetime)
    }

    /// Ended without the user's browser in the loop, so the apps must be
    /// told out of band (Universal Logout). Single Logout and Universal
    /// Logout are themselves that propagation, and a sign-out or
    /// replacement happens in the browser, which walks Single Logout.
    pub fn needs_universal_logout(self) -> bool {
        matches!(
            self,
            Self::Revoked
                | Self::UserRevoked
                | Self::IdleTimeout
                | Self::MaxLifetime
                | Self::UserSuspended
        )
    }
}

/// The snake_case form, as tracing fields carry it.
impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable() {
        let expected = [
            ("sign_out", "SIGN_OUT"),
            ("revoked", "REVOKED"),
            ("user_revoked", "USER_REVOKED"),
            ("idle_timeout", "IDLE_TIMEOUT"),
            ("max_lifetime", "MAX_LIFETIME"),
            ("user_suspended", "USER_SUSPENDED"),
            ("replaced", "REPLACED"),
            ("single_logout", "SINGLE_LOGOUT"),
            ("universal_logout", "UNIVERSAL_LOGOUT"),
        ];
        for (reason, (snake, screaming)) in EndReason::ALL.into_iter().zip(expected) {
            assert_eq!(reason.as_str(), snake);
            assert_eq!(reason.to_string(), snake);
            assert_eq!(reason.system_log_name(), screaming);
        }
    }

    #[test]
    fn serde_name_is_the_system_log_name() {
        for reason in EndReason::ALL {
            let json = serde_json::to_value(reason).expect("serialises");
            assert_eq!(json, serde_json::Value::from(reason.system_log_name()));
            let back: EndReason = serde_json::from_value(json).expect("deserialises");
            assert_eq!(back, reason);
            assert_eq!(
                reason.is_expiry(),
                matches!(reason, EndReason::IdleTimeout | EndReason::MaxLifetime)
            );
        }
    }

    #[test]
    fn universal_logout_only_for_ends_without_the_browser() {
        let needs: Vec<EndReason> = EndReason::ALL
            .into_iter()
            .filter(|r| r.needs_universal_logout())
            .collect();
        assert_eq!(
            needs,
            [
                EndReason::Revoked,
                EndReason::UserRevoked,
                EndReason::IdleTimeout,
                EndReason::MaxLifetime,
                EndReason::UserSuspended,
            ]
        );
    }
}
