//! The per-request paths allocate nothing: an ASN number lookup in either
//! format, and observing a request whose context did not change. Its own
//! test binary, because a counting global allocator sees every thread of
//! the process, and one test per binary keeps other tests' allocations out
//! of the count.

use std::alloc::System;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use portcullis_context::{AsnDatabase, ContextSource};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

/// The system allocator, counting (`stats_alloc`, so this crate keeps
/// `unsafe_code` forbidden).
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/asn")
        .join(name)
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

const FIREFOX: &[u8] = b"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

#[test]
fn request_path_lookups_do_not_allocate() {
    // The counter is live: a zero below means no allocation, not no count.
    let region = Region::new(GLOBAL);
    let probe = std::hint::black_box(vec![0_u8; 16]);
    assert!(region.change().allocations > 0);
    drop(probe);

    for name in ["asn.mmdb", "asn.tsv"] {
        let db = Arc::new(AsnDatabase::open(&fixture(name)).expect("fixture loads"));
        let addresses = [
            ip("127.0.0.2"),
            ip("::ffff:127.0.0.200"),
            ip("2001:db8::1"),
            ip("10.0.0.1"),
        ];
        let region = Region::new(GLOBAL);
        let mut found = 0;
        for address in addresses {
            found += u32::from(db.lookup_number(address).is_some());
        }
        let change = region.change();
        assert_eq!(found, 3, "{name}");
        assert_eq!(change.allocations, 0, "{name}: lookup_number allocated");

        let source = ContextSource::new(Some(db), Vec::new());
        let recorded = source.capture(ip("127.0.0.2"), Some(FIREFOX));
        let region = Region::new(GLOBAL);
        let unchanged = source.observe(&recorded, ip("127.0.0.2"), Some(FIREFOX));
        let change = region.change();
        assert!(unchanged.is_none(), "{name}");
        assert_eq!(
            change.allocations, 0,
            "{name}: an unchanged request allocated"
        );
    }
}
