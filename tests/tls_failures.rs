//! Handshakes that fail in passthrough without a word from the server: a client refusing the
//! certificate it was shown (TLS 1.3 and TLS 1.2), judged with regdoc's own probe of the
//! server; and a server that resets or closes in answer to the ClientHello. Real rustls on
//! loopback; names resolve through `dns.overrides`, so no query leaves the machine.

mod common;

use common::proxy::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A private CA named like mitmproxy's, and a leaf for `name` it signed.
fn inspection_chain(name: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "mitmproxy");
    ca.distinguished_name
        .push(rcgen::DnType::OrganizationName, "mitmproxy");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut leaf = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();
    let key = PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    (vec![leaf_cert.der().clone(), ca_cert.der().clone()], key)
}

/// A rustls server presenting a chain from the private CA.
async fn inspecting_origin(name: &str) -> std::net::SocketAddr {
    let (chain, key) = inspection_chain(name);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    server(move |s: TcpStream| {
        let acceptor = acceptor.clone();
        async move {
            if let Ok(mut tls) = acceptor.accept(s).await {
                let _ = tls.write_all(b"registry").await;
                let _ = tls.shutdown().await;
            }
        }
    })
    .await
}

/// A client that trusts a root the server's chain does not lead to, like a Docker daemon that
/// does not know an inspecting proxy's CA.
fn distrustful_client(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> tokio_rustls::TlsConnector {
    let other = rcgen::generate_simple_self_signed(vec!["unrelated.test".to_string()]).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(other.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

async fn refused_through_passthrough(
    name: &'static str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> (serde_json::Value, serde_json::Value) {
    let origin = inspecting_origin(name).await;
    let mut cfg = config(&[origin.port()]);
    cfg.dns
        .overrides
        .insert(name.into(), vec!["127.0.0.1".parse().unwrap()]);
    let proxy = Proxy::start(cfg).await;
    let target = format!("{name}:{}", origin.port());
    let (s, status, _) = connect(proxy.addr, &target, "").await;
    assert_eq!(status, 200);
    let server_name = ServerName::try_from(name).unwrap();
    let err = distrustful_client(versions)
        .connect(server_name, s)
        .await
        .expect_err("the client must refuse the certificate");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    let f = wait_records(1, by_target("failure", target.clone())).await;
    let c = wait_records(1, by_target("connection", target)).await;
    assert!(!f.is_empty(), "no failure record; connection: {c:?}");
    assert!(!c.is_empty(), "no connection record");
    (f[0].clone(), c[0].clone())
}

fn assert_interception_found(f: &serde_json::Value, name: &str) {
    assert_eq!(f["phase"], "tls", "{f}");
    assert_eq!(f["kind"]["kind"], "tls_client_refused", "{f}");
    assert_eq!(f["tls"]["sni"], name, "{f}");
    let probe = &f["kind"]["probe"];
    assert_eq!(probe["hop"], "direct", "{f}");
    assert_eq!(probe["sni"], name, "{f}");
    assert_eq!(probe["issuer"], "CN=mitmproxy, O=mitmproxy", "{f}");
    assert_eq!(probe["chain_to_extra_root"], false, "{f}");
    assert!(probe["error"].is_null(), "{f}");
    assert_eq!(f["cause"], "tls_interception", "{f}");
    let evidence = f["evidence"].to_string();
    assert!(
        evidence.contains("probe: direct TLS to 127.0.0.1:"),
        "{evidence}"
    );
    assert!(
        evidence.contains(r#"issuer=\"CN=mitmproxy, O=mitmproxy\""#),
        "{evidence}"
    );
    // The part of the line every Go version prints (Go 1.20 puts `tls: failed to verify
    // certificate: ` before it); known, since the probe saw the unknown issuer.
    assert_eq!(
        f["client_symptom"],
        "x509: certificate signed by unknown authority"
    );
}

#[tokio::test]
async fn tls13_client_refusing_the_certificate_is_a_failure_with_a_probe() {
    let name = "refuse13.azurecr.io";
    let (f, c) = refused_through_passthrough(name, &[&rustls::version::TLS13]).await;
    // rustls refuses under its handshake keys: an encrypted alert, then close.
    assert_eq!(f["kind"]["signal"], "encrypted_alert", "{f}");
    assert!(f["kind"]["alert"].is_null(), "{f}");
    assert_interception_found(&f, name);
    assert_eq!(c["failed"], true, "{c}");
    assert_eq!(c["sni"], name, "{c}");
    assert_eq!(c["tls_version"], "TLS1.3", "{c}");
    assert_eq!(c["close_reason"], "client_refused_certificate", "{c}");
    assert_eq!(c["phases"]["tls"]["outcome"], "failed", "{c}");
}

#[tokio::test]
async fn tls12_client_alert_is_a_failure_naming_the_alert() {
    let name = "refuse12.azurecr.io";
    let (f, c) = refused_through_passthrough(name, &[&rustls::version::TLS12]).await;
    assert_eq!(f["kind"]["signal"], "alert", "{f}");
    assert_eq!(f["kind"]["alert"], "unknown_ca", "{f}");
    assert_interception_found(&f, name);
    assert_eq!(c["failed"], true, "{c}");
    assert_eq!(c["tls_version"], "TLS1.2", "{c}");
}

#[tokio::test]
async fn probe_can_be_switched_off() {
    let name = "noprobe.azurecr.io";
    let origin = inspecting_origin(name).await;
    let mut cfg = config(&[origin.port()]);
    cfg.probe.enabled = false;
    cfg.dns
        .overrides
        .insert(name.into(), vec!["127.0.0.1".parse().unwrap()]);
    let proxy = Proxy::start(cfg).await;
    let target = format!("{name}:{}", origin.port());
    let (s, status, _) = connect(proxy.addr, &target, "").await;
    assert_eq!(status, 200);
    let server_name = ServerName::try_from(name).unwrap();
    assert!(distrustful_client(rustls::DEFAULT_VERSIONS)
        .connect(server_name, s)
        .await
        .is_err());
    let f = wait_records(1, by_target("failure", target)).await;
    assert_eq!(f[0]["kind"]["kind"], "tls_client_refused", "{}", f[0]);
    assert!(f[0]["kind"]["probe"].is_null(), "{}", f[0]);
    assert!(
        f[0]["evidence"]
            .to_string()
            .contains("no probe of the server's certificate was made"),
        "{}",
        f[0]
    );
}

#[tokio::test]
async fn trusting_client_is_not_a_failure() {
    // The same private chain, trusted by the client: the watch must see its Finished.
    let name = "trusted.azurecr.io";
    let (chain, key) = inspection_chain(name);
    let ca = chain[1].clone();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let scfg = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(scfg));
    let origin = server(move |s: TcpStream| {
        let acceptor = acceptor.clone();
        async move {
            if let Ok(mut tls) = acceptor.accept(s).await {
                let _ = tls.write_all(b"registry").await;
                let _ = tls.shutdown().await;
            }
        }
    })
    .await;
    let mut cfg = config(&[origin.port()]);
    cfg.dns
        .overrides
        .insert(name.into(), vec!["127.0.0.1".parse().unwrap()]);
    let proxy = Proxy::start(cfg).await;
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let target = format!("{name}:{}", origin.port());
        let (s, status, _) = connect(proxy.addr, &target, "").await;
        assert_eq!(status, 200);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone()).unwrap();
        let ccfg = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(ccfg))
            .connect(ServerName::try_from(name).unwrap(), s)
            .await
            .expect("handshake through the tunnel");
        let mut got = Vec::new();
        tls.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"registry");
    }
    let target = format!("{name}:{}", origin.port());
    let c = wait_records(2, by_target("connection", target.clone())).await;
    assert_eq!(c.len(), 2);
    for r in &c {
        assert_eq!(r["failed"], false, "{r}");
        assert_eq!(r["phases"]["tls"]["outcome"], "ok", "{r}");
    }
    assert!(records(by_target("failure", target)).is_empty());
}

/// A real ClientHello from rustls naming `sni`.
fn client_hello(sni: &'static str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = ServerName::try_from(sni).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

/// A server that reads the ClientHello, then resets (SO_LINGER 0) or closes (FIN).
async fn cutting_origin(reset: bool) -> std::net::SocketAddr {
    server(move |mut s: TcpStream| async move {
        let mut b = vec![0u8; 4096];
        if matches!(s.read(&mut b).await, Ok(n) if n > 0) {
            if reset {
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            }
            drop(s);
        }
    })
    .await
}

async fn cut_after_client_hello(
    reset: bool,
    name: &'static str,
) -> (serde_json::Value, serde_json::Value) {
    let origin = cutting_origin(reset).await;
    let mut cfg = config(&[origin.port()]);
    cfg.dns
        .overrides
        .insert(name.into(), vec!["127.0.0.1".parse().unwrap()]);
    let proxy = Proxy::start(cfg).await;
    let target = format!("{name}:{}", origin.port());
    let (mut s, status, _) = connect(proxy.addr, &target, "").await;
    assert_eq!(status, 200);
    s.write_all(&client_hello(name)).await.unwrap();
    // regdoc ends the client's tunnel: the client reads end of stream.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await;
    assert!(rest.is_empty());
    let f = wait_records(1, by_target("failure", target.clone())).await;
    let c = wait_records(1, by_target("connection", target)).await;
    assert!(!f.is_empty(), "no failure record; connection: {c:?}");
    (f[0].clone(), c[0].clone())
}

#[tokio::test]
async fn reset_in_answer_to_the_client_hello_is_a_failure_naming_the_sni() {
    let name = "filtered.azurecr.io";
    let (f, c) = cut_after_client_hello(true, name).await;
    assert_eq!(f["phase"], "tls", "{f}");
    assert_eq!(f["kind"]["kind"], "tls_server_reset", "{f}");
    assert_eq!(f["tls"]["sni"], name, "{f}");
    assert_eq!(f["cause"], "client_firewall", "{f}");
    let evidence = f["evidence"].to_string();
    assert!(
        evidence.contains("reset (TCP RST) in answer to the ClientHello"),
        "{evidence}"
    );
    assert!(evidence.contains(&format!("naming {name}")), "{evidence}");
    assert!(evidence.contains("filters by SNI"), "{evidence}");
    // The URL as Go writes it (the fixture's port is not 443); the operation is unknown in a
    // tunnel, so no daemon prefix.
    assert_eq!(
        f["client_symptom"],
        format!("Get \"https://{name}:{}/v2/\": EOF", f["port"])
    );
    assert_eq!(c["sni"], name, "{c}");
    assert_eq!(c["close_reason"], "reset", "{c}");
    assert_eq!(c["failed"], true, "{c}");
    assert_eq!(c["phases"]["tls"]["outcome"], "failed", "{c}");
}

#[tokio::test]
async fn close_in_answer_to_the_client_hello_is_a_failure_naming_the_sni() {
    let name = "closing.azurecr.io";
    let (f, c) = cut_after_client_hello(false, name).await;
    assert_eq!(f["phase"], "tls", "{f}");
    assert_eq!(f["kind"]["kind"], "tls_server_closed", "{f}");
    assert_eq!(f["tls"]["sni"], name, "{f}");
    assert!(f["error"].as_str().unwrap_or("").contains(name), "{f}");
    assert_eq!(c["sni"], name, "{c}");
    assert_eq!(c["close_reason"], "server_closed", "{c}");
    assert_eq!(c["failed"], true, "{c}");
}
