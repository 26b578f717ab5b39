//! The admin listener: `/metrics` and `/healthz` over HTTP/1.1, everything else 404.
//!
//! Apart from the proxy's listener and its limits: a scraper is one or two clients, so a few
//! connection slots suffice, and a client that holds them all (from where the listener is
//! reachable: loopback unless `admin.i_know_this_is_public`) keeps only other scrapers out.

use super::registry::{Metrics, CONTENT_TYPE};
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

/// Admin connections served at once; beyond, a new one is closed at once.
const MAX_CONNECTIONS: usize = 16;

/// A scraper sends its request head within this, or its connection is closed; also bounds how
/// long an idle kept-alive connection holds a slot.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the admin listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin.listen = {addr}: cannot listen: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Bind the admin listener now, so that a taken port is an error at start-up.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, AdminError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AdminError::Bind { addr, source })
}

/// Serve `metrics` on `listener` until the returned task is aborted; aborting it closes every
/// admin connection too.
pub fn spawn(listener: TcpListener, metrics: Arc<Metrics>) -> JoinHandle<()> {
    tokio::spawn(accept_loop(listener, metrics))
}

async fn accept_loop(listener: TcpListener, metrics: Arc<Metrics>) {
    // Owned here so that aborting this task drops, and so aborts, every connection.
    let mut connections = JoinSet::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        while connections.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors, most likely: the proxy's own listener says more.
                tracing::warn!("admin listener: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let metrics = metrics.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let reply = answer(&metrics, &req);
                async move { Ok::<_, Infallible>(reply) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!("admin connection: {e}");
            }
            drop(slot);
        });
    }
}

/// The reply to one admin request.
fn answer(metrics: &Metrics, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path != "/metrics" && path != "/healthz" {
        return text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics or /healthz\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if path == "/healthz" {
        return text(StatusCode::OK, "ok\n");
    }
    match metrics.encode() {
        Ok(body) => reply(StatusCode::OK, CONTENT_TYPE, body.into()),
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics could not be encoded\n",
        ),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    reply(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, method: &str, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
            .await
            .expect("answer within 10 s")
            .unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_and_health_and_nothing_else() {
        let metrics = Arc::new(Metrics::new(&crate::config::Config::default()));
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = spawn(listener, metrics);
        let m = get(addr, "GET", "/metrics").await;
        assert!(m.starts_with("HTTP/1.1 200"), "{m}");
        assert!(m.contains("version=0.0.4"), "{m}");
        assert!(m.contains("# TYPE regdoc_open_connections gauge"), "{m}");
        let h = get(addr, "GET", "/healthz").await;
        assert!(h.starts_with("HTTP/1.1 200") && h.ends_with("ok\n"), "{h}");
        let n = get(addr, "GET", "/metrics/../secret").await;
        assert!(n.starts_with("HTTP/1.1 404"), "{n}");
        let p = get(addr, "POST", "/metrics").await;
        assert!(p.starts_with("HTTP/1.1 405"), "{p}");
        task.abort();
    }

    #[tokio::test]
    async fn a_taken_port_is_an_error_naming_the_setting() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let e = bind(addr).await.unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("admin.listen = {addr}: cannot listen")),
            "{e}"
        );
    }
}
