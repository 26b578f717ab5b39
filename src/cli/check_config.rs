//! `regdoc check-config FILE`: refuse what `regdoc run` would refuse, else print the effective
//! settings.

use super::print_config::summary;
use super::EXIT_CONFIG;
use crate::config::Config;
use crate::proxy::{SetupError, Shared};
use std::path::Path;
use std::process::ExitCode;

/// Exit 0 and a summary when valid, 2 and the reason when not.
pub fn check_config(file: &Path) -> ExitCode {
    match Config::load(file) {
        Ok(cfg) => {
            if let Err(e) = preflight(&cfg) {
                eprintln!("regdoc: {}: {e}", file.display());
                return ExitCode::from(EXIT_CONFIG);
            }
            print!("{}", summary(&cfg));
            // The CA's name constraints against the hosts to intercept: a mismatch would only
            // show at the first pull, as refused handshakes.
            if let Some(ca) = crate::cmd::ca::check(&cfg) {
                ca.lines.iter().for_each(|l| println!("{l}"));
                if !ca.problems.is_empty() {
                    ca.problems.iter().for_each(|p| eprintln!("regdoc: {p}"));
                    return ExitCode::from(EXIT_CONFIG);
                }
            }
            println!("{}: ok", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("regdoc: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Everything `run` builds from the configuration before it listens (resolver, upstream proxy,
/// interception CA, probe roots), built and dropped, so that `check-config` refuses what `run`
/// would: systemd never sees a ready proxy that cannot do what it was told.
fn preflight(cfg: &Config) -> Result<(), SetupError> {
    Shared::new(cfg.clone()).map(drop)
}
