//! After the ServerHello: the client's answer to the certificate it was shown, read from
//! record headers only, so that a client refusing it is told apart from one going on.

use super::handshake::fresh_read;
use super::{FailureSink, RecordTracker, TunnelConfig, TunnelReport};
use crate::observe::{ClientSignal, TlsObservation};
use crate::record::CloseReason;
use crate::tls::client_answer::{Answer, ClientAnswer, Refusal};
use std::io;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

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
pub(super) async fn watch<C, S>(
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
