//! The way `run` reaches a host from here, phase by phase: name resolution (with `connect_to`
//! and overrides), the dial, the upstream proxy's CONNECT (unless `no_proxy` or a `connect_to`
//! rule sends the host around it), and a TLS handshake judged against the system roots plus
//! `intercept.extra_roots`. Each phase becomes a [`Step`]; a failed phase becomes the
//! [`FailureEvent`] `run` would record, judged by the same [`Diagnoser`].

use super::judge;
use super::step::Step;
use super::tls::{Handshake, TlsFailure, Trust};
use crate::config::Config;
use crate::diagnose::symptom::Reply;
use crate::diagnose::{Diagnoser, SuccessNote};
use crate::endpoint::Endpoint;
use crate::intercept::upstream_tls::RootsError;
use crate::net::dial::dial;
use crate::net::prefixed::Prefixed;
use crate::net::resolve::{Resolver, ResolverSetupError};
use crate::net::upstream::{connect_through, NoProxy, UpstreamProxy, UpstreamUrlError};
use crate::observe::{DnsAnswer, FailureEvent, FailureKind, Phase};
use crate::policy::destination::{DestinationPolicy, Own};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpStream;

/// The HTTP/1.1 client half of one connection the check opened.
pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Why the check cannot run at all (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Resolver(#[from] ResolverSetupError),
    #[error("upstream.proxy: {0}")]
    Upstream(#[from] UpstreamUrlError),
    #[error("TLS trust: {0}")]
    Roots(#[from] RootsError),
}

/// Everything needed to reach hosts the way `run` does.
pub struct Net {
    pub cfg: Config,
    resolver: Resolver,
    pub diagnoser: Diagnoser,
    upstream: Option<UpstreamProxy>,
    no_proxy: NoProxy,
    registries: Vec<String>,
    tls: Trust,
    /// `denied_destinations` and `allowed_destinations`, with regdoc's own `listen` address.
    destinations: DestinationPolicy,
    pub timeout: Duration,
    /// Who the diagnosis thinks the client is: this host.
    pub client: SocketAddr,
}

/// A host reached: the connection's HTTP client and what the phases found.
pub struct Conn {
    pub sender: Sender,
    pub dns: Option<DnsAnswer>,
}

impl Net {
    pub fn new(cfg: Config, timeout: Duration) -> Result<Net, SetupError> {
        let resolver = Resolver::from_config(&cfg)?;
        let upstream = cfg
            .upstream
            .proxy
            .as_deref()
            .map(UpstreamProxy::parse)
            .transpose()?;
        let tls = Trust::from_config(&cfg)?;
        // As `run` builds it: the interfaces are regdoc only when it listens on all of them.
        let local_ips = if cfg.listen.ip().is_unspecified() {
            crate::net::interfaces::local_addresses()
        } else {
            Vec::new()
        };
        let destinations = DestinationPolicy::new(
            &cfg.denied_destinations,
            &cfg.allowed_destinations,
            Own {
                listen: Some(cfg.listen),
                local_ips,
            },
        );
        Ok(Net {
            resolver,
            diagnoser: Diagnoser::new(&cfg),
            no_proxy: NoProxy::new(&cfg.upstream.no_proxy),
            registries: cfg.registry_hosts(),
            upstream,
            tls,
            destinations,
            timeout,
            client: SocketAddr::from(([127, 0, 0, 1], 0)),
            cfg,
        })
    }

    pub fn endpoint(&self, host: &str) -> Endpoint {
        crate::endpoint::classify(host, &self.registries)
    }

    /// The failure `run` would record for `host:port`.
    pub fn event(
        &self,
        host: &str,
        port: u16,
        phase: Phase,
        kind: FailureKind,
        error: String,
        took: Duration,
    ) -> FailureEvent {
        let via = self.route(host, port);
        FailureEvent {
            conn_id: 0,
            client: self.client,
            target: crate::config::join_host_port(host, port),
            host: host.to_string(),
            port,
            endpoint: self.endpoint(host),
            phase,
            kind,
            error: crate::redact::redact(&error),
            dns: None,
            tls: None,
            http: None,
            upstream_proxy: via.map(|p| p.display()),
            elapsed_ms: took.as_millis() as u64,
            client_gave_up: false,
        }
    }

    /// Diagnose `ev` and make it a problem step, with the line Docker prints.
    pub fn judged(&self, name: &str, ev: &FailureEvent, took: Duration) -> Step {
        let findings = self.diagnoser.diagnose(ev);
        let mut step = Step::diagnosed(name, took, ev.error.clone(), &findings);
        // Before the tunnel is up `run` answers the CONNECT itself, and Docker prints that
        // status line; inside the tunnel Docker sees only the server.
        let connect_phase = matches!(
            ev.phase,
            Phase::Dns | Phase::Connect | Phase::UpstreamProxy | Phase::Policy
        );
        let reason = crate::proxy::reply::reason_phrase(ev, &findings);
        let reply = connect_phase.then_some(Reply::Connect(reason.as_str()));
        step.worded_for(ev, reply, &self.diagnoser);
        step
    }

    /// Whether `host:port` goes through the upstream proxy, as `run` decides it.
    pub fn route(&self, host: &str, port: u16) -> Option<&UpstreamProxy> {
        let rule = self
            .cfg
            .connect_to_rules()
            .iter()
            .any(|r| r.host == host && r.port == port);
        match &self.upstream {
            Some(p) if !rule && !self.no_proxy.matches(host, port) => Some(p),
            _ => None,
        }
    }

    fn deadline(&self, configured: Duration) -> Duration {
        configured.min(self.timeout)
    }

    /// Reach `host:port` phase by phase, each phase a step named `prefix` + phase. Stops at
    /// the first phase that fails (the later ones need it) and lists those as skipped.
    pub async fn open(&self, host: &str, port: u16, prefix: &str) -> (Vec<Step>, Option<Conn>) {
        let (mut steps, conn) = self.phases(host, port, prefix).await;
        if conn.is_none() {
            let failed = steps
                .iter()
                .rev()
                .find(|s| s.is_problem())
                .map(|s| s.step.clone())
                .unwrap_or_else(|| "the previous step".into());
            let phases: &[&str] = if self.route(host, port).is_some() {
                &["dns", "tcp", "upstream proxy", "tls"]
            } else {
                &["dns", "tcp", "tls"]
            };
            for phase in phases {
                let name = format!("{prefix}{phase}");
                if !steps.iter().any(|s| s.step == name) {
                    steps.push(Step::skipped(&name, format!("{failed} failed")));
                }
            }
        }
        (steps, conn)
    }

    async fn phases(&self, host: &str, port: u16, prefix: &str) -> (Vec<Step>, Option<Conn>) {
        let mut steps = Vec::new();
        let name = |phase: &str| format!("{prefix}{phase}");
        // `run` refuses a CONNECT to a port outside `allowed_ports` before anything else.
        if !self.cfg.allowed_ports.contains(&port) {
            let ev = self.event(
                host,
                port,
                Phase::Policy,
                FailureKind::PortNotAllowed { port },
                format!("port {port} is not in allowed_ports"),
                Duration::ZERO,
            );
            steps.push(self.judged(&name("policy"), &ev, Duration::ZERO));
            return (steps, None);
        }
        let via = self.route(host, port);
        let (tcp, leftover, dns) = if let Some(proxy) = via {
            steps.push(Step::skipped(
                &name("dns"),
                format!("{host} is resolved by upstream proxy {}", proxy.display()),
            ));
            match self
                .through_proxy(host, port, proxy, &name, &mut steps)
                .await
            {
                Some((tcp, leftover)) => (tcp, leftover, None),
                None => return (steps, None),
            }
        } else {
            match self.direct(host, port, &name, &mut steps).await {
                Some((tcp, dns)) => (tcp, Vec::new(), Some(dns)),
                None => return (steps, None),
            }
        };
        let io = Prefixed::new(Bytes::from(leftover), tcp);
        let t = Instant::now();
        let tls = self
            .tls
            .handshake(io, host, via, self.deadline(self.cfg.timeouts.tls))
            .await;
        let took = t.elapsed();
        let stream = match tls {
            Ok(Handshake {
                stream,
                version,
                probe,
            }) => {
                steps.push(Step::ok(
                    &name("tls"),
                    took,
                    judge::describe_certificate(version.as_deref(), &probe),
                ));
                stream
            }
            Err(failure) => {
                let (kind, error) = match failure {
                    TlsFailure::Refused(probe) => {
                        let why = format!(
                            "the certificate for {host} was refused ({}): {}",
                            judge::cert_problem_words(probe.problem),
                            judge::describe_certificate(None, &probe)
                        );
                        (judge::refused_certificate(*probe), why)
                    }
                    TlsFailure::Handshake(e) => (judge::tls_kind(&e), e.to_string()),
                };
                let mut ev = self.event(host, port, Phase::Tls, kind, error, took);
                ev.dns = dns;
                steps.push(self.judged(&name("tls"), &ev, took));
                return (steps, None);
            }
        };
        // `run` remembers a host whose ServerHello came back: later failures of the same
        // registry are read in that light.
        self.diagnoser.note_success(SuccessNote {
            client: self.client.ip(),
            host: host.to_string(),
            endpoint: self.endpoint(host),
            at: SystemTime::now(),
            http: None,
        });
        match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
            Ok((sender, conn)) => {
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                (steps, Some(Conn { sender, dns }))
            }
            Err(e) => {
                steps.push(Step::problem(
                    &name("http"),
                    Duration::ZERO,
                    format!("cannot start HTTP/1.1 over the TLS connection: {e}"),
                ));
                (steps, None)
            }
        }
    }

    /// DNS and TCP without a proxy.
    async fn direct(
        &self,
        host: &str,
        port: u16,
        name: &dyn Fn(&str) -> String,
        steps: &mut Vec<Step>,
    ) -> Option<(TcpStream, DnsAnswer)> {
        let t = Instant::now();
        let lookup = tokio::time::timeout(
            self.deadline(self.cfg.timeouts.dns),
            self.resolver.resolve(host, port),
        )
        .await
        .unwrap_or_else(|_| {
            Err(crate::net::resolve::ResolveError::Timeout {
                host: host.to_string(),
                timeout_ms: self.timeout.as_millis() as u64,
            })
        });
        let took = t.elapsed();
        let resolved = match lookup {
            Ok(r) => r,
            Err(e) => {
                let ev = self.event(
                    host,
                    port,
                    Phase::Dns,
                    judge::dns_kind(&e),
                    e.to_string(),
                    took,
                );
                steps.push(self.judged(&name("dns"), &ev, took));
                return None;
            }
        };
        let seen = judge::describe_answer(&resolved.answer);
        let misrouted =
            self.diagnoser
                .judge_resolution(host, &self.endpoint(host), &resolved.answer);
        steps.push(match misrouted {
            // `run` records this and still connects: so does the check.
            Some(finding) => {
                let mut ev = self.event(
                    host,
                    port,
                    Phase::Dns,
                    FailureKind::DnsUnexpectedAnswer,
                    format!("{host} resolved to {seen}, not as the configuration expects"),
                    took,
                );
                ev.dns = Some(resolved.answer.clone());
                let mut s = Step::diagnosed(&name("dns"), took, ev.error.clone(), &[finding]);
                // The client's fix, but no words: the pull goes on, as under `run`.
                s.worded_for(&ev, None, &self.diagnoser);
                s.client_symptom = None;
                s
            }
            None => Step::ok(&name("dns"), took, seen),
        });
        // The addresses, not the name, are what `run` admits: a name may resolve to the
        // metadata service, to loopback, or to regdoc itself.
        let admitted = self
            .destinations
            .check_name(host, port)
            .and_then(|verdict| self.destinations.admit(&resolved.addrs, verdict));
        let addrs = match admitted {
            Ok(a) => a,
            Err(denial) => {
                let mut ev = self.event(
                    host,
                    port,
                    Phase::Policy,
                    FailureKind::DestinationNotAllowed {
                        addr: denial.what.clone(),
                        rule: denial.rule.clone(),
                    },
                    format!("{denial} ({host} resolved to it)"),
                    Duration::ZERO,
                );
                ev.dns = Some(resolved.answer);
                steps.push(self.judged(&name("policy"), &ev, Duration::ZERO));
                return None;
            }
        };
        let t = Instant::now();
        match dial(&addrs, self.deadline(self.cfg.timeouts.connect)).await {
            Ok((tcp, peer)) => {
                steps.push(Step::ok(
                    &name("tcp"),
                    t.elapsed(),
                    format!("connected to {peer}"),
                ));
                Some((tcp, resolved.answer))
            }
            Err(e) => {
                let took = t.elapsed();
                let mut ev = self.event(
                    host,
                    port,
                    Phase::Connect,
                    judge::dial_kind(&e),
                    e.to_string(),
                    took,
                );
                ev.dns = Some(resolved.answer);
                steps.push(self.judged(&name("tcp"), &ev, took));
                None
            }
        }
    }

    /// TCP to the upstream proxy, then its answer to CONNECT, each its own step.
    async fn through_proxy(
        &self,
        host: &str,
        port: u16,
        proxy: &UpstreamProxy,
        name: &dyn Fn(&str) -> String,
        steps: &mut Vec<Step>,
    ) -> Option<(TcpStream, Vec<u8>)> {
        let t = Instant::now();
        let unreachable = |why: String, took: Duration| {
            let ev = self.event(
                host,
                port,
                Phase::UpstreamProxy,
                FailureKind::UpstreamProxyUnreachable,
                why,
                took,
            );
            self.judged(&name("tcp"), &ev, took)
        };
        let resolved = match self.resolver.lookup(&proxy.host, proxy.port).await {
            Ok(r) => r,
            Err(e) => {
                steps.push(unreachable(
                    format!("cannot resolve upstream proxy {}: {e}", proxy.display()),
                    t.elapsed(),
                ));
                return None;
            }
        };
        let (mut tcp, peer) =
            match dial(&resolved.addrs, self.deadline(self.cfg.timeouts.connect)).await {
                Ok(s) => s,
                Err(e) => {
                    steps.push(unreachable(
                        format!("cannot reach upstream proxy {}: {e}", proxy.display()),
                        t.elapsed(),
                    ));
                    return None;
                }
            };
        steps.push(Step::ok(
            &name("tcp"),
            t.elapsed(),
            format!("connected to upstream proxy {} at {peer}", proxy.display()),
        ));
        let t = Instant::now();
        let target = crate::config::join_host_port(host, port);
        let answer = connect_through(
            &mut tcp,
            proxy,
            host,
            port,
            self.deadline(self.cfg.timeouts.upstream_proxy),
        )
        .await;
        let took = t.elapsed();
        match answer {
            Ok(leftover) => {
                steps.push(Step::ok(
                    &name("upstream proxy"),
                    took,
                    format!("{} opened a tunnel to {target}", proxy.display()),
                ));
                Some((tcp, leftover))
            }
            Err(e) => {
                let ev = self.event(
                    host,
                    port,
                    Phase::UpstreamProxy,
                    judge::upstream_kind(&e),
                    e.to_string(),
                    took,
                );
                steps.push(self.judged(&name("upstream proxy"), &ev, took));
                None
            }
        }
    }
}

pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
