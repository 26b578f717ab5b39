//! Loopback addresses with a known fate, held for as long as a test needs them.
//!
//! A port taken from a listener that was bound and dropped is not "a port nothing listens on":
//! on a busy machine another test (or process) may bind it a moment later, and a dial from the
//! ephemeral range may even connect to itself there. [`refused_addr`] keeps the port bound, so
//! no one else can take it, and never listens on it, so every connection to it is refused.
//!
//! A port for a child process to listen on (squid, mitmproxy, regdoc itself) cannot be held that
//! way: the child must bind it. [`child_port`] hands out ports from below the kernel's
//! ephemeral range, which the kernel never gives to a socket that did not ask for that port, so
//! no dial and no `bind(:0)` of another test can take it between the check and the child's bind.

use std::net::SocketAddr;

/// A loopback address where connections are refused: a TCP socket bound to it that never
/// listens. The port stays reserved for as long as the guard lives; keep it alive for the whole
/// test (`let dead = refused_addr();` — not `let _ = …`, which drops it at once).
pub struct Refused {
    addr: SocketAddr,
    _socket: socket2::Socket,
}

impl Refused {
    /// The refused address (127.0.0.1 and the reserved port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The reserved port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// Reserve a loopback port on which nothing listens (see [`Refused`]).
pub fn refused_addr() -> Refused {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("refused_addr: socket");
    // No SO_REUSEADDR: nothing else may bind the port while it is held.
    let any: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
    socket.bind(&any.into()).expect("refused_addr: bind");
    let addr = socket
        .local_addr()
        .expect("refused_addr: local address")
        .as_socket()
        .expect("refused_addr: an inet address");
    Refused {
        addr,
        _socket: socket,
    }
}

/// The kernel's ephemeral port range, `(low, high)`, from procfs (Linux's default when unreadable).
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// A loopback port, free now, for a child process to listen on. Taken outside the ephemeral
/// range (see the module note), spread by process id so that test binaries running at once
/// start apart, and never the same twice in one process.
pub fn child_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = ephemeral_range();
    // 10,000 ports below the range, or above it when the range starts too low.
    let (base, span) = if low > 11_024 {
        (u32::from(low) - 10_000, 10_000)
    } else {
        (u32::from(high) + 1, 65_535 - u32::from(high))
    };
    let offset = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (base + (offset + n) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("child_port: no free port in {base}..{}", base + span);
}

#[cfg(test)]
mod self_check {
    /// The guard's address refuses connections for as long as it is held.
    #[test]
    fn refused_addr_refuses() {
        let dead = super::refused_addr();
        for _ in 0..3 {
            let e = std::net::TcpStream::connect(dead.addr()).expect_err("nothing listens");
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
        }
        // And no one else can listen there meanwhile.
        assert!(std::net::TcpListener::bind(dead.addr()).is_err());
    }

    /// Child ports are outside the ephemeral range and not handed out twice.
    #[test]
    fn child_ports_are_distinct_and_not_ephemeral() {
        let (low, high) = super::ephemeral_range();
        let a = super::child_port();
        let b = super::child_port();
        assert_ne!(a, b);
        for p in [a, b] {
            assert!(!(low..=high).contains(&p), "{p} in {low}..={high}");
        }
    }
}
