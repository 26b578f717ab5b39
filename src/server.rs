//! Accept loop, connection limits and graceful shutdown.

use crate::config::Config;
use std::future::Future;
use tokio::net::TcpListener;

/// Serve proxy clients on `listener` until `shutdown` completes, then drain.
pub async fn run(
    _listener: TcpListener,
    _config: Config,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    shutdown.await;
    Ok(())
}
