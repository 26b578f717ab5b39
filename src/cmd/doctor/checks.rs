//! The checks, as pure functions of what was read ([`Facts`]) and regdoc's configuration.

use super::certs::{CaFileError, Trust};
use super::daemon_json::DaemonJson;
use super::goproxy::{redact_url, NoProxy, ProxyUrl};
use super::proc::Daemon as Process;
use super::settings::{host_path, Effective, Value};
use super::systemd::DropIns;
use super::traffic::LastConnection;
use super::{Daemon, TrustStore};
use crate::diagnose::catalog::{self, Cause};
use serde::Serialize;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Everything read from the host, before judging it.
#[derive(Debug)]
pub struct Facts {
    /// The `--root` everything was read under.
    pub root: PathBuf,
    /// The daemon checked.
    pub daemon: &'static Daemon,
    /// `--pid`: the daemon asked for, when not the one found by name.
    pub pid: Option<u32>,
    /// The last connection in regdoc's log file; None when it logs to standard output.
    pub traffic: Option<Result<Option<LastConnection>, String>>,
    pub dropins: DropIns,
    pub daemon_json: DaemonJson,
    pub process: Option<Process>,
    /// containerd only: the CRI plugin's registry `config_path` (`Err`: no configuration file
    /// to read it from, with why).
    pub cri_config_path: Option<Result<Option<String>, String>>,
    /// containerd only: each intercepted host's trust in the directories that `config_path`
    /// names, as the CRI plugin looks (empty when it is unset or regdoc's CA is unreadable).
    pub cri_trust: Vec<(String, Trust)>,
    pub settings: Effective,
    /// What the daemon will use at its next start (daemon.json, then the drop-ins), when that
    /// was told apart from the running process's environment.
    pub next_start: Option<Effective>,
    /// Proxy setting files with their mtimes (drop-ins, environment files, daemon.json).
    pub setting_files: Vec<(PathBuf, SystemTime)>,
    /// None when interception is off; else each intercepted host's trust, or why regdoc's CA
    /// could not be read.
    pub certs: Option<Result<Vec<(String, Trust)>, CaFileError>>,
}

pub use crate::cmd::outcome::Outcome;

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: String,
    pub result: Outcome,
    /// What was seen, with where it came from.
    pub detail: String,
    #[serde(serialize_with = "cause_id")]
    pub cause: Option<&'static Cause>,
    pub remedy: Option<String>,
}

fn cause_id<S: serde::Serializer>(c: &Option<&'static Cause>, s: S) -> Result<S::Ok, S::Error> {
    match c {
        Some(c) => s.serialize_str(c.id),
        None => s.serialize_none(),
    }
}

impl Finding {
    fn ok(check: &str, detail: String) -> Finding {
        Finding {
            check: check.into(),
            result: Outcome::Ok,
            detail,
            cause: None,
            remedy: None,
        }
    }
    fn skipped(check: &str, detail: String) -> Finding {
        Finding {
            result: Outcome::Skipped,
            ..Finding::ok(check, detail)
        }
    }
    fn problem(check: &str, cause: &'static Cause, detail: String, remedy: String) -> Finding {
        Finding {
            check: check.into(),
            result: Outcome::Problem,
            detail,
            cause: Some(cause),
            remedy: Some(remedy),
        }
    }
}

/// What regdoc's configuration says the daemon must use.
pub struct Expect<'a> {
    pub listen: SocketAddr,
    pub registries: &'a [String],
}

pub fn run(f: &Facts, want: &Expect<'_>) -> Vec<Finding> {
    let mut out = vec![daemon(f), environ(f)];
    if f.daemon.trust == TrustStore::CertsD {
        out.push(daemon_json(f));
    }
    out.extend(settings(f, "", &f.settings, None, want));
    // The drop-ins apply at the next start: where they differ from what runs now, judge them
    // too, or a restart would bring a broken setting in silently.
    if let Some(next) = &f.next_start {
        out.extend(settings(f, " (next start)", next, Some(&f.settings), want));
    }
    out.push(restart(f));
    out.extend(certs(f));
    if let Some(c) = &f.cri_config_path {
        out.push(cri_config_path(f, c));
    }
    out.push(traffic(f));
    out
}

/// Informational: no traffic may only mean no pull since regdoc started, so never a problem.
fn traffic(f: &Facts) -> Finding {
    match &f.traffic {
        None => Finding::skipped("traffic", "regdoc logs to standard output ([log] file unset)".into()),
        Some(Err(e)) => Finding::skipped("traffic", format!("cannot read regdoc's log: {e}")),
        Some(Ok(None)) => Finding::skipped(
            "traffic",
            // regdoc writes a connection's record when it ends, a moment after a client gave
            // up: only a pull that failed a while ago without one never reached regdoc.
            "no connection record in regdoc's log yet (one is written when a connection ends): a pull that failed a while ago without one never reached regdoc".into(),
        ),
        Some(Ok(Some(last))) => Finding::ok(
            "traffic",
            format!("last connection {} from {}", last.timestamp, last.client),
        ),
    }
}

/// The three variables of `e`; with `now`, only those whose value differs from it.
fn settings(
    f: &Facts,
    suffix: &str,
    e: &Effective,
    now: Option<&Effective>,
    want: &Expect<'_>,
) -> Vec<Finding> {
    let differs = |a: Option<&Value>, b: fn(&Effective) -> Option<&Value>| {
        now.is_none_or(|n| a.map(|v| &v.value) != b(n).map(|v| &v.value))
    };
    let mut out = Vec::new();
    if differs(e.https.as_ref(), |n| n.https.as_ref()) {
        let check = format!("https_proxy{suffix}");
        out.push(proxy(
            f,
            &check,
            "HTTPS_PROXY",
            e.https.as_ref(),
            want,
            true,
        ));
    }
    if differs(e.http.as_ref(), |n| n.http.as_ref()) {
        let check = format!("http_proxy{suffix}");
        out.push(proxy(f, &check, "HTTP_PROXY", e.http.as_ref(), want, false));
    }
    if differs(e.no_proxy.as_ref(), |n| n.no_proxy.as_ref()) {
        let check = format!("no_proxy{suffix}");
        out.push(no_proxy(f, &check, e.no_proxy.as_ref(), want));
    }
    out
}

fn daemon(f: &Facts) -> Finding {
    let program = f.daemon.program;
    match &f.process {
        Some(d) if d.others.is_empty() => Finding::ok(program, format!("running, pid {}", d.pid)),
        Some(d) => Finding::ok(
            program,
            format!(
                "running, pid {} (also {program} pids {:?}, not checked)",
                d.pid, d.others
            ),
        ),
        None => match f.pid {
            Some(pid) => Finding::problem(
                program,
                &catalog::DOCKER_CONFIG,
                format!("pid {pid} is not a running {program}"),
                format!("name a running {program} with --pid, or leave --pid out"),
            ),
            None => Finding::problem(
                program,
                &catalog::DOCKER_CONFIG,
                format!("no {program} process found in /proc"),
                format!(
                    "start the daemon: systemctl start {}",
                    f.daemon.unit.trim_end_matches(".service")
                ),
            ),
        },
    }
}

fn environ(f: &Facts) -> Finding {
    match f.process.as_ref().map(|d| &d.environ) {
        None => Finding::skipped("environ", format!("no {} process", f.daemon.program)),
        Some(Ok(_)) => Finding::ok("environ", "read; it is what the daemon uses now".into()),
        // Not root: judge the drop-ins instead, and say so rather than fail.
        Some(Err(why)) => Finding::skipped(
            "environ",
            format!("unreadable ({why}); judging the drop-ins and daemon.json instead"),
        ),
    }
}

fn daemon_json(f: &Facts) -> Finding {
    match &f.daemon_json {
        DaemonJson::Absent => Finding::ok("daemon.json", "absent".into()),
        DaemonJson::Read { path, proxies } => {
            let set = [
                ("http-proxy", &proxies.http),
                ("https-proxy", &proxies.https),
                ("no-proxy", &proxies.no_proxy),
            ]
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| *k)
            .collect::<Vec<_>>();
            let what = if set.is_empty() {
                "no proxies".to_string()
            } else {
                format!("proxies {} (they override the environment)", set.join(", "))
            };
            Finding::ok(
                "daemon.json",
                format!("{}: {what}", host_path(&f.root, path)),
            )
        }
        DaemonJson::Invalid { path, reason } => Finding::problem(
            "daemon.json",
            &catalog::DOCKER_CONFIG,
            format!("{}: {reason}", host_path(&f.root, path)),
            format!(
                "fix {} (dockerd will not start with it)",
                host_path(&f.root, path)
            ),
        ),
    }
}

fn shown(v: &Value, root: &Path) -> String {
    format!(
        "{}={} ({})",
        v.name,
        redact_url(&v.value),
        v.origin.describe(root)
    )
}

/// Whether a proxy URL's host and port name regdoc's listen address.
fn names_listen(url: &ProxyUrl, listen: SocketAddr) -> bool {
    if url.port != listen.port() {
        return false;
    }
    if listen.ip().is_unspecified() {
        return true;
    }
    if let Ok(ip) = url.host.parse::<std::net::IpAddr>() {
        return ip == listen.ip();
    }
    if url.host == "localhost" {
        return listen.ip().is_loopback();
    }
    // A host name: resolve it as the daemon would (/etc/hosts first).
    (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map(|mut a| a.any(|a| a.ip() == listen.ip()))
        .unwrap_or(false)
}

fn proxy(
    f: &Facts,
    check: &str,
    var: &str,
    v: Option<&Value>,
    want: &Expect<'_>,
    required: bool,
) -> Finding {
    let (root, restart) = (f.root.as_path(), f.daemon.restart());
    let good = format!("http://{}", want.listen);
    let Some(v) = v else {
        return if required {
            Finding::problem(
                check,
                &catalog::DOCKER_CONFIG,
                format!("{var} is not set: the daemon reaches registries directly"),
                format!(
                    "set Environment=\"{var}={good}\" in a {} drop-in, then {restart}",
                    f.daemon.unit
                ),
            )
        } else {
            Finding::skipped(
                check,
                format!("{var} not set (only plain-http registries use it)"),
            )
        };
    };
    let url = match ProxyUrl::parse(&v.value) {
        Ok(u) => u,
        Err(why) => {
            return Finding::problem(
                check,
                &catalog::DOCKER_CONFIG,
                format!("{}: not a proxy URL: {why}", shown(v, root)),
                format!("set {var}={good}, then {restart}"),
            )
        }
    };
    if !names_listen(&url, want.listen) {
        return Finding::problem(
            check,
            &catalog::DOCKER_CONFIG,
            format!(
                "{}: not regdoc, which listens on {}",
                shown(v, root),
                want.listen
            ),
            format!(
                "set {var}={good} (or point regdoc's upstream.proxy at {}), then {restart}",
                url.display()
            ),
        );
    }
    if url.scheme != "http" {
        // The classic: dockerd starts TLS with the proxy, regdoc answers in plain HTTP and Go
        // prints "proxyconnect tcp: tls: first record does not look like a TLS handshake".
        return Finding::problem(
            check,
            &catalog::PROXY_SCHEME_MISMATCH,
            format!(
                "{}: {}:// to a plain-HTTP proxy",
                shown(v, root),
                url.scheme
            ),
            format!(
                "write {var}={good} (http://, not {}://), then {restart}",
                url.scheme
            ),
        );
    }
    Finding::ok(check, shown(v, root))
}

/// Hosts whose traffic must go through regdoc: (as shown, as matched).
fn must_proxy(registries: &[String]) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for r in registries {
        let r = r.trim_end_matches('.').to_ascii_lowercase();
        v.push((r.clone(), r.clone()));
        if let Some(name) = r.strip_suffix(".azurecr.io") {
            v.push((
                format!("{name}.<region>.data.azurecr.io"),
                format!("{name}.region.data.azurecr.io"),
            ));
        }
    }
    v.push(("<registry>.azurecr.io".into(), "registry.azurecr.io".into()));
    v.push((
        "<registry>.<region>.data.azurecr.io".into(),
        "registry.region.data.azurecr.io".into(),
    ));
    v.push((
        "<account>.blob.core.windows.net".into(),
        "account.blob.core.windows.net".into(),
    ));
    v
}

fn no_proxy(f: &Facts, check: &str, v: Option<&Value>, want: &Expect<'_>) -> Finding {
    let root = f.root.as_path();
    let Some(v) = v else {
        return Finding::ok(check, "NO_PROXY not set".into());
    };
    let rules = NoProxy::parse(&v.value);
    let hits: Vec<String> = must_proxy(want.registries)
        .into_iter()
        .filter_map(|(shown, host)| {
            rules
                .bypasses(&host, 443)
                .map(|e| format!("{shown} (by {e:?})"))
        })
        .collect();
    if hits.is_empty() {
        return Finding::ok(check, shown(v, root));
    }
    Finding::problem(
        check,
        &catalog::NO_PROXY_BYPASS,
        format!(
            "{}: sends around regdoc {}",
            shown(v, root),
            hits.join(", ")
        ),
        format!(
            "remove those entries from {} (keep localhost,127.0.0.1), then {}",
            v.name,
            f.daemon.restart()
        ),
    )
}

fn restart(f: &Facts) -> Finding {
    let program = f.daemon.program;
    let Some(d) = &f.process else {
        return Finding::skipped("restart", format!("no {program} process"));
    };
    let Some(started) = d.started else {
        return Finding::skipped(
            "restart",
            format!("start time of {program} pid {} unknown", d.pid),
        );
    };
    let newer: Vec<String> = f
        .setting_files
        .iter()
        .filter(|(_, m)| *m > started)
        .map(|(p, _)| host_path(&f.root, p))
        .collect();
    let at = crate::diagnose::text::unix_to_rfc3339(
        started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    );
    if newer.is_empty() {
        return Finding::ok(
            "restart",
            format!("{program} started {at}, after its proxy settings last changed"),
        );
    }
    Finding::problem(
        "restart",
        &catalog::DOCKER_CONFIG,
        format!(
            "changed after {program} started ({at}): {}",
            newer.join(", ")
        ),
        format!(
            "the daemon still runs with the old settings: {}",
            f.daemon.restart()
        ),
    )
}

fn certs(f: &Facts) -> Vec<Finding> {
    let (label, dir) = match f.daemon.trust {
        TrustStore::CertsD => ("certs.d", "/etc/docker/certs.d"),
        TrustStore::HostsToml => ("hosts.toml", "/etc/containerd/certs.d"),
    };
    let remedy = |host: &str| {
        match f.daemon.trust {
        TrustStore::CertsD => format!(
            "copy regdoc's CA (intercept.ca_cert) to {dir}/{host}/ca.crt (no restart needed)"
        ),
        TrustStore::HostsToml => format!(
            "copy regdoc's CA (intercept.ca_cert) to {dir}/{host}/ca.crt and name it in {dir}/{host}/hosts.toml: server = \"https://{host}\", ca = \"{dir}/{host}/ca.crt\" and an empty [host] table, which containerd 1.6 requires (README, Interception; read at each pull, no restart needed)"
        ),
    }
    };
    match &f.certs {
        None => vec![Finding::skipped(
            label,
            "interception off (no [intercept] ca_cert)".into(),
        )],
        Some(Err(e)) => vec![Finding::problem(
            label,
            &catalog::INTERCEPT_CA_UNTRUSTED,
            e.to_string(),
            format!("fix [intercept] ca_cert (`regdoc ca init`), then install it under {dir}"),
        )],
        Some(Ok(hosts)) if hosts.is_empty() => vec![Finding::problem(
            label,
            &catalog::INTERCEPT_CA_UNTRUSTED,
            format!("interception on, but no intercepted registry has a directory in {dir}"),
            remedy("<registry>.azurecr.io"),
        )],
        Some(Ok(hosts)) => hosts
            .iter()
            .map(|(host, t)| {
                let check = format!("{label}/{host}");
                match t {
                    Trust::Trusted(file) => Finding::ok(
                        &check,
                        format!("{} holds regdoc's CA", host_path(&f.root, file)),
                    ),
                    Trust::Missing { dirs } => {
                        let dirs = dirs
                            .iter()
                            .map(|d| host_path(&f.root, d))
                            .collect::<Vec<_>>()
                            .join(", ");
                        let what = match f.daemon.trust {
                            TrustStore::CertsD => format!("no *.crt in {dirs} holds regdoc's CA"),
                            TrustStore::HostsToml => {
                                format!("no ca named by hosts.toml in {dirs} holds regdoc's CA")
                            }
                        };
                        Finding::problem(
                            &check,
                            &catalog::INTERCEPT_CA_UNTRUSTED,
                            what,
                            remedy(host),
                        )
                    }
                    Trust::Unusable { file, reason } => Finding::problem(
                        &check,
                        &catalog::INTERCEPT_CA_UNTRUSTED,
                        format!(
                            "{}: {reason}; the daemon ignores it",
                            host_path(&f.root, file)
                        ),
                        remedy(host),
                    ),
                    Trust::NoDir => Finding::problem(
                        &check,
                        &catalog::INTERCEPT_CA_UNTRUSTED,
                        format!(
                            "no {dir}/{host} directory: the daemon will refuse regdoc's certificates"
                        ),
                        remedy(host),
                    ),
                }
            })
            .collect(),
    }
}

/// containerd's CRI plugin (a Kubernetes node's pulls) reads a hosts directory only when its
/// registry `config_path` names it; `ctr` is given it with `--hosts-dir`. With several
/// directories in `config_path`, the first holding `<host>` or `_default` is the one read, so
/// an earlier directory can hide regdoc's CA in a later one.
fn cri_config_path(f: &Facts, c: &Result<Option<String>, String>) -> Finding {
    const CHECK: &str = "cri config_path";
    let dir = "/etc/containerd/certs.d";
    if f.certs.is_none() {
        return Finding::skipped(CHECK, "interception off: no CA to trust".into());
    }
    let fix = format!(
        "set config_path = \"{dir}\" under [plugins.\"io.containerd.grpc.v1.cri\".registry] in /etc/containerd/config.toml, then {}",
        f.daemon.restart()
    );
    let path = match c {
        Err(why) => {
            return Finding::skipped(
                CHECK,
                format!("{why}: no CRI configuration to read (ctr takes --hosts-dir {dir})"),
            )
        }
        Ok(None) => {
            return Finding::problem(
                CHECK,
                &catalog::INTERCEPT_CA_UNTRUSTED,
                format!("no config_path for the CRI plugin's registry: it does not read {dir}, so a pod's pull refuses regdoc's certificates"),
                fix,
            )
        }
        Ok(Some(path)) => path,
    };
    let names_default =
        super::hosts_toml::config_path_dirs(path).any(|p| p.trim_end_matches('/') == dir);
    // The CA could not be read, or no host is known yet: whether the path names the directory
    // is all there is to judge.
    if f.cri_trust.is_empty() {
        return if names_default {
            Finding::ok(CHECK, format!("config_path = \"{path}\""))
        } else {
            Finding::problem(
                CHECK,
                &catalog::INTERCEPT_CA_UNTRUSTED,
                format!("config_path = \"{path}\" does not name {dir}: the CRI plugin does not read regdoc's CA there"),
                fix,
            )
        };
    }
    // Where the CRI plugin reads the same directory as the hosts.toml row, that row judges it;
    // this one speaks of another directory read first, or of a path without the default one.
    let default = f.root.join(super::hosts_toml::DIR);
    let untrusted = f.cri_trust.iter().find_map(|(host, t)| match t {
        Trust::Trusted(_) => None,
        Trust::Missing { dirs } if dirs.iter().all(|d| d.starts_with(&default)) => None,
        Trust::Unusable { file, .. } if file.starts_with(&default) => None,
        Trust::NoDir if names_default => None,
        Trust::Missing { dirs } => Some(format!(
            "{host} is read from {}, where no ca holds regdoc's CA",
            dirs.iter()
                .map(|d| host_path(&f.root, d))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Trust::Unusable { file, reason } => Some(format!(
            "{host} is read from {}, which containerd ignores ({reason})",
            host_path(&f.root, file)
        )),
        Trust::NoDir => Some(format!("none of its directories has {host} or _default")),
    });
    match untrusted {
        None => Finding::ok(
            CHECK,
            format!(
                "config_path = \"{path}\"; {}",
                f.cri_trust
                    .iter()
                    .filter_map(|(host, t)| match t {
                        Trust::Trusted(file) => Some(format!("{host}: {}", host_path(&f.root, file))),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Some(why) => Finding::problem(
            CHECK,
            &catalog::INTERCEPT_CA_UNTRUSTED,
            format!("config_path = \"{path}\": {why}, so a pod's pull refuses regdoc's certificates"),
            format!("put regdoc's CA in the hosts.toml of the directory the CRI plugin reads first for the registry, or {fix}"),
        ),
    }
}
