//! Portcullis sessions: one session model for the embedded IdP's sessions
//! and the gateway's per-app sessions.
//!
//! This crate owns
//! - session identifiers ([`id`]): the bearer secret in a cookie
//!   ([`SessionSecret`], 256 bits from the OS-seeded CSPRNG), which no store
//!   keeps — only its SHA-256 ([`SecretHash`]) — and the unrelated public id
//!   ([`SessionId`], Okta's "102…" shape) for APIs;
//! - the record every backend stores ([`Session`]): public id, creation and
//!   last-activity times, the [`Lifetime`] limits, and a caller-owned body;
//!   ONE expiry rule, deadline = min(created + max, last activity + idle),
//!   the deadline instant itself counting as ended;
//! - ONE vocabulary of why sessions end ([`EndReason`]) and the
//!   notification published exactly once per removed session
//!   ([`SessionEnded`]);
//! - the [`SessionStore`] trait — async, dyn-compatible, typed errors,
//!   wall-clock `now` passed in — with secondary indexes (by user, by IdP
//!   session, …), end notifications and per-session [`EndSignal`]s, and
//!   its sharded in-memory backend ([`MemoryStore`]) and, with the
//!   `redis` feature, the backends every cluster node shares ([`redis`]);
//! - one-time-use caches ([`OneTimeStore`], [`MemoryOneTime`]: assertion
//!   ids, JWT ids, TOTP steps) and one-time tickets carrying a value
//!   ([`TicketStore`], [`MemoryTickets`]);
//! - account lockout counts and locks ([`LockoutStore`],
//!   [`MemoryLockouts`]), shared by the nodes that sign users in;
//! - interned names ([`Name`]) for the strings thousands of bodies repeat;
//! - with the `conformance` feature, the suites every backend runs
//!   ([`conformance`]), so memory and Redis are held to the same tests.
//!
//! It does not own HTTP, cookies' names or attributes, policy (which
//! limits a session gets), or logs and the System Log: callers pass in the
//! limits, put [`SessionSecret::expose`] in their own `Set-Cookie`, and
//! turn [`SessionEnded`] into their events. It depends on no other
//! workspace crate.
//!
//! Lifecycle: `create` → (`touch` | `get` | `update`)* → ended exactly once
//! by `end`, `end_by_id`, `end_indexed`, expiry found by any call, or
//! `sweep`; every end publishes one [`SessionEnded`] and fires the
//! session's [`EndSignal`]s.

mod cookie;
mod encoding;
mod end;
mod error;
mod id;
mod lockout;
mod memory;
mod name;
mod one_time;
mod record;
#[cfg(feature = "redis")]
pub mod redis;
mod store;
mod ticket;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use cookie::{CookieCodec, NodeCookies, PlainCookies};
pub use end::EndReason;
pub use error::{SessionError, StoreError};
pub use id::{SecretHash, SessionId, SessionSecret, SECRET_BYTES, SECRET_LEN};
pub use lockout::{
    FailureOutcome, LockoutPolicy, LockoutStore, MemoryLockouts, DEFAULT_LOCKOUT_CAPACITY,
};
pub use memory::{Footprint, MemoryStore, DEFAULT_ENDED_CAPACITY};
pub use name::{Name, MAX_INTERNED};
pub use one_time::{
    MemoryOneTime, OneTimeError, OneTimeKind, OneTimeStore, DEFAULT_ONE_TIME_CAPACITY,
};
pub use record::{Lifetime, Session};
pub use store::{
    EndSignal, SessionBody, SessionChange, SessionEnded, SessionFilter, SessionStore, StoreFuture,
};
pub use ticket::{
    MemoryTickets, TicketError, TicketSecret, TicketStore, DEFAULT_TICKET_CAPACITY, TICKET_BYTES,
};
