//! Hand hyper every decrypted byte that is ready, not one TLS record at a time.
//!
//! tokio-rustls returns the plaintext of a single record (at most 16 KiB) per read, however
//! much ciphertext is already buffered. hyper turns each read into one body chunk, and each
//! chunk becomes one encrypt-and-send toward the client: on a layer download, a system call per
//! 16 KiB. Reading until the caller's buffer is full or nothing more is ready lets hyper's
//! adaptive read buffer grow, so chunks, records batches and writes grow with it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Wraps a stream whose reads return little at a time; writes pass through unchanged.
pub struct CoalescedReads<S> {
    inner: S,
}

impl<S> CoalescedReads<S> {
    pub fn new(inner: S) -> Self {
        CoalescedReads { inner }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CoalescedReads<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let start = buf.filled().len();
        loop {
            let before = buf.filled().len();
            match Pin::new(&mut self.inner).poll_read(cx, buf) {
                Poll::Ready(Ok(())) if buf.filled().len() > before && buf.remaining() > 0 => {
                    continue
                }
                // End of stream, or the buffer is full: what was read is the answer (an end
                // after data shows up on the next read).
                Poll::Ready(Ok(())) => return Poll::Ready(Ok(())),
                // Nothing more now. The waker stays registered, which at worst costs one
                // spurious wake-up.
                Poll::Pending if buf.filled().len() > start => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
                // Deliver what was read; the error, which sticks to a TLS session, comes back
                // on the next read.
                Poll::Ready(Err(_)) if buf.filled().len() > start => return Poll::Ready(Ok(())),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CoalescedReads<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::CoalescedReads;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

    /// Returns its pieces one per read, then Pending once, then the rest, then the end.
    struct Trickle {
        pieces: Vec<Option<Vec<u8>>>,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if self.pieces.is_empty() {
                return Poll::Ready(Ok(()));
            }
            match self.pieces.remove(0) {
                Some(p) => {
                    buf.put_slice(&p);
                    Poll::Ready(Ok(()))
                }
                None => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            }
        }
    }

    #[tokio::test]
    async fn gathers_what_is_ready_and_stops_at_pending_and_at_the_end() {
        let mut r = CoalescedReads::new(Trickle {
            pieces: vec![
                Some(b"ab".to_vec()),
                Some(b"cd".to_vec()),
                None,
                Some(b"ef".to_vec()),
            ],
        });
        let mut buf = [0u8; 64];
        assert_eq!(r.read(&mut buf).await.expect("read"), 4);
        assert_eq!(&buf[..4], b"abcd");
        assert_eq!(r.read(&mut buf).await.expect("read"), 2);
        assert_eq!(&buf[..2], b"ef");
        assert_eq!(r.read(&mut buf).await.expect("read"), 0);
    }

    #[tokio::test]
    async fn never_overfills_the_callers_buffer() {
        let mut r = CoalescedReads::new(Trickle {
            pieces: vec![Some(b"abc".to_vec()), Some(b"def".to_vec())],
        });
        let mut buf = [0u8; 3];
        assert_eq!(r.read(&mut buf).await.expect("read"), 3);
        assert_eq!(&buf, b"abc");
        assert_eq!(r.read(&mut buf).await.expect("read"), 3);
        assert_eq!(&buf, b"def");
    }
}
