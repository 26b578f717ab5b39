//! A passthrough tunnel: watch the TLS handshake go by without decrypting it, then copy bytes
//! both ways until both sides are done (half-close respected), with idle and stall detection.
//!
//! The handshake is observed only in the first few records; after that the copy loop does no
//! per-byte work beyond counting, so observation costs nothing on the bulk path.
//!
//! `handshake` watches the ClientHello and the server's first answer, `answer` the client's
//! answer to the server's certificate; `relay` then copies both ways and watches for stalls,
//! handing a bulk direction to the kernel (`zero_copy`); `records` follows TLS record framing
//! for the stall check.

mod answer;
mod handshake;
mod records;
mod relay;
#[cfg(target_os = "linux")]
mod zero_copy;

pub use records::RecordTracker;

use crate::net::prefixed::Prefixed;
use crate::observe::{ClientSignal, FailureKind, Phase, TlsObservation};
use crate::record::CloseReason;
use crate::shutdown::Shutdown;
use std::io;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Deadlines and sizes of a tunnel.
#[derive(Debug, Clone)]
pub struct TunnelConfig {
    pub idle: Duration,
    pub tls_timeout: Duration,
    pub stall: Duration,
    pub buffer: usize,
    /// Hand a direction to the kernel (`splice(2)`) once it has moved this many bytes; `None`
    /// copies through user space always. Only Linux has splice.
    pub zero_copy_after: Option<u64>,
}

/// Receives failures the moment they happen (the tunnel goes on or ends as the failure says).
pub trait FailureSink: Send + Sync {
    /// `tls` is what the handshake showed so far, if it was observed.
    fn failure(
        &self,
        phase: Phase,
        kind: FailureKind,
        error: String,
        elapsed: Duration,
        tls: Option<&TlsObservation>,
    );
    /// The server answered the handshake and the client went on with it: the path works.
    /// Called at once, not when the tunnel ends, because clients keep REST tunnels open while
    /// they fetch layers elsewhere.
    fn handshake_ok(&self, _tls: &TlsObservation) {}
    /// The server left the ClientHello unanswered and the client gave up first (closed or
    /// reset): a `tls_server_silent` failure whose event says so
    /// ([`crate::observe::FailureEvent::client_gave_up`]).
    fn client_gave_up(&self, error: String, elapsed: Duration, tls: Option<&TlsObservation>) {
        self.failure(
            Phase::Tls,
            FailureKind::TlsServerSilent,
            error,
            elapsed,
            tls,
        );
    }
    /// The client refused the handshake after the server's first flight (it did not accept the
    /// certificate it was shown). A sink that can look at the server's certificate itself does
    /// so before it writes the failure, without holding up the tunnel.
    fn client_refused(
        &self,
        signal: ClientSignal,
        alert: Option<String>,
        error: String,
        elapsed: Duration,
        tls: &TlsObservation,
    ) {
        self.failure(
            Phase::Tls,
            FailureKind::TlsClientRefused {
                signal,
                alert,
                probe: None,
            },
            error,
            elapsed,
            Some(tls),
        );
    }
}

/// What a tunnel saw, for its `connection` record.
#[derive(Debug, Default)]
pub struct TunnelReport {
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub tls: Option<TlsObservation>,
    /// Duration of the TLS observation (ClientHello forwarded → server's first answer).
    pub tls_ms: Option<f64>,
    pub tls_ok: Option<bool>,
    pub close_reason: CloseReason,
    /// Record framing of the server's side, when the tunnel carries TLS.
    pub server_records: Option<RecordTracker>,
    /// A direction moved to the kernel pipe.
    pub zero_copy: bool,
    /// Server bytes relayed while the client's answer to the handshake was watched. The relay
    /// takes them as its own, so that a server that sent its data then and went quiet is still
    /// a stall; added to `bytes_down` when the tunnel ends.
    watched_down: u64,
}

/// Run a tunnel between `client` (with the bytes it sent after its request head) and `server`
/// to completion, or until the shutdown grace is over: then it ends at once, with the bytes
/// counted so far and `close_reason = "shutdown"`.
pub async fn run(
    client: Prefixed<TcpStream>,
    mut server: TcpStream,
    cfg: &TunnelConfig,
    sink: &dyn FailureSink,
    shutdown: &mut Shutdown,
) -> TunnelReport {
    let mut report = TunnelReport::default();
    let mut client = client;
    // Boxed: the handshake's state (timers, selects) is short-lived, and inline it would size
    // the whole tunnel future, which an idle tunnel holds for its lifetime.
    let handshake = tokio::select! {
        r = Box::pin(handshake::observe(
            &mut client,
            &mut server,
            cfg,
            sink,
            &mut report,
        )) => r,
        () = shutdown.cut() => {
            // The handshake counts as it goes: what it forwarded is in the report already.
            report.bytes_down += std::mem::take(&mut report.watched_down);
            report.close_reason = SHUTDOWN;
            return report;
        }
    };
    match handshake {
        Ok(true) => {}
        Ok(false) => {
            // The handshake phase ended the tunnel (server silent, closed, or a side vanished).
            report.bytes_down += std::mem::take(&mut report.watched_down);
            let _ = server.shutdown().await;
            let _ = client.shutdown().await;
            return report;
        }
        Err(e) => {
            report.bytes_down += std::mem::take(&mut report.watched_down);
            report.close_reason = close_reason_of(&e);
            return report;
        }
    }
    let (rest, client) = client.into_parts();
    if !rest.is_empty() {
        if let Err(e) = server.write_all(&rest).await {
            report.close_reason = close_reason_of(&e);
            return report;
        }
        report.bytes_up += rest.len() as u64;
    }
    drop(rest);
    relay::relay(&client, &server, cfg, sink, &mut report, shutdown).await;
    report
}

/// `close_reason` of a tunnel ended because the proxy is shutting down.
const SHUTDOWN: CloseReason = CloseReason::Shutdown;

fn close_reason_of(e: &io::Error) -> CloseReason {
    match e.kind() {
        io::ErrorKind::ConnectionReset => CloseReason::Reset,
        io::ErrorKind::BrokenPipe => CloseReason::BrokenPipe,
        io::ErrorKind::TimedOut => CloseReason::Timeout,
        _ => CloseReason::IoError,
    }
}
