//! The server's answer to one relayed request, observed and judged: what forwarding and
//! interception do alike where a reply meets a record. The small error bodies the diagnosis
//! reads are replayed unchanged; a judged failure gets its `request` and `failure` records and
//! the reply its `X-Regdoc-Cause`.

use super::body::{read_prefix, ReplyBody};
use super::exchange;
use crate::observe::{DnsAnswer, FailureKind, HttpExchange, Phase, TlsObservation};
use crate::proxy::{reply, TargetInfo};
use crate::record::failures::FailureLog;
use crate::record::{Answered, Mode, SeenRequest};
use crate::redact::Redactor;
use hyper::body::Incoming;
use std::time::{Duration, Instant};

/// Where an answer is judged: the connection's facts the records carry.
pub struct Judge<'a> {
    pub failures: &'a FailureLog,
    pub target: &'a TargetInfo,
    pub mode: Mode,
    /// The answer the server connection was dialled with, as evidence.
    pub dns: Option<&'a DnsAnswer>,
    pub tls: Option<&'a TlsObservation>,
    /// Longest wait for the body prefix the diagnosis reads.
    pub body_limit: Duration,
    /// What a failure's `elapsed_ms` counts from.
    pub since: Instant,
}

impl Judge<'_> {
    /// Judge `ex` (its response head already added) with the reply `head` and `body` the server
    /// sent. Returns the body to send on and whether the answer was judged a failure.
    pub async fn answer(
        &self,
        (mut ex, redactor): (HttpExchange, &Redactor),
        seen: &SeenRequest,
        head: &mut http::response::Parts,
        body: Incoming,
    ) -> (ReplyBody, bool) {
        let body = if exchange::wants_body(&ex) {
            let (frames, data, complete, error, rest) = read_prefix(body, self.body_limit).await;
            exchange::add_body(&mut ex, redactor, &data, complete);
            ReplyBody::replay(frames, error, rest)
        } else {
            ReplyBody::stream(body)
        };
        let t = self.target;
        // Judging also remembers a healthy exchange as context (REST success, redirects,
        // issued tokens) for later failures of this client.
        let findings = self.failures.diagnoser().judge_exchange(
            t.client.ip(),
            &t.host,
            t.port,
            &t.endpoint,
            self.dns,
            &ex,
        );
        let cause = findings.first().map(|f| f.cause.id);
        seen.emit(
            &t.request_origin(self.mode),
            &ex,
            Answered::Server { cause },
        );
        if findings.is_empty() {
            return (body, false);
        }
        let status = ex.status;
        let error = exchange::server_answered(&ex, &findings);
        let mut ev = t.event(
            Phase::Http,
            FailureKind::HttpStatus { status },
            error,
            self.since.elapsed(),
        );
        ev.dns = self.dns.cloned();
        ev.tls = self.tls.cloned();
        ev.http = Some(ex);
        self.failures.write(&ev, &findings, None, None);
        if let Some(v) = reply::cause_of(&findings) {
            head.headers.insert(reply::CAUSE_HEADER, v);
        }
        (body, true)
    }
}
