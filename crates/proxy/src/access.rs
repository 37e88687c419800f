//! The access log: one event per request on target `portcullis::access`.
//! A response that streams from an upstream is logged when its body ends,
//! so that a body cut short (the upstream broke off or went quiet, the
//! client left, the session ended) shows as an error rather than a clean
//! 200; everything else is logged as soon as its head is ready.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::{Method, Uri, Version};

use crate::request_id::RequestId;

/// What one access-log event says, captured when the response head is
/// ready. Built only while the access log is on.
pub struct AccessEntry {
    pub request_id: RequestId,
    /// The socket peer.
    pub client: SocketAddr,
    /// The client behind the peer, when the peer is a trusted proxy; the
    /// peer's own address otherwise.
    pub client_ip: IpAddr,
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub status: u16,
    /// The failure that made the response, if the gateway answered.
    pub error: Option<&'static str>,
    /// From the request head to the response head.
    pub elapsed: Duration,
}

impl AccessEntry {
    /// Writes the event. `cut` names why a streamed body did not end whole;
    /// it takes the place of `error`, which a streamed response never has.
    pub fn write(self, app: &str, cut: Option<&'static str>) {
        tracing::info!(
            target: "portcullis::access",
            app,
            request.id = self.request_id.as_str(),
            client.addr = %self.client,
            client.ip = %self.client_ip,
            http.method = %self.method,
            http.path = self.uri.path(),
            http.version = ?self.version,
            http.status = self.status,
            error = cut.or(self.error),
            duration_ms = self.elapsed.as_secs_f64() * 1000.0,
        );
    }
}
