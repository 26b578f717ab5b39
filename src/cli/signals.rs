//! What signals mean to `regdoc run`: SIGTERM and SIGINT drain and stop, a second one stops at
//! once; SIGHUP reopens the log file (logrotate) and reloads the configuration.

use super::{EXIT_RUNTIME, TARGET};
use crate::config::{Config, ConfigError};
use crate::logging::LogHandle;
use std::io;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// The three signals, listened for from [`Signals::install`] on.
pub struct Signals {
    pub term: Signal,
    pub int: Signal,
    pub hup: Signal,
}

impl Signals {
    /// Installed before the proxy listens: a SIGTERM right after readiness must already mean
    /// "drain", not the default "die".
    pub fn install() -> io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// Resolves on the first SIGTERM or SIGINT. A second one ends the process at once, for an
/// operator who does not want to wait for the drain.
pub async fn shutdown(mut term: Signal, mut int: Signal, log: LogHandle) {
    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(
        target: TARGET,
        signal = which,
        "shutting down: no new connections, draining open ones (send it again to stop at once)"
    );
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::warn!(target: TARGET, "second signal: exiting without waiting for open connections");
        let _ = log.flush();
        std::process::exit(i32::from(EXIT_RUNTIME));
    });
}

/// On every SIGHUP, for as long as the process lives: reopen the log file, then read the
/// configuration again and hand it to the server. A configuration that does not load is
/// refused with its `file:line: reason`, and the running one stays.
pub async fn on_hangup(
    mut hup: Signal,
    log: LogHandle,
    reread: impl Fn() -> Result<Config, ConfigError>,
    reloads: tokio::sync::mpsc::Sender<Config>,
) {
    while hup.recv().await.is_some() {
        log.reopen();
        tracing::info!(target: TARGET, "SIGHUP: log file reopened");
        match reread() {
            Ok(config) => {
                // The server is gone only when shutting down: nothing left to reload then.
                if reloads.send(config).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::warn!(
                target: TARGET,
                "configuration reload refused: {e}; the running configuration stays"
            ),
        }
    }
}
