//! The relay of an intercepted tunnel: each request the client sends goes to the server
//! rewritten for the server's protocol, and its answer is judged on the way back; when no
//! answer comes, regdoc answers itself and records why.

use super::failures::failure_event;
use super::upstream_http::Sender;
use crate::http::hop::{self, Leg};
use crate::intercept::answer::Judge;
use crate::intercept::body::{read_prefix, ReplyBody};
use crate::intercept::{exchange, InterceptCtx};
use crate::observe::{EarlyClose, FailureKind, HttpExchange, Phase, TlsObservation};
use crate::proxy::reply::{self, Reply};
use crate::record::{Answered, Mode, SeenRequest};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

/// One intercepted tunnel once both handshakes are done, shared by the requests it relays.
pub(super) struct Conn {
    pub(super) ctx: InterceptCtx,
    /// The tunnel's target, as records name it.
    pub(super) target: crate::proxy::TargetInfo,
    pub(super) sender: Option<Sender>,
    /// Set when the server could not be used: every request gets this reply.
    pub(super) refused: Option<Reply>,
    pub(super) h2_upstream: bool,
    pub(super) tls: TlsObservation,
    pub(super) requests: AtomicU64,
    pub(super) failures: AtomicU64,
    pub(super) started: Instant,
}

impl Conn {
    pub(super) async fn handle(&self, req: Request<Incoming>) -> Response<ReplyBody> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let seen = SeenRequest::new(self.ctx.log_requests, req.uri());
        let (mut ex, mut redactor) = exchange::from_request(req.method(), req.uri(), req.headers());
        if let Some(r) = &self.refused {
            // No status came from the server (`http.status` stays 0): regdoc answers every
            // request itself, and recorded the failure once, when the server was refused.
            self.record_request(&seen, &ex, r.answered());
            return own_reply(r);
        }
        let Some(sender) = &self.sender else {
            let r = Reply::plain(
                StatusCode::BAD_GATEWAY,
                reply::fallback_cause(),
                "regdoc: no connection to the server\n".into(),
            );
            self.record_request(&seen, &ex, r.answered());
            return own_reply(&r);
        };
        let (parts, body) = req.into_parts();
        // Token-endpoint forms carry the credential (refresh token, password) in the body, not
        // in Authorization: read the small form to describe it, then send it on unchanged.
        let body = if parts.method == http::Method::POST
            && matches!(ex.path_class.as_str(), "token" | "exchange")
        {
            let (frames, data, complete, error, rest) =
                read_prefix(body, self.ctx.response_headers_timeout).await;
            if complete {
                exchange::add_form(&mut ex, &mut redactor, &data);
            }
            ReplyBody::replay(frames, error, rest)
        } else {
            ReplyBody::stream(body)
        };
        let req = self.prepare(Request::from_parts(parts, body));
        let t0 = Instant::now();
        let sent = tokio::time::timeout(self.ctx.response_headers_timeout, sender.send(req)).await;
        let resp = match sent {
            Err(_) => {
                let secs = self.ctx.response_headers_timeout.as_secs_f64();
                let error = format!("the server sent no response headers within {secs} s");
                return self.fail_own(
                    ex,
                    &seen,
                    FailureKind::ResponseHeadersTimeout,
                    StatusCode::GATEWAY_TIMEOUT,
                    error,
                );
            }
            Ok(Err(e)) => {
                // Nothing came back from the server: the kind says how its side ended, and
                // never claims a status it did not send.
                let how = EarlyClose::of(&e);
                let error = format!(
                    "the server's connection was {} before any response headers: {}",
                    how.describe(),
                    exchange::error_chain(&e)
                );
                return self.fail_own(
                    ex,
                    &seen,
                    FailureKind::UpstreamClosedBeforeHeaders { how },
                    StatusCode::BAD_GATEWAY,
                    error,
                );
            }
            Ok(Ok(r)) => r,
        };
        ex.headers_ms = Some(t0.elapsed().as_millis() as u64);
        let (mut parts, body) = resp.into_parts();
        exchange::add_response(
            &mut ex,
            &redactor,
            parts.status.as_u16(),
            &parts.headers,
            SystemTime::now(),
        );
        let server_closes = !self.h2_upstream && hop::wants_close(&parts.headers);
        hop::strip(&mut parts.headers, Leg::Tunnel);
        if server_closes {
            // The server ends its connection after this reply; the client's must end too.
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }

        let judge = Judge {
            failures: &self.ctx.failures,
            target: &self.target,
            mode: Mode::Intercept,
            dns: self.ctx.dns.as_ref(),
            tls: Some(&self.tls),
            body_limit: self.ctx.response_headers_timeout,
            since: self.started,
        };
        let (body, failed) = judge.answer((ex, &redactor), &seen, &mut parts, body).await;
        if failed {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        Response::from_parts(parts, body)
    }

    /// Record a failure regdoc answers itself (timeout, broken upstream connection).
    fn fail_own(
        &self,
        mut ex: HttpExchange,
        seen: &SeenRequest,
        kind: FailureKind,
        status: StatusCode,
        error: String,
    ) -> Response<ReplyBody> {
        self.failures.fetch_add(1, Ordering::Relaxed);
        ex.status = 0; // no status came from the server
        let ev = failure_event(
            &self.ctx,
            Phase::Http,
            kind,
            error.clone(),
            Some(self.tls.clone()),
            Some(ex),
            self.started,
        );
        let findings = self.ctx.failures.diagnoser().diagnose(&ev);
        // The status line names the cause, as regdoc's refusals outside TLS do. HTTP/2 has no
        // reason phrase (and the client side speaks what the server side does).
        let reason = if self.h2_upstream {
            status.canonical_reason().unwrap_or("").to_string()
        } else {
            crate::proxy::reply::reason_phrase(&ev, &findings)
        };
        // The client reads this status line as the server's answer.
        let shown = Some(crate::diagnose::symptom::Reply::Http {
            status: status.as_u16(),
            reason: &reason,
        });
        self.ctx
            .failures
            .write(&ev, &findings, Some((status.as_u16(), &reason)), shown);
        let r = Reply {
            status,
            reason,
            cause: findings
                .first()
                .map(|f| f.cause)
                .or_else(reply::fallback_cause),
            // An HTTP/1.1 upstream connection with a request in flight cannot carry another.
            close: !self.h2_upstream,
            body: format!("regdoc: {error}\n"),
        };
        if let Some(ex) = &ev.http {
            // The record names the cause the findings gave, not the header's fallback.
            let cause = findings.first().map(|f| f.cause.id);
            let status = status.as_u16();
            self.record_request(seen, ex, Answered::Regdoc { status, cause });
        }
        own_reply(&r)
    }

    /// Write the `request` record of one exchange, when `log.requests` asked for them.
    fn record_request(&self, seen: &SeenRequest, ex: &HttpExchange, answered: Answered) {
        seen.emit(&self.target.request_origin(Mode::Intercept), ex, answered);
    }

    /// Rewrite the request for the upstream protocol: origin form plus Host for HTTP/1.1,
    /// absolute form for HTTP/2.
    fn prepare(&self, req: Request<ReplyBody>) -> Request<ReplyBody> {
        let (mut parts, body) = req.into_parts();
        hop::strip(&mut parts.headers, Leg::Tunnel);
        let default_authority = crate::config::authority(&self.ctx.host, self.ctx.port, 443);
        let authority = parts
            .uri
            .authority()
            .map(|a| a.to_string())
            .or_else(|| {
                parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or(default_authority);
        let pq = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        if self.h2_upstream {
            parts.version = Version::HTTP_2;
            parts.headers.remove(header::HOST);
            if let Ok(u) = Uri::builder()
                .scheme("https")
                .authority(authority.as_str())
                .path_and_query(pq.as_str())
                .build()
            {
                parts.uri = u;
            }
        } else {
            parts.version = Version::HTTP_11;
            if !parts.headers.contains_key(header::HOST) {
                if let Ok(v) = HeaderValue::from_str(&authority) {
                    parts.headers.insert(header::HOST, v);
                }
            }
            if let Ok(u) = pq.parse() {
                parts.uri = u;
            }
        }
        Request::from_parts(parts, body)
    }
}

/// A reply of regdoc's own in the interception body type.
pub(super) fn own_reply(r: &Reply) -> Response<ReplyBody> {
    r.to_response().map(ReplyBody::full)
}
