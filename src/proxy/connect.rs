//! Establishing the upstream side of a CONNECT: resolve and dial (directly, or through the
//! upstream proxy) **before** the client is answered, so that only a working connection gets
//! `200 Connection established` and every failure gets a status whose reason names the cause.

use super::{reply, Shared, TargetInfo};
use crate::net::dial::{dial, DialError};
use crate::net::resolve::ResolveError;
use crate::net::upstream::{connect_through, UpstreamError};
use crate::observe::{DnsAnswer, FailureKind, Phase};
use crate::record::{ConnectionRecord, PhaseOutcome};
use std::net::SocketAddr;
use std::time::Instant;
use tokio::net::TcpStream;

/// A connection ready to carry the tunnel.
pub struct Established {
    pub stream: TcpStream,
    /// Bytes the upstream proxy sent after its answer head (belong to the tunnel).
    pub leftover: Vec<u8>,
    pub peer: SocketAddr,
    pub dns: Option<DnsAnswer>,
}

/// The client is refused with `reply`.
#[derive(Debug)]
pub struct Refusal {
    pub reply: reply::Reply,
    /// Whether its failure record was written in full; when it was only counted (a repeat),
    /// the connection's own record is folded into that count too.
    pub logged: crate::record::failures::Logged,
}

/// Resolve and dial `target`, recording each phase in `rec`. Failures are diagnosed and logged
/// here; the caller only writes the reply.
pub async fn establish(
    shared: &Shared,
    target: &mut TargetInfo,
    rec: &mut ConnectionRecord,
) -> Result<Established, Refusal> {
    // A `connect_to` rule names where to dial, so it takes the target off the upstream proxy.
    let direct_rule = shared
        .resolver
        .connect_to_rule(&target.host, target.port)
        .is_none();
    let via_upstream = match &shared.upstream {
        Some(p) if direct_rule && !shared.no_proxy.matches(&target.host, target.port) => {
            Some(p.clone())
        }
        _ => None,
    };
    if let Some(proxy) = via_upstream {
        target.upstream_proxy = Some(proxy.display());
        rec.upstream_proxy = Some(proxy.display());
        // Resolve and dial the upstream proxy itself.
        let t = Instant::now();
        let resolved = match shared.resolver.lookup(&proxy.host, proxy.port).await {
            Ok(r) => r,
            Err(e) => {
                rec.phases.dns = Some(PhaseOutcome::new("failed", t.elapsed()));
                let ev = target.event(
                    Phase::UpstreamProxy,
                    FailureKind::UpstreamProxyUnreachable,
                    format!("cannot resolve upstream proxy {}: {e}", proxy.display()),
                    t.elapsed(),
                );
                return Err(refuse(shared, &ev));
            }
        };
        rec.phases.dns = Some(PhaseOutcome::new("ok", t.elapsed()));
        let t = Instant::now();
        let (mut stream, peer) = match dial(&resolved.addrs, shared.config.timeouts.connect).await {
            Ok(s) => s,
            Err(e) => {
                rec.phases.connect = Some(PhaseOutcome::new("failed", t.elapsed()));
                let kind = resource_limit(&e).unwrap_or(FailureKind::UpstreamProxyUnreachable);
                let ev = target.event(
                    Phase::UpstreamProxy,
                    kind,
                    format!("cannot reach upstream proxy {}: {e}", proxy.display()),
                    t.elapsed(),
                );
                return Err(refuse(shared, &ev));
            }
        };
        rec.phases.connect = Some(PhaseOutcome::new("ok", t.elapsed()));
        rec.resolved = vec![peer.to_string()];
        let t = Instant::now();
        let answer = connect_through(
            &mut stream,
            &proxy,
            &target.host,
            target.port,
            shared.config.timeouts.upstream_proxy,
        )
        .await;
        match answer {
            Ok(leftover) => {
                rec.phases.upstream_proxy = Some(PhaseOutcome::new("ok", t.elapsed()));
                Ok(Established {
                    stream,
                    leftover,
                    peer,
                    dns: None,
                })
            }
            Err(e) => {
                let (outcome, kind) = match &e {
                    UpstreamError::Status { status, reason, .. } => (
                        "failed",
                        FailureKind::UpstreamProxyStatus {
                            status: *status,
                            reason: reason.clone(),
                        },
                    ),
                    UpstreamError::Closed { .. }
                    | UpstreamError::Io { .. }
                    | UpstreamError::Garbled { .. } => ("failed", FailureKind::UpstreamProxyClosed),
                    UpstreamError::Timeout { .. } => ("timeout", FailureKind::UpstreamProxyTimeout),
                };
                rec.phases.upstream_proxy = Some(PhaseOutcome::new(outcome, t.elapsed()));
                let ev = target.event(Phase::UpstreamProxy, kind, e.to_string(), t.elapsed());
                Err(refuse(shared, &ev))
            }
        }
    } else {
        let t = Instant::now();
        let resolved = match shared.resolver.resolve(&target.host, target.port).await {
            Ok(r) => r,
            Err(e) => {
                let (outcome, kind) = match &e {
                    ResolveError::NxDomain { .. } => ("failed", FailureKind::DnsNxDomain),
                    ResolveError::NoAddresses { .. } => ("failed", FailureKind::DnsNoAddresses),
                    ResolveError::Timeout { .. } => ("timeout", FailureKind::DnsTimeout),
                    ResolveError::Other { .. } => ("failed", FailureKind::DnsError),
                };
                rec.phases.dns = Some(PhaseOutcome::new(outcome, t.elapsed()));
                let ev = target.event(Phase::Dns, kind, e.to_string(), t.elapsed());
                return Err(refuse(shared, &ev));
            }
        };
        rec.phases.dns = Some(PhaseOutcome::new("ok", t.elapsed()));
        rec.resolved = resolved.addrs.iter().map(|a| a.to_string()).collect();
        rec.dns = Some(resolved.answer.clone());
        if let Some(finding) =
            shared
                .diagnoser
                .judge_resolution(&target.host, &target.endpoint, &resolved.answer)
        {
            let mut ev = target.event(
                Phase::Dns,
                FailureKind::DnsUnexpectedAnswer,
                format!(
                    "{} resolved to {} but the configuration expects a private endpoint address",
                    target.host,
                    resolved
                        .answer
                        .addresses
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                t.elapsed(),
            );
            ev.dns = Some(resolved.answer.clone());
            shared.write_failure(&ev, &[finding], None);
            rec.failed = true;
        }
        // The addresses, not the name, are what the connection reaches: a name may resolve to
        // the metadata service or to loopback.
        let admitted = shared
            .destinations
            .check_name(&target.host, target.port)
            .and_then(|name| shared.destinations.admit(&resolved.addrs, name));
        let addrs = match admitted {
            Ok(a) => a,
            Err(denial) => {
                let mut ev = target.event(
                    Phase::Policy,
                    FailureKind::DestinationNotAllowed {
                        addr: denial.what.clone(),
                        rule: denial.rule.clone(),
                    },
                    format!("{} ({} resolved to it)", denial, target.host),
                    t.elapsed(),
                );
                ev.dns = Some(resolved.answer);
                return Err(refuse(shared, &ev));
            }
        };
        let t = Instant::now();
        match dial(&addrs, shared.config.timeouts.connect).await {
            Ok((stream, peer)) => {
                rec.phases.connect = Some(PhaseOutcome::new("ok", t.elapsed()));
                rec.resolved = vec![peer.to_string()];
                Ok(Established {
                    stream,
                    leftover: Vec::new(),
                    peer,
                    dns: Some(resolved.answer),
                })
            }
            Err(e) => {
                let (outcome, kind) = match &e {
                    DialError::Refused { .. } => ("failed", FailureKind::ConnectRefused),
                    DialError::Timeout { .. } => ("timeout", FailureKind::ConnectTimeout),
                    DialError::Unreachable { .. } => ("failed", FailureKind::ConnectUnreachable),
                    DialError::Other { .. } | DialError::NoAddress => {
                        ("failed", FailureKind::ConnectError)
                    }
                    DialError::ResourceLimit { .. } => (
                        "failed",
                        resource_limit(&e).unwrap_or(FailureKind::ConnectError),
                    ),
                };
                rec.phases.connect = Some(PhaseOutcome::new(outcome, t.elapsed()));
                let mut ev = target.event(Phase::Connect, kind, e.to_string(), t.elapsed());
                ev.dns = Some(resolved.answer);
                Err(refuse(shared, &ev))
            }
        }
    }
}

/// The failure of a dial that ran out of descriptors, naming the limit.
pub fn resource_limit(e: &DialError) -> Option<FailureKind> {
    match e {
        DialError::ResourceLimit { errno, limit, .. } => Some(FailureKind::ResourceLimit {
            errno: (*errno).to_string(),
            nofile_soft: limit.soft,
            nofile_hard: limit.hard,
        }),
        _ => None,
    }
}

/// Diagnose and log a failure that the client is told about.
pub fn refuse(shared: &Shared, ev: &crate::observe::FailureEvent) -> Refusal {
    let status = reply::status_for(&ev.kind);
    let r = shared.report(ev, Some(status.as_u16()));
    Refusal {
        reply: reply::Reply::new(status, r.reason, r.findings.first().map(|f| f.cause)),
        logged: r.logged,
    }
}
