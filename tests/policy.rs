//! Who may use regdoc and where it may go, through a real proxy on loopback: destinations
//! refused by the default policy (instance metadata, loopback, regdoc itself) get a 403 naming
//! the rule and a failure record; a dual-stack listener admits IPv4 clients by their IPv4
//! address. Nothing here leaves the machine: refused destinations are never dialled.

mod common;

use common::proxy::*;
use regdoc::config::Config;
use regdoc::policy::destination::default_allowed;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The test configuration with the destination policy as shipped (no loopback exception).
fn shipped_policy() -> Config {
    let mut c = config(&[]);
    c.allowed_destinations = default_allowed();
    c
}

/// The one failure record of `target` refused by the destination policy.
async fn refusal_record(target: &str) -> Value {
    let f = wait_records(1, by_target("failure", target.to_string())).await;
    assert_eq!(f.len(), 1, "{target}: {f:#?}");
    let f = f[0].clone();
    assert_eq!(f["cause"], "proxy_policy", "{f:#}");
    assert_eq!(f["phase"], "policy", "{f:#}");
    assert_eq!(f["kind"]["kind"], "destination_not_allowed", "{f:#}");
    f
}

#[tokio::test]
async fn connect_to_metadata_loopback_and_aws_v6_metadata_is_403_with_the_rule() {
    let proxy = Proxy::start(shipped_policy()).await;
    for (target, rule) in [
        // Port 443: the forwarding test below owns 169.254.169.254:80 in the shared records.
        ("169.254.169.254:443", "169.254.0.0/16"),
        ("127.0.0.1:443", "127.0.0.0/8"),
        ("[fd00:ec2::254]:80", "fd00:ec2::254/128"),
        ("[::ffff:169.254.169.254]:443", "169.254.0.0/16"),
    ] {
        let (_s, status, reason) = connect(proxy.addr, target, "").await;
        assert_eq!(status, 403, "{target}: {reason}");
        assert!(
            reason.starts_with("regdoc proxy_policy: ") && reason.contains(rule),
            "{target}: {reason}"
        );
        let f = refusal_record(target).await;
        assert_eq!(f["kind"]["rule"], format!("denied_destinations {rule}"));
        assert!(f["evidence"].to_string().contains(rule), "{f:#}");
        assert_eq!(f["reply_status"], 403, "{f:#}");
    }
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_after_resolution() {
    let mut cfg = shipped_policy();
    cfg.dns
        .overrides
        .insert("sneaky.example".into(), vec!["127.0.0.1".parse().unwrap()]);
    let proxy = Proxy::start(cfg).await;
    let (_s, status, reason) = connect(proxy.addr, "sneaky.example:443", "").await;
    assert_eq!(status, 403, "{reason}");
    assert!(
        reason.contains("127.0.0.1:443") && reason.contains("sneaky.example resolved to it"),
        "{reason}"
    );
    let f = refusal_record("sneaky.example:443").await;
    assert_eq!(f["kind"]["addr"], "127.0.0.1:443");
}

#[tokio::test]
async fn forwarded_metadata_get_is_refused() {
    let proxy = Proxy::start(shipped_policy()).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(
        b"GET http://169.254.169.254/latest/meta-data/iam/security-credentials/ HTTP/1.1\r\n\
          Host: 169.254.169.254\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 403 regdoc proxy_policy: "),
        "{text}"
    );
    assert!(
        text.to_ascii_lowercase()
            .contains("x-regdoc-cause: proxy_policy"),
        "{text}"
    );
    refusal_record("169.254.169.254:80").await;
}

#[tokio::test]
async fn an_explicit_allowed_destination_reaches_a_loopback_server() {
    let origin = server(|mut s: TcpStream| async move {
        let _ = s.write_all(b"hi").await;
    })
    .await;
    let mut cfg = shipped_policy();
    cfg.allowed_ports.push(origin.port());
    // The exception is more specific than the denied 127.0.0.0/8.
    cfg.allowed_destinations.push("127.0.0.1".parse().unwrap());
    let proxy = Proxy::start(cfg).await;
    let (mut s, status, reason) = connect(proxy.addr, &origin.to_string(), "").await;
    assert_eq!(status, 200, "{reason}");
    let mut b = [0u8; 2];
    s.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"hi");
}

/// Start regdoc on `listener` with `cfg`; the returned sender stops it.
fn run_on(listener: TcpListener, cfg: Config) -> tokio::sync::oneshot::Sender<()> {
    init_capture();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = regdoc::run(listener, cfg, async {
            let _ = rx.await;
        })
        .await;
    });
    tx
}

#[tokio::test]
async fn a_connect_to_regdoc_itself_is_refused_even_when_loopback_is_allowed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let me = listener.local_addr().unwrap();
    // Everything allowed, the port too: only the loop rule can refuse.
    let mut cfg = config(&[me.port()]);
    cfg.allowed_destinations = vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()];
    let _stop = run_on(listener, cfg);
    let (_s, status, reason) = connect(me, &me.to_string(), "").await;
    assert_eq!(status, 403, "{reason}");
    assert!(reason.contains("own listen address"), "{reason}");
    refusal_record(&me.to_string()).await;
}

/// A dual-stack socket on [::]:0, or None (with the reason) where IPv6 is unavailable.
fn dual_stack_listener() -> Result<std::net::TcpListener, String> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV6, Type::STREAM, None).map_err(|e| e.to_string())?;
    s.set_only_v6(false).map_err(|e| e.to_string())?;
    let any: SocketAddr = "[::]:0".parse().unwrap();
    s.bind(&any.into()).map_err(|e| e.to_string())?;
    s.listen(128).map_err(|e| e.to_string())?;
    s.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(s.into())
}

#[tokio::test]
async fn a_dual_stack_listener_admits_an_ipv4_loopback_client_as_ipv4() {
    let std_listener = match dual_stack_listener() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("skipped: no IPv6 dual-stack socket on this machine: {e}");
            return;
        }
    };
    let port = std_listener.local_addr().unwrap().port();
    let listener = TcpListener::from_std(std_listener).unwrap();
    let origin = server(|mut s: TcpStream| async move {
        let _ = s.write_all(b"ok").await;
    })
    .await;
    let mut cfg = config(&[origin.port()]);
    // Clients: IPv4 loopback only, as written by an operator who thinks in IPv4.
    cfg.allowed_clients = vec!["127.0.0.0/8".parse().unwrap()];
    let _stop = run_on(listener, cfg);
    let proxy: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
    let (mut s, status, reason) = connect(proxy, &origin.to_string(), "").await;
    assert_eq!(status, 200, "{reason}");
    let mut b = [0u8; 2];
    s.read_exact(&mut b).await.unwrap();
    drop(s);
    let rec = wait_records(1, by_target("connection", origin.to_string())).await;
    assert_eq!(rec.len(), 1, "{rec:#?}");
    let client = rec[0]["client"].as_str().unwrap_or_default().to_string();
    assert!(client.starts_with("127.0.0.1:"), "{:#}", rec[0]);
}
