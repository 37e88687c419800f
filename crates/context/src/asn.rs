//! The operator's IP→ASN database: which autonomous system (network
//! operator) an address belongs to.
//!
//! Formats: the common TSV (`range_start  range_end  AS_number  country
//! AS_description`, one range per line, as iptoasn.com publishes it).
//! Lookups never allocate for the number alone ([`AsnDatabase::lookup_number`]),
//! which is what a request whose IP changed needs first.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};

use portcullis_session::Name;
use serde::{Deserialize, Serialize};

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
    #[error("ASN database {path}, line {line}: {reason}")]
    Tsv {
        path: PathBuf,
        line: usize,
        reason: &'static str,
    },
    #[error("ASN database {path} holds no ranges")]
    Empty { path: PathBuf },
}

/// A loaded database, immutable: a reload builds a new one.
#[derive(Debug)]
pub struct AsnDatabase {
    path: PathBuf,
    ranges: Vec<Range>,
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

impl AsnDatabase {
    pub fn open(path: &Path) -> Result<Self, AsnError> {
        let text = std::fs::read_to_string(path).map_err(|source| AsnError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_tsv(path, &text)
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
            ranges,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn lookup_number(&self, ip: IpAddr) -> Option<u32> {
        self.range(ip).map(|r| r.number)
    }

    pub fn lookup(&self, ip: IpAddr) -> Option<Asn> {
        self.range(ip).map(|r| Asn {
            number: r.number,
            organization: r.organization.clone(),
        })
    }

    fn range(&self, ip: IpAddr) -> Option<&Range> {
        let key = key(ip);
        let after = self.ranges.partition_point(|r| r.start <= key);
        let range = self.ranges.get(after.checked_sub(1)?)?;
        (key <= range.end).then_some(range)
    }
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
