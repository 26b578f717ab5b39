//! Interception through the whole proxy: a client that trusts only regdoc's CA sends CONNECT
//! to regdoc, which mints a leaf for the registry host, verifies the real registry (the ACR
//! fixture) upstream, and judges every exchange.

mod common;

use common::acr;
use common::proxy::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::sync::Arc;

const HOST: &str = "interceptme.azurecr.io";

/// A TLS client for `host` through regdoc's CONNECT, trusting only `ca`.
async fn client(
    proxy: std::net::SocketAddr,
    ca: rustls::pki_types::CertificateDer<'static>,
    host: &'static str,
) -> hyper::client::conn::http1::SendRequest<Empty<bytes::Bytes>> {
    let (s, status, reason) = connect(proxy, &format!("{host}:443"), "").await;
    assert_eq!(status, 200, "{reason}");
    let cfg = common::tls::client_config(vec![b"http/1.1".to_vec()], &ca);
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(host.try_into().unwrap(), s)
        .await
        .expect("the client trusts regdoc's leaf for the registry host");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

fn get(path: &str, auth: Option<&str>) -> hyper::Request<Empty<bytes::Bytes>> {
    get_from(HOST, path, auth)
}

fn get_from(host: &str, path: &str, auth: Option<&str>) -> hyper::Request<Empty<bytes::Bytes>> {
    let mut b = hyper::Request::get(path)
        .header("host", host)
        .header("user-agent", "docker/20.10.24 go/go1.19");
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(Empty::new()).unwrap()
}

#[tokio::test]
async fn docker_style_login_through_the_proxy_is_intercepted_and_judged() {
    let fx = acr::AcrFixture::start(HOST).await;
    fx.add_user("alice", "alice-Pr0xy-pw!", &[("*", &["pull"])]);
    let dir = tempfile::tempdir().unwrap();
    let ca = regdoc::intercept::ca::generate(dir.path(), false).unwrap();
    let mut cfg = config(&[]);
    cfg.dns.connect_to.push(format!("{HOST}:443={}", fx.addr));
    cfg.intercept.ca_cert = Some(ca.cert.clone());
    cfg.intercept.ca_key = Some(ca.key.clone());
    cfg.intercept.extra_roots = vec![fx.ca_file.clone()];
    let proxy = Proxy::start(cfg).await;
    let regdoc_ca = regdoc::intercept::Ca::load(&ca.cert, &ca.key)
        .unwrap()
        .cert_der()
        .clone();

    // Healthy: the anonymous challenge, then a token with the right password.
    let mut c = client(proxy.addr, regdoc_ca.clone(), HOST).await;
    let r = c.send_request(get("/v2/", None)).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers().get("x-regdoc-cause").is_none(),
        "the anonymous challenge is healthy"
    );
    r.into_body().collect().await.unwrap();
    let good = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "alice:alice-Pr0xy-pw!"
        )
    );
    let path =
        format!("/oauth2/token?account=alice&client_id=docker&offline_token=true&service={HOST}");
    let r = c.send_request(get(&path, Some(&good))).await.unwrap();
    assert_eq!(r.status(), 200);
    r.into_body().collect().await.unwrap();

    // A wrong password: the client sees the registry's 401 plus regdoc's cause header.
    let bad = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "alice:wrong-Pr0xy-pw"
        )
    );
    let r = c.send_request(get(&path, Some(&bad))).await.unwrap();
    assert_eq!(r.status(), 401);
    let header = r
        .headers()
        .get("x-regdoc-cause")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(header.starts_with("invalid_credentials"), "{header}");
    r.into_body().collect().await.unwrap();
    drop(c);

    let target = format!("{HOST}:443");
    let f = wait_records(1, by_target("failure", target.clone())).await;
    assert_eq!(f.len(), 1, "only the wrong password is a failure: {f:#?}");
    assert_eq!(f[0]["cause"], "invalid_credentials");
    assert_eq!(f[0]["phase"], "http");
    assert_eq!(f[0]["http"]["status"], 401);
    let c = wait_records(1, by_target("connection", target)).await;
    assert_eq!(c[0]["mode"], "intercept");
    assert_eq!(c[0]["requests"], 3);
    assert_eq!(c[0]["sni"], HOST);

    // No secret of the exchange reached any log line.
    let text = all_text();
    for secret in fx.secrets().iter().map(String::as_str).chain([
        "alice-Pr0xy-pw!",
        "wrong-Pr0xy-pw",
        good.trim_start_matches("Basic "),
        bad.trim_start_matches("Basic "),
    ]) {
        assert!(!text.contains(secret), "a secret reached the log");
    }
}

/// Wait for `what`, failing the test instead of hanging.
async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// An intercepted tunnel still open (idle between requests, as a client's keep-alive
/// connection is) when the shutdown grace runs out: closed, and recorded before `run` returns
/// as ended by the shutdown, with the requests and bytes it carried.
#[tokio::test]
async fn an_intercepted_tunnel_open_at_the_end_of_the_grace_is_recorded_as_shutdown() {
    const SHUT: &str = "shutdownme.azurecr.io";
    let fx = acr::AcrFixture::start(SHUT).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = regdoc::intercept::ca::generate(dir.path(), false).unwrap();
    let mut cfg = config(&[]);
    cfg.dns.connect_to.push(format!("{SHUT}:443={}", fx.addr));
    cfg.intercept.ca_cert = Some(ca.cert.clone());
    cfg.intercept.ca_key = Some(ca.key.clone());
    cfg.intercept.extra_roots = vec![fx.ca_file.clone()];
    cfg.timeouts.shutdown_grace = std::time::Duration::from_millis(200);
    let mut proxy = Proxy::start(cfg).await;
    let regdoc_ca = regdoc::intercept::Ca::load(&ca.cert, &ca.key)
        .unwrap()
        .cert_der()
        .clone();
    let mut c = bounded(
        "the intercepted tunnel",
        client(proxy.addr, regdoc_ca, SHUT),
    )
    .await;
    let r = bounded("the answer", c.send_request(get_from(SHUT, "/v2/", None)))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    bounded("the body", r.into_body().collect()).await.unwrap();

    let task = proxy.shutdown();
    bounded("run returns after the grace", task).await.unwrap();
    // Written before run returned: read at once, without waiting for it.
    let recs = records(by_target("connection", format!("{SHUT}:443")));
    assert_eq!(recs.len(), 1, "{recs:#?}");
    let rec = &recs[0];
    assert_eq!(rec["close_reason"], "shutdown", "{rec:#}");
    assert_eq!(rec["mode"], "intercept");
    assert_eq!(rec["requests"], 1);
    assert!(rec["bytes_up"].as_u64() > Some(0), "{rec:#}");
    assert!(rec["bytes_down"].as_u64() > Some(0), "{rec:#}");
    drop(c);
}
