//! Protocol handling of client connections: CONNECT, absolute-form forwarding, replies.
//!
//! [`conn`] reads a client's first request head and dispatches it; [`connect`] resolves and
//! dials (directly or through the upstream proxy) before anything is answered; [`reply`] is the
//! one place that maps a failure to the status and reason phrase the client sees; [`forward`]
//! relays plain `http://` requests with hyper.

pub mod conn;
pub mod connect;
pub mod forward;
pub mod head;
pub mod reply;

use crate::config::Config;
use crate::diagnose::{Diagnoser, Finding};
use crate::endpoint::Endpoint;
use crate::net::resolve::Resolver;
use crate::net::tunnel::{FailureSink, TunnelConfig};
use crate::net::upstream::{NoProxy, UpstreamProxy};
use crate::observe::{ClientSignal, DnsAnswer, FailureEvent, FailureKind, Phase, TlsObservation};
use crate::policy::destination::{DestinationPolicy, Own};
use base64::Engine;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Why the proxy could not be set up from a configuration.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("DNS resolver: {0}")]
    Resolver(#[from] crate::net::resolve::ResolverSetupError),
    #[error("upstream proxy: {0}")]
    Upstream(#[from] crate::net::upstream::UpstreamUrlError),
    #[error(transparent)]
    Intercept(#[from] crate::intercept::InterceptError),
    #[error("certificate probe: {0}")]
    Probe(#[from] crate::intercept::RootsError),
    /// A configuration built in code that a file would not have passed.
    #[error("configuration: {reason} ({key})")]
    Config { key: String, reason: String },
}

/// Everything connections share, built once from the configuration.
pub struct Shared {
    pub config: Config,
    pub resolver: Resolver,
    pub diagnoser: Arc<Diagnoser>,
    pub upstream: Option<UpstreamProxy>,
    pub no_proxy: NoProxy,
    pub registries: Vec<String>,
    /// Which destinations may be reached (`denied_destinations`, `allowed_destinations`,
    /// regdoc's own socket).
    pub destinations: DestinationPolicy,
    pub tunnel: TunnelConfig,
    /// `Basic …` value clients must present, when proxy authentication is configured.
    expected_auth: Option<String>,
    /// Shared with the states that replace this one on a reload: ids stay unique.
    next_id: Arc<AtomicU64>,
    /// The socket regdoc listens on, once known (its own address is never a destination).
    listening: Option<SocketAddr>,
    /// The one writer of failure records (interception writes through it too): repeats of
    /// one failure within `log.aggregate_interval` are counted, not written.
    pub failures: Arc<crate::record::failures::FailureLog>,
    /// TLS interception, when a CA is configured.
    pub interceptor: Option<crate::intercept::Interceptor>,
    /// regdoc's own look at certificates clients refuse (`[probe]`), when enabled.
    pub prober: Option<Arc<crate::net::probe::Prober>>,
    /// Kept-alive connections between requests: the first closed when slots run short.
    pub idle: Arc<crate::server::idle::IdleConnections>,
    /// What `/metrics` serves, when `[admin] listen` is set; nothing is counted otherwise.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Shared {
    pub fn new(config: Config) -> Result<Shared, SetupError> {
        config
            .validate()
            .map_err(|(key, reason)| SetupError::Config { key, reason })?;
        let resolver = Resolver::from_config(&config)?;
        let upstream = config
            .upstream
            .proxy
            .as_deref()
            .map(UpstreamProxy::parse)
            .transpose()?;
        let expected_auth = config.auth.as_ref().map(|a| {
            let creds = format!("{}:{}", a.username, a.password);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(creds)
            )
        });
        let diagnoser = Arc::new(Diagnoser::new(&config));
        let metrics = config
            .admin
            .listen
            .map(|_| Arc::new(crate::metrics::Metrics::new(&config)));
        let failures = Arc::new(
            crate::record::failures::FailureLog::new(diagnoser.clone(), &config.log)
                .with_metrics(metrics.clone()),
        );
        Ok(Shared {
            resolver,
            diagnoser,
            upstream,
            no_proxy: NoProxy::new(&config.upstream.no_proxy),
            registries: config.registry_hosts(),
            destinations: destinations(&config, config.listen),
            tunnel: TunnelConfig {
                idle: config.timeouts.idle,
                tls_timeout: config.timeouts.tls,
                stall: config.timeouts.stall,
                buffer: config.buffer_bytes,
                zero_copy_after: config.zero_copy.then_some(ZERO_COPY_AFTER),
            },
            expected_auth,
            next_id: Arc::new(AtomicU64::new(1)),
            listening: None,
            failures,
            interceptor: crate::intercept::Interceptor::from_config(&config)?,
            prober: crate::net::probe::Prober::from_config(&config)?.map(Arc::new),
            idle: crate::server::idle::IdleConnections::new(),
            metrics,
            config,
        })
    }

    /// The socket regdoc actually listens on (its port may have been 0 in the configuration):
    /// destinations at it are refused.
    pub fn set_listening(&mut self, bound: SocketAddr) {
        self.destinations = destinations(&self.config, bound);
        self.listening = Some(bound);
    }

    /// The state for a reloaded `config`, for connections accepted from now on; connections
    /// already open keep the state they started with. What must outlive a reload carries over:
    /// connection ids go on counting, kept-alive connections can still be shed for a slot,
    /// metrics go on counting, and regdoc's own socket stays refused as a destination.
    pub fn reloaded(&self, config: Config) -> Result<Shared, SetupError> {
        let mut next = Shared::new(config)?;
        next.next_id = self.next_id.clone();
        next.idle = self.idle.clone();
        // Counters are monotonic for Prometheus: the admin listener keeps serving the same
        // ones, and the new failure log counts into them.
        next.metrics = self.metrics.clone();
        next.failures = Arc::new(
            crate::record::failures::FailureLog::new(next.diagnoser.clone(), &next.config.log)
                .with_metrics(next.metrics.clone()),
        );
        if let Some(bound) = self.listening {
            next.set_listening(bound);
        }
        Ok(next)
    }

    /// Count the lines the log sink drops or loses in `/metrics` too (when it is served).
    pub fn count_log_losses(&self, log: &crate::logging::LogHandle) {
        if let Some(m) = &self.metrics {
            m.watch_log(log);
        }
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether the request carries the configured proxy credentials (always true when none are
    /// configured). Compared in constant time: it is a password check.
    pub fn auth_ok(&self, header: Option<&[u8]>) -> bool {
        match &self.expected_auth {
            None => true,
            Some(expected) => header
                .map(|h| constant_time_eq(h, expected.as_bytes()))
                .unwrap_or(false),
        }
    }

    pub fn auth_required(&self) -> bool {
        self.expected_auth.is_some()
    }

    /// Diagnose `ev`, write its failure record, and return the findings, the reason phrase
    /// for the reply (when `status` says the client gets one) and whether the record was
    /// written in full.
    pub fn report(&self, ev: &FailureEvent, status: Option<u16>) -> Reported {
        let findings = self.diagnoser.diagnose(ev);
        let reason = reply::reason_phrase(ev, &findings);
        let logged = self.write_failure(ev, &findings, status.map(|s| (s, reason.as_str())));
        Reported {
            findings,
            reason,
            logged,
        }
    }

    /// Write the failure record of an already diagnosed failure, unless it repeats one written
    /// within the aggregation interval (then it is only counted).
    pub fn write_failure(
        &self,
        ev: &FailureEvent,
        findings: &[Finding],
        reply: Option<(u16, &str)>,
    ) -> crate::record::failures::Logged {
        let shown = reply.map(|r| crate::diagnose::symptom::Reply::Connect(r.1));
        self.failures.write(ev, findings, reply, shown)
    }
}

/// A diagnosed and logged failure.
pub struct Reported {
    pub findings: Vec<Finding>,
    pub reason: String,
    pub logged: crate::record::failures::Logged,
}

/// The destination policy of `config` for a proxy listening on `listen`. The interfaces are
/// read only when it listens on all of them: only then are their addresses regdoc.
fn destinations(config: &Config, listen: SocketAddr) -> DestinationPolicy {
    let local_ips = if listen.ip().is_unspecified() {
        crate::net::interfaces::local_addresses()
    } else {
        Vec::new()
    };
    DestinationPolicy::new(
        &config.denied_destinations,
        &config.allowed_destinations,
        Own {
            listen: Some(listen),
            local_ips,
        },
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a connection knows about its target, to build failure events.
#[derive(Debug, Clone)]
pub struct TargetInfo {
    pub conn_id: u64,
    pub client: SocketAddr,
    pub host: String,
    pub port: u16,
    pub endpoint: Endpoint,
    pub upstream_proxy: Option<String>,
    /// Where its exchanges' response times are counted (`[admin]`).
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl TargetInfo {
    pub fn target(&self) -> String {
        crate::config::join_host_port(&self.host, self.port)
    }

    /// Where a `request` record of this target's exchanges happened.
    pub fn request_origin(&self, mode: crate::record::Mode) -> crate::record::RequestOrigin<'_> {
        crate::record::RequestOrigin {
            conn_id: self.conn_id,
            client: self.client,
            mode,
            host: &self.host,
            port: self.port,
            endpoint: &self.endpoint,
            metrics: self.metrics.as_deref(),
        }
    }

    pub fn event(
        &self,
        phase: Phase,
        kind: FailureKind,
        error: String,
        elapsed: Duration,
    ) -> FailureEvent {
        FailureEvent {
            conn_id: self.conn_id,
            client: self.client,
            target: self.target(),
            host: self.host.clone(),
            port: self.port,
            endpoint: self.endpoint.clone(),
            phase,
            kind,
            // The sentence may quote what the client or server sent: it passes the one
            // redaction step before anything (record, reply phrase, diagnosis) reads it.
            error: crate::redact::redact(&error),
            dns: None,
            tls: None,
            http: None,
            upstream_proxy: self.upstream_proxy.clone(),
            elapsed_ms: elapsed.as_millis() as u64,
            client_gave_up: false,
        }
    }
}

/// Turns tunnel failures into failure records as they happen.
/// A tunnel direction that has moved this much is a bulk transfer (a layer, a push) and is
/// handed to the kernel. Registry API calls (tokens, manifests) stay below it and keep the
/// plain copy path.
const ZERO_COPY_AFTER: u64 = 1024 * 1024;

pub struct TunnelFailures<'a> {
    pub shared: &'a Arc<Shared>,
    pub target: &'a TargetInfo,
    pub dns: Option<DnsAnswer>,
    pub failed: AtomicBool,
    /// The way the tunnel went, for a probe of the server's certificate.
    pub probe_path: Option<crate::net::probe::ProbePath>,
}

impl TunnelFailures<'_> {
    /// A failure of this tunnel, which is failed from now on.
    fn event(
        &self,
        phase: Phase,
        kind: FailureKind,
        error: String,
        elapsed: Duration,
        tls: Option<&TlsObservation>,
    ) -> FailureEvent {
        self.failed.store(true, Ordering::Relaxed);
        let mut ev = self.target.event(phase, kind, error, elapsed);
        ev.dns = self.dns.clone();
        ev.tls = tls.cloned();
        ev
    }
}

impl FailureSink for TunnelFailures<'_> {
    fn failure(
        &self,
        phase: Phase,
        kind: FailureKind,
        error: String,
        elapsed: Duration,
        tls: Option<&TlsObservation>,
    ) {
        let ev = self.event(phase, kind, error, elapsed, tls);
        self.shared.report(&ev, None);
    }

    fn client_gave_up(&self, error: String, elapsed: Duration, tls: Option<&TlsObservation>) {
        let kind = FailureKind::TlsServerSilent;
        let mut ev = self.event(Phase::Tls, kind, error, elapsed, tls);
        ev.client_gave_up = true;
        self.shared.report(&ev, None);
    }

    /// The record waits for the probe (bounded by `probe.timeout`) in a task of its own; the
    /// connection is marked failed at once.
    fn client_refused(
        &self,
        signal: ClientSignal,
        alert: Option<String>,
        error: String,
        elapsed: Duration,
        tls: &TlsObservation,
    ) {
        self.failed.store(true, Ordering::Relaxed);
        let kind = FailureKind::TlsClientRefused {
            signal,
            alert,
            probe: None,
        };
        let mut ev = self.target.event(Phase::Tls, kind, error, elapsed);
        ev.dns = self.dns.clone();
        ev.tls = Some(tls.clone());
        let (Some(prober), Some(path)) = (&self.shared.prober, &self.probe_path) else {
            self.shared.report(&ev, None);
            return;
        };
        let (shared, prober, path) = (self.shared.clone(), prober.clone(), path.clone());
        let sni = tls.sni.clone().unwrap_or_else(|| self.target.host.clone());
        tokio::spawn(async move {
            let found = prober.probe(&ev.target, &path, &sni).await;
            if let FailureKind::TlsClientRefused { probe, .. } = &mut ev.kind {
                *probe = found;
            }
            shared.report(&ev, None);
        });
    }

    fn handshake_ok(&self, _tls: &TlsObservation) {
        self.shared
            .diagnoser
            .note_success(crate::diagnose::SuccessNote {
                client: self.target.client.ip(),
                host: self.target.host.clone(),
                endpoint: self.target.endpoint.clone(),
                at: std::time::SystemTime::now(),
                http: None,
            });
    }
}
