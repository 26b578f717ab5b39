//! A bulk direction handed to the kernel (`splice(2)` through a pipe), with the record framing
//! still followed so that stall detection loses nothing. Linux only.

use super::relay::{writing, Flow};
use super::RecordTracker;
use std::io;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::net::TcpStream;

/// The rest of a direction through a kernel pipe. With record framing to follow (the server
/// side of a TLS tunnel), what the socket holds is peeked (up to `cfg.buffer` bytes at a time)
/// and exactly that is moved: the tracker reads the headers in user space, so the framing stays
/// exact and stall detection loses nothing, at one `recv(MSG_PEEK)` per burst rather than one
/// per record; the bytes are never written from user space.
pub(super) async fn spliced(
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
