//! The `regdoc` command: parse arguments, load the configuration, call the library.

use clap::Parser;
use regdoc::cli::args::{CaCommand, Cli, Command, RunArgs};
use regdoc::config::{Config, ConfigError, ConnectTo};
use regdoc::logging::{self, LogHandle};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// Environment variable naming the configuration file when `--config` is not given.
const CONFIG_ENV: &str = "REGDOC_CONFIG";

/// Exit status for a configuration the operator must fix.
const EXIT_CONFIG: u8 = 2;
/// Exit status for a failure at run time (cannot listen, cannot open the log).
const EXIT_RUNTIME: u8 = 1;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(args).await,
        Command::CheckConfig { file } => check_config(file),
        Command::Explain { cause_id, list } => {
            regdoc::cmd::explain::main(cause_id.as_deref(), list)
        }
        Command::Report { logfile, json } => regdoc::cmd::report::main(logfile.as_deref(), json),
        Command::Ca(CaCommand::Init { dir, force, permit }) => {
            regdoc::cmd::ca::init(dir.as_deref(), force, &permit)
        }
        Command::Doctor(cmd) => regdoc::cmd::doctor::main(cmd),
    }
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

/// Everything `run` builds from the configuration before it listens (resolver, upstream proxy,
/// interception CA, probe roots), built and dropped by `check-config`, so that it refuses what
/// `run` would: systemd never sees a ready proxy that cannot do what it was told.
fn preflight(cfg: &Config) -> Result<(), regdoc::proxy::SetupError> {
    regdoc::proxy::Shared::new(cfg.clone()).map(drop)
}

/// A configuration that serves everyone, accepted because the operator said so, is said again
/// at every start.
fn warn_if_open(cfg: &Config) {
    if let regdoc::policy::relay::Exposure::OpenRelay(why) = cfg.exposure() {
        tracing::warn!(
            listen = %cfg.listen,
            "open proxy: {why} (accepted: i_know_this_is_an_open_proxy = true)"
        );
    }
}

async fn run(args: RunArgs) -> ExitCode {
    let path = args
        .config
        .clone()
        .or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from));
    let cfg = match effective_config(&args, path.as_ref()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("regdoc: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let log = match logging::init(&cfg.log) {
        Ok(h) => h,
        Err(e @ logging::LogError::Filter { .. }) => {
            eprintln!("regdoc: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
        Err(e) => {
            eprintln!("regdoc: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let code = serve(cfg, config_source(path.as_ref()), &log).await;
    if let Err(e) = log.flush() {
        eprintln!("regdoc: {e}");
    }
    code
}

/// Bind, announce, serve until SIGTERM/SIGINT, drain.
async fn serve(cfg: Config, source: String, log: &LogHandle) -> ExitCode {
    // Everything the proxy needs, built once before it listens (see `preflight`).
    let shared = match regdoc::proxy::Shared::new(cfg.clone()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("regdoc: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // Signal handlers first: a SIGTERM right after readiness must already mean "drain".
    let (term, int, hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            tracing::error!("cannot install signal handlers: {e}");
            eprintln!("regdoc: cannot install signal handlers: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let listener = match tokio::net::TcpListener::bind(cfg.listen).await {
        Ok(l) => l,
        Err(e) => {
            let hint = match e.kind() {
                std::io::ErrorKind::AddrInUse => {
                    " (another process listens there; pick another --listen)"
                }
                std::io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges)",
                std::io::ErrorKind::AddrNotAvailable => " (no local interface has that address)",
                _ => "",
            };
            tracing::error!(listen = %cfg.listen, "cannot listen: {e}");
            eprintln!("regdoc: cannot listen on {}: {e}{hint}", cfg.listen);
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    tokio::spawn(reopen_on_hangup(hup, log.clone()));
    let bound = listener.local_addr().unwrap_or(cfg.listen);
    announce(&cfg, bound, &source);
    warn_if_open(&cfg);
    notify(sd_notify::NotifyState::Ready);

    let result = regdoc::server::serve(listener, shared, shutdown(term, int, log.clone())).await;
    notify(sd_notify::NotifyState::Stopping);
    match result {
        Ok(()) => {
            tracing::info!("regdoc stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("regdoc stopped on an error: {e}");
            eprintln!("regdoc: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// Tell systemd (`Type=notify`), only when started by it. Errors are ignored: readiness is a
/// courtesy, the proxy works without it.
fn notify(state: sd_notify::NotifyState) {
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        let _ = sd_notify::notify(false, &[state]);
    }
}

/// Resolves on the first SIGTERM or SIGINT. A second one ends the process at once, for an
/// operator who does not want to wait for the drain.
async fn shutdown(mut term: Signal, mut int: Signal, log: LogHandle) {
    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(
        signal = which,
        "shutting down: no new connections, draining open ones (send it again to stop at once)"
    );
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::warn!("second signal: exiting without waiting for open connections");
        let _ = log.flush();
        std::process::exit(i32::from(EXIT_RUNTIME));
    });
}

async fn reopen_on_hangup(mut hup: Signal, log: LogHandle) {
    while hup.recv().await.is_some() {
        log.reopen();
        tracing::info!("SIGHUP: log file reopened");
    }
}

/// The one start-up line: where we listen, what configured us, what we can and cannot see.
fn announce(cfg: &Config, bound: SocketAddr, source: &str) {
    let upstream = cfg
        .upstream
        .proxy
        .as_deref()
        .and_then(|u| regdoc::net::upstream::UpstreamProxy::parse(u).ok())
        .map(|p| p.display())
        .unwrap_or_else(|| "none (direct)".into());
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        listen = %bound,
        config = source,
        log_file = %cfg.log.file.as_deref().map(|p| p.display().to_string()).unwrap_or_else(|| "-".into()),
        upstream_proxy = %upstream,
        connect_to_rules = cfg.dns.connect_to.len(),
        registries = cfg.registries.len(),
        visibility = visibility(cfg),
        "regdoc listening"
    );
}

/// What the proxy can observe with this configuration, in one sentence.
fn visibility(cfg: &Config) -> &'static str {
    if cfg.intercept.ca_cert.is_some() {
        "TLS interception on for the configured hosts: HTTP status, auth challenges, tokens and \
         registry errors are seen there; other hosts are passthrough (DNS, TCP, upstream proxy, \
         TLS handshake only)"
    } else {
        "passthrough only: DNS, TCP connect, upstream proxy and TLS handshake are seen; HTTP \
         status inside TLS (401/403/404/429) is not (set [intercept] ca_cert/ca_key, see \
         `regdoc ca init`)"
    }
}

/// `regdoc check-config FILE`: exit 0 and a summary when valid, 2 and the reason when not.
fn check_config(file: PathBuf) -> ExitCode {
    match Config::load(&file) {
        Ok(cfg) => {
            if let Err(e) = preflight(&cfg) {
                eprintln!("regdoc: {}: {e}", file.display());
                return ExitCode::from(EXIT_CONFIG);
            }
            print!("{}", regdoc::cli::print_config::summary(&cfg));
            // The CA's name constraints against the hosts to intercept: a mismatch would only
            // show at the first pull, as refused handshakes.
            if let Some(ca) = regdoc::cmd::ca::check(&cfg) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use regdoc::config::LogFormat;

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
}
