//! Front-channel Single Logout at the browser's next visit.
//!
//! A session that ends without the browser (revocation, expiry,
//! suspension) leaves SPs that publish only a front-channel
//! SingleLogoutService untold: only the browser can carry a LogoutRequest
//! to them. The browser still holds the ended session's cookie, so the IdP
//! remembers those SPs under the cookie's digest (never the cookie), and
//! the next time that browser opens an IdP page it is walked through them
//! — the same signed LogoutRequest/LogoutResponse walk as a sign-out —
//! before it goes on to the page it asked for.
//!
//! Bounded: [`PENDING_MAX`] ended sessions, each kept [`PENDING_TTL`]
//! (a browser that never returns needs no walk), consumed on first use.
//! Node-local, like the record of which SPs a session reached.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;
use http::{Request, Response};
use time::OffsetDateTime;

use super::slo::{LogoutTx, Notice};
use super::sso::lock;
use super::{cookie, Idp, SESSION_COOKIE};
use crate::session::SecretHash;

/// How long an ended session's SPs wait for its browser.
const PENDING_TTL: time::Duration = time::Duration::hours(12);
const PENDING_MAX: usize = 10_000;

/// The SPs one ended session still has to be logged out of.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) session_id: String,
    pub(super) notices: VecDeque<Notice>,
    since: OffsetDateTime,
}

/// Ended sessions whose browsers have SPs to walk through, by cookie digest.
#[derive(Default)]
pub(crate) struct PendingLogouts(Mutex<HashMap<SecretHash, Pending>>);

impl PendingLogouts {
    /// Remembers `notices` for the browser holding the cookie behind
    /// `hash`; false when full (the SPs stay untold).
    pub(super) fn remember(
        &self,
        hash: SecretHash,
        session_id: &str,
        notices: VecDeque<Notice>,
        now: OffsetDateTime,
    ) -> bool {
        let mut map = lock(&self.0);
        if map.len() >= PENDING_MAX {
            map.retain(|_, pending| now - pending.since < PENDING_TTL);
            if map.len() >= PENDING_MAX {
                return false;
            }
        }
        map.insert(
            hash,
            Pending {
                session_id: session_id.to_string(),
                notices,
                since: now,
            },
        );
        true
    }

    /// What is pending for `hash`, once.
    pub(super) fn take(&self, hash: &SecretHash, now: OffsetDateTime) -> Option<Pending> {
        let mut map = lock(&self.0);
        if map.is_empty() {
            return None;
        }
        map.remove(hash)
            .filter(|pending| now - pending.since < PENDING_TTL)
    }

    pub(crate) fn sweep(&self, now: OffsetDateTime) {
        lock(&self.0).retain(|_, pending| now - pending.since < PENDING_TTL);
    }

    fn is_empty(&self) -> bool {
        lock(&self.0).is_empty()
    }
}

impl Idp {
    /// The logout walk this browser is owed, if any: a redirect to the
    /// first SP, the IdP cookie cleared, and `request`'s own address as
    /// where the walk ends. `None` lets the request go on as usual.
    pub(super) fn front_channel_logout_owed(
        &self,
        request: &Request<Bytes>,
    ) -> Option<Response<Bytes>> {
        if self.saml.is_none() || self.pending_logouts.is_empty() {
            return None;
        }
        let value = cookie(request, SESSION_COOKIE)?;
        let secret = self.sessions.parse_cookie(value).ok()?;
        let now = OffsetDateTime::now_utc();
        let pending = self.pending_logouts.take(&secret.hash(), now)?;
        // Only an address on this host, so the walk cannot end elsewhere.
        let resume = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .filter(|p| p.starts_with('/') && !p.starts_with("//"));
        tracing::info!(
            session.id = %pending.session_id,
            service_providers = pending.notices.len(),
            outcome = "front_channel_at_next_visit",
            "browser of an ended session is back: walking it through the service providers not yet told"
        );
        let tx = LogoutTx::resuming(pending.session_id, pending.notices, resume, now);
        Some(self.with_cleared_session(self.advance(tx, now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionSecret;
    use crate::web::sso::IssuedNameId;

    fn notice(sp: &str) -> Notice {
        Notice {
            sp: sp.to_string(),
            name_id: IssuedNameId {
                value: "bob@example.com".to_string(),
                format: portcullis_saml::NameIdFormat::EmailAddress,
                qualified: false,
            },
        }
    }

    const T0: OffsetDateTime = time::macros::datetime!(2026-12-04 12:00 UTC);

    #[test]
    fn what_is_owed_is_handed_out_once_and_only_to_its_cookie() {
        let pending = PendingLogouts::default();
        let (ours, other) = (SessionSecret::generate(), SessionSecret::generate());
        assert!(pending.remember(ours.hash(), "s1", VecDeque::from([notice("wiki")]), T0));
        assert!(pending.take(&other.hash(), T0).is_none());
        let owed = pending.take(&ours.hash(), T0).expect("owed to its cookie");
        assert_eq!(owed.session_id, "s1");
        assert_eq!(owed.notices.len(), 1);
        assert!(pending.take(&ours.hash(), T0).is_none(), "consumed");
    }

    #[test]
    fn a_browser_that_stays_away_is_forgotten() {
        let pending = PendingLogouts::default();
        let secret = SessionSecret::generate();
        assert!(pending.remember(secret.hash(), "s1", VecDeque::from([notice("wiki")]), T0));
        assert!(pending.take(&secret.hash(), T0 + PENDING_TTL).is_none());
        assert!(pending.remember(secret.hash(), "s1", VecDeque::from([notice("wiki")]), T0));
        pending.sweep(T0 + PENDING_TTL);
        assert!(pending.is_empty());
    }

    #[test]
    fn a_full_table_refuses_rather_than_grows() {
        let pending = PendingLogouts::default();
        for _ in 0..PENDING_MAX {
            let secret = SessionSecret::generate();
            assert!(pending.remember(secret.hash(), "s", VecDeque::new(), T0));
        }
        let late = SessionSecret::generate();
        assert!(!pending.remember(late.hash(), "s", VecDeque::new(), T0));
        // Once the old ones are past their time, there is room again.
        assert!(pending.remember(late.hash(), "s", VecDeque::new(), T0 + PENDING_TTL));
    }
}
