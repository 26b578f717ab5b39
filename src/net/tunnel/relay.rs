//! The bulk copy: both directions pumped until done, half-close passed on, and a watchdog
//! for idleness and downloads that stall mid-stream.

use super::{close_reason_of, FailureSink, RecordTracker, TunnelConfig, TunnelReport, SHUTDOWN};
use crate::observe::{FailureKind, Phase};
use crate::record::CloseReason;
use crate::shutdown::Shutdown;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Per-direction counters shared between the copy future and the watchdog.
#[derive(Default)]
pub(super) struct Flow {
    bytes: AtomicU64,
    /// Milliseconds since the tunnel's copy phase began, at the last read with data.
    last_ms: AtomicU64,
    last_read: AtomicU64,
    /// The server stopped inside a TLS record (see [`RecordTracker`]).
    pub(super) mid_record: std::sync::atomic::AtomicBool,
    /// The source finished sending (EOF): silence after that is not a stall.
    pub(super) finished: std::sync::atomic::AtomicBool,
    /// Record framing is followed, so `mid_record` is exact and decides alone.
    tracked: std::sync::atomic::AtomicBool,
    /// Waiting for the destination to take bytes: a slow reader, not a silent source.
    writing: std::sync::atomic::AtomicBool,
    /// The direction moved to the kernel pipe.
    spliced: std::sync::atomic::AtomicBool,
}

impl Flow {
    pub(super) fn moved(&self, n: usize, epoch: Instant) {
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
pub(super) async fn relay(
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
    // A direction whose TLS records regdoc follows must be read by regdoc anyway, so splicing
    // it saves no copy and adds system calls: measured slower and costlier on HTTPS downloads
    // (README, Performance). Only bytes regdoc need not see (an upload, a plain tunnel) move
    // through a kernel pipe.
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
                            return Box::pin(super::zero_copy::spliced(
                                src, dst, flow, epoch, pipe,
                            ))
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

/// Run `write`, marking the direction as waiting on its destination meanwhile: a slow reader,
/// not a silent source (see the stall check in [`relay`]).
pub(super) async fn writing<T>(flow: &Flow, write: impl std::future::Future<Output = T>) -> T {
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
