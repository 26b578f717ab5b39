//! The client side of an intercepted tunnel as hyper and rustls see it: every byte counted
//! for the connection record, and the first ones copied, because rustls does not expose the
//! TLS versions the client offered.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Counts the bytes that cross the client side (TLS records included), and keeps a copy of the
/// first bytes read (the ClientHello) until told to stop.
pub(super) struct Counting<C> {
    pub(super) inner: C,
    pub(super) up: Arc<AtomicU64>,
    pub(super) down: Arc<AtomicU64>,
    pub(super) hello: Arc<HelloCopy>,
}

/// Largest ClientHello copy kept; rustls refuses larger hellos anyway.
const HELLO_CAP: usize = 16 * 1024;

#[derive(Default)]
pub(super) struct HelloCopy {
    done: std::sync::atomic::AtomicBool,
    bytes: std::sync::Mutex<Vec<u8>>,
}

impl HelloCopy {
    fn push(&self, b: &[u8]) {
        if self.done.load(Ordering::Relaxed) {
            return;
        }
        let mut v = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        let room = HELLO_CAP.saturating_sub(v.len());
        v.extend_from_slice(&b[..b.len().min(room)]);
    }

    /// Stop copying and hand over what was copied.
    pub(super) fn take(&self) -> Vec<u8> {
        self.done.store(true, Ordering::Relaxed);
        std::mem::take(&mut *self.bytes.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl<C: AsyncRead + Unpin> AsyncRead for Counting<C> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        self.up.fetch_add(n as u64, Ordering::Relaxed);
        if n > 0 {
            self.hello.push(&buf.filled()[before..]);
        }
        r
    }
}

impl<C: AsyncWrite + Unpin> AsyncWrite for Counting<C> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.down.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
