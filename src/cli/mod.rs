//! The `regdoc` command line: `args` as clap reads them, and [`main`], which runs the subcommand
//! they name. `regdoc run` is `run` (with `signals`, `notify` and `announce`), `check-config` is
//! `check_config` (with `print_config`); the other subcommands live in [`crate::cmd`].

mod announce;
pub mod args;
mod check_config;
mod notify;
mod print_config;
mod run;
mod signals;

use args::{CaCommand, Cli, Command};
use clap::Parser;
use std::process::ExitCode;

/// Exit status for a configuration the operator must fix.
pub const EXIT_CONFIG: u8 = 2;
/// Exit status for a failure at run time (cannot listen, cannot open the log).
pub const EXIT_RUNTIME: u8 = 1;

/// The target of the command's own log events: the binary's crate name, which they had when
/// `main.rs` logged them and which log readers and `REGDOC_LOG` filters may name.
const TARGET: &str = "regdoc";

/// Parse the command line and run what it names (clap itself exits on `--help` and on errors).
pub async fn main() -> ExitCode {
    dispatch(Cli::parse().command).await
}

/// Run one subcommand; its exit status.
pub async fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::Run(args) => run::run(args).await,
        Command::CheckConfig { file } => check_config::check_config(&file),
        Command::Explain { cause_id, list } => crate::cmd::explain::main(cause_id.as_deref(), list),
        Command::Report { logfile, json } => crate::cmd::report::main(logfile.as_deref(), json),
        Command::Ca(CaCommand::Init { dir, force, permit }) => {
            crate::cmd::ca::init(dir.as_deref(), force, &permit)
        }
        Command::Doctor(cmd) => crate::cmd::doctor::main(cmd),
        Command::Check(args) => crate::cmd::check::run(args).await,
    }
}
