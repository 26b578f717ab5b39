//! The command line as clap reads it: one [`Command`] variant per subcommand.

use crate::config::LogFormat;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

// No doc comments on these types: clap would turn them into help text.

#[derive(Debug, Parser)]
#[command(
    name = "regdoc",
    version,
    about = "Registry doctor: a forwarding proxy for container registry clients that explains \
             every failed pull, push and login",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (point the Docker daemon's HTTPS_PROXY at it).
    Run(RunArgs),
    /// Validate a configuration file and print the effective settings.
    CheckConfig {
        /// The configuration file to check.
        file: PathBuf,
    },
    /// Explain a cause: what it means, how to confirm it, how to fix it.
    Explain {
        /// Cause id as printed in `cause` fields (e.g. `registry_name`).
        cause_id: Option<String>,
        /// List every cause id with its title.
        #[arg(long, conflicts_with = "cause_id")]
        list: bool,
    },
    /// Manage the local CA used for TLS interception.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Summarise a log: failures by cause, with endpoints, registries and the remedy.
    Report {
        /// Log file of JSON lines; `-` or absent reads standard input.
        logfile: Option<PathBuf>,
        /// Print the summary as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check this host's setup for regdoc: `regdoc doctor docker`.
    #[command(subcommand)]
    Doctor(crate::cmd::doctor::DoctorCommand),
    /// Check now whether this host can reach a registry the way `run` would, step by step;
    /// exit 0 healthy, 1 problem, 2 usage error. Credentials only from standard input.
    Check(crate::cmd::check::CheckArgs),
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a CA certificate and key for interception (the key file is mode 0600).
    Init {
        /// Directory for `ca.crt` and `ca.key` (default: `certs`).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Replace an existing CA (clients must then trust the new one).
        #[arg(long)]
        force: bool,
        /// A name the CA may vouch for (X.509 name constraint), repeatable: `*.example.com`
        /// for the names below, `example.com` for it and below, an IP address. Default:
        /// `*.azurecr.io`.
        #[arg(long = "permit", value_name = "NAME")]
        permit: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration file (TOML). Default: $REGDOC_CONFIG, else the embedded defaults
    /// (listen on 127.0.0.1:3128, JSON lines to standard output).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on, overriding `listen`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Send connections for HOST:PORT to ADDR:PORT (TLS still names HOST); repeatable, added
    /// to the file's `dns.connect_to` rules.
    #[arg(long = "connect-to", value_name = "HOST:PORT=ADDR:PORT")]
    pub connect_to: Vec<String>,
    /// Append the log to this file instead of standard output (reopened on SIGHUP).
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
    /// Log format: `json` lines for machines, `pretty` for a terminal.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}
