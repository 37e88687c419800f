//! The IdP's part of a session (the [`IdpSession`] body) and its Okta
//! Sessions API face (`GET /api/v1/sessions/{id}`).
//!
//! The common bookkeeping — public id, creation and activity times, the
//! idle and lifetime limits, expiry — is [`portcullis_session::Session`]'s;
//! `expiresAt` is derived from it, never stored.

use std::net::IpAddr;

use portcullis_context::{Asn, Device, SessionContext};
use portcullis_session::{Lifetime, Session, SessionBody, SessionId};
use serde::{Deserialize, Serialize, Serializer};
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use crate::policy::SessionLimits;

/// An IdP session as the store holds it.
pub type SessionRecord = Session<IdpSession>;

/// `status` of a session in the Sessions API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SessionStatus {
    Active,
    /// Password accepted, but the sign-on policy wants a second factor
    /// before the session may be used for SSO.
    MfaRequired,
}

/// Authentication method reference values (RFC 8176), as Okta reports them
/// in a session's `amr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Amr {
    Pwd,
    Otp,
    Mfa,
}

/// The identity provider that authenticated the session. Always "OKTA" for
/// this embedded IdP: that is what clients of the Okta API expect to see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpRef {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: IdpKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// Where and on what the user signed in (post-auth evaluation).
    pub context: Option<SessionContext>,
    /// Sign-in time: becomes `createdAt` and `lastPasswordVerification`.
    pub now: OffsetDateTime,
}

/// What an IdP session carries beyond the common fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpSession {
    pub user_id: String,
    pub login: String,
    pub status: SessionStatus,
    pub amr: Vec<Amr>,
    pub last_password_verification: OffsetDateTime,
    pub last_factor_verification: Option<OffsetDateTime>,
    pub idp: IdpRef,
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// The context the session last saw: at sign-in, then after each
    /// change post-auth evaluation let through.
    #[serde(default)]
    pub context: Option<SessionContext>,
    /// Global session policy and rule that set the limits, for the System Log.
    pub policy: String,
    pub rule: String,
    /// The policy asked for a cookie that outlives the browser session.
    pub persistent_cookie: bool,
    /// The node the session started on (the admin console lists it):
    /// this host's name.
    #[serde(default)]
    pub node: String,
}

/// The index key of a user's sessions.
pub(crate) fn user_key(user_id: &str) -> String {
    format!("user:{user_id}")
}

impl SessionBody for IdpSession {
    fn index_keys(&self) -> Vec<String> {
        vec![user_key(&self.user_id)]
    }
}

impl IdpSession {
    /// The body and limits of a session a sign-in asks for; `idp_id` is
    /// reported as `idp.id`, `node` is where it starts.
    pub fn start(new: NewSession, idp_id: &str, node: &str) -> (Self, Lifetime) {
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
            context,
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
        let body = Self {
            user_id,
            login,
            status: if mfa_pending {
                SessionStatus::MfaRequired
            } else {
                SessionStatus::Active
            },
            amr,
            last_password_verification: now,
            last_factor_verification: mfa_done.then_some(now),
            idp: IdpRef {
                id: idp_id.to_owned(),
                kind: IdpKind::Okta,
            },
            client_ip,
            user_agent,
            context,
            policy,
            rule,
            persistent_cookie: limits.persistent_cookie,
            node: node.to_owned(),
        };
        (body, limits.lifetime())
    }
}

/// The user passed a second factor in this session: it becomes ACTIVE and
/// `amr` gains "otp" and "mfa".
pub(crate) fn record_mfa(session: &mut SessionRecord, now: OffsetDateTime) {
    session.body.status = SessionStatus::Active;
    session.body.last_factor_verification = Some(now);
    add_amr(&mut session.body.amr, &[Amr::Otp, Amr::Mfa]);
    session.record_activity(now);
}

/// The user re-entered their password in this session.
pub(crate) fn record_password(session: &mut SessionRecord, now: OffsetDateTime) {
    session.body.last_password_verification = now;
    add_amr(&mut session.body.amr, &[Amr::Pwd]);
    session.record_activity(now);
}

fn add_amr(amr: &mut Vec<Amr>, methods: &[Amr]) {
    for method in methods {
        if !amr.contains(method) {
            amr.push(*method);
        }
    }
}

/// The Okta Sessions API view of an IdP session.
pub trait SessionsApiJson {
    /// The Sessions API JSON: exactly Okta's fields, nothing else.
    fn to_api_json(&self) -> serde_json::Value;

    /// `expiresAt` as the API shows it, for pages and logs.
    fn expires_at_rfc3339(&self) -> String;
}

impl SessionsApiJson for SessionRecord {
    fn to_api_json(&self) -> serde_json::Value {
        let view = ApiView {
            id: &self.id,
            user_id: &self.body.user_id,
            login: &self.body.login,
            created_at: self.created_at,
            expires_at: self.expires_at(),
            status: self.body.status,
            last_password_verification: self.body.last_password_verification,
            last_factor_verification: self.body.last_factor_verification,
            amr: &self.body.amr,
            idp: &self.body.idp,
            context: self.body.context.as_ref().map(ApiContext::of),
        };
        // Serialising can only fail on a timestamp outside years 0..=9999,
        // which no clock reading plus a policy duration reaches.
        serde_json::to_value(view).unwrap_or(serde_json::Value::Null)
    }

    fn expires_at_rfc3339(&self) -> String {
        format_millis(self.expires_at()).unwrap_or_default()
    }
}

/// The fields of `GET /api/v1/sessions/{id}`, in Okta's order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiView<'a> {
    id: &'a SessionId,
    user_id: &'a str,
    login: &'a str,
    #[serde(serialize_with = "millis")]
    created_at: OffsetDateTime,
    #[serde(serialize_with = "millis")]
    expires_at: OffsetDateTime,
    status: SessionStatus,
    #[serde(serialize_with = "millis")]
    last_password_verification: OffsetDateTime,
    #[serde(serialize_with = "millis_opt")]
    last_factor_verification: Option<OffsetDateTime>,
    amr: &'a [Amr],
    idp: &'a IdpRef,
    /// Beyond Okta's fields: the session's context (post-auth evaluation).
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<ApiContext<'a>>,
}

/// A session's context as the API shows it (not the user-agent hash).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiContext<'a> {
    ip: IpAddr,
    asn: Option<&'a Asn>,
    zones: &'a [portcullis_session::Name],
    device: Device,
}

impl<'a> ApiContext<'a> {
    fn of(context: &'a SessionContext) -> Self {
        ApiContext {
            ip: context.ip,
            asn: context.asn.as_ref(),
            zones: &context.zones,
            device: context.device,
        }
    }
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

    use portcullis_session::EndReason;
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    const T0: OffsetDateTime = datetime!(2026-11-24 05:15:10.193456 UTC);

    /// A record as the store would create it, with a chosen id.
    fn new_record(id: &str, idp_id: &str, new: NewSession) -> SessionRecord {
        let now = new.now;
        let (body, lifetime) = IdpSession::start(new, idp_id, "node-a");
        Session::new(SessionId::from(id), body, lifetime, now)
    }

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
            context: None,
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
        let record = new_record(
            "102abc",
            "00o1",
            new_session(limits(120, Some(24 * 60)), true),
        );
        let json = record.to_api_json();
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
        assert_eq!(record.expires_at_rfc3339(), "2026-11-24T07:15:10.193Z");
    }

    #[test]
    fn json_after_mfa_shows_factor_time_and_amr() {
        let mut record = new_record(
            "102abc",
            "00o1",
            new_session(limits(120, Some(24 * 60)), true),
        );
        record_mfa(&mut record, T0 + Duration::from_secs(30));
        let json = record.to_api_json();
        assert_eq!(json["status"], "ACTIVE");
        assert_eq!(json["lastFactorVerification"], "2026-11-24T05:15:40.193Z");
        assert_eq!(json["amr"], json!(["pwd", "otp", "mfa"]));
    }

    #[test]
    fn timestamps_are_utc_even_from_other_offsets() {
        let mut session = new_session(limits(120, None), false);
        session.now = datetime!(2026-11-24 06:15:10.000 +01:00);
        let record = new_record("102x", "00o1", session);
        let json = record.to_api_json();
        assert_eq!(json["createdAt"], "2026-11-24T05:15:10.000Z");
    }

    #[test]
    fn expiry_is_the_earlier_of_idle_and_lifetime() {
        let mut record = new_record("102x", "00o1", new_session(limits(120, Some(180)), false));
        assert_eq!(
            record.deadline(),
            (T0 + Duration::from_secs(7_200), EndReason::IdleTimeout)
        );
        record.record_activity(T0 + Duration::from_secs(5_400));
        assert_eq!(
            record.deadline(),
            (T0 + Duration::from_secs(10_800), EndReason::MaxLifetime)
        );
        assert_eq!(record.expires_at(), T0 + Duration::from_secs(10_800));
        assert_eq!(
            record.to_api_json()["expiresAt"],
            "2026-11-24T08:15:10.193Z",
            "expiresAt is derived from the limits"
        );
        assert_eq!(record.end_reason_at(T0 + Duration::from_secs(10_799)), None);
        assert_eq!(
            record.end_reason_at(T0 + Duration::from_secs(10_800)),
            Some(EndReason::MaxLifetime)
        );
    }

    #[test]
    fn activity_never_moves_backwards() {
        let mut record = new_record("102x", "00o1", new_session(limits(120, None), false));
        record.record_activity(T0 + Duration::from_secs(60));
        record.record_activity(T0);
        assert_eq!(record.last_activity, T0 + Duration::from_secs(60));
    }

    #[test]
    fn huge_limits_saturate_instead_of_overflowing() {
        let record = new_record(
            "102x",
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
        assert!(record.body.persistent_cookie);
        assert_eq!(
            record.end_reason_at(T0 + Duration::from_secs(1 << 30)),
            None
        );
    }

    #[test]
    fn mfa_in_amr_at_creation_sets_factor_time_unless_pending() {
        let mut session = new_session(limits(120, None), false);
        session.amr = vec![Amr::Pwd, Amr::Otp, Amr::Mfa];
        let record = new_record("102x", "00o1", session.clone());
        assert_eq!(record.body.last_factor_verification, Some(T0));
        assert_eq!(record.body.status, SessionStatus::Active);

        session.mfa_pending = true;
        let record = new_record("102x", "00o1", session);
        assert_eq!(record.body.last_factor_verification, None);
        assert_eq!(record.body.amr, vec![Amr::Pwd]);
        assert_eq!(record.body.status, SessionStatus::MfaRequired);
    }

    #[test]
    fn limits_map_to_the_session_lifetime() {
        let record = new_record("102x", "00o1", new_session(limits(120, Some(180)), false));
        assert_eq!(
            record.lifetime,
            Lifetime::new(
                Duration::from_secs(7_200),
                Some(Duration::from_secs(10_800))
            )
        );
        assert_eq!(record.body.index_keys(), vec!["user:00u1".to_owned()]);
    }

    #[test]
    fn body_round_trips_through_serde() {
        let record = new_record("102x", "00o1", new_session(limits(120, None), true));
        let stored = serde_json::to_string(&record).expect("serialises");
        let back: SessionRecord = serde_json::from_str(&stored).expect("deserialises");
        assert_eq!(back, record);
    }
}
