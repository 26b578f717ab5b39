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
    #[error("no address to connect to")]
    NoAddress,
}

impl DialError {
    pub fn addr(&self) -> Option<SocketAddr> {
        match self {
            DialError::Refused { addr }
            | DialError::Timeout { addr, .. }
            | DialError::Unreachable { addr, .. }
            | DialError::Other { addr, .. } => Some(*addr),
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
            Ok(Err(e)) => last = classify(*addr, &e),
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

fn classify(addr: SocketAddr, e: &io::Error) -> DialError {
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
