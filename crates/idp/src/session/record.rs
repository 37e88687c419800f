//! One IdP session as the Sessions API shows it (`GET /api/v1/sessions/{id}`),
//! plus the bookkeeping the store needs to expire it.

use std::net::IpAddr;

use serde::{Serialize, Serializer};
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use super::end::EndReason;
use super::id::SessionId;
use crate::policy::SessionLimits;

/// `status` of a session in the Sessions API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SessionStatus {
    Active,
    /// Password accepted, but the sign-on policy wants a second factor
    /// before the session may be used for SSO.
    MfaRequired,
}

/// Authentication method reference values (RFC 8176), as Okta reports them
/// in a session's `amr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Amr {
    Pwd,
    Otp,
    Mfa,
}

/// The identity provider that authenticated the session. Always "OKTA" for
/// this embedded IdP: that is what clients of the Okta API expect to see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdpRef {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: IdpKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum IdpKind {
    Okta,
}

/// What a successful sign-in knows when it asks for a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub user_id: String,
    pub login: String,
    /// Methods already used, e.g. `[Pwd]` or `[Pwd, Otp, Mfa]`.
    pub amr: Vec<Amr>,
    /// The sign-on policy demands MFA that has not happened yet.
    pub mfa_pending: bool,
    pub limits: SessionLimits,
    /// Global session policy and rule that chose `limits`.
    pub policy: String,
    pub rule: String,
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// Sign-in time: becomes `createdAt` and `lastPasswordVerification`.
    pub now: OffsetDateTime,
}

/// A snapshot of a session. The store owns the live copy; records handed
/// out are copies, so changing one changes nothing.
///
/// Serialises to exactly the Okta Sessions API fields; everything else is
/// skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRecord {
    pub id: SessionId,
    pub user_id: String,
    pub login: String,
    #[serde(serialize_with = "millis")]
    pub created_at: OffsetDateTime,
    /// Derived: min(created + max lifetime, last activity + max idle). The
    /// store recomputes it whenever `last_activity` changes.
    #[serde(serialize_with = "millis")]
    pub expires_at: OffsetDateTime,
    pub status: SessionStatus,
    #[serde(serialize_with = "millis")]
    pub last_password_verification: OffsetDateTime,
    #[serde(serialize_with = "millis_opt")]
    pub last_factor_verification: Option<OffsetDateTime>,
    pub amr: Vec<Amr>,
    pub idp: IdpRef,

    #[serde(skip)]
    pub last_activity: OffsetDateTime,
    #[serde(skip)]
    pub client_ip: Option<IpAddr>,
    #[serde(skip)]
    pub user_agent: Option<String>,
    #[serde(skip)]
    pub limits: SessionLimits,
    /// Global session policy and rule that set `limits`, for the System Log.
    #[serde(skip)]
    pub policy: String,
    #[serde(skip)]
    pub rule: String,
}

impl SessionRecord {
    pub(super) fn new(id: SessionId, idp_id: &str, new: NewSession) -> Self {
        let NewSession {
            user_id,
            login,
            mut amr,
            mfa_pending,
            limits,
            policy,
            rule,
            client_ip,
            user_agent,
            now,
        } = new;
        // Every session starts from a password check (hence the non-null
        // `lastPasswordVerification`), and Okta lists "pwd" first.
        if !amr.contains(&Amr::Pwd) {
            amr.insert(0, Amr::Pwd);
        }
        // A caller that says MFA already happened (amr has "mfa") but is
        // still pending contradicts itself; trust the stricter "pending".
        let mfa_done = !mfa_pending && amr.contains(&Amr::Mfa);
        if mfa_pending {
            amr.retain(|m| *m == Amr::Pwd);
        }
        let mut record = Self {
            id,
            user_id,
            login,
            created_at: now,
            expires_at: now,
            status: if mfa_pending {
                SessionStatus::MfaRequired
            } else {
                SessionStatus::Active
            },
            last_password_verification: now,
            last_factor_verification: mfa_done.then_some(now),
            amr,
            idp: IdpRef {
                id: idp_id.to_owned(),
                kind: IdpKind::Okta,
            },
            last_activity: now,
            client_ip,
            user_agent,
            limits,
            policy,
            rule,
        };
        record.expires_at = record.deadline().0;
        record
    }

    /// When the session dies if nothing else happens, and of what.
    ///
    /// If both limits fall on the same instant the lifetime is reported:
    /// activity could not have saved the session.
    pub fn deadline(&self) -> (OffsetDateTime, EndReason) {
        let idle = add_std(self.last_activity, self.limits.max_idle);
        match self.limits.max_lifetime {
            Some(lifetime) => {
                let absolute = add_std(self.created_at, lifetime);
                if absolute <= idle {
                    (absolute, EndReason::MaxLifetime)
                } else {
                    (idle, EndReason::IdleTimeout)
                }
            }
            None => (idle, EndReason::IdleTimeout),
        }
    }

    /// `Some(reason)` if the session is dead at `now`. The deadline itself
    /// counts as dead, matching `expiresAt` being the first instant it is
    /// no longer valid.
    pub fn end_reason_at(&self, now: OffsetDateTime) -> Option<EndReason> {
        let (deadline, reason) = self.deadline();
        (now >= deadline).then_some(reason)
    }

    /// Records use at `now`. Never moves backwards: concurrent requests may
    /// arrive with slightly out-of-order clocks readings.
    pub(super) fn record_activity(&mut self, now: OffsetDateTime) {
        self.last_activity = self.last_activity.max(now);
        self.expires_at = self.deadline().0;
    }

    pub(super) fn record_mfa(&mut self, now: OffsetDateTime) {
        self.status = SessionStatus::Active;
        self.last_factor_verification = Some(now);
        add_amr(&mut self.amr, &[Amr::Otp, Amr::Mfa]);
        self.record_activity(now);
    }

    pub(super) fn record_password(&mut self, now: OffsetDateTime) {
        self.last_password_verification = now;
        add_amr(&mut self.amr, &[Amr::Pwd]);
        self.record_activity(now);
    }
}

impl SessionRecord {
    /// The Sessions API JSON for this record.
    pub fn to_api_json(&self) -> serde_json::Value {
        // Serialising can only fail on a timestamp outside years 0..=9999,
        // which no clock reading plus a policy duration reaches.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// `expiresAt` as the API shows it, for pages and logs.
    pub fn expires_at_rfc3339(&self) -> String {
        format_millis(self.expires_at).unwrap_or_default()
    }
}

fn add_amr(amr: &mut Vec<Amr>, methods: &[Amr]) {
    for method in methods {
        if !amr.contains(method) {
            amr.push(*method);
        }
    }
}

/// `t + d`, saturating: a limit too large for the calendar never expires.
fn add_std(t: OffsetDateTime, d: std::time::Duration) -> OffsetDateTime {
    t.saturating_add(time::Duration::try_from(d).unwrap_or(time::Duration::MAX))
}

/// `2026-11-24T05:15:10.193Z`: UTC, milliseconds, as Okta emits.
fn format_millis(t: OffsetDateTime) -> Result<String, time::error::Format> {
    t.to_offset(UtcOffset::UTC).format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
}

fn millis<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    let text = format_millis(*t).map_err(serde::ser::Error::custom)?;
    s.serialize_str(&text)
}

fn millis_opt<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => millis(t, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    const T0: OffsetDateTime = datetime!(2026-11-24 05:15:10.193456 UTC);

    fn new_session(limits: SessionLimits, mfa_pending: bool) -> NewSession {
        NewSession {
            user_id: "00u1".into(),
            login: "alice@example.com".into(),
            amr: vec![Amr::Pwd],
            mfa_pending,
            limits,
            policy: "Default Policy".into(),
            rule: "Default Rule".into(),
            client_ip: Some("192.0.2.7".parse().expect("ip")),
            user_agent: Some("curl/8".into()),
            now: T0,
        }
    }

    fn limits(idle_min: u64, lifetime_min: Option<u64>) -> SessionLimits {
        SessionLimits {
            max_idle: Duration::from_secs(idle_min * 60),
            max_lifetime: lifetime_min.map(|m| Duration::from_secs(m * 60)),
            persistent_cookie: false,
        }
    }

    #[test]
    fn json_has_exactly_the_okta_fields() {
        let record = SessionRecord::new(
            SessionId::from("102abc"),
            "00o1",
            new_session(limits(120, Some(24 * 60)), true),
        );
        let json = serde_json::to_value(&record).expect("serialises");
        assert_eq!(
            json,
            json!({
                "id": "102abc",
                "userId": "00u1",
                "login": "alice@example.com",
                "createdAt": "2026-11-24T05:15:10.193Z",
                "expiresAt": "2026-11-24T07:15:10.193Z",
                "status": "MFA_REQUIRED",
                "lastPasswordVerification": "2026-11-24T05:15:10.193Z",
                "lastFactorVerification": null,
                "amr": ["pwd"],
                "idp": { "id": "00o1", "type": "OKTA" }
            })
        );
        assert_eq!(record.to_api_json(), json);
        assert_eq!(record.expires_at_rfc3339(), "2026-11-24T07:15:10.193Z");
    }

    #[test]
    fn json_after_mfa_shows_factor_time_and_amr() {
        let mut record = SessionRecord::new(
            SessionId::from("102abc"),
            "00o1",
            new_session(limits(120, Some(24 * 60)), true),
        );
        record.record_mfa(T0 + Duration::from_secs(30));
        let json = serde_json::to_value(&record).expect("serialises");
        assert_eq!(json["status"], "ACTIVE");
        assert_eq!(json["lastFactorVerification"], "2026-11-24T05:15:40.193Z");
        assert_eq!(json["amr"], json!(["pwd", "otp", "mfa"]));
    }

    #[test]
    fn timestamps_are_utc_even_from_other_offsets() {
        let mut session = new_session(limits(120, None), false);
        session.now = datetime!(2026-11-24 06:15:10.000 +01:00);
        let record = SessionRecord::new(SessionId::from("102x"), "00o1", session);
        let json = serde_json::to_value(&record).expect("serialises");
        assert_eq!(json["createdAt"], "2026-11-24T05:15:10.000Z");
    }

    #[test]
    fn expiry_is_the_earlier_of_idle_and_lifetime() {
        let mut record = SessionRecord::new(
            SessionId::from("102x"),
            "00o1",
            new_session(limits(120, Some(180)), false),
        );
        assert_eq!(
            record.deadline(),
            (T0 + Duration::from_secs(7_200), EndReason::IdleTimeout)
        );
        record.record_activity(T0 + Duration::from_secs(5_400));
        assert_eq!(
            record.deadline(),
            (T0 + Duration::from_secs(10_800), EndReason::MaxLifetime)
        );
        assert_eq!(record.expires_at, T0 + Duration::from_secs(10_800));
        assert_eq!(record.end_reason_at(T0 + Duration::from_secs(10_799)), None);
        assert_eq!(
            record.end_reason_at(T0 + Duration::from_secs(10_800)),
            Some(EndReason::MaxLifetime)
        );
    }

    #[test]
    fn activity_never_moves_backwards() {
        let mut record = SessionRecord::new(
            SessionId::from("102x"),
            "00o1",
            new_session(limits(120, None), false),
        );
        record.record_activity(T0 + Duration::from_secs(60));
        record.record_activity(T0);
        assert_eq!(record.last_activity, T0 + Duration::from_secs(60));
    }

    #[test]
    fn huge_limits_saturate_instead_of_overflowing() {
        let record = SessionRecord::new(
            SessionId::from("102x"),
            "00o1",
            new_session(
                SessionLimits {
                    max_idle: Duration::MAX,
                    max_lifetime: None,
                    persistent_cookie: true,
                },
                false,
            ),
        );
        assert_eq!(
            record.end_reason_at(T0 + Duration::from_secs(1 << 30)),
            None
        );
    }

    #[test]
    fn mfa_in_amr_at_creation_sets_factor_time_unless_pending() {
        let mut session = new_session(limits(120, None), false);
        session.amr = vec![Amr::Pwd, Amr::Otp, Amr::Mfa];
        let record = SessionRecord::new(SessionId::from("102x"), "00o1", session.clone());
        assert_eq!(record.last_factor_verification, Some(T0));
        assert_eq!(record.status, SessionStatus::Active);

        session.mfa_pending = true;
        let record = SessionRecord::new(SessionId::from("102x"), "00o1", session);
        assert_eq!(record.last_factor_verification, None);
        assert_eq!(record.amr, vec![Amr::Pwd]);
        assert_eq!(record.status, SessionStatus::MfaRequired);
    }
}
