//! One HTTP exchange over a connection the check opened, described as interception describes
//! what it sees ([`crate::intercept::exchange`]), so the same rules judge it.

use super::path::Sender;
use crate::intercept::exchange;
use crate::observe::{EarlyClose, FailureKind, HttpExchange};
use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use std::time::{Duration, Instant, SystemTime};

const USER_AGENT: &str = concat!("regdoc-check/", env!("CARGO_PKG_VERSION"));

/// A request in origin form for `host:port`, with its `Host`.
pub fn request(
    method: Method,
    host: &str,
    port: u16,
    path: &str,
    headers: &[(header::HeaderName, &str)],
    body: Bytes,
) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, crate::config::authority(host, port, 443))
        .header(header::USER_AGENT, USER_AGENT);
    for (k, v) in headers {
        b = b.header(k, *v);
    }
    b.body(Full::new(body)).unwrap_or_else(|_| {
        // Only a path with bytes a URI cannot hold gets here; send `/` and let the server say.
        let mut r = Request::new(Full::new(Bytes::new()));
        *r.uri_mut() = http::Uri::from_static("/");
        r
    })
}

/// What came back.
pub struct Answer {
    pub ex: HttpExchange,
    pub headers: HeaderMap,
    /// The body's first bytes, at most the cap asked for.
    pub body: Bytes,
    pub took: Duration,
}

/// No answer: the kind `run` records for it, and the sentence.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct NoAnswer {
    pub kind: FailureKind,
    pub error: String,
    /// The request as described, for the failure's `http` facts.
    pub ex: HttpExchange,
    pub took: Duration,
}

/// Send `req` (origin-form URI, `Host` set) and read at most `cap` bytes of the body.
/// `secrets` are removed from anything the server says back.
pub async fn send(
    sender: &mut Sender,
    req: Request<Full<Bytes>>,
    form: Option<&[u8]>,
    secrets: &[&str],
    cap: usize,
    timeout: Duration,
) -> Result<Answer, NoAnswer> {
    let (mut ex, mut redactor) = exchange::from_request(req.method(), req.uri(), req.headers());
    if let Some(form) = form {
        exchange::add_form(&mut ex, &mut redactor, form);
    }
    for s in secrets {
        redactor.add_secret(s);
    }
    let t = Instant::now();
    let fail = |kind, error: String, ex: HttpExchange| NoAnswer {
        kind,
        error,
        ex,
        took: t.elapsed(),
    };
    if !matches!(
        tokio::time::timeout(timeout, sender.ready()).await,
        Ok(Ok(()))
    ) {
        return Err(fail(
            FailureKind::UpstreamClosedBeforeHeaders {
                how: EarlyClose::Closed,
            },
            "the connection closed before the request could be sent".into(),
            ex,
        ));
    }
    let response = match tokio::time::timeout(timeout, sender.send_request(req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            let how = EarlyClose::of(&e);
            let error = format!(
                "the connection was {} before response headers: {}",
                how.describe(),
                exchange::error_chain(&e)
            );
            return Err(fail(
                FailureKind::UpstreamClosedBeforeHeaders { how },
                error,
                ex,
            ));
        }
        Err(_) => {
            return Err(fail(
                FailureKind::ResponseHeadersTimeout,
                format!("no response headers within {} ms", timeout.as_millis()),
                ex,
            ))
        }
    };
    ex.headers_ms = Some(t.elapsed().as_millis() as u64);
    let (parts, mut body) = response.into_parts();
    exchange::add_response(
        &mut ex,
        &redactor,
        parts.status.as_u16(),
        &parts.headers,
        SystemTime::now(),
    );
    let mut buf = BytesMut::new();
    let mut complete = false;
    let read = async {
        while buf.len() < cap {
            match body.frame().await {
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        buf.extend_from_slice(&data);
                    }
                }
                // A body cut short still says what it said so far.
                Some(Err(_)) => break,
                None => {
                    complete = true;
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(timeout, read).await;
    buf.truncate(cap);
    let body = buf.freeze();
    let diag = &body[..body.len().min(exchange::BODY_CAP)];
    exchange::add_body(
        &mut ex,
        &redactor,
        diag,
        complete && body.len() <= exchange::BODY_CAP,
    );
    Ok(Answer {
        ex,
        headers: parts.headers,
        body,
        took: t.elapsed(),
    })
}
