//! `systemctl reload regdoc` (SIGHUP) on the real binary: a new configuration applies to new
//! connections while an open tunnel keeps moving bytes; a broken file is refused with its line
//! and the running configuration stays; a setting fixed at start is named, not half-applied.

mod common;

use common::child::{signal, wait_for_line, Running};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_regdoc");

/// An echo server on a loopback port of its own (held, never freed), serving any number of
/// connections until the test ends.
fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(120)));
                let mut b = [0u8; 4096];
                while let Ok(n) = s.read(&mut b) {
                    if n == 0 || s.write_all(&b[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// CONNECT through regdoc: the status code, and the stream when it is 200.
fn connect(proxy: SocketAddr, target: SocketAddr) -> (u16, TcpStream) {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "proxy closed mid-head");
        head.push(b[0]);
        assert!(head.len() < 16_384, "endless head");
    }
    let text = String::from_utf8_lossy(&head);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    (status, s)
}

fn echoes(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, msg);
}

fn config(ports: &[u16], extra: &str) -> String {
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    format!(
        "allowed_ports = [{}]\nallowed_destinations = [\"127.0.0.1\"]\n{extra}",
        ports.join(", ")
    )
}

#[test]
fn sighup_reloads_for_new_connections_keeps_tunnels_and_refuses_a_broken_file() {
    let (a, b) = (echo_server(), echo_server());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("regdoc.toml");
    let log = dir.path().join("regdoc.log");
    std::fs::write(&file, config(&[a.port()], "")).unwrap();
    let child = Command::new(BIN)
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(&file)
        .arg("--log-file")
        .arg(&log)
        .env_remove("REGDOC_CONFIG")
        .env_remove("REGDOC_LOG")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(child);
    let line = wait_for_line(&log, "regdoc listening");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let proxy: SocketAddr = v["listen"].as_str().unwrap().parse().unwrap();

    // Before: a tunnel to A is open and moving bytes; B's port is not allowed.
    let (status, mut open) = connect(proxy, a);
    assert_eq!(status, 200);
    echoes(&mut open, b"before the reload");
    assert_eq!(
        connect(proxy, b).0,
        403,
        "port {} is not allowed yet",
        b.port()
    );

    // Reload with B's port allowed: new connections get it, the open tunnel goes on.
    std::fs::write(&file, config(&[a.port(), b.port()], "")).unwrap();
    signal(&running.0, libc::SIGHUP);
    let reloaded = wait_for_line(&log, "configuration reloaded");
    assert!(!reloaded.contains("restart"), "{reloaded}");
    echoes(&mut open, b"after the reload, same tunnel");
    let (status, mut to_b) = connect(proxy, b);
    assert_eq!(status, 200, "the reloaded allowed_ports applies");
    echoes(&mut to_b, b"to B");

    // A broken file: refused with its line, and the running configuration stays.
    std::fs::write(&file, "allowed_ports = [443\nmax_connections = 10\n").unwrap();
    signal(&running.0, libc::SIGHUP);
    let refused = wait_for_line(&log, "configuration reload refused");
    let where_ = format!("{}:", file.display());
    assert!(refused.contains(&where_), "no file:line in {refused}");
    assert!(
        refused.contains("the running configuration stays"),
        "{refused}"
    );
    echoes(&mut open, b"after the refused reload");
    assert_eq!(connect(proxy, b).0, 200, "B stays allowed");

    // A setting fixed at start is named as needing a restart; the rest applies.
    std::fs::write(&file, config(&[a.port()], "max_connections = 100\n")).unwrap();
    signal(&running.0, libc::SIGHUP);
    let partly = wait_for_line(&log, "not applied until a restart");
    assert!(partly.contains("max_connections"), "{partly}");
    assert_eq!(connect(proxy, b).0, 403, "B's port is gone again");
    echoes(&mut open, b"still the same tunnel");
}
