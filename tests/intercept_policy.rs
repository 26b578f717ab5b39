//! Interception policy and in-TLS failures through the whole proxy: registry REST hosts are
//! intercepted (their 403/504 judged), data endpoints stay opaque tunnels.

mod common;

use bytes::Bytes;
use common::acr::{AcrFixture, Mode};
use common::proxy;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

struct Setup {
    fx: AcrFixture,
    proxy: proxy::Proxy,
    ca: rustls::pki_types::CertificateDer<'static>,
    _dir: tempfile::TempDir,
}

/// regdoc with interception on; every name in `hosts` is routed to the fixture. Each test uses
/// its own names: records are told apart by target.
async fn setup(fixture_host: &str, hosts: &[&str]) -> Setup {
    let fx = AcrFixture::start(fixture_host).await;
    let dir = tempfile::tempdir().unwrap();
    let p = regdoc::intercept::ca::generate(dir.path(), false).unwrap();
    let mut cfg = proxy::config(&[]);
    cfg.intercept.ca_cert = Some(p.cert.clone());
    cfg.intercept.ca_key = Some(p.key.clone());
    cfg.intercept.extra_roots = vec![fx.ca_file.clone()];
    cfg.timeouts.tls = Duration::from_secs(5);
    cfg.timeouts.response_headers = Duration::from_millis(500);
    cfg.dns.connect_to = hosts
        .iter()
        .map(|h| format!("{h}:443=127.0.0.1:{}", fx.addr.port()))
        .collect();
    let ca = regdoc::intercept::Ca::load(&p.cert, &p.key)
        .unwrap()
        .cert_der()
        .clone();
    let proxy = proxy::Proxy::start(cfg).await;
    Setup {
        fx,
        proxy,
        ca,
        _dir: dir,
    }
}

/// CONNECT to `host:443` through regdoc, then TLS trusting only `trust`, then HTTP/1.1.
async fn open(
    s: &Setup,
    host: &str,
    trust: &rustls::pki_types::CertificateDer<'static>,
) -> Result<Sender, std::io::Error> {
    let (tcp, status, reason) = proxy::connect(s.proxy.addr, &format!("{host}:443"), "").await;
    assert_eq!(status, 200, "{reason}");
    let cfg = common::tls::client_config(vec![b"http/1.1".to_vec()], trust);
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(host.to_string().try_into().unwrap(), tcp)
        .await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    Ok(sender)
}

async fn get(host: &str, s: &mut Sender, path: &str) -> (StatusCode, Option<String>, Bytes) {
    let req = Request::get(path)
        .header(header::HOST, host)
        .body(Full::new(Bytes::new()))
        .unwrap();
    s.ready().await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(20), s.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let status = r.status();
    let cause = r
        .headers()
        .get("x-regdoc-cause")
        .map(|v| v.to_str().unwrap().to_string());
    (
        status,
        cause,
        r.into_body().collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test]
async fn firewall_denial_and_silence_inside_tls_are_diagnosed() {
    const HOST: &str = "policyfw.azurecr.io";
    let s = setup(HOST, &[HOST]).await;
    let mut c = open(&s, HOST, &s.ca)
        .await
        .expect("regdoc's leaf is trusted");
    s.fx.set_mode(Mode::Firewall);
    let (st, cause, body) = get(HOST, &mut c, "/v2/").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert!(cause.unwrap().starts_with("public_access_rules;"));
    assert!(String::from_utf8_lossy(&body).contains("203.0.113.7"));
    s.fx.set_mode(Mode::Silent);
    let (st, cause, _) = get(HOST, &mut c, "/v2/").await;
    assert_eq!(st, StatusCode::GATEWAY_TIMEOUT);
    let silent_cause = cause.expect("the 504 names its cause");
    drop(c);

    let target = format!("{HOST}:443");
    let fails = proxy::wait_records(2, proxy::by_target("failure", target.clone())).await;
    assert_eq!(fails.len(), 2, "{fails:#?}");
    assert_eq!(fails[0]["cause"], "public_access_rules");
    assert_eq!(fails[0]["http"]["status"], 403);
    assert_eq!(fails[1]["kind"]["kind"], "response_headers_timeout");
    assert_eq!(fails[1]["reply_status"], 504);
    // The reply's header names the cause its record carries (`id; words`).
    let recorded = fails[1]["cause"].as_str().expect("a diagnosed cause");
    assert!(
        silent_cause.starts_with(&format!("{recorded};")),
        "{silent_cause:?} vs {recorded:?}"
    );
    let conns = proxy::wait_records(1, proxy::by_target("connection", target)).await;
    assert_eq!(conns[0]["mode"], "intercept");
    assert_eq!(conns[0]["failed"], true);
}

#[tokio::test]
async fn data_endpoints_stay_opaque_tunnels() {
    // The fixture's certificate names the data host, as a real data endpoint's would.
    const DATA: &str = "policydata.westeurope.data.azurecr.io";
    let s = setup(DATA, &[DATA]).await;
    // Not intercepted: regdoc's CA is not what the client sees...
    assert!(open(&s, DATA, &s.ca).await.is_err());
    // ...the server's own certificate is.
    let mut c = open(&s, DATA, &s.fx.ca_der).await.expect("end-to-end TLS");
    let (st, cause, _) = get(DATA, &mut c, "/v2/").await;
    assert_eq!((st, cause), (StatusCode::UNAUTHORIZED, None));
    drop(c);
    let target = format!("{DATA}:443");
    let conns = proxy::wait_records(2, proxy::by_target("connection", target)).await;
    assert!(conns.iter().all(|c| c["mode"] == "tunnel"), "{conns:#?}");
}
