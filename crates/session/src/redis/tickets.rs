//! [`TicketStore`] on Redis: a ticket issued on one node is redeemed on
//! any, once. Values are sealed at rest under the ticket's key; expired
//! tickets are dropped by the caller's clock, as in memory.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::encoding::hex;
use crate::error::StoreError;
use crate::redis::connection::{unavailable, RedisConnection};
use crate::redis::scripts;
use crate::redis::seal::SealKeys;
use crate::redis::sessions::{micros, ttl_ms};
use crate::store::StoreFuture;
use crate::ticket::{digest, TicketError, TicketSecret, TicketStore, DEFAULT_TICKET_CAPACITY};

/// Tickets in Redis.
pub struct RedisTickets<T> {
    connection: RedisConnection,
    base: String,
    seal: SealKeys,
    capacity: usize,
    _value: PhantomData<fn() -> T>,
}

#[derive(Serialize, Deserialize)]
struct Pending<T> {
    expires_at: i64,
    value: T,
}

impl<T> RedisTickets<T> {
    pub fn new(connection: RedisConnection, namespace: &str, seal: SealKeys) -> Self {
        let base = format!("{}{}:", connection.prefix(), namespace);
        Self {
            connection,
            base,
            seal,
            capacity: DEFAULT_TICKET_CAPACITY,
            _value: PhantomData,
        }
    }

    fn ticket_key(&self, hex: &str) -> String {
        format!("{}tk:{hex}", self.base)
    }

    fn expiries_key(&self) -> String {
        format!("{}tk-expiries", self.base)
    }
}

impl<T> fmt::Debug for RedisTickets<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTickets")
            .field("base", &self.base)
            .finish()
    }
}

impl<T> TicketStore<T> for RedisTickets<T>
where
    T: Send + Sync + Serialize + DeserializeOwned + 'static,
{
    fn issue(
        &self,
        value: T,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'_, Result<TicketSecret, StoreError>> {
        Box::pin(async move {
            let secret = TicketSecret::generate();
            let hex = hex(&digest(secret.expose()));
            let key = self.ticket_key(&hex);
            let pending = Pending {
                expires_at: micros(expires_at),
                value,
            };
            let json =
                serde_json::to_vec(&pending).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let sealed = self.seal.seal(&json, &key);
            let mut commands = self.connection.commands()?;
            let verdict: String = scripts::ISSUE
                .key(&key)
                .key(self.expiries_key())
                .arg(micros(now))
                .arg(micros(expires_at))
                .arg(sealed)
                .arg(self.capacity)
                .arg(&self.base)
                .arg(&hex)
                .arg(ttl_ms(expires_at, now))
                .invoke_async(&mut commands)
                .await
                .map_err(unavailable)?;
            match verdict.as_str() {
                "ok" => Ok(secret),
                _ => Err(StoreError::Full),
            }
        })
    }

    fn redeem<'a>(
        &'a self,
        presented: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<T, TicketError>> {
        Box::pin(async move {
            let hex = hex(&digest(presented));
            let key = self.ticket_key(&hex);
            let mut commands = self.connection.commands()?;
            let sealed: Option<Vec<u8>> = scripts::REDEEM
                .key(&key)
                .key(self.expiries_key())
                .arg(&hex)
                .invoke_async(&mut commands)
                .await
                .map_err(unavailable)?;
            let sealed = sealed.ok_or(TicketError::Unknown)?;
            let json = self
                .seal
                .open(&sealed, &key)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let pending: Pending<T> =
                serde_json::from_slice(&json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if micros(now) >= pending.expires_at {
                return Err(TicketError::Expired);
            }
            Ok(pending.value)
        })
    }
}
