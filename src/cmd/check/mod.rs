//! `regdoc check REGISTRY`: ask before anything fails. Goes to a registry the way `run` would
//! from this host (same resolution, `connect_to`, upstream proxy and `no_proxy`, trust roots,
//! `[[registry]]` expectations) and judges every step with `run`'s own rules, so a check and a
//! live failure name the same cause for the same fault.
//!
//! [`path`] reaches a host phase by phase ([`tls`] its handshake), [`http`] makes one exchange over it, [`steps`] puts
//! the steps in order and says which were skipped and why. Pure parts: [`judge`] (transport
//! errors into `run`'s failure kinds, facts into lines), [`auth`] (Docker's token requests),
//! [`manifest`] (which blob to fetch), [`render`] (table, JSON, secrets masked). [`args`] reads
//! the command line and the credentials from standard input.

pub mod args;
pub mod auth;
pub mod http;
pub mod judge;
pub mod manifest;
pub mod path;
pub mod render;
pub mod step;
pub mod steps;
pub mod tls;

pub use args::CheckArgs;
pub use step::{Outcome, Step};
pub use steps::Plan;

use crate::config::{Config, ConfigError};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status when a problem was found.
pub const EXIT_PROBLEM: u8 = 1;
/// Exit status for usage or configuration errors (as clap's).
pub const EXIT_CONFIG: u8 = 2;

/// Why the check could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Args(#[from] args::ArgsError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("configuration: {key}: {reason}")]
    Invalid { key: String, reason: String },
    #[error(transparent)]
    Setup(#[from] path::SetupError),
}

/// What a check found, with the secrets to keep out of any output.
pub struct Report {
    pub target: String,
    pub steps: Vec<Step>,
    secrets: Vec<String>,
}

impl Report {
    pub fn healthy(&self) -> bool {
        !self.steps.iter().any(Step::is_problem)
    }

    pub fn table(&self) -> String {
        render::scrub(&render::table(&self.target, &self.steps), &self.secrets)
    }

    pub fn json(&self) -> String {
        render::scrub(&render::json(&self.target, &self.steps), &self.secrets)
    }
}

pub async fn run(args: CheckArgs) -> ExitCode {
    let prepared = prepare(&args, std::io::stdin().lock());
    let (cfg, plan) = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprintln!("regdoc: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match check(cfg, &plan, args.timeout).await {
        Ok(report) => {
            if args.json {
                println!("{}", report.json());
            } else {
                print!("{}", report.table());
            }
            ExitCode::from(if report.healthy() { 0 } else { EXIT_PROBLEM })
        }
        Err(e) => {
            eprintln!("regdoc: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// The configuration and the plan from the arguments; credentials from `stdin`.
pub fn prepare(args: &CheckArgs, stdin: impl std::io::Read) -> Result<(Config, Plan), CheckError> {
    let (host, port) = args::parse_registry(&args.registry)?;
    let image = args.image.as_deref().map(args::parse_image).transpose()?;
    // The same configuration `regdoc run` would use when started the same way.
    let path = args
        .config
        .clone()
        .or_else(|| std::env::var_os("REGDOC_CONFIG").map(PathBuf::from));
    let cfg = match &path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let credentials = args::credentials(args, stdin)?;
    Ok((
        cfg,
        Plan {
            host,
            port,
            image,
            credentials,
        },
    ))
}

/// Run every step of `plan` with `cfg`.
pub async fn check(
    cfg: Config,
    plan: &Plan,
    timeout: std::time::Duration,
) -> Result<Report, CheckError> {
    cfg.validate()
        .map_err(|(key, reason)| CheckError::Invalid { key, reason })?;
    let net = path::Net::new(cfg, timeout)?;
    let out = steps::run(&net, plan).await;
    Ok(Report {
        target: crate::config::join_host_port(&plan.host, plan.port),
        steps: out.steps,
        secrets: out.secrets,
    })
}
