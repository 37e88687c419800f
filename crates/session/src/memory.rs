//! The in-process backend: sessions in sharded maps (`dashmap`), so workers
//! touching different sessions do not wait on one lock.
//!
//! Three maps, one authoritative:
//! - by slot (the first 8 bytes of the cookie hash) → the record (the full
//!   cookie hash, the session, and the token its end signals watch,
//!   created only once somebody asks for one);
//! - by a keyed hash of the public id → slot;
//! - by a keyed hash of each index key → the slots filed under it.
//!
//! Memory per session is what the design is about (tens of thousands of
//! gateway sessions per process), so the secondary maps hold fixed-size
//! numbers and no copy of any string the record already has, and records
//! sit behind a box so the tables' spare capacity costs 16 bytes a bucket
//! instead of a whole record. Numbers can collide where strings could not,
//! so every lookup through them re-checks the record itself: the full
//! cookie hash, the public id, or the index keys recomputed from the body.
//! A collision therefore costs a wasted look, never a wrong session.
//!
//! End signals share [`WAKE_BUCKETS`] watch channels instead of having one
//! each (a tokio watch channel is some 350 bytes, and the gateway asks for
//! a signal on every proxied request, so a channel per used session would
//! cost more than the session): ending a session drops its token, then
//! wakes the signals of its bucket, which check their own token.
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
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, OnceLock};

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

/// Wake-up channels shared by the end signals of all sessions: an end wakes
/// the open signals of 1/`WAKE_BUCKETS` of the sessions, each of which
/// then makes one atomic load. A fixed ~90 KB per store.
pub const WAKE_BUCKETS: usize = 256;

/// Where a record lives in `by_hash`: the first 8 bytes of its cookie hash.
/// The store generates every secret, so nobody can aim two at one slot;
/// a chance clash (2^-64 a pair) is refused at creation like a taken id.
type Slot = u64;

fn slot_of(hash: &SecretHash) -> Slot {
    let [a, b, c, d, e, f, g, h, ..] = *hash.as_bytes();
    u64::from_le_bytes([a, b, c, d, e, f, g, h])
}

/// What a lookup does to the live session it finds.
enum Use<'a, B> {
    /// Nothing: a read by public id.
    Read,
    /// Records activity at `now` (use by cookie).
    Touch,
    /// A caller's read-modify-write; the body may change its index keys.
    Change(SessionChange<'a, B>),
}

/// How a caller names the session it wants, and so what must match once
/// its slot is found.
#[derive(Clone, Copy)]
enum Which<'a> {
    Hash(&'a SecretHash),
    Id(&'a SessionId),
}

struct Record<B> {
    hash: SecretHash,
    session: Session<B>,
    /// What the session's [`EndSignal`]s hold weakly, created by the first
    /// one asked for: dropping it with the record (then waking the bucket)
    /// is what ends them.
    alive: OnceLock<Arc<()>>,
}

impl<B> Record<B> {
    fn is(&self, which: Which<'_>) -> bool {
        match which {
            Which::Hash(hash) => self.hash == *hash,
            Which::Id(id) => self.session.id == *id,
        }
    }
}

/// The sessions under one index key. Nearly every key (a user, an email,
/// an IdP session) has one session, which then costs no allocation.
enum Postings {
    One(Slot),
    // Boxed on purpose: it keeps every `Postings` at 16 bytes, where an
    // inline set would make each one-session key pay for 48.
    #[allow(clippy::box_collection)]
    Many(Box<HashSet<Slot>>),
}

impl Postings {
    fn insert(&mut self, slot: Slot) {
        match self {
            Self::One(one) if *one == slot => {}
            Self::One(one) => *self = Self::Many(Box::new(HashSet::from([*one, slot]))),
            Self::Many(set) => {
                set.insert(slot);
            }
        }
    }

    /// Removes `slot`; true when nothing is left.
    fn remove(&mut self, slot: Slot) -> bool {
        match self {
            Self::One(one) => *one == slot,
            Self::Many(set) => {
                set.remove(&slot);
                let empty = set.is_empty();
                let last = if set.len() == 1 {
                    set.iter().next().copied()
                } else {
                    None
                };
                if let Some(last) = last {
                    *self = Self::One(last);
                }
                empty
            }
        }
    }

    fn slots(&self) -> Vec<Slot> {
        match self {
            Self::One(one) => vec![*one],
            Self::Many(set) => set.iter().copied().collect(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::One(_) => 1,
            Self::Many(set) => set.len(),
        }
    }
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
    by_hash: DashMap<Slot, Box<Record<B>>>,
    by_id: DashMap<u64, Slot>,
    by_index: DashMap<u64, Postings>,
    /// Keys the hashes of ids and index keys. Random per store: index keys
    /// carry outside input (names, emails), and nobody outside should be
    /// able to pile sessions onto one number.
    keyed: RandomState,
    /// Never sent a value that matters: a send means "some session of this
    /// bucket ended, check your token".
    wake: Box<[watch::Sender<()>]>,
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
            keyed: RandomState::new(),
            wake: (0..WAKE_BUCKETS).map(|_| watch::channel(()).0).collect(),
            ended: broadcast::channel(ended_capacity.max(1)).0,
        }
    }

    pub fn footprint(&self) -> Footprint {
        Footprint {
            sessions: self.by_hash.len(),
            ids: self.by_id.len(),
            index_keys: self.by_index.len(),
            index_entries: self.by_index.iter().map(|postings| postings.len()).sum(),
        }
    }

    fn wake_of(&self, slot: Slot) -> &watch::Sender<()> {
        // Slots are uniform (they are digest bytes), so buckets fill evenly.
        &self.wake[(slot % self.wake.len() as u64) as usize]
    }

    fn id_key(&self, id: &SessionId) -> u64 {
        self.keyed.hash_one(id.as_str())
    }

    fn index_key(&self, key: &str) -> u64 {
        self.keyed.hash_one(key)
    }

    /// The numbers `body` is filed under, each once: recomputed from the
    /// body rather than kept in the record, so the record holds no copy of
    /// its keys' strings.
    fn filed_under(&self, body: &B) -> Vec<u64> {
        let mut keys: Vec<u64> = body
            .index_keys()
            .iter()
            .map(|key| self.index_key(key))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    fn create_now(
        &self,
        body: B,
        lifetime: Lifetime,
        now: OffsetDateTime,
    ) -> (SessionSecret, Session<B>) {
        // Collisions are astronomically unlikely with 64 random bits per
        // slot and per id hash, but checking is cheap and makes overwriting
        // a session impossible.
        loop {
            let secret = SessionSecret::generate();
            let hash = secret.hash();
            let slot = slot_of(&hash);
            let Entry::Vacant(vacant) = self.by_hash.entry(slot) else {
                continue;
            };
            let id = loop {
                let id = SessionId::generate();
                if let Entry::Vacant(free) = self.by_id.entry(self.id_key(&id)) {
                    free.insert(slot);
                    break id;
                }
            };
            let session = Session::new(id, body, lifetime, now);
            for key in self.filed_under(&session.body) {
                self.index(key, slot);
            }
            vacant.insert(Box::new(Record {
                hash,
                session: session.clone(),
                alive: OnceLock::new(),
            }));
            tracing::debug!(session = %hash.short(), "session created");
            return (secret, session);
        }
    }

    /// Uses a live session as `how` says and returns the result; a session
    /// past its limits is ended instead. Checking and changing under one
    /// shard lock means no caller can revive a session another just expired.
    fn live(
        &self,
        slot: Slot,
        which: Which<'_>,
        now: OffsetDateTime,
        how: Use<'_, B>,
    ) -> Result<Session<B>, SessionError> {
        let (record, reason) = match self.by_hash.entry(slot) {
            Entry::Vacant(_) => return Err(SessionError::NotFound),
            Entry::Occupied(occupied) if !occupied.get().is(which) => {
                return Err(SessionError::NotFound)
            }
            Entry::Occupied(mut occupied) => match occupied.get().session.end_reason_at(now) {
                Some(reason) => (occupied.remove(), reason),
                None => {
                    let record = occupied.get_mut();
                    match how {
                        Use::Read => {}
                        // The request path: no clone, no re-index.
                        Use::Touch => record.session.record_activity(now),
                        Use::Change(change) => {
                            let before = self.filed_under(&record.session.body);
                            let (id, created_at) =
                                (record.session.id.clone(), record.session.created_at);
                            change(&mut record.session);
                            // The id and creation time are the store's: a
                            // change may not move the session or rejuvenate it.
                            record.session.id = id;
                            record.session.created_at = created_at;
                            let after = self.filed_under(&record.session.body);
                            if after != before {
                                self.reindex(slot, &before, &after);
                            }
                        }
                    }
                    return Ok(record.session.clone());
                }
            },
        };
        self.finish(slot, *record, reason);
        Err(SessionError::Expired { reason })
    }

    fn slot_of_id(&self, id: &SessionId) -> Option<Slot> {
        // Copied out so the `by_id` guard is gone before `by_hash` is locked.
        self.by_id.get(&self.id_key(id)).map(|slot| *slot)
    }

    fn remove(&self, slot: Slot, which: Which<'_>, reason: EndReason) -> Option<Session<B>> {
        let (slot, record) = self
            .by_hash
            .remove_if(&slot, |_, record| record.is(which))?;
        Some(self.finish(slot, *record, reason))
    }

    /// Removes the session if it is past its limits at `now`.
    fn remove_expired(&self, slot: Slot, now: OffsetDateTime) -> Option<Session<B>> {
        let (slot, record) = self.by_hash.remove_if(&slot, |_, record| {
            record.session.end_reason_at(now).is_some()
        })?;
        let reason = record.session.end_reason_at(now)?;
        Some(self.finish(slot, *record, reason))
    }

    /// Everything after a record left `by_hash`; only its remover gets here,
    /// hence the only publisher. The record's token goes before the wake-up,
    /// so every signal woken finds it gone.
    fn finish(&self, slot: Slot, record: Record<B>, reason: EndReason) -> Session<B> {
        self.by_id
            .remove_if(&self.id_key(&record.session.id), |_, s| *s == slot);
        for key in self.filed_under(&record.session.body) {
            self.unindex(key, slot);
        }
        tracing::debug!(session = %record.hash.short(), reason = reason.as_str(), "session ended");
        // An error only means nobody is subscribed, which is fine.
        let _ = self.ended.send(SessionEnded {
            session: record.session.clone(),
            reason,
            hash: record.hash,
        });
        let Record { session, alive, .. } = record;
        if alive.into_inner().is_some() {
            self.wake_of(slot).send_replace(());
        }
        session
    }

    fn index(&self, key: u64, slot: Slot) {
        self.by_index
            .entry(key)
            .and_modify(|postings| postings.insert(slot))
            .or_insert(Postings::One(slot));
    }

    fn unindex(&self, key: u64, slot: Slot) {
        // One entry guard for both steps: atomic with any concurrent
        // insert under the same key.
        if let Entry::Occupied(mut postings) = self.by_index.entry(key) {
            if postings.get_mut().remove(slot) {
                postings.remove();
            }
        }
    }

    fn reindex(&self, slot: Slot, old: &[u64], new: &[u64]) {
        for &key in old.iter().filter(|k| !new.contains(k)) {
            self.unindex(key, slot);
        }
        for &key in new.iter().filter(|k| !old.contains(k)) {
            self.index(key, slot);
        }
    }

    fn indexed(&self, key: &str) -> Vec<Slot> {
        self.by_index
            .get(&self.index_key(key))
            .map(|postings| postings.slots())
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
            .filter_map(|slot| {
                let (slot, record) = self.by_hash.remove_if(&slot, |_, record| {
                    files_under(&record.session, key) && matches(&record.session)
                })?;
                Some(self.finish(slot, *record, reason))
            })
            .collect();
        oldest_first(&mut ended);
        ended
    }

    fn list_indexed_now(&self, key: &str, now: OffsetDateTime) -> Vec<Session<B>> {
        let mut live = Vec::new();
        for slot in self.indexed(key) {
            let found = self.by_hash.get(&slot).map(|record| {
                let expired = record.session.end_reason_at(now).is_some();
                let filed = files_under(&record.session, key);
                (expired, filed.then(|| record.session.clone()))
            });
            match found {
                Some((true, _)) => {
                    self.remove_expired(slot, now);
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
        let expired: Vec<Slot> = self
            .by_hash
            .iter()
            .filter(|record| record.session.end_reason_at(now).is_some())
            .map(|record| *record.key())
            .collect();
        expired
            .iter()
            .filter_map(|&slot| self.remove_expired(slot, now))
            .collect()
    }
}

/// Whether `session` is filed under `key` itself, not merely under a key
/// whose number clashes with it.
fn files_under<B: SessionBody>(session: &Session<B>, key: &str) -> bool {
    session.body.index_keys().iter().any(|k| k == key)
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
        Box::pin(async move { self.live(slot_of(hash), Which::Hash(hash), now, Use::Touch) })
    }

    fn get<'a>(
        &'a self,
        id: &'a SessionId,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<Session<B>, SessionError>> {
        Box::pin(async move {
            let slot = self.slot_of_id(id).ok_or(SessionError::NotFound)?;
            self.live(slot, Which::Id(id), now, Use::Read)
        })
    }

    fn update<'a>(
        &'a self,
        hash: &'a SecretHash,
        now: OffsetDateTime,
        change: SessionChange<'a, B>,
    ) -> StoreFuture<'a, Result<Session<B>, SessionError>> {
        Box::pin(
            async move { self.live(slot_of(hash), Which::Hash(hash), now, Use::Change(change)) },
        )
    }

    fn update_by_id<'a>(
        &'a self,
        id: &'a SessionId,
        now: OffsetDateTime,
        change: SessionChange<'a, B>,
    ) -> StoreFuture<'a, Result<Session<B>, SessionError>> {
        Box::pin(async move {
            let slot = self.slot_of_id(id).ok_or(SessionError::NotFound)?;
            self.live(slot, Which::Id(id), now, Use::Change(change))
        })
    }

    fn end<'a>(
        &'a self,
        hash: &'a SecretHash,
        reason: EndReason,
    ) -> StoreFuture<'a, Result<Option<Session<B>>, StoreError>> {
        Box::pin(async move { Ok(self.remove(slot_of(hash), Which::Hash(hash), reason)) })
    }

    fn end_by_id<'a>(
        &'a self,
        id: &'a SessionId,
        reason: EndReason,
    ) -> StoreFuture<'a, Result<Option<Session<B>>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .slot_of_id(id)
                .and_then(|slot| self.remove(slot, Which::Id(id), reason)))
        })
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
        let slot = slot_of(hash);
        // Subscribed before the lookup: an end after it bumps the version
        // this receiver has not seen yet.
        let wake = self.wake_of(slot).subscribe();
        match self.by_hash.get(&slot) {
            // Made under the shard lock that removal also takes, so a token
            // made here goes with the record like any other.
            Some(record) if record.hash == *hash => EndSignal::from_token(
                Arc::downgrade(record.alive.get_or_init(|| Arc::new(()))),
                wake,
            ),
            _ => EndSignal::ended(),
        }
    }

    fn len(&self) -> StoreFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move { Ok(self.by_hash.len()) })
    }

    fn count_by<'a>(
        &'a self,
        now: OffsetDateTime,
        group: &'a (dyn Fn(&B) -> String + Send + Sync),
    ) -> StoreFuture<'a, Result<std::collections::BTreeMap<String, usize>, StoreError>> {
        Box::pin(async move {
            let mut counts = std::collections::BTreeMap::new();
            for record in self.by_hash.iter() {
                if record.session.end_reason_at(now).is_none() {
                    *counts.entry(group(&record.session.body)).or_default() += 1;
                }
            }
            Ok(counts)
        })
    }
}

/// Shows counts and digest prefixes only: never a secret, never a body.
impl<B: SessionBody> fmt::Debug for MemoryStore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sessions: Vec<String> = self
            .by_hash
            .iter()
            .map(|record| record.hash.short())
            .collect();
        f.debug_struct("MemoryStore")
            .field("sessions", &sessions)
            .field("footprint", &self.footprint())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;
    use crate::conformance::{lifetime, TestBody, T0};

    fn poll_once(signal: &mut EndSignal) -> Poll<()> {
        pin!(signal).poll(&mut Context::from_waker(Waker::noop()))
    }

    #[tokio::test]
    async fn an_end_signal_asked_for_late_still_fires() {
        let store = MemoryStore::<TestBody>::new();
        let (secret, _) = store
            .create(TestBody::new("u1"), lifetime(), T0)
            .await
            .expect("created");
        let hash = secret.hash();
        store.touch(&hash, T0).await.expect("live");
        let mut first = store.ended(&hash);
        assert!(poll_once(&mut first).is_pending());
        let second = store.ended(&hash);
        assert!(!second.is_ended());
        store
            .end(&hash, EndReason::SignOut)
            .await
            .expect("ended")
            .expect("was live");
        assert!(poll_once(&mut first).is_ready(), "waiting signal woken");
        assert!(second.is_ended(), "idle signal sees the end");
        assert!(store.ended(&hash).is_ended(), "asked after the end");
    }

    #[tokio::test]
    async fn a_session_nobody_waits_on_has_no_token() {
        let store = MemoryStore::<TestBody>::new();
        let (secret, _) = store
            .create(TestBody::new("u1"), lifetime(), T0)
            .await
            .expect("created");
        let slot = slot_of(&secret.hash());
        let has_channel = || {
            store
                .by_hash
                .get(&slot)
                .map(|record| record.alive.get().is_some())
        };
        assert_eq!(has_channel(), Some(false));
        let signal = store.ended(&secret.hash());
        assert_eq!(has_channel(), Some(true));
        drop(signal);
    }

    #[tokio::test]
    async fn a_hash_sharing_the_slot_is_not_the_session() {
        let store = MemoryStore::<TestBody>::new();
        let (secret, session) = store
            .create(TestBody::new("u1"), lifetime(), T0)
            .await
            .expect("created");
        let mut bytes = *secret.hash().as_bytes();
        bytes[31] ^= 1;
        let near = SecretHash::from_bytes(bytes);
        assert_eq!(slot_of(&near), slot_of(&secret.hash()));
        assert!(matches!(
            store.touch(&near, T0).await,
            Err(SessionError::NotFound)
        ));
        assert!(store
            .end(&near, EndReason::SignOut)
            .await
            .expect("store")
            .is_none());
        assert!(store.ended(&near).is_ended());
        let other = SessionId::from("102notthisone");
        assert!(store
            .end_by_id(&other, EndReason::Revoked)
            .await
            .expect("store")
            .is_none());
        assert_eq!(
            store.get(&session.id, T0).await.expect("still live").id,
            session.id
        );
    }

    #[tokio::test]
    async fn ending_a_session_leaves_its_bucket_neighbours_open() {
        let store = MemoryStore::<TestBody>::new();
        let mut by_bucket = std::collections::HashMap::new();
        let (first, second) = loop {
            let (secret, _) = store
                .create(TestBody::new("u1"), lifetime(), T0)
                .await
                .expect("created");
            let bucket = slot_of(&secret.hash()) % WAKE_BUCKETS as u64;
            if let Some(earlier) = by_bucket.insert(bucket, secret.hash()) {
                break (earlier, secret.hash());
            }
        };
        let mut ended = store.ended(&first);
        let mut neighbour = store.ended(&second);
        assert!(poll_once(&mut ended).is_pending());
        assert!(poll_once(&mut neighbour).is_pending());
        store.end(&first, EndReason::SignOut).await.expect("ended");
        assert!(poll_once(&mut ended).is_ready());
        assert!(poll_once(&mut neighbour).is_pending(), "woken, still live");
        assert!(!neighbour.is_ended());
    }

    #[tokio::test]
    async fn dropping_the_store_ends_its_signals() {
        let store = MemoryStore::<TestBody>::new();
        let (secret, _) = store
            .create(TestBody::new("u1"), lifetime(), T0)
            .await
            .expect("created");
        let mut signal = store.ended(&secret.hash());
        assert!(poll_once(&mut signal).is_pending());
        drop(store);
        assert!(poll_once(&mut signal).is_ready());
    }

    #[test]
    fn postings_hold_one_inline_and_many_in_a_set() {
        let mut postings = Postings::One(1);
        postings.insert(1);
        assert_eq!(postings.len(), 1);
        postings.insert(2);
        postings.insert(3);
        assert_eq!(postings.len(), 3);
        assert!(!postings.remove(1));
        assert!(!postings.remove(3));
        assert!(matches!(postings, Postings::One(2)));
        assert!(postings.remove(2), "empty once the last is gone");
    }
}
