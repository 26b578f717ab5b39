//! `/metrics` as Prometheus's own tools read it: a scrape of a regdoc that served a few
//! connections passes `promtool check metrics`, and the shipped alerting rules pass
//! `promtool check rules` and their unit tests (`promtool test rules`).
//!
//! promtool comes with Debian's `prometheus` package (.ci/packages.sh). Without it these tests
//! skip with a message, and fail under `CI=true`.

mod common;

use common::{dns, net, prom};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// A loopback server that echoes one connection's first message, then closes.
fn echo_once() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind echo server");
    let port = l.local_addr().expect("echo address").port();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut buf = [0u8; 64];
            if let Ok(n) = s.read(&mut buf) {
                let _ = s.write_all(&buf[..n]);
            }
        }
    });
    port
}

/// A loopback HTTP server that answers one request with an empty 200.
fn http_once() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind HTTP server");
    let port = l.local_addr().expect("HTTP server address").port();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut head = Vec::new();
            let mut buf = [0u8; 512];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16384 {
                match s.read(&mut buf) {
                    Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    port
}

/// The value of the series `series` (name and labels exactly as exposed) in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn a_scrape_after_real_connections_passes_promtool_check_metrics() {
    let Some(tools) = prom::programs(
        "a_scrape_after_real_connections_passes_promtool_check_metrics",
        &["promtool"],
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Every name but the configured registry is NXDOMAIN.
    let zone = dns::Zone::new().a("myreg.example", [127, 0, 0, 1]);
    let dns = dns::TestDns::start("127.0.0.1:0".parse().unwrap(), zone);
    let echo = echo_once();
    let web = http_once();
    let regdoc = prom::Regdoc::start(
        dir.path(),
        (net::child_port(), net::child_port()),
        dns.local_addr(),
        &format!(
            r#"allowed_ports = [443, {echo}, {web}]
# The echo server is on loopback, which the default destination policy refuses.
allowed_destinations = ["127.0.0.0/8"]
[[registry]]
host = "myreg.example"
"#
        ),
    );

    // A tunnel that carries a few bytes, a forwarded request, a registry name that does not
    // resolve, and a port the policy refuses.
    let mut s = TcpStream::connect(&regdoc.proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "CONNECT myreg.example:{echo} HTTP/1.1\r\nHost: myreg.example:{echo}\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 256];
    let n = s.read(&mut head).unwrap();
    let head = String::from_utf8_lossy(&head[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    s.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");
    drop(s);
    // A plain http:// request forwarded: its wait for response headers is timed.
    let mut s = TcpStream::connect(&regdoc.proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET http://myreg.example:{web}/v2/ HTTP/1.1\r\nHost: myreg.example:{web}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(s);
    let line = prom::connect(&regdoc.proxy, "nosuchreg.azurecr.io:443");
    assert!(line.starts_with("HTTP/1.1 502"), "{line}");
    let line = prom::connect(&regdoc.proxy, "myreg.example:25");
    assert!(line.starts_with("HTTP/1.1 403"), "{line}");

    // Each connection is counted when its record is made, as it ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = regdoc.scrape();
        let ended: f64 = text
            .lines()
            .filter(|l| l.starts_with("regdoc_connections_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if ended >= 4.0 && value(&text, "regdoc_open_connections") == Some(0.0) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "4 ended connections not counted within 10 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("--- /metrics ---\n{text}");

    assert_eq!(
        value(
            &text,
            r#"regdoc_failures_total{cause="registry_name",endpoint="registry_rest",registry="other",phase="dns"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"regdoc_connections_total{mode="tunnel",endpoint="registry_rest",registry="myreg.example",outcome="ok"}"#
        ),
        Some(1.0),
        "{text}"
    );
    for direction in ["up", "down"] {
        let series = format!(
            r#"regdoc_bytes_total{{direction="{direction}",endpoint="registry_rest",registry="myreg.example"}}"#
        );
        assert!(value(&text, &series) >= Some(4.0), "{series}:\n{text}");
    }
    assert!(
        value(&text, r#"regdoc_phase_duration_seconds_count{phase="dns"}"#) >= Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"regdoc_phase_duration_seconds_count{phase="response_headers"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains(r#"regdoc_connections_total{mode="forward",endpoint="registry_rest",registry="myreg.example",outcome="ok"} 1"#),
        "{text}"
    );
    // Names nobody configured never become label values.
    assert!(!text.contains("nosuchreg"), "{text}");

    let mut check = Command::new(&tools[0])
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    check
        .stdin
        .take()
        .expect("promtool stdin")
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("--- promtool check metrics ---\n{said}");
    assert!(out.status.success(), "promtool check metrics: {said}");
    assert!(said.trim().is_empty(), "promtool found problems: {said}");
}

#[test]
fn shipped_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let Some(tools) = prom::programs(
        "shipped_alert_rules_pass_promtool_check_and_their_unit_tests",
        &["promtool"],
    ) else {
        return;
    };
    for args in [
        ["check", "rules", "config/prometheus-alerts.yml"],
        ["test", "rules", "tests/fixtures/prometheus-alerts.test.yml"],
    ] {
        let out = Command::new(&tools[0])
            .args(args)
            .current_dir(Path::new(REPO))
            .output()
            .expect("run promtool");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("--- promtool {} ---\n{said}", args.join(" "));
        assert!(out.status.success(), "promtool {}: {said}", args.join(" "));
        assert!(said.contains("SUCCESS"), "{said}");
    }
}

/// An admin listener other hosts could reach is refused like an open relay, with the file's
/// line, by `check-config` and `run` alike.
#[test]
fn a_public_admin_listener_is_refused_unless_meant() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("regdoc.toml");
    let text = "listen = \"127.0.0.1:3128\"\n\n[admin]\nlisten = \"0.0.0.0:9325\"\n";
    std::fs::write(&conf, text).unwrap();
    let path = conf.to_str().unwrap();
    for args in [vec!["check-config", path], vec!["run", "--config", path]] {
        let o = Command::new(prom::BIN)
            .args(&args)
            .env_remove("REGDOC_CONFIG")
            .env_remove("NOTIFY_SOCKET")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with(&format!("regdoc: {path}:4: "))
                && err.contains("admin.i_know_this_is_public = true"),
            "{args:?}: {err}"
        );
    }
    std::fs::write(&conf, format!("{text}i_know_this_is_public = true\n")).unwrap();
    let o = Command::new(prom::BIN)
        .args(["check-config", path])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A taken admin port stops `regdoc run` with the setting named, rather than leaving a proxy
/// nobody can scrape.
#[test]
fn a_taken_admin_port_stops_regdoc() {
    let dir = tempfile::tempdir().unwrap();
    // Held for the whole test: the port cannot be freed and taken by someone else.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = taken.local_addr().unwrap();
    let conf = dir.path().join("regdoc.toml");
    std::fs::write(
        &conf,
        format!(
            "listen = \"127.0.0.1:{}\"\n[log]\nfile = \"{}\"\n[admin]\nlisten = \"{admin}\"\n",
            net::child_port(),
            dir.path().join("regdoc.log").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(prom::BIN)
        .args(["run", "--config"])
        .arg(&conf)
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("regdoc kept running with its admin port taken");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success(), "{err}");
    assert!(
        err.contains(&format!("admin.listen = {admin}: cannot listen")),
        "{err}"
    );
    drop(taken);
}
