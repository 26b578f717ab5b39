//! What the metrics tests share: regdoc as a child process with its admin listener on, a
//! plain HTTP/1.1 GET, and finding the Prometheus programs (or skipping without them).
//!
//! Everything listens on loopback; the regdoc child resolves through the test's own DNS
//! server, so no query leaves the machine.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_regdoc");

/// A program on `PATH` (or in the sbin directories root's `PATH` may lack).
pub fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The programs `names`, or `None` with a message naming what is missing. Under `CI=true` a
/// missing program fails the test instead: CI installs Debian's `prometheus` (and `skopeo`).
pub fn programs(test: &str, names: &[&str]) -> Option<Vec<PathBuf>> {
    let found: Vec<Option<PathBuf>> = names.iter().map(|n| program(n)).collect();
    let missing: Vec<&str> = names
        .iter()
        .zip(&found)
        .filter(|(_, p)| p.is_none())
        .map(|(n, _)| *n)
        .collect();
    if missing.is_empty() {
        return Some(found.into_iter().flatten().collect());
    }
    let msg = format!(
        "{test} SKIPPED: missing programs: {} (`bash .ci/run` installs their Debian packages)",
        missing.join(", ")
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg}; CI=true requires it to run");
    }
    eprintln!("{msg}");
    None
}

/// A running `regdoc run`, killed when dropped.
pub struct Regdoc {
    child: Child,
    /// `127.0.0.1:port` of the proxy.
    pub proxy: String,
    /// `127.0.0.1:port` of the admin listener.
    pub admin: String,
    pub log: PathBuf,
}

impl Drop for Regdoc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Regdoc {
    /// Start regdoc in `dir` on the two (child) ports, resolving through `dns`, with `extra`
    /// TOML appended to its configuration; wait until `/healthz` answers (10 s at most).
    pub fn start(dir: &Path, ports: (u16, u16), dns: SocketAddr, extra: &str) -> Regdoc {
        let (proxy_port, admin_port) = ports;
        let log = dir.join("regdoc.log");
        let conf = dir.join("regdoc.toml");
        std::fs::write(
            &conf,
            format!(
                r#"listen = "127.0.0.1:{proxy_port}"
{extra}
[dns]
# The test's own DNS server: no query leaves the machine.
nameservers = ["{dns}"]
[log]
file = "{}"
[admin]
listen = "127.0.0.1:{admin_port}"
"#,
                log.display()
            ),
        )
        .expect("write regdoc.toml");
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn regdoc");
        let mut r = Regdoc {
            child,
            proxy: format!("127.0.0.1:{proxy_port}"),
            admin: format!("127.0.0.1:{admin_port}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok((200, _)) = get(&r.admin, "/healthz") {
                return r;
            }
            if let Ok(Some(status)) = r.child.try_wait() {
                panic!(
                    "regdoc exited ({status}) before serving /healthz; log:\n{}",
                    std::fs::read_to_string(&r.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "regdoc's /healthz did not answer"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The text of a `/metrics` scrape.
    pub fn scrape(&self) -> String {
        match get(&self.admin, "/metrics") {
            Ok((200, body)) => body,
            other => panic!("scrape of {}: {other:?}", self.admin),
        }
    }
}

/// `CONNECT target` through `proxy`: the status line of the answer.
pub fn connect(proxy: &str, target: &str) -> String {
    let mut s = TcpStream::connect(proxy).expect("connect to regdoc");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    write!(s, "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").expect("send CONNECT");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n") && head.len() < 4096 {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).trim_end().to_string()
}

/// `GET path` from `addr` over HTTP/1.1 (one request, `Connection: close`): status and body.
pub fn get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Ok((
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    ))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Percent-encode a query parameter value.
pub fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
