//! Protocol upgrades (WebSocket and friends): once both sides have switched
//! protocols the gateway only copies bytes.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::sync::Arc;

/// Copies bytes both ways until either side closes — or, for a tunnel a
/// gateway session opened, until that session ends.
pub fn spawn(
    client: OnUpgrade,
    upstream: OnUpgrade,
    app: Arc<str>,
    session_ended: Option<impl Future<Output = ()> + Send + 'static>,
) {
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
        let ended = async move {
            match session_ended {
                Some(ended) => ended.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match copied {
                Ok((up, down)) => {
                    tracing::debug!(app = %app, bytes.up = up, bytes.down = down, "tunnel closed")
                }
                Err(e) => tracing::debug!(app = %app, error = %e, "tunnel ended with an error"),
            },
            () = ended => {
                tracing::info!(app = %app, "gateway session ended; tunnel closed");
            }
        }
    });
}
