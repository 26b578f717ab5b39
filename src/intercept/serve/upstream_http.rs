//! The HTTP connection to the server, over TLS that already verified it: HTTP/1.1 or HTTP/2 as
//! ALPN chose, with word of when the server ends it.

use crate::intercept::body::ReplyBody;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The upstream HTTP connection.
pub(super) enum Sender {
    /// HTTP/1.1 carries one exchange at a time; the client side is sequential too, so the lock
    /// is only ever contended by a request waiting for the previous response head.
    H1(tokio::sync::Mutex<hyper::client::conn::http1::SendRequest<ReplyBody>>),
    H2(hyper::client::conn::http2::SendRequest<ReplyBody>),
}

impl Sender {
    pub(super) async fn send(
        &self,
        req: Request<ReplyBody>,
    ) -> Result<Response<Incoming>, hyper::Error> {
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

/// The upstream HTTP connection, and a receiver that completes when that connection ends
/// (the server closed it, e.g. after its idle timeout).
pub(super) async fn handshake(
    s: tokio_rustls::client::TlsStream<crate::intercept::upstream_tls::UpstreamIo>,
    h2: bool,
) -> Result<(Sender, tokio::sync::oneshot::Receiver<()>), hyper::Error> {
    let io = TokioIo::new(crate::intercept::coalesce::CoalescedReads::new(s));
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
