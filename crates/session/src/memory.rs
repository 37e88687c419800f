//! The in-process backend: sessions in sharded maps (`dashmap`), so workers
//! touching different sessions do not wait on one lock.
//!
//! Three maps, one authoritative:
//! - by cookie hash → the record (the session, its index keys, and the
//!   sending half of its end signal);
//! - by public id → cookie hash;
//! - by index key → cookie hashes.
//!
//! A record enters `by_hash` last (its id and index entries exist first) and
//! leaves it first: whichever caller takes it out of `by_hash` is the only
//! one that cleans up after it and publishes its [`SessionEnded`], however
//! many race to end it. The secondary maps may briefly point at a record
//! that is gone; every lookup through them re-checks `by_hash`.
//!
//! Lock order: a `by_hash` shard lock may be held while the secondary maps
//! are updated, never the other way round, and never two locks of one map.

use std::collections::HashSet;
use std::fmt;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use time::OffsetDateTime;
use tokio::sync::{broadcast, watch};

use crate::end::EndReason;
use crate::error::{SessionError, StoreError};
use crate::id::{SecretHash, SessionId, SessionSecret};
use crate::record::{Lifetime, Session};
use crate::store::SessionEnded;
use crate::store::{
    EndSignal, SessionBody, SessionChange, SessionFilter, SessionStore, StoreFuture,
};

/// Session-ended notifications buffered per subscriber. A subscriber that
/// falls further behind gets `RecvError::Lagged` and loses the oldest ones.
pub const DEFAULT_ENDED_CAPACITY: usize = 1_024;

/// What a lookup does to the live session it finds.
enum Use<'a, B> {
    /// Nothing: a read by public id.
    Read,
    /// Records activity at `now` (use by cookie).
    Touch,
    /// A caller's read-modify-write; the body may change its index keys.
    Change(SessionChange<'a, B>),
}

struct Record<B> {
    session: Session<B>,
    /// The index keys the record is filed under right now.
    keys: Vec<String>,
    /// Never sent on: dropping it with the record is what wakes every
    /// [`EndSignal`] of the session.
    end: watch::Sender<()>,
}

/// Entry counts of a [`MemoryStore`]'s maps, for metrics and for checking
/// that memory follows the live sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    pub sessions: usize,
    pub ids: usize,
    pub index_keys: usize,
    /// (key, session) pairs across all index keys.
    pub index_entries: usize,
}

/// Sessions in this process's memory.
///
/// Expired sessions are removed when a call finds them, and by
/// [`sweep`](SessionStore::sweep), which the owner runs periodically:
/// after a sweep the store holds only live sessions and their index entries.
pub struct MemoryStore<B: SessionBody> {
    by_hash: DashMap<SecretHash, Record<B>>,
    by_id: DashMap<SessionId, SecretHash>,
    by_index: DashMap<String, HashSet<SecretHash>>,
    ended: broadcast::Sender<SessionEnded<B>>,
}

impl<B: SessionBody> Default for MemoryStore<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: SessionBody> MemoryStore<B> {
    /// An empty store with a backlog of [`DEFAULT_ENDED_CAPACITY`]
    /// notifications per subscriber.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_ENDED_CAPACITY)
    }

    /// `ended_capacity` (at least 1) is each subscriber's backlog before it
    /// lags.
    pub fn with_capacity(ended_capacity: usize) -> Self {
        Self {
            by_hash: DashMap::new(),
            by_id: DashMap::new(),
            by_index: DashMap::new(),
            ended: broadcast::channel(ended_capacity.max(1)).0,
        }
    }

    pub fn footprint(&self) -> Footprint {
        Footprint {
            sessions: self.by_hash.len(),
            ids: self.by_id.len(),
            index_keys: self.by_index.len(),
            index_entries: self.by_index.iter().map(|set| set.len()).sum(),
        }
    }

    fn create_now(
        &self,
        body: B,
        lifetime: Lifetime,
        now: OffsetDateTime,
    ) -> (SessionSecret, Session<B>) {
        // Collisions are astronomically unlikely with 256/131 random bits,
        // but checking is cheap and makes overwriting a session impossible.
        loop {
            let secret = SessionSecret::generate();
            let hash = secret.hash();
            let Entry::Vacant(vacant) = self.by_hash.entry(hash) else {
                continue;
            };
            let id = loop {
                let id = SessionId::generate();
                if let Entry::Vacant(slot) = self.by_id.entry(id.clone()) {
                    slot.insert(hash);
                    break id;
                }
            };
            let session = Session::new(id, body, lifetime, now);
            let keys = session.body.index_keys();
            for key in &keys {
                self.index(key, hash);
            }
            vacant.insert(Record {
                session: session.clone(),
                keys,
                end: watch::channel(()).0,
            });
            tracing::debug!(session = %hash.short(), "session created");
            return (secret, session);
        }
    }

    /// Uses a live session as `how` says and returns the result; a session
    /// past its limits is ended instead. Checking and changing under one
    /// shard lock means no caller can revive a session another just expired.
    fn live(
        &self,
        hash: &SecretHash,
        now: OffsetDateTime,
        how: Use<'_, B>,
    ) -> Result<Session<B>, SessionError> {
        let (record, reason) = match self.by_hash.entry(*hash) {
            Entry::Vacant(_) => return Err(SessionError::NotFound),
            Entry::Occupied(mut occupied) => match occupied.get().session.end_reason_at(now) {
                Some(reason) => (occupied.remove(), reason),
                None => {
                    let record = occupied.get_mut();
                    match how {
                        Use::Read => {}
                        // The request path: no clone, no re-index.
                        Use::Touch => record.session.record_activity(now),
                        Use::Change(change) => {
                            let (id, created_at) =
                                (record.session.id.clone(), record.session.created_at);
                            change(&mut record.session);
                            // The id and creation time are the store's: a
                            // change may not move the session or rejuvenate it.
                            record.session.id = id;
                            record.session.created_at = created_at;
                            let keys = record.session.body.index_keys();
                            if keys != record.keys {
                                self.reindex(*hash, &record.keys, &keys);
                                record.keys = keys;
                            }
                        }
                    }
                    return Ok(record.session.clone());
                }
            },
        };
        self.finish(*hash, record, reason);
        Err(SessionError::Expired { reason })
    }

    fn hash_of(&self, id: &SessionId) -> Option<SecretHash> {
        // Copied out so the `by_id` guard is gone before `by_hash` is locked.
        self.by_id.get(id).map(|hash| *hash)
    }

    fn remove(&self, hash: &SecretHash, reason: EndReason) -> Option<Session<B>> {
        let (hash, record) = self.by_hash.remove(hash)?;
        Some(self.finish(hash, record, reason))
    }

    /// Removes the session if it is past its limits at `now`.
    fn remove_expired(&self, hash: &SecretHash, now: OffsetDateTime) -> Option<Session<B>> {
        let (hash, record) = self.by_hash.remove_if(hash, |_, record| {
            record.session.end_reason_at(now).is_some()
        })?;
        let reason = record.session.end_reason_at(now)?;
        Some(self.finish(hash, record, reason))
    }

    /// Everything after a record left `by_hash`; only its remover gets here,
    /// hence the only publisher. Dropping the record at the end drops its
    /// watch sender, which wakes the session's end signals.
    fn finish(&self, hash: SecretHash, record: Record<B>, reason: EndReason) -> Session<B> {
        self.by_id.remove_if(&record.session.id, |_, h| *h == hash);
        for key in &record.keys {
            self.unindex(key, &hash);
        }
        tracing::debug!(session = %hash.short(), reason = reason.as_str(), "session ended");
        // An error only means nobody is subscribed, which is fine.
        let _ = self.ended.send(SessionEnded {
            session: record.session.clone(),
            reason,
        });
        record.session
    }

    fn index(&self, key: &str, hash: SecretHash) {
        match self.by_index.get_mut(key) {
            Some(mut set) => {
                set.insert(hash);
            }
            None => {
                self.by_index
                    .entry(key.to_owned())
                    .or_default()
                    .insert(hash);
            }
        }
    }

    fn unindex(&self, key: &str, hash: &SecretHash) {
        if let Some(mut set) = self.by_index.get_mut(key) {
            set.remove(hash);
        }
        // A separate step (the guard above is gone): one map's lock is never
        // taken twice. Atomic with any concurrent insert into the set.
        self.by_index.remove_if(key, |_, set| set.is_empty());
    }

    fn reindex(&self, hash: SecretHash, old: &[String], new: &[String]) {
        for key in old.iter().filter(|k| !new.contains(k)) {
            self.unindex(key, &hash);
        }
        for key in new.iter().filter(|k| !old.contains(k)) {
            self.index(key, hash);
        }
    }

    fn indexed(&self, key: &str) -> Vec<SecretHash> {
        self.by_index
            .get(key)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default()
    }

    fn end_indexed_now(
        &self,
        key: &str,
        reason: EndReason,
        matches: &(dyn Fn(&Session<B>) -> bool + Send + Sync),
    ) -> Vec<Session<B>> {
        let mut ended: Vec<Session<B>> = self
            .indexed(key)
            .into_iter()
            .filter_map(|hash| {
                let (hash, record) = self.by_hash.remove_if(&hash, |_, record| {
                    record.keys.iter().any(|k| k == key) && matches(&record.session)
                })?;
                Some(self.finish(hash, record, reason))
            })
            .collect();
        oldest_first(&mut ended);
        ended
    }

    fn list_indexed_now(&self, key: &str, now: OffsetDateTime) -> Vec<Session<B>> {
        let mut live = Vec::new();
        for hash in self.indexed(key) {
            let found = self.by_hash.get(&hash).map(|record| {
                let expired = record.session.end_reason_at(now).is_some();
                let filed = record.keys.iter().any(|k| k == key);
                (expired, filed.then(|| record.session.clone()))
            });
            match found {
                Some((true, _)) => {
                    self.remove_expired(&hash, now);
                }
                Some((false, Some(session))) => live.push(session),
                Some((false, None)) | None => {}
            }
        }
        oldest_first(&mut live);
        live
    }

    fn sweep_now(&self, now: OffsetDateTime) -> Vec<Session<B>> {
        // Collected first: iterating holds shard locks that removal needs.
        let expired: Vec<SecretHash> = self
            .by_hash
            .iter()
            .filter(|record| record.session.end_reason_at(now).is_some())
            .map(|record| *record.key())
            .collect();
        expired
            .iter()
            .filter_map(|hash| self.remove_expired(hash, now))
            .collect()
    }
}

fn oldest_first<B>(sessions: &mut [Session<B>]) {
    sessions.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
}

impl<B: SessionBody> SessionStore<B> for MemoryStore<B> {
    fn create(
        &self,
        body: B,
        lifetime: Lifetime,
        now: OffsetDateTime,
    ) -> StoreFuture<'_, Result<(SessionSecret, Session<B>), StoreError>> {
        Box::pin(async move { Ok(self.create_now(body, lifetime, now)) })
    }

    fn touch<'a>(
        &'a self,
        hash: &'a SecretHash,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<Session<B>, SessionError>> {
        Box::pin(async move { self.live(hash, now, Use::Touch) })
    }

    fn get<'a>(
        &'a self,
        id: &'a SessionId,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<Session<B>, SessionError>> {
        Box::pin(async move {
            let hash = self.hash_of(id).ok_or(SessionError::NotFound)?;
            self.live(&hash, now, Use::Read)
        })
    }

    fn update<'a>(
        &'a self,
        hash: &'a SecretHash,
        now: OffsetDateTime,
        change: SessionChange<'a, B>,
    ) -> StoreFuture<'a, Result<Session<B>, SessionError>> {
        Box::pin(async move { self.live(hash, now, Use::Change(change)) })
    }

    fn update_by_id<'a>(
        &'a self,
        id: &'a SessionId,
        now: OffsetDateTime,
        change: SessionChange<'a, B>,
    ) -> StoreFuture<'a, Result<Session<B>, SessionError>> {
        Box::pin(async move {
            let hash = self.hash_of(id).ok_or(SessionError::NotFound)?;
            self.live(&hash, now, Use::Change(change))
        })
    }

    fn end<'a>(
        &'a self,
        hash: &'a SecretHash,
        reason: EndReason,
    ) -> StoreFuture<'a, Result<Option<Session<B>>, StoreError>> {
        Box::pin(async move { Ok(self.remove(hash, reason)) })
    }

    fn end_by_id<'a>(
        &'a self,
        id: &'a SessionId,
        reason: EndReason,
    ) -> StoreFuture<'a, Result<Option<Session<B>>, StoreError>> {
        Box::pin(async move { Ok(self.hash_of(id).and_then(|hash| self.remove(&hash, reason))) })
    }

    fn end_indexed<'a>(
        &'a self,
        key: &'a str,
        reason: EndReason,
        matches: SessionFilter<'a, B>,
    ) -> StoreFuture<'a, Result<Vec<Session<B>>, StoreError>> {
        Box::pin(async move { Ok(self.end_indexed_now(key, reason, &*matches)) })
    }

    fn list_indexed<'a>(
        &'a self,
        key: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<Vec<Session<B>>, StoreError>> {
        Box::pin(async move { Ok(self.list_indexed_now(key, now)) })
    }

    fn sweep(&self, now: OffsetDateTime) -> StoreFuture<'_, Result<Vec<Session<B>>, StoreError>> {
        Box::pin(async move { Ok(self.sweep_now(now)) })
    }

    fn subscribe(&self) -> broadcast::Receiver<SessionEnded<B>> {
        self.ended.subscribe()
    }

    fn ended(&self, hash: &SecretHash) -> EndSignal {
        match self.by_hash.get(hash) {
            Some(record) => EndSignal::from_watch(record.end.subscribe()),
            None => EndSignal::ended(),
        }
    }

    fn len(&self) -> StoreFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move { Ok(self.by_hash.len()) })
    }
}

/// Shows counts and digest prefixes only: never a secret, never a body.
impl<B: SessionBody> fmt::Debug for MemoryStore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sessions: Vec<String> = self
            .by_hash
            .iter()
            .map(|record| record.key().short())
            .collect();
        f.debug_struct("MemoryStore")
            .field("sessions", &sessions)
            .field("footprint", &self.footprint())
            .finish()
    }
}
