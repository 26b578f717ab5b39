//! `regdoc doctor docker`: how this host's Docker daemon is set up to reach registries through
//! regdoc, and what is wrong with it, as cause ids from the catalog with one-line remedies.
//!
//! Everything is read under `--root` (default `/`) so tests run against fixture trees:
//! [`systemd`] drop-ins, [`daemon_json`], the running daemon in [`proc`], [`certs`].d; then
//! [`settings`] decides which value the daemon uses, [`checks`] judges, `render` prints.

pub mod certs;
pub mod checks;
pub mod daemon_json;
pub mod goproxy;
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
    Docker(DockerArgs),
}

#[derive(Debug, clap::Args)]
pub struct DockerArgs {
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
    /// Check the dockerd with this pid (a second or rootless daemon, a test's daemon) instead
    /// of the one systemd started; it must be a running `dockerd` under `--root`'s `proc/`.
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
    let DoctorCommand::Docker(args) = cmd;
    match docker(&args) {
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

/// Read, then judge.
pub fn docker(args: &DockerArgs) -> Result<Vec<Finding>, DoctorError> {
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
    let facts = gather(&args.root, &cfg, args.pid);
    let registries = cfg.registry_hosts();
    Ok(checks::run(
        &facts,
        &Expect {
            listen: cfg.listen,
            registries: &registries,
        },
    ))
}

/// Everything the checks need from the host under `root`; `pid`: the dockerd to check, when
/// not the one [`proc::find`] picks.
pub fn gather(root: &Path, cfg: &Config, pid: Option<u32>) -> Facts {
    let dropins = systemd::read(root);
    let daemon_json = daemon_json::read(root);
    let dockerd = proc::find(root, pid);
    let mut overrides = Vec::new();
    if let Some(d) = &dockerd {
        overrides.push((settings::Origin::Flag(d.pid), &d.flags));
    }
    if let DaemonJson::Read { path, proxies } = &daemon_json {
        overrides.push((settings::Origin::DaemonJson(path.clone()), proxies));
    }
    let process = dockerd
        .as_ref()
        .and_then(|d| d.environ.as_ref().ok().map(|env| (d.pid, env)));
    let settings = settings::effective(&overrides, process, &dropins);
    // What a restart brings: the same flags and daemon.json, the drop-ins' environment.
    let next_start = process.map(|_| settings::effective(&overrides, None, &dropins));
    let mut files: Vec<PathBuf> = dropins.files.clone();
    if let DaemonJson::Read { path, .. } | DaemonJson::Invalid { path, .. } = &daemon_json {
        files.push(path.clone());
    }
    let setting_files = files
        .into_iter()
        .filter_map(|p| {
            let m = std::fs::metadata(&p).and_then(|m| m.modified()).ok()?;
            Some((p, m))
        })
        .collect();
    let certs = cfg.intercept.ca_cert.as_ref().map(|ca| {
        let ca = certs::load_ca(ca)?;
        Ok(intercepted_hosts(root, cfg)
            .into_iter()
            .map(|h| {
                let t = certs::trust(root, &h, &ca);
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
        pid,
        traffic,
        dropins,
        daemon_json,
        dockerd,
        settings,
        next_start,
        setting_files,
        certs,
    }
}

/// Hosts that must trust regdoc's CA: the `[[registry]]` hosts regdoc intercepts, and the
/// certs.d directories already there for intercepted hosts (a wildcard like `*.azurecr.io`
/// cannot be listed, the directories say which registries this host uses).
fn intercepted_hosts(root: &Path, cfg: &Config) -> Vec<String> {
    let mut hosts: Vec<String> = cfg
        .registry_hosts()
        .into_iter()
        .filter(|h| crate::intercept::intercepts(cfg, h))
        .collect();
    for dir in certs::hosts(root) {
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
