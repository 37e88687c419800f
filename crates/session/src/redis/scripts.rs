//! The atomic steps, as Lua run inside Redis: each script is one step no
//! other client can interleave with, which is what makes "ended exactly
//! once" and "an update cannot revive an expired session" hold across
//! nodes.
//!
//! Times are microseconds since the Unix epoch (exact in Lua's doubles
//! until the year 2255), always the caller's `now`: Redis's own TTLs are
//! only a backstop that removes records long after their deadline.
//! Numbers are written back with `%d`, never `tostring`, which would turn
//! them into exponent notation.

use std::sync::LazyLock;

use redis::Script;

/// The one expiry rule (record.rs), in Lua.
const DEADLINE: &str = r#"
local function deadline(created, act, idle, max)
  local dl = act + idle
  local reason = 'idle_timeout'
  if max >= 0 then
    local absolute = created + max
    if absolute <= dl then dl = absolute; reason = 'max_lifetime' end
  end
  return dl, reason
end
local function n(x) return string.format('%d', x) end
"#;

fn with_deadline(body: &str) -> Script {
    Script::new(&format!("{DEADLINE}{body}"))
}

/// KEYS: record, id, deadlines. ARGV: hex, public id, created, idle, max,
/// index keys (JSON), sealed record, ttl ms, base, deadline.
/// Returns 1, or 0 on a collision (nothing written).
pub(crate) static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[2], 'created', ARGV[3], 'act', ARGV[3],
  'idle', ARGV[4], 'max', ARGV[5], 'keys', ARGV[6], 'rec', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[8])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[8])
for _, key in ipairs(cjson.decode(ARGV[6])) do
  redis.call('ZADD', ARGV[9] .. 'ix:' .. key, ARGV[3], ARGV[1])
end
redis.call('ZADD', KEYS[3], ARGV[10], ARGV[1])
return 1
"#,
    )
});

/// KEYS: record, deadlines. ARGV: now, touch (1/0), grace ms, hex, base.
/// Returns {0} not found, {2, reason} past its limits (nothing changed:
/// the caller ends it through TAKE), or {1, sealed record, last activity}.
pub(crate) static READ: LazyLock<Script> = LazyLock::new(|| {
    with_deadline(
        r#"
local f = redis.call('HMGET', KEYS[1], 'created', 'act', 'idle', 'max', 'rec', 'id')
if not f[1] then return {0} end
local created, act, idle, max = tonumber(f[1]), tonumber(f[2]), tonumber(f[3]), tonumber(f[4])
local now = tonumber(ARGV[1])
local dl, reason = deadline(created, act, idle, max)
if now >= dl then return {2, reason} end
if ARGV[2] == '1' and now > act then
  act = now
  redis.call('HSET', KEYS[1], 'act', ARGV[1])
  dl = deadline(created, act, idle, max)
  local ttl = math.floor((dl - now) / 1000) + tonumber(ARGV[3])
  redis.call('PEXPIRE', KEYS[1], n(ttl))
  redis.call('PEXPIRE', ARGV[5] .. 'id:' .. f[6], n(ttl))
  redis.call('ZADD', KEYS[2], n(dl), ARGV[4])
end
return {1, f[5], n(act)}
"#,
    )
});

/// Removes a session and everything filed for it, and announces it on the
/// ended channel; the caller that gets {1, …} is its only ender.
/// KEYS: record, deadlines. ARGV: hex, base, mode ('any' | 'expired'),
/// now, channel, instance.
/// Returns {0} gone, {3} live (mode 'expired'), or {1, sealed record,
/// last activity, reason-at-now or ''}.
pub(crate) static TAKE: LazyLock<Script> = LazyLock::new(|| {
    with_deadline(
        r#"
local f = redis.call('HMGET', KEYS[1], 'created', 'act', 'idle', 'max', 'rec', 'id', 'keys')
if not f[1] then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {0}
end
local dl, reason = deadline(tonumber(f[1]), tonumber(f[2]), tonumber(f[3]), tonumber(f[4]))
local expired = tonumber(ARGV[4]) >= dl
if ARGV[3] == 'expired' and not expired then return {3} end
if not expired then reason = '' end
redis.call('DEL', KEYS[1])
redis.call('DEL', ARGV[2] .. 'id:' .. f[6])
for _, key in ipairs(cjson.decode(f[7])) do
  redis.call('ZREM', ARGV[2] .. 'ix:' .. key, ARGV[1])
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[5], 'e ' .. ARGV[6] .. ' ' .. ARGV[1])
return {1, f[5], f[2], reason}
"#,
    )
});

/// Commits an update made under the session's lock.
/// Announces the change on the channel, so caches elsewhere drop it.
/// KEYS: record, deadlines, lock. ARGV: hex, base, lock token, now, sealed
/// record, last activity, index keys (JSON), grace ms, channel, instance.
/// Returns 1 written, 0 the session is gone, -1 the lock was lost.
pub(crate) static WRITE: LazyLock<Script> = LazyLock::new(|| {
    with_deadline(
        r#"
if redis.call('GET', KEYS[3]) ~= ARGV[3] then return -1 end
redis.call('DEL', KEYS[3])
local f = redis.call('HMGET', KEYS[1], 'created', 'act', 'idle', 'max', 'keys', 'id')
if not f[1] then return 0 end
local created, act, idle, max = tonumber(f[1]), tonumber(f[2]), tonumber(f[3]), tonumber(f[4])
local wanted = tonumber(ARGV[6])
if wanted > act then
  act = wanted
  redis.call('HSET', KEYS[1], 'act', ARGV[6])
end
if f[5] ~= ARGV[7] then
  for _, key in ipairs(cjson.decode(f[5])) do
    redis.call('ZREM', ARGV[2] .. 'ix:' .. key, ARGV[1])
  end
  for _, key in ipairs(cjson.decode(ARGV[7])) do
    redis.call('ZADD', ARGV[2] .. 'ix:' .. key, f[1], ARGV[1])
  end
end
redis.call('HSET', KEYS[1], 'rec', ARGV[5], 'keys', ARGV[7])
local dl = deadline(created, act, idle, max)
local ttl = math.max(math.floor((dl - tonumber(ARGV[4])) / 1000), 0) + tonumber(ARGV[8])
redis.call('PEXPIRE', KEYS[1], n(ttl))
redis.call('PEXPIRE', ARGV[2] .. 'id:' .. f[6], n(ttl))
redis.call('ZADD', KEYS[2], n(dl), ARGV[1])
redis.call('PUBLISH', ARGV[9], 'u ' .. ARGV[10] .. ' ' .. ARGV[1])
return 1
"#,
    )
});

/// Releases a lock only its holder may release. KEYS: lock. ARGV: token.
pub(crate) static UNLOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#,
    )
});

/// One-time use of several keys of one kind, all or nothing.
/// KEYS: entries (zset key → until), marks (hash key → mark).
/// ARGV: now, until, capacity, mode ('use' | 'advance'), mark, keys….
/// Returns 'ok', 'replayed' or 'full'.
pub(crate) static ONE_TIME: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local now = ARGV[1]
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #gone > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  for _, key in ipairs(gone) do redis.call('HDEL', KEYS[2], key) end
end
local fresh = {}
local seen = {}
for i = 6, #ARGV do
  local key = ARGV[i]
  if redis.call('ZSCORE', KEYS[1], key) then
    if ARGV[4] == 'use' then return 'replayed' end
    local mark = tonumber(redis.call('HGET', KEYS[2], key) or '0')
    if tonumber(ARGV[5]) <= mark then return 'replayed' end
  elseif not seen[key] then
    seen[key] = true
    table.insert(fresh, key)
  end
end
if redis.call('ZCARD', KEYS[1]) + #fresh > tonumber(ARGV[3]) then return 'full' end
for i = 6, #ARGV do
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[i])
  if ARGV[4] == 'advance' then redis.call('HSET', KEYS[2], ARGV[i], ARGV[5]) end
end
return 'ok'
"#,
    )
});

/// Issues a ticket after dropping the expired ones.
/// KEYS: ticket, expiries (zset). ARGV: now, expires at, sealed value,
/// capacity, base, hex, ttl ms. Returns 'ok' or 'full'.
pub(crate) static ISSUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, hex in ipairs(gone) do redis.call('DEL', ARGV[5] .. 'tk:' .. hex) end
if #gone > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1]) end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return 'full' end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[7])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[6])
return 'ok'
"#,
    )
});

/// Redeems a ticket once. KEYS: ticket, expiries. ARGV: hex.
/// Returns the sealed value, or false when unknown.
pub(crate) static REDEEM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local value = redis.call('GET', KEYS[1])
if not value then return false end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return value
"#,
    )
});

/// Lockout state: KEYS are the user's entry (a hash of `f` failures and
/// `u` lock end) and the sorted set of running locks by end.
const LOCKOUT: &str = r#"
local function n(x) return string.format('%d', x) end
local function lock_end() return tonumber(redis.call('HGET', KEYS[1], 'u') or '0') end
"#;

fn with_lockout(body: &str) -> Script {
    Script::new(&format!("{LOCKOUT}{body}"))
}

/// ARGV: now, threshold, lock end if this failure locks, user, count ttl
/// ms, lock ttl ms. Returns {'already', end}, {'locked', end} or
/// {'counted', remaining}.
pub(crate) static LOCKOUT_FAIL: LazyLock<Script> = LazyLock::new(|| {
    with_lockout(
        r#"
local now = tonumber(ARGV[1])
local u = lock_end()
if u > now then return {'already', n(u)} end
if u > 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[4])
end
local f = redis.call('HINCRBY', KEYS[1], 'f', 1)
local threshold = tonumber(ARGV[2])
if f >= threshold then
  redis.call('HSET', KEYS[1], 'u', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
  return {'locked', ARGV[3]}
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {'counted', n(threshold - f)}
"#,
    )
});

/// ARGV: lock end, threshold, user, lock ttl ms. A later end wins.
pub(crate) static LOCKOUT_RESTORE: LazyLock<Script> = LazyLock::new(|| {
    with_lockout(
        r#"
if tonumber(ARGV[1]) > lock_end() then
  redis.call('HSET', KEYS[1], 'u', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[3])
end
local f = tonumber(redis.call('HGET', KEYS[1], 'f') or '0')
if f < tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], 'f', ARGV[2]) end
return 1
"#,
    )
});

/// ARGV: now, user. Returns 1 when a running lock was lifted.
pub(crate) static LOCKOUT_UNLOCK: LazyLock<Script> = LazyLock::new(|| {
    with_lockout(
        r#"
local u = lock_end()
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
if u > tonumber(ARGV[1]) then return 1 end
return 0
"#,
    )
});

/// KEYS: the sorted set of running locks. ARGV: now. Forgets the ended
/// ones and returns the rest as {user, end, …}.
pub(crate) static LOCKOUT_LIST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local flat = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local out = {}
for i = 1, #flat, 2 do
  out[#out + 1] = flat[i]
  out[#out + 1] = string.format('%d', tonumber(flat[i + 1]))
end
return out
"#,
    )
});
