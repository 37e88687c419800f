//! The live IdP sessions, keyed by the SHA-256 of their cookie secret, with
//! a secondary index by public id for the Sessions API.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use time::OffsetDateTime;
use tokio::sync::broadcast;

use super::end::{EndReason, SessionEnded};
use super::error::SessionError;
use super::id::{SecretHash, SessionId, SessionSecret};
use super::record::{NewSession, SessionRecord};

/// Session-ended notifications buffered per subscriber. A subscriber that
/// falls further behind gets `RecvError::Lagged` and loses the oldest ones.
pub const DEFAULT_ENDED_CAPACITY: usize = 1_024;

/// `idp.id` reported in session records unless configured otherwise;
/// shaped like an Okta IdP id ("00o" + 17 characters).
pub const DEFAULT_IDP_ID: &str = "00oPortcullisIdP0001";

/// All live sessions of the IdP.
///
/// One mutex guards both indexes so that removal is a single atomic step:
/// whichever caller takes a session out is the only one that publishes its
/// [`SessionEnded`], however many race to end it.
#[derive(Debug)]
pub struct SessionStore {
    idp_id: String,
    inner: Mutex<Index>,
    ended: broadcast::Sender<SessionEnded>,
}

#[derive(Debug, Default)]
struct Index {
    by_hash: HashMap<SecretHash, SessionRecord>,
    by_id: HashMap<SessionId, SecretHash>,
}

impl Default for SessionStore {
    fn default() -> Self {
        Self::new()
    }
}

impl SessionStore {
    /// An empty store reporting [`DEFAULT_IDP_ID`], with a backlog of
    /// [`DEFAULT_ENDED_CAPACITY`] notifications per subscriber.
    pub fn new() -> Self {
        Self::with_options(DEFAULT_IDP_ID, DEFAULT_ENDED_CAPACITY)
    }

    /// `idp_id` is reported as `idp.id` in every record; `ended_capacity`
    /// (at least 1) is each subscriber's backlog before it lags.
    pub fn with_options(idp_id: impl Into<String>, ended_capacity: usize) -> Self {
        let (ended, _) = broadcast::channel(ended_capacity.max(1));
        Self {
            idp_id: idp_id.into(),
            inner: Mutex::new(Index::default()),
            ended,
        }
    }

    /// Receives a [`SessionEnded`] for every session removed from now on,
    /// by any path (sign-out, revoke, expiry found on use, sweep).
    pub fn subscribe(&self) -> broadcast::Receiver<SessionEnded> {
        self.ended.subscribe()
    }

    /// Starts a session. The secret goes in the cookie and is not kept.
    pub fn create(&self, new: NewSession) -> (SessionSecret, SessionRecord) {
        let mut index = self.lock();
        // Collisions are astronomically unlikely with 256/131 random bits,
        // but checking is cheap and makes overwriting a session impossible.
        let (secret, hash) = loop {
            let secret = SessionSecret::generate();
            let hash = secret.hash();
            if !index.by_hash.contains_key(&hash) {
                break (secret, hash);
            }
        };
        let id = loop {
            let id = SessionId::generate();
            if !index.by_id.contains_key(&id) {
                break id;
            }
        };
        let record = SessionRecord::new(id.clone(), &self.idp_id, new);
        index.by_id.insert(id, hash);
        index.by_hash.insert(hash, record.clone());
        tracing::debug!(session = %hash.short(), "IdP session created");
        (secret, record)
    }

    /// Uses the session behind a cookie: checks the idle and lifetime
    /// limits, then records activity at `now`.
    pub fn touch(
        &self,
        secret: &SessionSecret,
        now: OffsetDateTime,
    ) -> Result<SessionRecord, SessionError> {
        self.update_live(secret.hash(), now, |record| record.record_activity(now))
    }

    /// The live session with this public id, without counting as activity.
    /// A session found past its limits is ended (and published) and
    /// reported as gone, like one that never existed.
    pub fn get_by_id(&self, id: &SessionId, now: OffsetDateTime) -> Option<SessionRecord> {
        let hash = self.hash_of(id).ok()?;
        self.update_live(hash, now, |_| {}).ok()
    }

    /// Okta's `POST /api/v1/sessions/{id}/lifecycle/refresh`: restarts the
    /// idle window. The absolute lifetime still caps `expiresAt`.
    pub fn refresh(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
    ) -> Result<SessionRecord, SessionError> {
        let hash = self.hash_of(id)?;
        self.update_live(hash, now, |record| record.record_activity(now))
    }

    /// The user passed a second factor in this session: it becomes ACTIVE
    /// and `amr` gains "otp" and "mfa".
    pub fn mark_mfa_verified(
        &self,
        secret: &SessionSecret,
        now: OffsetDateTime,
    ) -> Result<SessionRecord, SessionError> {
        self.update_live(secret.hash(), now, |record| record.record_mfa(now))
    }

    /// The user re-entered their password in this session (app policy
    /// re-authentication).
    pub fn mark_password_verified(
        &self,
        secret: &SessionSecret,
        now: OffsetDateTime,
    ) -> Result<SessionRecord, SessionError> {
        self.update_live(secret.hash(), now, |record| record.record_password(now))
    }

    /// Ends the session behind a cookie (sign-out, or replacement by a new
    /// sign-in). `None` if it was already gone.
    pub fn end(&self, secret: &SessionSecret, reason: EndReason) -> Option<SessionRecord> {
        let mut index = self.lock();
        self.remove_locked(&mut index, secret.hash(), reason)
    }

    /// Ends one session by public id. `None` if it was already gone.
    pub fn revoke(&self, id: &SessionId, reason: EndReason) -> Option<SessionRecord> {
        let mut index = self.lock();
        let hash = *index.by_id.get(id)?;
        self.remove_locked(&mut index, hash, reason)
    }

    /// Ends every session of a user.
    pub fn revoke_user(&self, user_id: &str, reason: EndReason) -> Vec<SessionRecord> {
        let mut index = self.lock();
        // A linear scan: an embedded IdP holds few enough sessions that a
        // per-user index isn't worth keeping consistent.
        let doomed: Vec<SecretHash> = index
            .by_hash
            .iter()
            .filter(|(_, record)| record.user_id == user_id)
            .map(|(hash, _)| *hash)
            .collect();
        doomed
            .into_iter()
            .filter_map(|hash| self.remove_locked(&mut index, hash, reason))
            .collect()
    }

    /// The user's live sessions, oldest first. Sessions found past their
    /// limits are ended (and published) instead of listed, as `get_by_id`
    /// would.
    pub fn sessions_of(&self, user_id: &str, now: OffsetDateTime) -> Vec<SessionRecord> {
        let mut index = self.lock();
        let mut live = Vec::new();
        let mut dead = Vec::new();
        for (hash, record) in index.by_hash.iter().filter(|(_, r)| r.user_id == user_id) {
            match record.end_reason_at(now) {
                Some(reason) => dead.push((*hash, reason)),
                None => live.push(record.clone()),
            }
        }
        for (hash, reason) in dead {
            self.remove_locked(&mut index, hash, reason);
        }
        live.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        live
    }

    /// Removes every session past its limits at `now` and returns them.
    pub fn sweep(&self, now: OffsetDateTime) -> Vec<SessionRecord> {
        let mut index = self.lock();
        let dead: Vec<(SecretHash, EndReason)> = index
            .by_hash
            .iter()
            .filter_map(|(hash, record)| record.end_reason_at(now).map(|r| (*hash, r)))
            .collect();
        dead.into_iter()
            .filter_map(|(hash, reason)| self.remove_locked(&mut index, hash, reason))
            .collect()
    }

    /// Number of sessions held, including any past their limits that no
    /// call has noticed yet.
    pub fn len(&self) -> usize {
        self.lock().by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        // Every mutation below completes before anything that could panic,
        // so a poisoned lock still guards consistent indexes.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn hash_of(&self, id: &SessionId) -> Result<SecretHash, SessionError> {
        self.lock()
            .by_id
            .get(id)
            .copied()
            .ok_or(SessionError::NotFound)
    }

    /// Applies `change` to a live session and returns the result; a session
    /// past its limits is ended instead. Checking and changing under one
    /// lock means no caller can revive a session another just expired.
    fn update_live(
        &self,
        hash: SecretHash,
        now: OffsetDateTime,
        change: impl FnOnce(&mut SessionRecord),
    ) -> Result<SessionRecord, SessionError> {
        let mut index = self.lock();
        let record = index.by_hash.get_mut(&hash).ok_or(SessionError::NotFound)?;
        if let Some(reason) = record.end_reason_at(now) {
            self.remove_locked(&mut index, hash, reason);
            return Err(SessionError::Expired { reason });
        }
        change(record);
        Ok(record.clone())
    }

    /// The only place sessions leave the store, hence the only publisher.
    /// Publishing while still holding the lock keeps notifications in the
    /// order the removals happened.
    fn remove_locked(
        &self,
        index: &mut Index,
        hash: SecretHash,
        reason: EndReason,
    ) -> Option<SessionRecord> {
        let record = index.by_hash.remove(&hash)?;
        index.by_id.remove(&record.id);
        tracing::debug!(session = %hash.short(), reason = reason.as_str(), "IdP session ended");
        // An error only means nobody is subscribed, which is fine.
        let _ = self.ended.send(SessionEnded {
            record: record.clone(),
            reason,
        });
        Some(record)
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
