//! How a session's secret is written into its cookie and read back: bare
//! ([`PlainCookies`], one process); followed by the node that holds it
//! ([`NodeCookies`], a sticky cluster), so a node can tell a session it
//! never had from one another node owns; or followed by a MAC under the
//! cluster's key ring (`redis::SealKeys`), so a node refuses a forged or
//! guessed value before it costs a round trip to the shared store.

use crate::error::SessionError;
use crate::id::SessionSecret;

/// Writes and reads session cookie values.
pub trait CookieCodec: Send + Sync {
    /// The cookie value for `secret`.
    fn encode(&self, secret: &SessionSecret) -> String;

    /// The secret in a presented cookie value; `Malformed` for anything
    /// this codec did not write.
    fn decode(&self, value: &str) -> Result<SessionSecret, SessionError>;
}

/// The bare secret: 43 base64url characters.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainCookies;

impl CookieCodec for PlainCookies {
    fn encode(&self, secret: &SessionSecret) -> String {
        secret.expose().to_owned()
    }

    fn decode(&self, value: &str) -> Result<SessionSecret, SessionError> {
        SessionSecret::parse(value)
    }
}

/// `<secret>.<node id>`: a sticky cluster's sessions live on the node that
/// made them, and say so. A value naming another node is refused as
/// [`SessionError::OtherNode`] without a store lookup (its owner is down or
/// the balancer moved the browser), and a balancer that cannot insert its
/// own cookie can route on the suffix.
#[derive(Debug, Clone)]
pub struct NodeCookies {
    node: String,
}

impl NodeCookies {
    /// Node ids are `[a-z0-9-]` (the config checks), so `.` never occurs
    /// in one.
    pub fn new(node: impl Into<String>) -> Self {
        Self { node: node.into() }
    }
}

impl CookieCodec for NodeCookies {
    fn encode(&self, secret: &SessionSecret) -> String {
        format!("{}.{}", secret.expose(), self.node)
    }

    fn decode(&self, value: &str) -> Result<SessionSecret, SessionError> {
        let (secret, node) = value.split_once('.').ok_or(SessionError::Malformed)?;
        let secret = SessionSecret::parse(secret)?;
        if node == self.node {
            return Ok(secret);
        }
        let plausible = (1..=32).contains(&node.len())
            && node
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if plausible {
            Err(SessionError::OtherNode {
                node: node.to_owned(),
            })
        } else {
            Err(SessionError::Malformed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_cookies_name_their_node_and_refuse_others() {
        let a = NodeCookies::new("gw-a");
        let b = NodeCookies::new("gw-b");
        let secret = SessionSecret::generate();
        let value = a.encode(&secret);
        assert!(value.ends_with(".gw-a"), "{value}");
        assert_eq!(
            a.decode(&value).map(|s| s.hash()),
            Ok(secret.hash()),
            "its own node reads it"
        );
        assert_eq!(
            b.decode(&value).map(|s| s.hash()),
            Err(SessionError::OtherNode {
                node: "gw-a".into()
            })
        );
        for bad in [
            secret.expose().to_owned(),
            format!("{}.", secret.expose()),
            format!("{}.GW-A", secret.expose()),
            format!("{}.gw-a.x", secret.expose()),
            format!("{}.gw-a", &secret.expose()[1..]),
            ".gw-a".to_owned(),
        ] {
            assert_eq!(
                a.decode(&bad).map(|s| s.hash()),
                Err(SessionError::Malformed),
                "{bad}"
            );
        }
    }
}
