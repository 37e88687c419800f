//! What session context costs a request (DESIGN §5a), next to baselines
//! measured in the same run so the figures read as ratios:
//! - `ContextSource::observe` for the same IP and user-agent bytes as the
//!   session recorded — every request of a settled session pays this;
//! - `observe` for a new IP in the same AS (a DHCP or NAT pool move), which
//!   pays an ASN number lookup and a zone match, with either database format;
//! - `AsnDatabase::lookup_number` and `lookup` on the MaxMind DB fixture vs
//!   the TSV fixture with the same networks;
//! - baselines: copying a typical request's header map (what any proxy does
//!   once per request anyway) and SipHashing the user-agent alone.
//!
//! The fixtures are tiny, so the MaxMind figure is a floor: a real
//! GeoLite2-ASN tree is deeper (up to 128 steps for IPv6, about 32 for
//! IPv4), the TSV a binary search over more ranges.
//!
//! Run: `cargo bench -p portcullis-context --bench observe`

use std::hash::{DefaultHasher, Hash, Hasher};
use std::hint::black_box;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderName, HeaderValue};
use portcullis_context::{parse_cidr, AsnDatabase, ContextSource, Zone};

const USER_AGENT: &[u8] = b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/asn")
        .join(name)
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("bench address")
}

fn database(name: &str) -> Arc<AsnDatabase> {
    Arc::new(AsnDatabase::open(&fixture(name)).expect("fixture loads"))
}

/// Two zones, as a small policy file has.
fn source(db: Arc<AsnDatabase>) -> ContextSource {
    let office = Zone::new(
        "office",
        [
            parse_cidr("10.0.0.0/8").expect("cidr"),
            parse_cidr("fd00::/8").expect("cidr"),
        ],
    );
    let vpn = Zone::new("vpn", [parse_cidr("127.0.0.0/24").expect("cidr")]);
    ContextSource::new(Some(db), vec![office, vpn])
}

fn request_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("host", "app.example.com"),
        (
            "user-agent",
            std::str::from_utf8(USER_AGENT).expect("ascii"),
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-GB,en;q=0.9"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        (
            "cookie",
            "portcullis_session=0123456789abcdef0123456789abcdef0123456789abcdef",
        ),
        ("referer", "https://app.example.com/dashboard"),
        ("sec-fetch-mode", "navigate"),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    headers
}

fn observe(c: &mut Criterion) {
    let mmdb = database("asn.mmdb");
    let tsv = database("asn.tsv");
    let headers = request_headers();
    let mut group = c.benchmark_group("context");

    group.bench_function("baseline/copy_request_headers", |b| {
        b.iter(|| black_box(&headers).clone())
    });
    group.bench_function("baseline/siphash_user_agent", |b| {
        b.iter(|| {
            let mut hasher = DefaultHasher::new();
            black_box(USER_AGENT).hash(&mut hasher);
            hasher.finish()
        })
    });

    for (format, db) in [("mmdb", &mmdb), ("tsv", &tsv)] {
        let source = source(Arc::clone(db));
        let recorded = source.capture(ip("127.0.0.2"), Some(USER_AGENT));
        if format == "mmdb" {
            // The unchanged path never reaches the database: one format is enough.
            group.bench_function("observe/unchanged", |b| {
                b.iter(|| {
                    source.observe(
                        black_box(&recorded),
                        black_box(recorded.ip),
                        Some(USER_AGENT),
                    )
                })
            });
        }
        let moved = ip("127.0.0.3");
        group.bench_function(format!("observe/changed_ip_same_asn/{format}"), |b| {
            b.iter(|| source.observe(black_box(&recorded), black_box(moved), Some(USER_AGENT)))
        });
        for address in ["127.0.0.200", "2001:db8::1"] {
            let family = if address.contains(':') { "v6" } else { "v4" };
            let address = ip(address);
            group.bench_function(format!("lookup_number/{format}/{family}"), |b| {
                b.iter(|| db.lookup_number(black_box(address)))
            });
        }
        let address = ip("127.0.0.200");
        group.bench_function(format!("lookup/{format}/v4"), |b| {
            b.iter(|| db.lookup(black_box(address)))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = observe
}
criterion_main!(benches);
