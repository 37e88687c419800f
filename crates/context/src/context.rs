//! A session's recorded context and the comparison every request makes
//! with it.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use portcullis_session::Name;
use serde::{Deserialize, Serialize};

use crate::asn::{Asn, AsnDatabase};
use crate::device::Device;
use crate::zone::Zone;

/// What a session knows of where and on what its client was when it last
/// checked: at sign-in, then after every change it was told of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionContext {
    pub ip: IpAddr,
    /// None without an ASN database, or for an address it does not cover.
    pub asn: Option<Asn>,
    /// The network zones the IP is in, in the policy file's order.
    pub zones: Box<[Name]>,
    pub device: Device,
    /// A hash of the exact user-agent bytes: an unchanged header is told
    /// apart without classifying it again. Not the header itself, which
    /// the context does not keep.
    #[serde(rename = "userAgentHash")]
    pub user_agent_hash: u64,
}

/// One attribute of a context, as `bind` and events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Attribute {
    Ip,
    Asn,
    Zone,
    Device,
}

impl Attribute {
    pub const ALL: [Attribute; 4] = [Self::Ip, Self::Asn, Self::Zone, Self::Device];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::Asn => "asn",
            Self::Zone => "zone",
            Self::Device => "device",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The attribute's value in `context`, as events show it.
    pub fn show(self, context: &SessionContext) -> String {
        match self {
            Self::Ip => context.ip.to_string(),
            Self::Asn => context
                .asn
                .as_ref()
                .map_or_else(|| "unknown".to_string(), |asn| asn.to_string()),
            Self::Zone if context.zones.is_empty() => "none".to_string(),
            Self::Zone => context.zones.join(","),
            Self::Device => context.device.to_string(),
        }
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Attribute {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|a| a.as_str() == text).ok_or(())
    }
}

/// A set of attributes: what changed, or what `bind` makes a violation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Changes(u8);

impl Changes {
    pub const NONE: Changes = Changes(0);

    pub fn of(attributes: impl IntoIterator<Item = Attribute>) -> Self {
        Changes(attributes.into_iter().fold(0, |bits, a| bits | a.bit()))
    }

    pub fn contains(self, attribute: Attribute) -> bool {
        self.0 & attribute.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The attributes in both sets.
    pub fn intersection(self, other: Changes) -> Changes {
        Changes(self.0 & other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Attribute> {
        Attribute::ALL
            .into_iter()
            .filter(move |a| self.contains(*a))
    }

    fn insert(&mut self, attribute: Attribute) {
        self.0 |= attribute.bit();
    }
}

/// A request's context that differs from the session's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The request's context, to record in the session.
    pub current: SessionContext,
    /// Which attributes differ. Empty when only the user-agent's exact text
    /// changed (a browser update) while its family and OS did not: the
    /// session should record `current` silently.
    pub changes: Changes,
}

/// How contexts are told: the ASN database and the zones, swapped whole on
/// reload. Cheap to clone.
#[derive(Clone, Default)]
pub struct ContextSource {
    asn: Option<Arc<AsnDatabase>>,
    zones: Arc<[Zone]>,
}

impl ContextSource {
    pub fn new(asn: Option<Arc<AsnDatabase>>, zones: Vec<Zone>) -> Self {
        ContextSource {
            asn,
            zones: zones.into(),
        }
    }

    pub fn asn_database(&self) -> Option<&AsnDatabase> {
        self.asn.as_deref()
    }

    /// The context of a client at `ip` sending `user_agent`.
    pub fn capture(&self, ip: IpAddr, user_agent: Option<&[u8]>) -> SessionContext {
        SessionContext {
            ip,
            asn: self.asn.as_ref().and_then(|db| db.lookup(ip)),
            zones: self.zones_of(ip),
            device: Device::from_user_agent(user_agent),
            user_agent_hash: user_agent_hash(user_agent),
        }
    }

    /// Compares a request with the session's recorded context: `None` when
    /// nothing differs, which costs an address comparison and a hash of the
    /// user-agent bytes.
    pub fn observe(
        &self,
        recorded: &SessionContext,
        ip: IpAddr,
        user_agent: Option<&[u8]>,
    ) -> Option<Observed> {
        let hash = user_agent_hash(user_agent);
        if ip == recorded.ip && hash == recorded.user_agent_hash {
            return None;
        }
        let mut changes = Changes::NONE;
        let (asn, zones) = if ip == recorded.ip {
            (recorded.asn.clone(), recorded.zones.clone())
        } else {
            changes.insert(Attribute::Ip);
            let asn = match (&self.asn, &recorded.asn) {
                // The same network as before: keep the recorded copy rather
                // than decode the organisation again.
                (Some(db), Some(old)) if db.lookup_number(ip) == Some(old.number) => {
                    Some(old.clone())
                }
                (Some(db), _) => db.lookup(ip),
                (None, _) => None,
            };
            if asn.as_ref().map(|a| a.number) != recorded.asn.as_ref().map(|a| a.number) {
                changes.insert(Attribute::Asn);
            }
            let zones = self.zones_of(ip);
            if zones != recorded.zones {
                changes.insert(Attribute::Zone);
            }
            (asn, zones)
        };
        let device = if hash == recorded.user_agent_hash {
            recorded.device
        } else {
            Device::from_user_agent(user_agent)
        };
        if device != recorded.device {
            changes.insert(Attribute::Device);
        }
        Some(Observed {
            current: SessionContext {
                ip,
                asn,
                zones,
                device,
                user_agent_hash: hash,
            },
            changes,
        })
    }

    fn zones_of(&self, ip: IpAddr) -> Box<[Name]> {
        self.zones
            .iter()
            .filter(|zone| zone.contains(ip))
            .map(|zone| Name::new(zone.name()))
            .collect()
    }
}

/// FNV-1a: stable across processes and releases (the hash is stored with
/// the session, which a shared store hands to other nodes), and a collision
/// buys nothing: a client that wants to look unchanged can send the same
/// header anyway.
fn user_agent_hash(user_agent: Option<&[u8]>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    match user_agent {
        None => 0,
        Some(bytes) => bytes.iter().fold(OFFSET, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::parse_cidr;

    const FIREFOX_LINUX: &[u8] =
        b"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
    const FIREFOX_LINUX_NEWER: &[u8] =
        b"Mozilla/5.0 (X11; Linux x86_64; rv:134.0) Gecko/20100101 Firefox/134.0";
    const CHROME_WINDOWS: &[u8] = b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    fn source() -> ContextSource {
        let office = Zone::new("office", [parse_cidr("10.0.0.0/8").expect("cidr")]);
        let lab = Zone::new("lab", [parse_cidr("10.1.0.0/16").expect("cidr")]);
        ContextSource::new(None, vec![office, lab])
    }

    #[test]
    fn the_same_client_is_no_change() {
        let source = source();
        let recorded = source.capture(ip("10.1.2.3"), Some(FIREFOX_LINUX));
        assert_eq!(
            source.observe(&recorded, ip("10.1.2.3"), Some(FIREFOX_LINUX)),
            None
        );
        let anonymous = source.capture(ip("10.1.2.3"), None);
        assert_eq!(source.observe(&anonymous, ip("10.1.2.3"), None), None);
    }

    #[test]
    fn each_changed_attribute_is_named() {
        let source = source();
        let recorded = source.capture(ip("10.1.2.3"), Some(FIREFOX_LINUX));
        assert_eq!(&*recorded.zones, &[Name::new("office"), Name::new("lab")]);

        let moved = source
            .observe(&recorded, ip("10.1.2.4"), Some(FIREFOX_LINUX))
            .expect("new IP");
        assert_eq!(moved.changes, Changes::of([Attribute::Ip]));

        let left_lab = source
            .observe(&recorded, ip("10.2.0.1"), Some(FIREFOX_LINUX))
            .expect("new zone");
        assert_eq!(
            left_lab.changes,
            Changes::of([Attribute::Ip, Attribute::Zone])
        );
        assert_eq!(Attribute::Zone.show(&left_lab.current), "office");

        let other_device = source
            .observe(&recorded, ip("10.1.2.3"), Some(CHROME_WINDOWS))
            .expect("new device");
        assert_eq!(other_device.changes, Changes::of([Attribute::Device]));
    }

    #[test]
    fn a_browser_update_is_recorded_without_a_change() {
        let source = source();
        let recorded = source.capture(ip("10.1.2.3"), Some(FIREFOX_LINUX));
        let updated = source
            .observe(&recorded, ip("10.1.2.3"), Some(FIREFOX_LINUX_NEWER))
            .expect("the header differs");
        assert!(updated.changes.is_empty());
        assert_eq!(
            source.observe(&updated.current, ip("10.1.2.3"), Some(FIREFOX_LINUX_NEWER)),
            None
        );
    }

    #[test]
    fn sets_intersect_and_name_attributes() {
        let bind = Changes::of([Attribute::Asn, Attribute::Device]);
        let changed = Changes::of([Attribute::Ip, Attribute::Asn]);
        assert_eq!(bind.intersection(changed), Changes::of([Attribute::Asn]));
        assert_eq!(
            changed.iter().collect::<Vec<_>>(),
            vec![Attribute::Ip, Attribute::Asn]
        );
        for attribute in Attribute::ALL {
            assert_eq!(attribute.as_str().parse(), Ok(attribute));
        }
        assert!("port".parse::<Attribute>().is_err());
    }

    #[test]
    fn a_context_round_trips_through_json() {
        let recorded = source().capture(ip("10.1.2.3"), Some(CHROME_WINDOWS));
        let json = serde_json::to_string(&recorded).expect("serialises");
        let back: SessionContext = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, recorded);
    }
}
