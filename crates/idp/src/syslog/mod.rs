//! The System Log: an audit trail of what the identity provider did and
//! why, shaped like Okta's System Log so existing tooling can read it.
//!
//! Owns the event model ([`Event`]), durable storage with an in-memory
//! window of recent events ([`SystemLog`]), the `filter` expression language
//! ([`Filter`]) and cursor-paged queries ([`Query`], [`Page`]). Serving the
//! `/api/v1/logs` endpoint itself is left to the HTTP layer.

mod event;
mod filter;
mod query;
mod store;

/// RFC 3339 UTC with milliseconds, the timestamp format of every Okta-shaped API.
pub(crate) use event::format_published;
pub use event::{
    Actor, AuthenticationContext, Client, DebugContext, Entity, Event, Outcome, OutcomeResult,
    Severity, Target, UserAgent,
};
pub use filter::{Attr, CompareOp, Filter, FilterError, Literal, MAX_FILTER_DEPTH, MAX_FILTER_LEN};
pub use query::{next_link, Cursor, Page, Query, QueryError, SortOrder, DEFAULT_LIMIT, MAX_LIMIT};
pub use store::{SystemLog, SystemLogConfig, SystemLogError};
