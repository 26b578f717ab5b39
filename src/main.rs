//! The `regdoc` command: parse arguments, load the configuration, call the library.

use clap::{Args, Parser, Subcommand};
use regdoc::config::{Config, ConfigError, ConnectTo, LogFormat};
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

#[derive(Debug, Parser)]
#[command(
    name = "regdoc",
    version,
    about = "Registry doctor: a forwarding proxy for container registry clients that explains \
             every failed pull, push and login",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    Doctor(regdoc::cmd::doctor::DoctorCommand),
}

#[derive(Debug, Subcommand)]
enum CaCommand {
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
struct RunArgs {
    /// Configuration file (TOML). Default: $REGDOC_CONFIG, else the embedded defaults
    /// (listen on 127.0.0.1:3128, JSON lines to standard output).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on, overriding `listen`.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Send connections for HOST:PORT to ADDR:PORT (TLS still names HOST); repeatable, added
    /// to the file's `dns.connect_to` rules.
    #[arg(long = "connect-to", value_name = "HOST:PORT=ADDR:PORT")]
    connect_to: Vec<String>,
    /// Append the log to this file instead of standard output (reopened on SIGHUP).
    #[arg(long, value_name = "PATH")]
    log_file: Option<PathBuf>,
    /// Log format: `json` lines for machines, `pretty` for a terminal.
    #[arg(long, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
}

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
    shared.count_log_losses(log);
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
            print!("{}", summary(&cfg));
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

/// The effective settings, one per line, with secrets reduced to whether they are set.
fn summary(cfg: &Config) -> String {
    use std::fmt::Write as _;
    let list = |v: &[String]| {
        if v.is_empty() {
            "(none)".to_string()
        } else {
            v.join(", ")
        }
    };
    let t = &cfg.timeouts;
    let mut s = String::new();
    let _ = writeln!(s, "listen            {}", cfg.listen);
    let clients: Vec<String> = cfg.allowed_clients.iter().map(|c| c.to_string()).collect();
    let _ = writeln!(s, "allowed_clients   {}", list(&clients));
    if let regdoc::policy::relay::Exposure::OpenRelay(_) = cfg.exposure() {
        let _ = writeln!(
            s,
            "exposure          OPEN PROXY: anyone reaching {} may use it (i_know_this_is_an_open_proxy = true)",
            cfg.listen
        );
    }
    let ports: Vec<String> = cfg.allowed_ports.iter().map(|p| p.to_string()).collect();
    let _ = writeln!(s, "allowed_ports     {}", list(&ports));
    let rules = |v: &[regdoc::policy::destination::DestRule]| {
        list(&v.iter().map(|r| r.to_string()).collect::<Vec<_>>())
    };
    let _ = writeln!(
        s,
        "destinations      denied {} and regdoc's own listen address; allowed {}",
        rules(&cfg.denied_destinations),
        rules(&cfg.allowed_destinations)
    );
    let _ = writeln!(
        s,
        "max_connections   {} ({} per client address)",
        cfg.max_connections, cfg.max_connections_per_client
    );
    let _ = writeln!(s, "max_head_bytes    {}", cfg.max_head_bytes);
    let _ = writeln!(s, "buffer_bytes      {}", cfg.buffer_bytes);
    let _ = writeln!(
        s,
        "zero_copy         {}",
        if cfg.zero_copy && cfg!(target_os = "linux") {
            "on (splice after 1 MiB per direction)"
        } else if cfg.zero_copy {
            "on, but this system has no splice: copying"
        } else {
            "off (copy through regdoc)"
        }
    );
    let _ = writeln!(
        s,
        "timeouts          request_head={:?} dns={:?} connect={:?} upstream_proxy={:?} tls={:?} \
         response_headers={:?} idle={:?} keep_alive={:?} stall={:?} shutdown_grace={:?}",
        t.request_head,
        t.dns,
        t.connect,
        t.upstream_proxy,
        t.tls,
        t.response_headers,
        t.idle,
        t.keep_alive,
        t.stall,
        t.shutdown_grace
    );
    let ns = if cfg.dns.nameservers.is_empty() {
        "system (/etc/resolv.conf)".to_string()
    } else {
        cfg.dns.nameservers.join(", ")
    };
    let _ = writeln!(s, "dns.nameservers   {ns}");
    let overrides: Vec<String> = cfg.dns.overrides.keys().cloned().collect();
    let _ = writeln!(s, "dns.overrides     {}", list(&overrides));
    let _ = writeln!(s, "dns.connect_to    {}", list(&cfg.dns.connect_to));
    let upstream = match cfg.upstream.proxy.as_deref() {
        None => "none (direct)".to_string(),
        Some(u) => match regdoc::net::upstream::UpstreamProxy::parse(u) {
            Ok(p) => format!(
                "{}{}",
                p.display(),
                if p.authorization().is_some() {
                    " (with credentials)"
                } else {
                    ""
                }
            ),
            Err(e) => format!("invalid: {e}"),
        },
    };
    let _ = writeln!(s, "upstream.proxy    {upstream}");
    let _ = writeln!(s, "upstream.no_proxy {}", list(&cfg.upstream.no_proxy));
    let auth = match &cfg.auth {
        Some(a) => format!("basic, user {:?} (password set)", a.username),
        None => "none".to_string(),
    };
    let _ = writeln!(s, "auth              {auth}");
    let _ = writeln!(
        s,
        "log               format={} file={} connections={} requests={} aggregate_interval={:?} \
         max_records_per_second={}",
        match cfg.log.format {
            LogFormat::Json => "json",
            LogFormat::Pretty => "pretty",
        },
        cfg.log
            .file
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "stdout".into()),
        cfg.log.connections,
        cfg.log.requests,
        cfg.log.aggregate_interval,
        cfg.log.max_records_per_second
    );
    let intercept = match (&cfg.intercept.ca_cert, &cfg.intercept.ca_key) {
        (Some(c), Some(_)) => format!(
            "on, CA {} hosts [{}] passthrough [{}]",
            c.display(),
            cfg.intercept.hosts.join(", "),
            cfg.intercept.passthrough.join(", ")
        ),
        _ => "off (passthrough only)".to_string(),
    };
    let _ = writeln!(s, "intercept         {intercept}");
    let d = &cfg.diagnosis;
    let _ = writeln!(
        s,
        "diagnosis         context_window={:?} token_lifetime={:?} max_clock_skew={:?}",
        d.context_window, d.token_lifetime, d.max_clock_skew
    );
    for r in &cfg.registries {
        let cidrs: Vec<String> = r.expected_cidrs.iter().map(|c| c.to_string()).collect();
        let _ = writeln!(
            s,
            "registry          {} private_endpoint={} expected_cidrs=[{}] regions=[{}]",
            r.host,
            r.private_endpoint,
            cidrs.join(", "),
            r.regions.join(", ")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn summary_never_shows_secrets() {
        let text = "[upstream]\nproxy = \"http://alice:s3cret-pw@proxy.corp.example:8080\"\n\
                    [auth]\nusername = \"docker\"\npassword = \"hunter2-pw\"\n";
        let cfg = Config::parse(text, std::path::Path::new("t.toml")).unwrap();
        let s = summary(&cfg);
        assert!(
            s.contains("proxy.corp.example:8080 (with credentials)"),
            "{s}"
        );
        assert!(s.contains("password set"), "{s}");
        assert!(
            !s.contains("s3cret") && !s.contains("hunter2") && !s.contains("alice"),
            "{s}"
        );
    }
}
