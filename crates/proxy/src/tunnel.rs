//! Protocol upgrades (WebSocket and friends): once both sides have switched
//! protocols the gateway only copies bytes.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::sync::Arc;

pub fn spawn(client: OnUpgrade, upstream: OnUpgrade, app: Arc<str>) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(app = %app, error = %e, "upgrade did not complete");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            Ok((up, down)) => {
                tracing::debug!(app = %app, bytes.up = up, bytes.down = down, "tunnel closed")
            }
            Err(e) => tracing::debug!(app = %app, error = %e, "tunnel ended with an error"),
        }
    });
}
