//! Configuration: a TOML file over embedded defaults, then command-line overrides.
//!
//! A broken file is refused with its path, the line and the reason, so an operator never starts a
//! proxy that silently ignores a setting.

pub mod bounds;
mod files;

use crate::policy::destination::{self, DestRule};
use crate::policy::relay::{self, Exposure};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Invalid {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{what}: {reason}")]
    Override { what: String, reason: String },
}

/// The whole configuration. Every field has a default, so an empty file is valid.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the proxy listens on. Loopback by default: regdoc is never an open relay.
    pub listen: SocketAddr,
    /// Clients allowed to use the proxy.
    pub allowed_clients: Vec<IpNet>,
    /// Serve everyone on a network-facing socket without `[auth]`; refused at load otherwise.
    pub i_know_this_is_an_open_proxy: bool,
    /// Destinations refused (networks and host patterns), unless `allowed_destinations` has a
    /// more specific rule for them. See [`crate::policy::destination`].
    pub denied_destinations: Vec<DestRule>,
    /// Exceptions to `denied_destinations`.
    pub allowed_destinations: Vec<DestRule>,
    /// Destination ports a CONNECT may reach.
    pub allowed_ports: Vec<u16>,
    /// At most this many client connections at once. When all are taken, a kept-alive
    /// connection between requests is closed for a new client; while none is, further ones
    /// wait in the accept queue.
    pub max_connections: usize,
    /// At most this many of them from one client address; further ones are refused (429).
    pub max_connections_per_client: usize,
    /// Largest request head accepted (431 beyond).
    pub max_head_bytes: usize,
    /// Per-direction copy buffer of a tunnel.
    pub buffer_bytes: usize,
    /// Bulk tunnel transfers move through the kernel (`splice(2)`, Linux) instead of a buffer.
    pub zero_copy: bool,
    pub timeouts: Timeouts,
    pub dns: DnsConfig,
    pub upstream: UpstreamConfig,
    pub auth: Option<ProxyAuth>,
    pub log: LogConfig,
    pub intercept: InterceptConfig,
    pub diagnosis: DiagnosisConfig,
    pub probe: ProbeConfig,
    pub admin: AdminConfig,
    #[serde(rename = "registry")]
    pub registries: Vec<RegistryConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 3128)),
            allowed_clients: vec![
                "127.0.0.0/8".parse().expect("literal CIDR"),
                "::1/128".parse().expect("literal CIDR"),
            ],
            i_know_this_is_an_open_proxy: false,
            denied_destinations: destination::default_denied(),
            allowed_destinations: destination::default_allowed(),
            allowed_ports: vec![443, 80],
            max_connections: 9_000,
            max_connections_per_client: 1_000,
            max_head_bytes: 16 * 1024,
            buffer_bytes: 1024 * 1024,
            zero_copy: true,
            timeouts: Timeouts::default(),
            dns: DnsConfig::default(),
            upstream: UpstreamConfig::default(),
            auth: None,
            log: LogConfig::default(),
            intercept: InterceptConfig::default(),
            diagnosis: DiagnosisConfig::default(),
            probe: ProbeConfig::default(),
            admin: AdminConfig::default(),
            registries: Vec::new(),
        }
    }
}

/// Deadlines, written as `"10s"`, `"500ms"`, `"5m"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// The client must send its whole request head within this.
    #[serde(deserialize_with = "duration")]
    pub request_head: Duration,
    #[serde(deserialize_with = "duration")]
    pub dns: Duration,
    #[serde(deserialize_with = "duration")]
    pub connect: Duration,
    /// The upstream proxy must answer our CONNECT within this.
    #[serde(deserialize_with = "duration")]
    pub upstream_proxy: Duration,
    /// A server must answer the client's ClientHello within this.
    #[serde(deserialize_with = "duration")]
    pub tls: Duration,
    /// Response headers must arrive within this (forwarding and interception).
    #[serde(deserialize_with = "duration")]
    pub response_headers: Duration,
    /// A tunnel with no traffic either way for this long is closed.
    #[serde(deserialize_with = "duration")]
    pub idle: Duration,
    /// A kept-alive HTTP/1.1 connection (plain forwarding, interception) must send its next
    /// request head within this, or it is closed ([`Timeouts::next_request_head`]).
    #[serde(deserialize_with = "duration")]
    pub keep_alive: Duration,
    /// A transfer that made progress and then none for this long is reported as stalled.
    #[serde(deserialize_with = "duration")]
    pub stall: Duration,
    /// On shutdown, open tunnels get this long to finish.
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            request_head: Duration::from_secs(10),
            dns: Duration::from_secs(5),
            // DNS + connect stay under the 15 s the daemon gives its ping, login and token
            // requests, so regdoc's 502 naming the cause reaches the user first.
            connect: Duration::from_secs(8),
            upstream_proxy: Duration::from_secs(10),
            // Passthrough cannot answer once the tunnel is open: outlasting the daemon's 10 s TLS
            // handshake timeout lets the client's own words stand, and regdoc records that the
            // client gave up.
            tls: Duration::from_secs(15),
            response_headers: Duration::from_secs(30),
            idle: Duration::from_secs(300),
            // Longer than the 90 s Go's HTTP client keeps an idle connection: the client closes
            // first, and never sends a request into a connection regdoc is closing.
            keep_alive: Duration::from_secs(120),
            stall: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

impl Timeouts {
    /// The wait for the next request head on a kept-alive connection: `keep_alive`, or `idle`
    /// when that is shorter (the connection carries no traffic meanwhile either).
    pub fn next_request_head(&self) -> Duration {
        self.keep_alive.min(self.idle)
    }
}

/// Name resolution.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// Nameservers (`ip` or `ip:port`, UDP then TCP). Empty: those of `/etc/resolv.conf`.
    /// Either way a name is resolved as Docker's Go resolver does on this host: `/etc/hosts`
    /// and DNS in the order of nsswitch.conf's `hosts:` line, DNS with resolv.conf's search
    /// list and `ndots`; these servers replace resolv.conf's nameservers and nothing else.
    pub nameservers: Vec<String>,
    /// Static answers: `"host" = ["10.0.0.5"]`, consulted before any query.
    pub overrides: BTreeMap<String, Vec<IpAddr>>,
    /// `host:port=addr:port` rules, like curl's `--connect-to`: the client still asks for
    /// `host:port`, TLS still names `host`, but the TCP connection goes to `addr:port`.
    pub connect_to: Vec<String>,
}

/// A parsed `connect_to` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTo {
    pub host: String,
    pub port: u16,
    pub to_host: String,
    pub to_port: u16,
}

impl ConnectTo {
    /// Parse `host:port=addr:port` (IPv6 literals in brackets).
    pub fn parse(rule: &str) -> Result<ConnectTo, String> {
        let (from, to) = rule
            .split_once('=')
            .ok_or_else(|| format!("connect_to rule {rule:?} must be HOST:PORT=ADDR:PORT"))?;
        let (host, port) = split_host_port(from)
            .ok_or_else(|| format!("connect_to rule {rule:?}: {from:?} is not HOST:PORT"))?;
        let (to_host, to_port) = split_host_port(to)
            .ok_or_else(|| format!("connect_to rule {rule:?}: {to:?} is not ADDR:PORT"))?;
        Ok(ConnectTo {
            host: host.to_ascii_lowercase(),
            port,
            to_host,
            to_port,
        })
    }
}

/// `host:port`, with an IPv6 host in brackets: the inverse of [`split_host_port`], and how
/// records and logs name a destination.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The authority of a URL for `host` and `port`: `host:port`, the port left out when it is the
/// scheme's `default_port` (as Go writes URLs), an IPv6 host in brackets either way.
pub fn authority(host: &str, port: u16, default_port: u16) -> String {
    match (port == default_port, host.contains(':')) {
        (true, true) => format!("[{host}]"),
        (true, false) => host.to_string(),
        (false, _) => join_host_port(host, port),
    }
}

/// Split `host:port`, accepting `[v6]:port`.
pub fn split_host_port(s: &str) -> Option<(String, u16)> {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once("]:")?;
        (h, p)
    } else {
        s.rsplit_once(':')?
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return None;
    }
    let port: u16 = port.parse().ok()?;
    Some((host.to_string(), port))
}

/// Chaining to a corporate proxy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `http://[user:pass@]host:port`. Its credentials are sent to it, never logged.
    pub proxy: Option<String>,
    /// Hosts reached directly (NO_PROXY rules: `host`, `.domain`, `*`, `10.0.0.0/8`).
    pub no_proxy: Vec<String>,
}

/// Basic authentication clients must present to use regdoc (407 otherwise).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyAuth {
    pub username: String,
    pub password: String,
}

/// Output format of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Pretty,
}

/// Where and how records are written.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// Append to this file (reopened on SIGHUP); standard output when absent.
    pub file: Option<PathBuf>,
    /// `connection` records for healthy connections too (failures are always logged).
    pub connections: bool,
    /// One `request` record per HTTP exchange seen with interception or plain forwarding.
    /// Off by default: a pull is dozens of exchanges, and most operators only need failures.
    pub requests: bool,
    /// Identical failures within this interval are counted, not repeated.
    #[serde(deserialize_with = "duration")]
    pub aggregate_interval: Duration,
    /// At most this many `failure` records and `connection` records of failed connections are
    /// written in any second; the rest are counted in a `log` line.
    pub max_records_per_second: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Json,
            file: None,
            connections: true,
            requests: false,
            aggregate_interval: Duration::from_secs(60),
            max_records_per_second: 1000,
        }
    }
}

/// TLS interception with a local CA.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InterceptConfig {
    /// CA certificate and key made by `regdoc ca init`. Without them everything is passthrough.
    pub ca_cert: Option<PathBuf>,
    pub ca_key: Option<PathBuf>,
    /// Host patterns to intercept (`*.azurecr.io` style). Default when a CA is set: registry REST
    /// endpoints and the registries named in `[[registry]]`.
    pub hosts: Vec<String>,
    /// Host patterns never intercepted (data endpoints and blob storage by default).
    pub passthrough: Vec<String>,
    /// Extra CA files trusted for upstream servers, besides the system roots.
    pub extra_roots: Vec<PathBuf>,
    /// Bound of the minted-certificate cache.
    pub cert_cache: Option<usize>,
}

/// regdoc's own look at a server's certificate when a client refused it in passthrough.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProbeConfig {
    pub enabled: bool,
    /// A probe (connect, upstream proxy CONNECT, handshake) ends after this.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// At most one probe per target within this; failures in between reuse its facts.
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
}

/// Bounds of `probe.timeout` and `probe.interval`.
pub const PROBE_TIMEOUT_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(60);
pub const PROBE_INTERVAL_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(24 * 3600);

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            enabled: true,
            timeout: Duration::from_secs(5),
            interval: Duration::from_secs(60),
        }
    }
}

/// Tuning of the diagnosis.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiagnosisConfig {
    /// How long a client's recent successes count as context for its failures.
    #[serde(deserialize_with = "duration")]
    pub context_window: Duration,
    /// Lifetime assumed for registry tokens that carry no `exp`: a 401 for such a token older
    /// than this (by `iat`, or since regdoc saw it issued) is diagnosed as expired. Issued
    /// tokens' claims are remembered for a multiple of it (`context::TOKEN_MEMORY_LIFETIMES`).
    #[serde(deserialize_with = "duration")]
    pub token_lifetime: Duration,
    /// Clock difference beyond which clock skew is reported.
    #[serde(deserialize_with = "duration")]
    pub max_clock_skew: Duration,
    /// Whose words a prediction uses when the traffic does not say which client sent it.
    pub client: ClientKind,
}

/// The registry client on this host whose messages regdoc predicts where the wire cannot tell:
/// a refused CONNECT or a tunnel regdoc does not decrypt carries no `User-Agent` of the client
/// (Go's CONNECT says `Go-http-client/1.1` for dockerd and containerd alike). A request seen
/// through interception or plain forwarding names its client itself, and that wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    /// The Docker daemon and CLI (and clients that print Go's errors the same way: skopeo,
    /// podman).
    #[default]
    Docker,
    /// containerd (`ctr`, the CRI plugin of a Kubernetes node), which frames errors its own way.
    Containerd,
}

impl ClientKind {
    /// The name the configuration uses.
    pub fn name(self) -> &'static str {
        match self {
            ClientKind::Docker => "docker",
            ClientKind::Containerd => "containerd",
        }
    }
}

impl Default for DiagnosisConfig {
    fn default() -> Self {
        DiagnosisConfig {
            context_window: Duration::from_secs(600),
            token_lifetime: Duration::from_secs(3 * 3600),
            max_clock_skew: Duration::from_secs(60),
            client: ClientKind::Docker,
        }
    }
}

/// The admin listener: `/metrics` for Prometheus and `/healthz` (see [`crate::metrics`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Where to serve them; absent (the default), there is no listener and nothing is counted.
    pub listen: Option<SocketAddr>,
    /// Serve them on an address other hosts can reach. The metrics name registries, causes and
    /// traffic volumes, a map of what the fleet pulls from where and what is broken: not for
    /// everyone who can reach the port, so only when said in so many words.
    pub i_know_this_is_public: bool,
}

impl AdminConfig {
    /// An admin listener other hosts can reach, refused unless meant.
    fn check(&self, proxy_listen: SocketAddr) -> Result<(), (String, String)> {
        let Some(listen) = self.listen else {
            return Ok(());
        };
        if listen == proxy_listen && listen.port() != 0 {
            return Err((
                "admin.listen".into(),
                format!(
                    "admin.listen = {listen} is the proxy's own listen address; pick another port"
                ),
            ));
        }
        if !crate::policy::addr::canonical_ip(listen.ip()).is_loopback()
            && !self.i_know_this_is_public
        {
            return Err((
                "admin.listen".into(),
                format!(
                    "admin.listen = {listen} is reachable from the network: anyone who reaches it \
                     reads which registries this host uses and what fails; keep it on loopback \
                     (127.0.0.1:9325) and scrape through a local agent, or set \
                     admin.i_know_this_is_public = true"
                ),
            ));
        }
        Ok(())
    }
}

/// A registry the operator names, with what its network should look like.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Login server, e.g. `myregistry.azurecr.io` or `registry.internal:5000`'s host part.
    pub host: String,
    /// The registry is reached through a private endpoint: a public answer is a DNS fault.
    #[serde(default)]
    pub private_endpoint: bool,
    /// Addresses its endpoints must resolve into.
    #[serde(default)]
    pub expected_cidrs: Vec<IpNet>,
    /// Data endpoint regions expected (for replicas).
    #[serde(default)]
    pub regions: Vec<String>,
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

/// Parse `"250ms"`, `"10s"`, `"5m"`, `"1h"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (use e.g. \"500ms\", \"10s\", \"5m\")"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {s:?} (ms, s, m, h)"
            ))
        }
    };
    if !secs.is_finite() || !(0.0..=86_400.0 * 365.0).contains(&secs) {
        return Err(format!("duration {s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl Config {
    /// Parse a configuration text; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let start = e.span().map(|s| s.start);
            // Some syntax errors (a control character in a comment) carry no message.
            let reason = match e.message() {
                "" => syntax_reason(text, start.unwrap_or(0)),
                m => m.to_string(),
            };
            let line = start.map(|s| line_of(text, s)).unwrap_or(1);
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                reason: without_secret(text, line, &reason),
            }
        })?;
        cfg.validate().map_err(|(key, reason)| {
            let line = find_key_line(text, &key).unwrap_or(1);
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                reason: without_secret(text, line, &reason),
            }
        })?;
        Ok(cfg)
    }

    /// Read and parse a file, then check that the files it names can be used: what `run` will
    /// open is opened here first (and only read), so a file `check-config` accepts starts.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg = Config::parse(&text, path)?;
        files::check(&cfg).map_err(|(key, reason)| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: find_key_line(&text, &key).unwrap_or(1),
            reason,
        })?;
        Ok(cfg)
    }

    /// Checks serde cannot express, without touching the file system. Returns the offending
    /// key (as written in the file, for its line) and the reason. `regdoc::run` applies the
    /// same checks to a configuration built in code.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for rule in &self.dns.connect_to {
            ConnectTo::parse(rule).map_err(|r| ("connect_to".to_string(), r))?;
        }
        for ns in &self.dns.nameservers {
            parse_nameserver(ns).map_err(|r| ("nameservers".to_string(), r))?;
        }
        if let Some(p) = &self.upstream.proxy {
            crate::net::upstream::UpstreamProxy::parse(p)
                .map_err(|e| ("proxy".to_string(), e.to_string()))?;
        }
        if self.allowed_ports.is_empty() {
            return Err((
                "allowed_ports".into(),
                "allowed_ports must name at least one port".into(),
            ));
        }
        if self.allowed_ports.contains(&0) {
            return Err((
                "allowed_ports".into(),
                "allowed_ports: port 0 cannot be connected to".into(),
            ));
        }
        bounds::check(self)?;
        if let Some(a) = &self.auth {
            check_credentials(a)?;
        }
        self.check_exposure()?;
        self.admin.check(self.listen)?;
        if self.intercept.ca_cert.is_some() != self.intercept.ca_key.is_some() {
            return Err((
                "ca_cert".into(),
                "ca_cert and ca_key must be given together".into(),
            ));
        }
        for r in &self.registries {
            if r.host.is_empty() || r.host.contains(['/', ':', ' ']) {
                return Err((
                    "host".into(),
                    format!("registry host {:?} must be a bare host name", r.host),
                ));
            }
        }
        Ok(())
    }

    /// Whether this configuration makes regdoc an open relay (see [`relay::exposure`]).
    pub fn exposure(&self) -> Exposure {
        relay::exposure(self.listen, &self.allowed_clients, self.auth.is_some())
    }

    /// An open relay is refused unless the operator said, in so many words, that it is meant.
    /// Public so that a `--listen` given on the command line is held to the same rule.
    pub fn check_exposure(&self) -> Result<(), (String, String)> {
        match self.exposure() {
            Exposure::OpenRelay(why) if !self.i_know_this_is_an_open_proxy => {
                Err(("listen".into(), why))
            }
            _ => Ok(()),
        }
    }

    /// Parsed `connect_to` rules (validated at load).
    pub fn connect_to_rules(&self) -> Vec<ConnectTo> {
        self.dns
            .connect_to
            .iter()
            .filter_map(|r| ConnectTo::parse(r).ok())
            .collect()
    }

    /// Hosts of the registries named in the configuration.
    pub fn registry_hosts(&self) -> Vec<String> {
        self.registries
            .iter()
            .map(|r| r.host.to_ascii_lowercase())
            .collect()
    }
}

/// Parse a nameserver entry: `ip` (port 53) or `ip:port` / `[v6]:port`.
pub fn parse_nameserver(s: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    s.parse::<SocketAddr>()
        .map_err(|_| format!("nameserver {s:?} must be IP or IP:PORT"))
}

/// Basic credentials as RFC 7617 allows them: a user-id without a colon, neither part empty,
/// no control characters (they could not be typed into a proxy URL, and an empty password
/// accepts a client that merely says `user:`).
fn check_credentials(a: &ProxyAuth) -> Result<(), (String, String)> {
    if a.username.is_empty() || a.username.contains(':') || a.username.contains(char::is_control) {
        return Err((
            "username".into(),
            "auth.username must be non-empty, without ':' or control characters".into(),
        ));
    }
    if a.password.is_empty() || a.password.contains(char::is_control) {
        return Err((
            "password".into(),
            "auth.password must be non-empty, without control characters".into(),
        ));
    }
    Ok(())
}

/// Line of a byte offset. Counted on bytes: an offset inside a multi-byte character (should a
/// parser ever report one) must not panic.
/// `reason` as it may be shown: the parser quotes the value it refused, and an error goes to
/// standard error (the journal) and, on a reload, to the log. The value of a key that names a
/// secret (`password = 12345` where a string belongs) is hidden, and so is URL userinfo.
fn without_secret(text: &str, line: usize, reason: &str) -> String {
    let mut shown = crate::redact::redact(reason);
    let setting = text.lines().nth(line.saturating_sub(1)).unwrap_or("");
    if let Some((key, value)) = setting.split_once('=') {
        let key = key.trim().trim_matches('"');
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
        if crate::redact::is_secret_key(key) && !value.is_empty() {
            shown = shown.replace(value, "<hidden>");
        }
    }
    shown
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// What is wrong at `offset` when the TOML parser did not say.
fn syntax_reason(text: &str, offset: usize) -> String {
    match text.get(offset..).and_then(|rest| rest.chars().next()) {
        Some(c) if c.is_control() => {
            format!(
                "control character U+{:04X} is not allowed here",
                u32::from(c)
            )
        }
        Some(c) => format!("invalid TOML at {c:?}"),
        None => "invalid TOML at the end of the file".to_string(),
    }
}

/// Line of the first `key =` assignment, to point validation errors at the setting. A key
/// written `section.key` is looked for under its `[section]` header only (`admin.listen` is
/// not the top-level `listen`).
fn find_key_line(text: &str, key: &str) -> Option<usize> {
    let (section, key) = match key.split_once('.') {
        Some((s, k)) => (Some(format!("[{s}]")), k),
        None => (None, key),
    };
    let mut inside = section.is_none();
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            if let Some(header) = &section {
                if l.starts_with('[') {
                    inside = l.trim_end().starts_with(header.as_str());
                    return false;
                }
            }
            inside
                && l.strip_prefix(key)
                    .map(|r| r.trim_start().starts_with('='))
                    .unwrap_or(false)
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_default() {
        let c = Config::parse("", Path::new("x.toml")).unwrap();
        assert_eq!(c.listen, "127.0.0.1:3128".parse().unwrap());
        assert_eq!(c.allowed_ports, vec![443, 80]);
    }

    /// A refused value is quoted by the parser; a secret's never is, whatever its type.
    #[test]
    fn a_refused_secret_value_is_not_quoted() {
        let text = "[auth]\nusername = \"docker\"\npassword = 918273645\n";
        let e = Config::parse(text, Path::new("r.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("r.toml:3: "), "{e}");
        assert!(!e.contains("918273645"), "{e}");
        assert!(e.contains("<hidden>"), "{e}");
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let text = "listen = \"127.0.0.1:3128\"\n\n[timeouts]\nconnect = 10s\n";
        let e = Config::parse(text, Path::new("/etc/regdoc.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/regdoc.toml:4: "), "{e}");
    }

    #[test]
    fn control_character_in_a_comment_is_named() {
        // TOML's parser gives no message for it (found by
        // properties::any_text_gives_a_config_or_a_located_error).
        let e = Config::parse("listen = \"127.0.0.1:1\"\n# tab\u{1}here\n", Path::new("c"))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "c:2: control character U+0001 is not allowed here");
    }

    #[test]
    fn probe_settings_are_bounded() {
        let c = Config::parse(
            "[probe]\nenabled = false\ntimeout = \"2s\"\ninterval = \"5m\"\n",
            Path::new("c"),
        )
        .unwrap();
        assert!(!c.probe.enabled);
        assert_eq!(c.probe.timeout, Duration::from_secs(2));
        assert_eq!(c.probe.interval, Duration::from_secs(300));
        let e = Config::parse("[probe]\ntimeout = \"0s\"\n", Path::new("c"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c:2: ") && e.contains("100ms and 1m"), "{e}");
        let e = Config::parse("[probe]\ninterval = \"48h\"\n", Path::new("c"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("1s and 24h"), "{e}");
    }

    #[test]
    fn bad_duration_and_unknown_key_are_refused_with_line() {
        let e = Config::parse("[timeouts]\nconnect = \"10 parsecs\"\n", Path::new("c"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("c:2: ") && e.contains("unknown duration unit"),
            "{e}"
        );
        let e = Config::parse(
            "listen = \"127.0.0.1:1\"\nlisten_port = 3\n",
            Path::new("c"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("c:2: ") && e.contains("unknown field"), "{e}");
    }

    #[test]
    fn validation_errors_point_at_the_key() {
        let text = "[dns]\nnameservers = []\nconnect_to = [\"a.example:443\"]\n";
        let e = Config::parse(text, Path::new("c")).unwrap_err().to_string();
        assert!(
            e.starts_with("c:3: ") && e.contains("HOST:PORT=ADDR:PORT"),
            "{e}"
        );
    }

    #[test]
    fn admin_listener_is_off_by_default_and_loopback_unless_meant() {
        assert!(Config::default().admin.listen.is_none());
        let c = Config::parse("[admin]\nlisten = \"127.0.0.1:9325\"\n", Path::new("c")).unwrap();
        assert_eq!(c.admin.listen, Some("127.0.0.1:9325".parse().unwrap()));
        let text = "listen = \"127.0.0.1:3128\"\n\n[admin]\nlisten = \"0.0.0.0:9325\"\n";
        let e = Config::parse(text, Path::new("c")).unwrap_err().to_string();
        assert!(
            e.starts_with("c:4: ") && e.contains("admin.i_know_this_is_public = true"),
            "{e}"
        );
        let meant = format!("{text}i_know_this_is_public = true\n");
        assert!(Config::parse(&meant, Path::new("c")).is_ok());
        let same = "listen = \"127.0.0.1:3128\"\n[admin]\nlisten = \"127.0.0.1:3128\"\n";
        let e = Config::parse(same, Path::new("c")).unwrap_err().to_string();
        assert!(
            e.starts_with("c:3: ") && e.contains("own listen address"),
            "{e}"
        );
    }

    #[test]
    fn connect_to_parses_v6_and_names() {
        let r = ConnectTo::parse("Reg.azurecr.io:443=[::1]:8443").unwrap();
        assert_eq!(
            r,
            ConnectTo {
                host: "reg.azurecr.io".into(),
                port: 443,
                to_host: "::1".into(),
                to_port: 8443
            }
        );
        assert!(ConnectTo::parse("reg:443=").is_err());
        assert!(ConnectTo::parse("reg=1.2.3.4:5").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("s").is_err());
    }

    /// An IPv6 host keeps its brackets wherever a host and a port are joined.
    #[test]
    fn ipv6_hosts_are_bracketed_when_joined() {
        assert_eq!(join_host_port("::1", 5000), "[::1]:5000");
        assert_eq!(join_host_port("reg.local", 5000), "reg.local:5000");
        assert_eq!(authority("::1", 443, 443), "[::1]");
        assert_eq!(authority("::1", 8443, 443), "[::1]:8443");
        assert_eq!(authority("reg.local", 443, 443), "reg.local");
        assert_eq!(authority("reg.local", 80, 443), "reg.local:80");
    }
}

/// Properties of configuration parsing: whatever the text, the answer is a configuration or an
/// error naming a line of that text, never a panic; and the value parsers invert what they
/// parse.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::proptest_support::text_input;
    use proptest::prelude::*;

    const SHIPPED: &str = include_str!("../config/regdoc.toml");

    /// A configuration with every section in use, so mutations reach every validator.
    const FULL: &str = r#"listen = "[::1]:3128"
allowed_clients = ["10.0.0.0/8", "::1/128"]
allowed_ports = [443]
max_head_bytes = 2048

[timeouts]
connect = "1.5s"
idle = "250ms"

[dns]
nameservers = ["10.0.0.2", "[fd00::53]:5353"]
overrides = { "myreg.azurecr.io" = ["10.0.0.5"] }
connect_to = ["myreg.azurecr.io:443=[::1]:8443"]

[upstream]
proxy = "http://alice:s%40cret@corp-proxy:8080"
no_proxy = [".internal", "10.0.0.0/8"]

[auth]
username = "u"
password = "p"

[intercept]
ca_cert = "/var/lib/regdoc/ca.pem"
ca_key = "/var/lib/regdoc/ca.key"

[[registry]]
host = "myreg.azurecr.io"
private_endpoint = true
expected_cidrs = ["10.0.0.0/24"]
regions = ["westeurope"]
"#;

    /// Keys of every section, and values of the wrong type, range or shape for them.
    fn assignment() -> impl Strategy<Value = String> {
        let key = prop::sample::select(vec![
            "listen",
            "allowed_clients",
            "allowed_ports",
            "max_connections",
            "max_connections_per_client",
            "max_head_bytes",
            "buffer_bytes",
            "zero_copy",
            "request_head",
            "connect",
            "idle",
            "keep_alive",
            "nameservers",
            "overrides",
            "connect_to",
            "proxy",
            "no_proxy",
            "username",
            "format",
            "file",
            "aggregate_interval",
            "max_records_per_second",
            "ca_cert",
            "hosts",
            "cert_cache",
            "context_window",
            "host",
            "expected_cidrs",
            "regions",
            "private_endpoint",
            "é",
            "\"quoted key\"",
        ]);
        let value = prop_oneof![
            Just("\"\"".to_string()),
            Just("-1".to_string()),
            Just("0".to_string()),
            Just("9223372036854775807".to_string()),
            Just("99999999999999999999".to_string()),
            Just("1e400".to_string()),
            Just("nan".to_string()),
            Just("[]".to_string()),
            Just("{}".to_string()),
            Just("[1, \"a\"]".to_string()),
            Just("\"1e400s\"".to_string()),
            Just("\"999999999h\"".to_string()),
            Just("\"[::1]:99999\"".to_string()),
            Just("\"300.0.0.1/33\"".to_string()),
            Just("\"a:b=c\"".to_string()),
            Just("[\"a:1=b:2\", \"x\"]".to_string()),
            Just("\"http://[::1\"".to_string()),
            Just("1979-05-27T07:32:00Z".to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<String>().prop_map(|s| format!("{s:?}")),
            "\\PC{0,12}",
        ];
        (key, value).prop_map(|(k, v)| format!("{k} = {v}"))
    }

    fn near_valid() -> impl Strategy<Value = String> {
        let section = prop::sample::select(vec![
            "",
            "[timeouts]",
            "[dns]",
            "[upstream]",
            "[auth]",
            "[log]",
            "[intercept]",
            "[diagnosis]",
            "[admin]",
            "[[registry]]",
            "[dns.overrides]",
            "[[timeouts]]",
            "[é]",
        ]);
        prop::collection::vec((section, prop::collection::vec(assignment(), 0..4)), 1..4).prop_map(
            |sections| {
                sections
                    .into_iter()
                    .map(|(header, lines)| format!("{header}\n{}\n", lines.join("\n")))
                    .collect()
            },
        )
    }

    /// The contract: a configuration, or an `Invalid` error whose line exists in the text.
    fn assert_answer(text: &str, r: Result<Config, ConfigError>) -> Result<(), TestCaseError> {
        match r {
            Ok(_) => {}
            Err(ConfigError::Invalid { line, reason, .. }) => {
                prop_assert!(
                    line >= 1 && line <= text.split('\n').count(),
                    "line {} of {:?}",
                    line,
                    text
                );
                prop_assert!(!reason.is_empty());
            }
            Err(other) => prop_assert!(false, "unexpected error kind: {}", other),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(crate::proptest_support::cases(256))]

        #[test]
        fn any_text_gives_a_config_or_a_located_error(text in text_input(&[SHIPPED, FULL])) {
            let r = Config::parse(&text, Path::new("c.toml"));
            assert_answer(&text, r)?;
        }

        #[test]
        fn near_valid_text_gives_a_config_or_a_located_error(text in near_valid()) {
            let r = Config::parse(&text, Path::new("c.toml"));
            assert_answer(&text, r)?;
        }

        /// Durations in each unit read back exactly; anything else is an error, not a panic.
        #[test]
        fn durations_round_trip(ms in 0u64..=86_400_000 * 365, unit in 0usize..4, junk in "\\PC{0,12}") {
            let (text, want) = match unit {
                0 => (format!("{ms}ms"), Duration::from_millis(ms)),
                1 => (format!("{}s", ms / 1000), Duration::from_secs(ms / 1000)),
                2 => (format!(" {}m ", ms / 60_000), Duration::from_secs(ms / 60_000 * 60)),
                _ => (format!("{}h", ms / 3_600_000), Duration::from_secs(ms / 3_600_000 * 3600)),
            };
            // Parsed through f64: exact to the nanosecond below 2^22 s (48 days); beyond, as
            // close as a double gets (found: "10480215697ms" is 1 ns short).
            let got = parse_duration(&text);
            prop_assert!(got.is_ok(), "{:?}: {:?}", text, got);
            let got = got.unwrap();
            if want.as_secs() < 1 << 22 {
                prop_assert_eq!(got, want);
            } else {
                let off = got.abs_diff(want);
                prop_assert!(off <= Duration::from_micros(1), "{:?}: {:?}", text, got);
            }
            let _ = parse_duration(&junk);
        }

        /// `host:port` and `[v6]:port` split back into what was joined; junk is refused.
        #[test]
        fn host_port_round_trip(
            host in prop_oneof!["[a-z0-9.-]{1,30}", any::<std::net::Ipv6Addr>().prop_map(|a| format!("[{a}]"))],
            port in any::<u16>(),
            junk in "\\PC{0,30}",
        ) {
            let want = host.trim_start_matches('[').trim_end_matches(']').to_string();
            prop_assert_eq!(split_host_port(&format!("{host}:{port}")), Some((want.clone(), port)));
            let rule = ConnectTo::parse(&format!("{host}:{port}={host}:{port}"));
            prop_assert_eq!(rule.map(|r| (r.to_host, r.to_port)), Ok((want, port)));
            let _ = split_host_port(&junk);
            let _ = ConnectTo::parse(&junk);
            let _ = parse_nameserver(&junk);
        }
    }
}
