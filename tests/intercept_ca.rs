//! What regdoc's interception CA may vouch for, seen from real TLS clients on loopback.
//!
//! * a leaf only for the CONNECT host: a foreign SNI gets an alert and no certificate;
//! * a leaf only after the real server proved the name: a failed upstream handshake gets none;
//! * the CA `regdoc ca init` makes is name-constrained (critical) and valid for a year at most,
//!   and regdoc refuses to mint outside its constraints; `check-config` says so beforehand.
//!
//! Every client records each certificate it is shown, so "no leaf" means no certificate at all
//! reached it, not only that it refused one.

mod common;

use common::acr;
use common::proxy::*;
use regdoc::intercept::ca::CaPaths;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{AlertDescription, DigitallySignedStruct, SignatureScheme};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use x509_parser::extensions::GeneralName;

/// Verifies against `roots` like any client, and keeps every end-entity certificate shown.
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    seen: Arc<Mutex<Vec<CertificateDer<'static>>>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.seen
            .lock()
            .unwrap()
            .push(end_entity.clone().into_owned());
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What a client's handshake came to.
struct Seen {
    result: Result<(), std::io::Error>,
    certs: Vec<CertificateDer<'static>>,
}

impl Seen {
    fn alert(&self) -> Option<AlertDescription> {
        let e = self.result.as_ref().err()?;
        match e.get_ref()?.downcast_ref::<rustls::Error>()? {
            rustls::Error::AlertReceived(a) => Some(*a),
            _ => None,
        }
    }
}

/// A TLS handshake over `io` asking for `name`, trusting only `ca`.
async fn handshake<IO>(io: IO, name: &str, ca: &CertificateDer<'static>) -> Seen
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let verifier = Recording {
        inner,
        seen: seen.clone(),
    };
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from(name.to_string()).unwrap();
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, io),
    )
    .await
    .expect("the handshake ends within 20 s")
    .map(|_| ());
    let certs = seen.lock().unwrap().clone();
    Seen { result, certs }
}

/// regdoc on loopback intercepting `host`, whose connections go to `upstream`; the server is
/// trusted upstream when `trust` names its CA file.
async fn proxy_for(
    host: &str,
    upstream: std::net::SocketAddr,
    ca: &CaPaths,
    trust: Option<&Path>,
) -> Proxy {
    let mut cfg = config(&[]);
    // A bound for a loaded test machine, not a timing expectation: loopback handshakes take ms.
    cfg.timeouts.tls = Duration::from_secs(10);
    cfg.dns.connect_to.push(format!("{host}:443={upstream}"));
    cfg.intercept.ca_cert = Some(ca.cert.clone());
    cfg.intercept.ca_key = Some(ca.key.clone());
    cfg.intercept.hosts = vec![host.to_string()];
    // Without the fixture's CA, only regdoc's own is trusted upstream: the fixture is then an
    // unknown issuer (no system root ever signs it).
    cfg.intercept.extra_roots = vec![trust.unwrap_or(&ca.cert).to_path_buf()];
    Proxy::start(cfg).await
}

/// A handshake through regdoc's CONNECT to `host:443`, asking TLS for `sni`.
async fn through(proxy: &Proxy, host: &str, sni: &str, ca: &CertificateDer<'static>) -> Seen {
    let (s, status, reason) = connect(proxy.addr, &format!("{host}:443"), "").await;
    assert_eq!(status, 200, "{reason}");
    handshake(s, sni, ca).await
}

fn ca_der(p: &CaPaths) -> CertificateDer<'static> {
    regdoc::intercept::Ca::load(&p.cert, &p.key)
        .unwrap()
        .cert_der()
        .clone()
}

/// The DNS names and IP addresses a certificate is for.
fn sans(der: &[u8]) -> Vec<String> {
    let (_, c) = x509_parser::parse_x509_certificate(der).unwrap();
    c.subject_alternative_name()
        .unwrap()
        .map(|s| {
            s.value
                .general_names
                .iter()
                .map(|n| match n {
                    GeneralName::DNSName(d) => d.to_string(),
                    GeneralName::IPAddress(b) if b.len() == 4 => {
                        std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).unwrap()).to_string()
                    }
                    other => format!("{other:?}"),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn issued_by(leaf: &[u8], ca: &[u8]) -> bool {
    let (_, l) = x509_parser::parse_x509_certificate(leaf).unwrap();
    let (_, c) = x509_parser::parse_x509_certificate(ca).unwrap();
    l.issuer().as_raw() == c.subject().as_raw()
}

#[tokio::test]
async fn a_foreign_sni_gets_an_alert_and_no_certificate_and_is_recorded() {
    const HOST: &str = "snicheck.azurecr.io";
    let fx = acr::AcrFixture::start(HOST).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = regdoc::intercept::ca::generate(dir.path(), false).unwrap();
    let der = ca_der(&ca);
    let mut proxy = proxy_for(HOST, fx.addr, &ca, Some(&fx.ca_file)).await;

    for foreign in ["www.google.com", "other.azurecr.io"] {
        let seen = through(&proxy, HOST, foreign, &der).await;
        assert_eq!(
            seen.alert(),
            Some(AlertDescription::UnrecognisedName),
            "{foreign}"
        );
        assert!(seen.certs.is_empty(), "{foreign}: a certificate was shown");
    }
    assert_eq!(fx.requests(), 0);

    // The same failure of the same client, twice: the first is written in full (before its
    // alert was sent), the second only counted, as every repeated failure is.
    let f = records(by_target("failure", format!("{HOST}:443")));
    assert_eq!(f.len(), 1, "{f:#?}");
    for r in &f {
        assert_eq!(r["kind"]["kind"], "tls_sni_mismatch", "{r:#}");
        assert_eq!(r["cause"], "proxy_policy");
        assert_eq!(r["phase"], "policy");
        assert_eq!(
            r["client_symptom"],
            format!("Get \"https://{HOST}/v2/\": remote error: tls: unrecognized name")
        );
    }
    assert!(f.iter().any(|r| r["error"]
        .as_str()
        .unwrap()
        .contains("\"www.google.com\" inside a tunnel to snicheck.azurecr.io")));

    // The CONNECT host itself: one leaf, for that name only, from regdoc's CA.
    let seen = through(&proxy, HOST, HOST, &der).await;
    seen.result.as_ref().expect("the CONNECT host's own leaf");
    assert_eq!(seen.certs.len(), 1);
    assert_eq!(sans(&seen.certs[0]), vec![HOST.to_string()]);
    assert!(issued_by(&seen.certs[0], &der));

    // At exit the count of the second refusal is written.
    tokio::time::timeout(Duration::from_secs(20), proxy.shutdown())
        .await
        .expect("regdoc stops in time")
        .unwrap();
    let s = records(by_target("failure_summary", format!("{HOST}:443")));
    assert_eq!(s.len(), 1, "{s:#?}");
    assert_eq!(s[0]["cause"], "proxy_policy");
    assert_eq!(s[0]["count"], 1);
}

#[tokio::test]
async fn a_failing_upstream_handshake_yields_no_regdoc_leaf() {
    const HOST: &str = "upfail.azurecr.io";
    let fx = acr::AcrFixture::start(HOST).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = regdoc::intercept::ca::generate(dir.path(), false).unwrap();
    let der = ca_der(&ca);

    // The server's certificate is from an issuer regdoc does not trust.
    let proxy = proxy_for(HOST, fx.addr, &ca, None).await;
    let seen = through(&proxy, HOST, HOST, &der).await;
    assert_eq!(seen.alert(), Some(AlertDescription::UnknownCA));
    assert!(seen.certs.is_empty(), "no leaf for an unverified server");
    assert_eq!(fx.requests(), 0);
    let f = wait_records(1, by_target("failure", format!("{HOST}:443"))).await;
    assert_eq!(
        f[0]["kind"]["kind"], "tls_upstream_certificate",
        "{:#}",
        f[0]
    );
    assert_eq!(f[0]["cause"], "tls_interception");
    assert!(f[0]["error"].as_str().unwrap().contains("no certificate"));

    // A server that closes at once: the client's connection ends the same way, unvouched.
    const GONE: &str = "upgone.azurecr.io";
    let gone = server(|s| async move { drop(s) }).await;
    let proxy = proxy_for(GONE, gone, &ca, Some(&fx.ca_file)).await;
    let seen = through(&proxy, GONE, GONE, &der).await;
    assert!(seen.result.is_err());
    assert!(seen.certs.is_empty(), "no leaf for a server that closed");
    let f = wait_records(1, by_target("failure", format!("{GONE}:443"))).await;
    assert_eq!(f[0]["kind"]["kind"], "tls_server_closed", "{:#}", f[0]);
}

#[tokio::test]
async fn a_host_outside_the_cas_constraints_gets_no_leaf() {
    const HOST: &str = "registry.example.test";
    let fx = acr::AcrFixture::start(HOST).await;
    let dir = tempfile::tempdir().unwrap();
    // The default CA: `*.azurecr.io` only.
    let ca = regdoc::intercept::ca::generate(dir.path(), false).unwrap();
    let der = ca_der(&ca);
    let proxy = proxy_for(HOST, fx.addr, &ca, Some(&fx.ca_file)).await;
    let seen = through(&proxy, HOST, HOST, &der).await;
    assert_eq!(seen.alert(), Some(AlertDescription::UnrecognisedName));
    assert!(seen.certs.is_empty());
    let f = wait_records(1, by_target("failure", format!("{HOST}:443"))).await;
    assert_eq!(
        f[0]["kind"]["kind"], "intercept_name_not_permitted",
        "{:#}",
        f[0]
    );
    assert_eq!(f[0]["kind"]["permitted"], ".azurecr.io");
    assert_eq!(f[0]["cause"], "proxy_policy");

    // A CA permitting it: the same connection is intercepted.
    let dir2 = tempfile::tempdir().unwrap();
    let permit = ["*.azurecr.io", "*.example.test"].map(String::from);
    let ca2 = regdoc::intercept::ca::generate_permitting(dir2.path(), false, &permit).unwrap();
    let der2 = ca_der(&ca2);
    let proxy = proxy_for(HOST, fx.addr, &ca2, Some(&fx.ca_file)).await;
    let seen = through(&proxy, HOST, HOST, &der2).await;
    seen.result
        .as_ref()
        .expect("a permitted host is intercepted");
    assert_eq!(sans(&seen.certs[0]), vec![HOST.to_string()]);
}

/// A client that sends no SNI (as for an IP address) gets a leaf for the CONNECT host, with an IP
/// SAN when the host is an address, and only if the CA permits that address.
#[tokio::test]
async fn an_ip_connect_host_gets_an_ip_san_only_when_permitted() {
    let fx = acr::AcrFixture::start("ipreg.azurecr.io").await;
    let dir = tempfile::tempdir().unwrap();
    let permit = ["*.azurecr.io", "127.0.0.1"].map(String::from);
    let ca = regdoc::intercept::ca::generate_permitting(dir.path(), false, &permit).unwrap();
    let der = ca_der(&ca);
    let dir2 = tempfile::tempdir().unwrap();
    let plain = regdoc::intercept::ca::generate(dir2.path(), false).unwrap();

    for (paths, permitted) in [(&ca, true), (&plain, false)] {
        let text = format!(
            "[timeouts]\ntls = \"5s\"\n[intercept]\nca_cert = {:?}\nca_key = {:?}\nextra_roots = [{:?}]\n",
            paths.cert, paths.key, fx.ca_file
        );
        let cfg = regdoc::config::Config::parse(&text, Path::new("t.toml")).unwrap();
        let ic = Arc::new(
            regdoc::intercept::Interceptor::from_config(&cfg)
                .unwrap()
                .unwrap(),
        );
        let (client_io, regdoc_io) = tokio::io::duplex(64 * 1024);
        init_capture();
        let ctx = regdoc::intercept::InterceptCtx {
            conn_id: 77_000 + u64::from(permitted),
            client: "127.0.0.1:50000".parse().unwrap(),
            host: "127.0.0.1".into(),
            port: 443,
            endpoint: regdoc::endpoint::classify("127.0.0.1", &[]),
            failures: Arc::new(regdoc::record::failures::FailureLog::new(
                Arc::new(regdoc::diagnose::Diagnoser::new(&cfg)),
                &cfg.log,
            )),
            response_headers_timeout: Duration::from_secs(5),
            log_requests: false,
            upstream_proxy: None,
            dns: None,
            kept_alive: None,
        };
        let addr = fx.addr;
        let served = tokio::spawn(async move {
            let up = tokio::net::TcpStream::connect(addr).await.unwrap();
            ic.serve(regdoc_io, up, ctx).await
        });
        let seen = handshake(client_io, "127.0.0.1", &ca_der(paths)).await;
        if permitted {
            seen.result
                .as_ref()
                .expect("a leaf for the permitted address");
            assert_eq!(sans(&seen.certs[0]), vec!["127.0.0.1".to_string()]);
            assert!(issued_by(&seen.certs[0], &der));
        } else {
            assert_eq!(seen.alert(), Some(AlertDescription::UnrecognisedName));
            assert!(seen.certs.is_empty());
        }
        drop(seen);
        let out = tokio::time::timeout(Duration::from_secs(20), served)
            .await
            .expect("interceptor ends")
            .unwrap();
        assert_eq!(out.tls.sni, None, "a client names no address in SNI");
        if !permitted {
            assert_eq!(
                out.close_reason,
                regdoc::record::CloseReason::NameNotPermitted
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// `regdoc ca init` and `check-config`, as the operator runs them.

fn regdoc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_regdoc"))
        .args(args)
        .output()
        .expect("run regdoc")
}

/// Permitted and excluded subtrees (as text), and whether the extension is critical.
fn constraints_of(cert_pem: &Path) -> (Vec<String>, Vec<String>, bool) {
    let pem = std::fs::read(cert_pem).unwrap();
    let (_, p) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let c = p.parse_x509().unwrap();
    let ext = c
        .extensions()
        .iter()
        .find(|e| e.oid == x509_parser::oid_registry::OID_X509_EXT_NAME_CONSTRAINTS)
        .expect("a name constraints extension");
    let nc = c.name_constraints().unwrap().unwrap().value;
    let text = |v: &Option<Vec<x509_parser::extensions::GeneralSubtree<'_>>>| {
        v.iter()
            .flatten()
            .map(|s| match &s.base {
                GeneralName::DNSName(d) => d.to_string(),
                GeneralName::IPAddress(b) => format!("ip{}", b.len()),
                other => format!("{other:?}"),
            })
            .collect::<Vec<_>>()
    };
    (
        text(&nc.permitted_subtrees),
        text(&nc.excluded_subtrees),
        ext.critical,
    )
}

#[test]
fn ca_init_makes_a_name_constrained_ca_valid_for_a_year_at_most() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("certs");
    let o = regdoc(&["ca", "init", "--dir", d.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("may vouch only for: .azurecr.io"), "{out}");
    assert!(
        out.contains("certs.d") && out.contains("hosts.toml"),
        "{out}"
    );
    assert!(!out.contains("PRIVATE KEY"), "{out}");

    let cert = d.join("ca.crt");
    let (permitted, excluded, critical) = constraints_of(&cert);
    assert_eq!(permitted, vec![".azurecr.io"]);
    // Every IPv4 and IPv6 address is excluded: no leaf for an address verifies either.
    assert_eq!(excluded, vec!["ip8", "ip32"]);
    assert!(
        critical,
        "RFC 5280 §4.2.1.10: conforming CAs mark it critical"
    );

    let pem = std::fs::read(&cert).unwrap();
    let (_, p) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let c = p.parse_x509().unwrap();
    let life = c.validity().not_after.timestamp() - c.validity().not_before.timestamp();
    assert!(life <= 366 * 86_400, "{life} s");
    assert!(c.basic_constraints().unwrap().unwrap().value.ca);

    // Without --force the CA stays as it was; with it, a new one replaces it.
    let o = regdoc(&["ca", "init", "--dir", d.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(std::fs::read(&cert).unwrap(), pem);

    let o = regdoc(&[
        "ca",
        "init",
        "--dir",
        d.to_str().unwrap(),
        "--force",
        "--permit",
        "*.example.test",
        "--permit",
        "registry.internal",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_ne!(std::fs::read(&cert).unwrap(), pem);
    let (permitted, _, _) = constraints_of(&cert);
    assert_eq!(permitted, vec![".example.test", "registry.internal"]);

    // A name that cannot be a constraint: refused, and the CA is left alone.
    let before = std::fs::read(&cert).unwrap();
    let o = regdoc(&[
        "ca",
        "init",
        "--dir",
        d.to_str().unwrap(),
        "--force",
        "--permit",
        "*.com",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("*.com"));
    assert_eq!(std::fs::read(&cert).unwrap(), before);
}

/// The constraints hold wherever the CA is trusted: a leaf signed with its key for a name
/// outside them (as someone holding a copy of the key could make) does not verify, and
/// regdoc's own minter refuses to make one.
#[tokio::test]
async fn the_constraints_hold_for_any_verifier_and_the_minter_refuses_outside_them() {
    let dir = tempfile::tempdir().unwrap();
    let p = regdoc::intercept::ca::generate(dir.path(), false).unwrap();
    let ca = Arc::new(regdoc::intercept::Ca::load(&p.cert, &p.key).unwrap());
    let m = regdoc::intercept::LeafMinter::new(ca.clone(), 8).unwrap();
    let e = m.get("www.google.com").await.err().expect("refused");
    assert!(
        matches!(e, regdoc::intercept::MintError::NotPermitted { .. }),
        "{e}"
    );
    assert_eq!(m.mints(), 0);

    let key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(&p.key).unwrap()).unwrap();
    let issuer = rcgen::CertificateParams::from_ca_cert_der(ca.cert_der())
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let verify = |name: &str| {
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer, &key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.cert_der().clone()).unwrap();
        let v = WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        v.verify_server_cert(
            leaf.der(),
            &[],
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
    };
    verify("myreg.azurecr.io").expect("inside the constraints");
    let e = verify("www.google.com").unwrap_err();
    assert!(format!("{e:?}").contains("NameConstraint"), "{e:?}");
    assert!(verify("127.0.0.1").is_err());
}

#[test]
fn check_config_reports_intercepted_hosts_outside_the_cas_constraints() {
    let dir = tempfile::tempdir().unwrap();
    let p = regdoc::intercept::ca::generate(dir.path(), false).unwrap();
    let file = dir.path().join("regdoc.toml");
    let write = |hosts: &str| {
        std::fs::write(
            &file,
            format!(
                "[intercept]\nca_cert = {:?}\nca_key = {:?}\nhosts = [{hosts}]\n",
                p.cert, p.key
            ),
        )
        .unwrap()
    };
    write("\"*.azurecr.io\"");
    let o = regdoc(&["check-config", file.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("permits .azurecr.io"), "{out}");

    write("\"*.azurecr.io\", \"registry.internal\"");
    let o = regdoc(&["check-config", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not registry.internal"), "{err}");
    assert!(err.contains("--permit registry.internal"), "{err}");
    assert!(!err.contains("PRIVATE"), "{err}");
}
