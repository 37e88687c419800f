//! Post-auth session evaluation (DESIGN §5a): after sign-in, every request
//! of an IdP or gateway session is compared with the context the session
//! recorded; a change is an event, and — by the policy file's
//! `[post_auth]` — a re-evaluation, a re-authentication, a logout or a
//! workflow call.

mod evaluation;
mod policy;
mod report;
pub mod workflow;

pub use evaluation::{ContextChange, Decision, PostAuth, Settings};
pub use policy::{
    Action, Mode, PostAuthPolicy, RawPostAuth, RawSelection, Selection, Verdict, DEFAULT_BIND,
};
pub use report::{Report, Summary, REPORT_CAPACITY};

use portcullis_context::{Attribute, SessionContext};
use serde::{Deserialize, Serialize};

/// A bound attribute of a session changed under an enforced policy: what
/// the actions (a workflow webhook among them) are told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    /// A v4 UUID; also the webhook's idempotency key, so a receiver that
    /// sees a retry can tell it from a second violation.
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub published: time::OffsetDateTime,
    pub user: ViolationUser,
    pub session: ViolationSession,
    /// The bound attributes that changed.
    pub attributes: Vec<Attribute>,
    pub old: SessionContext,
    pub new: SessionContext,
    pub policy: ViolationPolicy,
    /// The apps impacted.
    pub apps: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViolationUser {
    pub id: String,
    pub login: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViolationSession {
    /// The public session id (as the Sessions API shows it).
    pub id: String,
    pub kind: SessionKind,
    /// The app of a gateway session.
    pub app: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    Idp,
    Gateway,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViolationPolicy {
    pub mode: String,
    pub bind: Vec<Attribute>,
    pub action: String,
}
