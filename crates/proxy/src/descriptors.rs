//! File descriptors, planned for: the process raises its soft
//! `RLIMIT_NOFILE` to the hard limit at start, and the public listeners
//! shed new connections before the descriptors run out, keeping some back
//! for everything else (upstream connections, the management listener, log
//! files). At the usual default of 1,024 a few hundred HTTP/2 clients used
//! to fill the table; then new clients hung and `/healthz` itself could not
//! be reached.

use std::io;

/// The descriptor limit of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    pub soft: u64,
    pub hard: u64,
}

/// Descriptors kept out of the connection budget: the listening sockets
/// (one copy per worker), each runtime's event and timer descriptors,
/// health checks, log and System Log files, a Redis link and the
/// management listener's own budget.
const RESERVED: u64 = 256;

/// A proxied connection holds its own descriptor and, while a request is in
/// flight (or a tunnel is open), one toward its upstream.
const PER_CONNECTION: u64 = 2;

/// The fewest connections an automatic budget allows, however low the
/// limit: below this the gateway cannot serve anyway.
const MIN_BUDGET: usize = 16;

/// Connections the management listener accepts at once, beside the public
/// budget, so that health checks and scrapes get through a flood.
pub const ADMIN_MAX_CONNECTIONS: usize = 32;

/// Raises the soft limit to the hard one (the kernel lets any process do
/// that) and returns the limit now in force.
pub fn raise_limit() -> io::Result<NofileLimit> {
    rlimit::increase_nofile_limit(u64::MAX)?;
    current()
}

pub fn current() -> io::Result<NofileLimit> {
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    Ok(NofileLimit { soft, hard })
}

/// The public connection budget when `[server] max_connections` is unset:
/// what the soft limit leaves after the reserve, at two descriptors per
/// connection.
pub fn budget(limit: NofileLimit) -> usize {
    let usable = limit.soft.saturating_sub(RESERVED) / PER_CONNECTION;
    usize::try_from(usable)
        .unwrap_or(usize::MAX)
        .max(MIN_BUDGET)
}

/// Descriptors a budget of `connections` needs at most, to warn when a
/// configured `max_connections` cannot be met.
pub fn needed(connections: usize) -> u64 {
    u64::try_from(connections)
        .unwrap_or(u64::MAX)
        .saturating_mul(PER_CONNECTION)
        .saturating_add(RESERVED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_leaves_a_reserve_and_two_descriptors_per_connection() {
        let budget = |soft| budget(NofileLimit { soft, hard: soft });
        assert_eq!(budget(1024), 384);
        assert_eq!(budget(65_536), 32_640);
        assert_eq!(budget(100), MIN_BUDGET);
        assert!(needed(budget(65_536)) <= 65_536);
    }

    #[test]
    fn raising_reaches_the_hard_limit() {
        let raised = raise_limit().expect("raise");
        assert_eq!(raised.soft, raised.hard);
    }
}
