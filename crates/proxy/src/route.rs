//! (host, port, path prefix) → app. Built once per plan; lookups borrow.

use std::collections::HashMap;

/// Route table for one plan. Hosts are matched exactly (case-insensitive),
/// then the longest path prefix wins.
#[derive(Debug, Default)]
pub struct RouteTable {
    hosts: HashMap<String, Vec<PortRoutes>>,
}

#[derive(Debug)]
struct PortRoutes {
    port: u16,
    /// Sorted longest prefix first.
    prefixes: Vec<(String, usize)>,
}

impl RouteTable {
    pub fn insert(&mut self, host: &str, port: u16, prefix: &str, app: usize) {
        let ports = self.hosts.entry(host.to_ascii_lowercase()).or_default();
        let idx = match ports.iter().position(|p| p.port == port) {
            Some(i) => i,
            None => {
                ports.push(PortRoutes {
                    port,
                    prefixes: Vec::new(),
                });
                ports.len() - 1
            }
        };
        let prefixes = &mut ports[idx].prefixes;
        prefixes.push((prefix.to_string(), app));
        prefixes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
    }

    /// `authority` is the request's `Host` (or `:authority`); a missing port
    /// means `default_port`.
    pub fn lookup(&self, authority: &str, default_port: u16, path: &str) -> Option<usize> {
        let (host, port) = split_authority(authority, default_port)?;
        let ports = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            self.hosts.get(&host.to_ascii_lowercase())
        } else {
            self.hosts.get(host)
        }?;
        let routes = ports.iter().find(|p| p.port == port)?;
        routes
            .prefixes
            .iter()
            .find(|(prefix, _)| under(path, prefix))
            .map(|(_, app)| *app)
    }

    /// Whether any app is served on this host name (any port).
    pub fn knows_host(&self, host: &str) -> bool {
        self.hosts.contains_key(&host.to_ascii_lowercase())
    }
}

/// True when `path` is `base` or below it, by whole segments: `/admin`
/// covers `/admin` and `/admin/x`, never `/administrator`; `/` covers all.
/// The one rule for app prefixes, access rules and RelayState alike.
pub fn under(path: &str, base: &str) -> bool {
    base == "/"
        || path
            .strip_prefix(base)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Splits `host[:port]` or `[v6][:port]`; `None` when the port is not a number.
pub fn split_authority(authority: &str, default_port: u16) -> Option<(&str, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, port.parse().ok()?)),
        None => Some((authority, default_port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let mut t = RouteTable::default();
        t.insert("apps.test", 443, "/", 0);
        t.insert("apps.test", 443, "/wiki", 1);
        t.insert("apps.test", 443, "/wiki/admin", 2);
        t.insert("apps.test", 8443, "/", 3);
        t
    }

    #[test]
    fn paths_match_whole_segments() {
        assert!(under("/admin", "/admin"));
        assert!(under("/admin/x", "/admin"));
        assert!(!under("/administrator", "/admin"));
        assert!(under("/anything", "/"));
    }

    #[test]
    fn longest_prefix_wins() {
        let t = table();
        assert_eq!(t.lookup("apps.test", 443, "/"), Some(0));
        assert_eq!(t.lookup("apps.test", 443, "/wiki"), Some(1));
        assert_eq!(t.lookup("apps.test", 443, "/wiki/page"), Some(1));
        assert_eq!(t.lookup("apps.test", 443, "/wiki/admin/x"), Some(2));
        assert_eq!(t.lookup("APPS.test:443", 443, "/wikipedia"), Some(0));
    }

    #[test]
    fn ports_and_hosts_are_distinct() {
        let t = table();
        assert_eq!(t.lookup("apps.test:8443", 443, "/wiki"), Some(3));
        assert_eq!(t.lookup("other.test", 443, "/"), None);
        assert_eq!(t.lookup("apps.test:9999", 443, "/"), None);
        assert_eq!(t.lookup("apps.test:x", 443, "/"), None);
        assert_eq!(split_authority("[::1]:8443", 443), Some(("::1", 8443)));
        assert_eq!(split_authority("[::1]", 443), Some(("::1", 443)));
    }
}
