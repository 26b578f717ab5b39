//! The rules: small pure functions from a failure (or an HTTP exchange) plus context to findings.
//!
//! Each rule looks at one kind of fact and names the documented causes it points to, with a
//! confidence and the facts that made it think so. No rule reads a clock or a socket: the time is
//! `ContextView::now`. Evidence never quotes a credential; server text goes through
//! [`text::redact`].

mod client;
mod dns;
mod http;
mod path;
mod tls;

use client::*;
use dns::*;
use http::*;
use path::*;
use tls::*;

pub use dns::{name_hints, pinned_address, resolution};
pub use http::{denied_client_ip, exchange, is_healthy, old_docker};
pub use path::hang_up_is_refusal;

use super::catalog::{self as c, Cause};
use super::context::ContextView;
use super::text::{self, age, redact, unix_to_rfc3339};
use super::{Confidence, Finding};
use crate::config::{Config, RegistryConfig};
use crate::endpoint::{Endpoint, EndpointKind};
use crate::http::credentials::UsernameKind;
use crate::http::jwt::Claims;
use crate::observe::{
    CertProblem, DnsAnswer, DnsSource, EarlyClose, FailureEvent, FailureKind, HttpExchange,
};
use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use Confidence::{High, Low, Medium};

/// What the rules need from the configuration.
#[derive(Debug, Clone)]
pub struct RulesConfig {
    /// Registries the operator named, with their expected network shape.
    pub registries: Vec<RegistryConfig>,
    /// Clock difference beyond which skew is reported.
    pub max_clock_skew: Duration,
    /// Lifetime assumed for tokens without `exp`: one older than this (by `iat`, or since
    /// regdoc saw it issued) explains a 401 as expired credentials.
    pub token_lifetime: Duration,
}

impl Default for RulesConfig {
    fn default() -> Self {
        let d = crate::config::DiagnosisConfig::default();
        RulesConfig {
            registries: Vec::new(),
            max_clock_skew: d.max_clock_skew,
            token_lifetime: d.token_lifetime,
        }
    }
}

impl RulesConfig {
    pub fn from_config(cfg: &Config) -> Self {
        RulesConfig {
            registries: cfg.registries.clone(),
            max_clock_skew: cfg.diagnosis.max_clock_skew,
            token_lifetime: cfg.diagnosis.token_lifetime,
        }
    }

    /// The `[[registry]]` entry a host belongs to: by exact host, or by registry name for its
    /// data endpoints (`myreg.westeurope.data.azurecr.io` belongs to `myreg.azurecr.io`).
    pub fn registry_for(
        &self,
        host: &str,
        endpoint: &Endpoint,
        learnt: Option<&str>,
    ) -> Option<&RegistryConfig> {
        let host = host.trim_end_matches('.');
        let name = endpoint.registry.as_deref().or(learnt);
        self.registries.iter().find(|r| {
            let rhost = r.host.trim_end_matches('.');
            rhost.eq_ignore_ascii_case(host)
                || name.is_some_and(|n| {
                    let rname = rhost
                        .strip_suffix(".azurecr.io")
                        .unwrap_or(rhost)
                        .to_ascii_lowercase();
                    rname.eq_ignore_ascii_case(n)
                })
        })
    }
}

fn find(cause: &'static Cause, confidence: Confidence, evidence: Vec<String>) -> Finding {
    Finding {
        cause,
        confidence,
        evidence,
    }
}

/// Where a failure happened: the host as asked, and what kind of endpoint it is.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub host: &'a str,
    pub endpoint: &'a Endpoint,
}

impl Target<'_> {
    fn kind(&self) -> EndpointKind {
        self.endpoint.kind
    }

    fn is_data(&self) -> bool {
        self.endpoint.kind.is_data()
    }
}

/// All causes of a failure, most likely first, duplicates merged.
/// Put `cause` first when a judged failure has one that explains the others (a registry reached
/// at the wrong address answers whatever that address answers); the rest become alternatives.
/// A healthy exchange (no findings) stays healthy.
pub fn lead_with(cause: Option<Finding>, findings: Vec<Finding>) -> Vec<Finding> {
    match cause {
        Some(first) if !findings.is_empty() => {
            let lead = first.cause.id;
            let mut out = vec![first];
            out.extend(findings.into_iter().filter(|f| f.cause.id != lead));
            out
        }
        _ => findings,
    }
}

pub fn evaluate(ev: &FailureEvent, ctx: &ContextView, cfg: &RulesConfig) -> Vec<Finding> {
    let t = Target {
        host: &ev.host,
        endpoint: &ev.endpoint,
    };
    let mut out = match &ev.kind {
        FailureKind::MalformedRequest
        | FailureKind::HeadTooLarge { .. }
        | FailureKind::RequestTimeout => bad_request(ev),
        FailureKind::TlsInsteadOfHttp => proxy_scheme(ev),
        FailureKind::ClientNotAllowed
        | FailureKind::ClientConnectionLimit { .. }
        | FailureKind::PortNotAllowed { .. }
        | FailureKind::ProxyAuthRequired { .. }
        | FailureKind::TlsSniMismatch { .. }
        | FailureKind::InterceptNameNotPermitted { .. }
        | FailureKind::DestinationNotAllowed { .. } => proxy_policy(ev),
        FailureKind::ResourceLimit { .. } => resource_limit(ev),
        FailureKind::DnsNxDomain
        | FailureKind::DnsNoAddresses
        | FailureKind::DnsTimeout
        | FailureKind::DnsError => dns_failure(ev, t, ctx, cfg),
        FailureKind::DnsUnexpectedAnswer => ev
            .dns
            .as_ref()
            .and_then(|a| resolution(t, a, cfg, None))
            .into_iter()
            .collect(),
        FailureKind::ConnectRefused
        | FailureKind::ConnectTimeout
        | FailureKind::ConnectUnreachable
        | FailureKind::ConnectError => connect_failure(ev, t, ctx, cfg),
        FailureKind::UpstreamProxyStatus { .. }
        | FailureKind::UpstreamProxyClosed
        | FailureKind::UpstreamProxyTimeout
        | FailureKind::UpstreamProxyUnreachable => upstream_proxy(ev, t, ctx, cfg),
        FailureKind::TlsServerSilent
        | FailureKind::TlsServerClosed
        | FailureKind::TlsServerReset
        | FailureKind::TlsNotTls
        | FailureKind::TlsAlert { .. } => tls_path(ev, t, ctx, cfg),
        FailureKind::TlsUpstreamCertificate { problem, detail } => {
            upstream_certificate(*problem, detail, ev, cfg)
        }
        FailureKind::TlsClientRejected { detail } => client_rejected(detail, t),
        FailureKind::TlsClientRefused {
            signal,
            alert,
            probe,
        } => client_refused(*signal, alert.as_deref(), probe.as_ref(), ev, t),
        FailureKind::HttpStatus { status } => match &ev.http {
            Some(ex) => {
                let found = exchange(ex, t, ctx, cfg);
                if found.is_empty() {
                    // The transport judged it a failure; say at least what the status means.
                    status_only(*status, t)
                } else {
                    found
                }
            }
            None => status_only(*status, t),
        },
        FailureKind::ResponseHeadersTimeout => headers_timeout(ev, t, ctx, cfg),
        FailureKind::UpstreamClosedBeforeHeaders { how } => {
            closed_before_headers(ev, *how, t, ctx, cfg)
        }
        FailureKind::TransferStalled {
            idle_secs,
            bytes_before,
        } => stalled(*idle_secs, *bytes_before, t, ctx),
    };
    // Second sentence of every finding: the first says what failed, this where its address
    // came from.
    if let Some(e) = pinned_address(ev) {
        for f in &mut out {
            f.evidence.insert(f.evidence.len().min(1), e.clone());
        }
    }
    // A wrong DNS answer for a private registry explains most later failures on that path.
    if let Some(dns) = &ev.dns {
        if let Some(f) = resolution(t, dns, cfg, ctx.registry.as_deref()) {
            // First among equals: the later phases only failed because of this answer.
            out.insert(0, f);
        }
    }
    rank(out)
}

/// Merge findings of the same cause (highest confidence, evidence joined) and order them: most
/// confident first, rule order kept among equals.
pub fn rank(findings: Vec<Finding>) -> Vec<Finding> {
    let mut merged: Vec<Finding> = Vec::new();
    for f in findings {
        match merged.iter_mut().find(|m| m.cause.id == f.cause.id) {
            Some(m) => {
                m.confidence = m.confidence.max(f.confidence);
                for e in f.evidence {
                    if !m.evidence.contains(&e) {
                        m.evidence.push(e);
                    }
                }
            }
            None => merged.push(f),
        }
    }
    for m in &mut merged {
        m.evidence.truncate(10);
        // Hosts and server text are already vetted; this only bounds the record's size.
        for e in &mut m.evidence {
            if e.len() > 2 * text::MAX_EVIDENCE_CHARS || e.chars().any(char::is_control) {
                *e = text::cap(
                    &e.chars().filter(|c| !c.is_control()).collect::<String>(),
                    2 * text::MAX_EVIDENCE_CHARS,
                );
            }
        }
    }
    merged.sort_by_key(|f| std::cmp::Reverse(f.confidence));
    merged
}
