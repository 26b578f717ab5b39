//! Each seed symptom and cause that is observable at the network level, driven through the
//! running proxy: the cause id must be on the failure record and in the reason phrase the
//! client receives (Docker prints that phrase). HTTP-level causes are unit-tested on the rules
//! (src/diagnose/tests/) and through interception (tests/intercept.rs).

mod common;

use common::proxy::*;
use common::{dns, net, secrets};
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Refuse-and-check: CONNECT `target`, expect `status`, and return the failure record whose
/// cause must be `cause` and whose reason phrase (as sent) must name it.
async fn refused(proxy: &Proxy, target: &str, status: u16, cause: &str) -> Value {
    refused_where(proxy, target, status, cause, |_| true).await
}

/// [`refused`], among the records that also match `pred` (another proxy of the same test may
/// log the same target).
async fn refused_where(
    proxy: &Proxy,
    target: &str,
    status: u16,
    cause: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let (_s, got, reason) = connect(proxy.addr, target, "").await;
    assert_eq!(got, status, "{target}: {reason}");
    assert!(
        reason.starts_with(&format!("regdoc {cause}: ")),
        "{target}: reason phrase {reason:?} must name {cause}"
    );
    let by = by_target("failure", target.to_string());
    let f = wait_records(1, |v| by(v) && pred(v)).await;
    assert_eq!(f.len(), 1, "one failure record for {target}");
    let f = f[0].clone();
    assert_eq!(f["cause"], cause, "{f:#}");
    assert_eq!(f["reply_reason"], reason.as_str());
    for key in ["cause_title", "doc", "client_symptom", "confidence"] {
        assert!(
            f[key].is_string() && !f[key].as_str().unwrap_or("").is_empty(),
            "{key} missing: {f:#}"
        );
    }
    assert!(
        f["remedy"]
            .as_array()
            .map(|a| !a.is_empty())
            .unwrap_or(false),
        "remedy missing: {f:#}"
    );
    assert!(
        f["evidence"]
            .as_array()
            .map(|a| !a.is_empty())
            .unwrap_or(false),
        "evidence missing: {f:#}"
    );
    // The symptom is what Docker prints: Go wraps our reason phrase.
    let symptom = f["client_symptom"].as_str().unwrap_or("");
    assert!(
        symptom.contains(&reason),
        "client_symptom {symptom:?} must contain the reason phrase"
    );
    f
}

fn dns_config(dns: &dns::TestDns, ports: &[u16]) -> regdoc::config::Config {
    let mut c = config(ports);
    c.dns.nameservers = vec![dns.local_addr().to_string()];
    c
}

#[tokio::test]
async fn login_article_registry_name_wrong_nxdomain() {
    // Held for the whole test: nothing else can take the port, and nothing listens there.
    let dead = net::refused_addr();
    let port = dead.port();
    let dns = dns::TestDns::start("127.0.0.1:0".parse().unwrap(), dns::Zone::new());
    let proxy = Proxy::start(dns_config(&dns, &[port])).await;
    let f = refused(
        &proxy,
        &format!("myregistyr.azurecr.io:{port}"),
        502,
        "registry_name",
    )
    .await;
    assert_eq!(f["phase"], "dns");
    // The short name without the .azurecr.io suffix, as users type it after `az acr login -n`.
    let f = refused(&proxy, &format!("myregistry:{port}"), 502, "registry_name").await;
    let ev = f["evidence"].to_string();
    assert!(
        ev.contains("azurecr.io"),
        "the evidence should point at the missing suffix: {ev}"
    );
}

#[tokio::test]
async fn network_article_client_firewall_connect_refused_and_timeout() {
    // Held for the whole test: nothing else can take the port, and nothing listens there.
    let dead = net::refused_addr();
    let port = dead.port();
    let mut cfg = config(&[port, 443]);
    cfg.dns.overrides.insert(
        "fwreg.azurecr.io".into(),
        vec!["127.0.0.1".parse().unwrap()],
    );
    let black = black_hole().await;
    let hole = black.addr;
    cfg.dns
        .connect_to
        .push(format!("dropreg.azurecr.io:443={hole}"));
    let proxy = Proxy::start(cfg).await;
    let f = refused(
        &proxy,
        &format!("fwreg.azurecr.io:{port}"),
        502,
        "client_firewall",
    )
    .await;
    assert_eq!(f["phase"], "connect");
    let f = refused(&proxy, "dropreg.azurecr.io:443", 504, "client_firewall").await;
    assert_eq!(f["kind"]["kind"], "connect_timeout");
}

#[tokio::test]
async fn network_article_private_endpoint_dns_public_answer() {
    // The registry is declared private, but DNS answers without the privatelink zone and with
    // an address outside the expected range.
    let origin = server(|mut s: TcpStream| async move {
        let _ = s.write_all(b"x").await;
    })
    .await;
    let zone = dns::Zone::new()
        .cname("corp.azurecr.io", "corp.westeurope.cloudapp.azure.com")
        .a("corp.westeurope.cloudapp.azure.com", [127, 0, 0, 1]);
    let dns = dns::TestDns::start("127.0.0.1:0".parse().unwrap(), zone);
    let mut cfg = dns_config(&dns, &[origin.port()]);
    cfg.registries.push(regdoc::config::RegistryConfig {
        host: "corp.azurecr.io".into(),
        private_endpoint: true,
        expected_cidrs: vec!["10.0.0.0/8".parse().unwrap()],
        regions: vec![],
    });
    let proxy = Proxy::start(cfg).await;
    let target = format!("corp.azurecr.io:{}", origin.port());
    let (_s, status, _) = connect(proxy.addr, &target, "").await;
    // The connection itself works (the public path is open); the record is the warning.
    assert_eq!(status, 200);
    let f = wait_records(1, by_target("failure", target)).await;
    assert_eq!(f[0]["cause"], "private_endpoint_dns", "{:#}", f[0]);
    assert_eq!(f[0]["phase"], "dns");
    assert_eq!(
        f[0]["dns"]["cnames"],
        serde_json::json!(["corp.westeurope.cloudapp.azure.com"])
    );
    let ev = f[0]["evidence"].to_string();
    assert!(ev.contains("127.0.0.1"), "the answer is the evidence: {ev}");
}

#[tokio::test]
async fn network_article_data_endpoint_blocked_after_rest_success() {
    // REST works (a TLS handshake and data through the tunnel)...
    let rest = server(|mut s: TcpStream| async move {
        let mut b = [0u8; 4];
        if s.read_exact(&mut b).await.is_ok() {
            let _ = s.write_all(b"rest").await;
        }
    })
    .await;
    let dead = net::refused_addr();
    let data_port = dead.port();
    let mut cfg = config(&[rest.port(), data_port]);
    cfg.dns
        .overrides
        .insert("shop.azurecr.io".into(), vec!["127.0.0.1".parse().unwrap()]);
    cfg.dns.overrides.insert(
        "shop.westeurope.data.azurecr.io".into(),
        vec!["127.0.0.1".parse().unwrap()],
    );
    let proxy = Proxy::start(cfg).await;
    let (mut s, status, _) =
        connect(proxy.addr, &format!("shop.azurecr.io:{}", rest.port()), "").await;
    assert_eq!(status, 200);
    s.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    s.read_exact(&mut b).await.unwrap();
    drop(s);
    wait_records(
        1,
        by_target("connection", format!("shop.azurecr.io:{}", rest.port())),
    )
    .await;
    // ...then the data endpoint of the same registry is refused.
    let f = refused(
        &proxy,
        &format!("shop.westeurope.data.azurecr.io:{data_port}"),
        502,
        "data_endpoint_firewall",
    )
    .await;
    assert_eq!(f["endpoint"], "data_endpoint");
    assert_eq!(f["region"], "westeurope");
    let text = f.to_string();
    assert!(
        text.contains("shop.westeurope.data.azurecr.io"),
        "the host to allow is named: {text}"
    );
}

#[tokio::test]
async fn network_article_https_proxy_symptoms_upstream_refuses_and_closes() {
    // "login attempt failed with status: 403 Forbidden" / "proxyconnect tcp: EOF" behind an
    // HTTPS proxy: here the corporate proxy refuses (a regdoc that disallows the port) or closes.
    // Held for the whole test: nothing else can take the port, and nothing listens there.
    let dead = net::refused_addr();
    let port = dead.port();
    let refusing = Proxy::start(config(&[])).await;
    let closer = server(|s: TcpStream| async move { drop(s) }).await;
    for (up, kind) in [
        (refusing.addr, "upstream_proxy_status"),
        (closer, "upstream_proxy_closed"),
    ] {
        let mut cfg = config(&[port]);
        cfg.upstream.proxy = Some(format!("http://{up}"));
        let proxy = Proxy::start(cfg).await;
        let target = format!("edge.azurecr.io:{port}");
        let via = up.to_string();
        let f = refused_where(&proxy, &target, 502, "upstream_proxy", |v| {
            v["upstream_proxy"] == via.as_str()
        })
        .await;
        assert_eq!(f["kind"]["kind"], kind);
        assert_eq!(f["upstream_proxy"], up.to_string().as_str());
    }
}

#[tokio::test]
async fn login_article_docker_config_https_scheme_against_plain_proxy() {
    let proxy = Proxy::start(config(&[])).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00])
        .await
        .unwrap();
    let (status, reason) = read_status(&mut s).await;
    assert_eq!(status, 400);
    assert!(
        reason.starts_with("regdoc proxy_scheme_mismatch: "),
        "{reason}"
    );
    let f = wait_records(1, |v| {
        v["event"] == "failure" && v["reply_reason"] == reason.as_str()
    })
    .await;
    assert_eq!(f[0]["cause"], "proxy_scheme_mismatch");
    assert_eq!(f[0]["other_causes"][0]["cause"], "docker_config");
    let symptom = f[0]["client_symptom"].as_str().unwrap_or("");
    assert!(symptom.contains("proxyconnect tcp"), "{symptom}");
}

#[tokio::test]
async fn beyond_tls_alert_and_silent_server_and_stall() {
    // A server that answers TLS bytes with garbage, one that never answers, and one that starts
    // a large download and stops.
    let garbage = server(|mut s: TcpStream| async move {
        let mut b = [0u8; 512];
        if s.read(&mut b).await.is_ok() {
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    })
    .await;
    let silent = server(|mut s: TcpStream| async move {
        let mut b = [0u8; 4096];
        while let Ok(n) = s.read(&mut b).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    // The staller answers with a real ServerHello, sends TLS application-data records, and
    // stops in the middle of one.
    let server_hello = rustls_server_first_flight();
    let staller = server(move |mut s: TcpStream| {
        let server_hello = server_hello.clone();
        async move {
            let mut b = [0u8; 4096];
            if s.read(&mut b).await.is_ok() {
                let _ = s.write_all(&server_hello).await;
                let mut record = vec![0x17, 0x03, 0x03, 0x40, 0x00];
                record.extend_from_slice(&[0xaa; 16384]);
                for _ in 0..20 {
                    let _ = s.write_all(&record).await;
                }
                let _ = s.write_all(&record[..1000]).await;
                tokio::time::sleep(Duration::from_secs(8)).await;
            }
        }
    })
    .await;
    let mut cfg = config(&[garbage.port(), silent.port(), staller.port()]);
    cfg.timeouts.stall = Duration::from_secs(1);
    for h in [
        "garbage.azurecr.io",
        "quiet.azurecr.io",
        "stall.westus.data.azurecr.io",
    ] {
        cfg.dns
            .overrides
            .insert(h.into(), vec!["127.0.0.1".parse().unwrap()]);
    }
    let proxy = Proxy::start(cfg).await;
    let hello = regdoc_hello();

    let t = format!("garbage.azurecr.io:{}", garbage.port());
    let (mut s, status, _) = connect(proxy.addr, &t, "").await;
    assert_eq!(status, 200);
    s.write_all(&hello).await.unwrap();
    let f = wait_records(1, by_target("failure", t)).await;
    assert_eq!(f[0]["kind"]["kind"], "tls_not_tls");
    // Something on the path answered in place of the registry (a block page, a captive portal).
    assert_eq!(f[0]["cause"], "client_firewall", "{:#}", f[0]);

    let t = format!("quiet.azurecr.io:{}", silent.port());
    let (mut s, status, _) = connect(proxy.addr, &t, "").await;
    assert_eq!(status, 200);
    s.write_all(&hello).await.unwrap();
    let f = wait_records(1, by_target("failure", t)).await;
    assert_eq!(f[0]["kind"]["kind"], "tls_server_silent");
    assert!(f[0]["cause"].is_string(), "{:#}", f[0]);

    let t = format!("stall.westus.data.azurecr.io:{}", staller.port());
    let (mut s, status, _) = connect(proxy.addr, &t, "").await;
    assert_eq!(status, 200);
    s.write_all(&hello).await.unwrap();
    let mut got = 0usize;
    let mut b = vec![0u8; 65536];
    while got < 20 * 16389 {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await {
            Ok(Ok(n)) if n > 0 => got += n,
            _ => break,
        }
    }
    let f = wait_records(1, by_target("failure", t)).await;
    assert_eq!(f[0]["kind"]["kind"], "transfer_stalled");
    assert_eq!(f[0]["cause"], "transfer_stalled");
    assert_eq!(f[0]["region"], "westus");
}

/// The first flight of a rustls server (ServerHello onwards) answering a rustls client.
fn rustls_server_first_flight() -> Vec<u8> {
    use std::sync::Arc;
    let cert = rcgen::generate_simple_self_signed(vec!["stall.westus.data.azurecr.io".to_string()])
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let mut server = rustls::ServerConnection::new(Arc::new(cfg)).unwrap();
    let hello = regdoc_hello();
    server.read_tls(&mut &hello[..]).unwrap();
    server.process_new_packets().unwrap();
    let mut out = Vec::new();
    server.write_tls(&mut out).unwrap();
    out
}

/// A real ClientHello (rustls) for `regdoc.test`.
fn regdoc_hello() -> Vec<u8> {
    use std::sync::Arc;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("regdoc.test").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

#[tokio::test]
async fn retry_storm_is_aggregated() {
    // Held for the whole test: nothing else can take the port, and nothing listens there.
    let dead = net::refused_addr();
    let port = dead.port();
    let mut cfg = config(&[port]);
    cfg.dns.overrides.insert(
        "storm.azurecr.io".into(),
        vec!["127.0.0.1".parse().unwrap()],
    );
    cfg.log.aggregate_interval = Duration::from_secs(1);
    let proxy = Proxy::start(cfg).await;
    let target = format!("storm.azurecr.io:{port}");
    for _ in 0..20 {
        let (_s, status, reason) = connect(proxy.addr, &target, "").await;
        // Every client still gets the full answer...
        assert_eq!(status, 502);
        assert!(reason.starts_with("regdoc client_firewall"), "{reason}");
    }
    // ...but the log has the first in full and then a count.
    let summaries = wait_records(1, |v| {
        v["event"] == "failure_summary" && v["target"] == target.as_str()
    })
    .await;
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0]["count"], 19);
    assert_eq!(summaries[0]["cause"], "client_firewall");
    assert_eq!(records(by_target("failure", target)).len(), 1);
}

#[tokio::test]
async fn login_article_invalid_credentials_over_plain_http_forwarding() {
    use http_body_util::BodyExt;
    // A registry's token service over plain HTTP (an insecure registry): the wrong password is
    // visible without interception.
    let origin = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        |req: hyper::Request<hyper::body::Incoming>| async move {
                            let body = if req.uri().path() == "/v2/" {
                                (
                                    401,
                                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
                                )
                            } else {
                                (
                                    401,
                                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required, visit https://aka.ms/acr/authorization for more information."}]}"#,
                                )
                            };
                            let mut r = hyper::Response::new(http_body_util::Full::new(
                                bytes::Bytes::from(body.1),
                            ));
                            *r.status_mut() = hyper::StatusCode::from_u16(body.0).unwrap();
                            r.headers_mut().insert(
                                "content-type",
                                "application/json; charset=utf-8".parse().unwrap(),
                            );
                            r.headers_mut().insert(
                            "www-authenticate",
                            "Bearer realm=\"http://plainreg.azurecr.io/oauth2/token\",service=\"plainreg.azurecr.io\""
                                .parse()
                                .unwrap(),
                        );
                            Ok::<_, std::convert::Infallible>(r)
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        addr
    };
    let mut cfg = config(&[origin.port()]);
    cfg.dns.overrides.insert(
        "plainreg.azurecr.io".into(),
        vec!["127.0.0.1".parse().unwrap()],
    );
    let proxy = Proxy::start(cfg).await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<
        _,
        http_body_util::Empty<bytes::Bytes>,
    >(hyper_util::rt::TokioIo::new(stream))
    .await
    .unwrap();
    tokio::spawn(conn);
    let base = format!("http://plainreg.azurecr.io:{}", origin.port());
    // The anonymous challenge is healthy.
    let r = sender
        .send_request(
            hyper::Request::get(format!("{base}/v2/"))
                .body(http_body_util::Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("x-regdoc-cause").is_none());
    r.into_body().collect().await.unwrap();
    // A wrong password at the token endpoint is not.
    let r = sender
        .send_request(
            hyper::Request::get(format!(
                "{base}/oauth2/token?account=bob&client_id=docker&service=plainreg.azurecr.io"
            ))
            // base64("bob:plain-http-secret")
            .header("authorization", "Basic Ym9iOnBsYWluLWh0dHAtc2VjcmV0")
            .body(http_body_util::Empty::new())
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let cause = r
        .headers()
        .get("x-regdoc-cause")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(cause.starts_with("invalid_credentials"), "{cause}");
    let body = r.into_body().collect().await.unwrap().to_bytes();
    assert!(
        body.starts_with(br#"{"errors":[{"code":"UNAUTHORIZED""#),
        "the body is replayed unchanged"
    );
    let target = format!("plainreg.azurecr.io:{}", origin.port());
    let f = wait_records(1, by_target("failure", target.clone())).await;
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["cause"], "invalid_credentials");
    assert_eq!(f[0]["http"]["auth"]["scheme"], "basic");
    // The connection record is written when the connection ends: end it, wait for it, scan.
    drop(sender);
    let secrets = secrets::Secrets::new();
    secrets.register("plain-http-secret");
    secrets.register("bob:plain-http-secret");
    let text = text_after(1, by_target("connection", target)).await;
    secrets.assert_absent("log", &text);
    secrets.assert_absent("report", &report_of_log());
}

/// TLS application-data records of varied sizes, `total` body bytes in all, and where each
/// record starts (so a writer can split headers across segments).
fn tls_records(total: usize) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::with_capacity(total + total / 100);
    let mut starts = Vec::new();
    let mut i = 0usize;
    let mut body = 0usize;
    while body < total {
        // Mostly full records, with short ones mixed in, as servers write them.
        let len = match i % 7 {
            3 => 17 + i % 300,
            5 => 1 + i % 40,
            _ => 16384 + 17,
        }
        .min(total - body);
        starts.push(out.len());
        out.extend_from_slice(&[0x17, 0x03, 0x03, (len >> 8) as u8, len as u8]);
        out.extend((0..len).map(|k| ((k * 31 + i) % 251) as u8));
        body += len;
        i += 1;
    }
    (out, starts)
}

/// A bulk TLS download (well past the size at which a plain tunnel direction would be handed
/// to the kernel) arrives intact, headers split across segments included; a server that then
/// rests on a record boundary (an idle keep-alive connection) is not a stall, and one that
/// stops inside a record is. regdoc reads every byte of such a download to follow its records,
/// so it copies it rather than splicing it (`zero_copy` is false in the record).
#[tokio::test]
async fn transfer_stalled_is_exact_on_bulk_downloads() {
    let (body, starts) = tls_records(3 * 1024 * 1024);
    let first_flight = rustls_server_first_flight();
    let mut stream = first_flight.clone();
    stream.extend_from_slice(&body);
    let stream = std::sync::Arc::new(stream);
    let cut = first_flight.len() + starts[starts.len() - 3] + 700;
    let header_splits: Vec<usize> = starts
        .iter()
        .skip(80)
        .step_by(9)
        .map(|s| first_flight.len() + s + 2)
        .collect();

    let serve = |end: usize| {
        let stream = stream.clone();
        let splits = header_splits.clone();
        move |mut s: TcpStream| {
            let stream = stream.clone();
            let splits = splits.clone();
            async move {
                let mut b = [0u8; 4096];
                if s.read(&mut b).await.is_err() {
                    return;
                }
                let mut at = 0;
                for split in splits.into_iter().filter(|&p| p < end) {
                    if s.write_all(&stream[at..split]).await.is_err() {
                        return;
                    }
                    let _ = s.flush().await;
                    // Let the first bytes of a header leave alone.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    at = split;
                }
                let _ = s.write_all(&stream[at..end]).await;
                // Silent (but connected) past the stall limit, then a clean close: the end of
                // the stream must still reach the client through the pipe.
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    let resting = server(serve(stream.len())).await;
    let cut_off = server(serve(cut)).await;
    let mut cfg = config(&[resting.port(), cut_off.port()]);
    cfg.timeouts.stall = Duration::from_secs(1);
    for h in ["rest.westus.data.azurecr.io", "cut.westus.data.azurecr.io"] {
        cfg.dns
            .overrides
            .insert(h.into(), vec!["127.0.0.1".parse().unwrap()]);
    }
    let proxy = Proxy::start(cfg).await;
    let hello = regdoc_hello();

    let read_all = |target: String, want: usize| {
        let stream = stream.clone();
        let hello = hello.clone();
        async move {
            let (mut s, status, _) = connect(proxy.addr, &target, "").await;
            assert_eq!(status, 200);
            s.write_all(&hello).await.unwrap();
            let mut got = Vec::with_capacity(want);
            let mut b = vec![0u8; 65536];
            while got.len() < want {
                match tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await {
                    Ok(Ok(n)) if n > 0 => got.extend_from_slice(&b[..n]),
                    other => panic!("{target}: read ended after {} bytes: {other:?}", got.len()),
                }
            }
            assert!(
                got[..] == stream[..want],
                "{target}: bytes changed in transit"
            );
            s
        }
    };
    let rest_target = format!("rest.westus.data.azurecr.io:{}", resting.port());
    let cut_target = format!("cut.westus.data.azurecr.io:{}", cut_off.port());
    let _rest = read_all(rest_target.clone(), stream.len()).await;
    let _cut = read_all(cut_target.clone(), cut).await;

    let f = wait_records(1, by_target("failure", cut_target.clone())).await;
    assert_eq!(f[0]["kind"]["kind"], "transfer_stalled", "{:#}", f[0]);
    assert_eq!(f[0]["cause"], "transfer_stalled");
    // The resting server has been silent for longer than the stall limit by now, twice over.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rest = records(by_target("failure", rest_target.clone()));
    assert!(
        rest.is_empty(),
        "idle keep-alive taken for a stall: {rest:#?}"
    );

    // Both servers close; the clients see the end and close too; the records tell that the
    // bulk of each download went through the kernel pipe, every byte counted.
    let mut ends = Vec::new();
    for (mut s, target, want) in [(_rest, rest_target, stream.len()), (_cut, cut_target, cut)] {
        let mut b = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await;
        assert!(
            matches!(n, Ok(Ok(0))),
            "{target}: expected the end of the stream, got {n:?}"
        );
        drop(s);
        ends.push((target, want));
    }
    for (target, want) in ends {
        let c = wait_records(1, by_target("connection", target.clone())).await;
        assert_eq!(c[0]["zero_copy"], false, "{target}: {:#}", c[0]);
        assert_eq!(c[0]["bytes_down"], want as u64, "{target}: {:#}", c[0]);
    }
}
