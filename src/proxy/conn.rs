//! One client connection: read its first request head, apply policy, and dispatch to a CONNECT
//! tunnel or to plain forwarding. Ends with one `connection` record.

use super::connect::{establish, refuse, Refusal};
use super::head::{read_head, HeadError};
use super::{Shared, TargetInfo, TunnelFailures};
use crate::config::split_host_port;
use crate::endpoint::classify;
use crate::net::prefixed::Prefixed;
use crate::observe::{FailureKind, Phase};
use crate::policy::addr::{any_contains, canonical};
use crate::record::failures::Logged;
use crate::record::{timestamp, CloseReason, ConnectionRecord, Mode, PhaseOutcome};
use crate::shutdown::Shutdown;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::Instrument;

/// Serve one client connection to completion, or until the shutdown grace is over.
///
/// The connection runs inside a `conn` span, so every `log` line written on its behalf (a
/// resolver note, an interception error) carries its `conn_id`, as its records do.
pub async fn serve(shared: Arc<Shared>, stream: TcpStream, client: SocketAddr, shutdown: Shutdown) {
    // On a dual-stack listener an IPv4 client arrives as ::ffff:a.b.c.d: rules and records
    // speak of the IPv4 address it is.
    let client = canonical(client);
    let conn_id = shared.next_conn_id();
    // conn_id alone: it joins a log line to the connection's records, which name the client;
    // every field is kept per open connection (measured: README, Performance).
    let span = tracing::info_span!("conn", conn_id);
    serve_in_span(shared, stream, client, conn_id, shutdown)
        .instrument(span)
        .await
}

async fn serve_in_span(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    client: SocketAddr,
    conn_id: u64,
    shutdown: Shutdown,
) {
    let started = Instant::now();
    let mut rec = ConnectionRecord::new(conn_id, client);
    let _ = stream.set_nodelay(true);
    let mut target = TargetInfo {
        conn_id,
        client,
        host: String::new(),
        port: 0,
        endpoint: Default::default(),
        upstream_proxy: None,
        metrics: shared.metrics.clone(),
    };

    if !any_contains(&shared.config.allowed_clients, client.ip()) {
        // Not an open relay: answer without reading anything further.
        let ev = target.event(
            Phase::Policy,
            FailureKind::ClientNotAllowed,
            format!("client {} is not in allowed_clients", client.ip()),
            started.elapsed(),
        );
        let r = refuse(&shared, &ev);
        write_refusal(&mut stream, &r).await;
        finish_refused(&shared, rec, started, CloseReason::Refused, &r);
        return;
    }

    let head = match read_head(
        &mut stream,
        shared.config.max_head_bytes,
        shared.config.timeouts.request_head,
    )
    .await
    {
        Ok(h) => h,
        Err(HeadError::Closed) => return, // a health check or port scan: nothing to record
        Err(e) => {
            let kind = match &e {
                HeadError::TooLarge(limit) => FailureKind::HeadTooLarge { limit: *limit },
                HeadError::Timeout(_) => FailureKind::RequestTimeout,
                HeadError::Tls { .. } => FailureKind::TlsInsteadOfHttp,
                _ => FailureKind::MalformedRequest,
            };
            let error = match &e {
                HeadError::Tls { first_bytes } => tls_instead_of_http(first_bytes),
                other => other.to_string(),
            };
            let ev = target.event(Phase::Request, kind, error, started.elapsed());
            let r = refuse(&shared, &ev);
            if !matches!(e, HeadError::Io(_)) {
                write_refusal(&mut stream, &r).await;
            }
            finish_refused(&shared, rec, started, CloseReason::BadRequest, &r);
            return;
        }
    };
    if head.method.eq_ignore_ascii_case("CONNECT") {
        rec.requests = 1;
        let Some((host, port)) = split_host_port(&head.target).filter(|(h, _)| valid_host(h))
        else {
            let ev = target.event(
                Phase::Request,
                FailureKind::MalformedRequest,
                format!(
                    "CONNECT target {:?} is not host:port",
                    // Never the userinfo or query a client put in the target.
                    truncate(&crate::redact::request_target(&head.target), 80)
                ),
                started.elapsed(),
            );
            let r = refuse(&shared, &ev);
            write_refusal(&mut stream, &r).await;
            finish_refused(&shared, rec, started, CloseReason::BadRequest, &r);
            return;
        };
        target.host = host.trim_end_matches('.').to_ascii_lowercase();
        target.port = port;
        target.endpoint = classify(&target.host, &shared.registries);
        rec.target = Some(target.target());
        rec.set_endpoint(&target.endpoint);
        if let Some(r) = policy(
            &shared,
            &target,
            head.header("proxy-authorization"),
            started,
        ) {
            write_refusal(&mut stream, &r).await;
            finish_refused(&shared, rec, started, CloseReason::Refused, &r);
            return;
        }
        // Only the bytes after the head go on; the rest of the head (its buffer, headers) is
        // freed now rather than held for the tunnel's lifetime.
        let rest = {
            let h = head;
            h.rest
        };
        let refusal = tunnel(&shared, stream, rest, &mut target, &mut rec, shutdown).await;
        let failed = rec.failed;
        finish(&shared, rec, started, CloseReason::Done, failed, refusal);
    } else {
        let stream = Prefixed::new(head.raw.clone(), stream);
        Box::pin(super::forward::serve(
            shared.clone(),
            stream,
            &mut target,
            &mut rec,
            shutdown,
        ))
        .await;
        let failed = rec.failed;
        finish(&shared, rec, started, CloseReason::Done, failed, None);
    }
}

/// A client gone already must not raise SIGPIPE: the binary ignores it, a library cannot know.
#[cfg(any(target_os = "linux", target_os = "android"))]
const NOSIGNAL: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const NOSIGNAL: libc::c_int = 0;

/// Refuse a connection whose client already has its share of connections open, from the
/// accept loop and without waiting for anything: the client over its share costs no slot, no
/// task, and no read beyond what it already sent. The answer is written without blocking (a
/// fresh socket's send buffer takes it whole); should it not fit, the client gets the close.
pub fn refuse_over_limit(
    shared: &Shared,
    stream: TcpStream,
    client: SocketAddr,
    over: &crate::server::clients::OverLimit,
) {
    let conn_id = shared.next_conn_id();
    let target = TargetInfo {
        conn_id,
        client,
        host: String::new(),
        port: 0,
        endpoint: Default::default(),
        upstream_proxy: None,
        metrics: shared.metrics.clone(),
    };
    let ev = target.event(
        Phase::Policy,
        FailureKind::ClientConnectionLimit {
            limit: over.max,
            open: over.open,
        },
        over.to_string(),
        std::time::Duration::ZERO,
    );
    let r = refuse(shared, &ev);
    let sock = socket2::SockRef::from(&stream);
    let _ = sock.send_with_flags(&r.reply.to_bytes(), NOSIGNAL);
    // Whatever the client sent already is read (and dropped) first: closing a socket with
    // unread data sends a reset, and a reset may destroy the answer before the client reads it.
    let mut sink = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
    for _ in 0..16 {
        match sock.recv(&mut sink) {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
    let _ = sock.shutdown(std::net::Shutdown::Write);
    let mut rec = ConnectionRecord::new(conn_id, client);
    rec.close_reason = Some(CloseReason::Refused);
    rec.failed = true;
    rec.timestamp = timestamp(SystemTime::now());
    shared.failures.connection(&rec, Some(r.logged));
}

/// Port, proxy authentication, then the destination as named (host patterns, IP literals;
/// the addresses a name resolves to are judged when it is resolved). `None` when the request
/// may proceed. Authentication comes before the destination so that an unauthenticated client
/// learns nothing of the destination rules.
pub fn policy(
    shared: &Shared,
    target: &TargetInfo,
    auth: Option<&[u8]>,
    started: Instant,
) -> Option<Refusal> {
    if !shared.config.allowed_ports.contains(&target.port) {
        let ev = target.event(
            Phase::Policy,
            FailureKind::PortNotAllowed { port: target.port },
            format!("destination port {} is not in allowed_ports", target.port),
            started.elapsed(),
        );
        return Some(refuse(shared, &ev));
    }
    if !shared.auth_ok(auth) {
        let ev = target.event(
            Phase::Policy,
            FailureKind::ProxyAuthRequired {
                provided: auth.is_some(),
            },
            if auth.is_some() {
                "proxy credentials were refused".to_string()
            } else {
                "this proxy requires authentication and the client sent none".to_string()
            },
            started.elapsed(),
        );
        return Some(refuse(shared, &ev));
    }
    if let Err(denial) = shared.destinations.check_name(&target.host, target.port) {
        let ev = target.event(
            Phase::Policy,
            FailureKind::DestinationNotAllowed {
                addr: denial.what.clone(),
                rule: denial.rule.clone(),
            },
            denial.to_string(),
            started.elapsed(),
        );
        return Some(refuse(shared, &ev));
    }
    None
}

/// Establish and run the tunnel. Returns how the refusal was logged when the destination could
/// not be reached (the client got regdoc's answer instead of a tunnel).
async fn tunnel(
    shared: &Arc<Shared>,
    mut client: TcpStream,
    rest: bytes::Bytes,
    target: &mut TargetInfo,
    rec: &mut ConnectionRecord,
    mut shutdown: Shutdown,
) -> Option<Logged> {
    // Every stage that can outlast the shutdown grace (dialling, the interception, the copy)
    // ends when the grace is over, and the record says so; each keeps what it filled in.
    // Boxed, like the other paths below that an idle tunnel is not in: a future's size is that
    // of its largest state, and every idle tunnel would carry the resolver's and the
    // interceptor's state machines inline.
    let established = tokio::select! {
        biased;
        r = Box::pin(establish(shared, target, rec)) => r,
        () = shutdown.cut() => {
            rec.close_reason = Some(CloseReason::Shutdown);
            return None;
        }
    };
    let est = match established {
        Ok(e) => e,
        Err(r) => {
            write_refusal(&mut client, &r).await;
            rec.failed = true;
            rec.close_reason = Some(CloseReason::Refused);
            return Some(r.logged);
        }
    };
    rec.mode = Mode::Tunnel;
    let server = est.stream;
    let mut hello = super::reply::ESTABLISHED.to_vec();
    hello.extend_from_slice(&est.leftover);
    if let Err(_e) = client.write_all(&hello).await {
        rec.close_reason = Some(CloseReason::ClientClosed);
        return None;
    }
    if let Some(ic) = shared
        .interceptor
        .as_ref()
        .filter(|ic| ic.wants(&target.host, &target.endpoint))
    {
        let ctx = crate::intercept::InterceptCtx {
            conn_id: target.conn_id,
            client: target.client,
            host: target.host.clone(),
            port: target.port,
            endpoint: target.endpoint.clone(),
            failures: shared.failures.clone(),
            response_headers_timeout: shared.config.timeouts.response_headers,
            log_requests: shared.config.log.requests,
            upstream_proxy: target.upstream_proxy.clone(),
            dns: rec.dns.clone(),
            kept_alive: Some(shared.idle.register(target.conn_id)),
        };
        rec.mode = Mode::Intercept;
        let client = Prefixed::new(rest, client);
        // It ends itself when cut while relaying requests (with its counts); this ends its
        // handshakes.
        let mut cut = shutdown.clone();
        let out = tokio::select! {
            biased;
            out = Box::pin(ic.serve_until(client, server, ctx, shutdown.cut())) => out,
            () = cut.cut() => {
                rec.close_reason = Some(CloseReason::Shutdown);
                return None;
            }
        };
        rec.bytes_up = out.bytes_up;
        rec.bytes_down = out.bytes_down;
        rec.requests = out.requests;
        rec.close_reason = Some(out.close_reason);
        rec.set_tls(&out.tls);
        rec.failed |= out.failures > 0;
        return None;
    }
    let probe_path = match (&target.upstream_proxy, &shared.upstream) {
        (Some(_), Some(proxy)) => crate::net::probe::ProbePath::Upstream {
            proxy: proxy.clone(),
            addr: est.peer,
            host: target.host.clone(),
            port: target.port,
        },
        _ => crate::net::probe::ProbePath::Direct(est.peer),
    };
    let failures = TunnelFailures {
        shared,
        target,
        dns: est.dns.clone(),
        failed: AtomicBool::new(false),
        probe_path: Some(probe_path),
    };
    let client = Prefixed::new(rest, client);
    let report =
        crate::net::tunnel::run(client, server, &shared.tunnel, &failures, &mut shutdown).await;
    rec.bytes_up = report.bytes_up;
    rec.bytes_down = report.bytes_down;
    rec.zero_copy = report.zero_copy;
    rec.close_reason = Some(report.close_reason);
    if let Some(t) = &report.tls {
        rec.set_tls(t);
    }
    if let Some(ms) = report.tls_ms {
        let outcome = match (report.tls_ok, report.close_reason) {
            (_, CloseReason::TlsTimeout) => "timeout",
            (Some(true), _) => "ok",
            _ => "failed",
        };
        rec.phases.tls = Some(PhaseOutcome { outcome, ms });
    }
    rec.failed |= failures.failed.load(Ordering::Relaxed);
    // A tunnel that completed a handshake and carried data is a success the diagnosis can
    // use as context (REST worked, so a later data-endpoint failure is a firewall gap).
    if !rec.failed && report.tls_ok != Some(false) && report.bytes_down > 0 {
        shared.diagnoser.note_success(crate::diagnose::SuccessNote {
            client: target.client.ip(),
            host: target.host.clone(),
            endpoint: target.endpoint.clone(),
            at: SystemTime::now(),
            http: None,
        });
    }
    None
}

/// Write the connection's record. `refusal` is how the failure it was refused with was logged,
/// when it was refused before reaching any upstream (see [`FailureLog::connection`]).
///
/// [`FailureLog::connection`]: crate::record::failures::FailureLog::connection
fn finish(
    shared: &Shared,
    mut rec: ConnectionRecord,
    started: Instant,
    reason: CloseReason,
    failed: bool,
    refusal: Option<Logged>,
) {
    rec.duration_ms = crate::record::millis(started.elapsed());
    // What ended the connection first wins; `reason` only when nothing set one.
    rec.close_reason.get_or_insert(reason);
    rec.failed = failed;
    rec.timestamp = timestamp(SystemTime::now());
    shared.failures.connection(&rec, refusal);
}

/// [`finish`] for a connection refused with `r` before reaching any upstream.
fn finish_refused(
    shared: &Shared,
    rec: ConnectionRecord,
    started: Instant,
    reason: CloseReason,
    r: &Refusal,
) {
    finish(shared, rec, started, reason, true, Some(r.logged));
}

pub(crate) async fn write_refusal<W: tokio::io::AsyncWrite + Unpin>(w: &mut W, r: &Refusal) {
    let _ = w.write_all(&r.reply.to_bytes()).await;
    let _ = w.shutdown().await;
}

/// Describe a TLS ClientHello that arrived where a request was expected, naming the SNI the
/// client used for the proxy (it shows which `HTTPS_PROXY` URL is wrong).
fn tls_instead_of_http(first: &[u8]) -> String {
    let sni = crate::tls::client_hello::parse(first)
        .ok()
        .and_then(|h| h.sni);
    match sni {
        Some(s) => format!(
            "client started TLS (SNI {s}) instead of an HTTP request: its proxy URL uses https:// but this proxy speaks plain HTTP; use http://"
        ),
        None => "client started TLS instead of an HTTP request: its proxy URL uses https:// but this proxy speaks plain HTTP; use http://".to_string(),
    }
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}
