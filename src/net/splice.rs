//! Zero-copy relay of one tunnel direction on Linux: `splice(2)` moves bytes from the source
//! socket into a pipe and from the pipe into the destination socket, so they never cross into
//! user space. A proxy that copies through a buffer reads and writes every byte once each; on a
//! multi-gigabyte layer download that copy is most of its CPU time.
//!
//! The pipe is created when a direction turns bulk (see `tunnel::pump`) and lives only as long
//! as that direction, so idle and short tunnels never hold one.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Largest pipe asked for. Linux lets an unprivileged process grow a pipe up to
/// `/proc/sys/fs/pipe-max-size` (1 MiB by default); a larger pipe means fewer system calls per
/// GiB. If the kernel refuses, the pipe keeps its default size (64 KiB), which still works.
const PIPE_BYTES: usize = 1024 * 1024;

/// A kernel pipe used as the relay's buffer. Both ends close on drop.
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
    /// Bytes in the pipe not yet written to the destination.
    pending: usize,
}

impl Pipe {
    pub fn new() -> io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: plain fcntl on a descriptor we own.
        let got = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES as i32) };
        let capacity = if got > 0 {
            got as usize
        } else {
            // SAFETY: as above; F_GETPIPE_SZ only reads.
            let cur = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
            if cur > 0 {
                cur as usize
            } else {
                64 * 1024
            }
        };
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

    /// Room left in the pipe.
    pub fn free(&self) -> usize {
        self.capacity - self.pending
    }

    /// Move what `src` has ready into the pipe, without waiting. `Ok(0)` is the end of the
    /// stream; `WouldBlock` means the socket has nothing now (its readiness is cleared so the
    /// caller's next `readable().await` waits for new data).
    ///
    /// At most `max` bytes, and never more than the pipe has room for: a full pipe also
    /// answers EAGAIN, which would be mistaken for an empty socket.
    pub fn fill_from(&mut self, src: &TcpStream, max: usize) -> io::Result<usize> {
        let want = max.min(self.free());
        debug_assert!(want > 0);
        let (sfd, wfd) = (src.as_raw_fd(), self.write.as_raw_fd());
        let n = src.try_io(Interest::READABLE, || splice(sfd, wfd, want))?;
        self.pending += n;
        Ok(n)
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
}

/// Look at the next bytes `src` holds without taking them. `Ok(0)` is the end of the stream;
/// `WouldBlock` means nothing is queued (readiness is cleared).
pub fn peek(src: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let fd = src.as_raw_fd();
    src.try_io(Interest::READABLE, || {
        // SAFETY: `buf` is valid for writes of its length for the duration of the call.
        let n = unsafe {
            libc::recv(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    })
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
    use super::Pipe;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
        (c.expect("connect"), s.expect("accept").0)
    }

    #[tokio::test]
    async fn moves_a_stream_larger_than_the_pipe_intact() {
        let (mut writer, src) = pair().await;
        let (dst, mut reader) = pair().await;
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let w = tokio::spawn(async move {
            writer.write_all(&sent).await.expect("write");
            writer.shutdown().await.expect("shutdown");
        });
        let r = tokio::spawn(async move {
            let mut got = Vec::new();
            reader.read_to_end(&mut got).await.expect("read");
            got
        });
        let mut pipe = Pipe::new().expect("pipe");
        assert!(pipe.capacity() >= 4096);
        let mut moved = 0usize;
        loop {
            src.readable().await.expect("readable");
            match pipe.fill_from(&src, usize::MAX) {
                Ok(0) => break,
                Ok(n) => {
                    moved += n;
                    pipe.drain_to(&dst).await.expect("drain");
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("splice: {e}"),
            }
        }
        drop(dst);
        w.await.expect("writer");
        assert_eq!(moved, data.len());
        assert!(r.await.expect("reader") == data, "bytes changed in transit");
    }
}
