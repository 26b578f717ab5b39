//! Core proxy behaviour over loopback: tunnels, refusals and their records, forwarding,
//! upstream chaining, shutdown.

mod common;

use common::proxy::*;
use common::secrets::{self, Secrets};
use common::{dns, net};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Deterministic payload so corruption is detected, not just length.
fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[0] ^ seed)
        .collect()
}

/// Both ways past the zero-copy threshold, so the bulk goes through the kernel pipe.
#[tokio::test]
async fn tunnel_carries_megabytes_both_ways_with_half_close() {
    megabytes_both_ways(true).await;
}

/// The same through the copy path alone (`zero_copy = false`, and every system without splice).
#[tokio::test]
async fn tunnel_carries_megabytes_both_ways_by_copying() {
    megabytes_both_ways(false).await;
}

async fn megabytes_both_ways(zero_copy: bool) {
    const UP: usize = 6 * 1024 * 1024;
    const DOWN: usize = 9 * 1024 * 1024;
    // The server reads until the client half-closes, checks what it got, then answers.
    let origin = server(|mut s: TcpStream| async move {
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.expect("read up");
        let ok = got == payload(UP, 1);
        let mut answer = vec![u8::from(ok)];
        answer.extend_from_slice(&payload(DOWN, 2));
        s.write_all(&answer).await.expect("write down");
    })
    .await;
    let mut cfg = config(&[origin.port()]);
    cfg.zero_copy = zero_copy;
    let proxy = Proxy::start(cfg).await;
    let target = format!("127.0.0.1:{}", origin.port());
    let (s, status, _) = connect(proxy.addr, &target, "").await;
    assert_eq!(status, 200);
    let (mut r, mut w) = s.into_split();
    let writer = tokio::spawn(async move {
        w.write_all(&payload(UP, 1)).await.expect("write");
        w.shutdown().await.expect("half-close");
        w
    });
    let mut down = Vec::new();
    within("read the tunnel down", r.read_to_end(&mut down))
        .await
        .expect("read the tunnel down");
    let _w = writer.await.expect("writer");
    assert_eq!(down.len(), DOWN + 1);
    assert_eq!(down[0], 1, "server saw corrupted or truncated upload");
    assert!(down[1..] == payload(DOWN, 2)[..], "download corrupted");

    let recs = wait_records(1, by_target("connection", target)).await;
    let rec = &recs[0];
    assert_eq!(rec["mode"], "tunnel");
    assert_eq!(rec["bytes_up"], UP as u64);
    assert_eq!(rec["bytes_down"], (DOWN + 1) as u64);
    assert_eq!(rec["close_reason"], "done");
    assert_eq!(rec["phases"]["connect"]["outcome"], "ok");
    assert_eq!(rec["failed"], false);
    assert_eq!(
        rec["zero_copy"],
        zero_copy && cfg!(target_os = "linux"),
        "{rec:#}"
    );
}

#[tokio::test]
async fn dns_override_and_connect_to_pick_the_address() {
    let origin = server(|mut s: TcpStream| async move {
        let _ = s.write_all(b"hello").await;
    })
    .await;
    let mut cfg = config(&[origin.port(), 7443]);
    cfg.dns.overrides.insert(
        "reg.example.test".into(),
        vec!["127.0.0.1".parse().unwrap()],
    );
    cfg.dns.connect_to.push(format!(
        "pinned.azurecr.io:7443=127.0.0.1:{}",
        origin.port()
    ));
    let proxy = Proxy::start(cfg).await;

    let target = format!("reg.example.test:{}", origin.port());
    let (mut s_first, status, _) = connect(proxy.addr, &target, "").await;
    assert_eq!(status, 200);
    let mut buf = [0u8; 5];
    within("first client read", s_first.read_exact(&mut buf))
        .await
        .expect("first client read");
    assert_eq!(&buf, b"hello");

    let (mut s, status, _) = connect(proxy.addr, "pinned.azurecr.io:7443", "").await;
    assert_eq!(status, 200);
    within("second client read", s.read_exact(&mut buf))
        .await
        .expect("second client read");
    drop(s);
    let recs = wait_records(1, by_target("connection", "pinned.azurecr.io:7443".into())).await;
    assert_eq!(recs[0]["endpoint"], "registry_rest");
    assert_eq!(recs[0]["registry"], "pinned");
    assert_eq!(
        recs[0]["resolved"][0],
        format!("127.0.0.1:{}", origin.port())
    );
    // The connection record says where the address came from, as failure records do.
    assert_eq!(recs[0]["dns"]["source"], "connect_to");
    assert_eq!(
        recs[0]["dns"]["addresses"],
        serde_json::json!(["127.0.0.1"])
    );
    drop(s_first);
    let recs = wait_records(1, by_target("connection", target)).await;
    assert_eq!(recs[0]["dns"]["source"], "override");
}

#[tokio::test]
async fn refused_connect_is_502_with_reason_and_failure_record() {
    // A port held, not listening, for the whole test: a just-freed port could be taken by
    // another test, or the dial could connect to itself there.
    let dead = net::refused_addr();
    let port = dead.port();
    let proxy = Proxy::start(config(&[port])).await;
    let target = format!("127.0.0.1:{port}");
    let (_s, status, reason) = connect(proxy.addr, &target, "").await;
    assert_eq!(status, 502);
    assert!(reason.starts_with("regdoc"), "{reason}");
    assert!(reason.contains("refused"), "{reason}");
    let f = wait_records(1, by_target("failure", target.clone())).await;
    assert_eq!(f[0]["phase"], "connect");
    assert_eq!(f[0]["kind"]["kind"], "connect_refused");
    assert_eq!(f[0]["reply_status"], 502);
    assert_eq!(f[0]["reply_reason"], reason.as_str());
}

#[tokio::test]
async fn timed_out_connect_is_504() {
    let hole = black_hole().await;
    let addr = hole.addr;
    let proxy = Proxy::start(config(&[addr.port()])).await;
    let target = format!("127.0.0.1:{}", addr.port());
    let (_s, status, reason) = connect(proxy.addr, &target, "").await;
    assert_eq!(status, 504, "{reason}");
    let f = wait_records(1, by_target("failure", target)).await;
    assert_eq!(f[0]["kind"]["kind"], "connect_timeout");
    drop(hole);
}

#[tokio::test]
async fn disallowed_port_is_403_and_bad_heads_are_400_431_while_others_are_served() {
    let origin = server(|mut s: TcpStream| async move {
        let mut b = [0u8; 4];
        if s.read_exact(&mut b).await.is_ok() {
            let _ = s.write_all(&b).await;
        }
    })
    .await;
    let mut cfg = config(&[origin.port()]);
    cfg.max_head_bytes = 2048;
    let proxy = Proxy::start(cfg).await;

    // An open tunnel that must survive the bad clients below.
    let (mut good, status, _) =
        connect(proxy.addr, &format!("127.0.0.1:{}", origin.port()), "").await;
    assert_eq!(status, 200);

    let (_s, status, reason) = connect(proxy.addr, "127.0.0.1:22", "").await;
    assert_eq!(status, 403);
    assert!(reason.contains("port 22"), "{reason}");

    let mut bad = TcpStream::connect(proxy.addr).await.unwrap();
    bad.write_all(b"CONNECT \x01\x02 nonsense\r\n\r\n")
        .await
        .unwrap();
    let (status, _) = read_status(&mut bad).await;
    assert_eq!(status, 400);

    let mut big = TcpStream::connect(proxy.addr).await.unwrap();
    let huge = format!(
        "CONNECT 127.0.0.1:443 HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(4096)
    );
    let _ = big.write_all(huge.as_bytes()).await;
    let (status, _) = read_status(&mut big).await;
    assert_eq!(status, 431);

    let mut odd = TcpStream::connect(proxy.addr).await.unwrap();
    odd.write_all(b"CONNECT no-port-here HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let (status, _) = read_status(&mut odd).await;
    assert_eq!(status, 400);

    good.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    within("good client read", good.read_exact(&mut b))
        .await
        .expect("good client read");
    assert_eq!(&b, b"ping");
}

#[tokio::test]
async fn tls_bytes_instead_of_connect_are_recognised() {
    let proxy = Proxy::start(config(&[])).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    // The start of a TLS 1.2 ClientHello record, as a daemon with HTTPS_PROXY=https:// sends.
    s.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00])
        .await
        .unwrap();
    let (status, reason) = read_status(&mut s).await;
    assert_eq!(status, 400);
    assert!(reason.contains("http://"), "{reason}");
    let f = wait_records(1, |v| {
        v["event"] == "failure"
            && v["kind"]["kind"] == "tls_instead_of_http"
            && v["reply_reason"] == reason.as_str()
    })
    .await;
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["phase"], "request");
}

#[tokio::test]
async fn proxy_auth_is_required_when_configured() {
    let secrets = Secrets::new();
    let origin = server(|_s: TcpStream| async move {}).await;
    let mut cfg = config(&[origin.port()]);
    cfg.auth = Some(regdoc::config::ProxyAuth {
        username: "ops".into(),
        password: secrets.register("s3cret-pw"),
    });
    secrets.register("ops:s3cret-pw");
    let proxy = Proxy::start(cfg).await;
    let target = format!("127.0.0.1:{}", origin.port());
    let (s1, status, _) = connect(proxy.addr, &target, "").await;
    assert_eq!(status, 407);
    let (s2, status, _) = connect(
        proxy.addr,
        &target,
        "Proxy-Authorization: Basic b3BzOndyb25n\r\n",
    )
    .await;
    assert_eq!(status, 407);
    // base64("ops:s3cret-pw")
    let (s3, status, _) = connect(
        proxy.addr,
        &target,
        "Proxy-Authorization: Basic b3BzOnMzY3JldC1wdw==\r\n",
    )
    .await;
    assert_eq!(status, 200);
    // Scan once every connection has ended and written its record. The second 407 repeats
    // the first (same cause, client and target): its failure and its connection record are
    // counted, not written.
    drop((s1, s2, s3));
    let text = text_after(2, by_target("connection", target)).await;
    secrets.assert_absent("log", &text);
    secrets.assert_absent("report", &report_of_log());
}

#[tokio::test]
async fn silent_server_is_recorded_after_tls_timeout() {
    let origin = server(|mut s: TcpStream| async move {
        // Accept, read whatever comes, never answer.
        let mut b = vec![0u8; 4096];
        while let Ok(n) = s.read(&mut b).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    let proxy = Proxy::start(config(&[origin.port()])).await;
    let target = format!("127.0.0.1:{}", origin.port());
    let (mut s, status, _) = connect(proxy.addr, &target, "").await;
    assert_eq!(status, 200);
    s.write_all(&client_hello_bytes()).await.unwrap();
    let f = wait_records(1, by_target("failure", target.clone())).await;
    assert_eq!(f[0]["phase"], "tls");
    assert_eq!(f[0]["kind"]["kind"], "tls_server_silent");
    let c = wait_records(1, by_target("connection", target)).await;
    assert_eq!(c[0]["close_reason"], "tls_timeout");
    assert_eq!(c[0]["phases"]["tls"]["outcome"], "timeout");
}

/// The client, not regdoc's deadline, ends a handshake the server leaves unanswered: the
/// record says the client printed its own handshake timeout (a fact of the failure event, not
/// words found in its sentence).
#[tokio::test]
async fn a_silent_server_the_client_gave_up_on_is_its_handshake_timeout() {
    let origin = server(|mut s: TcpStream| async move {
        let mut b = vec![0u8; 4096];
        while let Ok(n) = s.read(&mut b).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    let mut cfg = config(&[origin.port()]);
    cfg.timeouts.tls = Duration::from_secs(20);
    let proxy = Proxy::start(cfg).await;
    let target = format!("127.0.0.1:{}", origin.port());
    let (mut s, status, _) = connect(proxy.addr, &target, "").await;
    assert_eq!(status, 200);
    s.write_all(&client_hello_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(s);
    let f = wait_records(1, by_target("failure", target.clone())).await;
    assert_eq!(f[0]["kind"]["kind"], "tls_server_silent", "{}", f[0]);
    let error = f[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("the client gave up"), "{error}");
    let symptom = f[0]["client_symptom"].as_str().unwrap_or_default();
    assert!(
        symptom.ends_with("net/http: TLS handshake timeout"),
        "{symptom}"
    );
}

/// A real ClientHello from rustls, taken from an in-memory client.
fn client_hello_bytes() -> Vec<u8> {
    use std::sync::Arc;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore::empty();
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("silent.azurecr.io").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

#[tokio::test]
async fn upstream_proxy_accepts_refuses_asks_auth_or_closes() {
    let origin = server(|mut s: TcpStream| async move {
        let _ = s.write_all(b"via-upstream").await;
    })
    .await;
    // A second regdoc plays the corporate proxy: it allows the origin port.
    let mut up_cfg = config(&[origin.port()]);
    up_cfg.auth = None;
    let upstream_ok = Proxy::start(up_cfg).await;
    // One that refuses the port (403) and one that requires credentials (407).
    let upstream_403 = Proxy::start(config(&[])).await;
    let mut auth_cfg = config(&[origin.port()]);
    auth_cfg.auth = Some(regdoc::config::ProxyAuth {
        username: "u".into(),
        password: "p".into(),
    });
    let upstream_407 = Proxy::start(auth_cfg).await;
    // One that accepts and closes without answering.
    let closer = server(|s: TcpStream| async move { drop(s) }).await;

    let target = format!("127.0.0.1:{}", origin.port());
    for (up, expect_status, kind) in [
        (upstream_ok.addr, 200, None),
        (upstream_403.addr, 502, Some("upstream_proxy_status")),
        (upstream_407.addr, 502, Some("upstream_proxy_status")),
        (closer, 502, Some("upstream_proxy_closed")),
    ] {
        let mut cfg = config(&[origin.port()]);
        cfg.upstream.proxy = Some(format!("http://{up}"));
        let proxy = Proxy::start(cfg).await;
        let (mut s, status, reason) = connect(proxy.addr, &target, "").await;
        assert_eq!(status, expect_status, "via {up}: {reason}");
        if let Some(kind) = kind {
            assert!(reason.contains("upstream proxy"), "{reason}");
            let f = wait_records(1, |v| {
                v["event"] == "failure"
                    && v["upstream_proxy"] == up.to_string().as_str()
                    && v["target"] == target.as_str()
            })
            .await;
            assert_eq!(f[0]["kind"]["kind"], kind, "via {up}");
            assert_eq!(f[0]["phase"], "upstream_proxy");
        } else {
            let mut b = [0u8; 12];
            s.read_exact(&mut b).await.unwrap();
            assert_eq!(&b, b"via-upstream");
        }
    }
}

/// What a fake upstream proxy saw: the head of each CONNECT it was sent, in arrival order.
type Heads = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// A fake corporate proxy on loopback. It reads a CONNECT head and records it; it answers
/// `407` when `require` is set and the head lacks exactly that `Proxy-Authorization` value,
/// `403` when the requested host starts with `refused.`, and otherwise `200` followed by the
/// tunnel bytes `via-upstream` (it never dials anything itself); then it closes.
async fn fake_upstream(require: Option<&'static str>) -> (std::net::SocketAddr, Heads) {
    let heads: Heads = Default::default();
    let seen = heads.clone();
    let addr = server(move |mut s: TcpStream| {
        let seen = seen.clone();
        async move {
            let mut head = Vec::new();
            let mut b = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut b).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&b[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            seen.lock().unwrap().push(head.clone());
            let authorized = require.is_none_or(|want| {
                head.lines()
                    .any(|l| l == format!("Proxy-Authorization: {want}"))
            });
            let answer: &[u8] = if !authorized {
                b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"
            } else if head.starts_with("CONNECT refused.") {
                b"HTTP/1.1 403 Forbidden\r\n\r\n"
            } else {
                b"HTTP/1.1 200 Connection established\r\n\r\nvia-upstream"
            };
            let _ = s.write_all(answer).await;
        }
    })
    .await;
    (addr, heads)
}

/// Read until end of stream, bounded; `Ok` with what came when the peer closed (or reset).
async fn read_until_closed(s: &mut TcpStream) -> Result<Vec<u8>, &'static str> {
    let mut got = Vec::new();
    let mut b = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await {
            Err(_) => return Err("still open after 10 s"),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(got),
            Ok(Ok(n)) => got.extend_from_slice(&b[..n]),
        }
    }
}

#[tokio::test]
async fn idle_passthrough_tunnel_is_closed_with_idle_timeout() {
    // An origin that never speaks first (it answers `ping` once, with `pong`) and reports what
    // it received when its side of the tunnel ends.
    let (ended_tx, mut ended_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let origin = server(move |mut s: TcpStream| {
        let ended_tx = ended_tx.clone();
        async move {
            let mut got = Vec::new();
            let mut b = [0u8; 1024];
            loop {
                match s.read(&mut b).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        got.extend_from_slice(&b[..n]);
                        // Answer a plain (non-TLS) greeting once, then fall silent.
                        if got == b"ping" {
                            let _ = s.write_all(b"pong").await;
                        }
                    }
                }
            }
            let _ = ended_tx.send(got);
        }
    })
    .await;
    let mut cfg = config(&[origin.port()]);
    cfg.timeouts.idle = Duration::from_secs(1);
    let proxy = Proxy::start(cfg).await;

    // Silent from the start: neither side ever sends a byte (ends while awaiting the first).
    let target = format!("127.0.0.1:{}", origin.port());
    let (mut s, status, _) = connect(proxy.addr, &target, "").await;
    assert_eq!(status, 200);
    let got = read_until_closed(&mut s).await;
    assert_eq!(got, Ok(Vec::new()), "regdoc did not close the idle tunnel");
    let seen = tokio::time::timeout(Duration::from_secs(10), ended_rx.recv())
        .await
        .expect("the server's side of the idle tunnel was not closed");
    assert_eq!(seen, Some(Vec::new()));
    let c = wait_records(1, by_target("connection", target.clone())).await;
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0]["mode"], "tunnel");
    assert_eq!(c[0]["close_reason"], "idle_timeout", "{}", c[0]);
    assert_eq!(c[0]["bytes_up"], 0);
    assert_eq!(c[0]["bytes_down"], 0);
    drop(s);

    // Silent after an exchange: the bulk relay's idle watch closes it too.
    let (mut s, status, _) = connect(proxy.addr, &target, "").await;
    assert_eq!(status, 200);
    s.write_all(b"ping").await.unwrap();
    let got = read_until_closed(&mut s).await;
    assert_eq!(got.as_deref(), Ok(&b"pong"[..]), "regdoc did not close");
    let seen = tokio::time::timeout(Duration::from_secs(10), ended_rx.recv())
        .await
        .expect("the server's side of the idle tunnel was not closed");
    assert_eq!(seen.as_deref(), Some(&b"ping"[..]));
    let c = wait_records(2, by_target("connection", target)).await;
    assert_eq!(c.len(), 2, "{c:?}");
    assert_eq!(c[1]["close_reason"], "idle_timeout", "{}", c[1]);
    assert_eq!(c[1]["bytes_up"], 4);
    assert_eq!(c[1]["bytes_down"], 4);
}

#[tokio::test]
async fn silent_upstream_proxy_is_504_upstream_proxy_timeout() {
    // Accepts the TCP connection, reads the CONNECT, never answers.
    let (got_tx, mut got_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let silent = server(move |mut s: TcpStream| {
        let got_tx = got_tx.clone();
        async move {
            let mut head = Vec::new();
            let mut b = [0u8; 1024];
            while let Ok(n) = s.read(&mut b).await {
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&b[..n]);
                if head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let _ = got_tx.send(String::from_utf8_lossy(&head).into_owned());
                }
            }
        }
    })
    .await;
    let mut cfg = config(&[silent.port()]);
    cfg.upstream.proxy = Some(format!("http://{silent}"));
    cfg.timeouts.upstream_proxy = Duration::from_millis(500);
    let proxy = Proxy::start(cfg).await;
    // Never resolved by regdoc: the name goes to the upstream proxy as is.
    let target = format!("silent-upstream.example.test:{}", silent.port());
    let (_s, status, reason) = connect(proxy.addr, &target, "").await;
    assert_eq!(status, 504, "{reason}");
    assert!(
        reason.starts_with("regdoc upstream_proxy: "),
        "reason does not name the cause: {reason}"
    );
    assert!(reason.contains("did not answer"), "{reason}");
    assert!(reason.contains(&silent.to_string()), "{reason}");
    let head = tokio::time::timeout(Duration::from_secs(10), got_rx.recv())
        .await
        .expect("the upstream proxy got no CONNECT")
        .unwrap();
    assert!(
        head.starts_with(&format!("CONNECT {target} HTTP/1.1\r\n")),
        "{head}"
    );

    let f = wait_records(1, by_target("failure", target.clone())).await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["phase"], "upstream_proxy");
    assert_eq!(f[0]["kind"]["kind"], "upstream_proxy_timeout", "{}", f[0]);
    assert_eq!(f[0]["cause"], "upstream_proxy");
    assert_eq!(f[0]["upstream_proxy"], silent.to_string().as_str());
    assert_eq!(f[0]["reply_status"], 504);
    assert_eq!(f[0]["reply_reason"], reason.as_str());
    let c = wait_records(1, by_target("connection", target)).await;
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0]["phases"]["connect"]["outcome"], "ok", "{}", c[0]);
    assert_eq!(c[0]["phases"]["upstream_proxy"]["outcome"], "timeout");
    assert_eq!(c[0]["upstream_proxy"], silent.to_string().as_str());
    assert_eq!(c[0]["close_reason"], "refused");
    assert_eq!(c[0]["failed"], true);
}

#[tokio::test]
async fn no_proxy_hosts_go_direct_while_others_use_the_upstream_proxy() {
    let origin = server(|mut s: TcpStream| async move {
        let _ = s.write_all(b"direct-origin").await;
    })
    .await;
    let port = origin.port();
    let (up, heads) = fake_upstream(None).await;
    let mut cfg = config(&[port]);
    cfg.upstream.proxy = Some(format!("http://{up}"));
    // An exact host (which also covers its subdomains) and a `.domain` suffix.
    cfg.upstream.no_proxy = vec!["direct.example.test".into(), ".corp.test".into()];
    let direct_hosts = [
        "direct.example.test",
        "sub.direct.example.test",
        "reg.corp.test",
        "a.b.corp.test",
        "corp.test",
    ];
    // Only the direct hosts resolve (to loopback); the others are never resolved by regdoc.
    for h in direct_hosts {
        cfg.dns
            .overrides
            .insert(h.into(), vec!["127.0.0.1".parse().unwrap()]);
    }
    let proxy = Proxy::start(cfg).await;

    for h in direct_hosts {
        let target = format!("{h}:{port}");
        let (mut s, status, reason) = connect(proxy.addr, &target, "").await;
        assert_eq!(status, 200, "{h}: {reason}");
        assert_eq!(
            read_until_closed(&mut s).await.as_deref(),
            Ok(&b"direct-origin"[..]),
            "{h}"
        );
        drop(s);
        let c = wait_records(1, by_target("connection", target)).await;
        assert_eq!(c.len(), 1, "{h}: {c:?}");
        assert!(c[0]["upstream_proxy"].is_null(), "{h}: {}", c[0]);
        assert!(c[0]["phases"]["upstream_proxy"].is_null(), "{h}: {}", c[0]);
        assert_eq!(c[0]["resolved"][0], format!("127.0.0.1:{port}"), "{h}");
    }
    let through = heads.lock().unwrap().clone();
    assert!(
        through.is_empty(),
        "a no_proxy host went through the upstream proxy: {through:?}"
    );

    // Not listed, and not on a label boundary of a listed domain.
    let via_hosts = ["other.example.test", "notcorp.test", "example.test"];
    for h in via_hosts {
        let target = format!("{h}:{port}");
        let (mut s, status, reason) = connect(proxy.addr, &target, "").await;
        assert_eq!(status, 200, "{h}: {reason}");
        let mut b = [0u8; 12];
        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut b))
            .await
            .expect("bounded read")
            .unwrap();
        assert_eq!(&b, b"via-upstream", "{h}");
        drop(s);
        let c = wait_records(1, by_target("connection", target)).await;
        assert_eq!(c.len(), 1, "{h}: {c:?}");
        assert_eq!(c[0]["upstream_proxy"], up.to_string().as_str(), "{h}");
        assert_eq!(c[0]["phases"]["upstream_proxy"]["outcome"], "ok", "{h}");
    }
    let heads = heads.lock().unwrap().clone();
    let asked: Vec<&str> = heads
        .iter()
        .map(|h| h.lines().next().unwrap_or(""))
        .collect();
    let want: Vec<String> = via_hosts
        .iter()
        .map(|h| format!("CONNECT {h}:{port} HTTP/1.1"))
        .collect();
    assert_eq!(asked, want);
}

#[tokio::test]
async fn upstream_proxy_credentials_are_sent_and_never_logged() {
    // base64("user:up-S3cret-pw")
    const BASIC: &str = "dXNlcjp1cC1TM2NyZXQtcHc=";
    let secrets = Secrets::new();
    secrets.register("up-S3cret-pw");
    secrets.register("user:up-S3cret-pw");
    let (up, heads) = fake_upstream(Some("Basic dXNlcjp1cC1TM2NyZXQtcHc=")).await;
    let mut cfg = config(&[up.port()]);
    cfg.upstream.proxy = Some(format!("http://user:up-S3cret-pw@{up}"));
    let proxy = Proxy::start(cfg).await;

    let target = format!("creds.example.test:{}", up.port());
    let (mut s, status, reason) = connect(proxy.addr, &target, "").await;
    assert_eq!(
        status, 200,
        "the upstream proxy refused the credentials: {reason}"
    );
    let mut b = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut b))
        .await
        .expect("bounded read")
        .unwrap();
    assert_eq!(&b, b"via-upstream");
    drop(s);
    {
        let heads = heads.lock().unwrap();
        assert_eq!(heads.len(), 1, "{heads:?}");
        assert!(
            heads[0]
                .lines()
                .any(|l| l == format!("Proxy-Authorization: Basic {BASIC}")),
            "{}",
            heads[0]
        );
    }
    // A refusal by the same upstream writes a failure record naming it: still no secret.
    let refused = format!("refused.example.test:{}", up.port());
    let (_s, status, reason) = connect(proxy.addr, &refused, "").await;
    assert_eq!(status, 502, "{reason}");
    let f = wait_records(1, by_target("failure", refused.clone())).await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["kind"]["status"], 403, "{}", f[0]);
    assert_eq!(f[0]["upstream_proxy"], up.to_string().as_str());
    let c = wait_records(1, by_target("connection", target)).await;
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0]["upstream_proxy"], up.to_string().as_str());
    wait_records(1, by_target("connection", refused)).await;

    // Every connection has ended and written its record: scan the whole log and the report.
    let text = format!("{}\n{}", log_text(), all_text());
    secrets.assert_absent("log", &text);
    secrets.assert_absent(
        "records",
        &serde_json::to_string(&records(|_| true)).unwrap(),
    );
    secrets.assert_absent("report", &report_of_log());
}

#[tokio::test]
async fn plain_http_is_forwarded_with_keep_alive_and_streamed_bodies() {
    use http_body_util::BodyExt;
    // An origin that echoes the request body length and the Host it saw.
    let origin = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        |req: hyper::Request<hyper::body::Incoming>| async move {
                            let host = req
                                .headers()
                                .get("host")
                                .and_then(|h| h.to_str().ok())
                                .unwrap_or("")
                                .to_string();
                            let hop = req.headers().contains_key("proxy-connection");
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes().len())
                                .unwrap_or(0);
                            let text = format!("{host} {body} {hop}");
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from(text)),
                            ))
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
    let proxy = Proxy::start(config(&[origin.port()])).await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<
        _,
        http_body_util::Full<bytes::Bytes>,
    >(hyper_util::rt::TokioIo::new(stream))
    .await
    .unwrap();
    tokio::spawn(conn);
    let url = format!("http://127.0.0.1:{}/v2/", origin.port());
    for size in [0usize, 3 * 1024 * 1024] {
        let req = hyper::Request::post(&url)
            .header("proxy-connection", "keep-alive")
            .body(http_body_util::Full::new(bytes::Bytes::from(vec![
                7u8;
                size
            ])))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            String::from_utf8_lossy(&body),
            format!("127.0.0.1:{} {size} false", origin.port())
        );
    }
    // An origin-form request is not a proxy request.
    let req = hyper::Request::get("/v2/")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 400);
}

/// An origin that reads one request head and ends the connection without answering: with a FIN
/// (`reset` false) or a RST (`reset` true).
async fn origin_ending_before_headers(reset: bool) -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            if reset {
                // Linger 0: close sends RST instead of FIN.
                socket2::SockRef::from(&s)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
            }
            drop(s);
        }
    });
    addr
}

/// An IPv6 literal target keeps its brackets in every record: `[::1]:PORT`, as the client
/// wrote it, never `::1:PORT`.
#[tokio::test]
async fn a_forwarded_ipv6_target_keeps_its_brackets_in_records() {
    use http_body_util::BodyExt;
    let l = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    // Reads one head and closes: a failure record, a connection record.
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
        }
    });
    let mut cfg = config(&[port]);
    cfg.allowed_destinations.push("::1/128".parse().unwrap());
    let proxy = Proxy::start(cfg).await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<
        _,
        http_body_util::Full<bytes::Bytes>,
    >(hyper_util::rt::TokioIo::new(stream))
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(format!("http://[::1]:{port}/v2/"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 502);
    let _ = resp.into_body().collect().await;
    drop(sender);

    let target = format!("[::1]:{port}");
    let f = wait_records(1, by_target("failure", target.clone())).await;
    assert_eq!(f[0]["host"], "::1", "{}", f[0]);
    assert_eq!(f[0]["kind"]["kind"], "upstream_closed_before_headers");
    let c = wait_records(1, by_target("connection", target.clone())).await;
    assert_eq!(c[0]["mode"], "forward", "{}", c[0]);
    let unbracketed = format!("::1:{port}");
    assert!(
        records(|v| v["target"] == unbracketed.as_str()).is_empty(),
        "no record names {unbracketed}"
    );
}

#[tokio::test]
async fn forwarded_request_whose_server_ends_before_headers_is_not_a_status() {
    use http_body_util::BodyExt;
    for (reset, how, cause, words) in [
        (false, "closed", "registry_error", "registry service error"),
        (true, "reset", "client_firewall", "firewall blocks registry"),
    ] {
        let origin = origin_ending_before_headers(reset).await;
        let proxy = Proxy::start(config(&[origin.port()])).await;
        let stream = TcpStream::connect(proxy.addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<
            _,
            http_body_util::Full<bytes::Bytes>,
        >(hyper_util::rt::TokioIo::new(stream))
        .await
        .unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::get(format!("http://127.0.0.1:{}/v2/", origin.port()))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 502, "{how}");
        let reason = resp
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned())
            .unwrap_or_default();
        assert!(
            reason.starts_with(&format!(
                "regdoc {cause}: the server's connection was {how} before any response headers"
            )),
            "{reason}"
        );
        // The form an intercepted failure's header has (README): `<cause id>; <words>`.
        assert_eq!(
            resp.headers()
                .get("x-regdoc-cause")
                .and_then(|v| v.to_str().ok()),
            Some(format!("{cause}; {words}").as_str()),
            "{how}"
        );
        let _ = resp.into_body().collect().await;

        let target = format!("127.0.0.1:{}", origin.port());
        let f = wait_records(1, by_target("failure", target)).await;
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0]["phase"], "http");
        assert_eq!(
            f[0]["kind"]["kind"], "upstream_closed_before_headers",
            "{}",
            f[0]
        );
        assert_eq!(f[0]["kind"]["how"], how);
        assert_eq!(f[0]["cause"], cause);
        assert_eq!(f[0]["http"]["status"], 0, "no status came from the server");
        assert_eq!(f[0]["reply_status"], 502);
        assert_eq!(f[0]["reply_reason"], reason.as_str());
        let evidence = f[0]["evidence"].to_string();
        assert!(!evidence.contains("TCP connect"), "{evidence}");
        assert!(
            evidence.contains("no HTTP status came from the server"),
            "{evidence}"
        );
    }
}

#[tokio::test]
async fn shutdown_drains_an_open_tunnel() {
    let origin = server(|mut s: TcpStream| async move {
        let mut b = [0u8; 5];
        while s.read_exact(&mut b).await.is_ok() {
            if s.write_all(&b).await.is_err() {
                break;
            }
        }
    })
    .await;
    let mut proxy = Proxy::start(config(&[origin.port()])).await;
    let (mut s, status, _) = connect(proxy.addr, &format!("127.0.0.1:{}", origin.port()), "").await;
    assert_eq!(status, 200);
    let task = proxy.shutdown();
    // The listener goes (a bounded wait, not a guess at how long it takes): new clients are
    // refused...
    let deadline = std::time::Instant::now() + BOUND;
    while TcpStream::connect(proxy.addr).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the listener still accepts {BOUND:?} after shutdown"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...but the open tunnel still works.
    s.write_all(b"drain").await.unwrap();
    let mut b = [0u8; 5];
    within("drained tunnel read", s.read_exact(&mut b))
        .await
        .expect("drained tunnel read");
    assert_eq!(&b, b"drain");
    assert!(!task.is_finished());
    drop(s);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("run returns after the drain")
        .unwrap();
}

/// Wait for `what`, failing the test instead of hanging.
async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Tunnels still open when the shutdown grace runs out are closed, and each writes its
/// `connection` record (`close_reason = "shutdown"`, the bytes it carried) before `run`
/// returns: one carrying data (cut in the copy loop), one whose client never spoke (cut while
/// its handshake was awaited).
#[tokio::test]
async fn tunnels_open_at_the_end_of_the_grace_are_recorded_as_shutdown() {
    let origin = server(|mut s: TcpStream| async move {
        let mut b = [0u8; 5];
        while s.read_exact(&mut b).await.is_ok() {
            if s.write_all(&b).await.is_err() {
                break;
            }
        }
    })
    .await;
    let mut cfg = config(&[origin.port()]);
    cfg.timeouts.shutdown_grace = Duration::from_millis(200);
    let mut proxy = Proxy::start(cfg).await;
    let target = format!("127.0.0.1:{}", origin.port());
    let (mut busy, status, _) = bounded("CONNECT", connect(proxy.addr, &target, "")).await;
    assert_eq!(status, 200);
    busy.write_all(b"hello").await.unwrap();
    let mut b = [0u8; 5];
    bounded("echo", busy.read_exact(&mut b)).await.unwrap();
    assert_eq!(&b, b"hello");
    let (mut quiet, status, _) = bounded("CONNECT", connect(proxy.addr, &target, "")).await;
    assert_eq!(status, 200);

    let task = proxy.shutdown();
    bounded("run returns after the grace", task).await.unwrap();
    // Written before run returned: read at once, without waiting for them.
    let mut recs = records(by_target("connection", target));
    recs.sort_by_key(|r| r["bytes_up"].as_u64());
    assert_eq!(recs.len(), 2, "{recs:#?}");
    for r in &recs {
        assert_eq!(r["close_reason"], "shutdown", "{r:#}");
        assert_eq!(r["mode"], "tunnel", "{r:#}");
        assert_eq!(r["failed"], false, "{r:#}");
    }
    assert_eq!(
        (&recs[0]["bytes_up"], &recs[0]["bytes_down"]),
        (&0.into(), &0.into())
    );
    assert_eq!(
        (&recs[1]["bytes_up"], &recs[1]["bytes_down"]),
        (&5.into(), &5.into())
    );
    // And the clients see their tunnels end.
    for s in [&mut busy, &mut quiet] {
        let end = bounded("the tunnel closes", s.read(&mut b)).await;
        assert!(matches!(end, Ok(0) | Err(_)), "{end:?}");
    }
}

/// A tunnel still being set up when the grace runs out (its upstream proxy has not answered the
/// CONNECT): recorded as ended by the shutdown, with the phases it had finished.
#[tokio::test]
async fn a_tunnel_still_dialling_at_the_end_of_the_grace_is_recorded_as_shutdown() {
    // Reads the CONNECT, says so, never answers.
    let (got_tx, mut got) = tokio::sync::mpsc::unbounded_channel::<()>();
    let silent = server(move |mut s: TcpStream| {
        let got_tx = got_tx.clone();
        async move {
            let mut head = Vec::new();
            let mut b = [0u8; 1024];
            while let Ok(n) = s.read(&mut b).await {
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&b[..n]);
                if head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let _ = got_tx.send(());
                }
            }
        }
    })
    .await;
    let mut cfg = config(&[silent.port()]);
    cfg.upstream.proxy = Some(format!("http://{silent}"));
    cfg.timeouts.upstream_proxy = Duration::from_secs(300);
    cfg.timeouts.shutdown_grace = Duration::from_millis(200);
    let mut proxy = Proxy::start(cfg).await;
    let target = format!("still-dialling.example.test:{}", silent.port());
    let mut client = bounded("connect", TcpStream::connect(proxy.addr))
        .await
        .unwrap();
    let head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    client.write_all(head.as_bytes()).await.unwrap();
    bounded("the upstream proxy gets the CONNECT", got.recv()).await;

    let task = proxy.shutdown();
    bounded("run returns after the grace", task).await.unwrap();
    let recs = records(by_target("connection", target));
    assert_eq!(recs.len(), 1, "{recs:#?}");
    let rec = &recs[0];
    assert_eq!(rec["close_reason"], "shutdown", "{rec:#}");
    assert_eq!(rec["phases"]["connect"]["outcome"], "ok", "{rec:#}");
    assert!(rec["phases"].get("upstream_proxy").is_none(), "{rec:#}");
    assert_eq!(rec["failed"], false);
    let mut b = [0u8; 64];
    let end = bounded("the client is let go", client.read(&mut b)).await;
    assert!(matches!(end, Ok(0) | Err(_)), "{end:?}");
}

/// A forwarded request still waiting for its answer when the grace runs out: its connection is
/// recorded as ended by the shutdown.
#[tokio::test]
async fn a_forwarded_request_open_at_the_end_of_the_grace_is_recorded_as_shutdown() {
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<()>();
    // An origin that takes the request and never answers.
    let origin = server(move |mut s: TcpStream| {
        let seen_tx = seen_tx.clone();
        async move {
            let mut b = [0u8; 1024];
            if matches!(s.read(&mut b).await, Ok(n) if n > 0) {
                let _ = seen_tx.send(());
            }
            while matches!(s.read(&mut b).await, Ok(n) if n > 0) {}
        }
    })
    .await;
    let mut cfg = config(&[origin.port()]);
    cfg.timeouts.shutdown_grace = Duration::from_millis(200);
    let mut proxy = Proxy::start(cfg).await;
    let target = format!("127.0.0.1:{}", origin.port());
    let mut client = bounded("connect", TcpStream::connect(proxy.addr))
        .await
        .unwrap();
    let head = format!("GET http://{target}/v2/ HTTP/1.1\r\nHost: {target}\r\n\r\n");
    client.write_all(head.as_bytes()).await.unwrap();
    bounded("the origin gets the request", seen.recv()).await;

    let task = proxy.shutdown();
    bounded("run returns after the grace", task).await.unwrap();
    let recs = records(by_target("connection", target));
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0]["close_reason"], "shutdown", "{:#}", recs[0]);
    assert_eq!(recs[0]["mode"], "forward");
    assert_eq!(recs[0]["requests"], 1);
}

/// A rustls server on loopback for `name`, offering `alpn`; returns its address and the
/// certificate to trust.
async fn tls_origin(
    name: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> (
    std::net::SocketAddr,
    rustls::pki_types::CertificateDer<'static>,
) {
    use std::sync::Arc;
    let cert = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    let der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let addr = server(move |s: TcpStream| {
        let acceptor = acceptor.clone();
        async move {
            if let Ok(mut tls) = acceptor.accept(s).await {
                let _ = tls.write_all(b"registry").await;
                let _ = tls.shutdown().await;
            }
        }
    })
    .await;
    (addr, der)
}

fn tls_client(
    ca: rustls::pki_types::CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> tokio_rustls::TlsConnector {
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

#[tokio::test]
async fn passthrough_observes_client_hello_and_server_hello() {
    let (origin, ca) = tls_origin("hello.azurecr.io", rustls::DEFAULT_VERSIONS).await;
    let mut cfg = config(&[origin.port()]);
    cfg.dns.overrides.insert(
        "hello.azurecr.io".into(),
        vec!["127.0.0.1".parse().unwrap()],
    );
    let proxy = Proxy::start(cfg).await;
    let target = format!("hello.azurecr.io:{}", origin.port());
    let (s, status, _) = connect(proxy.addr, &target, "").await;
    assert_eq!(status, 200);
    let name = rustls::pki_types::ServerName::try_from("hello.azurecr.io").unwrap();
    let mut tls = tls_client(ca, rustls::DEFAULT_VERSIONS)
        .connect(name, s)
        .await
        .expect("handshake through the tunnel");
    let mut got = Vec::new();
    within("TLS read to end", tls.read_to_end(&mut got))
        .await
        .expect("TLS read to end");
    assert_eq!(got, b"registry");
    drop(tls);
    let c = wait_records(1, by_target("connection", target.clone())).await;
    assert_eq!(c[0]["sni"], "hello.azurecr.io");
    assert_eq!(c[0]["alpn"], serde_json::json!(["h2", "http/1.1"]));
    assert_eq!(c[0]["tls_version"], "TLS1.3");
    assert!(
        c[0]["cipher"].as_str().unwrap_or("").starts_with("TLS13_"),
        "{}",
        c[0]
    );
    assert_eq!(c[0]["phases"]["tls"]["outcome"], "ok");
    assert_eq!(c[0]["endpoint"], "registry_rest");
    assert!(records(by_target("failure", target)).is_empty());
}

#[tokio::test]
async fn passthrough_records_a_server_alert() {
    // The server speaks only TLS 1.2; a TLS 1.3-only client gets a fatal protocol_version alert.
    let (origin, ca) = tls_origin("alert.azurecr.io", &[&rustls::version::TLS12]).await;
    let mut cfg = config(&[origin.port()]);
    cfg.dns.overrides.insert(
        "alert.azurecr.io".into(),
        vec!["127.0.0.1".parse().unwrap()],
    );
    let proxy = Proxy::start(cfg).await;
    let target = format!("alert.azurecr.io:{}", origin.port());
    let (s, status, _) = connect(proxy.addr, &target, "").await;
    assert_eq!(status, 200);
    let name = rustls::pki_types::ServerName::try_from("alert.azurecr.io").unwrap();
    assert!(tls_client(ca, &[&rustls::version::TLS13])
        .connect(name, s)
        .await
        .is_err());
    let c = wait_records(1, by_target("connection", target.clone())).await;
    let f = wait_records(1, by_target("failure", target)).await;
    assert!(!f.is_empty(), "no failure record; connection: {:?}", c);
    assert_eq!(f[0]["phase"], "tls");
    assert_eq!(f[0]["kind"]["kind"], "tls_alert");
    assert_eq!(f[0]["kind"]["level"], "fatal");
    assert_eq!(f[0]["kind"]["description"], "protocol_version");
    assert_eq!(f[0]["tls"]["sni"], "alert.azurecr.io");
}

#[tokio::test]
async fn resolver_answers_nxdomain_no_data_and_cname_chains() {
    let origin = server(|mut s: TcpStream| async move {
        let _ = s.write_all(b"ok").await;
    })
    .await;
    let port = origin.port();
    let zone = dns::Zone::new()
        .cname("chain.azurecr.io", "chain.privatelink.azurecr.io")
        .a("chain.privatelink.azurecr.io", [127, 0, 0, 1])
        .nodata("empty.azurecr.io")
        .silent("slow.azurecr.io");
    let dns = dns::TestDns::start("127.0.0.1:0".parse().unwrap(), zone);
    let mut cfg = config(&[port]);
    cfg.dns.nameservers = vec![dns.local_addr().to_string()];
    let proxy = Proxy::start(cfg).await;

    // The CNAME chain is followed and kept as evidence.
    let target = format!("chain.azurecr.io:{port}");
    let (mut s, status, _) = connect(proxy.addr, &target, "").await;
    assert_eq!(status, 200);
    let mut b = [0u8; 2];
    within("client read", s.read_exact(&mut b))
        .await
        .expect("client read");
    assert!(dns.was_asked("chain.azurecr.io"));

    let cases = [
        ("typo.azurecr.io", 502, "dns_nx_domain", "NXDOMAIN"),
        ("empty.azurecr.io", 502, "dns_no_addresses", "no address"),
        ("slow.azurecr.io", 504, "dns_timeout", "no DNS answer"),
    ];
    for (host, want, kind, words) in cases {
        let target = format!("{host}:{port}");
        let (_s, status, reason) = connect(proxy.addr, &target, "").await;
        assert_eq!(status, want, "{host}: {reason}");
        assert!(reason.contains(words), "{host}: {reason}");
        let f = wait_records(1, by_target("failure", target)).await;
        assert_eq!(f[0]["kind"]["kind"], kind);
        assert_eq!(f[0]["phase"], "dns");
        assert_eq!(f[0]["endpoint"], "registry_rest");
    }
}

#[tokio::test]
async fn connect_failure_record_keeps_the_dns_answer() {
    let dead = net::refused_addr();
    let port = dead.port();
    let zone = dns::Zone::new()
        .cname("pe.azurecr.io", "pe.privatelink.azurecr.io")
        .a("pe.privatelink.azurecr.io", [127, 0, 0, 1]);
    let dns = dns::TestDns::start("127.0.0.1:0".parse().unwrap(), zone);
    let mut cfg = config(&[port]);
    cfg.dns.nameservers = vec![dns.local_addr().to_string()];
    let proxy = Proxy::start(cfg).await;
    let target = format!("pe.azurecr.io:{port}");
    let (_s, status, _) = connect(proxy.addr, &target, "").await;
    assert_eq!(status, 502);
    let f = wait_records(1, by_target("failure", target)).await;
    assert_eq!(
        f[0]["dns"]["cnames"],
        serde_json::json!(["pe.privatelink.azurecr.io"])
    );
    assert_eq!(f[0]["dns"]["addresses"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(f[0]["dns"]["source"], "dns");
}

/// A plain-HTTP registry that echoes every credential it is sent, in `ECHO_SHAPES` by path
/// (`/v2/echo/<shape>`, `/oauth2/token?...` answers in the OAuth shape).
async fn echo_origin() -> std::net::SocketAddr {
    use http_body_util::BodyExt;
    server(|s: TcpStream| async move {
        let svc =
            hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                let auth = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let query = req.uri().query().unwrap_or("").to_string();
                let path = req.uri().path().to_string();
                let form = req
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let echoed = secrets::echoed_credentials(
                    auth.as_deref(),
                    &query,
                    &String::from_utf8_lossy(&form),
                );
                let shape = path.rsplit('/').next().unwrap_or("text");
                let shape = if path.starts_with("/oauth2/") {
                    "oauth"
                } else {
                    shape
                };
                let (status, ctype, body, challenge) = secrets::echo_reply(shape, &echoed);
                let mut r =
                    hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
                *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                r.headers_mut()
                    .insert("content-type", ctype.parse().unwrap());
                if let Some(c) = challenge.and_then(|c| c.parse().ok()) {
                    r.headers_mut().insert("www-authenticate", c);
                }
                Ok::<_, std::convert::Infallible>(r)
            });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
            .await;
    })
    .await
}

/// One forwarded request on its own connection, closed once the answer is read; returns the
/// client's local address (its records carry it) and the whole answer.
async fn forward_raw(proxy: std::net::SocketAddr, head: &str) -> (String, String) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    let me = s.local_addr().unwrap().to_string();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    (me, String::from_utf8_lossy(&out).to_string())
}

fn jwt_with_signature(signature: &str) -> String {
    use base64::Engine;
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{signature}",
        e.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
        e.encode(r#"{"exp":1700000000,"aud":"plainreg.azurecr.io"}"#)
    )
}

/// A registry that echoes the client's credentials back, in every body shape, through plain
/// forwarding: no credential reaches the log (records, their `http` facts, the client's words,
/// evidence) or `regdoc report`.
#[tokio::test]
async fn echoed_credentials_never_reach_the_log_when_forwarding() {
    use base64::Engine;
    let secrets = Secrets::new();
    let password = secrets.register("Fwd-Basic-Pw-1234");
    let basic_pair = secrets.register(format!("alice:{password}"));
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(&basic_pair)
    );
    let signature = secrets.register("SigNaTuRe-Fwd-0123456789abcdef");
    let jwt = secrets.register(jwt_with_signature(&signature));
    let opaque = secrets.register("opaque-Fwd-Token-9x7y");
    let query_pw = secrets.register("Query-Pw-4567");
    let query_rt = secrets.register("Query-Rt-8910");
    let form_pw = secrets.register("Form-Pw-1357!");
    let form_rt = secrets.register("Form-Rt-2468");

    let origin = echo_origin().await;
    let mut cfg = config(&[origin.port()]);
    cfg.dns.overrides.insert(
        "echoreg.azurecr.io".into(),
        vec!["127.0.0.1".parse().unwrap()],
    );
    cfg.log.requests = true;
    let proxy = Proxy::start(cfg).await;
    let base = format!("http://echoreg.azurecr.io:{}", origin.port());
    let mut clients = Vec::new();
    let mut answers = String::new();
    for auth in [
        basic.clone(),
        format!("Bearer {jwt}"),
        format!("Bearer {opaque}"),
    ] {
        for shape in secrets::ECHO_SHAPES {
            let head = format!(
                "GET {base}/v2/echo/{shape} HTTP/1.1\r\nHost: echoreg.azurecr.io\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
            );
            let (me, answer) = forward_raw(proxy.addr, &head).await;
            assert!(answer.starts_with("HTTP/1.1 40"), "{answer}");
            answers.push_str(&answer);
            clients.push(me);
        }
    }
    // Not a vacuous scan: the server did echo the credentials (regdoc replays its bodies).
    assert!(secrets.find_in(&answers).is_some(), "the origin echoes");
    // Token requests with the secrets in the query, and a password grant in a form body.
    let head = format!(
        "GET {base}/oauth2/token?service=echoreg.azurecr.io&password={query_pw}&refresh_token={query_rt} HTTP/1.1\r\nHost: echoreg.azurecr.io\r\nConnection: close\r\n\r\n"
    );
    clients.push(forward_raw(proxy.addr, &head).await.0);
    let form = format!(
        "grant_type=password&service=echoreg.azurecr.io&username=alice&password={}&refresh_token={form_rt}",
        secrets::percent_encode(&form_pw)
    );
    let head = format!(
        "POST {base}/oauth2/token HTTP/1.1\r\nHost: echoreg.azurecr.io\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    );
    clients.push(forward_raw(proxy.addr, &head).await.0);

    // Every connection has ended: wait for each one's record, then scan everything.
    let n = clients.len();
    let text = text_after(n, move |v| {
        v["event"] == "connection" && clients.iter().any(|c| v["client"] == c.as_str())
    })
    .await;
    let target = format!("echoreg.azurecr.io:{}", origin.port());
    let failures = records(by_target("failure", target.clone()));
    assert!(!failures.is_empty(), "the echoes were judged failures");
    assert!(
        records(|v| v["event"] == "request" && v["target"] == target.as_str()).len() >= n,
        "every exchange has its request record"
    );
    secrets.assert_absent("log", &text);
    secrets.assert_absent("report", &report_of_log());
    // Redaction leaves the registry's own words readable.
    assert!(
        text.contains("bad credentials"),
        "messages survive around the mask"
    );
}

/// Secrets in a client's request target: a forwarded `?password=`, userinfo in an absolute
/// URL of another scheme, and `CONNECT user:pw@host:port` never reach a record, a reply phrase
/// or `report`.
#[tokio::test]
async fn request_targets_lose_their_queries_and_userinfo() {
    let secrets = Secrets::new();
    let origin_pw = secrets.register("Origin-Pw-1122");
    let origin_rt = secrets.register("Origin-Rt-3344");
    let ftp_pw = secrets.register("Ftp-Pw-2468");
    let ftp_token = secrets.register("Ftp-Token-1357");
    let connect_pw = secrets.register("Connect-Pw-5566");
    let proxy = Proxy::start(config(&[])).await;
    let mut clients = Vec::new();
    let mut answers = String::new();
    for head in [
        format!("GET /v2/token?password={origin_pw}&refresh_token={origin_rt} HTTP/1.1\r\nHost: r.example\r\nConnection: close\r\n\r\n"),
        format!("GET ftp://u:{ftp_pw}@files.example/x?token={ftp_token} HTTP/1.1\r\nHost: files.example\r\nConnection: close\r\n\r\n"),
        format!("CONNECT user:{connect_pw}@reg.example:443 HTTP/1.1\r\nHost: reg.example:443\r\n\r\n"),
    ] {
        let (me, answer) = forward_raw(proxy.addr, &head).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        answers.push_str(&answer);
        clients.push(me);
    }
    // Three refusals; the first two are the same failure of the same client (a request target
    // that is not an absolute http:// URL), so the second is only counted for a
    // failure_summary. The records quote the targets.
    let failures = wait_records(2, {
        let clients = clients.clone();
        move |v| v["event"] == "failure" && clients.iter().any(|c| v["client"] == c.as_str())
    })
    .await;
    assert_eq!(failures.len(), 2, "{failures:#?}");
    // Connection records come last, when each connection has ended.
    let text = text_after(3, move |v| {
        v["event"] == "connection" && clients.iter().any(|c| v["client"] == c.as_str())
    })
    .await;
    secrets.assert_absent("replies", &answers);
    secrets.assert_absent("log", &text);
    secrets.assert_absent("report", &report_of_log());
    assert!(
        text.contains("[redacted]@"),
        "userinfo is marked as removed"
    );
}
