//! Accept loop, connection limits and graceful shutdown.
//!
//! A connection is admitted in two steps: its client's share first
//! ([`clients`], `max_connections_per_client`), refused at once beyond it; then a slot of
//! `max_connections`. When every slot is taken, a kept-alive connection waiting for its next
//! request is closed for it ([`idle`]); only when none waits does the new client wait.

pub mod clients;
pub mod idle;
pub mod reload;

use crate::config::Config;
use crate::proxy::{SetupError, Shared};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// After the grace, how long connections get to write their records. They end at once when
/// told (nothing they do then waits on the network); this bounds one stuck in a slow call.
const RECORD_WAIT: Duration = Duration::from_secs(2);

/// How long the accept loop waits for a slot before it looks for a connection to shed again
/// (one may have finished its exchange meanwhile, or the last one shed may not have closed).
const SHED_RETRY: Duration = Duration::from_secs(1);

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Admin(#[from] crate::metrics::AdminError),
}

/// Serve proxy clients on `listener` until `shutdown` completes; then stop accepting, let open
/// connections finish for up to `timeouts.shutdown_grace`, end the rest (their records say
/// `close_reason = "shutdown"`), and return once their records are written.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    // Validated first (in `Shared::new`): the semaphore panics beyond its maximum.
    serve(listener, Shared::new(config)?, shutdown).await
}

/// [`run`] with the proxy state already built (and so validated), as the binary does: it
/// builds the state before it listens, so a configuration `run` cannot serve never binds.
pub async fn serve(
    listener: TcpListener,
    shared: Shared,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    // No one sends: the configuration stays the one given.
    let (_, reloads) = mpsc::channel(1);
    serve_reloadable(listener, shared, shutdown, reloads).await
}

/// [`serve`], taking reloaded configurations from `reloads` (already parsed and validated by
/// the caller, as `regdoc run` does on SIGHUP). Each applies to connections accepted after it;
/// open connections and tunnels keep the state they started with. A configuration that cannot
/// be set up is refused with a `log` line and the running one stays.
pub async fn serve_reloadable(
    listener: TcpListener,
    mut shared: Shared,
    shutdown: impl Future<Output = ()>,
    mut reloads: mpsc::Receiver<Config>,
) -> Result<(), ServeError> {
    let grace = shared.config.timeouts.shutdown_grace;
    if let Ok(bound) = listener.local_addr() {
        shared.set_listening(bound);
    }
    let mut shared = Arc::new(shared);
    let admin = start_admin(&shared).await?;
    let limit = Arc::new(Semaphore::new(shared.config.max_connections));
    let clients = clients::ClientSlots::new(shared.config.max_connections_per_client);
    let (stop, watch_stop) = crate::shutdown::channel();
    // Each connection task holds a clone; when all are dropped, every connection is done.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    let (current, followed) = watch::channel(shared.clone());
    let summaries = tokio::spawn(housekeeping(followed, watch_stop.clone()));
    let mut backoff = Duration::from_millis(5);
    let mut reloading = true;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
            next = reloads.recv(), if reloading => {
                match next {
                    Some(config) => {
                        if let Some(next) = reload(&shared, config) {
                            shared = next;
                            current.send_replace(shared.clone());
                        }
                    }
                    None => reloading = false,
                }
                continue;
            }
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff = Duration::from_millis(5);
                a
            }
            Err(e) => {
                // Out of file descriptors or a transient network error: back off instead of
                // spinning, and keep serving the connections already open.
                let limit = crate::net::dial::descriptor_shortage(&e)
                    .map(|errno| {
                        format!(
                            " ({errno}: regdoc's {}; raise LimitNOFILE= or ulimit -n)",
                            crate::net::dial::NofileLimit::current()
                        )
                    })
                    .unwrap_or_default();
                tracing::warn!(
                    "accept failed: {e}{limit}; retrying in {} ms",
                    backoff.as_millis()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        // Rules and records speak of an IPv4 client of a dual-stack listener by its IPv4
        // address, and so does its share.
        let peer = crate::policy::addr::canonical(peer);
        let slot = match clients.admit(peer.ip()) {
            Ok(s) => s,
            Err(over) => {
                crate::proxy::conn::refuse_over_limit(&shared, stream, peer, &over);
                continue;
            }
        };
        // At most one accepted connection waits here for a slot, holding its client's share.
        let permit = match limit.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(TryAcquireError::Closed) => break,
            Err(TryAcquireError::NoPermits) => {
                match free_a_slot(&limit, &shared.idle, &mut shutdown).await {
                    Some(p) => p,
                    None => break,
                }
            }
        };
        let shared = shared.clone();
        let watcher = watch_stop.clone();
        let done = done_tx.clone();
        let open = shared.metrics.as_ref().map(|m| m.open_connection());
        tokio::spawn(async move {
            crate::proxy::conn::serve(shared, stream, peer, watcher).await;
            drop(open);
            drop(permit);
            drop(slot);
            drop(done);
        });
    }
    drop(listener);
    stop.drain();
    drop(done_tx);
    tracing::info!(
        "shutting down: waiting up to {} s for open connections",
        grace.as_secs()
    );
    if tokio::time::timeout(grace, done_rx.recv()).await.is_err() {
        let open = shared
            .config
            .max_connections
            .saturating_sub(limit.available_permits());
        tracing::warn!(
            connections = open,
            "grace period over: closing the remaining connections"
        );
        stop.cut();
        if tokio::time::timeout(RECORD_WAIT, done_rx.recv())
            .await
            .is_err()
        {
            let open = shared
                .config
                .max_connections
                .saturating_sub(limit.available_permits());
            tracing::warn!(
                connections = open,
                "connections still open {} ms after they were told to close: they have no record",
                RECORD_WAIT.as_millis()
            );
        }
    }
    let _ = summaries.await;
    // Counts of the last interval are written too, so nothing counted is lost at exit.
    shared.failures.write_all_summaries();
    shared.failures.report_overflow();
    // Scrapes answered through the drain; none after the last connection's record.
    if let Some(a) = admin {
        a.abort();
    }
    Ok(())
}

/// Bind and serve the admin listener when `[admin] listen` is set. Bound before the first
/// client is accepted, so a taken port stops regdoc rather than leaving it unscrapable.
async fn start_admin(shared: &Shared) -> Result<Option<tokio::task::JoinHandle<()>>, ServeError> {
    let (Some(addr), Some(metrics)) = (shared.config.admin.listen, &shared.metrics) else {
        return Ok(None);
    };
    let listener = crate::metrics::admin::bind(addr).await?;
    let bound = listener.local_addr().unwrap_or(addr);
    if shared.config.admin.i_know_this_is_public
        && !crate::policy::addr::canonical_ip(bound.ip()).is_loopback()
    {
        tracing::warn!(
            admin = %bound,
            "admin listener reachable from the network (admin.i_know_this_is_public = true): \
             whoever reaches it reads regdoc's metrics"
        );
    }
    tracing::info!(admin = %bound, "admin listener on {bound}: /metrics, /healthz");
    Ok(Some(crate::metrics::admin::spawn(
        listener,
        metrics.clone(),
    )))
}

/// Every slot is taken: close the kept-alive connection that has waited longest for its next
/// request and take its slot, or, while none waits, the first slot any connection gives back.
/// `None` on shutdown.
async fn free_a_slot(
    limit: &Arc<Semaphore>,
    idle: &idle::IdleConnections,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Option<OwnedSemaphorePermit> {
    loop {
        idle.shed_one();
        tokio::select! {
            p = limit.clone().acquire_owned() => return p.ok(),
            _ = tokio::time::sleep(SHED_RETRY) => {}
            _ = &mut *shutdown => return None,
        }
    }
}

/// The state for a reloaded `config`, or `None` (with a `log` line) when it cannot be set up.
fn reload(running: &Arc<Shared>, config: Config) -> Option<Arc<Shared>> {
    let unapplied = reload::needs_restart(&running.config, &config);
    match running.reloaded(config) {
        Ok(next) => {
            let restart = if unapplied.is_empty() {
                String::new()
            } else {
                format!(
                    "; not applied until a restart (systemctl restart regdoc): {}",
                    unapplied.join(", ")
                )
            };
            tracing::info!(
                "configuration reloaded: applies to new connections, open ones keep theirs{restart}"
            );
            Some(Arc::new(next))
        }
        Err(e) => {
            tracing::warn!("configuration reload refused: {e}; the running configuration stays");
            None
        }
    }
}

/// Write `failure_summary` records for aggregated repeats as their intervals end, and say every
/// second what the records budget left out. Follows the current state across reloads (a
/// replaced failure log writes what it still holds when its last connection ends).
async fn housekeeping(
    mut current: watch::Receiver<Arc<Shared>>,
    mut stop: crate::shutdown::Shutdown,
) {
    let mut shared = current.borrow_and_update().clone();
    let mut interval = shared.failures.interval();
    let mut summaries = tokio::time::interval((interval / 4).max(Duration::from_secs(1)));
    let mut budget = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = summaries.tick(), if !interval.is_zero() => {
                shared.failures.write_due_summaries(std::time::SystemTime::now());
            }
            _ = budget.tick() => shared.failures.report_overflow(),
            changed = current.changed() => {
                if changed.is_err() {
                    return;
                }
                shared = current.borrow_and_update().clone();
                interval = shared.failures.interval();
                summaries = tokio::time::interval((interval / 4).max(Duration::from_secs(1)));
            }
            _ = stop.draining() => return,
        }
    }
}
#[cfg(test)]
mod tests {
    /// Every open connection holds its `serve` future for its whole life, and a future is as
    /// large as its largest state; the rarely-live paths (resolution, interception, forwarding,
    /// the handshake) are boxed so that 9,900 idle tunnels stay small. Before boxing this was
    /// 18 KiB in a debug build.
    #[test]
    fn connection_future_stays_small() {
        let shared = std::sync::Arc::new(
            crate::proxy::Shared::new(crate::config::Config::default()).expect("default config"),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let a = l.local_addr().expect("addr");
            let s = tokio::net::TcpStream::connect(a).await.expect("connect");
            let (_stop, watch_stop) = crate::shutdown::channel();
            let f = crate::proxy::conn::serve(shared, s, a, watch_stop);
            let size = std::mem::size_of_val(&f);
            assert!(size < 8 * 1024, "connection future grew to {size} bytes");
        });
    }
}
