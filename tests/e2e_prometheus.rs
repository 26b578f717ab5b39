//! End to end with a real Prometheus server (Debian's `prometheus`): it scrapes regdoc's admin
//! listener every second while skopeo's pull of an image from a registry whose name does not
//! resolve fails through regdoc, and the failure is read back through Prometheus's HTTP query
//! API as `regdoc_failures_total{cause="registry_name"}`.
//!
//! Everything is on loopback: regdoc resolves through the test's own DNS server (which knows no
//! names), Prometheus and regdoc listen on ports from outside the ephemeral range, and
//! Prometheus keeps its storage in a temporary directory. Without `prometheus` or `skopeo` the
//! test skips with a message; under `CI=true` it fails instead.

mod common;

use common::{dns, net, prom};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The PromQL the issue asks to read back.
const QUERY: &str = r#"regdoc_failures_total{cause="registry_name"}"#;

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start Prometheus scraping `target` every second, with the shipped alerting rules loaded
/// (so the real server accepts them too); wait until it is ready (60 s at most).
fn start_prometheus(bin: &Path, dir: &Path, port: u16, target: &str) -> (Running, PathBuf) {
    let conf = dir.join("prometheus.yml");
    std::fs::write(
        &conf,
        format!(
            r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - {REPO}/config/prometheus-alerts.yml
scrape_configs:
  - job_name: regdoc
    static_configs:
      - targets: ["{target}"]
"#
        ),
    )
    .expect("write prometheus.yml");
    let log = dir.join("prometheus.log");
    let out = std::fs::File::create(&log).expect("prometheus log");
    let child = Command::new(bin)
        .arg(format!("--config.file={}", conf.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .expect("spawn prometheus");
    let mut running = Running(child);
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((200, _)) = prom::get(&addr, "/-/ready") {
            return (running, log);
        }
        if let Ok(Some(status)) = running.0.try_wait() {
            panic!(
                "prometheus exited ({status}):\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "prometheus not ready within 60 s:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn prometheus_reads_a_failed_pull_back_from_regdoc() {
    let Some(tools) = prom::programs(
        "e2e test prometheus_reads_a_failed_pull_back_from_regdoc",
        &["prometheus", "skopeo"],
    ) else {
        return;
    };
    let (prometheus, skopeo) = (&tools[0], &tools[1]);
    let dir = tempfile::tempdir().unwrap();
    let dns = dns::TestDns::start("127.0.0.1:0".parse().unwrap(), dns::Zone::new());
    let regdoc = prom::Regdoc::start(
        dir.path(),
        (net::child_port(), net::child_port()),
        dns.local_addr(),
        "",
    );
    let prom_port = net::child_port();
    let prom_addr = format!("127.0.0.1:{prom_port}");
    let (_prometheus, prom_log) =
        start_prometheus(prometheus, dir.path(), prom_port, &regdoc.admin);

    // A pull, as a registry client makes it, of an image whose registry name does not exist.
    let proxy = format!("http://{}", regdoc.proxy);
    let out = Command::new(skopeo)
        .args([
            "--command-timeout",
            "60s",
            "inspect",
            "--retry-times",
            "0",
            "docker://nosuchreg.azurecr.io/app:1",
        ])
        .env("HTTPS_PROXY", &proxy)
        .env("HTTP_PROXY", &proxy)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env_remove("https_proxy")
        .env_remove("http_proxy")
        .output()
        .expect("run skopeo");
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    println!("--- skopeo inspect ---\n{said}");
    assert!(!out.status.success(), "the pull must fail: {said}");

    // Prometheus scrapes every second: wait (bounded) for a scrape after the failure.
    let path = format!("/api/v1/query?query={}", prom::encode(QUERY));
    // Generous for a loaded CI machine; a scrape every second normally answers within two.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (answer, value) = loop {
        let answer = match prom::get(&prom_addr, &path) {
            Ok((200, body)) => body,
            other => panic!("query API: {other:?}"),
        };
        let json: serde_json::Value = serde_json::from_str(&answer).expect("query API JSON");
        assert_eq!(json["status"], "success", "{answer}");
        let value: f64 = json["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["value"][1].as_str()?.parse::<f64>().ok())
            .sum();
        if value >= 1.0 {
            break (answer, value);
        }
        assert!(
            Instant::now() < deadline,
            "{QUERY} not >= 1 within 120 s: {answer}\nregdoc's /metrics:\n{}\nprometheus log:\n{}",
            regdoc.scrape(),
            std::fs::read_to_string(&prom_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    println!("--- PromQL {QUERY} ---\n{answer}");
    assert!(value >= 1.0);
    let json: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let series = &json["data"]["result"][0]["metric"];
    assert_eq!(series["job"], "regdoc", "{answer}");
    assert_eq!(series["endpoint"], "registry_rest", "{answer}");
    assert_eq!(series["phase"], "dns", "{answer}");
}
