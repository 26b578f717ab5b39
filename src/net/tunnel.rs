//! A passthrough tunnel: watch the TLS handshake go by without decrypting it, then copy bytes
//! both ways until both sides are done (half-close respected), with idle and stall detection.
//!
//! The handshake is observed only in the first few records; after that the copy loop does no
//! per-byte work beyond counting, so observation costs nothing on the bulk path.

use crate::net::prefixed::Prefixed;
use crate::observe::{ClientSignal, FailureKind, Phase, TlsObservation};
use crate::record::CloseReason;
use crate::shutdown::Shutdown;
use crate::tls::client_answer::{Answer, ClientAnswer, Refusal};
use crate::tls::wire::RECORD_HEADER_LEN;
use crate::tls::{client_hello, server_hello};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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

/// Largest handshake prefix kept for parsing; beyond it the handshake is not observed.
const MAX_HELLO: usize = 16 * 1024;

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
        r = Box::pin(observe_handshake(
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
    relay(&client, &server, cfg, sink, &mut report, shutdown).await;
    report
}

/// `close_reason` of a tunnel ended because the proxy is shutting down.
const SHUTDOWN: CloseReason = CloseReason::Shutdown;

/// Forward the first client bytes and the server's first answer, parsing both. Returns
/// `Ok(true)` when the bulk copy should follow.
async fn observe_handshake<C, S>(
    client: &mut C,
    server: &mut S,
    cfg: &TunnelConfig,
    sink: &dyn FailureSink,
    report: &mut TunnelReport,
) -> io::Result<bool>
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut cbuf: Vec<u8> = Vec::with_capacity(2048);
    // Read into spare capacity: zero-filling buffers per tunnel was a third of the set-up cost.
    let mut tmp: Vec<u8> = Vec::with_capacity(8192);
    let mut stmp: Vec<u8> = Vec::with_capacity(8192);

    // Who speaks first? Clients of TLS do; some plain protocols let the server start.
    let first = tokio::time::timeout(cfg.idle, async {
        tokio::select! {
            r = fresh_read(client, &mut tmp) => r.map(|n| (true, n)),
            r = fresh_read(server, &mut stmp) => r.map(|n| (false, n)),
        }
    })
    .await;
    let (from_client, n) = match first {
        Err(_) => {
            report.close_reason = CloseReason::IdleTimeout;
            return Ok(false);
        }
        Ok(r) => r?,
    };
    if n == 0 {
        report.close_reason = if from_client {
            CloseReason::ClientClosed
        } else {
            CloseReason::ServerClosed
        };
        return Ok(false);
    }
    if !from_client {
        client.write_all(&stmp[..n]).await?;
        report.bytes_down += n as u64;
        return Ok(true);
    }
    server.write_all(&tmp[..n]).await?;
    report.bytes_up += n as u64;
    cbuf.extend_from_slice(&tmp[..n]);
    if !client_hello::looks_like_tls(&cbuf) {
        return Ok(true);
    }

    // Collect the whole ClientHello (it may span several reads or records).
    let mut tls = TlsObservation::default();
    loop {
        match client_hello::parse(&cbuf) {
            Ok(hello) => {
                tls.sni = hello.sni;
                tls.alpn = hello.alpn;
                tls.client_versions = hello.versions;
                break;
            }
            Err(crate::tls::HelloError::Incomplete) if cbuf.len() < MAX_HELLO => {
                let n = match tokio::time::timeout(cfg.tls_timeout, fresh_read(client, &mut tmp))
                    .await
                {
                    Ok(Ok(n)) => n,
                    Ok(Err(e)) => {
                        report.tls = Some(tls);
                        return Err(e);
                    }
                    Err(_) => break,
                };
                if n == 0 {
                    report.close_reason = CloseReason::ClientClosed;
                    report.tls = Some(tls);
                    return Ok(false);
                }
                if let Err(e) = server.write_all(&tmp[..n]).await {
                    // The first part of the hello reached the server, which cut the connection
                    // before the rest: as good as an answer to the ClientHello.
                    server_ended(Some(e), Instant::now(), Duration::ZERO, tls, sink, report);
                    return Ok(false);
                }
                report.bytes_up += n as u64;
                cbuf.extend_from_slice(&tmp[..n]);
            }
            Err(_) => break,
        }
    }
    drop(cbuf);

    // Wait for the server's answer, still relaying anything more the client sends.
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + cfg.tls_timeout;
    let mut sbuf: Vec<u8> = Vec::new();
    loop {
        let step = tokio::time::timeout_at(deadline, async {
            tokio::select! {
                r = fresh_read(server, &mut stmp) => r.map(|n| (false, n)).map_err(|e| (false, e)),
                r = fresh_read(client, &mut tmp) => r.map(|n| (true, n)).map_err(|e| (true, e)),
            }
        })
        .await;
        let elapsed = start.elapsed();
        match step {
            Err(_) => {
                report.tls_ms = Some(crate::record::millis(elapsed));
                report.tls_ok = Some(false);
                let sni = tls.sni.clone().unwrap_or_else(|| "(no SNI)".into());
                report.tls = Some(tls);
                report.close_reason = CloseReason::TlsTimeout;
                sink.failure(
                    Phase::Tls,
                    FailureKind::TlsServerSilent,
                    format!(
                        "server accepted TCP but did not answer the TLS ClientHello for {sni} within {} ms",
                        cfg.tls_timeout.as_millis()
                    ),
                    elapsed,
                    report.tls.as_ref(),
                );
                return Ok(false);
            }
            Ok(Err((false, e))) => {
                server_ended(Some(e), start, elapsed, tls, sink, report);
                return Ok(false);
            }
            Ok(Err((true, e))) => {
                // The client went away before the server said anything: as when it closes.
                report.tls_ms = Some(crate::record::millis(elapsed));
                report.tls_ok = Some(false);
                report.tls = Some(tls);
                report.close_reason = close_reason_of(&e);
                sink.client_gave_up(
                    format!(
                        "server did not answer the TLS ClientHello; {} ({e}) after {} ms",
                        crate::observe::CLIENT_GAVE_UP,
                        elapsed.as_millis()
                    ),
                    elapsed,
                    report.tls.as_ref(),
                );
                return Ok(false);
            }
            Ok(Ok((true, 0))) => {
                // The client gave up before the server said anything.
                report.tls_ms = Some(crate::record::millis(elapsed));
                report.tls_ok = Some(false);
                report.tls = Some(tls);
                report.close_reason = CloseReason::ClientClosed;
                sink.client_gave_up(
                    format!(
                        "server did not answer the TLS ClientHello; {} after {} ms",
                        crate::observe::CLIENT_GAVE_UP,
                        elapsed.as_millis()
                    ),
                    elapsed,
                    report.tls.as_ref(),
                );
                return Ok(false);
            }
            Ok(Ok((true, n))) => {
                if let Err(e) = server.write_all(&tmp[..n]).await {
                    server_ended(Some(e), start, elapsed, tls, sink, report);
                    return Ok(false);
                }
                report.bytes_up += n as u64;
            }
            Ok(Ok((false, 0))) => {
                server_ended(None, start, elapsed, tls, sink, report);
                return Ok(false);
            }
            Ok(Ok((false, n))) => {
                if sbuf.is_empty() {
                    tls.server_first_byte = Some(elapsed);
                }
                client.write_all(&stmp[..n]).await?;
                report.bytes_down += n as u64;
                sbuf.extend_from_slice(&stmp[..n]);
                match server_hello::parse(&sbuf) {
                    Ok(server_hello::ServerFirst::Hello { version, cipher }) => {
                        let tls13 = version == "TLS1.3";
                        tls.version = Some(version);
                        tls.cipher = Some(cipher);
                        report.tls_ok = Some(true);
                        let mut rt = RecordTracker::default();
                        rt.feed(&sbuf);
                        drop(sbuf);
                        report.tls_ms = Some(crate::record::millis(elapsed));
                        let r = watch_client_answer(
                            client, server, cfg, sink, report, &tls, tls13, &mut rt, start,
                        )
                        .await;
                        report.server_records = Some(rt);
                        report.tls = Some(tls);
                        return r;
                    }
                    Ok(server_hello::ServerFirst::Alert { level, description }) => {
                        tls.alert = Some(format!("{level} {description}"));
                        report.tls_ok = Some(false);
                        sink.failure(
                            Phase::Tls,
                            FailureKind::TlsAlert { level: level.clone(), description: description.clone() },
                            format!("server refused the TLS handshake with a {level} alert: {description}"),
                            elapsed,
                            Some(&tls),
                        );
                    }
                    Err(crate::tls::HelloError::Incomplete) if sbuf.len() < MAX_HELLO => continue,
                    Err(crate::tls::HelloError::NotTls) => {
                        report.tls_ok = Some(false);
                        sink.failure(
                            Phase::Tls,
                            FailureKind::TlsNotTls,
                            "server answered the TLS ClientHello with bytes that are not TLS"
                                .into(),
                            elapsed,
                            Some(&tls),
                        );
                    }
                    Err(_) => {}
                }
                report.tls_ms = Some(crate::record::millis(elapsed));
                report.tls = Some(tls);
                return Ok(true);
            }
        }
    }
}

/// The server's side ended before any ServerHello: `err` is how (a reset, another error), or
/// `None` for an end of stream. Every such end is a failure of the `tls` phase that names the
/// client's SNI.
fn server_ended(
    err: Option<io::Error>,
    start: Instant,
    elapsed: Duration,
    tls: TlsObservation,
    sink: &dyn FailureSink,
    report: &mut TunnelReport,
) {
    let elapsed = if elapsed.is_zero() {
        start.elapsed()
    } else {
        elapsed
    };
    report.tls_ms = Some(crate::record::millis(elapsed));
    report.tls_ok = Some(false);
    let sni = tls.sni.clone().unwrap_or_else(|| "(no SNI)".into());
    report.tls = Some(tls);
    let (kind, error) = match &err {
        None => {
            report.close_reason = CloseReason::ServerClosed;
            (
                FailureKind::TlsServerClosed,
                format!("server closed the connection in answer to the TLS ClientHello for {sni}"),
            )
        }
        Some(e) if is_reset(e) => {
            report.close_reason = CloseReason::Reset;
            (
                FailureKind::TlsServerReset,
                format!(
                    "the connection was reset (TCP RST) in answer to the TLS ClientHello for {sni}"
                ),
            )
        }
        Some(e) => {
            report.close_reason = close_reason_of(e);
            (
                FailureKind::TlsServerClosed,
                format!("the connection failed in answer to the TLS ClientHello for {sni}: {e}"),
            )
        }
    };
    sink.failure(Phase::Tls, kind, error, elapsed, report.tls.as_ref());
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
    )
}

/// Server bytes after the ServerHello beyond which the watch of the client's answer ends: a
/// first flight with a long certificate chain is a few KiB; more is data.
const WATCH_SERVER_BYTES: u64 = 64 * 1024;

/// After the ServerHello: relay the rest of the handshake while reading the client's first
/// records (headers only, see [`crate::tls::client_answer`]) until the client has gone on or refused.
/// Bounded by [`crate::tls::client_answer::MAX_WATCHED_RECORDS`] client records, by
/// [`WATCH_SERVER_BYTES`] server bytes and by `tls_timeout`;
/// the bulk copy path that follows does no such work. Returns `Ok(true)` when the bulk copy
/// should follow.
#[allow(clippy::too_many_arguments)]
async fn watch_client_answer<C, S>(
    client: &mut C,
    server: &mut S,
    cfg: &TunnelConfig,
    sink: &dyn FailureSink,
    report: &mut TunnelReport,
    tls: &TlsObservation,
    tls13: bool,
    records: &mut RecordTracker,
    start: Instant,
) -> io::Result<bool>
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut answer = ClientAnswer::new(tls13);
    let mut cbuf: Vec<u8> = Vec::with_capacity(4096);
    let mut sbuf: Vec<u8> = Vec::with_capacity(8192);
    let deadline = tokio::time::Instant::now() + cfg.tls_timeout;
    let refusal = loop {
        let step = tokio::time::timeout_at(deadline, async {
            // The client first: when both sides have ended, its end (with what it sent last)
            // is the answer, and the server's close is only the reaction to it.
            tokio::select! {
                biased;
                r = fresh_read(client, &mut cbuf) => (true, r),
                r = fresh_read(server, &mut sbuf) => (false, r),
            }
        })
        .await;
        let verdict = match step {
            // No verdict in time (a TLS 1.2 client waiting for the rest of the server's
            // flight, say): nothing is known to be wrong.
            Err(_) => Answer::Accepted,
            Ok((false, Ok(0))) => answer.server_ended(),
            Ok((false, Ok(n))) => {
                client.write_all(&sbuf[..n]).await?;
                report.watched_down += n as u64;
                records.feed(&sbuf[..n]);
                if report.watched_down > WATCH_SERVER_BYTES {
                    // More than a handshake's worth from the server while the client says
                    // nothing: data already flows, so hand it to the bulk copy path.
                    Answer::Accepted
                } else {
                    Answer::Pending
                }
            }
            Ok((false, Err(e))) => return Err(e),
            Ok((true, Ok(0))) => answer.end(),
            Ok((true, Ok(n))) => {
                server.write_all(&cbuf[..n]).await?;
                report.bytes_up += n as u64;
                answer.feed(&cbuf[..n])
            }
            Ok((true, Err(e))) => match answer.end() {
                Answer::Refused(r) => break r,
                _ => return Err(e),
            },
        };
        match verdict {
            Answer::Pending => continue,
            Answer::Accepted => {
                sink.handshake_ok(tls);
                return Ok(true);
            }
            Answer::Refused(r) => break r,
        }
    };
    report.tls_ok = Some(false);
    report.close_reason = CloseReason::ClientRefusedCertificate;
    let sni = tls.sni.as_deref().unwrap_or("(no SNI)");
    let (signal, alert, how) = match refusal {
        Refusal::Alert { level, description } => {
            let how = format!("answered with a {level} {description} alert");
            (ClientSignal::Alert, Some(description), how)
        }
        Refusal::EncryptedAlert { payload_len } => (
            ClientSignal::EncryptedAlert,
            None,
            format!("answered with one encrypted record of {payload_len} bytes, too short for its Finished (an alert), and closed"),
        ),
        Refusal::Closed => (ClientSignal::Closed, None, "closed without answering".to_string()),
    };
    sink.client_refused(
        signal,
        alert,
        format!(
            "the client refused the TLS handshake for {sni} after the server's certificate: it {how}, with no application data"
        ),
        start.elapsed(),
        tls,
    );
    Ok(false)
}

/// Read into `buf`'s capacity, replacing what it held.
async fn fresh_read<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<usize> {
    buf.clear();
    r.read_buf(buf).await
}

/// Per-direction counters shared between the copy future and the watchdog.
#[derive(Default)]
struct Flow {
    bytes: AtomicU64,
    /// Milliseconds since the tunnel's copy phase began, at the last read with data.
    last_ms: AtomicU64,
    last_read: AtomicU64,
    /// The server stopped inside a TLS record (see [`RecordTracker`]).
    mid_record: std::sync::atomic::AtomicBool,
    /// The source finished sending (EOF): silence after that is not a stall.
    finished: std::sync::atomic::AtomicBool,
    /// Record framing is followed, so `mid_record` is exact and decides alone.
    tracked: std::sync::atomic::AtomicBool,
    /// Waiting for the destination to take bytes: a slow reader, not a silent source.
    writing: std::sync::atomic::AtomicBool,
    /// The direction moved to the kernel pipe.
    spliced: std::sync::atomic::AtomicBool,
}

impl Flow {
    fn moved(&self, n: usize, epoch: Instant) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        self.last_ms
            .store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.last_read.store(n as u64, Ordering::Relaxed);
    }

    /// Did the source go quiet in the middle of sending? With record framing this is exact (an
    /// idle keep-alive connection always rests on a record boundary); without it, a large last
    /// read is the best guess that more was on its way.
    fn mid_stream(&self) -> bool {
        if self.tracked.load(Ordering::Relaxed) {
            self.mid_record.load(Ordering::Relaxed)
        } else {
            self.last_read.load(Ordering::Relaxed) >= MID_STREAM_READ
        }
    }
}

/// Follows TLS record framing without looking inside records: O(records), not O(bytes). A
/// server that goes quiet in the middle of a record was cut off mid-transfer, which is the
/// precise signal of a stall (an idle keep-alive connection always rests on a boundary).
#[derive(Debug, Default, Clone)]
pub struct RecordTracker {
    /// Bytes of the current record body still to come.
    remaining: usize,
    header: [u8; RECORD_HEADER_LEN],
    header_len: usize,
}

impl RecordTracker {
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data = &data[n..];
                continue;
            }
            let n = (RECORD_HEADER_LEN - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            data = &data[n..];
            if self.header_len == RECORD_HEADER_LEN {
                self.remaining = u16::from_be_bytes([self.header[3], self.header[4]]) as usize;
                self.header_len = 0;
            }
        }
    }

    /// Account for `n` record-body bytes that passed without being looked at. Never more than
    /// the current record holds: the caller sizes its moves by [`RecordTracker::remaining`].
    /// (The splice path used it when it moved bodies unseen, a record at a time; it now peeks
    /// what it moves and feeds it, so only the properties below still hold it to `feed`.)
    #[cfg_attr(not(test), allow(dead_code))]
    fn skip(&mut self, n: usize) {
        debug_assert!(n <= self.remaining);
        self.remaining = self.remaining.saturating_sub(n);
    }

    pub fn mid_record(&self) -> bool {
        self.remaining > 0 || self.header_len > 0
    }
}

/// First read of a burst; see [`pump`].
const FIRST_READ: usize = 16 * 1024;

/// A read this large means the sender was mid-stream (a full buffer or several TLS records)
/// rather than finishing a response.
const MID_STREAM_READ: u64 = 16 * 1024;

/// Copy both ways until both sides are done, watching for idleness and stalls.
///
/// Each direction waits for readiness *without* a buffer and borrows one only while data
/// flows, so an idle tunnel costs no copy buffers (tokio's `copy_bidirectional` holds two for
/// the tunnel's whole life). Half-close is passed on: when one side finishes sending, the other
/// side's write half is shut down and the opposite direction goes on.
async fn relay(
    client: &TcpStream,
    server: &TcpStream,
    cfg: &TunnelConfig,
    sink: &dyn FailureSink,
    report: &mut TunnelReport,
    shutdown: &mut Shutdown,
) {
    let up = Flow::default();
    let down = Flow::default();
    let epoch = Instant::now();
    let records = report.server_records.take();
    // What the server sent while the client's answer was watched is this relay's first data.
    down.bytes
        .store(std::mem::take(&mut report.watched_down), Ordering::Relaxed);
    down.mid_record.store(
        records.as_ref().is_some_and(RecordTracker::mid_record),
        Ordering::Relaxed,
    );
    let pumping = async {
        tokio::try_join!(
            pump(client, server, &up, epoch, cfg, None),
            pump(server, client, &down, epoch, cfg, records),
        )
    };
    tokio::pin!(pumping);
    let tick = cfg.idle.min(cfg.stall).max(Duration::from_secs(2)) / 2;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
    let mut stalled_reported = false;
    let reason = loop {
        tokio::select! {
            r = &mut pumping => break match r {
                Ok(_) => CloseReason::Done,
                Err(e) => close_reason_of(&e),
            },
            () = shutdown.cut() => break SHUTDOWN,
            _ = ticker.tick() => {
                let now = epoch.elapsed().as_millis() as u64;
                let last = up.last_ms.load(Ordering::Relaxed).max(down.last_ms.load(Ordering::Relaxed));
                if now.saturating_sub(last) >= cfg.idle.as_millis() as u64 {
                    break CloseReason::IdleTimeout;
                }
                let down_idle = now.saturating_sub(down.last_ms.load(Ordering::Relaxed));
                let down_bytes = down.bytes.load(Ordering::Relaxed);
                if !stalled_reported
                    && down_bytes > 0
                    && !down.finished.load(Ordering::Relaxed)
                    && !down.writing.load(Ordering::Relaxed)
                    && down.mid_stream()
                    && down_idle >= cfg.stall.as_millis() as u64
                {
                    stalled_reported = true;
                    let total = down_bytes + report.bytes_down;
                    sink.failure(
                        Phase::Tunnel,
                        FailureKind::TransferStalled { idle_secs: down_idle / 1000, bytes_before: total },
                        format!(
                            "download stopped mid-stream: no data from the server for {} s after {total} bytes",
                            down_idle / 1000
                        ),
                        Duration::from_millis(down_idle),
                        report.tls.as_ref(),
                    );
                }
            }
        }
    };
    report.bytes_up += up.bytes.load(Ordering::Relaxed);
    report.bytes_down += down.bytes.load(Ordering::Relaxed);
    report.zero_copy = up.spliced.load(Ordering::Relaxed) || down.spliced.load(Ordering::Relaxed);
    report.close_reason = reason;
}

/// One direction of a relay: `src` to `dst` until `src` finishes sending.
async fn pump(
    src: &TcpStream,
    dst: &TcpStream,
    flow: &Flow,
    epoch: Instant,
    cfg: &TunnelConfig,
    mut records: Option<RecordTracker>,
) -> io::Result<()> {
    let size = cfg.buffer;
    // A direction whose TLS records regdoc follows must be read by regdoc anyway (a peek is a
    // copy), so splicing it saves no copy and adds system calls: measured slower and costlier
    // on HTTPS downloads (README, Performance). Only bytes regdoc need not see (an upload, a
    // plain tunnel) move through a kernel pipe.
    let mut zero_copy_after = cfg.zero_copy_after.filter(|_| records.is_none());
    flow.tracked.store(records.is_some(), Ordering::Relaxed);
    loop {
        src.readable().await?;
        // Borrowed for this burst only; dropped as soon as the source has nothing more. A burst
        // starts small (most are a request or a short reply) and grows to `size` only when a
        // read fills the buffer, so short exchanges never touch a large allocation.
        let mut buf: Vec<u8> = Vec::with_capacity(size.min(FIRST_READ));
        loop {
            buf.clear();
            match src.try_read_buf(&mut buf) {
                Ok(0) => {
                    flow.finished.store(true, Ordering::Relaxed);
                    // Pass the half-close on; the peer may already be gone, which is fine.
                    let _ = socket2::SockRef::from(dst).shutdown(std::net::Shutdown::Write);
                    return Ok(());
                }
                Ok(n) => {
                    flow.moved(n, epoch);
                    if let Some(rt) = records.as_mut() {
                        rt.feed(&buf[..n]);
                        flow.mid_record.store(rt.mid_record(), Ordering::Relaxed);
                    }
                    writing(flow, write_all(dst, &buf[..n])).await?;
                    if n == buf.capacity() && buf.capacity() < size {
                        buf = Vec::with_capacity(size);
                    }
                    if zero_copy_after.is_some_and(|t| flow.bytes.load(Ordering::Relaxed) >= t) {
                        // A bulk transfer (a layer): the kernel moves the rest. If it cannot
                        // (no pipe to be had), copying goes on.
                        zero_copy_after = None;
                        #[cfg(target_os = "linux")]
                        if let Ok(pipe) =
                            crate::net::splice::Pipe::new(crate::net::splice::PIPE_BYTES)
                        {
                            flow.spliced.store(true, Ordering::Relaxed);
                            drop(buf);
                            return Box::pin(spliced(src, dst, flow, epoch, pipe, records, size))
                                .await;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
    }
}

/// The rest of a direction through a kernel pipe. With record framing to follow (the server
/// side of a TLS tunnel), what the socket holds is peeked (up to `cfg.buffer` bytes at a time)
/// and exactly that is moved: the tracker reads the headers in user space, so the framing stays
/// exact and stall detection loses nothing, at one `recv(MSG_PEEK)` per burst rather than one
/// per record; the bytes are never written from user space.
#[cfg(target_os = "linux")]
async fn spliced(
    src: &TcpStream,
    dst: &TcpStream,
    flow: &Flow,
    epoch: Instant,
    mut pipe: crate::net::splice::Pipe,
    records: Option<RecordTracker>,
    peek_bytes: usize,
) -> io::Result<()> {
    let r = splice_loop(src, dst, flow, epoch, &mut pipe, records, peek_bytes).await;
    if r.is_err() && !pipe.is_empty() {
        // The source failed (a reset, say): what it sent before is still owed to the other
        // side, as the copy path would have delivered it.
        let _ = deliver(&mut pipe, dst, flow).await;
    }
    r
}

/// Drain the pipe into `dst`, marking the direction as waiting on its destination meanwhile.
#[cfg(target_os = "linux")]
async fn deliver(
    pipe: &mut crate::net::splice::Pipe,
    dst: &TcpStream,
    flow: &Flow,
) -> io::Result<()> {
    if pipe.is_empty() {
        return Ok(());
    }
    writing(flow, pipe.drain_to(dst)).await
}

#[cfg(target_os = "linux")]
async fn splice_loop(
    src: &TcpStream,
    dst: &TcpStream,
    flow: &Flow,
    epoch: Instant,
    pipe: &mut crate::net::splice::Pipe,
    mut records: Option<RecordTracker>,
    peek_bytes: usize,
) -> io::Result<()> {
    use crate::net::splice::{peek, Fill};
    loop {
        // The source has nothing more for now: deliver what the pipe holds before waiting.
        deliver(pipe, dst, flow).await?;
        src.readable().await?;
        // With framing to follow, the bytes of this burst are peeked before the pipe takes
        // them. Borrowed for the burst only, like the copy path's buffer.
        let mut seen: Vec<u8> = Vec::new();
        loop {
            if pipe.free() == 0 {
                deliver(pipe, dst, flow).await?;
            }
            let want = match records {
                None => pipe.free(),
                // Look at what is queued (one call for many records), then move exactly that.
                Some(_) => match peek(src, &mut seen, peek_bytes.min(pipe.free())) {
                    Ok(k) => k,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                },
            };
            let moved = if want == 0 {
                Ok(Fill::End)
            } else {
                pipe.fill_from(src, want)
            };
            match moved {
                Ok(Fill::End) => {
                    deliver(pipe, dst, flow).await?;
                    flow.finished.store(true, Ordering::Relaxed);
                    let _ = socket2::SockRef::from(dst).shutdown(std::net::Shutdown::Write);
                    return Ok(());
                }
                Ok(Fill::PipeFull) => deliver(pipe, dst, flow).await?,
                Ok(Fill::Moved(n)) => {
                    flow.moved(n, epoch);
                    if let Some(rt) = records.as_mut() {
                        // The pipe took the first `n` of the bytes just peeked (TCP keeps
                        // order, and nothing else reads this socket): the tracker sees exactly
                        // what passed, headers split across segments included.
                        rt.feed(&seen[..n]);
                        flow.mid_record.store(rt.mid_record(), Ordering::Relaxed);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Run `write`, marking the direction as waiting on its destination meanwhile: a slow reader,
/// not a silent source (see the stall check in [`relay`]).
async fn writing<T>(flow: &Flow, write: impl std::future::Future<Output = T>) -> T {
    flow.writing.store(true, Ordering::Relaxed);
    let r = write.await;
    flow.writing.store(false, Ordering::Relaxed);
    r
}

async fn write_all(dst: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match dst.try_write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => dst.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn close_reason_of(e: &io::Error) -> CloseReason {
    match e.kind() {
        io::ErrorKind::ConnectionReset => CloseReason::Reset,
        io::ErrorKind::BrokenPipe => CloseReason::BrokenPipe,
        io::ErrorKind::TimedOut => CloseReason::Timeout,
        _ => CloseReason::IoError,
    }
}

#[cfg(test)]
mod tests {
    use super::RecordTracker;

    #[test]
    fn record_tracker_follows_boundaries_across_reads() {
        let mut rec = vec![0x17, 0x03, 0x03, 0x00, 0x04, 1, 2, 3, 4];
        rec.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x02, 9, 9]);
        let mut t = RecordTracker::default();
        t.feed(&rec);
        assert!(!t.mid_record());
        // Split everywhere, one byte at a time.
        let mut t = RecordTracker::default();
        for (i, b) in rec.iter().enumerate() {
            t.feed(&[*b]);
            assert_eq!(
                t.mid_record(),
                i != 8 && i != rec.len() - 1,
                "after byte {i}"
            );
        }
        let mut t = RecordTracker::default();
        t.feed(&rec[..7]);
        assert!(t.mid_record());
    }
}

/// Properties of [`RecordTracker`] against a reference model that walks the whole stream at once:
/// however the stream is cut into reads (and whatever the bytes, hostile lengths included), the
/// tracker knows whether the stream rests inside a record, which is what stall detection trusts.
#[cfg(test)]
mod properties {
    use super::{RecordTracker, RECORD_HEADER_LEN};
    use crate::proptest_support::split;
    use proptest::prelude::*;
    use proptest::sample::Index;

    /// The model: from the start, hop from header to header; the stream is mid-record unless
    /// the last hop lands exactly on its end.
    fn mid_record(stream: &[u8]) -> bool {
        let mut pos = 0usize;
        while pos + RECORD_HEADER_LEN <= stream.len() {
            pos += RECORD_HEADER_LEN
                + usize::from(u16::from_be_bytes([stream[pos + 3], stream[pos + 4]]));
        }
        pos != stream.len()
    }

    /// A stream of well-formed records (type, version, length, body), as servers send.
    fn records() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            (
                prop::sample::select(vec![0x14u8, 0x15, 0x16, 0x17]),
                0usize..3000,
            ),
            0..12,
        )
        .prop_map(|records| {
            let mut out = Vec::new();
            for (t, len) in records {
                out.extend_from_slice(&[t, 3, 3]);
                out.extend_from_slice(&(len as u16).to_be_bytes());
                out.resize(out.len() + len, 0xab);
            }
            out
        })
    }

    /// Real-shaped record streams, possibly cut short, or any bytes at all.
    fn stream() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (records(), any::<Index>()).prop_map(|(r, cut)| {
                let cut = cut.index(r.len() + 1);
                r[..cut].to_vec()
            }),
            records(),
            prop::collection::vec(any::<u8>(), 0..2048),
        ]
    }

    proptest! {
        #![proptest_config(crate::proptest_support::cases(256))]

        /// After every read, however the stream was cut, the tracker agrees with the model on
        /// everything received so far, and ends in the state one whole read gives.
        #[test]
        fn agrees_with_the_model_after_every_read(
            stream in stream(),
            cuts in prop::collection::vec(any::<Index>(), 0..24),
        ) {
            let mut t = RecordTracker::default();
            let mut seen = 0;
            for piece in split(&stream, &cuts) {
                t.feed(&piece);
                seen += piece.len();
                prop_assert_eq!(t.mid_record(), mid_record(&stream[..seen]), "after {} bytes", seen);
            }
            let mut whole = RecordTracker::default();
            whole.feed(&stream);
            prop_assert_eq!(
                (t.remaining, t.header, t.header_len),
                (whole.remaining, whole.header, whole.header_len)
            );
        }

        /// Skipping body bytes (the splice path, which never sees them) is the same as feeding
        /// them.
        #[test]
        fn skip_equals_feeding_the_body(
            stream in stream(),
            body in prop::collection::vec(any::<u8>(), 0..4096),
            take in any::<Index>(),
        ) {
            let mut fed = RecordTracker::default();
            fed.feed(&stream);
            let n = take.index(fed.remaining.min(body.len()) + 1);
            let mut skipped = fed.clone();
            fed.feed(&body[..n]);
            skipped.skip(n);
            prop_assert_eq!(
                (fed.remaining, fed.header_len, fed.mid_record()),
                (skipped.remaining, skipped.header_len, skipped.mid_record())
            );
        }
    }
}
