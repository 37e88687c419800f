//! What `/api/v1/authn` established, carried by a one-time session token
//! to `/login/sessionCookieRedirect` (a [`TicketStore<PendingSignIn>`]
//! ticket), so the session is created exactly as the sign-on policy
//! decided there.
//!
//! [`TicketStore<PendingSignIn>`]: portcullis_session::TicketStore

use std::net::IpAddr;

use portcullis_context::SessionContext;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::record::{Amr, NewSession};
use crate::policy::SessionLimits;

/// Tokens are only issued once sign-in fully succeeded (policy allowed it,
/// MFA done if demanded), so the session they start is never MFA-pending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSignIn {
    pub user_id: String,
    pub login: String,
    /// A second factor was verified during the authn transaction.
    pub mfa_verified: bool,
    /// Limits chosen by the global session policy, and which rule chose them.
    pub limits: SessionLimits,
    pub policy: String,
    pub rule: String,
}

impl PendingSignIn {
    /// The session to create on redemption. Client details come from the
    /// redirect request, since the authn call may have come from a server.
    pub fn into_new_session(
        self,
        client_ip: Option<IpAddr>,
        user_agent: Option<String>,
        context: Option<SessionContext>,
        now: OffsetDateTime,
    ) -> NewSession {
        let amr = if self.mfa_verified {
            vec![Amr::Pwd, Amr::Otp, Amr::Mfa]
        } else {
            vec![Amr::Pwd]
        };
        NewSession {
            user_id: self.user_id,
            login: self.login,
            amr,
            mfa_pending: false,
            limits: self.limits,
            policy: self.policy,
            rule: self.rule,
            client_ip,
            user_agent,
            context,
            now,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use portcullis_session::{MemoryTickets, TicketError, TicketStore};
    use time::macros::datetime;

    use super::*;

    const T0: OffsetDateTime = datetime!(2026-11-24 05:15:10 UTC);
    const TTL: Duration = Duration::from_secs(60);

    fn sign_in(user: &str) -> PendingSignIn {
        PendingSignIn {
            user_id: user.into(),
            login: format!("{user}@example.com"),
            mfa_verified: false,
            limits: SessionLimits::DEFAULT_RULE,
            policy: "Default Policy".into(),
            rule: "Default Rule".into(),
        }
    }

    #[test]
    fn pending_sign_in_becomes_an_active_session() {
        let ip: IpAddr = "192.0.2.7".parse().expect("ip");
        let new = sign_in("u1").into_new_session(Some(ip), Some("curl/8".into()), None, T0);
        assert_eq!(new.amr, vec![Amr::Pwd]);
        assert!(!new.mfa_pending);
        assert_eq!(new.client_ip, Some(ip));
        assert_eq!(new.now, T0);
        let mfa = PendingSignIn {
            mfa_verified: true,
            ..sign_in("u1")
        };
        let new = mfa.into_new_session(None, None, None, T0);
        assert_eq!(new.amr, vec![Amr::Pwd, Amr::Otp, Amr::Mfa]);
        assert_eq!(
            (new.policy.as_str(), new.rule.as_str()),
            ("Default Policy", "Default Rule")
        );
    }

    /// The IdP's session tokens are tickets carrying a `PendingSignIn`.
    #[tokio::test]
    async fn session_token_redeems_once_for_its_sign_in() {
        let tokens = MemoryTickets::<PendingSignIn>::default();
        let token = tokens
            .issue(sign_in("u1"), T0 + TTL, T0)
            .await
            .expect("issued");
        assert_eq!(token.expose().len(), 43);
        assert!(!format!("{tokens:?}").contains(token.expose()));
        assert_eq!(tokens.redeem(token.expose(), T0).await, Ok(sign_in("u1")));
        assert_eq!(
            tokens.redeem(token.expose(), T0).await,
            Err(TicketError::Unknown)
        );
        let expired = tokens
            .issue(sign_in("u2"), T0 + TTL, T0)
            .await
            .expect("issued");
        assert_eq!(
            tokens.redeem(expired.expose(), T0 + TTL).await,
            Err(TicketError::Expired)
        );
        assert_eq!(
            tokens.redeem(expired.expose(), T0).await,
            Err(TicketError::Unknown),
            "even an earlier clock can't reuse it"
        );
    }
}
