//! [`SessionStore`] on Redis: any node serves any session, a restart loses
//! nothing, and an end on one node reaches every node's end signals.
//!
//! Layout under `{prefix}<namespace>:` (one namespace per store, e.g. the
//! gateway's and the IdP's sessions):
//! - `s:<hex of the cookie hash>` — a hash: public id, creation and last
//!   activity (µs), limits, index keys, and the record sealed at rest;
//! - `id:<public id>` → the hex, for the Sessions API;
//! - `ix:<index name>` — a sorted set of hexes by creation time, the name
//!   a keyed digest of the index key (no user names or emails in clear);
//! - `deadlines` — a sorted set of every hex by its deadline (sweep, len);
//! - `lk:<hex>` — the short lock an update holds;
//! - channel `ended` — `e <instance> <hex>` for every session removed and
//!   `u <instance> <hex>` for every session changed by an update.
//!
//! Only the node whose TAKE removes a session publishes its
//! [`SessionEnded`] to its own subscribers, so side effects (System Log
//! events, logout fan-out) happen once in the cluster; every node learns
//! of the end through the channel, fires its end signals (closing
//! tunnels and streams) and, after every reconnect, re-checks the sessions
//! it holds signals for, since pub/sub drops what is sent while a
//! subscriber is away.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;
use rand::RngCore;
use redis::Value;
use time::OffsetDateTime;
use tokio::sync::{broadcast, mpsc, watch};

use crate::encoding::hex;
use crate::end::EndReason;
use crate::error::{SessionError, StoreError};
use crate::id::{SecretHash, SessionId, SessionSecret};
use crate::memory::DEFAULT_ENDED_CAPACITY;
use crate::record::{Lifetime, Session};
use crate::redis::connection::{unavailable, Commands, RedisConnection};
use crate::redis::scripts;
use crate::redis::seal::SealKeys;
use crate::store::{
    EndSignal, SessionBody, SessionChange, SessionEnded, SessionFilter, SessionStore, StoreFuture,
};

/// How long Redis keeps a record past its deadline before dropping it on
/// its own: long enough for a sweep on some node to end it properly (and
/// publish the end) first.
const EXPIRY_GRACE: Duration = Duration::from_secs(3_600);
/// How long an update may hold a session's lock before Redis frees it.
const LOCK_TTL: Duration = Duration::from_secs(5);
/// How long an update waits for another update of the same session.
const LOCK_WAIT: Duration = Duration::from_secs(2);
const WAKE_BUCKETS: usize = 64;

/// Sessions in Redis.
pub struct RedisStore<B> {
    shared: Arc<Shared<B>>,
    seal: SealKeys,
    cache: CachePolicy,
    ended: broadcast::Sender<SessionEnded<B>>,
    _body: PhantomData<fn() -> B>,
}

/// What the store's background tasks need (they hold it weakly).
struct Shared<B> {
    connection: RedisConnection,
    /// Sessions used here lately, served without a round trip while
    /// fresher than the staleness bound; dropped on every end or change
    /// any node announces, and all at once after a reconnect.
    cache: DashMap<SecretHash, Cached<B>>,
    base: String,
    channel: String,
    /// Sessions this node has seen live: the tokens their end signals
    /// watch. Dropping a token and waking its bucket fires them.
    alive: DashMap<SecretHash, Arc<()>>,
    wake: Vec<watch::Sender<()>>,
}

impl<B> fmt::Debug for RedisStore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("base", &self.shared.base)
            .field("watched", &self.shared.alive.len())
            .finish()
    }
}

/// How long a node may serve a session from its own cache.
#[derive(Debug, Clone, Copy)]
pub struct CachePolicy {
    /// The longest a session is served without asking Redis (by the
    /// caller's clock): the bound on how late a revocation whose
    /// announcement was lost is enforced. Zero turns the cache off.
    pub staleness: Duration,
    /// While Redis is unreachable, keep serving cached sessions (still
    /// only while fresh) instead of refusing them.
    pub serve_cached: bool,
}

impl CachePolicy {
    /// No cache: every use asks Redis.
    pub const OFF: CachePolicy = CachePolicy {
        staleness: Duration::ZERO,
        serve_cached: false,
    };
}

struct Cached<B> {
    session: Session<B>,
    /// The caller's clock when Redis last vouched for the session.
    fetched_at: OffsetDateTime,
}

/// A decoded reply of READ or TAKE.
enum Found {
    Gone,
    Live,
    Expired(EndReason),
    Record {
        sealed: Vec<u8>,
        last_activity: i64,
        reason: Option<EndReason>,
    },
}

impl<B: SessionBody> RedisStore<B> {
    /// A store under `namespace` (e.g. "gw", "idp") on `connection`,
    /// sealing records with `seal`. Spawns its end listener: call it
    /// inside a tokio runtime.
    pub fn new(connection: RedisConnection, namespace: &str, seal: SealKeys) -> Self {
        Self::with_cache(connection, namespace, seal, CachePolicy::OFF)
    }

    /// [`new`](Self::new) with a node-local cache of sessions in use.
    pub fn with_cache(
        connection: RedisConnection,
        namespace: &str,
        seal: SealKeys,
        cache: CachePolicy,
    ) -> Self {
        let base = format!("{}{}:", connection.prefix(), namespace);
        let channel = format!("{base}ended");
        let shared = Arc::new(Shared {
            base,
            alive: DashMap::new(),
            cache: DashMap::new(),
            wake: (0..WAKE_BUCKETS).map(|_| watch::channel(()).0).collect(),
            channel: channel.clone(),
            connection: connection.clone(),
        });
        let messages = connection.listen(&channel);
        tokio::spawn(listen(
            Arc::downgrade(&shared),
            messages,
            connection.generations(),
        ));
        Self {
            shared,
            seal,
            cache,
            ended: broadcast::channel(DEFAULT_ENDED_CAPACITY).0,
            _body: PhantomData,
        }
    }

    fn commands(&self) -> Result<Commands, StoreError> {
        self.shared.connection.commands()
    }

    fn record_key(&self, hex: &str) -> String {
        format!("{}s:{hex}", self.shared.base)
    }

    fn id_key(&self, id: &SessionId) -> String {
        format!("{}id:{id}", self.shared.base)
    }

    fn deadlines_key(&self) -> String {
        format!("{}deadlines", self.shared.base)
    }

    /// The index names `body` is filed under, as the JSON array the
    /// scripts read.
    fn filed_under(&self, body: &B) -> Result<String, StoreError> {
        let names: Vec<String> = body
            .index_keys()
            .iter()
            .map(|key| self.seal.index_name(key))
            .collect();
        serde_json::to_string(&names).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Hexes filed under index `key` by any key of the ring.
    async fn indexed(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let mut hexes = Vec::new();
        for name in self.seal.index_names(key) {
            for hex in self
                .members(&format!("{}ix:{name}", self.shared.base))
                .await?
            {
                if !hexes.contains(&hex) {
                    hexes.push(hex);
                }
            }
        }
        Ok(hexes)
    }

    fn seal_session(&self, session: &Session<B>, hex: &str) -> Result<Vec<u8>, StoreError> {
        let json = serde_json::to_vec(session).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(self.seal.seal(&json, &self.record_key(hex)))
    }

    fn open_session(
        &self,
        sealed: &[u8],
        last_activity: i64,
        hex: &str,
    ) -> Result<Session<B>, StoreError> {
        let json = self
            .seal
            .open(sealed, &self.record_key(hex))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut session: Session<B> =
            serde_json::from_slice(&json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        session.last_activity = from_micros(last_activity)?;
        Ok(session)
    }

    async fn create_now(
        &self,
        body: B,
        lifetime: Lifetime,
        now: OffsetDateTime,
    ) -> Result<(SessionSecret, Session<B>), StoreError> {
        let now = truncate(now);
        let keys = self.filed_under(&body)?;
        let mut commands = self.commands()?;
        // A collision of 256-bit secrets or 128-bit ids is not going to
        // happen, but the script refuses to overwrite, so retrying is free.
        for _ in 0..4 {
            let secret = SessionSecret::generate();
            let hash = secret.hash();
            let hex = hex(hash.as_bytes());
            let session = Session::new(SessionId::generate(), body.clone(), lifetime, now);
            let sealed = self.seal_session(&session, &hex)?;
            let deadline = micros(session.expires_at());
            let ttl = ttl_ms(session.expires_at(), now);
            let created: i64 = scripts::CREATE
                .key(self.record_key(&hex))
                .key(self.id_key(&session.id))
                .key(self.deadlines_key())
                .arg(&hex)
                .arg(session.id.as_str())
                .arg(micros(now))
                .arg(duration_micros(lifetime.idle))
                .arg(lifetime.max.map_or(-1, duration_micros))
                .arg(&keys)
                .arg(sealed)
                .arg(ttl)
                .arg(&self.shared.base)
                .arg(deadline)
                .invoke_async(&mut commands)
                .await
                .map_err(unavailable)?;
            if created == 1 {
                self.shared.watch(hash);
                tracing::debug!(session = %hash.short(), "session created");
                return Ok((secret, session));
            }
        }
        Err(StoreError::Unavailable("session id collisions".to_owned()))
    }

    async fn read(&self, hex: &str, now: OffsetDateTime, touch: bool) -> Result<Found, StoreError> {
        let mut commands = self.commands()?;
        let reply: Vec<Value> = scripts::READ
            .key(self.record_key(hex))
            .key(self.deadlines_key())
            .arg(micros(now))
            .arg(if touch { "1" } else { "0" })
            .arg(EXPIRY_GRACE.as_millis() as u64)
            .arg(hex)
            .arg(&self.shared.base)
            .invoke_async(&mut commands)
            .await
            .map_err(unavailable)?;
        decode_found(reply)
    }

    /// TAKE: `Some` only for the one caller that removed the session.
    async fn take(
        &self,
        hex: &str,
        only_expired_at: Option<OffsetDateTime>,
    ) -> Result<Found, StoreError> {
        let mut commands = self.commands()?;
        let reply: Vec<Value> = scripts::TAKE
            .key(self.record_key(hex))
            .key(self.deadlines_key())
            .arg(hex)
            .arg(&self.shared.base)
            .arg(if only_expired_at.is_some() {
                "expired"
            } else {
                "any"
            })
            .arg(only_expired_at.map_or(0, micros))
            .arg(&self.shared.channel)
            .arg(self.shared.connection.instance())
            .invoke_async(&mut commands)
            .await
            .map_err(unavailable)?;
        decode_found(reply)
    }

    /// Removes the session behind `hex` for `reason` (or, with
    /// `only_expired_at`, only if past its limits then, for the reason it
    /// found) and publishes it; `None` if another caller got there first.
    async fn end_hex(
        &self,
        hex: &str,
        reason: EndReason,
        only_expired_at: Option<OffsetDateTime>,
    ) -> Result<Option<(Session<B>, EndReason)>, StoreError> {
        let hash = parse_hex(hex)
            .ok_or_else(|| StoreError::Corrupt(format!("session key {hex:?} is not a digest")))?;
        match self.take(hex, only_expired_at).await? {
            Found::Record {
                sealed,
                last_activity,
                reason: found,
            } => {
                let reason = match only_expired_at {
                    Some(_) => found.unwrap_or(reason),
                    None => reason,
                };
                let session = self.open_session(&sealed, last_activity, hex);
                self.shared.fire(hex);
                let session = session?;
                tracing::debug!(session = %&hex[..8], reason = reason.as_str(), "session ended");
                let _ = self.ended.send(SessionEnded {
                    session: session.clone(),
                    reason,
                    hash,
                });
                Ok(Some((session, reason)))
            }
            Found::Gone | Found::Live | Found::Expired(_) => Ok(None),
        }
    }

    /// Uses a live session, ending it instead when past its limits.
    async fn live(
        &self,
        hex: &str,
        now: OffsetDateTime,
        touch: bool,
    ) -> Result<Session<B>, SessionError> {
        for _ in 0..3 {
            match self.read(hex, now, touch).await? {
                Found::Gone | Found::Live => return Err(SessionError::NotFound),
                Found::Record {
                    sealed,
                    last_activity,
                    ..
                } => {
                    let session = self.open_session(&sealed, last_activity, hex)?;
                    if let Some(hash) = parse_hex(hex) {
                        self.shared.watch(hash);
                    }
                    return Ok(session);
                }
                Found::Expired(reason) => {
                    match self.end_hex(hex, reason, Some(now)).await? {
                        Some((_, reason)) => return Err(SessionError::Expired { reason }),
                        None => {
                            // Gone (another ender), or made live again by a
                            // use with a later clock: look once more.
                            continue;
                        }
                    }
                }
            }
        }
        Err(SessionError::NotFound)
    }

    /// The request path: from the cache while fresh, else from Redis
    /// (which records the activity the cache held back).
    async fn touch_cached(
        &self,
        hash: &SecretHash,
        now: OffsetDateTime,
    ) -> Result<Session<B>, SessionError> {
        let staleness = time::Duration::try_from(self.cache.staleness).unwrap_or_default();
        if staleness.is_positive() {
            let usable = self.cache.serve_cached || self.shared.connection.is_ready();
            if let Some(mut cached) = self.shared.cache.get_mut(hash) {
                let age = now - cached.fetched_at;
                if usable
                    && !age.is_negative()
                    && age < staleness
                    && cached.session.end_reason_at(now).is_none()
                {
                    cached.session.record_activity(now);
                    return Ok(cached.session.clone());
                }
            }
        }
        let result = self.live(&hex(hash.as_bytes()), now, true).await;
        if staleness.is_positive() {
            match &result {
                Ok(session) => {
                    self.shared.cache.insert(
                        *hash,
                        Cached {
                            session: session.clone(),
                            fetched_at: now,
                        },
                    );
                }
                Err(SessionError::Store(_)) => {}
                Err(_) => {
                    self.shared.cache.remove(hash);
                }
            }
        }
        result
    }

    async fn hex_of(&self, id: &SessionId) -> Result<Option<String>, StoreError> {
        let mut commands = self.commands()?;
        redis::cmd("GET")
            .arg(self.id_key(id))
            .query_async(&mut commands)
            .await
            .map_err(unavailable)
    }

    async fn update_hex(
        &self,
        hex: &str,
        now: OffsetDateTime,
        change: SessionChange<'_, B>,
    ) -> Result<Session<B>, SessionError> {
        let lock_key = format!("{}lk:{hex}", self.shared.base);
        let token = self.lock(&lock_key).await?;
        let result = self
            .update_locked(hex, now, change, &lock_key, &token)
            .await;
        if result.is_err() {
            // Best effort: the lock's TTL frees it anyway.
            if let Ok(mut commands) = self.shared.connection.always() {
                let _: Result<i64, _> = scripts::UNLOCK
                    .key(&lock_key)
                    .arg(&token)
                    .invoke_async(&mut commands)
                    .await;
            }
        }
        result
    }

    async fn update_locked(
        &self,
        hex: &str,
        now: OffsetDateTime,
        change: SessionChange<'_, B>,
        lock_key: &str,
        token: &str,
    ) -> Result<Session<B>, SessionError> {
        let mut session = self.live(hex, now, false).await?;
        let (id, created_at) = (session.id.clone(), session.created_at);
        change(&mut session);
        // The id and creation time are the store's: a change may not move
        // the session or rejuvenate it.
        session.id = id;
        session.created_at = created_at;
        session.last_activity = truncate(session.last_activity);
        let keys = self.filed_under(&session.body)?;
        let sealed = self.seal_session(&session, hex)?;
        let mut commands = self.commands()?;
        let written: i64 = scripts::WRITE
            .key(self.record_key(hex))
            .key(self.deadlines_key())
            .key(lock_key)
            .arg(hex)
            .arg(&self.shared.base)
            .arg(token)
            .arg(micros(now))
            .arg(sealed)
            .arg(micros(session.last_activity))
            .arg(keys)
            .arg(EXPIRY_GRACE.as_millis() as u64)
            .arg(&self.shared.channel)
            .arg(self.shared.connection.instance())
            .invoke_async(&mut commands)
            .await
            .map_err(unavailable)?;
        match written {
            1 => {
                if let Some(hash) = parse_hex(hex) {
                    self.shared.cache.remove(&hash);
                }
                Ok(session)
            }
            0 => Err(SessionError::NotFound),
            _ => Err(StoreError::Unavailable("session update lock expired".to_owned()).into()),
        }
    }

    /// Takes a session's update lock, waiting briefly for another holder.
    async fn lock(&self, lock_key: &str) -> Result<String, StoreError> {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let token = hex(&bytes);
        let mut commands = self.commands()?;
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            let taken: Option<String> = redis::cmd("SET")
                .arg(lock_key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(LOCK_TTL.as_millis() as u64)
                .query_async(&mut commands)
                .await
                .map_err(unavailable)?;
            if taken.is_some() {
                return Ok(token);
            }
            if started.elapsed() > LOCK_WAIT {
                return Err(StoreError::Unavailable("session is busy".to_owned()));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Hexes in sorted set `key`, lowest score first.
    async fn members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let mut commands = self.commands()?;
        redis::cmd("ZRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .query_async(&mut commands)
            .await
            .map_err(unavailable)
    }

    /// Records as they are, without checking limits or touching anything.
    async fn peek(&self, hexes: &[String]) -> Result<Vec<(String, Session<B>)>, StoreError> {
        if hexes.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for hex in hexes {
            pipe.cmd("HMGET")
                .arg(self.record_key(hex))
                .arg("rec")
                .arg("act");
        }
        let mut commands = self.commands()?;
        let replies: Vec<(Option<Vec<u8>>, Option<i64>)> =
            pipe.query_async(&mut commands).await.map_err(unavailable)?;
        let mut out = Vec::with_capacity(hexes.len());
        for (hex, reply) in hexes.iter().zip(replies) {
            if let (Some(sealed), Some(act)) = reply {
                out.push((hex.clone(), self.open_session(&sealed, act, hex)?));
            }
        }
        Ok(out)
    }

    async fn end_indexed_now(
        &self,
        key: &str,
        reason: EndReason,
        matches: SessionFilter<'_, B>,
    ) -> Result<Vec<Session<B>>, StoreError> {
        let hexes = self.indexed(key).await?;
        let mut ended = Vec::new();
        for (hex, session) in self.peek(&hexes).await? {
            if !session.body.index_keys().iter().any(|k| k == key) || !matches(&session) {
                continue;
            }
            if let Some((session, _)) = self.end_hex(&hex, reason, None).await? {
                ended.push(session);
            }
        }
        oldest_first(&mut ended);
        Ok(ended)
    }

    async fn list_indexed_now(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Session<B>>, StoreError> {
        let mut live = Vec::new();
        for hex in self.indexed(key).await? {
            match self.live(&hex, now, false).await {
                Ok(session) if session.body.index_keys().iter().any(|k| k == key) => {
                    live.push(session)
                }
                Ok(_) | Err(SessionError::NotFound | SessionError::Expired { .. }) => {}
                Err(SessionError::Malformed | SessionError::OtherNode { .. }) => {}
                Err(SessionError::Store(e)) => return Err(e),
            }
        }
        oldest_first(&mut live);
        Ok(live)
    }

    async fn sweep_now(&self, now: OffsetDateTime) -> Result<Vec<Session<B>>, StoreError> {
        let staleness = time::Duration::try_from(self.cache.staleness).unwrap_or_default();
        self.shared
            .cache
            .retain(|_, cached| now - cached.fetched_at < staleness);
        let mut commands = self.commands()?;
        let due: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.deadlines_key())
            .arg("-inf")
            .arg(micros(now))
            .query_async(&mut commands)
            .await
            .map_err(unavailable)?;
        let mut ended = Vec::new();
        for hex in due {
            if let Some((session, _)) = self
                .end_hex(&hex, EndReason::IdleTimeout, Some(now))
                .await?
            {
                ended.push(session);
            }
        }
        Ok(ended)
    }

    async fn count_by_now(
        &self,
        now: OffsetDateTime,
        group: &(dyn Fn(&B) -> String + Send + Sync),
    ) -> Result<BTreeMap<String, usize>, StoreError> {
        let hexes = self.members(&self.deadlines_key()).await?;
        let mut counts = BTreeMap::new();
        for chunk in hexes.chunks(512) {
            for (_, session) in self.peek(chunk).await? {
                if session.end_reason_at(now).is_none() {
                    *counts.entry(group(&session.body)).or_insert(0) += 1;
                }
            }
        }
        Ok(counts)
    }
}

impl<B> Shared<B> {
    fn bucket(&self, hash: &SecretHash) -> &watch::Sender<()> {
        &self.wake[usize::from(hash.as_bytes()[0]) % WAKE_BUCKETS]
    }

    /// Remembers a session seen live here, so end signals can watch it.
    fn watch(&self, hash: SecretHash) {
        self.alive.entry(hash).or_insert_with(|| Arc::new(()));
    }

    /// Fires the end signals of the session behind `hex`.
    fn fire(&self, hex: &str) {
        let Some(hash) = parse_hex(hex) else { return };
        self.cache.remove(&hash);
        if self.alive.remove(&hash).is_some() {
            self.bucket(&hash).send_replace(());
        }
    }
}

/// Follows the ended channel, and after every reconnect re-checks the
/// sessions this node watches (what was published meanwhile is lost).
async fn listen<B: SessionBody>(
    shared: Weak<Shared<B>>,
    mut messages: mpsc::UnboundedReceiver<Vec<u8>>,
    mut generations: watch::Receiver<u64>,
) {
    loop {
        tokio::select! {
            message = messages.recv() => {
                let Some(message) = message else { return };
                let Some(shared) = shared.upgrade() else { return };
                let text = String::from_utf8_lossy(&message);
                let mut words = text.split(' ');
                match (words.next(), words.next(), words.next()) {
                    (Some("e"), Some(_), Some(hex)) => shared.fire(hex),
                    (Some("u"), Some(_), Some(hex)) => {
                        if let Some(hash) = parse_hex(hex) {
                            shared.cache.remove(&hash);
                        }
                    }
                    _ => {}
                }
            }
            changed = generations.changed() => {
                if changed.is_err() { return; }
                let Some(shared) = shared.upgrade() else { return };
                resync(&shared).await;
            }
        }
    }
}

async fn resync<B>(shared: &Shared<B>) {
    // Whatever was announced while away is lost: nothing cached is trusted.
    shared.cache.clear();
    let watched: Vec<SecretHash> = shared.alive.iter().map(|e| *e.key()).collect();
    let Ok(mut commands) = shared.connection.always() else {
        // No master known yet: the generation moves once there is one.
        return;
    };
    for chunk in watched.chunks(512) {
        let mut pipe = redis::pipe();
        for hash in chunk {
            pipe.cmd("EXISTS")
                .arg(format!("{}s:{}", shared.base, hex(hash.as_bytes())));
        }
        let Ok(exists) = pipe.query_async::<Vec<bool>>(&mut commands).await else {
            // Down again: the next generation re-syncs.
            return;
        };
        let mut fired = 0usize;
        for (hash, exists) in chunk.iter().zip(exists) {
            if !exists {
                shared.fire(&hex(hash.as_bytes()));
                fired += 1;
            }
        }
        if fired > 0 {
            tracing::info!(
                ended = fired,
                "sessions ended while the store was unreachable"
            );
        }
    }
}

fn decode_found(reply: Vec<Value>) -> Result<Found, StoreError> {
    let mut parts = reply.into_iter();
    let status = match parts.next() {
        Some(Value::Int(n)) => n,
        other => return Err(corrupt_reply(other)),
    };
    match status {
        0 => Ok(Found::Gone),
        3 => Ok(Found::Live),
        2 => Ok(Found::Expired(
            reason_of(parts.next())?.unwrap_or(EndReason::IdleTimeout),
        )),
        1 => {
            let sealed = match parts.next() {
                Some(Value::BulkString(bytes)) => bytes,
                other => return Err(corrupt_reply(other)),
            };
            let last_activity = match parts.next() {
                Some(Value::BulkString(bytes)) => std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or_else(|| StoreError::Corrupt("last activity".to_owned()))?,
                Some(Value::Int(n)) => n,
                other => return Err(corrupt_reply(other)),
            };
            let reason = reason_of(parts.next())?;
            Ok(Found::Record {
                sealed,
                last_activity,
                reason,
            })
        }
        _ => Err(StoreError::Corrupt(format!("script status {status}"))),
    }
}

fn reason_of(value: Option<Value>) -> Result<Option<EndReason>, StoreError> {
    let text = match value {
        None => return Ok(None),
        Some(Value::BulkString(bytes)) => bytes,
        Some(Value::SimpleString(text)) => text.into_bytes(),
        other => return Err(corrupt_reply(other)),
    };
    Ok(EndReason::ALL
        .into_iter()
        .find(|r| r.as_str().as_bytes() == text.as_slice()))
}

fn corrupt_reply(value: Option<Value>) -> StoreError {
    StoreError::Corrupt(format!("unexpected script reply {value:?}"))
}

fn oldest_first<B>(sessions: &mut [Session<B>]) {
    sessions.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
}

fn parse_hex(text: &str) -> Option<SecretHash> {
    if text.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(SecretHash::from_bytes(bytes))
}

pub(crate) fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

fn from_micros(us: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// `t` at the microsecond precision records are kept at, so what create
/// and update return equals what a later read returns.
fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    from_micros(micros(t)).unwrap_or(t)
}

fn duration_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Milliseconds Redis keeps a record whose deadline is `deadline`.
pub(crate) fn ttl_ms(deadline: OffsetDateTime, now: OffsetDateTime) -> i64 {
    let left = (deadline - now).whole_milliseconds().max(0);
    i64::try_from(left)
        .unwrap_or(i64::MAX / 2)
        .saturating_add(EXPIRY_GRACE.as_millis() as i64)
}

impl<B: SessionBody> SessionStore<B> for RedisStore<B> {
    fn create(
        &self,
        body: B,
        lifetime: Lifetime,
        now: OffsetDateTime,
    ) -> StoreFuture<'_, Result<(SessionSecret, Session<B>), StoreError>> {
        Box::pin(self.create_now(body, lifetime, now))
    }

    fn touch<'a>(
        &'a self,
        hash: &'a SecretHash,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<Session<B>, SessionError>> {
        Box::pin(self.touch_cached(hash, now))
    }

    fn get<'a>(
        &'a self,
        id: &'a SessionId,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<Session<B>, SessionError>> {
        Box::pin(async move {
            let hex = self.hex_of(id).await?.ok_or(SessionError::NotFound)?;
            self.live(&hex, now, false).await
        })
    }

    fn update<'a>(
        &'a self,
        hash: &'a SecretHash,
        now: OffsetDateTime,
        change: SessionChange<'a, B>,
    ) -> StoreFuture<'a, Result<Session<B>, SessionError>> {
        Box::pin(async move { self.update_hex(&hex(hash.as_bytes()), now, change).await })
    }

    fn update_by_id<'a>(
        &'a self,
        id: &'a SessionId,
        now: OffsetDateTime,
        change: SessionChange<'a, B>,
    ) -> StoreFuture<'a, Result<Session<B>, SessionError>> {
        Box::pin(async move {
            let hex = self.hex_of(id).await?.ok_or(SessionError::NotFound)?;
            self.update_hex(&hex, now, change).await
        })
    }

    fn end<'a>(
        &'a self,
        hash: &'a SecretHash,
        reason: EndReason,
    ) -> StoreFuture<'a, Result<Option<Session<B>>, StoreError>> {
        Box::pin(async move {
            let ended = self.end_hex(&hex(hash.as_bytes()), reason, None).await?;
            Ok(ended.map(|(session, _)| session))
        })
    }

    fn end_by_id<'a>(
        &'a self,
        id: &'a SessionId,
        reason: EndReason,
    ) -> StoreFuture<'a, Result<Option<Session<B>>, StoreError>> {
        Box::pin(async move {
            let Some(hex) = self.hex_of(id).await? else {
                return Ok(None);
            };
            let ended = self.end_hex(&hex, reason, None).await?;
            Ok(ended.map(|(session, _)| session))
        })
    }

    fn end_indexed<'a>(
        &'a self,
        key: &'a str,
        reason: EndReason,
        matches: SessionFilter<'a, B>,
    ) -> StoreFuture<'a, Result<Vec<Session<B>>, StoreError>> {
        Box::pin(self.end_indexed_now(key, reason, matches))
    }

    fn list_indexed<'a>(
        &'a self,
        key: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<Vec<Session<B>>, StoreError>> {
        Box::pin(self.list_indexed_now(key, now))
    }

    fn sweep(&self, now: OffsetDateTime) -> StoreFuture<'_, Result<Vec<Session<B>>, StoreError>> {
        Box::pin(self.sweep_now(now))
    }

    fn subscribe(&self) -> broadcast::Receiver<SessionEnded<B>> {
        self.ended.subscribe()
    }

    fn ended(&self, hash: &SecretHash) -> EndSignal {
        // Subscribed before the token is looked up, so an end in between
        // is seen (EndSignal::from_token's rule).
        let wake = self.shared.bucket(hash).subscribe();
        match self.shared.alive.get(hash) {
            Some(token) => EndSignal::from_token(Arc::downgrade(&token), wake),
            None => EndSignal::ended(),
        }
    }

    fn count_by<'a>(
        &'a self,
        now: OffsetDateTime,
        group: &'a (dyn Fn(&B) -> String + Send + Sync),
    ) -> StoreFuture<'a, Result<BTreeMap<String, usize>, StoreError>> {
        Box::pin(self.count_by_now(now, group))
    }

    fn len(&self) -> StoreFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            let mut commands = self.commands()?;
            redis::cmd("ZCARD")
                .arg(self.deadlines_key())
                .query_async(&mut commands)
                .await
                .map_err(unavailable)
        })
    }
}
