//! The proxy's request-head reader (`regdoc::proxy::head::read_head`), on bytes a client sends.
//!
//! Input: byte 0 picks the read size (0: everything in one read), byte 1 the size limit, the
//! rest is what the client sends. Checked:
//! * no panic, no timeout on a reader that never blocks;
//! * a head is a prefix of the bytes, ends in a line feed, fits the limit, and re-serialised
//!   from its fields (method, target, version, headers) is no longer than it and reads back to
//!   the same fields;
//! * the way the bytes are split across reads does not change the answer;
//! * an error becomes a reply whose reason phrase is one safe line (no CR, LF or control
//!   character, at most 200 bytes) and whose status line an HTTP client reads back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regdoc::observe::{FailureKind, Phase};
use regdoc::proxy::head::{read_head, Head, HeadError};
use regdoc::proxy::{reply, TargetInfo};
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, ReadBuf};

/// Hands out its bytes `step` at a time (all at once for 0), then end of stream.
struct Pieces(VecDeque<Vec<u8>>);

impl Pieces {
    fn new(bytes: &[u8], step: usize) -> Pieces {
        let step = if step == 0 { bytes.len().max(1) } else { step };
        Pieces(bytes.chunks(step).map(<[u8]>::to_vec).collect())
    }
}

impl AsyncRead for Pieces {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(piece) = self.0.front_mut() {
            let n = piece.len().min(buf.remaining());
            buf.put_slice(&piece[..n]);
            piece.drain(..n);
            if piece.is_empty() {
                self.0.pop_front();
            }
        }
        Poll::Ready(Ok(()))
    }
}

thread_local! {
    static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
}

fn read(bytes: &[u8], step: usize, limit: usize) -> Result<Head, HeadError> {
    RT.with(|rt| {
        rt.block_on(read_head(
            &mut Pieces::new(bytes, step),
            limit,
            Duration::from_secs(60),
        ))
    })
}

/// What does not depend on read sizes.
fn outcome(r: &Result<Head, HeadError>) -> String {
    match r {
        Ok(h) => format!(
            "ok {} {} {} {:?} head={}",
            h.method,
            h.target,
            h.version,
            h.headers,
            h.raw.len() - h.rest.len()
        ),
        Err(e) => format!("err {e}"),
    }
}

/// The head written back from its fields, as short as HTTP/1.1 allows (LF line ends, no
/// optional whitespace).
fn reserialise(h: &Head) -> Vec<u8> {
    let mut out = format!("{} {} HTTP/1.{}\n", h.method, h.target, h.version).into_bytes();
    for (name, value) in &h.headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

fn check_reply(status: u16, error: String) {
    let target = TargetInfo {
        conn_id: 1,
        client: "127.0.0.1:50000".parse().unwrap(),
        host: String::new(),
        port: 0,
        endpoint: Default::default(),
        upstream_proxy: None,
        metrics: None,
    };
    let ev = target.event(
        Phase::Request,
        FailureKind::MalformedRequest,
        error,
        Duration::ZERO,
    );
    let reason = reply::reason_phrase(&ev, &[]);
    assert!(
        reason.len() <= 200,
        "reason phrase of {} bytes",
        reason.len()
    );
    assert!(
        reason
            .bytes()
            .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic()),
        "unsafe reason phrase {reason:?}"
    );
    let raw = reply::raw_reply(status, &reason, None, "");
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&raw) {
        Ok(httparse::Status::Complete(_)) => {}
        other => panic!(
            "reply does not parse: {other:?} {:?}",
            String::from_utf8_lossy(&raw)
        ),
    }
    assert_eq!(resp.code, Some(status));
    assert_eq!(resp.reason, Some(reason.as_str()));
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let step = data[0] as usize;
    let limit = 64 + data[1] as usize * 32;
    let input = &data[2..];

    let r = read(input, step, limit);
    match &r {
        Ok(h) => {
            assert!(!h.method.is_empty());
            assert!(h.version <= 1);
            assert!(
                input.starts_with(&h.raw),
                "raw is not a prefix of the input"
            );
            assert!(h.raw.ends_with(&h.rest));
            let head_len = h.raw.len() - h.rest.len();
            let head = &h.raw[..head_len];
            assert!(head.ends_with(b"\n"));
            assert!(
                head_len <= limit,
                "a head of {head_len} bytes passed a limit of {limit}"
            );
            let again = reserialise(h);
            assert!(
                again.len() <= head_len,
                "re-serialised head is longer than the original"
            );
            let back = read(&again, 0, limit).expect("the re-serialised head reads back");
            assert_eq!(
                (&back.method, &back.target, back.version, &back.headers),
                (&h.method, &h.target, h.version, &h.headers)
            );
            assert!(back.rest.is_empty());
            if h.method.eq_ignore_ascii_case("CONNECT")
                && regdoc::config::split_host_port(&h.target).is_none()
            {
                // conn.rs's refusal of a target that is not host:port.
                let shown: String = regdoc::redact::request_target(&h.target)
                    .chars()
                    .take(80)
                    .collect();
                check_reply(400, format!("CONNECT target {shown:?} is not host:port"));
            }
        }
        Err(HeadError::Timeout(_)) => panic!("timed out on a reader that never blocks"),
        Err(HeadError::TooLarge(n)) => {
            assert_eq!(*n, limit);
            check_reply(431, r.as_ref().err().unwrap().to_string());
        }
        Err(e) => check_reply(400, e.to_string()),
    }

    // Split reads change nothing (below the limit, where the buffer's growth cannot matter).
    if step != 0 && input.len() < limit {
        let whole = read(input, 0, limit);
        assert_eq!(
            outcome(&r),
            outcome(&whole),
            "split reads changed the answer"
        );
    }
});
