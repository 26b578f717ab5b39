//! Response bodies regdoc sends to an intercepted client: the upstream body streamed as it comes,
//! optionally after a prefix that was read for diagnosis (replayed unchanged), or a short body of
//! regdoc's own. `read_prefix` reads that prefix.

use crate::intercept::exchange::BODY_CAP;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

/// What the client receives. Never holds more than the diagnosis prefix in memory.
pub struct ReplyBody {
    prefix: VecDeque<Frame<Bytes>>,
    rest: Option<Incoming>,
    /// An error met while reading the prefix, delivered after the prefix.
    pending_error: Option<hyper::Error>,
}

impl ReplyBody {
    /// Stream `body` as it comes.
    pub fn stream(body: Incoming) -> ReplyBody {
        ReplyBody {
            prefix: VecDeque::new(),
            rest: Some(body),
            pending_error: None,
        }
    }

    /// Replay `prefix`, then an error if reading stopped on one, then stream `rest`.
    pub fn replay(
        prefix: Vec<Frame<Bytes>>,
        error: Option<hyper::Error>,
        rest: Option<Incoming>,
    ) -> ReplyBody {
        ReplyBody {
            prefix: prefix.into(),
            rest: if error.is_some() { None } else { rest },
            pending_error: error,
        }
    }

    /// A complete body of regdoc's own.
    pub fn full(text: impl Into<Bytes>) -> ReplyBody {
        let b: Bytes = text.into();
        ReplyBody {
            prefix: if b.is_empty() {
                VecDeque::new()
            } else {
                VecDeque::from([Frame::data(b)])
            },
            rest: None,
            pending_error: None,
        }
    }
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some(f) = this.prefix.pop_front() {
            return Poll::Ready(Some(Ok(f)));
        }
        if let Some(e) = this.pending_error.take() {
            return Poll::Ready(Some(Err(e)));
        }
        match this.rest.as_mut() {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_empty()
            && self.pending_error.is_none()
            && self
                .rest
                .as_ref()
                .map(|b| b.is_end_stream())
                .unwrap_or(true)
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: u64 = self
            .prefix
            .iter()
            .filter_map(|f| f.data_ref().map(|d| d.len() as u64))
            .sum();
        match &self.rest {
            None => SizeHint::with_exact(buffered),
            Some(b) => {
                let h = b.size_hint();
                let mut s = SizeHint::new();
                s.set_lower(h.lower() + buffered);
                if let Some(u) = h.upper() {
                    s.set_upper(u + buffered);
                }
                s
            }
        }
    }
}

/// What [`read_prefix`] read: the frames, their data (capped), whether the body ended, an error
/// met, and the rest of the body.
pub(crate) type Prefix = (
    Vec<Frame<Bytes>>,
    Vec<u8>,
    bool,
    Option<hyper::Error>,
    Option<Incoming>,
);

/// Read at most [`BODY_CAP`] bytes of `body` (bounded by `limit` in time). Returns the frames
/// read (for replay), their data (capped), whether the body ended, an error met, and the rest.
pub(crate) async fn read_prefix(mut body: Incoming, limit: std::time::Duration) -> Prefix {
    let deadline = tokio::time::Instant::now() + limit;
    let mut frames = Vec::new();
    let mut data = Vec::new();
    loop {
        if data.len() >= BODY_CAP {
            return (frames, data, false, None, Some(body));
        }
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return (frames, data, false, None, Some(body)),
            Ok(None) => return (frames, data, true, None, None),
            Ok(Some(Err(e))) => return (frames, data, false, Some(e), None),
            Ok(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    let take = d.len().min(BODY_CAP - data.len());
                    data.extend_from_slice(&d[..take]);
                }
                frames.push(f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn full_and_replay_without_rest() {
        let b = ReplyBody::full("hello");
        assert_eq!(b.size_hint().exact(), Some(5));
        assert_eq!(b.collect().await.unwrap().to_bytes(), "hello");
        let b = ReplyBody::replay(
            vec![
                Frame::data(Bytes::from("ab")),
                Frame::data(Bytes::from("cd")),
            ],
            None,
            None,
        );
        assert_eq!(b.collect().await.unwrap().to_bytes(), "abcd");
        assert!(ReplyBody::full("").is_end_stream());
    }
}
