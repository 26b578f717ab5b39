//! The interception engine: TLS with the client under a minted leaf, TLS with the real server,
//! and HTTP/1.1 or HTTP/2 (whatever ALPN chose) relayed request by request with hyper, each
//! exchange observed and judged.
//!
//! Order of a connection: read the client's ClientHello (SNI, ALPN) → check the name (the SNI, if
//! any, must be the CONNECT host, and the CA must permit it) → TLS to the server offering the
//! client's protocols → only once the server's certificate passed verification, mint (or reuse)
//! the leaf for the CONNECT host, offering the protocol the server chose (so both sides speak the
//! same HTTP version) → relay.
//!
//! regdoc never vouches for a name it has not seen the real server prove: when the name check or
//! the server's handshake fails, the client gets no certificate, only a TLS alert (or the end of
//! the connection, as the server gave), and the failure record carries the diagnosis.

use super::answer::Judge;
use super::body::ReplyBody;
use super::exchange::{self, BODY_CAP};
use super::upstream_tls::UpstreamTlsError;
use super::{InterceptCtx, InterceptOutcome, Interceptor};
use crate::http::hop::{self, Leg};
use crate::observe::{EarlyClose, FailureEvent, FailureKind, HttpExchange, Phase, TlsObservation};
use crate::proxy::reply::{self, Reply};
use crate::record::{Answered, CloseReason, Mode, SeenRequest};
use crate::server::idle::Guarded;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::server::Acceptor;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Longest wait for the server's handshake while the client's own handshake waits on it. Docker
/// gives up a TLS handshake after 10 s (`TLSHandshakeTimeout`); answering a 502 that names the
/// problem before then is worth more than waiting out a longer `timeouts.tls`.
const UPSTREAM_HANDSHAKE_CAP: std::time::Duration = std::time::Duration::from_secs(8);

const H2: &[u8] = b"h2";
const H1: &[u8] = b"http/1.1";

/// Counts the bytes that cross the client side (TLS records included), and keeps a copy of the
/// first bytes read (the ClientHello) until told to stop.
struct Counting<C> {
    inner: C,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
    hello: Arc<HelloCopy>,
}

/// Largest ClientHello copy kept; rustls refuses larger hellos anyway.
const HELLO_CAP: usize = 16 * 1024;

#[derive(Default)]
struct HelloCopy {
    done: std::sync::atomic::AtomicBool,
    bytes: std::sync::Mutex<Vec<u8>>,
}

impl HelloCopy {
    fn push(&self, b: &[u8]) {
        if self.done.load(Ordering::Relaxed) {
            return;
        }
        let mut v = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        let room = HELLO_CAP.saturating_sub(v.len());
        v.extend_from_slice(&b[..b.len().min(room)]);
    }

    /// Stop copying and hand over what was copied.
    fn take(&self) -> Vec<u8> {
        self.done.store(true, Ordering::Relaxed);
        std::mem::take(&mut *self.bytes.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl<C: AsyncRead + Unpin> AsyncRead for Counting<C> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        self.up.fetch_add(n as u64, Ordering::Relaxed);
        if n > 0 {
            self.hello.push(&buf.filled()[before..]);
        }
        r
    }
}

impl<C: AsyncWrite + Unpin> AsyncWrite for Counting<C> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.down.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The upstream HTTP connection.
enum Sender {
    /// HTTP/1.1 carries one exchange at a time; the client side is sequential too, so the lock
    /// is only ever contended by a request waiting for the previous response head.
    H1(tokio::sync::Mutex<hyper::client::conn::http1::SendRequest<ReplyBody>>),
    H2(hyper::client::conn::http2::SendRequest<ReplyBody>),
}

impl Sender {
    async fn send(&self, req: Request<ReplyBody>) -> Result<Response<Incoming>, hyper::Error> {
        match self {
            Sender::H1(m) => {
                let mut s = m.lock().await;
                s.ready().await?;
                s.send_request(req).await
            }
            Sender::H2(s) => {
                let mut s = s.clone();
                s.ready().await?;
                s.send_request(req).await
            }
        }
    }
}

struct Conn {
    ctx: InterceptCtx,
    /// The tunnel's target, as records name it.
    target: crate::proxy::TargetInfo,
    sender: Option<Sender>,
    /// Set when the server could not be used: every request gets this reply.
    refused: Option<Reply>,
    h2_upstream: bool,
    tls: TlsObservation,
    requests: AtomicU64,
    failures: AtomicU64,
    started: Instant,
}

impl Interceptor {
    /// Intercept one CONNECT tunnel. See the module documentation for the order of events.
    pub async fn serve<C>(
        &self,
        client: C,
        upstream: TcpStream,
        ctx: InterceptCtx,
    ) -> InterceptOutcome
    where
        C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.serve_until(client, upstream, ctx, std::future::pending())
            .await
    }

    /// [`Interceptor::serve`], ended when `cut` resolves (the proxy is shutting down) while
    /// requests are relayed: then with the counts so far and `close_reason = "shutdown"`. (The
    /// handshakes before are bounded by `timeouts.tls`; the caller ends those.)
    pub async fn serve_until<C>(
        &self,
        client: C,
        upstream: TcpStream,
        ctx: InterceptCtx,
        cut: impl std::future::Future<Output = ()>,
    ) -> InterceptOutcome
    where
        C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let up_bytes = Arc::new(AtomicU64::new(0));
        let down_bytes = Arc::new(AtomicU64::new(0));
        let hello_copy = Arc::new(HelloCopy::default());
        let client = Counting {
            inner: client,
            up: up_bytes.clone(),
            down: down_bytes.clone(),
            hello: hello_copy.clone(),
        };
        let started = Instant::now();
        let mut tls = TlsObservation::default();
        let outcome = |tls: TlsObservation, requests, failures, close_reason| InterceptOutcome {
            bytes_up: up_bytes.load(Ordering::Relaxed),
            bytes_down: down_bytes.load(Ordering::Relaxed),
            requests,
            failures,
            tls,
            close_reason,
        };

        // 1. The client's ClientHello.
        // Buffered both ways for the reasons given at [`super::upstream_tls::UpstreamIo`].
        let client = tokio::io::BufStream::with_capacity(
            super::upstream_tls::TLS_IO_BUFFER,
            super::upstream_tls::TLS_IO_BUFFER,
            client,
        );
        let lazy = tokio_rustls::LazyConfigAcceptor::new(Acceptor::default(), client);
        let start = match tokio::time::timeout(self.tls_timeout, lazy).await {
            Ok(Ok(s)) => s,
            Ok(Err(_)) => return outcome(tls, 0, 0, CloseReason::ClientHelloInvalid),
            Err(_) => return outcome(tls, 0, 0, CloseReason::ClientHelloTimeout),
        };
        // The versions the client offered are not exposed by rustls: read them from the copy.
        if let Ok(h) = crate::tls::client_hello::parse(&hello_copy.take()) {
            tls.client_versions = h.versions;
        }
        let offered: Vec<Vec<u8>> = {
            let hello = start.client_hello();
            tls.sni = hello.server_name().map(str::to_string);
            hello
                .alpn()
                .map(|it| it.map(<[u8]>::to_vec).collect())
                .unwrap_or_default()
        };
        tls.alpn = offered
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();

        // 2. The name: the CONNECT host, which the server will have to prove, and nothing else.
        let refusal = if !super::refuse::sni_matches(tls.sni.as_deref(), &ctx.host) {
            let sni = tls.sni.clone().unwrap_or_default();
            let error = format!(
                "the client asked TLS for {sni:?} inside a tunnel to {}: regdoc mints certificates only for the tunnel's host",
                ctx.host
            );
            Some((
                FailureKind::TlsSniMismatch { sni },
                error,
                CloseReason::SniMismatch,
            ))
        } else if !self.minter.permits(&ctx.host) {
            let permitted = self.minter.ca().describe_permitted();
            let error = format!(
                "{} is outside the name constraints of regdoc's CA (it may vouch for {permitted}); no certificate was minted",
                ctx.host
            );
            Some((
                FailureKind::InterceptNameNotPermitted { permitted },
                error,
                CloseReason::NameNotPermitted,
            ))
        } else {
            None
        };
        if let Some((kind, error, reason)) = refusal {
            let ev = failure_event(
                &ctx,
                Phase::Policy,
                kind,
                error,
                Some(tls.clone()),
                None,
                started,
            );
            let alert = super::refuse::Alert::UNRECOGNIZED_NAME;
            self.record_refusal(&ctx, &ev, Some(alert));
            let mut io = start.io;
            super::refuse::send_alert(&mut io, alert, self.tls_timeout).await;
            return outcome(tls, 0, 1, reason);
        }

        // 3. The server, offering what the client offered (among what regdoc relays).
        let to_server: Vec<Vec<u8>> = offered
            .iter()
            .filter(|p| p.as_slice() == H2 || p.as_slice() == H1)
            .cloned()
            .collect();
        let upstream_limit = self.tls_timeout.min(UPSTREAM_HANDSHAKE_CAP);
        let connected = tokio::time::timeout(
            upstream_limit,
            self.upstream.connect(upstream, &ctx.host, to_server),
        )
        .await
        .unwrap_or_else(|_| {
            Err(UpstreamTlsError::Timeout {
                secs: upstream_limit.as_secs(),
            })
        });

        // 4. Only a server that proved the name gets it vouched for: otherwise the client gets
        // no certificate, only the server's failure as an alert (or a close).
        let server = match connected {
            Ok(s) => s,
            Err(e) => {
                let answer = super::refuse::for_upstream(&e);
                self.upstream_refused(&ctx, &tls, e, answer, started);
                let mut io = start.io;
                match answer {
                    super::refuse::Answer::Alert(a) => {
                        super::refuse::send_alert(&mut io, a, self.tls_timeout).await
                    }
                    super::refuse::Answer::Close => {
                        let _ = tokio::time::timeout(
                            self.tls_timeout,
                            tokio::io::AsyncWriteExt::shutdown(&mut io),
                        )
                        .await;
                    }
                }
                return outcome(tls, 0, 1, CloseReason::UpstreamTlsFailed);
            }
        };
        let (_, c) = server.get_ref();
        tls.version = c.protocol_version().map(version_name);
        tls.cipher = c
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()));
        let to_client = match c.alpn_protocol() {
            Some(p) if p == H2 => vec![H2.to_vec()],
            _ if offered.iter().any(|p| p == H1) => vec![H1.to_vec()],
            _ => Vec::new(),
        };

        // 5. The leaf for the CONNECT host, and the protocol to offer the client.
        let (leaf, _cache) = match self.minter.get(&ctx.host).await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(conn_id = ctx.conn_id, "interception: {e}");
                let mut io = start.io;
                let alert = super::refuse::Alert::INTERNAL_ERROR;
                super::refuse::send_alert(&mut io, alert, self.tls_timeout).await;
                return outcome(tls, 0, 0, CloseReason::LeafMintFailed);
            }
        };
        let h2_client = to_client.first().map(|p| p == H2).unwrap_or(false);
        let cfg = leaf.server_config(to_client.first().map(Vec::as_slice).unwrap_or_default());

        // 6. Finish the client's handshake under the leaf.
        let client_tls = match tokio::time::timeout(self.tls_timeout, start.into_stream(cfg)).await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) if is_rejection(&e) => {
                self.client_rejected(&ctx, &tls, e.to_string(), started);
                return outcome(tls, 0, 1, CloseReason::ClientRejectedCertificate);
            }
            Ok(Err(_)) => return outcome(tls, 0, 0, CloseReason::ClientHandshakeFailed),
            Err(_) => return outcome(tls, 0, 0, CloseReason::ClientHandshakeTimeout),
        };

        // 7. The upstream HTTP connection.
        // The server proved its name already: a failure here is regdoc's to answer in HTTP.
        let mut refused = None;
        let mut upstream_closed = None;
        let h2_upstream = server.get_ref().1.alpn_protocol() == Some(H2);
        let sender = match handshake(server, h2_upstream).await {
            Ok((sender, closed)) => {
                upstream_closed = Some(closed);
                Some(sender)
            }
            Err(e) => {
                refused = Some(Reply::plain(
                    StatusCode::BAD_GATEWAY,
                    reply::fallback_cause(),
                    format!("regdoc: the server's HTTP connection failed: {e}\n"),
                ));
                None
            }
        };
        let failures_before = u64::from(refused.is_some());
        let conn = Arc::new(Conn {
            target: ctx.target_info(),
            ctx,
            sender,
            refused,
            h2_upstream,
            tls: tls.clone(),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(failures_before),
            started,
        });

        // 8. Relay requests until the client is done.
        let svc_conn = conn.clone();
        let service = hyper::service::service_fn(move |req| {
            let c = svc_conn.clone();
            // Busy until the reply's body is written: only then does the client's connection
            // wait for its next request, and may be closed for a new client.
            let exchange = c.ctx.kept_alive.as_ref().map(|k| k.exchange());
            async move {
                let resp = c.handle(req).await;
                Ok::<_, Infallible>(resp.map(|b| Guarded::new(b, exchange)))
            }
        });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        if h2_client {
            builder = builder.http2_only();
        } else {
            builder = builder.http1_only();
            // Bounds a keep-alive client that never sends its next request (an HTTP/2 client
            // is bounded by the server closing its side, see below).
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(self.next_head_timeout);
        }
        let serving = builder.serve_connection(
            TokioIo::new(super::coalesce::CoalescedReads::new(client_tls)),
            service,
        );
        tokio::pin!(serving);
        // When the server ends its connection (idle timeout, `Connection: close`), end the
        // client's too, gracefully: its next request then opens a new tunnel instead of
        // meeting a dead upstream.
        let server_gone = async {
            match upstream_closed {
                Some(rx) => {
                    let _ = rx.await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let shed = async {
            match &conn.ctx.kept_alive {
                Some(k) => k.shed().await,
                None => std::future::pending::<()>().await,
            }
        };
        let served = |r: Result<(), Box<dyn std::error::Error + Send + Sync>>, server_closed| match (
            r,
            server_closed,
        ) {
            (Ok(()), false) => CloseReason::ClientClosed,
            (Ok(()), true) => CloseReason::ServerClosed,
            (Err(e), _) if is_header_timeout(&*e) => CloseReason::KeepAliveTimeout,
            (Err(_), _) => CloseReason::ClientError,
        };
        let mut cut = std::pin::pin!(cut);
        let close_reason = tokio::select! {
            r = serving.as_mut() => served(r, false),
            _ = server_gone => {
                serving.as_mut().graceful_shutdown();
                tokio::select! {
                    r = serving.as_mut() => served(r, true),
                    () = &mut cut => CloseReason::Shutdown,
                }
            }
            _ = shed => {
                // Waiting for its next request, it closes at once; a request that raced in is
                // answered first. However it ends (an HTTP/2 client may close its side before
                // regdoc's GOAWAY is all written), the shedding is why.
                serving.as_mut().graceful_shutdown();
                tokio::select! {
                    _ = serving.as_mut() => CloseReason::Shed,
                    () = &mut cut => CloseReason::Shutdown,
                }
            }
            () = &mut cut => CloseReason::Shutdown,
        };
        outcome(
            tls,
            conn.requests.load(Ordering::Relaxed),
            conn.failures.load(Ordering::Relaxed),
            close_reason,
        )
    }

    /// Record a server whose handshake failed; the client is told by `answer`.
    fn upstream_refused(
        &self,
        ctx: &InterceptCtx,
        tls: &TlsObservation,
        e: UpstreamTlsError,
        answer: super::refuse::Answer,
        started: Instant,
    ) {
        let (kind, error) = match &e {
            UpstreamTlsError::Certificate { problem, detail } => (
                FailureKind::TlsUpstreamCertificate {
                    problem: *problem,
                    detail: detail.clone(),
                },
                format!("the server's certificate was refused: {detail}"),
            ),
            UpstreamTlsError::Alert { description } => (
                FailureKind::TlsAlert {
                    level: "fatal".into(),
                    description: description.clone(),
                },
                e.to_string(),
            ),
            UpstreamTlsError::Closed { .. } => (FailureKind::TlsServerClosed, e.to_string()),
            UpstreamTlsError::Reset { .. } => (FailureKind::TlsServerReset, e.to_string()),
            UpstreamTlsError::NotTls { .. } => (FailureKind::TlsNotTls, e.to_string()),
            UpstreamTlsError::Timeout { .. } => (FailureKind::TlsServerSilent, e.to_string()),
            // No closer kind: a name rustls cannot use, or a local TLS configuration problem.
            UpstreamTlsError::Handshake { .. } => (FailureKind::TlsServerClosed, e.to_string()),
        };
        let alert = match answer {
            super::refuse::Answer::Alert(a) => Some(a),
            super::refuse::Answer::Close => None,
        };
        let error = match alert {
            Some(a) => format!(
                "{error}; the client got no certificate, only a TLS alert ({})",
                a.name
            ),
            None => format!("{error}; the client got no certificate, its connection was closed"),
        };
        let ev = failure_event(
            ctx,
            Phase::Tls,
            kind,
            error,
            Some(tls.clone()),
            None,
            started,
        );
        self.record_refusal(ctx, &ev, alert);
    }

    /// Write the failure record of a client turned away before any certificate.
    fn record_refusal(
        &self,
        ctx: &InterceptCtx,
        ev: &FailureEvent,
        alert: Option<super::refuse::Alert>,
    ) {
        let findings = ctx.failures.diagnoser().diagnose(ev);
        ctx.failures.write(
            ev,
            &findings,
            None,
            alert.map(|a| crate::diagnose::symptom::Reply::Alert(a.name)),
        );
    }

    fn client_rejected(
        &self,
        ctx: &InterceptCtx,
        tls: &TlsObservation,
        detail: String,
        started: Instant,
    ) {
        let ev = failure_event(
            ctx,
            Phase::Tls,
            FailureKind::TlsClientRejected {
                detail: detail.clone(),
            },
            format!("the client refused regdoc's certificate (is the regdoc CA trusted for this host?): {detail}"),
            Some(tls.clone()),
            None,
            started,
        );
        let findings = ctx.failures.diagnoser().diagnose(&ev);
        ctx.failures.write(&ev, &findings, None, None);
    }
}

/// The upstream HTTP connection, and a receiver that completes when that connection ends
/// (the server closed it, e.g. after its idle timeout).
async fn handshake(
    s: tokio_rustls::client::TlsStream<super::upstream_tls::UpstreamIo>,
    h2: bool,
) -> Result<(Sender, tokio::sync::oneshot::Receiver<()>), hyper::Error> {
    let io = TokioIo::new(super::coalesce::CoalescedReads::new(s));
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    if h2 {
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(io)
            .await?;
        tokio::spawn(async move {
            let _ = conn.await;
            let _ = closed_tx.send(());
        });
        Ok((Sender::H2(sender), closed_rx))
    } else {
        let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(async move {
            let _ = conn.await;
            let _ = closed_tx.send(());
        });
        Ok((Sender::H1(tokio::sync::Mutex::new(sender)), closed_rx))
    }
}

fn failure_event(
    ctx: &InterceptCtx,
    phase: Phase,
    kind: FailureKind,
    error: String,
    tls: Option<TlsObservation>,
    http: Option<HttpExchange>,
    started: Instant,
) -> FailureEvent {
    // Built as every failure of the proxy is: the target joined (an IPv6 host in brackets),
    // the sentence redacted.
    let mut ev = ctx
        .target_info()
        .event(phase, kind, error, started.elapsed());
    ev.dns = ctx.dns.clone();
    ev.tls = tls;
    ev.http = http;
    ev
}

/// Whether a failed client handshake means the client refused regdoc's certificate: it sent an
/// alert (Go sends `bad_certificate` for an unknown authority), or hung up right after seeing
/// the certificate, as some clients do instead.
fn is_rejection(e: &io::Error) -> bool {
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return matches!(tls, rustls::Error::AlertReceived(_));
    }
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
    )
}

/// Whether the client side ended because it sent no next request head in time.
fn is_header_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<hyper::Error>()
        .is_some_and(hyper::Error::is_timeout)
}

/// `TLS1.3` style, as the passthrough observation names versions.
fn version_name(v: rustls::ProtocolVersion) -> String {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLS1.3".into(),
        rustls::ProtocolVersion::TLSv1_2 => "TLS1.2".into(),
        other => format!("{other:?}"),
    }
}

impl Conn {
    async fn handle(&self, req: Request<Incoming>) -> Response<ReplyBody> {
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
fn own_reply(r: &Reply) -> Response<ReplyBody> {
    r.to_response().map(ReplyBody::full)
}

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

    /// Failure records of an intercepted tunnel to an IPv6 literal name it as the proxy's
    /// other records do: `[::1]:8443`, not `::1:8443`.
    #[test]
    fn failure_events_keep_ipv6_brackets() {
        let cfg = crate::config::Config::default();
        let diagnoser = Arc::new(crate::diagnose::Diagnoser::new(&cfg));
        let ctx = InterceptCtx {
            conn_id: 7,
            client: "127.0.0.1:40000".parse().unwrap(),
            host: "::1".into(),
            port: 8443,
            endpoint: Default::default(),
            failures: Arc::new(crate::record::failures::FailureLog::new(
                diagnoser, &cfg.log,
            )),
            response_headers_timeout: std::time::Duration::from_secs(1),
            log_requests: false,
            upstream_proxy: None,
            dns: None,
            kept_alive: None,
        };
        let ev = failure_event(
            &ctx,
            Phase::Http,
            FailureKind::ResponseHeadersTimeout,
            "none came".into(),
            None,
            None,
            Instant::now(),
        );
        assert_eq!(ev.target, "[::1]:8443");
        assert_eq!(ev.host, "::1");
    }

    #[test]
    fn rejection_is_an_alert_or_a_hang_up() {
        let alert = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::BadCertificate),
        );
        assert!(is_rejection(&alert));
        assert!(is_rejection(&io::Error::from(io::ErrorKind::UnexpectedEof)));
        let garbage = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        );
        assert!(!is_rejection(&garbage));
    }
}
