//! `regdoc report` and `regdoc explain` on the log the real binary writes: run `regdoc run`,
//! provoke failures, stop it, then summarise its log from a file and from standard input (as
//! `journalctl -o cat -u regdoc | regdoc report` does).

mod common;

use common::{dns, net};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_regdoc");

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Send `CONNECT target` and return the status line.
fn connect(proxy: &str, target: &str) -> String {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line.trim_end().to_string()
}

#[test]
fn report_and_explain_on_a_real_log() {
    let dir = tempfile::tempdir().unwrap();
    // A loopback DNS server that knows no names: every lookup is NXDOMAIN.
    let dns = dns::TestDns::start("127.0.0.1:0".parse().unwrap(), dns::Zone::new());
    let log = dir.path().join("regdoc.log");
    // regdoc (a child) must bind its port itself: one from outside the ephemeral range. The
    // dead port is held, never listening, for the whole test; the two cannot coincide.
    let listen_port = net::child_port();
    let dead = net::refused_addr();
    let dead_port = dead.port();
    let conf = dir.path().join("regdoc.toml");
    std::fs::write(
        &conf,
        format!(
            r#"listen = "127.0.0.1:{listen_port}"
allowed_ports = [443, {dead_port}]
# The dead port is on loopback, which the default destination policy refuses.
allowed_destinations = ["127.0.0.0/8"]
[dns]
# The test's own DNS server: no query leaves the machine.
nameservers = ["{dns_addr}"]
overrides = {{ "down.azurecr.io" = ["127.0.0.1"] }}
[timeouts]
dns = "300ms"
[log]
file = "{}"
aggregate_interval = "1h"
"#,
            log.display(),
            dns_addr = dns.local_addr(),
        ),
    )
    .unwrap();
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let proxy = format!("127.0.0.1:{listen_port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&proxy).is_err() {
        assert!(Instant::now() < deadline, "regdoc did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Three refused connects to a registry that is down (one record, then counted), and one
    // DNS failure for a name that does not exist.
    for _ in 0..3 {
        let line = connect(&proxy, &format!("down.azurecr.io:{dead_port}"));
        assert!(
            line.starts_with("HTTP/1.1 502 regdoc client_firewall"),
            "{line}"
        );
    }
    let line = connect(&proxy, "nosuchreg.azurecr.io:443");
    assert!(line.starts_with("HTTP/1.1 50"), "{line}");
    // SIGTERM: drain, write the pending summaries, exit 0.
    unsafe {
        libc::kill(running.0.id() as i32, libc::SIGTERM);
    }
    let status = running.0.wait().unwrap();
    assert!(status.success(), "{status:?}");

    // From the file.
    let out = Command::new(BIN).arg("report").arg(&log).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("3 x client_firewall"), "{text}");
    assert!(text.contains("registry_name"), "{text}");
    assert!(text.contains("down.azurecr.io"), "{text}");

    // From standard input, as JSON, with a garbage line in the middle.
    let mut input = Vec::new();
    std::fs::File::open(&log)
        .unwrap()
        .read_to_end(&mut input)
        .unwrap();
    input.extend_from_slice(b"this is not json\n");
    let mut child = Command::new(BIN)
        .args(["report", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["bad_lines"], 1);
    let causes = v["causes"].as_array().unwrap();
    let fw = causes
        .iter()
        .find(|c| c["cause"] == "client_firewall")
        .unwrap();
    assert_eq!(
        fw["count"], 3,
        "one record plus a summary of two repeats: {fw:#}"
    );
    assert!(
        causes.iter().any(|c| c["cause"] == "registry_name"),
        "{v:#}"
    );

    // Every cause id the log names has an explain page.
    for c in causes {
        let id = c["cause"].as_str().unwrap();
        let out = Command::new(BIN).args(["explain", id]).output().unwrap();
        assert!(out.status.success(), "explain {id}");
        let page = String::from_utf8_lossy(&out.stdout);
        assert!(
            page.contains("https://"),
            "explain {id} has a doc link: {page}"
        );
    }
    let out = Command::new(BIN)
        .args(["explain", "no_such_cause"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
