//! Reading a client's request head with a size limit and a deadline.

use bytes::{Bytes, BytesMut};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// A parsed request head. Header values are kept as bytes and never logged wholesale:
/// `Proxy-Authorization` lives here until the policy check and nowhere after.
#[derive(Debug)]
pub struct Head {
    pub method: String,
    pub target: String,
    /// HTTP minor version (0 or 1).
    pub version: u8,
    pub headers: Vec<(String, Vec<u8>)>,
    /// Bytes the client sent after the head (the start of a tunnel or of a body).
    pub rest: Bytes,
    /// The raw head plus `rest`, for handing the connection to hyper unchanged.
    pub raw: Bytes,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// Why no usable head was read.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("client closed the connection before sending a request")]
    Closed,
    #[error("request head not complete within {0:?}")]
    Timeout(Duration),
    #[error("request head larger than {0} bytes")]
    TooLarge(usize),
    #[error("malformed request head: {0}")]
    Malformed(String),
    /// The first bytes are a TLS record: the client believes this proxy speaks TLS.
    #[error("client started a TLS handshake instead of sending an HTTP request")]
    Tls { first_bytes: Bytes },
    #[error("reading the request failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Read one request head from `io`.
pub async fn read_head<R: AsyncRead + Unpin>(
    io: &mut R,
    limit: usize,
    timeout: Duration,
) -> Result<Head, HeadError> {
    match tokio::time::timeout(timeout, read_inner(io, limit)).await {
        Ok(r) => r,
        Err(_) => Err(HeadError::Timeout(timeout)),
    }
}

async fn read_inner<R: AsyncRead + Unpin>(io: &mut R, limit: usize) -> Result<Head, HeadError> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        let n = io.read_buf(&mut buf).await?;
        if n == 0 {
            return Err(if buf.is_empty() {
                HeadError::Closed
            } else {
                HeadError::Malformed("connection closed in the middle of the request head".into())
            });
        }
        if buf[0] == 0x16 {
            return Err(HeadError::Tls {
                first_bytes: buf.freeze(),
            });
        }
        let mut headers = [httparse::EMPTY_HEADER; 96];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let method = req.method.unwrap_or("").to_string();
                let target = req.path.unwrap_or("").to_string();
                let version = req.version.unwrap_or(1);
                let headers = req
                    .headers
                    .iter()
                    .map(|h| (h.name.to_string(), h.value.to_vec()))
                    .collect();
                let raw = buf.freeze();
                let rest = raw.slice(len..);
                return Ok(Head {
                    method,
                    target,
                    version,
                    headers,
                    rest,
                    raw,
                });
            }
            Ok(httparse::Status::Partial) => {
                if buf.len() >= limit {
                    return Err(HeadError::TooLarge(limit));
                }
            }
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge(limit)),
            Err(e) => return Err(HeadError::Malformed(e.to_string())),
        }
        if buf.len() > limit {
            return Err(HeadError::TooLarge(limit));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8], limit: usize) -> Result<Head, HeadError> {
        let mut r = bytes;
        read_head(&mut r, limit, Duration::from_secs(1)).await
    }

    #[tokio::test]
    async fn connect_head_and_rest() {
        let h = parse(b"CONNECT reg.azurecr.io:443 HTTP/1.1\r\nHost: reg.azurecr.io:443\r\nUser-Agent: Go-http-client/1.1\r\n\r\n\x16\x03\x01", 4096)
            .await
            .unwrap();
        assert_eq!(h.method, "CONNECT");
        assert_eq!(h.target, "reg.azurecr.io:443");
        assert_eq!(h.header_str("user-agent"), Some("Go-http-client/1.1"));
        assert_eq!(&h.rest[..], b"\x16\x03\x01");
    }

    #[tokio::test]
    async fn errors() {
        assert!(matches!(parse(b"", 4096).await, Err(HeadError::Closed)));
        assert!(matches!(
            parse(b"\x16\x03\x01\x02\x00", 4096).await,
            Err(HeadError::Tls { .. })
        ));
        assert!(matches!(
            parse(b"GARBAGE \x01\x02 HTTP/1.1\r\n\r\n", 4096).await,
            Err(HeadError::Malformed(_))
        ));
        let big = format!("GET http://x/ HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(5000));
        assert!(matches!(
            parse(big.as_bytes(), 4096).await,
            Err(HeadError::TooLarge(4096))
        ));
        assert!(matches!(
            parse(b"CONNECT x:443 HTTP/1.1\r\n", 4096).await,
            Err(HeadError::Malformed(_))
        ));
    }
}
