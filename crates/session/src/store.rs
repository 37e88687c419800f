//! The one session-store interface every backend implements (memory today,
//! Redis for the cluster), so callers hold an `Arc<dyn SessionStore<B>>`
//! and do not know which one they have.
//!
//! Backend-neutral by construction: every call is async (it may cross the
//! network), every call returns a typed error, records are plain serde
//! data, and time is always the caller's wall-clock `now` so one request
//! sees one clock reading and behaviour is testable.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll};

use serde::de::DeserializeOwned;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::{broadcast, watch};

use crate::end::EndReason;
use crate::error::{SessionError, StoreError};
use crate::id::{SecretHash, SessionId, SessionSecret};
use crate::record::{Lifetime, Session};

/// What every store call returns: a boxed future, so the trait stays
/// dyn-compatible.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A read-modify-write step applied to a live session under the store's
/// atomic step. It must not call back into the store.
pub type SessionChange<'a, B> = Box<dyn FnOnce(&mut Session<B>) + Send + 'a>;

/// Chooses which sessions under an index key to end. It must not call back
/// into the store.
pub type SessionFilter<'a, B> = Box<dyn Fn(&Session<B>) -> bool + Send + Sync + 'a>;

/// The caller's part of a session.
pub trait SessionBody: Clone + Send + Sync + Serialize + DeserializeOwned + 'static {
    /// Secondary index keys this session is found by (e.g. "user:00u1",
    /// "idp-session:102…"). Recomputed after every update, so a body whose
    /// keys change is re-indexed. Must depend on the body alone: a backend
    /// may recompute the keys instead of storing them.
    fn index_keys(&self) -> Vec<String>;
}

/// Live sessions, keyed by the SHA-256 of their cookie secret.
///
/// Every removal, by whatever path — sign-out, revocation, expiry found on
/// use, sweep — publishes exactly one [`SessionEnded`] and wakes every
/// [`ended`](Self::ended) waiter of that session.
pub trait SessionStore<B: SessionBody>: Send + Sync {
    /// Starts a session at `now`. The secret goes in the cookie; the store
    /// keeps only its hash.
    fn create(
        &self,
        body: B,
        lifetime: Lifetime,
        now: OffsetDateTime,
    ) -> StoreFuture<'_, Result<(SessionSecret, Session<B>), StoreError>>;

    /// Use by cookie: enforces the limits (an expired session is ended,
    /// published, and reported `Expired { reason }`), then records activity.
    fn touch<'a>(
        &'a self,
        hash: &'a SecretHash,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<Session<B>, SessionError>>;

    /// By public id, without recording activity; an expired session is
    /// ended like [`touch`](Self::touch) would.
    fn get<'a>(
        &'a self,
        id: &'a SessionId,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<Session<B>, SessionError>>;

    /// Read-modify-write of a live session by cookie hash (e.g. "MFA
    /// verified"). The limits are checked first, in the same atomic step as
    /// `change`, so no caller can revive a session another just expired.
    /// `change` records activity itself when the change counts as use.
    fn update<'a>(
        &'a self,
        hash: &'a SecretHash,
        now: OffsetDateTime,
        change: SessionChange<'a, B>,
    ) -> StoreFuture<'a, Result<Session<B>, SessionError>>;

    /// [`update`](Self::update) by public id (e.g. an API refresh).
    fn update_by_id<'a>(
        &'a self,
        id: &'a SessionId,
        now: OffsetDateTime,
        change: SessionChange<'a, B>,
    ) -> StoreFuture<'a, Result<Session<B>, SessionError>>;

    /// Ends the session behind a cookie. `None` if it was already gone.
    fn end<'a>(
        &'a self,
        hash: &'a SecretHash,
        reason: EndReason,
    ) -> StoreFuture<'a, Result<Option<Session<B>>, StoreError>>;

    /// Ends one session by public id. `None` if it was already gone.
    fn end_by_id<'a>(
        &'a self,
        id: &'a SessionId,
        reason: EndReason,
    ) -> StoreFuture<'a, Result<Option<Session<B>>, StoreError>>;

    /// Ends every session under index `key` that `matches` accepts (all of
    /// them when it always says yes), expired or not, with `reason`.
    fn end_indexed<'a>(
        &'a self,
        key: &'a str,
        reason: EndReason,
        matches: SessionFilter<'a, B>,
    ) -> StoreFuture<'a, Result<Vec<Session<B>>, StoreError>>;

    /// Live sessions under `key`, oldest first; ones found past their
    /// limits are ended (and published) instead of listed.
    fn list_indexed<'a>(
        &'a self,
        key: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<Vec<Session<B>>, StoreError>>;

    /// Ends every session past its limits at `now`; returns them.
    fn sweep(&self, now: OffsetDateTime) -> StoreFuture<'_, Result<Vec<Session<B>>, StoreError>>;

    /// Receives a [`SessionEnded`] for every session removed from now on,
    /// by any path, exactly once each. A receiver that falls behind by more
    /// than the store's capacity gets `Lagged` and loses the oldest.
    fn subscribe(&self) -> broadcast::Receiver<SessionEnded<B>>;

    /// Resolves when this session ends by any path; at once when it is not
    /// live. This is what closes the WebSocket tunnels and streaming bodies
    /// a session opened, and the gateway asks for it on every proxied
    /// request, so it must be cheap (no round trip, no allocation beyond a
    /// receiver).
    fn ended(&self, hash: &SecretHash) -> EndSignal;

    /// Live sessions counted by `group` (the admin console's sessions per
    /// app). Walks every session without ending any: for an operator's
    /// page, never for a request path.
    fn count_by<'a>(
        &'a self,
        now: OffsetDateTime,
        group: &'a (dyn Fn(&B) -> String + Send + Sync),
    ) -> StoreFuture<'a, Result<std::collections::BTreeMap<String, usize>, StoreError>>;

    /// Sessions held, including any past their limits not yet noticed.
    fn len(&self) -> StoreFuture<'_, Result<usize, StoreError>>;

    /// Whether [`len`](Self::len) is zero.
    fn is_empty(&self) -> StoreFuture<'_, Result<bool, StoreError>> {
        let len = self.len();
        Box::pin(async move { len.await.map(|n| n == 0) })
    }
}

/// Published exactly once for every session removed from a store, whatever
/// removed it; see [`SessionStore::subscribe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnded<B> {
    /// The session as it was when removed.
    pub session: Session<B>,
    pub reason: EndReason,
    /// The digest of the cookie it was known by: lets a subscriber
    /// recognise the browser that still holds that cookie (a session
    /// ended without it has SPs left to tell at its next visit).
    pub hash: SecretHash,
}

/// Resolves when a session ends; owned, `'static` and `Send`, so it can be
/// moved into the task that pumps a tunnel or a streaming body.
#[must_use = "an EndSignal does nothing unless awaited or polled"]
pub struct EndSignal(Signal);

enum Signal {
    /// Already ended (or never live).
    Ended,
    /// The session's watch channel; nothing is ever sent on it, so
    /// `changed()` returns only when the sender is dropped with the record.
    Watch(watch::Receiver<()>),
    /// A token that lives as long as the session, and a wake-up the
    /// backend shares among many sessions: ended once the token is gone.
    Token {
        alive: Weak<()>,
        wake: watch::Receiver<()>,
    },
    /// Being awaited: the receiver moved into its `changed()` loop. Boxed
    /// only once someone actually waits, so asking is allocation-free.
    Waiting(Pin<Box<dyn Future<Output = ()> + Send>>),
}

impl EndSignal {
    /// A signal that has already fired.
    pub fn ended() -> Self {
        Self(Signal::Ended)
    }

    /// Fires when every sender of `receiver`'s channel is dropped (what
    /// dropping a memory record does).
    pub fn from_watch(receiver: watch::Receiver<()>) -> Self {
        Self(Signal::Watch(receiver))
    }

    /// Fires once `alive` can no longer be upgraded, checked again each
    /// time `wake` changes and when its sender is dropped. For backends
    /// that keep one wake-up for many sessions instead of a channel each:
    /// the ender drops the session's token first, then sends on `wake`;
    /// `wake` must be subscribed before `alive` is taken, so no end in
    /// between goes unseen.
    pub fn from_token(alive: Weak<()>, wake: watch::Receiver<()>) -> Self {
        Self(Signal::Token { alive, wake })
    }

    /// Fires when `future` completes, for backends that learn of ends some
    /// other way (e.g. pub/sub).
    pub fn from_future(future: impl Future<Output = ()> + Send + 'static) -> Self {
        Self(Signal::Waiting(Box::pin(future)))
    }

    /// The signal as a boxed future, in one allocation (boxing the signal
    /// itself and then polling it would take two): what a caller that must
    /// hand out `Pin<Box<dyn Future>>` should use.
    pub fn boxed(self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        match self.0 {
            Signal::Ended => Box::pin(std::future::ready(())),
            Signal::Watch(mut receiver) => {
                Box::pin(async move { while receiver.changed().await.is_ok() {} })
            }
            Signal::Token { alive, wake } => Box::pin(token_gone(alive, wake)),
            Signal::Waiting(future) => future,
        }
    }

    /// Whether the session is known to have ended, without waiting.
    pub fn is_ended(&self) -> bool {
        match &self.0 {
            Signal::Ended => true,
            // `has_changed` fails exactly when the sender is gone.
            Signal::Watch(receiver) => receiver.has_changed().is_err(),
            Signal::Token { alive, .. } => alive.strong_count() == 0,
            Signal::Waiting(_) => false,
        }
    }
}

/// Returns once `alive` is gone (or the wake-up's sender is, which means
/// the store itself is).
async fn token_gone(alive: Weak<()>, mut wake: watch::Receiver<()>) {
    while alive.strong_count() > 0 {
        if wake.changed().await.is_err() {
            return;
        }
    }
}

impl Future for EndSignal {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match &mut self.0 {
                Signal::Ended => return Poll::Ready(()),
                Signal::Watch(_) => {
                    let Signal::Watch(mut receiver) = std::mem::replace(&mut self.0, Signal::Ended)
                    else {
                        continue;
                    };
                    if receiver.has_changed().is_err() {
                        return Poll::Ready(());
                    }
                    self.0 = Signal::Waiting(Box::pin(async move {
                        while receiver.changed().await.is_ok() {}
                    }));
                }
                Signal::Token { alive, .. } if alive.strong_count() == 0 => {
                    self.0 = Signal::Ended;
                    return Poll::Ready(());
                }
                Signal::Token { .. } => {
                    let Signal::Token { alive, wake } =
                        std::mem::replace(&mut self.0, Signal::Ended)
                    else {
                        continue;
                    };
                    self.0 = Signal::Waiting(Box::pin(token_gone(alive, wake)));
                }
                Signal::Waiting(future) => {
                    let ready = future.as_mut().poll(cx);
                    if ready.is_ready() {
                        self.0 = Signal::Ended;
                    }
                    return ready;
                }
            }
        }
    }
}

impl fmt::Debug for EndSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.0 {
            Signal::Ended => "ended",
            Signal::Watch(_) | Signal::Token { .. } | Signal::Waiting(_) => "live",
        };
        f.debug_tuple("EndSignal").field(&state).finish()
    }
}
