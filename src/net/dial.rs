//! TCP dialing with a deadline, trying each resolved address in turn.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Why no address could be reached. Carries the last address tried: it is evidence.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DialError {
    #[error("connection to {addr} refused")]
    Refused { addr: SocketAddr },
    #[error("no answer from {addr} within {timeout_ms} ms")]
    Timeout { addr: SocketAddr, timeout_ms: u64 },
    #[error("{addr} is unreachable: {reason}")]
    Unreachable { addr: SocketAddr, reason: String },
    #[error("connecting to {addr} failed: {reason}")]
    Other { addr: SocketAddr, reason: String },
    /// regdoc could not even open a socket: out of descriptors (its own or the system's).
    #[error("regdoc could not open a socket to {addr}: {reason} ({limit})")]
    ResourceLimit {
        addr: SocketAddr,
        reason: String,
        /// `EMFILE` or `ENFILE`.
        errno: &'static str,
        limit: NofileLimit,
    },
    #[error("no address to connect to")]
    NoAddress,
}

impl DialError {
    pub fn addr(&self) -> Option<SocketAddr> {
        match self {
            DialError::Refused { addr }
            | DialError::Timeout { addr, .. }
            | DialError::Unreachable { addr, .. }
            | DialError::Other { addr, .. }
            | DialError::ResourceLimit { addr, .. } => Some(*addr),
            DialError::NoAddress => None,
        }
    }
}

/// Connect to the first address that answers within `timeout` overall. Each address gets an
/// equal share of what is left, so one black-holed address cannot eat the whole deadline when
/// others may work.
pub async fn dial(
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), DialError> {
    let start = Instant::now();
    let mut last = DialError::NoAddress;
    for (i, addr) in addrs.iter().enumerate() {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        let share = left / (addrs.len() - i) as u32;
        match tokio::time::timeout(share, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                // Registry traffic is request/response: Nagle only adds latency.
                let _ = s.set_nodelay(true);
                return Ok((s, *addr));
            }
            Ok(Err(e)) => {
                last = classify(*addr, &e);
                // Every other address would fail the same way: the shortage is regdoc's own.
                if matches!(last, DialError::ResourceLimit { .. }) {
                    return Err(last);
                }
            }
            Err(_) => {
                last = DialError::Timeout {
                    addr: *addr,
                    timeout_ms: share.as_millis() as u64,
                }
            }
        }
    }
    if let DialError::Timeout { addr, .. } = last {
        // Report the whole deadline the client waited for, not the last share.
        last = DialError::Timeout {
            addr,
            timeout_ms: timeout.as_millis() as u64,
        };
    }
    Err(last)
}

/// regdoc's RLIMIT_NOFILE, as evidence of a descriptor shortage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

impl NofileLimit {
    /// The limit of this process now (both `None` if it cannot be read).
    pub fn current() -> NofileLimit {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own and reads nothing else.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
            return NofileLimit {
                soft: None,
                hard: None,
            };
        }
        // RLIM_INFINITY is reported as no number: there is no limit to name.
        let n = |v: libc::rlim_t| (v != libc::RLIM_INFINITY).then_some(v);
        NofileLimit {
            soft: n(r.rlim_cur),
            hard: n(r.rlim_max),
        }
    }
}

impl std::fmt::Display for NofileLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: Option<u64>| v.map_or("unlimited".to_string(), |n| n.to_string());
        write!(
            f,
            "RLIMIT_NOFILE soft {}, hard {}",
            show(self.soft),
            show(self.hard)
        )
    }
}

/// The errno name when `e` is a descriptor shortage.
pub fn descriptor_shortage(e: &io::Error) -> Option<&'static str> {
    match e.raw_os_error() {
        Some(libc::EMFILE) => Some("EMFILE"),
        Some(libc::ENFILE) => Some("ENFILE"),
        _ => None,
    }
}

fn classify(addr: SocketAddr, e: &io::Error) -> DialError {
    if let Some(errno) = descriptor_shortage(e) {
        return DialError::ResourceLimit {
            addr,
            reason: e.to_string(),
            errno,
            limit: NofileLimit::current(),
        };
    }
    match e.kind() {
        io::ErrorKind::ConnectionRefused => DialError::Refused { addr },
        io::ErrorKind::TimedOut => DialError::Timeout {
            addr,
            timeout_ms: 0,
        },
        _ => match e.raw_os_error() {
            Some(libc::EHOSTUNREACH) | Some(libc::ENETUNREACH) | Some(libc::EADDRNOTAVAIL) => {
                DialError::Unreachable {
                    addr,
                    reason: e.to_string(),
                }
            }
            _ => DialError::Other {
                addr,
                reason: e.to_string(),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_shortage_is_regdocs_own_not_the_network() {
        let addr: SocketAddr = "192.0.2.1:443".parse().unwrap();
        for (errno, name) in [(libc::EMFILE, "EMFILE"), (libc::ENFILE, "ENFILE")] {
            let e = classify(addr, &io::Error::from_raw_os_error(errno));
            match e {
                DialError::ResourceLimit {
                    errno,
                    limit,
                    addr: a,
                    ..
                } => {
                    assert_eq!((errno, a), (name, addr));
                    assert_eq!(limit, NofileLimit::current());
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        let e = classify(addr, &io::Error::from_raw_os_error(libc::ECONNREFUSED));
        assert_eq!(e, DialError::Refused { addr });
    }

    #[test]
    fn the_limit_is_read_and_shown() {
        let l = NofileLimit::current();
        assert!(l.soft.is_some() || l.hard.is_none(), "{l:?}");
        assert!(l.to_string().starts_with("RLIMIT_NOFILE soft "), "{l}");
    }
}
