//! Live heap bytes per gateway session: `SESSIONS` (default 30,000)
//! sessions with a realistic body (NameID, email, firstName, lastName,
//! three groups, a SessionIndex, an AuthnContextClassRef, an IPv4) created
//! through the real `Sessions` API on the real `MemoryStore`, each asked
//! once for its end signal as a proxied request does, measured by a
//! counting global allocator (bytes allocated minus bytes freed, before vs
//! after). RSS from /proc/self/status is a second opinion that also sees
//! the allocator's own overhead and fragmentation.
//!
//! Two baselines from the same run give the ratio: the information content
//! (the body's string bytes, the 32-byte key digest, 4 bytes of IPv4) and a
//! plain `HashMap<[u8; 32], Vec<u8>>` of the JSON-serialised bodies, the
//! least a store could get away with without being clever.
//!
//! Run: `cargo bench -p portcullis-gateway --bench session_memory`
//! (`SESSIONS=100000 cargo bench …` for another count).

use std::alloc::System;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use portcullis_gateway::{GatewaySession, Sessions};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use time::OffsetDateTime;

/// The system allocator, counting the bytes it hands out and takes back
/// (`stats_alloc`, so this crate keeps `unsafe_code` forbidden).
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn live_heap() -> isize {
    // `stats_alloc` already books a realloc's growth under allocated and
    // its shrinking under deallocated; `bytes_reallocated` repeats that
    // net change, so adding it would count reallocs twice.
    let stats = GLOBAL.stats();
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize
}

/// Resident set size in bytes, if the platform says.
fn rss() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The fields of one realistic sign-in, as the assertion would carry them.
struct Fields {
    name_id: String,
    attributes: Vec<(String, Vec<String>)>,
    session_index: String,
    authn_context: String,
    ip: IpAddr,
}

const GROUPS: [&str; 5] = ["staff", "engineering", "vpn-users", "admins", "finance"];

fn fields(i: usize) -> Fields {
    let name_id = format!("user{i:05}@example.com");
    let attributes = vec![
        ("email".to_owned(), vec![name_id.clone()]),
        ("firstName".to_owned(), vec![format!("First{}", i % 1000)]),
        ("lastName".to_owned(), vec![format!("Last{i}")]),
        (
            "groups".to_owned(),
            (0..3)
                .map(|g| GROUPS[(i + g) % GROUPS.len()].to_owned())
                .collect(),
        ),
    ];
    Fields {
        name_id,
        attributes,
        // The embedded IdP's SessionIndex is its session id: "102" + 22 base62.
        session_index: format!("102{:022}", i as u128 * 7_919_000_003),
        authn_context: "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
            .to_owned(),
        ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32)),
    }
}

/// How contexts are told in the bench: one zone over the sessions'
/// addresses, no ASN database (its organisation names are interned like
/// the zone's), a browser's user agent.
fn context(ip: IpAddr) -> portcullis_context::SessionContext {
    static SOURCE: std::sync::OnceLock<portcullis_context::ContextSource> =
        std::sync::OnceLock::new();
    let source = SOURCE.get_or_init(|| {
        let office = portcullis_context::Zone::new(
            "office",
            [portcullis_context::parse_cidr("10.0.0.0/8").expect("cidr")],
        );
        portcullis_context::ContextSource::new(None, vec![office])
    });
    source.capture(
        ip,
        Some(b"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"),
    )
}

fn body(app: &str, f: Fields) -> GatewaySession {
    GatewaySession::new(
        app,
        f.name_id,
        f.attributes,
        Some(f.session_index),
        Some(f.authn_context),
        context(f.ip),
    )
}

/// String bytes of the body, the key digest and the address: what any
/// representation has to keep.
fn information(f: &Fields) -> usize {
    let attributes: usize = f
        .attributes
        .iter()
        .map(|(name, values)| name.len() + values.iter().map(String::len).sum::<usize>())
        .sum();
    APP.len()
        + f.name_id.len()
        + attributes
        + f.session_index.len()
        + f.authn_context.len()
        + 32
        + 4
}

const APP: &str = "wiki";

/// A stand-in 32-byte key for the baseline map: any distinct 32 bytes do
/// (the real store's key is a SHA-256).
fn digest(i: usize) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&(i as u64).to_le_bytes());
    key
}

fn per(bytes: usize, n: usize) -> f64 {
    bytes as f64 / n as f64
}

fn main() {
    let n: usize = std::env::var("SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(30_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    let sessions = Sessions::memory();
    let now = OffsetDateTime::now_utc();
    let (idle, max) = (Duration::from_secs(3600), Duration::from_secs(8 * 3600));
    // One session first, so one-off set-up (the interner, first tables) is
    // not charged to the measured ones.
    runtime.block_on(async {
        let _ = sessions
            .create(body(APP, fields(n)), idle, max, now)
            .await
            .expect("create");
    });

    let (heap0, rss0) = (live_heap(), rss());
    runtime.block_on(async {
        for i in 0..n {
            // The secret goes to the browser; the gateway keeps only the store.
            let secret = sessions
                .create(body(APP, fields(i)), idle, max, now)
                .await
                .expect("create");
            // Every proxied request asks for the session's end signal (it
            // closes streams and tunnels), so a session that has served one
            // request carries whatever asking leaves behind.
            drop(sessions.ended(&secret.hash()));
        }
    });
    let (heap1, rss1) = (live_heap(), rss());
    let gateway = (heap1 - heap0).max(0) as usize;

    let information: usize = (0..n).map(|i| information(&fields(i))).sum();

    let heap2 = live_heap();
    let mut plain: HashMap<[u8; 32], Vec<u8>> = HashMap::new();
    let mut json_bytes = 0;
    for i in 0..n {
        let json = serde_json::to_vec(&body(APP, fields(i))).expect("serialise");
        json_bytes += json.len();
        plain.insert(digest(i), json);
    }
    let plain_bytes = (live_heap() - heap2).max(0) as usize;

    println!("gateway sessions: {n} (SESSIONS to change)");
    println!(
        "heap per gateway session:   {:>7.0} bytes  (allocated - freed)",
        per(gateway, n)
    );
    match (rss0, rss1) {
        (Some(a), Some(b)) => println!(
            "RSS per gateway session:    {:>7.0} bytes  (VmRSS delta, second opinion)",
            per(b.saturating_sub(a), n)
        ),
        _ => println!("RSS per gateway session:    n/a (no /proc/self/status)"),
    }
    println!(
        "information per session:    {:>7.0} bytes  (string bytes + 32-byte digest + IPv4)",
        per(information, n)
    );
    println!(
        "plain HashMap<[u8;32], JSON>:{:>7.0} bytes per session  (JSON body {:.0} bytes)",
        per(plain_bytes, n),
        per(json_bytes, n)
    );
    println!(
        "ratio gateway / information: {:.2}   gateway / plain map: {:.2}",
        gateway as f64 / information as f64,
        gateway as f64 / plain_bytes as f64
    );
    println!(
        "target <= 1024 bytes per gateway session: {}",
        if per(gateway, n) <= 1024.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    drop(plain);
    drop(sessions);
}
