//! `regdoc run`: the configuration from the file and the flags, then the proxy until a signal
//! stops it.

use super::args::RunArgs;
use super::signals::{self, Signals};
use super::{announce, notify, EXIT_CONFIG, EXIT_RUNTIME, TARGET};
use crate::config::{Config, ConfigError, ConnectTo};
use crate::logging::{self, LogError, LogHandle};
use crate::proxy::{SetupError, Shared};
use crate::server::ServeError;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio::net::TcpListener;

/// Environment variable naming the configuration file when `--config` is not given.
const CONFIG_ENV: &str = "REGDOC_CONFIG";

/// Why `regdoc run` did not start, or stopped on an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("cannot install signal handlers: {0}")]
    Signals(io::Error),
    #[error("cannot listen on {addr}: {source}{}", bind_hint(.source))]
    Listen { addr: SocketAddr, source: io::Error },
    #[error(transparent)]
    Serve(#[from] ServeError),
}

impl RunError {
    /// [`EXIT_CONFIG`] for what the operator must fix in the configuration (or `REGDOC_LOG`),
    /// [`EXIT_RUNTIME`] for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Config(_) | RunError::Setup(_) | RunError::Log(LogError::Filter { .. }) => {
                EXIT_CONFIG
            }
            RunError::Log(_)
            | RunError::Signals(_)
            | RunError::Listen { .. }
            | RunError::Serve(_) => EXIT_RUNTIME,
        }
    }

    /// Errors met once logging is up are logged too, in the log's own words (no hints: those
    /// are for the person at the terminal).
    fn log(&self) {
        match self {
            RunError::Config(_) | RunError::Log(_) => {}
            RunError::Setup(e) => tracing::error!(target: TARGET, "{e}"),
            RunError::Signals(e) => {
                tracing::error!(target: TARGET, "cannot install signal handlers: {e}")
            }
            RunError::Listen { addr, source } => {
                tracing::error!(target: TARGET, listen = %addr, "cannot listen: {source}")
            }
            RunError::Serve(e) => {
                tracing::error!(target: TARGET, "regdoc stopped on an error: {e}")
            }
        }
    }
}

/// What an operator can do about a failed bind, where the error alone does not say.
fn bind_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::AddrInUse => " (another process listens there; pick another --listen)",
        io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges)",
        io::ErrorKind::AddrNotAvailable => " (no local interface has that address)",
        _ => "",
    }
}

/// `regdoc run`: its exit status.
pub async fn run(args: RunArgs) -> ExitCode {
    let path = args
        .config
        .clone()
        .or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from));
    let cfg = match effective_config(&args, path.as_ref()) {
        Ok(cfg) => cfg,
        Err(e) => return fail(&e.into()),
    };
    let source = config_source(path.as_ref());
    let log = match logging::init(&cfg.log) {
        Ok(h) => h,
        Err(e) => return fail(&e.into()),
    };
    // SIGHUP reads the same file with the same flags over it.
    let reread = move || effective_config(&args, path.as_ref());
    let code = match serve(cfg, source, reread, &log).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    };
    if let Err(e) = log.flush() {
        eprintln!("regdoc: {e}");
    }
    code
}

/// Say why on standard error (and in the log, once there is one).
fn fail(e: &RunError) -> ExitCode {
    e.log();
    eprintln!("regdoc: {e}");
    ExitCode::from(e.exit_code())
}

/// Where the configuration came from, for the start-up line.
fn config_source(path: Option<&PathBuf>) -> String {
    match path {
        Some(p) => p.display().to_string(),
        None => "embedded defaults".to_string(),
    }
}

/// The configuration of `regdoc run`: file (or defaults), then flags.
fn effective_config(args: &RunArgs, path: Option<&PathBuf>) -> Result<Config, ConfigError> {
    let mut cfg = match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        cfg.listen = listen;
    }
    for rule in &args.connect_to {
        ConnectTo::parse(rule).map_err(|reason| ConfigError::Override {
            what: "--connect-to".into(),
            reason,
        })?;
        cfg.dns.connect_to.push(rule.clone());
    }
    if let Some(file) = &args.log_file {
        cfg.log.file = Some(file.clone());
    }
    if let Some(format) = args.log_format {
        cfg.log.format = format;
    }
    // The file was judged with its own `listen`; a flag must not turn it into an open relay.
    cfg.check_exposure()
        .map_err(|(_, reason)| ConfigError::Override {
            what: "--listen".into(),
            reason,
        })?;
    Ok(cfg)
}

/// Bind, announce, serve until SIGTERM/SIGINT (reloading on SIGHUP), drain.
async fn serve(
    cfg: Config,
    source: String,
    reread: impl Fn() -> Result<Config, ConfigError> + Send + 'static,
    log: &LogHandle,
) -> Result<(), RunError> {
    // Built once before listening, as `check-config` builds it, so that a proxy systemd is told
    // is ready can do what it was configured to do.
    let shared = Shared::new(cfg.clone())?;
    shared.count_log_losses(log);
    let signals = Signals::install().map_err(RunError::Signals)?;
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let (reloads, reloaded) = tokio::sync::mpsc::channel(1);
    tokio::spawn(signals::on_hangup(
        signals.hup,
        log.clone(),
        reread,
        reloads,
    ));
    let bound = listener.local_addr().unwrap_or(cfg.listen);
    announce::announce(&cfg, bound, &source);
    announce::warn_if_open(&cfg);
    notify::ready();

    let shutdown = signals::shutdown(signals.term, signals.int, log.clone());
    let result = crate::server::serve_reloadable(listener, shared, shutdown, reloaded).await;
    notify::stopping();
    result?;
    tracing::info!(target: TARGET, "regdoc stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::{Cli, Command};
    use crate::config::LogFormat;
    use clap::Parser;

    fn args(list: &[&str]) -> RunArgs {
        let mut argv = vec!["regdoc", "run"];
        argv.extend_from_slice(list);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Run(a) => a,
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn flags_override_the_file_and_connect_to_rules_are_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("regdoc.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:4000\"\n[dns]\nconnect_to = [\"a.example:443=127.0.0.1:1\"]\n\
             [log]\nformat = \"pretty\"\n",
        )
        .unwrap();
        let a = args(&[
            "--listen",
            "127.0.0.1:5000",
            "--connect-to",
            "b.example:443=127.0.0.1:2",
            "--log-file",
            "/tmp/x.log",
            "--log-format",
            "json",
        ]);
        let cfg = effective_config(&a, Some(&path)).unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(
            cfg.dns.connect_to,
            vec!["a.example:443=127.0.0.1:1", "b.example:443=127.0.0.1:2"]
        );
        assert_eq!(cfg.log.file, Some(PathBuf::from("/tmp/x.log")));
        assert_eq!(cfg.log.format, LogFormat::Json);

        // Without flags the file's values stand.
        let cfg = effective_config(&args(&[]), Some(&path)).unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:4000".parse().unwrap());
        assert_eq!(cfg.log.format, LogFormat::Pretty);

        // Without a file: the embedded defaults.
        let cfg = effective_config(&args(&[]), None).unwrap();
        assert_eq!(cfg.listen, Config::default().listen);
    }

    #[test]
    fn exit_codes_say_whose_fault() {
        let io = || io::Error::from(io::ErrorKind::AddrInUse);
        let listen = RunError::Listen {
            addr: "127.0.0.1:1".parse().unwrap(),
            source: io(),
        };
        assert_eq!(listen.exit_code(), EXIT_RUNTIME);
        assert!(
            listen
                .to_string()
                .ends_with("(another process listens there; pick another --listen)"),
            "{listen}"
        );
        assert_eq!(RunError::Signals(io()).exit_code(), EXIT_RUNTIME);
        let filter = LogError::Filter {
            spec: "x".into(),
            reason: "y".into(),
        };
        assert_eq!(RunError::from(filter).exit_code(), EXIT_CONFIG);
    }
}
