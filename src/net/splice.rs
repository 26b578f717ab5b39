//! Zero-copy relay of one tunnel direction on Linux: `splice(2)` moves bytes from the source
//! socket into a pipe and from the pipe into the destination socket, so they never cross into
//! user space. A proxy that copies through a buffer reads and writes every byte once each; on a
//! multi-gigabyte layer download that copy is most of its CPU time.
//!
//! The pipe is created when a direction turns bulk (see `tunnel::relay::pump`) and lives only
//! as long as that direction, so idle and short tunnels never hold one.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Pipe size asked for first. Linux counts pipe pages per user (`pipe-user-pages-soft`, 64 MiB
/// by default for an unprivileged user such as the service's `DynamicUser`), so about 64 bulk
/// directions get a 1 MiB pipe; later ones are granted smaller sizes, and once the budget is
/// spent entirely, the copy path carries on.
pub const PIPE_BYTES: usize = 1024 * 1024;

/// Sizes tried after a refusal of `PIPE_BYTES`, largest first.
const FALLBACK_BYTES: [usize; 2] = [256 * 1024, 64 * 1024];

/// Below this a pipe costs more system calls than copying saves: a user over its pipe-page
/// limit gets two-page pipes, and those are refused.
const MIN_PIPE_BYTES: usize = 64 * 1024;

/// A kernel pipe used as the relay's buffer. Both ends close on drop.
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
    /// Bytes in the pipe not yet written to the destination.
    pending: usize,
}

/// What one move from a socket into the pipe did.
#[derive(Debug, PartialEq, Eq)]
pub enum Fill {
    Moved(usize),
    /// The source finished sending.
    End,
    /// The pipe has no free slot (a pipe fills by slots, one per received segment, so it can
    /// be full well before `capacity` bytes): drain it, then fill again. The source's
    /// readiness is kept.
    PipeFull,
}

impl Pipe {
    /// A pipe of about `bytes`, or an error when the kernel grants less than is worth using.
    pub fn new(bytes: usize) -> io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        for size in std::iter::once(bytes).chain(FALLBACK_BYTES.into_iter().filter(|&b| b < bytes))
        {
            let want = i32::try_from(size).unwrap_or(i32::MAX);
            // SAFETY: plain fcntl on a descriptor we own. A refusal leaves the size as it was.
            if unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, want) } >= 0 {
                break;
            }
        }
        // SAFETY: as above; F_GETPIPE_SZ only reads.
        let got = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
        let capacity = usize::try_from(got).unwrap_or(0);
        if capacity < MIN_PIPE_BYTES.min(bytes) {
            return Err(io::Error::other(format!(
                "the kernel granted a pipe of {capacity} bytes only"
            )));
        }
        Ok(Pipe {
            read,
            write,
            capacity,
            pending: 0,
        })
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Room left in the pipe, in bytes (it may run out of slots first; see [`Fill::PipeFull`]).
    pub fn free(&self) -> usize {
        self.capacity - self.pending
    }

    /// Move at most `max` bytes of what `src` has ready into the pipe, without waiting.
    ///
    /// EAGAIN means "socket empty" only when the pipe is empty; with bytes pending it may mean
    /// "pipe full", which is reported as [`Fill::PipeFull`] without clearing the socket's
    /// readiness (clearing it would wait for data that is already there). `WouldBlock` is
    /// returned only for a truly empty socket.
    pub fn fill_from(&mut self, src: &TcpStream, max: usize) -> io::Result<Fill> {
        let want = max.min(self.free());
        if want == 0 {
            return Ok(Fill::PipeFull);
        }
        let (sfd, wfd, pending) = (src.as_raw_fd(), self.write.as_raw_fd(), self.pending);
        let r = src.try_io(Interest::READABLE, || match splice(sfd, wfd, want) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && pending > 0 => Ok(None),
            other => other.map(Some),
        })?;
        Ok(match r {
            None => Fill::PipeFull,
            Some(0) => Fill::End,
            Some(n) => {
                self.pending += n;
                Fill::Moved(n)
            }
        })
    }

    /// Move everything the pipe holds into `dst`, waiting for it to accept.
    pub async fn drain_to(&mut self, dst: &TcpStream) -> io::Result<()> {
        let (rfd, dfd) = (self.read.as_raw_fd(), dst.as_raw_fd());
        while self.pending > 0 {
            let want = self.pending;
            let n = dst
                .async_io(Interest::WRITABLE, || splice(rfd, dfd, want))
                .await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.pending -= n;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: both descriptors are open for the duration of the call (the caller borrows their
    // owners); null offsets mean "current position", as sockets and pipes require.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::{Fill, Pipe};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
        (c.expect("connect"), s.expect("accept").0)
    }

    /// Drives a pipe the way the relay does: fill until the socket is empty or the pipe is
    /// full, then drain. The writer sends many small segments and then goes quiet *without*
    /// closing, with a pipe of few slots: every byte must still arrive, which fails if a full
    /// pipe is ever taken for an empty socket (the relay would then wait for data that is
    /// already there).
    async fn relay_small_segments(close_after: bool) {
        let (mut writer, src) = pair().await;
        let (dst, mut reader) = pair().await;
        writer.set_nodelay(true).expect("nodelay");
        let chunks: Vec<Vec<u8>> = (0..400u32)
            .map(|i| {
                (0..(100 + i % 700))
                    .map(|k| ((k + i) % 251) as u8)
                    .collect()
            })
            .collect();
        let data: Vec<u8> = chunks.concat();
        let w = tokio::spawn(async move {
            for (i, c) in chunks.iter().enumerate() {
                writer.write_all(c).await.expect("write");
                if i % 50 == 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            }
            if close_after {
                writer.shutdown().await.expect("shutdown");
            }
            // Stay connected (and silent) until the test is over.
            tokio::time::sleep(std::time::Duration::from_secs(20)).await;
        });
        let want = data.len();
        let r = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut b = vec![0u8; 65536];
            while got.len() < want {
                match reader.read(&mut b).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&b[..n]),
                }
            }
            got
        });
        // The smallest pipe the kernel gives: few slots, so tiny segments fill it quickly.
        let mut pipe = Pipe::new(4096).expect("pipe");
        let relay = async {
            let mut moved = 0usize;
            loop {
                src.readable().await.expect("readable");
                loop {
                    match pipe.fill_from(&src, usize::MAX) {
                        Ok(Fill::End) => {
                            pipe.drain_to(&dst).await.expect("drain");
                            return moved;
                        }
                        Ok(Fill::Moved(n)) => moved += n,
                        Ok(Fill::PipeFull) => pipe.drain_to(&dst).await.expect("drain"),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("splice: {e}"),
                    }
                }
                pipe.drain_to(&dst).await.expect("drain");
                if moved == want && !close_after {
                    return moved;
                }
            }
        };
        let moved = tokio::time::timeout(std::time::Duration::from_secs(15), relay)
            .await
            .expect("the relay waited for data that had already arrived");
        assert_eq!(moved, data.len());
        drop(dst);
        let got = r.await.expect("reader");
        assert!(got == data, "bytes changed in transit");
        w.abort();
    }

    #[tokio::test]
    async fn a_full_pipe_is_not_taken_for_an_empty_socket() {
        relay_small_segments(false).await;
    }

    #[tokio::test]
    async fn small_segments_then_end_of_stream_arrive_whole() {
        relay_small_segments(true).await;
    }

    #[test]
    fn a_pipe_too_small_to_be_worth_it_is_refused() {
        // The kernel rounds a pipe up to a page at least; asking for the threshold is granted.
        assert!(Pipe::new(super::MIN_PIPE_BYTES).is_ok());
        assert!(Pipe::new(super::PIPE_BYTES)
            .map(|p| p.capacity() >= super::MIN_PIPE_BYTES)
            .unwrap_or(false));
    }
}
