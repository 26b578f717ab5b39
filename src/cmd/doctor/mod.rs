//! `regdoc doctor docker` and `regdoc doctor containerd`: how this host's daemon is set up to
//! reach registries through regdoc, and what is wrong with it, as cause ids from the catalog
//! with one-line remedies.
//!
//! Everything is read under `--root` (default `/`) so tests run against fixture trees:
//! [`systemd`] drop-ins, [`daemon_json`] (dockerd), the running daemon in [`proc`], the
//! per-registry trust ([`certs`].d for dockerd, [`hosts_toml`] for containerd); then
//! [`settings`] decides which value the daemon uses, [`checks`] judges, `render` prints. The
//! two daemons differ only in what [`Daemon`] says.

pub mod certs;
pub mod checks;
pub mod daemon_json;
pub mod goproxy;
pub mod hosts_toml;
pub mod proc;
mod render;
pub mod settings;
pub mod systemd;
pub mod traffic;

use crate::config::{Config, ConfigError};
use checks::{Expect, Facts, Finding, Outcome};
use daemon_json::DaemonJson;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit status when a problem was found.
pub const EXIT_PROBLEM: u8 = 1;
/// Exit status for usage or configuration errors (as clap's).
pub const EXIT_CONFIG: u8 = 2;

/// `regdoc doctor ...`.
#[derive(Debug, clap::Subcommand)]
pub enum DoctorCommand {
    /// Check how this host's Docker daemon reaches registries through regdoc (proxy settings,
    /// NO_PROXY, restart after changes, certs.d); exit 0 healthy, 1 problem, 2 usage error.
    Docker(DoctorArgs),
    /// Check how this host's containerd (a Kubernetes node's CRI, ctr) reaches registries
    /// through regdoc (its systemd drop-in, NO_PROXY, restart after changes, the hosts
    /// directory and the CRI plugin's config_path); exit 0 healthy, 1 problem, 2 usage error.
    Containerd(DoctorArgs),
}

/// A daemon the doctor knows: where its settings and trust live, how it restarts.
#[derive(Debug)]
pub struct Daemon {
    /// The process name in `/proc/<pid>/comm`.
    pub program: &'static str,
    /// Its systemd unit.
    pub unit: &'static str,
    /// Its per-registry trust: certs.d (dockerd) or a hosts directory (containerd).
    pub trust: TrustStore,
}

/// Where a daemon takes a registry's extra CA from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustStore {
    /// `/etc/docker/certs.d/<host>/*.crt`.
    CertsD,
    /// `/etc/containerd/certs.d/<host>/hosts.toml`, its `ca`.
    HostsToml,
}

pub static DOCKERD: Daemon = Daemon {
    program: "dockerd",
    unit: "docker.service",
    trust: TrustStore::CertsD,
};

pub static CONTAINERD: Daemon = Daemon {
    program: "containerd",
    unit: "containerd.service",
    trust: TrustStore::HostsToml,
};

impl Daemon {
    /// The command that applies changed drop-ins.
    pub fn restart(&self) -> String {
        let service = self.unit.trim_end_matches(".service");
        format!("systemctl daemon-reload && systemctl restart {service}")
    }

    /// The directory of per-registry trust, as the host names it.
    pub fn trust_dir(&self) -> &'static str {
        match self.trust {
            TrustStore::CertsD => certs::DIR,
            TrustStore::HostsToml => hosts_toml::DIR,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Read the host's files under DIR instead of `/` (etc/, run/, usr/lib/, proc/).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// regdoc's configuration (its `listen`, `[[registry]]`, `[intercept]`). Default:
    /// $REGDOC_CONFIG, else the embedded defaults.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the checks as JSON.
    #[arg(long)]
    pub json: bool,
    /// Check the daemon with this pid (a second or rootless daemon, a test's daemon) instead
    /// of the one systemd started; it must be a running `dockerd` (or `containerd`) under
    /// `--root`'s `proc/`.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
}

/// Why the doctor could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("--root {0}: not a directory")]
    Root(PathBuf),
}

pub fn main(cmd: DoctorCommand) -> ExitCode {
    let (args, daemon) = match cmd {
        DoctorCommand::Docker(a) => (a, &DOCKERD),
        DoctorCommand::Containerd(a) => (a, &CONTAINERD),
    };
    match diagnose(&args, daemon) {
        Ok(findings) => {
            if args.json {
                println!("{}", render::json(&findings));
            } else {
                print!("{}", render::table(&findings));
            }
            ExitCode::from(exit_status(&findings))
        }
        Err(e) => {
            eprintln!("regdoc: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// 0 when healthy, [`EXIT_PROBLEM`] when a check found a problem.
pub fn exit_status(findings: &[Finding]) -> u8 {
    if findings.iter().any(|f| f.result == Outcome::Problem) {
        EXIT_PROBLEM
    } else {
        0
    }
}

/// Read, then judge `daemon`'s setup.
pub fn diagnose(args: &DoctorArgs, daemon: &'static Daemon) -> Result<Vec<Finding>, DoctorError> {
    // The same configuration `regdoc run` would use when started the same way.
    let path = args
        .config
        .clone()
        .or_else(|| std::env::var_os("REGDOC_CONFIG").map(PathBuf::from));
    let cfg = match &path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if !args.root.is_dir() {
        return Err(DoctorError::Root(args.root.clone()));
    }
    let facts = gather(&args.root, &cfg, args.pid, daemon);
    let registries = cfg.registry_hosts();
    Ok(checks::run(
        &facts,
        &Expect {
            listen: cfg.listen,
            registries: &registries,
        },
    ))
}

/// Everything the checks need from the host under `root`; `pid`: the daemon to check, when
/// not the one [`proc::find`] picks.
pub fn gather(root: &Path, cfg: &Config, pid: Option<u32>, daemon: &'static Daemon) -> Facts {
    let dropins = systemd::read(root, daemon.unit);
    // dockerd alone has daemon.json and proxy flags; containerd takes its proxy from its
    // environment only.
    let daemon_json = match daemon.trust {
        TrustStore::CertsD => daemon_json::read(root),
        TrustStore::HostsToml => DaemonJson::Absent,
    };
    let process = proc::find(root, daemon.program, pid);
    let pid_of = |pid| settings::Pid {
        program: daemon.program,
        pid,
    };
    let mut overrides = Vec::new();
    if let Some(d) = process
        .as_ref()
        .filter(|_| daemon.trust == TrustStore::CertsD)
    {
        overrides.push((settings::Origin::Flag(pid_of(d.pid)), &d.flags));
    }
    if let DaemonJson::Read { path, proxies } = &daemon_json {
        overrides.push((settings::Origin::DaemonJson(path.clone()), proxies));
    }
    let environ = process
        .as_ref()
        .and_then(|d| d.environ.as_ref().ok().map(|env| (pid_of(d.pid), env)));
    let settings = settings::effective(&overrides, environ, &dropins);
    // What a restart brings: the same flags and daemon.json, the drop-ins' environment.
    let next_start = environ.map(|_| settings::effective(&overrides, None, &dropins));
    let mut files: Vec<PathBuf> = dropins.files.clone();
    if let DaemonJson::Read { path, .. } | DaemonJson::Invalid { path, .. } = &daemon_json {
        files.push(path.clone());
    }
    if daemon.trust == TrustStore::HostsToml {
        // The CRI plugin's config_path is read at start too.
        files.push(root.join(hosts_toml::CONFIG));
    }
    let setting_files = files
        .into_iter()
        .filter_map(|p| {
            let m = std::fs::metadata(&p).and_then(|m| m.modified()).ok()?;
            Some((p, m))
        })
        .collect();
    let ca = cfg.intercept.ca_cert.as_ref().map(|ca| certs::load_ca(ca));
    let hosts = intercepted_hosts(root, cfg, daemon);
    let cri_config_path =
        (daemon.trust == TrustStore::HostsToml).then(|| hosts_toml::cri_config_path(root));
    // Where the CRI plugin itself looks: its config_path's directories, in order.
    let cri_trust = match (&cri_config_path, &ca) {
        (Some(Ok(Some(path))), Some(Ok(ca))) => {
            let dirs: Vec<&str> = hosts_toml::config_path_dirs(path).collect();
            hosts
                .iter()
                .map(|h| (h.clone(), hosts_toml::trust_in(root, &dirs, h, ca)))
                .collect()
        }
        _ => Vec::new(),
    };
    let certs = ca.map(|ca| {
        let ca = ca?;
        Ok(hosts
            .into_iter()
            .map(|h| {
                let t = match daemon.trust {
                    TrustStore::CertsD => certs::trust(root, &h, &ca),
                    TrustStore::HostsToml => hosts_toml::trust(root, &h, &ca),
                };
                (h, t)
            })
            .collect())
    });
    let traffic =
        cfg.log.file.as_ref().map(|log| {
            traffic::last_connection(log).map_err(|e| format!("{}: {e}", log.display()))
        });
    Facts {
        root: root.to_path_buf(),
        daemon,
        pid,
        traffic,
        dropins,
        daemon_json,
        process,
        cri_config_path,
        cri_trust,
        settings,
        next_start,
        setting_files,
        certs,
    }
}

/// Hosts that must trust regdoc's CA: the `[[registry]]` hosts regdoc intercepts, and the
/// per-registry directories already there for intercepted hosts (a wildcard like
/// `*.azurecr.io` cannot be listed, the directories say which registries this host uses).
fn intercepted_hosts(root: &Path, cfg: &Config, daemon: &Daemon) -> Vec<String> {
    let mut hosts: Vec<String> = cfg
        .registry_hosts()
        .into_iter()
        .filter(|h| crate::intercept::intercepts(cfg, h))
        .collect();
    for dir in certs::hosts(&root.join(daemon.trust_dir())) {
        let host = match dir.rsplit_once(':') {
            Some((h, "443")) => h.to_string(),
            Some(_) => continue,
            None => dir,
        };
        if crate::intercept::intercepts(cfg, &host) && !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    hosts
}

#[cfg(test)]
mod tests;
