//! The operator's IP→ASN database: which autonomous system (network
//! operator) an address belongs to.
//!
//! Formats, told apart by content rather than by file name:
//! - a MaxMind DB (`.mmdb`) with GeoLite2-ASN or GeoIP2-ISP style records
//!   (`autonomous_system_number`, `autonomous_system_organization`), read
//!   with the `maxminddb` crate and held in memory;
//! - the common TSV (`range_start  range_end  AS_number  country
//!   AS_description`, one range per line, as iptoasn.com publishes it).
//!
//! No database ships with Portcullis: the operator supplies one. A file that
//! does not load is an error from [`AsnDatabase::open`], never a surprise at
//! lookup. Lookups never allocate for the number alone
//! ([`AsnDatabase::lookup_number`]), which is what a request whose IP changed
//! needs first.

use std::fmt;
use std::io::Read;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use maxminddb::{geoip2, LookupResult, MaxMindDbError, PathElement, Reader};
use portcullis_session::Name;
use serde::{Deserialize, Serialize};

/// Larger than any published IP→ASN or ISP database (GeoIP2-ISP is tens of
/// MiB) by far, yet small enough that a wrong path (a disk image, a log)
/// is refused before it is read into memory.
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// The MaxMind DB format puts its metadata after this marker, in the last
/// 128 KiB of the file.
const MMDB_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";
const MMDB_METADATA_MAX: usize = 128 * 1024;

/// An autonomous system: its number and its organisation's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Asn {
    pub number: u32,
    pub organization: Name,
}

impl fmt::Display for Asn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AS{} {}", self.number, self.organization)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AsnError {
    #[error("cannot read ASN database {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ASN database {path} is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error(
        "ASN database {path} is neither a MaxMind DB (no metadata marker near its end: \
         truncated?) nor a UTF-8 TSV file"
    )]
    UnknownFormat { path: PathBuf },
    #[error("ASN database {path}, line {line}: {reason}")]
    Tsv {
        path: PathBuf,
        line: usize,
        reason: &'static str,
    },
    #[error("ASN database {path} is not a valid MaxMind DB: {source}")]
    Mmdb {
        path: PathBuf,
        source: MaxMindDbError,
    },
    #[error(
        "ASN database {path} (a {database_type} MaxMind DB) holds no ASN records: \
         expected autonomous_system_number, as GeoLite2-ASN or GeoIP2-ISP have"
    )]
    NotAsn {
        path: PathBuf,
        database_type: String,
    },
    #[error("ASN database {path} holds no ranges")]
    Empty { path: PathBuf },
}

/// Which format a database was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsnFormat {
    MaxMind,
    Tsv,
}

impl AsnFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxMind => "mmdb",
            Self::Tsv => "tsv",
        }
    }
}

/// A loaded database, immutable: a reload builds a new one.
#[derive(Debug)]
pub struct AsnDatabase {
    path: PathBuf,
    table: Table,
}

#[derive(Debug)]
enum Table {
    Tsv(Vec<Range>),
    MaxMind(MaxMind),
}

/// Addresses as IPv6 numbers (IPv4 mapped), so one sorted table serves
/// both families.
#[derive(Debug)]
struct Range {
    start: u128,
    end: u128,
    number: u32,
    organization: Name,
}

#[derive(Debug)]
struct MaxMind {
    reader: Reader<Vec<u8>>,
    /// Networks with an AS number, counted at load.
    networks: usize,
    /// An IPv4-only database answers no IPv6 address (the reader would call
    /// it an error).
    ipv6: bool,
    decode_warnings: RateLimited,
}

/// The part of a record the load checks: the organisation is skipped, not
/// decoded.
#[derive(Deserialize)]
struct NumberOnly {
    autonomous_system_number: Option<u32>,
}

/// What `lookup_number` reads: the one key, found by the reader without a
/// map deserialiser around it.
const NUMBER: &[PathElement<'static>] = &[PathElement::Key("autonomous_system_number")];

impl AsnDatabase {
    /// Reads the database at `path`, whichever format its content is.
    pub fn open(path: &Path) -> Result<Self, AsnError> {
        let bytes = read_bounded(path)?;
        Self::from_bytes(path, bytes)
    }

    /// A database from a file's content; `path` names it in errors and logs.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, AsnError> {
        if is_mmdb(&bytes) {
            return Self::from_mmdb(path, bytes);
        }
        let text = String::from_utf8(bytes).map_err(|_| AsnError::UnknownFormat {
            path: path.to_path_buf(),
        })?;
        Self::from_tsv(path, &text)
    }

    fn from_mmdb(path: &Path, bytes: Vec<u8>) -> Result<Self, AsnError> {
        let invalid = |source| AsnError::Mmdb {
            path: path.to_path_buf(),
            source,
        };
        let reader = Reader::from_source(bytes).map_err(invalid)?;
        // The whole tree and data section, once, so that corruption is this
        // error now rather than a lookup that fails in the middle of traffic.
        reader.verify().map_err(invalid)?;
        let mut networks = 0;
        for network in reader.networks(Default::default()).map_err(invalid)? {
            let record = network.and_then(|n| n.decode::<NumberOnly>());
            if let Some(NumberOnly {
                autonomous_system_number: Some(number),
            }) = record.map_err(invalid)?
            {
                networks += usize::from(number != 0);
            }
        }
        if networks == 0 {
            return Err(AsnError::NotAsn {
                path: path.to_path_buf(),
                database_type: reader.metadata().database_type.clone(),
            });
        }
        let ipv6 = reader.metadata().ip_version == 6;
        Ok(AsnDatabase {
            path: path.to_path_buf(),
            table: Table::MaxMind(MaxMind {
                reader,
                networks,
                ipv6,
                decode_warnings: RateLimited::default(),
            }),
        })
    }

    pub fn from_tsv(path: &Path, text: &str) -> Result<Self, AsnError> {
        let bad = |line: usize, reason| AsnError::Tsv {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let mut ranges = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split('\t');
            let (Some(start), Some(end), Some(number), Some(_country), Some(org)) = (
                fields.next(),
                fields.next(),
                fields.next(),
                fields.next(),
                fields.next(),
            ) else {
                return Err(bad(line_no, "expected 5 tab-separated fields"));
            };
            let start = key(start.parse().map_err(|_| bad(line_no, "bad range start"))?);
            let end = key(end.parse().map_err(|_| bad(line_no, "bad range end"))?);
            let number: u32 = number.parse().map_err(|_| bad(line_no, "bad AS number"))?;
            if start > end {
                return Err(bad(line_no, "range start after range end"));
            }
            // AS 0 is iptoasn's "not routed": no network to record.
            if number == 0 {
                continue;
            }
            ranges.push(Range {
                start,
                end,
                number,
                organization: Name::new(org.trim()),
            });
        }
        if ranges.is_empty() {
            return Err(AsnError::Empty {
                path: path.to_path_buf(),
            });
        }
        ranges.sort_by_key(|r| r.start);
        if ranges.windows(2).any(|w| w[0].end >= w[1].start) {
            return Err(bad(0, "overlapping ranges"));
        }
        Ok(AsnDatabase {
            path: path.to_path_buf(),
            table: Table::Tsv(ranges),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn format(&self) -> AsnFormat {
        match self.table {
            Table::Tsv(_) => AsnFormat::Tsv,
            Table::MaxMind(_) => AsnFormat::MaxMind,
        }
    }

    /// Ranges (TSV) or networks (MaxMind DB) that name an AS.
    pub fn len(&self) -> usize {
        match &self.table {
            Table::Tsv(ranges) => ranges.len(),
            Table::MaxMind(db) => db.networks,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The AS number of `ip`, without allocating. None for an address the
    /// database does not cover or whose record has no number.
    pub fn lookup_number(&self, ip: IpAddr) -> Option<u32> {
        match &self.table {
            Table::Tsv(ranges) => range(ranges, ip).map(|r| r.number),
            Table::MaxMind(db) => db
                .find(&self.path, ip, |found| found.decode_path::<u32>(NUMBER))
                .filter(|n| *n != 0),
        }
    }

    pub fn lookup(&self, ip: IpAddr) -> Option<Asn> {
        match &self.table {
            Table::Tsv(ranges) => range(ranges, ip).map(|r| Asn {
                number: r.number,
                organization: r.organization.clone(),
            }),
            Table::MaxMind(db) => {
                let record = db.find(&self.path, ip, |found| found.decode::<geoip2::Asn<'_>>())?;
                Some(Asn {
                    number: record.autonomous_system_number.filter(|n| *n != 0)?,
                    organization: Name::new(record.autonomous_system_organization.unwrap_or("")),
                })
            }
        }
    }
}

impl MaxMind {
    /// `read`'s answer for the record of `ip`; None for an address no
    /// network of the database holds.
    fn find<'a, T>(
        &'a self,
        path: &Path,
        ip: IpAddr,
        read: impl FnOnce(LookupResult<'a, Vec<u8>>) -> Result<Option<T>, MaxMindDbError>,
    ) -> Option<T> {
        // The reader finds IPv4 networks for IPv4 addresses (and through the
        // IPv4-compatible ::/96 subtree), not for ::ffff:a.b.c.d, which is
        // how a dual-stack listener reports an IPv4 client.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        if ip.is_ipv6() && !self.ipv6 {
            return None;
        }
        match self.reader.lookup(ip).and_then(read) {
            Ok(record) => record,
            Err(error) => {
                // Verified at load, so this is a reader limit or a bug, not a
                // client's doing; per request it would flood the log.
                self.decode_warnings.warn(path, &error);
                None
            }
        }
    }
}

/// At most one warning a minute; the ones held back are counted into the
/// next. An atomic rather than a lock: it is touched on the request path.
#[derive(Debug, Default)]
struct RateLimited {
    /// Seconds since the Unix epoch of the last warning; 0 before the first.
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimited {
    const EVERY_SECS: u64 = 60;

    fn warn(&self, path: &Path, error: &MaxMindDbError) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last.load(Ordering::Relaxed);
        let due = last == 0 || now >= last.saturating_add(Self::EVERY_SECS);
        if due
            && self
                .last
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
            tracing::warn!(
                asn.database = %path.display(),
                error = %error,
                suppressed,
                "ASN database record does not decode; the address counts as not covered"
            );
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn range(ranges: &[Range], ip: IpAddr) -> Option<&Range> {
    let key = key(ip);
    let after = ranges.partition_point(|r| r.start <= key);
    let range = ranges.get(after.checked_sub(1)?)?;
    (key <= range.end).then_some(range)
}

/// The file's bytes, refusing one over [`MAX_FILE_BYTES`] before reading it
/// (and one that grows past it while being read).
fn read_bounded(path: &Path) -> Result<Vec<u8>, AsnError> {
    let read_error = |source| AsnError::Read {
        path: path.to_path_buf(),
        source,
    };
    let too_large = |size| AsnError::TooLarge {
        path: path.to_path_buf(),
        size,
        limit: MAX_FILE_BYTES,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let size = file.metadata().map_err(read_error)?.len();
    if size > MAX_FILE_BYTES {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    let read = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if read > MAX_FILE_BYTES {
        return Err(too_large(read));
    }
    Ok(bytes)
}

fn is_mmdb(bytes: &[u8]) -> bool {
    let tail = bytes
        .len()
        .saturating_sub(MMDB_METADATA_MAX + MMDB_MARKER.len());
    bytes
        .get(tail..)
        .is_some_and(|tail| tail.windows(MMDB_MARKER.len()).any(|w| w == MMDB_MARKER))
}

fn key(ip: IpAddr) -> u128 {
    let v6: Ipv6Addr = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    u128::from(v6)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = "# two networks\n\
        192.0.2.0\t192.0.2.255\t64500\tZZ\tEXAMPLE-NET-A\n\
        198.51.100.0\t198.51.100.127\t64501\tZZ\tEXAMPLE-NET-B\n\
        198.51.100.128\t198.51.100.255\t0\tNone\tNot routed\n\
        2001:db8::\t2001:db8:ffff:ffff:ffff:ffff:ffff:ffff\t64501\tZZ\tEXAMPLE-NET-B\n";

    fn db() -> AsnDatabase {
        AsnDatabase::from_tsv(Path::new("fixture.tsv"), FIXTURE).expect("fixture loads")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    #[test]
    fn addresses_map_to_their_network() {
        let db = db();
        assert_eq!(db.lookup_number(ip("192.0.2.9")), Some(64500));
        assert_eq!(db.lookup_number(ip("::ffff:192.0.2.9")), Some(64500));
        assert_eq!(db.lookup_number(ip("198.51.100.1")), Some(64501));
        assert_eq!(db.lookup_number(ip("2001:db8::7")), Some(64501));
        assert_eq!(db.lookup_number(ip("198.51.100.200")), None);
        assert_eq!(db.lookup_number(ip("203.0.113.1")), None);
        assert_eq!(
            db.lookup(ip("198.51.100.1"))
                .map(|a| a.to_string())
                .as_deref(),
            Some("AS64501 EXAMPLE-NET-B")
        );
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/asn")
            .join(name)
    }

    fn open(name: &str) -> AsnDatabase {
        AsnDatabase::open(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn open_err(name: &str) -> AsnError {
        AsnDatabase::open(&fixture(name)).expect_err(name)
    }

    #[test]
    fn the_format_comes_from_the_content() {
        assert_eq!(open("asn.mmdb").format(), AsnFormat::MaxMind);
        assert_eq!(open("asn.tsv").format(), AsnFormat::Tsv);
        // A MaxMind DB under any name is still one.
        let dir = std::env::temp_dir().join(format!("portcullis-asn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let renamed = dir.join("networks.tsv");
        std::fs::copy(fixture("asn.mmdb"), &renamed).expect("copy");
        let db = AsnDatabase::open(&renamed).expect("renamed mmdb loads");
        assert_eq!(db.format(), AsnFormat::MaxMind);
        assert_eq!(db.path(), renamed);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn mmdb_and_tsv_fixtures_give_the_same_answers() {
        let low = Some((64500, "Example Loopback Low"));
        let high = Some((64501, "Example Loopback High"));
        let cases = [
            ("127.0.0.2", low),
            ("127.0.0.127", low),
            ("127.0.0.128", high),
            ("127.0.0.200", high),
            ("192.0.2.77", low),
            ("2001:db8::1", high),
            ("2001:db8:ffff::1", high),
            // IPv4-mapped, as a dual-stack listener reports IPv4 clients.
            ("::ffff:127.0.0.2", low),
            ("::ffff:127.0.0.200", high),
            ("::ffff:192.0.2.1", low),
            // Covered by no network.
            ("127.0.1.1", None),
            ("10.0.0.1", None),
            ("2001:db9::1", None),
            ("::1", None),
            // A record without a number (mmdb) or AS 0 (TSV).
            ("198.51.100.9", None),
        ];
        for name in ["asn.mmdb", "asn.tsv"] {
            let db = open(name);
            assert_eq!(db.len(), 4, "{name}");
            for (address, expected) in cases {
                let found = db
                    .lookup(ip(address))
                    .map(|a| (a.number, a.organization.to_string()));
                assert_eq!(
                    found,
                    expected.map(|(n, o)| (n, o.to_string())),
                    "{name}: {address}"
                );
                assert_eq!(
                    db.lookup_number(ip(address)),
                    expected.map(|(n, _)| n),
                    "{name}: {address}"
                );
            }
        }
    }

    #[test]
    fn an_ipv4_only_mmdb_covers_no_ipv6_address() {
        let db = open("asn-ipv4.mmdb");
        assert_eq!(db.lookup_number(ip("127.0.0.2")), Some(64500));
        assert_eq!(db.lookup_number(ip("::ffff:127.0.0.200")), Some(64501));
        assert_eq!(db.lookup_number(ip("2001:db8::1")), None);
        assert_eq!(db.lookup(ip("2001:db8::1")), None);
    }

    #[test]
    fn unusable_files_are_refused_at_open_naming_the_file() {
        let corrupt = open_err("corrupt.mmdb");
        assert!(matches!(corrupt, AsnError::Mmdb { .. }), "{corrupt:?}");
        let truncated = open_err("truncated.mmdb");
        assert!(
            matches!(truncated, AsnError::UnknownFormat { .. }),
            "{truncated:?}"
        );
        let city = open_err("not-asn.mmdb");
        assert!(
            matches!(&city, AsnError::NotAsn { database_type, .. } if database_type == "GeoLite2-City"),
            "{city:?}"
        );
        let missing = open_err("no-such-file.mmdb");
        assert!(matches!(missing, AsnError::Read { .. }), "{missing:?}");
        for (name, err) in [
            ("corrupt.mmdb", corrupt),
            ("truncated.mmdb", truncated),
            ("not-asn.mmdb", city),
            ("no-such-file.mmdb", missing),
        ] {
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn empty_and_random_files_are_refused() {
        let path = Path::new("upload.bin");
        let empty = AsnDatabase::from_bytes(path, Vec::new()).expect_err("empty");
        assert!(matches!(empty, AsnError::Empty { .. }), "{empty:?}");
        // Deterministic noise (xorshift): not UTF-8, no MaxMind marker.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        let random = AsnDatabase::from_bytes(path, noise.clone()).expect_err("noise");
        assert!(
            matches!(random, AsnError::UnknownFormat { .. }),
            "{random:?}"
        );
        // Noise with the marker and no valid metadata after it.
        let mut fake = noise;
        fake.extend_from_slice(MMDB_MARKER);
        fake.extend_from_slice(&[0xe9, 0x01, 0x02]);
        let fake = AsnDatabase::from_bytes(path, fake).expect_err("fake marker");
        assert!(matches!(fake, AsnError::Mmdb { .. }), "{fake:?}");
    }

    #[test]
    fn every_truncation_of_the_mmdb_is_an_error_not_a_panic() {
        let good = std::fs::read(fixture("asn.mmdb")).expect("fixture");
        for cut in 0..good.len() {
            let bytes = good.get(..cut).expect("in bounds").to_vec();
            assert!(
                AsnDatabase::from_bytes(Path::new("cut.mmdb"), bytes).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn every_flipped_byte_of_the_mmdb_loads_or_is_refused_without_panic() {
        let good = std::fs::read(fixture("asn.mmdb")).expect("fixture");
        for at in 0..good.len() {
            let mut bytes = good.clone();
            if let Some(byte) = bytes.get_mut(at) {
                *byte ^= 0x5a;
            }
            // Either outcome is fine; a loaded database must answer lookups.
            if let Ok(db) = AsnDatabase::from_bytes(Path::new("flipped.mmdb"), bytes) {
                for address in ["127.0.0.2", "127.0.0.200", "2001:db8::1", "10.0.0.1"] {
                    let _ = db.lookup(ip(address));
                    let _ = db.lookup_number(ip(address));
                }
            }
        }
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        for (text, expected) in [
            ("1.2.3.4\t1.2.3.5\t7\n", "expected 5"),
            ("1.2.3.x\t1.2.3.5\t7\tZZ\tA\n", "bad range start"),
            ("1.2.3.9\t1.2.3.5\t7\tZZ\tA\n", "start after"),
            ("1.2.3.4\t1.2.3.5\tAS7\tZZ\tA\n", "bad AS number"),
            ("", "no ranges"),
            (
                "1.0.0.0\t1.0.0.9\t7\tZZ\tA\n1.0.0.5\t1.0.0.20\t8\tZZ\tB\n",
                "overlapping",
            ),
        ] {
            let err = AsnDatabase::from_tsv(Path::new("x.tsv"), text)
                .expect_err(text)
                .to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
