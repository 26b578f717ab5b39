//! The `regdoc` binary as an operator meets it: flags, exit codes, start-up line, signals, the
//! shipped configuration and systemd unit.

mod common;

use common::child::{signal, wait_exit, wait_for_line, Running};
use regdoc::config::Config;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_regdoc");

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Run the binary to completion with a clean environment for the variables it reads.
fn regdoc(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("REGDOC_CONFIG")
        .env_remove("REGDOC_LOG")
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn version_and_help() {
    let o = regdoc(&["--version"]);
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("regdoc {}", env!("CARGO_PKG_VERSION"))
    );
    let o = regdoc(&["--help"]);
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(
        help.contains("run") && help.contains("check-config"),
        "{help}"
    );
    let o = regdoc(&["run", "--help"]);
    let help = String::from_utf8_lossy(&o.stdout);
    for flag in [
        "--config",
        "--listen",
        "--connect-to",
        "--log-file",
        "--log-format",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn invalid_config_is_refused_with_file_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:0\"\n\n[timeouts]\nconnect = \"ten\"\n",
    )
    .unwrap();
    let o = regdoc(&["run", "--config", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!("regdoc: {}:4: ", path.display())),
        "{err}"
    );

    // The same through REGDOC_CONFIG.
    let o = Command::new(BIN)
        .arg("run")
        .env("REGDOC_CONFIG", &path)
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains(":4: "), "{}", stderr(&o));

    let o = regdoc(&["check-config", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains(":4: "));

    let o = regdoc(&["run", "--connect-to", "reg.example:443"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--connect-to"), "{}", stderr(&o));

    let o = regdoc(&["run", "--config", "/nonexistent/regdoc.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/regdoc.toml"));
}

#[test]
fn check_config_accepts_the_shipped_file() {
    let o = regdoc(&[
        "check-config",
        repo_file("config/regdoc.toml").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("listen            127.0.0.1:3128"), "{out}");
    assert!(out.trim_end().ends_with(": ok"), "{out}");
}

#[test]
fn shipped_config_equals_the_defaults() {
    let path = repo_file("config/regdoc.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let c = Config::parse(&text, &path).unwrap();
    let d = Config::default();
    assert_eq!(c.listen, d.listen);
    assert_eq!(c.allowed_clients, d.allowed_clients);
    assert_eq!(c.allowed_ports, d.allowed_ports);
    assert_eq!(c.denied_destinations, d.denied_destinations);
    assert_eq!(c.allowed_destinations, d.allowed_destinations);
    assert_eq!(
        c.i_know_this_is_an_open_proxy,
        d.i_know_this_is_an_open_proxy
    );
    assert_eq!(c.max_connections, d.max_connections);
    assert_eq!(c.max_connections_per_client, d.max_connections_per_client);
    assert_eq!(c.max_head_bytes, d.max_head_bytes);
    assert_eq!(c.buffer_bytes, d.buffer_bytes);
    // Debug covers every field, including ones added later.
    assert_eq!(format!("{:?}", c.timeouts), format!("{:?}", d.timeouts));
    assert_eq!(format!("{:?}", c.dns), format!("{:?}", d.dns));
    assert_eq!(format!("{:?}", c.upstream), format!("{:?}", d.upstream));
    assert!(c.auth.is_none());
    assert_eq!(format!("{:?}", c.log), format!("{:?}", d.log));
    assert_eq!(format!("{:?}", c.intercept), format!("{:?}", d.intercept));
    assert_eq!(format!("{:?}", c.diagnosis), format!("{:?}", d.diagnosis));
    assert!(c.registries.is_empty());
}

/// Every `# key = value` and `# [section]` line in the shipped file is a valid example.
#[test]
fn shipped_config_examples_are_valid_when_uncommented() {
    let path = repo_file("config/regdoc.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut uncommented = 0;
    let all: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if is_setting(rest) => {
                uncommented += 1;
                rest.to_string()
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let c =
        Config::parse(&all, Path::new("uncommented.toml")).unwrap_or_else(|e| panic!("{e}\n{all}"));
    assert!(uncommented >= 10, "{uncommented}");
    assert!(c.upstream.proxy.is_some());
    assert!(c.auth.is_some());
    assert!(c.log.file.is_some());
    assert!(c.intercept.ca_cert.is_some() && c.intercept.ca_key.is_some());
    assert!(c.intercept.cert_cache.is_some());
    assert_eq!(c.dns.overrides.len(), 2);
    assert_eq!(c.registries.len(), 1);
    assert!(c.registries[0].private_endpoint);
}

fn is_setting(rest: &str) -> bool {
    if rest.starts_with('[') {
        return rest.ends_with(']');
    }
    let Some((key, _)) = rest.split_once(" = ") else {
        return false;
    };
    let bare = !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    let quoted = key.len() > 2 && key.starts_with('"') && key.ends_with('"');
    bare || quoted
}

#[test]
fn run_announces_itself_reopens_on_sighup_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("regdoc.log");
    let child = Command::new(BIN)
        .args(["run", "--listen", "127.0.0.1:0", "--log-file"])
        .arg(&log)
        .args(["--connect-to", "myreg.azurecr.io:443=127.0.0.1:9"])
        .env_remove("REGDOC_CONFIG")
        .env_remove("REGDOC_LOG")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);

    let line = wait_for_line(&log, "regdoc listening");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["event"], "log");
    assert_eq!(v["level"], "info");
    assert_eq!(v["config"], "embedded defaults");
    assert_eq!(v["connect_to_rules"], 1);
    let listen: std::net::SocketAddr = v["listen"].as_str().unwrap().parse().unwrap();
    assert!(listen.ip().is_loopback() && listen.port() != 0, "{line}");
    assert!(v["visibility"].as_str().unwrap().contains("passthrough"));

    // logrotate: rename, SIGHUP, the next lines go to a new file at the configured path.
    let rotated = dir.path().join("regdoc.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    signal(&running.0, libc::SIGHUP);
    wait_for_line(&log, "log file reopened");

    signal(&running.0, libc::SIGTERM);
    let status = wait_exit(&mut running.0);
    assert_eq!(status.code(), Some(0));
    let last = wait_for_line(&log, "regdoc stopped");
    assert!(serde_json::from_str::<serde_json::Value>(&last).is_ok());
    assert!(!std::fs::read_to_string(&rotated)
        .unwrap()
        .contains("regdoc stopped"));
}

/// The process as systemd stops it: a tunnel still open when the grace runs out is closed, and
/// its `connection` record (`close_reason = "shutdown"`, its bytes) reaches the log file before
/// the process exits.
#[test]
fn sigterm_after_the_grace_logs_the_record_of_a_tunnel_it_closed() {
    use std::io::{Read, Write};
    // A loopback echo server.
    let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = echo.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in echo.incoming() {
            let Ok(mut s) = s else { break };
            std::thread::spawn(move || {
                let mut b = [0u8; 5];
                while s.read_exact(&mut b).is_ok() && s.write_all(&b).is_ok() {}
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("regdoc.log");
    let cfg = dir.path().join("regdoc.toml");
    std::fs::write(
        &cfg,
        format!(
            "allowed_destinations = [\"127.0.0.0/8\"]\nallowed_ports = [{port}]\n\
             [timeouts]\nshutdown_grace = \"300ms\"\n"
        ),
    )
    .unwrap();
    let child = Command::new(BIN)
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .arg("--log-file")
        .arg(&log)
        .env_remove("REGDOC_CONFIG")
        .env_remove("REGDOC_LOG")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let line = wait_for_line(&log, "regdoc listening");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let listen: std::net::SocketAddr = v["listen"].as_str().unwrap().parse().unwrap();

    let mut tunnel = std::net::TcpStream::connect(listen).unwrap();
    tunnel
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let target = format!("127.0.0.1:{port}");
    write!(
        tunnel,
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tunnel.read_exact(&mut b).expect("the CONNECT answer");
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200 "), "{head:?}");
    tunnel.write_all(b"hello").unwrap();
    let mut echoed = [0u8; 5];
    tunnel.read_exact(&mut echoed).expect("the echo");
    assert_eq!(&echoed, b"hello");

    signal(&running.0, libc::SIGTERM);
    let status = wait_exit(&mut running.0);
    assert_eq!(status.code(), Some(0));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let at = |pred: &dyn Fn(&serde_json::Value) -> bool| lines.iter().position(pred);
    let rec = at(&|v| v["event"] == "connection" && v["target"] == target.as_str())
        .unwrap_or_else(|| panic!("no connection record: {lines:#?}"));
    let stopped = at(&|v| v["message"] == "regdoc stopped").expect("the last line");
    assert!(rec < stopped, "written before regdoc stopped");
    let rec = &lines[rec];
    assert_eq!(rec["close_reason"], "shutdown", "{rec:#}");
    assert_eq!(
        (&rec["bytes_up"], &rec["bytes_down"]),
        (&5.into(), &5.into())
    );
}

#[test]
fn a_taken_port_is_a_clear_error_with_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = regdoc(&["run", "--listen", &addr]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

#[test]
fn an_unopenable_log_file_is_exit_1() {
    let o = regdoc(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--log-file",
        "/nonexistent-dir/regdoc.log",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent-dir/regdoc.log"));
}

#[test]
fn systemd_unit_verifies() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("systemd-analyze is required in CI");
        }
        println!("skipped: systemd-analyze not installed");
        return;
    }
    let unit = std::fs::read_to_string(repo_file("config/regdoc.service")).unwrap();
    assert!(unit.contains("\nType=notify\n"));
    let exec = "ExecStart=/usr/bin/regdoc ";
    assert!(unit.contains(exec), "ExecStart changed: update this test");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("regdoc.service");
    std::fs::write(&copy, unit.replace(exec, &format!("ExecStart={BIN} "))).unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    // verify exits 0 on unknown keys and bad values but names the file; any such line fails.
    let about_unit: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("regdoc.service"))
        .collect();
    assert!(about_unit.is_empty(), "{about_unit:#?}");
}

#[test]
fn readiness_and_stopping_are_notified_to_systemd() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let child = Command::new(BIN)
        .args(["run", "--listen", "127.0.0.1:0"])
        .env_remove("REGDOC_CONFIG")
        .env_remove("REGDOC_LOG")
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(String::from_utf8_lossy(&buf[..n]).trim(), "READY=1");
    signal(&running.0, libc::SIGTERM);
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(String::from_utf8_lossy(&buf[..n]).trim(), "STOPPING=1");
    assert_eq!(wait_exit(&mut running.0).code(), Some(0));
}

#[test]
fn startup_line_names_the_upstream_proxy_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("regdoc.log");
    let conf = dir.path().join("regdoc.toml");
    std::fs::write(
        &conf,
        format!(
            "listen = \"127.0.0.1:0\"\n[upstream]\nproxy = \"http://alice:s3cret-pw@proxy.corp.example:8080\"\n\
             [log]\nfile = \"{}\"\n",
            log.display()
        ),
    )
    .unwrap();
    let child = Command::new(BIN)
        .arg("run")
        .env("REGDOC_CONFIG", &conf)
        .env_remove("REGDOC_LOG")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let line = wait_for_line(&log, "regdoc listening");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["upstream_proxy"], "proxy.corp.example:8080");
    assert_eq!(v["config"], conf.display().to_string());
    signal(&running.0, libc::SIGTERM);
    assert_eq!(wait_exit(&mut running.0).code(), Some(0));
    let all = std::fs::read_to_string(&log).unwrap();
    assert!(!all.contains("s3cret") && !all.contains("alice"), "{all}");
}

/// A fake `/` for `regdoc doctor docker --root`: a docker.service drop-in written two hours ago
/// and a dockerd (proc/812) started an hour ago with `env`.
fn docker_host(dropin: &str, env: &[&str]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("etc/systemd/system/docker.service.d");
    std::fs::create_dir_all(&d).unwrap();
    let conf = d.join("http-proxy.conf");
    std::fs::write(&conf, dropin).unwrap();
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&conf)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    let p = root.path().join("proc/812");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("comm"), "dockerd\n").unwrap();
    let environ: Vec<u8> = env
        .iter()
        .flat_map(|kv| [kv.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::write(p.join("environ"), environ).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let boot = now - 10 * 3600;
    // Started 9 hours after boot: an hour ago.
    let ticks = 9 * 3600 * regdoc::cmd::doctor::proc::clock_ticks();
    let zeros = " 0".repeat(12);
    std::fs::write(
        p.join("stat"),
        format!("812 (dockerd) S 1 812 812 0 -1 4194560{zeros} {ticks} 0 0\n"),
    )
    .unwrap();
    std::fs::write(root.path().join("proc/stat"), format!("btime {boot}\n")).unwrap();
    root
}

#[test]
fn doctor_docker_reads_a_root_and_says_json_and_exit_codes() {
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("regdoc.toml");
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:3128\"\n[[registry]]\nhost = \"myreg.azurecr.io\"\n",
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();

    // Healthy: exit 0, a table for people.
    let good =
        "[Service]\nEnvironment=\"HTTPS_PROXY=http://127.0.0.1:3128\" \"NO_PROXY=localhost\"\n";
    let root = docker_host(
        good,
        &["HTTPS_PROXY=http://127.0.0.1:3128", "NO_PROXY=localhost"],
    );
    let r = root.path().to_str().unwrap();
    let o = regdoc(&["doctor", "docker", "--root", r, "--config", cfg]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.starts_with("CHECK "), "{out}");
    assert!(out.contains("no problem found"), "{out}");
    // Paths and the process as the host names them, not under the fixture's root.
    assert!(out.contains("pid 812") && !out.contains(r), "{out}");

    // https:// and a NO_PROXY covering the registry: exit 1, both cause ids in the JSON.
    let bad = "[Service]\nEnvironment=HTTPS_PROXY=https://127.0.0.1:3128 NO_PROXY=azurecr.io\n";
    let root = docker_host(
        bad,
        &["HTTPS_PROXY=https://127.0.0.1:3128", "NO_PROXY=azurecr.io"],
    );
    let r = root.path().to_str().unwrap();
    let o = regdoc(&["doctor", "docker", "--root", r, "--config", cfg, "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["healthy"], false);
    let causes: Vec<(&str, &str)> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["result"] == "problem")
        .map(|c| (c["check"].as_str().unwrap(), c["cause"].as_str().unwrap()))
        .collect();
    assert_eq!(
        causes,
        vec![
            ("https_proxy", "proxy_scheme_mismatch"),
            ("no_proxy", "no_proxy_bypass")
        ]
    );
    // Every cause id the doctor names is one `regdoc explain` knows.
    let o = regdoc(&["explain", "no_proxy_bypass"]);
    assert!(o.status.success());

    // Usage and configuration errors: exit 2.
    let o = regdoc(&["doctor", "docker", "--root", "/nonexistent/regdoc-root"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = regdoc(&["doctor", "docker", "--bogus"]);
    assert_eq!(o.status.code(), Some(2));
    let o = regdoc(&[
        "doctor",
        "docker",
        "--root",
        r,
        "--config",
        "/nonexistent.toml",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
