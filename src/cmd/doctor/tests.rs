//! The doctor against fixture trees: a fake `/` with drop-ins, daemon.json, certs.d and a fake
//! `proc/<pid>` for dockerd, built here so no binary fixture is committed.

use super::checks::{Finding, Outcome};
use super::*;
use std::time::{Duration, SystemTime};

pub(crate) const DROPIN: &str = "etc/systemd/system/docker.service.d/http-proxy.conf";
const HOUR: Duration = Duration::from_secs(3600);

/// A fake root.
pub(crate) struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Write `rel` under the root, last modified `age` ago.
    pub fn file(&self, rel: &str, text: &str, age: Duration) -> PathBuf {
        let p = self.root().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
        p
    }

    /// A running dockerd: comm, environ, stat (parent 1), and the boot time in proc/stat.
    pub fn dockerd(&self, pid: u32, env: &[&str], started_ago: Duration) {
        self.process("dockerd", pid, env, started_ago);
    }

    /// A running `program`, as [`Fixture::dockerd`].
    pub fn process(&self, program: &str, pid: u32, env: &[&str], started_ago: Duration) {
        let dir = self.root().join(format!("proc/{pid}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("comm"), format!("{program}\n")).unwrap();
        let environ: Vec<u8> = env
            .iter()
            .flat_map(|kv| [kv.as_bytes(), b"\0"].concat())
            .collect();
        std::fs::write(dir.join("environ"), environ).unwrap();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        let boot = now.as_secs() - 10 * 3600;
        let ticks = (now.as_secs() - started_ago.as_secs() - boot) * proc::clock_ticks();
        let mut stat = format!("{pid} ({program}) S 1 {pid} {pid} 0 -1 4194560");
        for _ in 0..12 {
            stat.push_str(" 0");
        }
        stat.push_str(&format!(" {ticks} 0 0\n"));
        std::fs::write(dir.join("stat"), stat).unwrap();
        std::fs::write(
            self.root().join("proc/stat"),
            format!("cpu  1 2 3 4\nbtime {boot}\nprocesses 9\n"),
        )
        .unwrap();
        // Another process, to be skipped.
        std::fs::create_dir_all(self.root().join("proc/1")).unwrap();
        std::fs::write(self.root().join("proc/1/comm"), "systemd\n").unwrap();
    }

    /// regdoc's configuration file (outside the fake root, as on a real host).
    pub fn config(&self, text: &str) -> PathBuf {
        let p = self.root().join("regdoc.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn run(&self, config: &Path) -> (Vec<Finding>, u8) {
        self.run_pid(config, None)
    }

    /// [`Fixture::run`] with `--pid`.
    pub fn run_pid(&self, config: &Path, pid: Option<u32>) -> (Vec<Finding>, u8) {
        self.run_daemon(config, pid, &DOCKERD)
    }

    /// [`Fixture::run_pid`] for `daemon`.
    pub fn run_daemon(
        &self,
        config: &Path,
        pid: Option<u32>,
        daemon: &'static Daemon,
    ) -> (Vec<Finding>, u8) {
        let args = DoctorArgs {
            root: self.root().to_path_buf(),
            config: Some(config.to_path_buf()),
            json: false,
            pid,
        };
        let findings = diagnose(&args, daemon).unwrap();
        let code = exit_status(&findings);
        (findings, code)
    }
}

pub(crate) const GOOD_ENV: &[&str] = &[
    "PATH=/usr/bin",
    "HTTPS_PROXY=http://127.0.0.1:3128",
    "NO_PROXY=localhost,127.0.0.1",
];
pub(crate) const GOOD_DROPIN: &str = "[Service]\n\
    Environment=\"HTTPS_PROXY=http://127.0.0.1:3128\" \"NO_PROXY=localhost,127.0.0.1\"\n";
pub(crate) const CONFIG: &str =
    "listen = \"127.0.0.1:3128\"\n\n[[registry]]\nhost = \"myreg.azurecr.io\"\n";

/// The healthy host: drop-in two hours old, dockerd started an hour ago with it.
pub(crate) fn healthy() -> (Fixture, PathBuf) {
    let fx = Fixture::new();
    fx.file(DROPIN, GOOD_DROPIN, 2 * HOUR);
    fx.dockerd(812, GOOD_ENV, HOUR);
    let cfg = fx.config(CONFIG);
    (fx, cfg)
}

fn problems(findings: &[Finding]) -> Vec<(String, &'static str)> {
    findings
        .iter()
        .filter(|f| f.result == Outcome::Problem)
        .map(|f| (f.check.clone(), f.cause.map(|c| c.id).unwrap_or("-")))
        .collect()
}

fn row<'a>(findings: &'a [Finding], check: &str) -> &'a Finding {
    findings.iter().find(|f| f.check == check).unwrap()
}

#[test]
fn healthy_setup_exits_0() {
    let (fx, cfg) = healthy();
    let (f, code) = fx.run(&cfg);
    assert_eq!(problems(&f), vec![], "{}", render::table(&f));
    assert_eq!(code, 0);
    assert_eq!(row(&f, "restart").result, Outcome::Ok);
    assert!(row(&f, "https_proxy").detail.contains("dockerd pid 812"));
    assert_eq!(row(&f, "http_proxy").result, Outcome::Skipped);
    assert_eq!(row(&f, "certs.d").result, Outcome::Skipped);
    assert_eq!(row(&f, "traffic").result, Outcome::Skipped);

    // With a log file holding a connection record: when regdoc last saw a client.
    let log = fx.file(
        "var/log/regdoc.log",
        "{\"timestamp\":\"2026-12-02T10:05:00.000Z\",\"event\":\"connection\",\"client\":\"127.0.0.1:40002\"}\n",
        HOUR,
    );
    let cfg = fx.config(&format!("{CONFIG}\n[log]\nfile = {log:?}\n"));
    let (f, code) = fx.run(&cfg);
    assert_eq!(code, 0, "{}", render::table(&f));
    let t = row(&f, "traffic");
    assert_eq!(t.result, Outcome::Ok);
    assert!(t
        .detail
        .contains("2026-12-02T10:05:00.000Z from 127.0.0.1:40002"));
}

#[test]
fn https_scheme_is_proxy_scheme_mismatch() {
    let fx = Fixture::new();
    let bad = "[Service]\nEnvironment=HTTPS_PROXY=https://127.0.0.1:3128\n";
    fx.file(DROPIN, bad, 2 * HOUR);
    fx.dockerd(812, &["HTTPS_PROXY=https://127.0.0.1:3128"], HOUR);
    let (f, code) = fx.run(&fx.config(CONFIG));
    assert_eq!(
        problems(&f),
        vec![("https_proxy".into(), "proxy_scheme_mismatch")]
    );
    assert_eq!(code, 1);
    assert!(row(&f, "https_proxy")
        .remedy
        .as_deref()
        .unwrap()
        .contains("HTTPS_PROXY=http://127.0.0.1:3128"));
}

#[test]
fn no_proxy_covering_azurecr_is_no_proxy_bypass() {
    let fx = Fixture::new();
    fx.file(DROPIN, GOOD_DROPIN, 2 * HOUR);
    fx.dockerd(
        812,
        &[
            "https_proxy=http://127.0.0.1:3128",
            "no_proxy=localhost,.azurecr.io",
        ],
        HOUR,
    );
    let (f, code) = fx.run(&fx.config(CONFIG));
    assert_eq!(problems(&f), vec![("no_proxy".into(), "no_proxy_bypass")]);
    assert_eq!(code, 1);
    let d = &row(&f, "no_proxy").detail;
    assert!(d.contains("myreg.azurecr.io (by \".azurecr.io\")"), "{d}");
    // Blob storage is not covered by .azurecr.io.
    assert!(!d.contains("blob.core.windows.net"), "{d}");
}

#[test]
fn daemon_json_proxies_override_the_dropin() {
    // The drop-in is right, daemon.json points elsewhere: daemon.json wins.
    let fx = Fixture::new();
    fx.file(DROPIN, GOOD_DROPIN, 2 * HOUR);
    fx.file(
        daemon_json::PATH,
        r#"{"proxies":{"https-proxy":"http://corp-proxy:8080","no-proxy":"*.blob.core.windows.net"}}"#,
        2 * HOUR,
    );
    fx.dockerd(812, GOOD_ENV, HOUR);
    let (f, code) = fx.run(&fx.config(CONFIG));
    assert_eq!(
        problems(&f),
        vec![
            ("https_proxy".into(), "docker_config"),
            ("no_proxy".into(), "no_proxy_bypass")
        ]
    );
    assert_eq!(code, 1);
    assert!(row(&f, "https_proxy")
        .detail
        .starts_with("https-proxy=http://corp-proxy:8080 ("));
    assert!(row(&f, "https_proxy").detail.contains("daemon.json"));

    // The other way round: a wrong drop-in does not matter under a right daemon.json.
    let fx = Fixture::new();
    fx.file(
        DROPIN,
        "[Service]\nEnvironment=HTTPS_PROXY=https://127.0.0.1:3128\n",
        2 * HOUR,
    );
    fx.file(
        daemon_json::PATH,
        r#"{"proxies":{"https-proxy":"http://127.0.0.1:3128"}}"#,
        2 * HOUR,
    );
    fx.dockerd(812, &["HTTPS_PROXY=https://127.0.0.1:3128"], HOUR);
    let (f, code) = fx.run(&fx.config(CONFIG));
    assert_eq!(problems(&f), vec![], "{}", render::table(&f));
    assert_eq!(code, 0);
}

#[test]
fn dropin_newer_than_the_daemon_needs_a_restart() {
    let fx = Fixture::new();
    fx.file(DROPIN, GOOD_DROPIN, Duration::from_secs(60));
    fx.dockerd(812, GOOD_ENV, HOUR);
    let (f, code) = fx.run(&fx.config(CONFIG));
    assert_eq!(problems(&f), vec![("restart".into(), "docker_config")]);
    assert_eq!(code, 1);
    let r = row(&f, "restart");
    assert!(r.detail.contains("http-proxy.conf"), "{}", r.detail);
    assert!(r
        .remedy
        .as_deref()
        .unwrap()
        .contains("systemctl daemon-reload && systemctl restart docker"));
}

/// A CA made by `regdoc ca init`, and a configuration intercepting with it.
fn intercepting(fx: &Fixture) -> (PathBuf, PathBuf) {
    let ca = crate::intercept::ca::generate(&fx.root().join("ca"), false).unwrap();
    let cfg = fx.config(&format!(
        "{CONFIG}\n[intercept]\nca_cert = {:?}\nca_key = {:?}\n",
        ca.cert, ca.key
    ));
    (ca.cert, cfg)
}

#[test]
fn certs_d_without_regdocs_ca_is_intercept_ca_untrusted() {
    let fx = Fixture::new();
    fx.file(DROPIN, GOOD_DROPIN, 2 * HOUR);
    fx.dockerd(812, GOOD_ENV, HOUR);
    let (ca, cfg) = intercepting(&fx);
    // Another CA in the registry's directory: not regdoc's.
    let other = crate::intercept::ca::generate(&fx.root().join("other"), false).unwrap();
    let other_pem = std::fs::read_to_string(other.cert).unwrap();
    fx.file(
        "etc/docker/certs.d/myreg.azurecr.io/ca.crt",
        &other_pem,
        HOUR,
    );
    let (f, code) = fx.run(&cfg);
    assert_eq!(
        problems(&f),
        vec![("certs.d/myreg.azurecr.io".into(), "intercept_ca_untrusted")]
    );
    assert_eq!(code, 1);

    // With regdoc's CA next to it: trusted.
    let pem = std::fs::read_to_string(ca).unwrap();
    fx.file("etc/docker/certs.d/myreg.azurecr.io/regdoc.crt", &pem, HOUR);
    let (f, code) = fx.run(&cfg);
    assert_eq!(problems(&f), vec![], "{}", render::table(&f));
    assert_eq!(code, 0);
}

#[test]
fn unreadable_environ_is_skipped_and_the_dropins_are_judged() {
    let fx = Fixture::new();
    fx.file(
        DROPIN,
        "[Service]\nEnvironment=HTTPS_PROXY=https://127.0.0.1:3128\n",
        2 * HOUR,
    );
    fx.dockerd(812, GOOD_ENV, HOUR);
    // Root reads any file whatever its mode, so a directory stands for the unreadable file.
    let environ = fx.root().join("proc/812/environ");
    std::fs::remove_file(&environ).unwrap();
    std::fs::create_dir(&environ).unwrap();
    let (f, code) = fx.run(&fx.config(CONFIG));
    let e = row(&f, "environ");
    assert_eq!(e.result, Outcome::Skipped);
    assert!(e.detail.contains("unreadable"), "{}", e.detail);
    assert_eq!(
        problems(&f),
        vec![("https_proxy".into(), "proxy_scheme_mismatch")]
    );
    assert!(row(&f, "https_proxy").detail.contains("http-proxy.conf"));
    assert_eq!(code, 1);
}

#[test]
fn no_daemon_and_no_proxy_are_docker_config() {
    let fx = Fixture::new();
    let (f, code) = fx.run(&fx.config(CONFIG));
    assert_eq!(
        problems(&f),
        vec![
            ("dockerd".into(), "docker_config"),
            ("https_proxy".into(), "docker_config")
        ]
    );
    assert_eq!(code, 1);
}

#[test]
fn bad_config_is_an_error() {
    let fx = Fixture::new();
    let cfg = fx.config("listen = 3\n");
    let args = DoctorArgs {
        root: fx.root().to_path_buf(),
        config: Some(cfg),
        json: true,
        pid: None,
    };
    assert!(matches!(
        diagnose(&args, &DOCKERD),
        Err(DoctorError::Config(_))
    ));
}

#[test]
fn a_broken_dropin_not_yet_applied_is_judged_for_the_next_start() {
    let fx = Fixture::new();
    let bad =
        "[Service]\nEnvironment=\"HTTPS_PROXY=https://127.0.0.1:3128\" \"NO_PROXY=localhost\"\n";
    fx.file(DROPIN, bad, Duration::from_secs(60));
    fx.dockerd(
        812,
        &["HTTPS_PROXY=http://127.0.0.1:3128", "NO_PROXY=localhost"],
        HOUR,
    );
    let (f, code) = fx.run(&fx.config(CONFIG));
    assert_eq!(
        problems(&f),
        vec![
            ("https_proxy (next start)".into(), "proxy_scheme_mismatch"),
            ("restart".into(), "docker_config")
        ],
        "{}",
        render::table(&f)
    );
    assert_eq!(code, 1);
}

#[test]
fn a_proxy_flag_on_dockerds_command_line_wins_over_the_environment() {
    let (fx, cfg) = healthy();
    fx.file(
        "proc/812/cmdline",
        "/usr/bin/dockerd\0--https-proxy\0https://127.0.0.1:3128\0",
        HOUR,
    );
    let (f, code) = fx.run(&cfg);
    assert_eq!(
        problems(&f),
        vec![("https_proxy".into(), "proxy_scheme_mismatch")]
    );
    assert!(row(&f, "https_proxy")
        .detail
        .starts_with("--https-proxy=https://127.0.0.1:3128 (command line of dockerd pid 812)"));
    assert_eq!(code, 1);
}

#[test]
fn print_tables_for_the_readme() {
    // `cargo test --lib doctor::tests::print_tables -- --nocapture` shows them.
    let (fx, cfg) = healthy();
    println!("{}", render::table(&fx.run(&cfg).0));

    let fx = Fixture::new();
    let bad = "[Service]\nEnvironment=\"HTTPS_PROXY=https://127.0.0.1:3128\" \"NO_PROXY=localhost,.azurecr.io\"\n";
    fx.file(DROPIN, bad, Duration::from_secs(60));
    fx.dockerd(812, &["HTTPS_PROXY=http://127.0.0.1:3128"], HOUR);
    println!("{}", render::table(&fx.run(&fx.config(CONFIG)).0));

    let fx = Fixture::new();
    fx.file(DROPIN, GOOD_DROPIN, 2 * HOUR);
    fx.dockerd(812, GOOD_ENV, HOUR);
    let (_, cfg) = intercepting(&fx);
    let environ = fx.root().join("proc/812/environ");
    std::fs::remove_file(&environ).unwrap();
    std::fs::create_dir(&environ).unwrap();
    println!("{}", render::table(&fx.run(&cfg).0));
}

#[test]
fn pid_names_the_daemon_to_check_among_several() {
    let (fx, cfg) = healthy();
    // A second daemon (a test's, a rootless one) with the scheme mistake.
    fx.dockerd(900, &["HTTPS_PROXY=https://127.0.0.1:3128"], HOUR);
    let (f, code) = fx.run(&cfg);
    assert_eq!(code, 0, "{}", render::table(&f));
    assert_eq!(
        row(&f, "dockerd").detail,
        "running, pid 812 (also dockerd pids [900], not checked)"
    );

    let (f, code) = fx.run_pid(&cfg, Some(900));
    assert_eq!(code, 1);
    assert_eq!(row(&f, "dockerd").detail, "running, pid 900");
    assert_eq!(
        problems(&f),
        vec![("https_proxy".to_string(), "proxy_scheme_mismatch")],
        "{}",
        render::table(&f)
    );

    // pid 1 is systemd, 4242 does not exist: neither is a daemon to judge.
    for pid in [1, 4242] {
        let (f, code) = fx.run_pid(&cfg, Some(pid));
        assert_eq!(code, 1);
        let d = row(&f, "dockerd");
        assert_eq!(d.detail, format!("pid {pid} is not a running dockerd"));
        assert_eq!(d.cause.map(|c| c.id), Some("docker_config"));
        assert_eq!(row(&f, "restart").result, Outcome::Skipped);
    }
}

const CONTAINERD_DROPIN: &str = "etc/systemd/system/containerd.service.d/http-proxy.conf";

/// A containerd node: its drop-in two hours old, containerd started an hour ago with it.
fn containerd_node() -> Fixture {
    let fx = Fixture::new();
    fx.file(CONTAINERD_DROPIN, GOOD_DROPIN, 2 * HOUR);
    fx.process("containerd", 655, GOOD_ENV, HOUR);
    fx
}

#[test]
fn containerd_healthy_setup_exits_0_with_containerds_own_rows() {
    let fx = containerd_node();
    // A dockerd beside it, set up wrongly: not what `doctor containerd` checks.
    fx.process("dockerd", 812, &["PATH=/usr/bin"], HOUR);
    let (f, code) = fx.run_daemon(&fx.config(CONFIG), None, &CONTAINERD);
    assert_eq!(problems(&f), vec![], "{}", render::table(&f));
    assert_eq!(code, 0);
    assert_eq!(row(&f, "containerd").detail, "running, pid 655");
    assert!(row(&f, "https_proxy").detail.contains("containerd pid 655"));
    assert!(
        !f.iter()
            .any(|r| r.check == "daemon.json" || r.check == "dockerd"),
        "{}",
        render::table(&f)
    );
    assert_eq!(row(&f, "hosts.toml").result, Outcome::Skipped);
}

#[test]
fn containerd_without_its_proxy_or_restarted_late_is_told_containerds_steps() {
    // No drop-in at all, and none in the environment: containerd reaches registries directly.
    let fx = Fixture::new();
    fx.process("containerd", 655, &["PATH=/usr/bin"], HOUR);
    let (f, code) = fx.run_daemon(&fx.config(CONFIG), None, &CONTAINERD);
    assert_eq!(problems(&f), vec![("https_proxy".into(), "docker_config")]);
    assert_eq!(code, 1);
    let fix = row(&f, "https_proxy").remedy.clone().unwrap();
    assert!(fix.contains("containerd.service drop-in"), "{fix}");
    assert!(fix.contains("systemctl restart containerd"), "{fix}");

    // A drop-in newer than the process, whose NO_PROXY sends ACR around regdoc.
    let fx = Fixture::new();
    fx.file(
        CONTAINERD_DROPIN,
        "[Service]\nEnvironment=\"HTTPS_PROXY=http://127.0.0.1:3128\" \"NO_PROXY=.azurecr.io\"\n",
        Duration::from_secs(60),
    );
    fx.process("containerd", 655, GOOD_ENV, HOUR);
    let (f, _) = fx.run_daemon(&fx.config(CONFIG), None, &CONTAINERD);
    assert_eq!(
        problems(&f),
        vec![
            ("no_proxy (next start)".into(), "no_proxy_bypass"),
            ("restart".into(), "docker_config")
        ],
        "{}",
        render::table(&f)
    );
    for r in f.iter().filter(|r| r.result == Outcome::Problem) {
        let fix = r.remedy.as_deref().unwrap_or_default();
        assert!(fix.contains("systemctl restart containerd"), "{fix}");
        assert!(!fix.contains("docker"), "{fix}");
    }
}

/// regdoc's CA as `regdoc-ca.crt` in the registry's host directory `dir`, named by its
/// hosts.toml (the form the README gives).
fn ca_named_by_hosts_toml(fx: &Fixture, dir: &str, pem: &str) {
    fx.file(&format!("{dir}/regdoc-ca.crt"), pem, HOUR);
    fx.file(
        &format!("{dir}/hosts.toml"),
        "server = \"https://myreg.azurecr.io\"\nca = \"regdoc-ca.crt\"\n",
        HOUR,
    );
}

#[test]
fn containerd_trusts_regdocs_ca_through_hosts_toml_and_the_cri_config_path() {
    let fx = containerd_node();
    let (ca, cfg) = intercepting(&fx);
    let dir = "etc/containerd/certs.d/myreg.azurecr.io";
    // No directory for the registry, no CRI configuration.
    let (f, code) = fx.run_daemon(&cfg, None, &CONTAINERD);
    assert_eq!(
        problems(&f),
        vec![(
            "hosts.toml/myreg.azurecr.io".into(),
            "intercept_ca_untrusted"
        )],
        "{}",
        render::table(&f)
    );
    assert_eq!(code, 1);
    assert_eq!(row(&f, "cri config_path").result, Outcome::Skipped);
    let fix = row(&f, "hosts.toml/myreg.azurecr.io")
        .remedy
        .clone()
        .unwrap();
    assert!(
        fix.contains("/etc/containerd/certs.d/myreg.azurecr.io/hosts.toml"),
        "{fix}"
    );

    // regdoc's CA in the directory and named by hosts.toml; a CRI configuration that does
    // not point at the directory.
    let pem = std::fs::read_to_string(ca).unwrap();
    ca_named_by_hosts_toml(&fx, dir, &pem);
    fx.file(hosts_toml::CONFIG, "version = 2\n", 2 * HOUR);
    let (f, _) = fx.run_daemon(&cfg, None, &CONTAINERD);
    assert_eq!(
        problems(&f),
        vec![("cri config_path".into(), "intercept_ca_untrusted")],
        "{}",
        render::table(&f)
    );
    assert_eq!(row(&f, "hosts.toml/myreg.azurecr.io").result, Outcome::Ok);

    // Pointed at it: healthy once containerd has started with it.
    let pointed = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"/etc/containerd/certs.d\"\n";
    fx.file(hosts_toml::CONFIG, pointed, 2 * HOUR);
    let (f, code) = fx.run_daemon(&cfg, None, &CONTAINERD);
    assert_eq!(problems(&f), vec![], "{}", render::table(&f));
    assert_eq!(code, 0);
    // Changed after containerd started: the running one still has the old configuration.
    fx.file(hosts_toml::CONFIG, pointed, Duration::from_secs(60));
    let (f, _) = fx.run_daemon(&cfg, None, &CONTAINERD);
    assert_eq!(
        problems(&f),
        vec![("restart".into(), "docker_config")],
        "{}",
        render::table(&f)
    );
    assert!(row(&f, "restart")
        .detail
        .contains("/etc/containerd/config.toml"));
}

#[test]
fn containerd_cri_reads_the_first_of_its_config_path_directories() {
    let fx = containerd_node();
    let (ca, cfg) = intercepting(&fx);
    let pem = std::fs::read_to_string(ca).unwrap();
    let dir = "etc/containerd/certs.d/myreg.azurecr.io";
    ca_named_by_hosts_toml(&fx, dir, &pem);
    let config = |path: &str| {
        format!("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"{path}\"\n")
    };
    // An earlier directory whose `_default` has no CA of regdoc's hides the one that has it.
    fx.file(
        hosts_toml::CONFIG,
        &config("/srv/hosts:/etc/containerd/certs.d"),
        2 * HOUR,
    );
    fx.file(
        "srv/hosts/_default/hosts.toml",
        "server = \"https://registry-1.docker.io\"\n",
        HOUR,
    );
    let (f, code) = fx.run_daemon(&cfg, None, &CONTAINERD);
    assert_eq!(
        problems(&f),
        vec![("cri config_path".into(), "intercept_ca_untrusted")],
        "{}",
        render::table(&f)
    );
    assert_eq!(code, 1);
    let cri = row(&f, "cri config_path");
    assert!(
        cri.detail
            .contains("myreg.azurecr.io is read from /srv/hosts/_default"),
        "{}",
        cri.detail
    );
    // ctr with --hosts-dir /etc/containerd/certs.d is not affected.
    assert_eq!(row(&f, "hosts.toml/myreg.azurecr.io").result, Outcome::Ok);

    // Another directory alone, holding regdoc's CA for the registry: the CRI plugin trusts it.
    fx.file(hosts_toml::CONFIG, &config("/srv/hosts"), 2 * HOUR);
    ca_named_by_hosts_toml(&fx, "srv/hosts/myreg.azurecr.io", &pem);
    let (f, code) = fx.run_daemon(&cfg, None, &CONTAINERD);
    assert_eq!(problems(&f), vec![], "{}", render::table(&f));
    assert_eq!(code, 0);
    assert!(
        row(&f, "cri config_path")
            .detail
            .contains("myreg.azurecr.io: /srv/hosts/myreg.azurecr.io/regdoc-ca.crt"),
        "{}",
        row(&f, "cri config_path").detail
    );

    // The default directory named, but the registry has no directory yet: the hosts.toml row
    // says so once, not this one again.
    fx.file(
        hosts_toml::CONFIG,
        &config("/etc/containerd/certs.d"),
        2 * HOUR,
    );
    std::fs::remove_dir_all(fx.root().join(dir)).unwrap();
    let (f, _) = fx.run_daemon(&cfg, None, &CONTAINERD);
    assert_eq!(
        problems(&f),
        vec![(
            "hosts.toml/myreg.azurecr.io".into(),
            "intercept_ca_untrusted"
        )],
        "{}",
        render::table(&f)
    );
}
