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
//!
//! The steps live here; `client_io` counts the client's bytes and copies its ClientHello,
//! `failures` records what went wrong before the relay, `upstream_http` is the HTTP connection
//! to the server, and `relay` answers the client's requests one by one.

mod client_io;
mod failures;
mod relay;
mod upstream_http;

use super::upstream_tls::UpstreamTlsError;
use super::{InterceptCtx, InterceptOutcome, Interceptor};
use crate::observe::{FailureKind, Phase, TlsObservation};
use crate::proxy::reply::{self, Reply};
use crate::record::CloseReason;
use crate::server::idle::Guarded;
use client_io::{Counting, HelloCopy};
use failures::failure_event;
use http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo};
use relay::Conn;
use rustls::server::Acceptor;
use std::convert::Infallible;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Longest wait for the server's handshake while the client's own handshake waits on it. Docker
/// gives up a TLS handshake after 10 s (`TLSHandshakeTimeout`); answering a 502 that names the
/// problem before then is worth more than waiting out a longer `timeouts.tls`.
const UPSTREAM_HANDSHAKE_CAP: std::time::Duration = std::time::Duration::from_secs(8);

const H2: &[u8] = b"h2";
const H1: &[u8] = b"http/1.1";

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
            Ok(Err(e)) => {
                let refused = match ending(&e) {
                    Some(Ending::Alert) => true,
                    Some(Ending::HangUp) => ctx.failures.diagnoser().hang_up_is_refusal(
                        ctx.client.ip(),
                        &ctx.host,
                        &ctx.endpoint,
                    ),
                    None => false,
                };
                if !refused {
                    return outcome(tls, 0, 0, CloseReason::ClientHandshakeFailed);
                }
                self.client_rejected(&ctx, &tls, e.to_string(), started);
                return outcome(tls, 0, 1, CloseReason::ClientRejectedCertificate);
            }
            Err(_) => return outcome(tls, 0, 0, CloseReason::ClientHandshakeTimeout),
        };

        // 7. The upstream HTTP connection.
        // The server proved its name already: a failure here is regdoc's to answer in HTTP.
        let mut refused = None;
        let mut upstream_closed = None;
        let h2_upstream = server.get_ref().1.alpn_protocol() == Some(H2);
        let sender = match upstream_http::handshake(server, h2_upstream).await {
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
}

/// How a client's handshake under regdoc's certificate ended, where it may mean a refusal.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// The client sent an alert (Go sends `bad_certificate` for an unknown authority).
    Alert,
    /// The client closed or reset the connection without one: some clients refuse this way,
    /// and every client does when it gives the connection up.
    HangUp,
}

fn ending(e: &io::Error) -> Option<Ending> {
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return matches!(tls, rustls::Error::AlertReceived(_)).then_some(Ending::Alert);
    }
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
    )
    .then_some(Ending::HangUp)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handshake_ends_in_an_alert_a_hang_up_or_neither() {
        let alert = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::BadCertificate),
        );
        assert_eq!(ending(&alert), Some(Ending::Alert));
        assert_eq!(
            ending(&io::Error::from(io::ErrorKind::UnexpectedEof)),
            Some(Ending::HangUp)
        );
        assert_eq!(
            ending(&io::Error::from(io::ErrorKind::ConnectionReset)),
            Some(Ending::HangUp)
        );
        let garbage = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        );
        assert_eq!(ending(&garbage), None);
    }
}
