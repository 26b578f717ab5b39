//! A bulk direction handed to the kernel (`splice(2)` through a pipe). Linux only.
//!
//! Only directions whose bytes regdoc need not see come here: an upload, a plain tunnel. The
//! server's side of a TLS tunnel stays on the copy path, because its record framing is followed
//! for exact stall detection, and reading the bytes for that makes splicing them a loss
//! (measured: README, Performance).

use super::relay::{writing, Flow};
use std::io;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::net::TcpStream;

/// The rest of a direction through a kernel pipe; its bytes never enter user space.
pub(super) async fn spliced(
    src: &TcpStream,
    dst: &TcpStream,
    flow: &Flow,
    epoch: Instant,
    mut pipe: crate::net::splice::Pipe,
) -> io::Result<()> {
    let r = splice_loop(src, dst, flow, epoch, &mut pipe).await;
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
) -> io::Result<()> {
    use crate::net::splice::Fill;
    loop {
        // The source has nothing more for now: deliver what the pipe holds before waiting.
        deliver(pipe, dst, flow).await?;
        src.readable().await?;
        loop {
            if pipe.free() == 0 {
                deliver(pipe, dst, flow).await?;
            }
            match pipe.fill_from(src, pipe.free()) {
                Ok(Fill::End) => {
                    deliver(pipe, dst, flow).await?;
                    flow.finished.store(true, Ordering::Relaxed);
                    let _ = socket2::SockRef::from(dst).shutdown(std::net::Shutdown::Write);
                    return Ok(());
                }
                Ok(Fill::PipeFull) => deliver(pipe, dst, flow).await?,
                Ok(Fill::Moved(n)) => flow.moved(n, epoch),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
    }
}
