//! Request state: which browser started a SAML exchange, and proof that
//! this gateway started it. The id of the AuthnRequest (or of our
//! LogoutRequest) travels in the app's short-lived request-state cookie
//! with its expiry and a MAC over both, the app and the exchange's
//! purpose; the IdP's answer is accepted only in a browser that presents a
//! cookie this gateway issued (`InResponseTo` must match it). The ACS
//! consumes the request id in the one-time store when it accepts an
//! answer, so one AuthnRequest starts one session however many signed
//! responses to it turn up; a refused post consumes nothing and leaves the
//! cookie in place for the genuine answer.
//!
//! The MAC key is derived from the SP signing key, so every node of a
//! cluster that serves the app (they share its key files) accepts the
//! others' cookies, and a restart does not break sign-ins in flight.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;
use time::OffsetDateTime;

use crate::plan::AppPlan;

/// How long a browser has to come back from the IdP after sign-in starts.
pub(crate) const SIGN_IN_TTL: Duration = Duration::from_secs(5 * 60);
/// How long a LogoutRequest of ours may wait for the IdP's answer.
pub(crate) const LOGOUT_TTL: Duration = Duration::from_secs(5 * 60);

/// Cookie values longer than this are not examined (ids are ~40 bytes).
const MAX_VALUE_BYTES: usize = 256;

/// What the exchange is; a sign-in cookie cannot stand in for a logout one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    SignIn,
    Logout,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::SignIn => "sign-in",
            Self::Logout => "logout",
        }
    }

    fn ttl(self) -> Duration {
        match self {
            Self::SignIn => SIGN_IN_TTL,
            Self::Logout => LOGOUT_TTL,
        }
    }
}

/// The key request-state cookies are MAC'd with.
pub(crate) struct StateKey([u8; 32]);

impl StateKey {
    /// Derived from the app's SP signing key (its DER), under a label of its
    /// own, so the MAC key is as secret as that key and reveals nothing of it.
    pub(crate) fn derive(sp_key_der: &[u8]) -> StateKey {
        let mut mac = hmac_with(sp_key_der);
        mac.update(b"portcullis request-state key v1");
        StateKey(mac.finalize().into_bytes().into())
    }

    fn tag(&self, app: &str, purpose: Purpose, request_id: &str, expires: i64) -> Vec<u8> {
        let mut mac = hmac_with(&self.0);
        for part in [
            purpose.as_str().as_bytes(),
            app.as_bytes(),
            request_id.as_bytes(),
            expires.to_string().as_bytes(),
        ] {
            // Length-prefixed, so no two field splits give the same input.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }
}

fn hmac_with(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length: this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// A request this browser is waiting on, as the gateway issued it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    pub(crate) request_id: String,
    /// After this the answer is refused anyway: how long the id's one-time
    /// record must last.
    pub(crate) expires: OffsetDateTime,
}

/// Why a presented request-state cookie was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StateRefused {
    #[error("request-state cookie not issued by this gateway for this app")]
    Forged,
    #[error("request-state cookie expired")]
    Expired,
}

impl StateRefused {
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Self::Forged => "request_state_invalid",
            Self::Expired => "request_state_expired",
        }
    }
}

/// `Set-Cookie` binding `request_id` to this browser.
pub(crate) fn begin(plan: &AppPlan, purpose: Purpose, request_id: &str) -> String {
    let ttl = purpose.ttl();
    let expires = (OffsetDateTime::now_utc()
        + time::Duration::try_from(ttl).unwrap_or(time::Duration::MINUTE))
    .unix_timestamp();
    let tag = plan
        .request_state_key
        .tag(&plan.name, purpose, request_id, expires);
    let value = format!(
        "{request_id}.{expires}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag)
    );
    plan.request_state.set(&value, Some(ttl))
}

/// The request this browser is waiting on: `Ok(None)` without a cookie,
/// an error for one this gateway did not issue (for this app and purpose)
/// or one past its time.
pub(crate) fn presented(
    plan: &AppPlan,
    purpose: Purpose,
    headers: &HeaderMap,
    now: OffsetDateTime,
) -> Result<Option<Pending>, StateRefused> {
    let Some(value) = plan.request_state.read(headers) else {
        return Ok(None);
    };
    check(&plan.request_state_key, &plan.name, purpose, value, now).map(Some)
}

fn check(
    key: &StateKey,
    app: &str,
    purpose: Purpose,
    value: &str,
    now: OffsetDateTime,
) -> Result<Pending, StateRefused> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(StateRefused::Forged);
    }
    let mut parts = value.rsplitn(3, '.');
    let (Some(tag), Some(expires), Some(request_id)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(StateRefused::Forged);
    };
    let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| StateRefused::Forged)?;
    let expires_at: i64 = expires.parse().map_err(|_| StateRefused::Forged)?;
    let expected = key.tag(app, purpose, request_id, expires_at);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        expected.as_slice(),
        tag.as_slice(),
    )) {
        return Err(StateRefused::Forged);
    }
    let expires =
        OffsetDateTime::from_unix_timestamp(expires_at).map_err(|_| StateRefused::Forged)?;
    if now >= expires {
        return Err(StateRefused::Expired);
    }
    Ok(Pending {
        request_id: request_id.to_string(),
        expires,
    })
}

/// `Set-Cookie` ending the exchange.
pub(crate) fn clear(plan: &AppPlan) -> String {
    plan.request_state.clear()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issued(key: &StateKey, app: &str, purpose: Purpose, id: &str, expires: i64) -> String {
        let tag = key.tag(app, purpose, id, expires);
        format!(
            "{id}.{expires}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag)
        )
    }

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).expect("instant")
    }

    #[test]
    fn only_a_cookie_issued_for_this_app_and_purpose_in_time_is_taken() {
        let key = StateKey::derive(b"sp key der");
        let good = issued(&key, "wiki", Purpose::SignIn, "_abc.def", 1_000);
        assert_eq!(
            check(&key, "wiki", Purpose::SignIn, &good, at(999)),
            Ok(Pending {
                request_id: "_abc.def".into(),
                expires: at(1_000)
            })
        );
        assert_eq!(
            check(&key, "wiki", Purpose::SignIn, &good, at(1_000)),
            Err(StateRefused::Expired)
        );
        for (app, purpose) in [("other", Purpose::SignIn), ("wiki", Purpose::Logout)] {
            assert_eq!(
                check(&key, app, purpose, &good, at(0)),
                Err(StateRefused::Forged)
            );
        }
        let other_key = StateKey::derive(b"another sp key");
        assert_eq!(
            check(&other_key, "wiki", Purpose::SignIn, &good, at(0)),
            Err(StateRefused::Forged)
        );
    }

    #[test]
    fn a_bare_id_an_edited_expiry_or_junk_is_forged() {
        let key = StateKey::derive(b"sp key der");
        let good = issued(&key, "wiki", Purpose::SignIn, "_abc", 1_000);
        let later = good.replace(".1000.", ".9999.");
        for forged in [
            "_abc",
            "_abc.1000",
            later.as_str(),
            "_abc.1000.!!!",
            "..",
            &"x".repeat(MAX_VALUE_BYTES + 1),
        ] {
            assert_eq!(
                check(&key, "wiki", Purpose::SignIn, forged, at(0)),
                Err(StateRefused::Forged),
                "{forged}"
            );
        }
    }
}
