//! Network zones: named sets of CIDRs that policy rules use to ask "is the
//! client on a known network?", and that a session context records.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};

/// A named list of networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    name: String,
    nets: Vec<IpNet>,
}

impl Zone {
    /// Builds a zone. IPv4-mapped IPv6 networks (`::ffff:a.b.c.d/n`, n >= 96)
    /// are stored as their IPv4 equivalent so native IPv4 clients match them.
    pub fn new(name: impl Into<String>, nets: impl IntoIterator<Item = IpNet>) -> Self {
        Self {
            name: name.into(),
            nets: nets.into_iter().map(canonical_net).collect(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    /// Whether `ip` is inside any of the zone's networks. A dual-stack
    /// listener reports IPv4 clients as `::ffff:a.b.c.d`; those must match
    /// IPv4 CIDRs, so both the literal and the unmapped address are tried.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let unmapped = unmap(ip);
        self.nets
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&unmapped))
    }
}

/// Parses one zone entry: a CIDR, or a bare address meaning a single host.
/// Host bits are cleared ("10.1.2.3/8" means 10.0.0.0/8), as most firewalls do.
pub fn parse_cidr(value: &str) -> Result<IpNet, ipnet::AddrParseError> {
    let value = value.trim();
    match value.parse::<IpNet>() {
        Ok(net) => Ok(net.trunc()),
        Err(err) => value.parse::<IpAddr>().map(IpNet::from).map_err(|_| err),
    }
}

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn canonical_net(net: IpNet) -> IpNet {
    let net = net.trunc();
    if let IpNet::V6(v6) = net {
        if v6.prefix_len() >= 96 {
            if let Some(v4) = v6.network().to_ipv4_mapped() {
                if let Ok(v4net) = Ipv4Net::new(v4, v6.prefix_len() - 96) {
                    return IpNet::V4(v4net);
                }
            }
        }
    }
    net
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    fn zone(cidrs: &[&str]) -> Zone {
        Zone::new(
            "z",
            cidrs
                .iter()
                .map(|c| parse_cidr(c).expect("test cidr parses")),
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test ip parses")
    }

    #[test]
    fn matches_ipv4_ipv6_and_mapped_addresses() {
        let office = zone(&["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]);
        let cases = [
            ("10.0.0.0", true),
            ("10.255.255.255", true),
            ("11.0.0.1", false),
            ("::ffff:10.1.2.3", true),
            ("::ffff:11.1.2.3", false),
            ("2001:db8::1", true),
            ("2001:db8:ffff:ffff::1", true),
            ("2001:db9::1", false),
            ("192.0.2.7", true),
            ("192.0.2.8", false),
            ("::ffff:192.0.2.7", true),
            ("::1", false),
            ("127.0.0.1", false),
        ];
        for (addr, expected) in cases {
            assert_eq!(office.contains(ip(addr)), expected, "{addr}");
        }
    }

    #[test]
    fn mapped_cidr_matches_native_ipv4_clients() {
        let z = zone(&["::ffff:10.0.0.0/104"]);
        assert_eq!(z.nets(), &[parse_cidr("10.0.0.0/8").expect("cidr")]);
        assert!(z.contains(ip("10.9.8.7")));
        assert!(z.contains(ip("::ffff:10.9.8.7")));
        assert!(!z.contains(ip("11.0.0.1")));
    }

    #[test]
    fn ipv6_catch_all_still_covers_mapped_literals() {
        let z = zone(&["::/0"]);
        assert!(z.contains(ip("::ffff:10.0.0.1")));
        assert!(z.contains(ip("2001:db8::1")));
        assert!(!z.contains(ip("10.0.0.1")));
    }

    #[test]
    fn parse_cidr_accepts_hosts_and_clears_host_bits() {
        assert_eq!(
            parse_cidr("10.1.2.3/8").expect("cidr").to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_cidr(" 10.1.2.3 ").expect("ip").to_string(),
            "10.1.2.3/32"
        );
        assert_eq!(
            parse_cidr("2001:db8::1").expect("ip").to_string(),
            "2001:db8::1/128"
        );
        for bad in ["", "10.0.0.0/33", "office", "10.0.0/8", "2001:db8::/129"] {
            assert!(parse_cidr(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn policy_zone_mapped_and_native_ipv4_agree(
            addr in any::<u32>(),
            net in any::<u32>(),
            prefix in 0u8..=32,
        ) {
            let net = Ipv4Net::new(Ipv4Addr::from(net), prefix).expect("prefix <= 32");
            let z = Zone::new("z", [IpNet::V4(net)]);
            let v4 = Ipv4Addr::from(addr);
            let mapped: Ipv6Addr = v4.to_ipv6_mapped();
            prop_assert_eq!(z.contains(IpAddr::V4(v4)), z.contains(IpAddr::V6(mapped)));
            prop_assert_eq!(z.contains(IpAddr::V4(v4)), net.contains(&v4));
        }
    }
}
