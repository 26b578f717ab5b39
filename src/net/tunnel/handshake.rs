//! The start of a tunnel: who speaks first, the whole ClientHello, and the server's first
//! answer to it (a ServerHello, an alert, silence or an end), each failure named with the SNI.

use super::{close_reason_of, FailureSink, RecordTracker, TunnelConfig, TunnelReport};
use crate::observe::{FailureKind, Phase, TlsObservation};
use crate::record::CloseReason;
use crate::tls::{client_hello, server_hello};
use std::io;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest handshake prefix kept for parsing; beyond it the handshake is not observed.
const MAX_HELLO: usize = 16 * 1024;

/// Forward the first client bytes and the server's first answer, parsing both. Returns
/// `Ok(true)` when the bulk copy should follow.
pub(super) async fn observe<C, S>(
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
                        let r = super::answer::watch(
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

/// Read into `buf`'s capacity, replacing what it held.
pub(super) async fn fresh_read<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> io::Result<usize> {
    buf.clear();
    r.read_buf(buf).await
}
