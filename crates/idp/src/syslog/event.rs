//! One System Log event and its Okta-compatible JSON shape.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

/// Something that happened, as recorded in the System Log.
///
/// Fields are public for reading; build events with [`Event::new`] and the
/// chained setters so that `uuid` and `published` are always filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub uuid: Uuid,
    /// Millisecond precision, UTC: the JSON form carries only milliseconds,
    /// and cursors must compare equal before and after a restart.
    #[serde(with = "published_format")]
    pub published: OffsetDateTime,
    pub event_type: String,
    pub display_message: String,
    pub severity: Severity,
    pub actor: Actor,
    pub client: Client,
    pub outcome: Outcome,
    pub target: Vec<Target>,
    pub authentication_context: AuthenticationContext,
    pub debug_context: DebugContext,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Debug,
    Info,
    Warn,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Debug => "DEBUG",
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Error => "ERROR",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum OutcomeResult {
    Success,
    Failure,
    Skipped,
    Allow,
    Deny,
    Challenge,
    Unknown,
}

impl OutcomeResult {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeResult::Success => "SUCCESS",
            OutcomeResult::Failure => "FAILURE",
            OutcomeResult::Skipped => "SKIPPED",
            OutcomeResult::Allow => "ALLOW",
            OutcomeResult::Deny => "DENY",
            OutcomeResult::Challenge => "CHALLENGE",
            OutcomeResult::Unknown => "UNKNOWN",
        }
    }
}

/// An actor or a target: who did something, or what it was done to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entity {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub alternate_id: Option<String>,
    pub display_name: Option<String>,
}

pub type Actor = Entity;
pub type Target = Entity;

impl Entity {
    pub fn new(id: impl Into<String>, kind: impl Into<String>) -> Self {
        Entity {
            id: id.into(),
            kind: kind.into(),
            alternate_id: None,
            display_name: None,
        }
    }

    pub fn alternate_id(mut self, alternate_id: impl Into<String>) -> Self {
        self.alternate_id = Some(alternate_id.into());
        self
    }

    pub fn display_name(mut self, display_name: impl Into<String>) -> Self {
        self.display_name = Some(display_name.into());
        self
    }

    /// The actor of events the gateway raises on its own behalf, mirroring
    /// Okta's `SystemPrincipal` so existing log tooling recognises it.
    pub fn system() -> Self {
        Entity::new("portcullis", "SystemPrincipal")
            .alternate_id("system@portcullis")
            .display_name("Portcullis System")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Client {
    pub ip_address: Option<String>,
    pub user_agent: UserAgent,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserAgent {
    pub raw_user_agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub result: OutcomeResult,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationContext {
    pub external_session_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DebugContext {
    /// Ordered so the JSON line is deterministic for identical events.
    pub debug_data: BTreeMap<String, String>,
}

impl Event {
    /// A new event published now, acted by [`Entity::system`] until
    /// [`Event::actor`] says otherwise.
    pub fn new(
        event_type: impl Into<String>,
        display_message: impl Into<String>,
        severity: Severity,
        result: OutcomeResult,
    ) -> Self {
        Event {
            uuid: Uuid::new_v4(),
            published: truncate_to_millis(OffsetDateTime::now_utc()),
            event_type: event_type.into(),
            display_message: display_message.into(),
            severity,
            actor: Entity::system(),
            client: Client::default(),
            outcome: Outcome {
                result,
                reason: None,
            },
            target: Vec::new(),
            authentication_context: AuthenticationContext::default(),
            debug_context: DebugContext::default(),
        }
    }

    pub fn actor(mut self, actor: Actor) -> Self {
        self.actor = actor;
        self
    }

    pub fn client(mut self, ip_address: Option<IpAddr>, user_agent: Option<&str>) -> Self {
        self.client = Client {
            ip_address: ip_address.map(|ip| ip.to_string()),
            user_agent: UserAgent {
                raw_user_agent: user_agent.map(str::to_owned),
            },
        };
        self
    }

    /// Appends one target; call repeatedly for several.
    pub fn target(mut self, target: Target) -> Self {
        self.target.push(target);
        self
    }

    pub fn session(mut self, external_session_id: impl Into<String>) -> Self {
        self.authentication_context.external_session_id = Some(external_session_id.into());
        self
    }

    pub fn debug(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.debug_context
            .debug_data
            .insert(key.into(), value.into());
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.outcome.reason = Some(reason.into());
        self
    }
}

/// UTC with sub-millisecond digits dropped, the precision the JSON keeps.
pub(crate) fn truncate_to_millis(t: OffsetDateTime) -> OffsetDateTime {
    let utc = t.to_offset(UtcOffset::UTC);
    let millis_only = utc.nanosecond() / 1_000_000 * 1_000_000;
    utc.replace_nanosecond(millis_only).unwrap_or(utc)
}

/// Formats like `2026-11-24T05:15:10.193Z`.
pub(crate) fn format_published(t: OffsetDateTime) -> Result<String, time::error::Format> {
    t.to_offset(UtcOffset::UTC).format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
}

mod published_format {
    use super::*;

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        let text = format_published(*t).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        // Accept any RFC 3339 offset so hand-edited or imported lines load;
        // normalising keeps ordering and cursors consistent with our output.
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let parsed = OffsetDateTime::parse(&text, &Rfc3339).map_err(serde::de::Error::custom)?;
        Ok(truncate_to_millis(parsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    #[test]
    fn json_shape_matches_okta() {
        let mut event = Event::new(
            "user.session.start",
            "User login to Portcullis",
            Severity::Info,
            OutcomeResult::Success,
        )
        .actor(
            Actor::new("00u1", "User")
                .alternate_id("alice@example.com")
                .display_name("Alice"),
        )
        .client(Some("192.0.2.7".parse().expect("ip")), Some("curl/8"))
        .target(Target::new("app1", "AppInstance"))
        .session("sess-1")
        .debug("requestId", "r-9")
        .reason("VERIFICATION_SUCCESS");
        event.published = datetime!(2026-11-24 05:15:10.193 UTC);
        let value = serde_json::to_value(&event).expect("serialize");
        assert_eq!(
            value,
            json!({
                "uuid": event.uuid.to_string(),
                "published": "2026-11-24T05:15:10.193Z",
                "eventType": "user.session.start",
                "displayMessage": "User login to Portcullis",
                "severity": "INFO",
                "actor": {"id": "00u1", "type": "User", "alternateId": "alice@example.com", "displayName": "Alice"},
                "client": {"ipAddress": "192.0.2.7", "userAgent": {"rawUserAgent": "curl/8"}},
                "outcome": {"result": "SUCCESS", "reason": "VERIFICATION_SUCCESS"},
                "target": [{"id": "app1", "type": "AppInstance", "alternateId": null, "displayName": null}],
                "authenticationContext": {"externalSessionId": "sess-1"},
                "debugContext": {"debugData": {"requestId": "r-9"}}
            })
        );
        let back: Event = serde_json::from_value(value).expect("deserialize");
        assert_eq!(back, event);
    }

    #[test]
    fn absent_client_fields_are_null() {
        let event = Event::new("x", "y", Severity::Warn, OutcomeResult::Deny);
        let value = serde_json::to_value(&event).expect("serialize");
        assert_eq!(
            value["client"],
            json!({"ipAddress": null, "userAgent": {"rawUserAgent": null}})
        );
        assert_eq!(value["outcome"], json!({"result": "DENY", "reason": null}));
    }

    #[test]
    fn published_is_millisecond_utc() {
        let event = Event::new("x", "y", Severity::Debug, OutcomeResult::Unknown);
        assert_eq!(event.published.nanosecond() % 1_000_000, 0);
        assert_eq!(event.published.offset(), UtcOffset::UTC);
        let text = format_published(event.published).expect("format");
        assert_eq!(text.len(), "2026-11-24T05:15:10.193Z".len());
        assert!(text.ends_with('Z'));
    }

    #[test]
    fn other_offsets_are_normalised_on_read() {
        let t: OffsetDateTime = published_format::deserialize(serde_json::Value::String(
            "2026-11-24T06:15:10.1937+01:00".into(),
        ))
        .expect("parse");
        assert_eq!(t, datetime!(2026-11-24 05:15:10.193 UTC));
    }
}
