//! Plain `http://` forwarding of absolute-form requests (insecure registries, plain-HTTP token
//! services), with keep-alive on both sides and bodies streamed both ways. Hop-by-hop headers
//! are removed per RFC 9110 §7.6.1 ([`crate::http::hop`]).

use super::connect::{establish, refuse, Refusal};
use super::reply::{self, Reply};
use super::{Shared, TargetInfo};
use crate::endpoint::classify;
use crate::http::hop::{self, Leg};
use crate::intercept::answer::Judge;
use crate::net::dial::dial;
use crate::observe::HttpExchange;
use crate::observe::{FailureKind, Phase};
use crate::record::{Answered, CloseReason, ConnectionRecord, Mode, SeenRequest};
use crate::server::idle::Guarded;
use bytes::Bytes;
use http::header::{HeaderValue, HOST};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};

type Body = BoxBody<Bytes, hyper::Error>;

/// The upstream connection a client connection is currently using, reused while the client
/// keeps asking for the same origin.
struct Upstream {
    key: String,
    /// Requests go in absolute form to an upstream proxy rather than origin form to the origin.
    via_proxy: bool,
    sender: SendRequest<Incoming>,
}

struct State {
    shared: Arc<Shared>,
    base: TargetInfo,
    upstream: tokio::sync::Mutex<Option<Upstream>>,
    /// The connection record is updated by the last request's target.
    rec: Mutex<ConnectionRecord>,
}

/// Serve forwarded requests on `io` until the client closes or shutdown is signalled.
pub async fn serve<I>(
    shared: Arc<Shared>,
    io: I,
    target: &mut TargetInfo,
    rec: &mut ConnectionRecord,
    mut shutdown: crate::shutdown::Shutdown,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    rec.mode = Mode::Forward;
    let state = Arc::new(State {
        shared: shared.clone(),
        base: target.clone(),
        upstream: tokio::sync::Mutex::new(None),
        rec: Mutex::new(rec.clone()),
    });
    let svc_state = state.clone();
    // Between requests this connection only holds a slot: it is the first closed for a new
    // client when slots run short.
    let kept = Arc::new(shared.idle.register(target.conn_id));
    let svc_kept = kept.clone();
    let svc = hyper::service::service_fn(move |req| {
        let st = svc_state.clone();
        let exchange = svc_kept.exchange();
        async move {
            let resp = handle(st, req).await;
            Ok::<_, std::convert::Infallible>(resp.map(|b| Guarded::new(b, Some(exchange))))
        }
    });
    // The header read timeout runs from the end of one exchange to the next request head: a
    // client that keeps a connection open without sending a request is let go after
    // `timeouts.keep_alive`, not after a tunnel's `idle` (it held a slot all that time).
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(shared.config.timeouts.next_request_head())
        .max_buf_size(shared.config.max_head_bytes.max(8192))
        .preserve_header_case(true)
        .title_case_headers(true)
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let mut shed = false;
    // `None`: the shutdown grace ran out before the client was done.
    let result = tokio::select! {
        r = conn.as_mut() => Some(r),
        () = shutdown.draining() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                biased;
                r = conn.as_mut() => Some(r),
                () = shutdown.cut() => None,
            }
        }
        _ = kept.shed() => {
            // Idle, it closes at once; a request that raced in is answered first.
            shed = true;
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                biased;
                r = conn.as_mut() => Some(r),
                () = shutdown.cut() => None,
            }
        }
    };
    let mut final_rec = state
        .rec
        .lock()
        .map(|r| r.clone())
        .unwrap_or_else(|p| p.into_inner().clone());
    final_rec.close_reason = Some(match result {
        None => CloseReason::Shutdown,
        Some(_) if shed => CloseReason::Shed,
        Some(Ok(())) => CloseReason::Done,
        // The first head came through regdoc's own reader: a header timeout is always the wait
        // for a next one.
        Some(Err(e)) if e.is_timeout() => CloseReason::KeepAliveTimeout,
        Some(Err(e)) if e.is_parse_too_large() => CloseReason::HeadTooLarge,
        Some(Err(e)) if e.is_parse() => CloseReason::BadRequest,
        Some(Err(_)) => CloseReason::ClientError,
    });
    *rec = final_rec;
}

async fn handle(st: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    if let Ok(mut r) = st.rec.lock() {
        r.requests += 1;
    }
    match exchange(&st, req).await {
        Ok(resp) => resp,
        Err(refusal) => {
            if let Ok(mut rec) = st.rec.lock() {
                rec.failed = true;
            }
            full(refusal.reply.to_response())
        }
    }
}

/// Forward one request. A refusal has already been diagnosed and logged.
async fn exchange(st: &State, req: Request<Incoming>) -> Result<Response<Body>, Refusal> {
    let started = Instant::now();
    // The record's path is taken before the request goes on; its time runs from now.
    let seen = SeenRequest::new(st.shared.config.log.requests, req.uri());
    let uri = req.uri().clone();
    let Some((host, port)) = origin_of(&uri) else {
        let mut t = st.base.clone();
        t.host = "-".into();
        let msg = if uri.scheme_str() == Some("https") {
            "absolute-form https:// request: use CONNECT for HTTPS through this proxy".to_string()
        } else {
            format!(
                "request target {:?} is not an absolute http:// URL (this is a proxy)",
                // Never the userinfo or query a client put in the target.
                crate::redact::request_target(&uri.to_string())
            )
        };
        let ev = t.event(
            Phase::Request,
            FailureKind::MalformedRequest,
            msg,
            started.elapsed(),
        );
        return Err(refuse(&st.shared, &ev));
    };
    let mut target = st.base.clone();
    target.endpoint = classify(&host, &st.shared.registries);
    target.host = host;
    target.port = port;
    if let Ok(mut r) = st.rec.lock() {
        r.target = Some(target.target());
        r.set_endpoint(&target.endpoint);
    }
    let auth = req
        .headers()
        .get("proxy-authorization")
        .map(|v| v.as_bytes());
    if let Some(r) = super::conn::policy(&st.shared, &target, auth, started) {
        return Err(r);
    }
    let key = target.target();
    let mut guard = st.upstream.lock().await;
    let reusable = matches!(&*guard, Some(u) if u.key == key && !u.sender.is_closed());
    if !reusable {
        *guard = None;
        *guard = Some(open_upstream(st, &mut target).await?);
    }
    let Some(up) = guard.as_mut() else {
        return Err(internal("no upstream connection"));
    };
    // What the exchange shows (credentials described, never kept), for the diagnosis.
    let (mut ex, redactor) =
        crate::intercept::exchange::from_request(req.method(), req.uri(), req.headers());
    let req = prepare_request(req, up.via_proxy);
    let timeout = st.shared.config.timeouts.response_headers;
    let t0 = Instant::now();
    let sent = tokio::time::timeout(timeout, async {
        up.sender.ready().await?;
        up.sender.send_request(req).await
    })
    .await;
    match sent {
        Ok(Ok(mut resp)) => {
            hop::strip(resp.headers_mut(), Leg::Proxy);
            drop(guard);
            ex.headers_ms = Some(t0.elapsed().as_millis() as u64);
            Ok(observe(st, &target, (ex, &redactor), &seen, resp, started).await)
        }
        Ok(Err(e)) => {
            *guard = None;
            // The connection was up (the dial succeeded): it ended before any response headers,
            // the same event interception records, and no status came from the server.
            let how = crate::observe::EarlyClose::of(&e);
            let mut ev = target.event(
                Phase::Http,
                FailureKind::UpstreamClosedBeforeHeaders { how },
                format!(
                    "the server's connection was {} before any response headers: {}",
                    how.describe(),
                    crate::intercept::exchange::error_chain(&e)
                ),
                started.elapsed(),
            );
            ev.http = Some(ex);
            let r = refuse(&st.shared, &ev);
            if let Some(ex) = &ev.http {
                record_request(&target, &seen, ex, r.reply.answered());
            }
            Err(r)
        }
        Err(_) => {
            *guard = None;
            let ev = target.event(
                Phase::Http,
                FailureKind::ResponseHeadersTimeout,
                format!(
                    "no response headers from {} within {} ms",
                    target.target(),
                    timeout.as_millis()
                ),
                started.elapsed(),
            );
            let r = refuse(&st.shared, &ev);
            record_request(&target, &seen, &ex, r.reply.answered());
            Err(r)
        }
    }
}

/// Write the `request` record of one forwarded exchange.
fn record_request(target: &TargetInfo, seen: &SeenRequest, ex: &HttpExchange, answered: Answered) {
    seen.emit(&target.request_origin(Mode::Forward), ex, answered);
}

/// Judge a forwarded exchange like an intercepted one: a registry served over plain HTTP shows
/// its 401/403/404/429 directly. Error bodies (small, capped) are read for the diagnosis and
/// replayed unchanged; other bodies stream.
async fn observe(
    st: &State,
    target: &TargetInfo,
    (mut ex, redactor): (crate::observe::HttpExchange, &crate::redact::Redactor),
    seen: &SeenRequest,
    resp: Response<Incoming>,
    started: Instant,
) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    crate::intercept::exchange::add_response(
        &mut ex,
        redactor,
        parts.status.as_u16(),
        &parts.headers,
        std::time::SystemTime::now(),
    );
    let dns = st.rec.lock().ok().and_then(|r| r.dns.clone());
    let judge = Judge {
        failures: &st.shared.failures,
        target,
        mode: Mode::Forward,
        dns: dns.as_ref(),
        tls: None,
        body_limit: st.shared.config.timeouts.response_headers,
        since: started,
    };
    let (body, failed) = judge.answer((ex, redactor), seen, &mut parts, body).await;
    if failed {
        if let Ok(mut rec) = st.rec.lock() {
            rec.failed = true;
        }
    }
    Response::from_parts(parts, body.boxed())
}

/// regdoc's own 502 for a failure no failure record stands for. Like every answer in place of
/// the server's, it names a cause (README: "with that header").
fn internal(what: &str) -> Refusal {
    Refusal {
        reply: Reply::new(
            StatusCode::BAD_GATEWAY,
            format!("regdoc: {what}"),
            reply::fallback_cause(),
        ),
        // No failure record stands for it: the connection's own record is all there is.
        logged: crate::record::failures::Logged::Full,
    }
}

/// Dial the origin (or the upstream proxy, which then gets absolute-form requests).
async fn open_upstream(st: &State, target: &mut TargetInfo) -> Result<Upstream, Refusal> {
    let shared = &st.shared;
    let proxy = shared
        .upstream
        .as_ref()
        .filter(|_| !shared.no_proxy.matches(&target.host, target.port))
        .filter(|_| {
            shared
                .resolver
                .connect_to_rule(&target.host, target.port)
                .is_none()
        });
    let mut rec = st
        .rec
        .lock()
        .map(|r| r.clone())
        .unwrap_or_else(|p| p.into_inner().clone());
    let result = if let Some(proxy) = proxy {
        target.upstream_proxy = Some(proxy.display());
        let started = Instant::now();
        let addrs = shared
            .resolver
            .lookup(&proxy.host, proxy.port)
            .await
            .map(|r| r.addrs);
        let dialed = match addrs {
            Ok(a) => dial(&a, shared.config.timeouts.connect)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match dialed {
            Ok((s, _)) => Ok((s, true)),
            Err(e) => {
                let ev = target.event(
                    Phase::UpstreamProxy,
                    FailureKind::UpstreamProxyUnreachable,
                    format!("cannot reach upstream proxy {}: {e}", proxy.display()),
                    started.elapsed(),
                );
                Err(refuse(shared, &ev))
            }
        }
    } else {
        establish(shared, target, &mut rec)
            .await
            .map(|e| (e.stream, false))
    };
    if let Ok(mut r) = st.rec.lock() {
        *r = ConnectionRecord {
            requests: r.requests,
            ..rec
        };
        r.mode = Mode::Forward;
    }
    let (stream, via_proxy) = result?;
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .preserve_header_case(true)
        .title_case_headers(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| internal(&format!("HTTP handshake with upstream failed: {e}")))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Upstream {
        key: target.target(),
        via_proxy,
        sender,
    })
}

fn origin_of(uri: &Uri) -> Option<(String, u16)> {
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let host = uri
        .host()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    Some((host, uri.port_u16().unwrap_or(80)))
}

/// Remove hop-by-hop headers and turn the target into origin form (unless an upstream proxy
/// takes the request in absolute form).
fn prepare_request(mut req: Request<Incoming>, via_proxy: bool) -> Request<Incoming> {
    let uri = req.uri().clone();
    if let Some(auth) = uri.authority() {
        if !req.headers().contains_key(HOST) {
            if let Ok(v) = HeaderValue::from_str(auth.as_str()) {
                req.headers_mut().insert(HOST, v);
            }
        }
    }
    hop::strip(req.headers_mut(), Leg::Proxy);
    if !via_proxy {
        let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        if let Ok(u) = pq.parse::<Uri>() {
            *req.uri_mut() = u;
        }
    }
    req
}

/// A reply of regdoc's own in this module's body type.
fn full(resp: Response<Bytes>) -> Response<Body> {
    resp.map(|b| Full::new(b).map_err(|never| match never {}).boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_of_absolute_uris() {
        assert_eq!(
            origin_of(&"http://Reg.Local:5000/v2/".parse().unwrap()),
            Some(("reg.local".into(), 5000))
        );
        assert_eq!(
            origin_of(&"http://reg/".parse().unwrap()),
            Some(("reg".into(), 80))
        );
        assert_eq!(origin_of(&"https://reg/".parse().unwrap()), None);
        assert_eq!(origin_of(&"/v2/".parse().unwrap()), None);
    }
}
