//! What one client can cost regdoc and its log, through a real proxy on loopback (issue 12):
//! * slots: a client beyond `max_connections_per_client` is refused with a 429 naming the
//!   limit; a kept-alive connection is let go after `timeouts.keep_alive`, and shed for a new
//!   client when every slot of `max_connections` is taken;
//! * the log: a storm of bad connections is one record and a count per client; intercepted
//!   failures are counted by the same aggregator as the rest; beyond
//!   `log.max_records_per_second` records are counted in `log` lines instead of written.
//!
//! Clients are told apart by their loopback source address (all of 127.0.0.0/8 is loopback on
//! Linux): each test uses addresses of its own, so the records it reads are its own although
//! every test of this binary writes into one capture.

mod common;

use common::acr;
use common::proxy::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

/// A connection to `proxy` from the loopback address `from`.
async fn connect_from(from: &str, proxy: SocketAddr) -> TcpStream {
    let ip: IpAddr = from.parse().expect("address");
    let sock = TcpSocket::new_v4().expect("socket");
    sock.bind(SocketAddr::new(ip, 0))
        .expect("bind client address");
    tokio::time::timeout(Duration::from_secs(10), sock.connect(proxy))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Whether a record's `client` (`ip:port`, or a summary's bare `ip`) is `ip`.
fn from_client(v: &Value, ip: &str) -> bool {
    let c = v["client"].as_str().unwrap_or("");
    c == ip || c.strip_prefix(ip).is_some_and(|r| r.starts_with(':'))
}

/// Stop the proxy and wait (bounded) until it has written its last summaries.
async fn stop(proxy: &mut Proxy) {
    let task = proxy.shutdown();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("regdoc stops in time")
        .expect("regdoc task");
}

/// Send one malformed request head from `from` and read regdoc's answer.
async fn malformed_from(from: &str, proxy: SocketAddr) -> u16 {
    let mut s = connect_from(from, proxy).await;
    s.write_all(b"CONNECT \x01\x02 nonsense\r\n\r\n")
        .await
        .expect("write");
    read_status(&mut s).await.0
}

/// Item 9: a storm of malformed connections from one client is one `failure` record, one
/// `connection` record and a `failure_summary` with the count and the client, and does not
/// hide another client's first failure of the same cause.
#[tokio::test]
async fn a_storm_of_malformed_connections_is_one_record_and_a_count_per_client() {
    const N: u64 = 25;
    let (storm, other) = ("127.0.0.3", "127.0.0.4");
    let mut cfg = config(&[]);
    cfg.log.aggregate_interval = Duration::from_secs(3600);
    let mut proxy = Proxy::start(cfg).await;
    for _ in 0..N {
        // Every client is still answered in full.
        assert_eq!(malformed_from(storm, proxy.addr).await, 400);
    }
    assert_eq!(malformed_from(other, proxy.addr).await, 400);
    stop(&mut proxy).await;

    let failures = records(|v| v["event"] == "failure" && from_client(v, storm));
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert_eq!(failures[0]["cause"], "bad_client_request");
    let summaries = records(|v| v["event"] == "failure_summary" && from_client(v, storm));
    assert_eq!(summaries.len(), 1, "{summaries:#?}");
    let s = &summaries[0];
    assert_eq!(s["count"], N - 1, "{s:#}");
    assert_eq!(s["client"], storm, "{s:#}");
    assert_eq!(s["cause"], "bad_client_request", "{s:#}");
    assert_eq!(s["phase"], "request", "{s:#}");
    // The repeats' connection records are folded into the count too.
    let conns = records(|v| v["event"] == "connection" && from_client(v, storm));
    assert_eq!(conns.len(), 1, "{conns:#?}");
    assert_eq!(conns[0]["close_reason"], "bad_request");

    // The other client's failure has the same cause, phase and target: it is its own.
    let theirs = records(|v| v["event"] == "failure" && from_client(v, other));
    assert_eq!(theirs.len(), 1, "{theirs:#?}");
    assert!(records(|v| v["event"] == "failure_summary" && from_client(v, other)).is_empty());
}

const INTERCEPTED: &str = "aggregated.azurecr.io";

/// A TLS client for `INTERCEPTED` through regdoc's CONNECT, trusting only `ca`.
async fn intercepted_client(
    proxy: SocketAddr,
    ca: rustls::pki_types::CertificateDer<'static>,
) -> hyper::client::conn::http1::SendRequest<Empty<bytes::Bytes>> {
    let (s, status, reason) = connect(proxy, &format!("{INTERCEPTED}:443"), "").await;
    assert_eq!(status, 200, "{reason}");
    let cfg = common::tls::client_config(vec![b"http/1.1".to_vec()], &ca);
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(INTERCEPTED.try_into().unwrap(), s)
        .await
        .expect("the client trusts regdoc's leaf");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// Item 9: a failure judged inside interception goes through the proxy's aggregator: a wrong
/// password sent three times is one `failure` record and a summary counting two.
#[tokio::test]
async fn intercepted_failures_are_aggregated_with_the_rest() {
    let fx = acr::AcrFixture::start(INTERCEPTED).await;
    fx.add_user("alice", "alice-Aggr3gate-pw!", &[("*", &["pull"])]);
    let dir = tempfile::tempdir().unwrap();
    let ca = regdoc::intercept::ca::generate(dir.path(), false).unwrap();
    let mut cfg = config(&[]);
    cfg.dns
        .connect_to
        .push(format!("{INTERCEPTED}:443={}", fx.addr));
    cfg.intercept.ca_cert = Some(ca.cert.clone());
    cfg.intercept.ca_key = Some(ca.key.clone());
    cfg.intercept.extra_roots = vec![fx.ca_file.clone()];
    cfg.log.aggregate_interval = Duration::from_secs(3600);
    let mut proxy = Proxy::start(cfg).await;
    let regdoc_ca = regdoc::intercept::Ca::load(&ca.cert, &ca.key)
        .unwrap()
        .cert_der()
        .clone();

    let bad = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "alice:wrong-Aggr3gate-pw"
        )
    );
    let path = format!(
        "/oauth2/token?account=alice&client_id=docker&offline_token=true&service={INTERCEPTED}"
    );
    let mut c = intercepted_client(proxy.addr, regdoc_ca).await;
    for _ in 0..3 {
        let req = hyper::Request::get(&path)
            .header("host", INTERCEPTED)
            .header("authorization", &bad)
            .body(Empty::new())
            .unwrap();
        let r = tokio::time::timeout(Duration::from_secs(20), c.send_request(req))
            .await
            .expect("an answer in time")
            .unwrap();
        assert_eq!(r.status(), 401);
        // Every answer still names the cause.
        let cause = r
            .headers()
            .get("x-regdoc-cause")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(cause.starts_with("invalid_credentials"), "{cause}");
        r.into_body().collect().await.unwrap();
    }
    drop(c);
    let target = format!("{INTERCEPTED}:443");
    // The connection record is written when the tunnel ends: then nothing more is in flight.
    let conns = wait_records(1, by_target("connection", target.clone())).await;
    assert_eq!(conns.len(), 1, "{conns:#?}");
    stop(&mut proxy).await;

    let f = records(by_target("failure", target.clone()));
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["cause"], "invalid_credentials");
    let s = records(by_target("failure_summary", target));
    assert_eq!(s.len(), 1, "{s:#?}");
    assert_eq!(s[0]["count"], 2, "{:#}", s[0]);
    assert_eq!(s[0]["client"], "127.0.0.1", "{:#}", s[0]);
    assert_eq!(s[0]["cause"], "invalid_credentials", "{:#}", s[0]);
}

/// The sum of `field=<n>` over the `log` lines of the records budget of `limit`.
fn budget_line_sum(limit: u64, field: &str) -> (usize, u64) {
    let text = all_text();
    let needle = format!("log.max_records_per_second ({limit}) reached");
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(&needle)).collect();
    let sum = lines
        .iter()
        .map(|l| {
            let at = l
                .find(&format!("{field}="))
                .unwrap_or_else(|| panic!("no {field} in {l}"));
            l[at + field.len() + 1..]
                .split(' ')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{field} is no number in {l}"))
        })
        .sum();
    (lines.len(), sum)
}

/// Item 9: beyond `log.max_records_per_second`, failure records and the connection records of
/// failed connections are counted instead of written, and `log` lines say how many: what was
/// written and what was counted add up to every failure.
#[tokio::test]
async fn a_records_budget_bounds_a_flood_and_log_lines_count_what_it_left_out() {
    const N: u64 = 200;
    const LIMIT: u64 = 10;
    let flood = "127.0.0.5";
    let mut cfg = config(&[]);
    // Every failure its own record: only the budget can hold them back.
    cfg.log.aggregate_interval = Duration::ZERO;
    cfg.log.max_records_per_second = LIMIT as usize;
    let mut proxy = Proxy::start(cfg).await;
    let addr = proxy.addr;
    let clients: Vec<_> = (0..N)
        .map(|_| tokio::spawn(async move { malformed_from(flood, addr).await }))
        .collect();
    for c in clients {
        // Every client is still answered.
        assert_eq!(c.await.unwrap(), 400);
    }
    stop(&mut proxy).await;

    let written = records(|v| v["event"] == "failure" && from_client(v, flood)).len() as u64;
    let conns = records(|v| v["event"] == "connection" && from_client(v, flood)).len() as u64;
    // Writing all of them would take N / LIMIT seconds of one-second windows.
    assert!(written < N, "{written} failure records for {N} failures");
    let (lines, failures) = budget_line_sum(LIMIT, "suppressed_failures");
    assert!(lines >= 1, "no log line about the budget");
    assert_eq!(
        written + failures,
        N,
        "written {written}, counted {failures}"
    );
    // A refusal counted by the budget folds its connection record too; the others' records
    // are held to the same budget.
    let (_, connections) = budget_line_sum(LIMIT, "suppressed_connections");
    assert_eq!(conns + connections, written, "{conns} + {connections}");
}

/// `CONNECT target` from the loopback address `from`; the stream, status and reason.
async fn connect_tunnel_from(
    from: &str,
    proxy: SocketAddr,
    target: &str,
) -> (TcpStream, u16, String) {
    let mut s = connect_from(from, proxy).await;
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let (status, reason) = read_status(&mut s).await;
    (s, status, reason)
}

/// An origin that keeps every connection open until its client closes it.
async fn holding_origin() -> SocketAddr {
    server(|mut s: TcpStream| async move {
        let mut b = [0u8; 1024];
        while let Ok(n) = tokio::io::AsyncReadExt::read(&mut s, &mut b).await {
            if n == 0 {
                break;
            }
        }
    })
    .await
}

/// Item 8: with `max_connections_per_client = 2`, a client's third connection is refused at
/// once with a 429 naming the limit and a failure record, while another client is admitted;
/// a connection the client closes gives its slot back.
#[tokio::test]
async fn a_client_beyond_its_share_of_connections_is_refused_and_others_are_not() {
    let (greedy, other) = ("127.0.0.6", "127.0.0.7");
    let origin = holding_origin().await;
    let target = format!("127.0.0.1:{}", origin.port());
    let mut cfg = config(&[origin.port()]);
    cfg.max_connections_per_client = 2;
    let proxy = Proxy::start(cfg).await;

    let (first, status, reason) = connect_tunnel_from(greedy, proxy.addr, &target).await;
    assert_eq!(status, 200, "{reason}");
    let (_second, status, reason) = connect_tunnel_from(greedy, proxy.addr, &target).await;
    assert_eq!(status, 200, "{reason}");

    // The third is answered before it sends anything: nothing of it is read.
    let mut third = connect_from(greedy, proxy.addr).await;
    let (status, reason) = read_status(&mut third).await;
    assert_eq!(status, 429, "{reason}");
    assert!(
        reason.starts_with("regdoc proxy_policy: ")
            && reason.contains("max_connections_per_client = 2"),
        "{reason}"
    );
    let f = records(|v| v["event"] == "failure" && from_client(v, greedy));
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(
        f[0]["kind"]["kind"], "client_connection_limit",
        "{:#}",
        f[0]
    );
    assert_eq!(f[0]["kind"]["limit"], 2, "{:#}", f[0]);
    assert_eq!(f[0]["phase"], "policy", "{:#}", f[0]);
    assert_eq!(f[0]["reply_status"], 429, "{:#}", f[0]);
    assert_eq!(f[0]["reply_reason"], reason.as_str(), "{:#}", f[0]);

    // Another client is not held to the first one's share.
    let (_theirs, status, reason) = connect_tunnel_from(other, proxy.addr, &target).await;
    assert_eq!(status, 200, "{reason}");

    // A closed connection gives its slot back (once its task has ended: bounded polling).
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_again, status, reason) = connect_tunnel_from(greedy, proxy.addr, &target).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 429, "{reason}");
        assert!(
            std::time::Instant::now() < deadline,
            "the closed connection's slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An HTTP origin answering every request `200 ok`, keeping its connections alive.
async fn ok_origin() -> SocketAddr {
    server(|s: TcpStream| async move {
        let svc = hyper::service::service_fn(|_req: hyper::Request<hyper::body::Incoming>| async {
            Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                bytes::Bytes::from_static(b"ok"),
            )))
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(s), svc)
            .await;
    })
    .await
}

/// A kept-alive client of the proxy from `from`, with its connection's task: the task ends
/// when regdoc closes the connection.
async fn keep_alive_client(
    from: &str,
    proxy: SocketAddr,
) -> (
    hyper::client::conn::http1::SendRequest<Empty<bytes::Bytes>>,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
) {
    let s = connect_from(from, proxy).await;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .expect("handshake");
    (sender, tokio::spawn(conn))
}

/// One forwarded `GET` on `sender`, read to its end; the status.
async fn get(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<bytes::Bytes>>,
    origin: SocketAddr,
) -> u16 {
    let req = hyper::Request::get(format!("http://{origin}/v2/"))
        .body(Empty::new())
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .expect("an answer in time")
        .expect("an answer");
    let status = r.status().as_u16();
    r.into_body().collect().await.expect("body");
    status
}

/// Item 8: a kept-alive forwarded connection that sends no next request is closed after
/// `timeouts.keep_alive`, however long a tunnel's `idle` is.
#[tokio::test]
async fn a_kept_alive_connection_without_a_next_request_is_closed_after_keep_alive() {
    let origin = ok_origin().await;
    let mut cfg = config(&[origin.port()]);
    cfg.timeouts.idle = Duration::from_secs(3600);
    cfg.timeouts.keep_alive = Duration::from_millis(300);
    let proxy = Proxy::start(cfg).await;
    let (mut sender, conn) = keep_alive_client("127.0.0.8", proxy.addr).await;
    assert_eq!(get(&mut sender, origin).await, 200);
    assert_eq!(
        get(&mut sender, origin).await,
        200,
        "kept alive between requests"
    );
    // Then the client sends nothing more, and keeps its side open.
    tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("regdoc closes the quiet connection")
        .expect("client task")
        .expect("a clean close");
    drop(sender);
    let target = format!("127.0.0.1:{}", origin.port());
    let c = wait_records(1, by_target("connection", target)).await;
    assert_eq!(c.len(), 1, "{c:#?}");
    assert_eq!(c[0]["close_reason"], "keep_alive_timeout", "{:#}", c[0]);
    assert_eq!(c[0]["requests"], 2, "{:#}", c[0]);
}

/// Item 8: when every slot of `max_connections` is held, a kept-alive connection waiting for
/// its next request is closed for a new client, which is served at once instead of waiting
/// out `timeouts.keep_alive`.
#[tokio::test]
async fn an_idle_kept_alive_connection_is_shed_for_a_new_client_when_slots_run_out() {
    let origin = ok_origin().await;
    let mut cfg = config(&[origin.port()]);
    cfg.max_connections = 2;
    // Nothing else frees a slot within the test's bounds.
    cfg.timeouts.idle = Duration::from_secs(3600);
    cfg.timeouts.keep_alive = Duration::from_secs(3600);
    let proxy = Proxy::start(cfg).await;
    let (mut a, a_conn) = keep_alive_client("127.0.0.9", proxy.addr).await;
    assert_eq!(get(&mut a, origin).await, 200);
    let (mut b, b_conn) = keep_alive_client("127.0.0.9", proxy.addr).await;
    assert_eq!(get(&mut b, origin).await, 200);

    // Both slots are held by connections between requests; a new client gets one of them.
    let (mut c, _c_conn) = keep_alive_client("127.0.0.10", proxy.addr).await;
    assert_eq!(get(&mut c, origin).await, 200);

    // One of the two idle connections was closed for it (bounded polling), the other left
    // alone.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !a_conn.is_finished() && !b_conn.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "no idle connection was closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (closed, other) = if a_conn.is_finished() {
        (a_conn, b_conn)
    } else {
        (b_conn, a_conn)
    };
    closed.await.expect("client task").expect("a clean close");
    assert!(
        !other.is_finished(),
        "only one connection is shed for one client"
    );
    let target = format!("127.0.0.1:{}", origin.port());
    let shed = wait_records(1, |v| {
        by_target("connection", target.clone())(v) && v["close_reason"] == "shed"
    })
    .await;
    assert_eq!(shed.len(), 1, "{shed:#?}");
    assert_eq!(shed[0]["requests"], 1, "{:#}", shed[0]);
    assert!(from_client(&shed[0], "127.0.0.9"), "{:#}", shed[0]);
    drop((a, b, c));
}
