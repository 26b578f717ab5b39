//! End to end: `regdoc doctor docker` against the harness's real Docker daemon, started with
//! each setting the doctor must find wrong (issue 14 part 2): an `https://` proxy URL, a
//! `NO_PROXY` covering the registry, settings changed without a restart; and a healthy daemon.
//!
//! The doctor reads the host under `--root`: here a tree in the test's directory where
//! `proc` is the real `/proc` (the daemon's environment, command line and start time, read as
//! root), `etc/docker` is the directory bind-mounted over the daemon's own `/etc/docker`
//! (certs.d, daemon.json), and the `docker.service` drop-in says what systemd would have
//! started the daemon with. `--pid` names the harness's daemon, `--config` the scenario's
//! regdoc.toml (regdoc's listen address, its log file, `[[registry]]`, `[intercept]`).
//!
//! Needs root and the programs `.ci/run` installs; without them each test skips with a message
//! naming what is missing (under `CI=true` it fails instead). Tests serialise on a file lock.

mod common;
mod e2e;

use e2e::harness::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

const DROPIN: &str = "etc/systemd/system/docker.service.d/http-proxy.conf";

fn image() -> String {
    format!("{REG_HOST}/{IMAGE_REPO}:{IMAGE_TAG}")
}

/// The fake `/` of the doctor's `--root`, in the test's directory (kept with the rest by
/// `REGDOC_E2E_KEEP`): `proc` and `etc/docker` are the daemon's own, the drop-in says `env`.
fn host_root(env: &Env, dropin_env: &[(&str, &str)]) -> PathBuf {
    let root = env.dir.join("host-root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::os::unix::fs::symlink("/proc", root.join("proc")).unwrap();
    std::os::unix::fs::symlink(env.dockerd_etc(), root.join("etc/docker")).unwrap();
    write_dropin(&root, dropin_env);
    root
}

/// (Re)write the drop-in: `[Service]` with one `Environment=` line.
fn write_dropin(root: &Path, vars: &[(&str, &str)]) {
    let p = root.join(DROPIN);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let words: Vec<String> = vars.iter().map(|(k, v)| format!("\"{k}={v}\"")).collect();
    std::fs::write(&p, format!("[Service]\nEnvironment={}\n", words.join(" "))).unwrap();
}

/// The drop-in as written before the daemon started (an hour ago), as on a host where systemd
/// started dockerd with it.
fn age_dropin(root: &Path) {
    let f = std::fs::File::options()
        .write(true)
        .open(root.join(DROPIN))
        .unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
}

/// The daemon's proxy variables as the harness set them (`HTTPS_PROXY` and `HTTP_PROXY`).
fn proxy_vars(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("HTTPS_PROXY", url.to_string()),
        ("HTTP_PROXY", url.to_string()),
    ]
}

fn refs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// What one `regdoc doctor docker` run said: its exit status, its table and its JSON.
struct Doctor {
    code: i32,
    table: String,
    json: serde_json::Value,
}

impl Doctor {
    fn row(&self, check: &str) -> &serde_json::Value {
        self.json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == check)
            .unwrap_or_else(|| panic!("no {check} row:\n{}", self.table))
    }

    fn result(&self, check: &str) -> &str {
        self.row(check)["result"].as_str().unwrap()
    }

    fn cause(&self, check: &str) -> Option<&str> {
        self.row(check)["cause"].as_str()
    }

    fn detail(&self, check: &str) -> &str {
        self.row(check)["detail"].as_str().unwrap()
    }

    /// (check, cause) of every problem.
    fn problems(&self) -> Vec<(String, String)> {
        self.json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["result"] == "problem")
            .map(|c| {
                (
                    c["check"].as_str().unwrap().to_string(),
                    c["cause"].as_str().unwrap_or("-").to_string(),
                )
            })
            .collect()
    }
}

/// `regdoc doctor docker --root ROOT --config regdoc.toml --pid <the harness's dockerd>`, as
/// a table and as JSON; the table goes to stderr for the test's output.
fn doctor(env: &Env, root: &Path) -> Doctor {
    let pid = env.dockerd_pid().expect("the scenario runs a daemon");
    doctor_of(env, root, "docker", pid)
}

/// `regdoc doctor DAEMON --root ROOT --config regdoc.toml --pid PID`.
fn doctor_of(env: &Env, root: &Path, daemon: &str, pid: u32) -> Doctor {
    let run = |json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_regdoc"));
        cmd.args(["doctor", daemon, "--root"])
            .arg(root)
            .arg("--config")
            .arg(env.dir.join("regdoc.toml"))
            .args(["--pid", &pid.to_string()])
            .env_remove("REGDOC_CONFIG");
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.is_empty(), "doctor wrote to stderr: {stderr}");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, table) = run(false);
    let (json_code, json) = run(true);
    eprintln!("$ regdoc doctor {daemon} (exit {code})\n{table}");
    assert_eq!(
        code, json_code,
        "table and --json disagree:\n{table}\n{json}"
    );
    Doctor {
        code,
        table,
        json: serde_json::from_str(&json).unwrap(),
    }
}

#[test]
fn doctor_finds_nothing_wrong_with_a_healthy_daemon() {
    // Interception on, so that certs.d is checked too: the daemon's certs.d holds regdoc's CA
    // for the registry and its token server, as the harness sets it up.
    if !ready("doctor_finds_nothing_wrong_with_a_healthy_daemon") {
        return;
    }
    let env = Env::start(Options {
        mode: Mode::Intercept,
        ..Options::default()
    });
    let vars = proxy_vars(&env.proxy_url());
    let root = host_root(&env, &refs(&vars));
    age_dropin(&root);
    assert!(env.docker_login(USER, PASSWORD).success, "{}", env.dump());
    let pull = env.docker(&["pull", &image()]);
    assert!(pull.success, "docker pull failed:\n{}", env.dump());
    // The daemon's own connection records, without the harness's marker requests (which are
    // records too, and would be the doctor's "last connection").
    assert!(!wait_connection_records(&env, REG_HOST).is_empty());

    let d = doctor(&env, &root);
    assert_eq!(d.code, 0, "{}", d.table);
    assert_eq!(d.problems(), Vec::<(String, String)>::new());
    let pid = env.dockerd_pid().unwrap();
    assert_eq!(d.detail("dockerd"), format!("running, pid {pid}"));
    assert_eq!(
        d.detail("https_proxy"),
        format!(
            "HTTPS_PROXY={} (environment of dockerd pid {pid})",
            env.proxy_url()
        )
    );
    assert_eq!(d.result("http_proxy"), "ok");
    assert_eq!(d.result("restart"), "ok");
    assert_eq!(d.result(&format!("certs.d/{REG_HOST}")), "ok");
    assert_eq!(d.result(&format!("certs.d/{AUTH_HOST}")), "ok");
    // regdoc saw the daemon: its last connection came from the daemon on loopback.
    assert_eq!(d.result("traffic"), "ok");
    assert!(
        d.detail("traffic").contains(" from 127.0.0.1:"),
        "{}",
        d.table
    );
    assert!(d.table.ends_with("\nno problem found\n"), "{}", d.table);
}

#[test]
fn doctor_names_the_https_scheme_of_a_daemon_whose_pulls_fail() {
    if !ready("doctor_names_the_https_scheme_of_a_daemon_whose_pulls_fail") {
        return;
    }
    let env = Env::start(Options {
        daemon_proxy: DaemonProxy::RegdocHttpsScheme,
        ..Options::default()
    });
    let vars = proxy_vars(&env.proxy_url());
    let root = host_root(&env, &refs(&vars));
    age_dropin(&root);
    let pull = env.docker(&["pull", &image()]);
    assert!(!pull.success, "a pull through https://<regdoc> must fail");
    assert_printed(&pull, "proxyconnect tcp");

    let d = doctor(&env, &root);
    assert_eq!(d.code, 1, "{}", d.table);
    assert_eq!(
        d.problems(),
        vec![
            (
                "https_proxy".to_string(),
                "proxy_scheme_mismatch".to_string()
            ),
            (
                "http_proxy".to_string(),
                "proxy_scheme_mismatch".to_string()
            ),
        ],
        "{}",
        d.table
    );
    assert!(d
        .detail("https_proxy")
        .ends_with("https:// to a plain-HTTP proxy"));
    assert_eq!(d.result("restart"), "ok");
    // What regdoc logged for the daemon's failed pull names the same cause.
    let causes: Vec<String> = env.wait_failures().iter().filter_map(cause_id).collect();
    assert!(
        causes.iter().any(|c| c == "proxy_scheme_mismatch"),
        "regdoc's causes {causes:?}:\n{}",
        env.dump()
    );
}

#[test]
fn doctor_names_a_no_proxy_that_sends_the_registry_around_regdoc() {
    if !ready("doctor_names_a_no_proxy_that_sends_the_registry_around_regdoc") {
        return;
    }
    let env = Env::start(Options {
        daemon_env: vec![("NO_PROXY", ".azurecr.io".to_string())],
        ..Options::default()
    });
    let mut vars = proxy_vars(&env.proxy_url());
    vars.push(("NO_PROXY", ".azurecr.io".to_string()));
    let root = host_root(&env, &refs(&vars));
    age_dropin(&root);
    // The pull works, but around regdoc: the daemon reaches the registry directly.
    assert!(env.docker_login(USER, PASSWORD).success, "{}", env.dump());
    let pull = env.docker(&["pull", &image()]);
    assert!(pull.success, "docker pull failed:\n{}", env.dump());

    // Before any marker request of the harness, which regdoc would log as a connection.
    let d = doctor(&env, &root);
    assert_eq!(d.code, 1, "{}", d.table);
    assert_eq!(
        d.problems(),
        vec![("no_proxy".to_string(), "no_proxy_bypass".to_string())],
        "{}",
        d.table
    );
    assert_eq!(d.cause("no_proxy"), Some("no_proxy_bypass"));
    assert!(
        d.detail("no_proxy")
            .contains(&format!("{REG_HOST} (by \".azurecr.io\")")),
        "{}",
        d.table
    );
    assert_eq!(d.result("https_proxy"), "ok");
    assert_eq!(d.result("traffic"), "skipped", "{}", d.table);

    // regdoc never saw the registry or its data endpoint.
    env.settle();
    assert_eq!(
        connection_records(&env, REG_HOST),
        Vec::<serde_json::Value>::new()
    );
    assert_eq!(
        connection_records(&env, DATA_HOST),
        Vec::<serde_json::Value>::new()
    );
}

#[test]
fn doctor_says_restart_when_the_dropin_changed_after_the_daemon_started() {
    // The operator wrote the proxy drop-in but never restarted the daemon, which still runs
    // without a proxy; then the remedy the doctor gives, and the doctor is content.
    if !ready("doctor_says_restart_when_the_dropin_changed_after_the_daemon_started") {
        return;
    }
    let mut env = Env::start(Options {
        daemon_proxy: DaemonProxy::Direct,
        ..Options::default()
    });
    assert!(env.docker_login(USER, PASSWORD).success, "{}", env.dump());
    assert!(env.docker(&["pull", &image()]).success, "{}", env.dump());
    let url = format!("http://127.0.0.1:{}", env.regdoc_port.unwrap());
    let vars = proxy_vars(&url);
    // Written after the daemon started: the doctor reckons the start time from whole seconds
    // of boot time and clock ticks, so leave it a clear second behind.
    std::thread::sleep(Duration::from_secs(1));
    let root = host_root(&env, &refs(&vars));

    let d = doctor(&env, &root);
    assert_eq!(d.code, 1, "{}", d.table);
    assert_eq!(
        d.problems(),
        vec![
            ("https_proxy".to_string(), "docker_config".to_string()),
            ("restart".to_string(), "docker_config".to_string()),
        ],
        "{}",
        d.table
    );
    assert!(
        d.detail("restart").ends_with(&format!("/{DROPIN}")),
        "{}",
        d.table
    );
    assert!(d
        .detail("https_proxy")
        .starts_with("HTTPS_PROXY is not set"));
    // What the restart would bring is right.
    assert_eq!(d.result("https_proxy (next start)"), "ok", "{}", d.table);
    assert_eq!(d.result("http_proxy (next start)"), "ok", "{}", d.table);
    assert_eq!(
        connection_records(&env, REG_HOST),
        Vec::<serde_json::Value>::new()
    );

    // The remedy: restart the daemon (strictly after the drop-in's mtime, whatever the clock's
    // rounding of the start time), with the drop-in's settings.
    std::thread::sleep(Duration::from_secs(2));
    env.restart_dockerd(DaemonProxy::Regdoc);
    let pull = env.docker(&["pull", &image()]);
    assert!(pull.success, "docker pull failed:\n{}", env.dump());
    assert!(!wait_connection_records(&env, REG_HOST).is_empty());
    let d = doctor(&env, &root);
    assert_eq!(d.code, 0, "{}", d.table);
    assert_eq!(d.result("restart"), "ok");
    assert_eq!(d.result("traffic"), "ok");
}

#[test]
fn doctor_names_a_certs_d_without_regdocs_ca() {
    // Interception on, but the daemon's certs.d holds only the registry's own CA: the pull
    // fails on regdoc's certificate, and the doctor says which certs.d lacks regdoc's CA.
    if !ready("doctor_names_a_certs_d_without_regdocs_ca") {
        return;
    }
    let env = Env::start(Options {
        mode: Mode::Intercept,
        client_trusts_regdoc: false,
        ..Options::default()
    });
    let vars = proxy_vars(&env.proxy_url());
    let root = host_root(&env, &refs(&vars));
    age_dropin(&root);
    let pull = env.docker(&["pull", &image()]);
    assert!(!pull.success, "the daemon must refuse regdoc's certificate");
    assert_printed(&pull, "x509: certificate signed by unknown authority");

    let d = doctor(&env, &root);
    assert_eq!(d.code, 1, "{}", d.table);
    let reg = format!("certs.d/{REG_HOST}");
    assert_eq!(d.result(&reg), "problem", "{}", d.table);
    assert_eq!(d.cause(&reg), Some("intercept_ca_untrusted"));
    // Every problem is a certs.d one: the proxy settings are right.
    for (check, cause) in d.problems() {
        assert!(check.starts_with("certs.d/"), "{}", d.table);
        assert_eq!(cause, "intercept_ca_untrusted", "{}", d.table);
    }
    // regdoc's own diagnosis of the failed pull names the same cause.
    let causes: Vec<String> = env.wait_failures().iter().filter_map(cause_id).collect();
    assert!(
        causes.iter().any(|c| c == "intercept_ca_untrusted"),
        "regdoc's causes {causes:?}:\n{}",
        env.dump()
    );
}

const CONTAINERD_DROPIN: &str = "etc/systemd/system/containerd.service.d/http-proxy.conf";

/// The fake `/` for `regdoc doctor containerd`: `proc` is the real one, `etc/containerd/certs.d`
/// the hosts directory ctr pulls with, `tmp` the real `/tmp` (where the hosts.toml files' `ca`
/// paths point), a containerd drop-in with the proxy the harness gave containerd and a CRI
/// configuration pointing at the hosts directory, both written an hour ago.
fn containerd_root(env: &Env) -> PathBuf {
    let root = env.dir.join("host-root");
    std::fs::create_dir_all(root.join("etc/containerd")).unwrap();
    std::os::unix::fs::symlink("/proc", root.join("proc")).unwrap();
    std::os::unix::fs::symlink("/tmp", root.join("tmp")).unwrap();
    std::os::unix::fs::symlink(
        env.containerd_hosts_dir(),
        root.join("etc/containerd/certs.d"),
    )
    .unwrap();
    let config = root.join("etc/containerd/config.toml");
    std::fs::write(
        &config,
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"/etc/containerd/certs.d\"\n",
    )
    .unwrap();
    let p = root.join(CONTAINERD_DROPIN);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let url = env.proxy_url();
    std::fs::write(
        &p,
        format!("[Service]\nEnvironment=\"HTTPS_PROXY={url}\" \"HTTP_PROXY={url}\" \"NO_PROXY=localhost,127.0.0.1\"\n"),
    )
    .unwrap();
    // Both as on a node where containerd started after they were written.
    for f in [&p, &config] {
        std::fs::File::options()
            .write(true)
            .open(f)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
    }
    root
}

fn containerd_env(client_trusts_regdoc: bool) -> Env {
    Env::start(Options {
        mode: Mode::Intercept,
        docker: false,
        containerd: true,
        client_trusts_regdoc,
        ..Options::default()
    })
}

#[test]
fn doctor_finds_nothing_wrong_with_a_healthy_containerd() {
    // The harness's containerd, with regdoc as its proxy in its environment and regdoc's CA in
    // the hosts directory; ctr pulls through regdoc first.
    if !ready("doctor_finds_nothing_wrong_with_a_healthy_containerd") {
        return;
    }
    let env = containerd_env(true);
    let reference = format!("{REG_HOST}/{IMAGE_REPO}:{IMAGE_TAG}");
    let pull = env.ctr_pull(&reference, Some((USER, PASSWORD)));
    assert!(pull.success, "ctr images pull failed:\n{}", env.dump());
    let root = containerd_root(&env);
    let pid = env.containerd_pid().expect("the scenario runs containerd");
    let d = doctor_of(&env, &root, "containerd", pid);
    assert_eq!(d.code, 0, "{}", d.table);
    assert_eq!(d.problems(), Vec::<(String, String)>::new());
    assert_eq!(d.detail("containerd"), format!("running, pid {pid}"));
    assert_eq!(
        d.detail("https_proxy"),
        format!(
            "HTTPS_PROXY={} (environment of containerd pid {pid})",
            env.proxy_url()
        )
    );
    assert_eq!(d.result("restart"), "ok");
    assert_eq!(d.result(&format!("hosts.toml/{REG_HOST}")), "ok");
    assert_eq!(d.result("cri config_path"), "ok");
    assert!(!d.table.contains("docker"), "{}", d.table);
}

#[test]
fn doctor_names_a_hosts_toml_without_regdocs_ca() {
    // The hosts directory names the registry's own CA: ctr refuses regdoc's certificate, and
    // the doctor says which hosts.toml lacks regdoc's CA and how containerd takes it.
    if !ready("doctor_names_a_hosts_toml_without_regdocs_ca") {
        return;
    }
    let env = containerd_env(false);
    let reference = format!("{REG_HOST}/{IMAGE_REPO}:{IMAGE_TAG}");
    let pull = env.ctr_pull(&reference, Some((USER, PASSWORD)));
    assert!(!pull.success, "ctr must refuse regdoc's certificate");
    let root = containerd_root(&env);
    let pid = env.containerd_pid().expect("the scenario runs containerd");
    let d = doctor_of(&env, &root, "containerd", pid);
    assert_eq!(d.code, 1, "{}", d.table);
    let check = format!("hosts.toml/{REG_HOST}");
    assert!(
        d.problems()
            .contains(&(check.clone(), "intercept_ca_untrusted".to_string())),
        "{}",
        d.table
    );
    let fix = d.row(&check)["remedy"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        fix.contains(&format!("/etc/containerd/certs.d/{REG_HOST}/hosts.toml")),
        "{fix}"
    );
}
