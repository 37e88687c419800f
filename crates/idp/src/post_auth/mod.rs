//! Post-auth session evaluation (DESIGN §5a): after sign-in, every request
//! of an IdP or gateway session is compared with the context the session
//! recorded; a change is an event, and — by the `[post_auth]` policy — a
//! re-evaluation, a re-authentication, a logout or a workflow call.

mod evaluation;
mod policy;
mod report;
pub mod workflow;

pub use evaluation::{ContextChange, Decision, PostAuth, Settings};
pub use report::{Report, Summary, REPORT_CAPACITY};

pub use policy::{
    Action, Mode, PostAuthPolicy, RawPostAuth, RawSelection, Selection, Verdict, DEFAULT_BIND,
};

use portcullis_context::{Attribute, SessionContext};
use serde::Serialize;

/// One violation: a bound attribute of a session's context changed under
/// `enforced`. What the workflow receives and the report counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    /// Also the workflow's idempotency key.
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
    /// The apps the action covers.
    pub apps: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ViolationUser {
    pub id: String,
    pub login: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    Idp,
    Gateway,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ViolationSession {
    /// The session's public id.
    pub id: String,
    pub kind: SessionKind,
    /// The gateway app, for a gateway session.
    pub app: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ViolationPolicy {
    pub mode: String,
    pub bind: Vec<Attribute>,
    pub action: String,
}
