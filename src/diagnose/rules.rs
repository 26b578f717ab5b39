//! The rules: small pure functions from a failure (or an HTTP exchange) plus context to findings.
//!
//! Each rule looks at one kind of fact and names the documented causes it points to, with a
//! confidence and the facts that made it think so. No rule reads a clock or a socket: the time is
//! `ContextView::now`. Evidence never quotes a credential; server text goes through
//! [`text::redact`].

use super::catalog::{self as c, Cause};
use super::context::ContextView;
use super::text::{self, age, redact, unix_to_rfc3339};
use super::{Confidence, Finding};
use crate::config::{Config, RegistryConfig};
use crate::endpoint::{Endpoint, EndpointKind};
use crate::http::credentials::UsernameKind;
use crate::http::jwt::Claims;
use crate::observe::{CertProblem, DnsAnswer, FailureEvent, FailureKind, HttpExchange};
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
    /// Lifetime assumed for tokens without `exp`.
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
        | FailureKind::PortNotAllowed { .. }
        | FailureKind::ProxyAuthRequired { .. } => proxy_policy(ev),
        FailureKind::DnsNxDomain
        | FailureKind::DnsNoAddresses
        | FailureKind::DnsTimeout
        | FailureKind::DnsError => dns_failure(ev, t, ctx, cfg),
        FailureKind::ConnectRefused
        | FailureKind::ConnectTimeout
        | FailureKind::ConnectUnreachable
        | FailureKind::ConnectError => connect_failure(ev, t, ctx, cfg),
        FailureKind::UpstreamProxyStatus { .. }
        | FailureKind::UpstreamProxyClosed
        | FailureKind::UpstreamProxyTimeout
        | FailureKind::UpstreamProxyUnreachable => upstream_proxy(ev, t, ctx),
        FailureKind::TlsServerSilent
        | FailureKind::TlsServerClosed
        | FailureKind::TlsNotTls
        | FailureKind::TlsAlert { .. } => tls_path(ev, t, ctx, cfg),
        FailureKind::TlsUpstreamCertificate { problem, detail } => {
            upstream_certificate(*problem, detail, ev, cfg)
        }
        FailureKind::TlsClientRejected { detail } => client_rejected(detail, t),
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
        FailureKind::ResponseHeadersTimeout => headers_timeout(ev, t, ctx),
        FailureKind::TransferStalled {
            idle_secs,
            bytes_before,
        } => stalled(*idle_secs, *bytes_before, t, ctx),
    };
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
    }
    merged.sort_by_key(|f| std::cmp::Reverse(f.confidence));
    merged
}

// ---------------------------------------------------------------------------------------------
// Client side: the request to regdoc itself.

fn bad_request(ev: &FailureEvent) -> Vec<Finding> {
    let what = match &ev.kind {
        FailureKind::HeadTooLarge { limit } => format!("request head larger than {limit} bytes"),
        FailureKind::RequestTimeout => "request head not finished in time".to_string(),
        _ => "request head is not a valid proxy request".to_string(),
    };
    vec![find(
        &c::BAD_CLIENT_REQUEST,
        High,
        vec![what, format!("client {}", ev.client.ip())],
    )]
}

fn proxy_scheme(ev: &FailureEvent) -> Vec<Finding> {
    let evidence = vec![
        "the client opened TLS (a ClientHello) where an HTTP CONNECT request was expected".into(),
        format!(
            "client {} has https:// in its proxy URL; regdoc speaks plain HTTP",
            ev.client.ip()
        ),
    ];
    vec![
        find(&c::PROXY_SCHEME_MISMATCH, High, evidence.clone()),
        find(
            &c::DOCKER_CONFIG,
            Medium,
            vec!["the daemon's proxy setting must be fixed, then the daemon restarted".into()],
        ),
    ]
}

fn proxy_policy(ev: &FailureEvent) -> Vec<Finding> {
    let e = match &ev.kind {
        FailureKind::PortNotAllowed { port } => {
            format!("destination port {port} is not in allowed_ports")
        }
        FailureKind::ClientNotAllowed => {
            format!("client {} is not in allowed_clients", ev.client.ip())
        }
        FailureKind::ProxyAuthRequired { provided: false } => {
            "proxy authentication is required and the client sent none".into()
        }
        FailureKind::ProxyAuthRequired { provided: true } => {
            "the client's proxy credentials were not accepted".into()
        }
        _ => "refused by regdoc policy".into(),
    };
    vec![find(&c::PROXY_POLICY, High, vec![e])]
}

// ---------------------------------------------------------------------------------------------
// DNS.

/// Hints that a registry host name is mistyped. Facts about ACR names: lower case, 5 to 50
/// letters and digits, login server `<name>.azurecr.io`.
pub fn name_hints(host: &str) -> Vec<String> {
    let mut hints = Vec::new();
    let host = host.trim_end_matches('.');
    if host.chars().any(|c| c.is_ascii_uppercase()) {
        hints.push(format!(
            "{host:?} has upper-case letters; login servers are lower case"
        ));
    }
    let lower = host.to_ascii_lowercase();
    if !lower.contains('.') {
        hints.push(format!(
            "{host:?} has no domain; use the full login server {lower}.azurecr.io"
        ));
        return hints;
    }
    if let Some(name) = lower.strip_suffix(".azurecr.io") {
        if name.contains(".data") || name.contains(".privatelink") {
            return hints;
        }
        if name.contains('.') {
            hints.push(format!(
                "{name:?} contains a dot; ACR registry names are letters and digits only"
            ));
        } else {
            if name.contains('-') || name.contains('_') {
                hints.push(format!(
                    "{name:?} contains '-' or '_'; ACR registry names are letters and digits only"
                ));
            }
            let len = name.chars().count();
            if !(5..=50).contains(&len) {
                hints.push(format!(
                    "{name:?} is {len} characters; ACR registry names are 5 to 50"
                ));
            }
        }
        return hints;
    }
    // A suffix that looks like azurecr.io but is not.
    let labels: Vec<&str> = lower.split('.').collect();
    if labels.len() >= 2 {
        let domain = labels[labels.len() - 2];
        let tld = labels[labels.len() - 1];
        let near = text::edit_distance(domain, "azurecr") <= 2 && domain.len() >= 5;
        if domain == "azurecr" && tld != "io" || near && domain != "azurecr" {
            hints.push(format!(
                "{host:?} ends in .{domain}.{tld}; ACR login servers end in .azurecr.io"
            ));
        }
    }
    hints
}

fn describe_answer(host: &str, dns: &DnsAnswer) -> String {
    let mut s = host.to_string();
    for cn in dns.cnames.iter().take(8) {
        s.push_str(" -> ");
        s.push_str(cn);
    }
    if !dns.addresses.is_empty() {
        let addrs: Vec<String> = dns
            .addresses
            .iter()
            .take(4)
            .map(|a| a.to_string())
            .collect();
        s.push_str(" -> ");
        s.push_str(&addrs.join(", "));
    }
    format!("answer ({}): {}", dns.source, text::cap(&s, 280))
}

fn via_privatelink(dns: Option<&DnsAnswer>) -> bool {
    dns.is_some_and(|d| d.cnames.iter().any(|c| c.contains(".privatelink.")))
}

/// The private zone record a data endpoint or REST host needs.
fn privatelink_record(host: &str) -> String {
    match host.strip_suffix(".azurecr.io") {
        Some(prefix) => format!("{prefix}.privatelink.azurecr.io"),
        None => host.to_string(),
    }
}

fn rest_context(ctx: &ContextView) -> Option<String> {
    let reg = ctx.registry.as_deref()?;
    match (ctx.rest_ok_age, ctx.rest_ok_any_age) {
        (Some(a), _) => Some(format!(
            "REST endpoint {reg}.azurecr.io worked for this client {} earlier",
            age(a)
        )),
        (None, Some(a)) => Some(format!(
            "REST endpoint {reg}.azurecr.io worked for another client {} earlier",
            age(a)
        )),
        _ => None,
    }
}

/// Evidence naming the exact data host to allow.
fn allow_data_host(t: Target<'_>, ctx: &ContextView) -> String {
    let region = t.endpoint.region.as_deref().or(ctx.region.as_deref());
    match region {
        Some(r) => format!("allow {}:443 (data endpoint, region {r})", t.host),
        None => format!("allow {}:443 (layer storage)", t.host),
    }
}

fn data_context_evidence(t: Target<'_>, ctx: &ContextView) -> Vec<String> {
    let mut e = vec![allow_data_host(t, ctx)];
    if let Some(r) = rest_context(ctx) {
        e.push(r);
    }
    if let Some(a) = ctx.redirected_age {
        e.push(format!(
            "the registry redirected a client here {} earlier",
            age(a)
        ));
    }
    if !ctx.data_ok.is_empty() {
        e.push(format!(
            "other data hosts of this registry worked: {}",
            ctx.data_ok.join(", ")
        ));
    }
    e
}

fn is_private_registry(t: Target<'_>, ctx: &ContextView, cfg: &RulesConfig) -> bool {
    cfg.registry_for(t.host, t.endpoint, ctx.registry.as_deref())
        .is_some_and(|r| r.private_endpoint || !r.expected_cidrs.is_empty())
}

fn dns_failure(
    ev: &FailureEvent,
    t: Target<'_>,
    ctx: &ContextView,
    cfg: &RulesConfig,
) -> Vec<Finding> {
    let private = is_private_registry(t, ctx, cfg);
    let privatelink = via_privatelink(ev.dns.as_ref());
    let no_name = matches!(
        ev.kind,
        FailureKind::DnsNxDomain | FailureKind::DnsNoAddresses
    );
    let what = match ev.kind {
        FailureKind::DnsNxDomain => format!("{} does not exist in DNS (NXDOMAIN)", t.host),
        FailureKind::DnsNoAddresses => format!("{} has no address records", t.host),
        FailureKind::DnsTimeout => {
            format!("no DNS answer for {} within {} ms", t.host, ev.elapsed_ms)
        }
        _ => format!("DNS lookup of {} failed: {}", t.host, redact(&ev.error)),
    };
    let mut ev_base = vec![what];
    if let Some(d) = &ev.dns {
        if !d.cnames.is_empty() {
            ev_base.push(describe_answer(t.host, d));
        }
    }
    let mut out = Vec::new();
    if privatelink && no_name {
        let mut e = ev_base.clone();
        e.push(format!(
            "the chain enters the private zone but {} has no A record there",
            privatelink_record(t.host)
        ));
        out.push(find(&c::PRIVATE_ENDPOINT_DNS, High, e));
    }
    if !no_name {
        // The resolver itself failed: not a name problem.
        out.push(find(&c::CLIENT_FIREWALL, Medium, {
            let mut e = ev_base.clone();
            e.push("the resolver did not answer: DNS is blocked or the resolver is down".into());
            e
        }));
        if private {
            out.push(find(&c::PRIVATE_ENDPOINT_DNS, Low, ev_base));
        }
        return out;
    }
    match t.kind() {
        EndpointKind::RegistryRest => {
            let hints = name_hints(t.host);
            let mut e = ev_base.clone();
            e.extend(hints.iter().cloned());
            if private {
                out.push(find(&c::REGISTRY_NAME, Medium, e));
                let mut p = ev_base;
                p.push(format!(
                    "{} is configured with a private endpoint: its private zone may lack the record {}",
                    t.host,
                    privatelink_record(t.host)
                ));
                out.push(find(&c::PRIVATE_ENDPOINT_DNS, Low, p));
            } else {
                let conf = if hints.is_empty() && ev.kind == FailureKind::DnsNoAddresses {
                    Medium
                } else {
                    High
                };
                out.push(find(&c::REGISTRY_NAME, conf, e));
            }
        }
        EndpointKind::DataEndpoint | EndpointKind::BlobStorage => {
            let mut e = ev_base.clone();
            e.extend(data_context_evidence(t, ctx));
            if private || privatelink {
                e.push(format!(
                    "each data endpoint needs its own record: {} in privatelink.azurecr.io",
                    privatelink_record(t.host)
                ));
                out.push(find(&c::PRIVATE_ENDPOINT_DNS, High, e));
            } else {
                let conf = if ctx.rest_ok_age.is_some() || ctx.rest_ok_any_age.is_some() {
                    High
                } else {
                    Medium
                };
                out.push(find(&c::DATA_ENDPOINT_FIREWALL, conf, e));
                out.push(find(
                    &c::PRIVATE_ENDPOINT_DNS,
                    Low,
                    vec![format!(
                        "if this registry has a private endpoint, the record {} is missing",
                        privatelink_record(t.host)
                    )],
                ));
            }
        }
        _ => {
            let mut e = ev_base;
            e.extend(name_hints(t.host));
            out.push(find(&c::REGISTRY_NAME, Medium, e));
        }
    }
    out
}

/// A DNS answer that contradicts the configuration: public where a private endpoint is expected,
/// or outside `expected_cidrs`. Works on successful lookups too.
pub fn resolution(
    t: Target<'_>,
    dns: &DnsAnswer,
    cfg: &RulesConfig,
    learnt_registry: Option<&str>,
) -> Option<Finding> {
    if dns.source == "literal" || dns.addresses.is_empty() {
        return None;
    }
    let reg = cfg.registry_for(t.host, t.endpoint, learnt_registry)?;
    let mut e = vec![describe_answer(t.host, dns)];
    if !reg.expected_cidrs.is_empty() {
        let outside: Vec<String> = dns
            .addresses
            .iter()
            .filter(|a| !reg.expected_cidrs.iter().any(|n| n.contains(*a)))
            .map(|a| a.to_string())
            .collect();
        if outside.is_empty() {
            return None;
        }
        let want: Vec<String> = reg.expected_cidrs.iter().map(|n| n.to_string()).collect();
        e.push(format!(
            "{} is outside the expected networks {}",
            outside.join(", "),
            want.join(", ")
        ));
    } else if reg.private_endpoint {
        let public: Vec<&IpAddr> = dns
            .addresses
            .iter()
            .filter(|a| text::is_public(**a))
            .collect();
        if public.is_empty() {
            return None;
        }
        e.push(format!(
            "{} is a public address but {} is configured with a private endpoint",
            public[0], reg.host
        ));
    } else {
        return None;
    }
    if !via_privatelink(Some(dns)) {
        e.push("the CNAME chain does not pass through privatelink.azurecr.io".into());
    }
    e.push(format!(
        "expected {} to resolve through {}",
        t.host,
        privatelink_record(t.host)
    ));
    Some(find(&c::PRIVATE_ENDPOINT_DNS, High, e))
}

// ---------------------------------------------------------------------------------------------
// TCP connect.

fn connect_failure(
    ev: &FailureEvent,
    t: Target<'_>,
    ctx: &ContextView,
    cfg: &RulesConfig,
) -> Vec<Finding> {
    let addr = ev.dns.as_ref().and_then(|d| d.addresses.first().copied());
    let how = match ev.kind {
        FailureKind::ConnectRefused => "was refused",
        FailureKind::ConnectTimeout => "timed out",
        FailureKind::ConnectUnreachable => "found no route",
        _ => "failed",
    };
    let mut base = vec![match addr {
        Some(a) => format!(
            "TCP connect to {a}:{} {how} after {} ms",
            ev.port, ev.elapsed_ms
        ),
        None => format!(
            "TCP connect to {} {how} after {} ms",
            ev.target, ev.elapsed_ms
        ),
    }];
    if let Some(d) = &ev.dns {
        if !d.cnames.is_empty() {
            base.push(describe_answer(t.host, d));
        }
    }
    let private_addr = ev
        .dns
        .as_ref()
        .is_some_and(|d| d.addresses.iter().any(|a| text::is_private(*a)));
    let mut out = Vec::new();
    if private_addr {
        let conf = if ev.kind == FailureKind::ConnectRefused {
            Medium
        } else {
            High
        };
        let mut e = base.clone();
        e.push("the name resolves to a private (RFC 1918) address: a private endpoint".into());
        out.push(find(&c::PRIVATE_ENDPOINT_UNREACHABLE, conf, e));
        out.push(find(
            &c::CLIENT_FIREWALL,
            Low,
            vec!["an NSG or firewall rule between this host and the endpoint subnet".into()],
        ));
        return out;
    }
    if t.is_data() {
        let mut e = base;
        e.extend(data_context_evidence(t, ctx));
        let conf = if ctx.rest_ok_age.is_some() || ctx.rest_ok_any_age.is_some() {
            High
        } else {
            Medium
        };
        out.push(find(&c::DATA_ENDPOINT_FIREWALL, conf, e));
        return out;
    }
    let conf = match (t.kind(), &ev.kind) {
        (_, FailureKind::ConnectError) => Medium,
        (EndpointKind::RegistryRest, _) => High,
        _ => Medium,
    };
    let mut e = base;
    if t.kind() == EndpointKind::RegistryRest {
        e.push(format!("allow {}:443 on the path from this host", t.host));
        if is_private_registry(t, ctx, cfg) {
            e.push("this registry is configured private but resolved to a public address".into());
        }
    }
    out.push(find(&c::CLIENT_FIREWALL, conf, e));
    out
}

// ---------------------------------------------------------------------------------------------
// Upstream proxy.

fn upstream_proxy(ev: &FailureEvent, t: Target<'_>, ctx: &ContextView) -> Vec<Finding> {
    let via = ev
        .upstream_proxy
        .as_deref()
        .map(|p| format!(" ({})", redact(p)))
        .unwrap_or_default();
    let mut e = vec![match &ev.kind {
        FailureKind::UpstreamProxyStatus { status, reason } => format!(
            "upstream proxy{via} answered CONNECT {} with {status} {}",
            ev.target,
            redact(reason)
        ),
        FailureKind::UpstreamProxyClosed => {
            format!("upstream proxy{via} closed the connection before answering CONNECT")
        }
        FailureKind::UpstreamProxyTimeout => {
            format!(
                "upstream proxy{via} did not answer CONNECT within {} ms",
                ev.elapsed_ms
            )
        }
        _ => format!("upstream proxy{via} could not be reached"),
    }];
    match &ev.kind {
        FailureKind::UpstreamProxyStatus { status: 407, .. } => {
            e.push("the upstream proxy wants credentials: add them to upstream.proxy".into())
        }
        FailureKind::UpstreamProxyStatus { status: 403, .. } => e.push(format!(
            "the upstream proxy's policy does not allow {}",
            ev.target
        )),
        _ => {}
    }
    let mut out = vec![find(&c::UPSTREAM_PROXY, High, e)];
    let refused = matches!(
        ev.kind,
        FailureKind::UpstreamProxyStatus {
            status: 403 | 407..=499,
            ..
        }
    );
    if t.is_data() && refused && (ctx.rest_ok_age.is_some() || ctx.rest_ok_any_age.is_some()) {
        let mut d = data_context_evidence(t, ctx);
        d.push("the upstream proxy lets the REST endpoint through but not this data host".into());
        out.push(find(&c::DATA_ENDPOINT_FIREWALL, Medium, d));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// TLS seen in passthrough.

fn tls_path(
    ev: &FailureEvent,
    t: Target<'_>,
    ctx: &ContextView,
    cfg: &RulesConfig,
) -> Vec<Finding> {
    let private_addr = ev
        .dns
        .as_ref()
        .is_some_and(|d| d.addresses.iter().any(|a| text::is_private(*a)));
    if let FailureKind::TlsAlert { level, description } = &ev.kind {
        let d = description.to_ascii_lowercase();
        let e = vec![format!(
            "the server side answered the ClientHello with a {} alert: {}",
            redact(level),
            redact(description)
        )];
        let mut out = Vec::new();
        match d.as_str() {
            "protocol_version" | "insufficient_security" => {
                out.push(find(&c::DOCKER_CONFIG, Medium, {
                    let mut e = e.clone();
                    e.push(format!(
                        "client offered {}; ACR requires TLS 1.2 or later",
                        ev.tls
                            .as_ref()
                            .map(|t| t.client_versions.join(", "))
                            .unwrap_or_else(|| "unknown versions".into())
                    ));
                    e
                }));
                out.push(find(&c::TLS_INTERCEPTION, Low, e));
            }
            "unrecognized_name" => {
                out.push(find(&c::REGISTRY_NAME, Medium, e.clone()));
                out.push(find(&c::TLS_INTERCEPTION, Low, e));
            }
            _ => out.push(find(&c::TLS_INTERCEPTION, Medium, e)),
        }
        return out;
    }
    let what = match ev.kind {
        FailureKind::TlsServerSilent => format!(
            "TCP to {} connected but nothing answered the ClientHello within {} ms",
            ev.target, ev.elapsed_ms
        ),
        FailureKind::TlsServerClosed => format!(
            "{} closed the connection right after the ClientHello (typical of SNI filtering)",
            ev.target
        ),
        _ => format!(
            "{} answered the ClientHello with bytes that are not TLS (a block page or a plain proxy)",
            ev.target
        ),
    };
    let mut e = vec![what];
    if let Some(sni) = ev.tls.as_ref().and_then(|t| t.sni.as_deref()) {
        e.push(format!("SNI {}", redact(sni)));
    }
    let mut out = Vec::new();
    if private_addr && ev.kind == FailureKind::TlsServerSilent {
        out.push(find(&c::PRIVATE_ENDPOINT_UNREACHABLE, Medium, e.clone()));
        out.push(find(&c::CLIENT_FIREWALL, Medium, e));
        return out;
    }
    if t.is_data() {
        let mut d = e.clone();
        d.extend(data_context_evidence(t, ctx));
        let conf = if ctx.rest_ok_age.is_some() || ctx.rest_ok_any_age.is_some() {
            High
        } else {
            Medium
        };
        out.push(find(&c::DATA_ENDPOINT_FIREWALL, conf, d));
    } else {
        let conf = match ev.kind {
            FailureKind::TlsNotTls => Medium,
            _ if t.kind() == EndpointKind::RegistryRest => High,
            _ => Medium,
        };
        let mut e2 = e.clone();
        e2.push("a firewall or middlebox on the path swallows or cuts the handshake".into());
        out.push(find(&c::CLIENT_FIREWALL, conf, e2));
    }
    if ev.kind == FailureKind::TlsNotTls {
        out.push(find(&c::TLS_INTERCEPTION, Low, e));
    }
    let _ = cfg;
    out
}

fn upstream_certificate(
    problem: CertProblem,
    detail: &str,
    ev: &FailureEvent,
    cfg: &RulesConfig,
) -> Vec<Finding> {
    let e = vec![format!(
        "the certificate presented for {} failed verification: {}",
        ev.host,
        redact(detail)
    )];
    let skew = ev
        .http
        .as_ref()
        .and_then(|h| h.date_skew_secs)
        .filter(|s| s.unsigned_abs() > cfg.max_clock_skew.as_secs());
    match problem {
        CertProblem::UnknownIssuer => vec![find(&c::TLS_INTERCEPTION, High, {
            let mut e = e;
            e.push(
                "the issuer is not a root Azure chains to: something on the path re-signs TLS"
                    .into(),
            );
            e
        })],
        CertProblem::NameMismatch => vec![
            find(&c::TLS_INTERCEPTION, Medium, e.clone()),
            find(&c::REGISTRY_NAME, Low, e),
        ],
        CertProblem::Expired | CertProblem::NotYetValid => {
            let mut s = e.clone();
            s.push(match skew {
                Some(k) => format!("the server's Date differs from local time by {k} s"),
                None => "certificates look expired or not yet valid when the local clock is wrong"
                    .into(),
            });
            vec![
                find(
                    &c::CLOCK_SKEW,
                    if skew.is_some() { High } else { Medium },
                    s,
                ),
                find(&c::TLS_INTERCEPTION, Medium, e),
            ]
        }
        CertProblem::Other => vec![find(&c::TLS_INTERCEPTION, Medium, e)],
    }
}

fn client_rejected(detail: &str, t: Target<'_>) -> Vec<Finding> {
    vec![find(
        &c::INTERCEPT_CA_UNTRUSTED,
        High,
        vec![
            format!(
                "the client refused regdoc's certificate for {}: {}",
                t.host,
                redact(detail)
            ),
            format!(
                "expected regdoc's CA at /etc/docker/certs.d/{}/ca.crt",
                t.host
            ),
        ],
    )]
}

// ---------------------------------------------------------------------------------------------
// Timeouts and stalls.

fn headers_timeout(ev: &FailureEvent, t: Target<'_>, ctx: &ContextView) -> Vec<Finding> {
    let e = vec![format!(
        "no response headers from {} within {} ms",
        ev.target, ev.elapsed_ms
    )];
    if t.is_data() {
        let mut d = e.clone();
        d.extend(data_context_evidence(t, ctx));
        return vec![
            find(&c::DATA_ENDPOINT_FIREWALL, Medium, d),
            find(&c::REGISTRY_ERROR, Low, e),
        ];
    }
    if t.kind() == EndpointKind::RegistryRest {
        return vec![
            find(&c::REGISTRY_ERROR, Medium, {
                let mut e = e.clone();
                e.push(
                    "the connection was up: the registry (or a middlebox) did not answer".into(),
                );
                e
            }),
            find(&c::CLIENT_FIREWALL, Low, e),
        ];
    }
    vec![find(&c::CLIENT_FIREWALL, Medium, e)]
}

fn stalled(idle_secs: u64, bytes_before: u64, t: Target<'_>, ctx: &ContextView) -> Vec<Finding> {
    let mut e = vec![format!(
        "{bytes_before} bytes flowed, then nothing for {idle_secs} s"
    )];
    if let Some(r) = t.endpoint.region.as_deref().or(ctx.region.as_deref()) {
        e.push(format!("data endpoint region {r}"));
    }
    let conf = if t.is_data() { High } else { Medium };
    vec![find(&c::TRANSFER_STALLED, conf, e)]
}

// ---------------------------------------------------------------------------------------------
// HTTP exchanges (interception or plain forwarding).

fn unix_now(ctx: &ContextView) -> i64 {
    ctx.now
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The action a registry request needs: `pull`, `push` or `delete`.
fn needed_action(ex: &HttpExchange) -> &'static str {
    match ex.method.to_ascii_uppercase().as_str() {
        "GET" | "HEAD" => "pull",
        "DELETE" => "delete",
        _ => "push",
    }
}

fn role_for(action: &str) -> &'static str {
    match action {
        "pull" => "AcrPull",
        "delete" => "AcrDelete",
        _ => "AcrPush",
    }
}

/// Whether the token's `access` grants `action` on `repo`.
fn grants(claims: &Claims, repo: &str, action: &str) -> bool {
    claims.access.as_ref().is_some_and(|acc| {
        acc.iter().any(|a| {
            a.kind == "repository"
                && (a.name == repo || a.name == "*")
                && a.actions.iter().any(|x| x == action || x == "*")
        })
    })
}

fn describe_grants(claims: &Claims, repo: &str) -> String {
    let actions: Vec<String> = claims
        .access
        .iter()
        .flatten()
        .filter(|a| a.kind == "repository" && (a.name == repo || a.name == "*"))
        .flat_map(|a| a.actions.iter().cloned())
        .collect();
    if actions.is_empty() {
        format!("the token grants nothing on repository {repo}")
    } else {
        format!(
            "the token grants [{}] on repository {repo}",
            actions.join(",")
        )
    }
}

fn username_fact(ex: &HttpExchange) -> Option<String> {
    let auth = ex.auth.as_ref()?;
    Some(match auth.username_kind {
        Some(UsernameKind::NullGuidToken) => {
            "user name 00000000-0000-0000-0000-000000000000 (an ACR token as password)".into()
        }
        Some(UsernameKind::ServicePrincipal) => {
            "user name is a GUID (a service principal application id)".into()
        }
        Some(UsernameKind::Other) => {
            "user name is neither a GUID nor the null GUID (admin account or repository token)"
                .into()
        }
        None => format!("credentials: {} scheme", redact(&auth.scheme)),
    })
}

fn error_codes(ex: &HttpExchange) -> Vec<String> {
    ex.registry_errors
        .iter()
        .map(|e| e.code.to_ascii_uppercase())
        .collect()
}

fn has_code(ex: &HttpExchange, code: &str) -> bool {
    ex.registry_errors
        .iter()
        .any(|e| e.code.eq_ignore_ascii_case(code))
}

/// All server text of the reply, lower case, for phrase matching.
fn server_text(ex: &HttpExchange) -> String {
    let mut s = String::new();
    for e in &ex.registry_errors {
        s.push_str(&e.message);
        s.push(' ');
    }
    if let Some(b) = &ex.body_text {
        s.push_str(b);
    }
    s.to_ascii_lowercase()
}

fn registry_says(ex: &HttpExchange) -> Option<String> {
    if let Some(e) = ex.registry_errors.first() {
        let detail = e
            .detail
            .as_ref()
            .map(|d| format!(" detail {}", text::cap(&d.to_string(), 120)))
            .unwrap_or_default();
        return Some(format!(
            "registry says {} {}: {}{}",
            ex.status,
            redact(&e.code),
            redact(&e.message),
            redact(&detail)
        ));
    }
    ex.body_text
        .as_ref()
        .filter(|b| !b.trim().is_empty())
        .map(|b| format!("registry says {}: {}", ex.status, redact(b)))
}

fn request_line(ex: &HttpExchange, t: Target<'_>) -> String {
    let what = match (&ex.repository, &ex.reference) {
        (Some(r), Some(f)) => format!(" {}:{}", redact(r), redact(f)),
        (Some(r), None) => format!(" {}", redact(r)),
        _ => String::new(),
    };
    format!(
        "{} {} ({}{what}) -> {}",
        redact(&ex.method),
        t.host,
        redact(&ex.path_class),
        ex.status
    )
}

/// Whether an exchange is part of a healthy flow. Rules never report these.
pub fn is_healthy(ex: &HttpExchange) -> bool {
    let token_ep = matches!(ex.path_class.as_str(), "token" | "exchange");
    match ex.status {
        100..=399 => true,
        // The challenge: the client has not authenticated yet and is told how to.
        401 => {
            ex.auth.is_none()
                && !token_ep
                && ex
                    .www_authenticate
                    .as_ref()
                    .is_some_and(|c| c.error.is_none() && !c.scheme.is_empty())
        }
        // A push asks whether a blob exists before uploading it; "no" is expected.
        404 if ex.method.eq_ignore_ascii_case("HEAD") && ex.path_class == "blob" => true,
        404 if ex.method.eq_ignore_ascii_case("HEAD") && ex.path_class == "manifest" => {
            let (Some(repo), Some(claims)) = (
                ex.repository.as_deref(),
                ex.auth.as_ref().and_then(|a| a.claims.as_ref()),
            ) else {
                return false;
            };
            grants(claims, repo, "push")
        }
        _ => false,
    }
}

/// Causes of an HTTP exchange's failure. Empty for healthy exchanges.
pub fn exchange(
    ex: &HttpExchange,
    t: Target<'_>,
    ctx: &ContextView,
    cfg: &RulesConfig,
) -> Vec<Finding> {
    let mut out = issued_token_skew(ex, ctx, cfg);
    if is_healthy(ex) {
        return rank(out);
    }
    let token_ep = matches!(ex.path_class.as_str(), "token" | "exchange");
    let mut base = vec![request_line(ex, t)];
    base.extend(registry_says(ex));
    out.extend(match ex.status {
        401 if token_ep => token_unauthorized(ex, &base, ctx, cfg),
        401 => resource_unauthorized(ex, &base, ctx, cfg),
        403 => forbidden(ex, &base, token_ep),
        404 => not_found(ex, &base, token_ep),
        400 => bad_request_reply(ex, &base, token_ep),
        429 => vec![find(&c::THROTTLED, High, base.clone())],
        500..=599 => vec![find(&c::REGISTRY_ERROR, High, base.clone())],
        _ => vec![find(&c::REGISTRY_ERROR, Low, base.clone())],
    });
    if has_code(ex, "TOOMANYREQUESTS") && ex.status != 429 {
        out.push(find(&c::THROTTLED, High, base.clone()));
    }
    if let Some(skew) = ex
        .date_skew_secs
        .filter(|s| s.unsigned_abs() > cfg.max_clock_skew.as_secs())
    {
        let conf = if matches!(ex.status, 401 | 403) {
            Medium
        } else {
            Low
        };
        out.push(find(
            &c::CLOCK_SKEW,
            conf,
            vec![format!(
                "the registry's Date header differs from local time by {skew} s (limit {} s)",
                cfg.max_clock_skew.as_secs()
            )],
        ));
    }
    if let Some(v) = ex.user_agent.as_deref().and_then(old_docker) {
        out.push(find(
            &c::DOCKER_CONFIG,
            Medium,
            vec![format!(
                "client is Docker {v}; ACR needs Docker 18.03 or later"
            )],
        ));
    }
    rank(out)
}

/// A Docker version older than 18.03 in a User-Agent (`docker/17.09.0-ce go/go1.8.3 ...`).
pub fn old_docker(user_agent: &str) -> Option<String> {
    let v = user_agent
        .split_whitespace()
        .find_map(|w| w.strip_prefix("docker/"))?;
    let mut parts = v.split(['.', '-']);
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next()?.parse().ok()?;
    // Docker versions are YY.MM since 17.03; older 1.x releases are older still.
    ((major, minor) < (18, 3)).then(|| text::cap(&redact(v), 40))
}

fn token_unauthorized(
    ex: &HttpExchange,
    base: &[String],
    ctx: &ContextView,
    cfg: &RulesConfig,
) -> Vec<Finding> {
    let now = unix_now(ctx);
    let mut e = base.to_vec();
    e.extend(username_fact(ex));
    let said = server_text(ex);
    if said.contains("not registered with aad") {
        e.push(
            "ACR does not know this user name as an application (client) id in its tenant".into(),
        );
        return vec![find(&c::INVALID_CREDENTIALS, High, e)];
    }
    if said.contains("client id must be guid") {
        e.push("a service principal logs in with its application (client) id, a GUID".into());
        return vec![find(&c::INVALID_CREDENTIALS, High, e)];
    }
    let Some(auth) = &ex.auth else {
        e.push("the client sent no credentials: anonymous pull is off, run docker login".into());
        return vec![find(&c::INVALID_CREDENTIALS, High, e)];
    };
    if let Some(claims) = &auth.claims {
        if let Some(f) = claims_time_findings(claims, now, &e, cfg, "presented") {
            return f;
        }
    }
    if auth.username_kind == Some(UsernameKind::NullGuidToken) && auth.claims.is_none() {
        e.push(
            "the null-GUID user name needs an ACR token from `az acr login --expose-token` as password; the password is not a token"
                .into(),
        );
        return vec![find(&c::INVALID_CREDENTIALS, High, e)];
    }
    vec![
        find(&c::INVALID_CREDENTIALS, High, e),
        find(
            &c::EXPIRED_CREDENTIALS,
            Low,
            vec![
                "an expired service principal secret or token password gets the same answer".into(),
            ],
        ),
    ]
}

/// Expired or not-yet-valid claims: the finding for them, or `None` when the times are fine.
fn claims_time_findings(
    claims: &Claims,
    now: i64,
    base: &[String],
    cfg: &RulesConfig,
    which: &str,
) -> Option<Vec<Finding>> {
    let skew = i64::try_from(cfg.max_clock_skew.as_secs()).unwrap_or(i64::MAX);
    if let Some(exp) = claims.exp.filter(|exp| *exp <= now) {
        let mut e = base.to_vec();
        e.push(format!(
            "the {which} token expired at {} ({} s before this request)",
            unix_to_rfc3339(exp),
            now - exp
        ));
        if let Some(iat) = claims.iat {
            e.push(format!("it was issued at {}", unix_to_rfc3339(iat)));
        }
        return Some(vec![find(&c::EXPIRED_CREDENTIALS, High, e)]);
    }
    if let Some(nbf) = claims.nbf.filter(|nbf| *nbf > now.saturating_add(skew)) {
        let mut e = base.to_vec();
        e.push(format!(
            "the {which} token is not valid before {} ({} s ahead of the local clock)",
            unix_to_rfc3339(nbf),
            nbf - now
        ));
        return Some(vec![find(&c::CLOCK_SKEW, High, e)]);
    }
    None
}

fn resource_unauthorized(
    ex: &HttpExchange,
    base: &[String],
    ctx: &ContextView,
    cfg: &RulesConfig,
) -> Vec<Finding> {
    let now = unix_now(ctx);
    let mut e = base.to_vec();
    let challenge_error = ex
        .www_authenticate
        .as_ref()
        .and_then(|c| c.error.as_deref())
        .map(str::to_ascii_lowercase);
    let Some(auth) = &ex.auth else {
        // 401 without a usable challenge: the registry did not say how to authenticate.
        e.push("401 without a WWW-Authenticate challenge".into());
        return vec![find(&c::REGISTRY_ERROR, Medium, e)];
    };
    let presented = auth.claims.as_ref();
    if let Some(claims) = presented {
        if let Some(f) = claims_time_findings(claims, now, &e, cfg, "presented") {
            return f;
        }
    } else if auth.scheme == "bearer" {
        // An opaque token: reason from the claims regdoc saw issued, if any.
        if let Some(note) = &ctx.token {
            if let Some(f) = claims_time_findings(&note.claims, now, &e, cfg, "last issued") {
                return f;
            }
        }
    }
    let action = needed_action(ex);
    if challenge_error.as_deref() == Some("insufficient_scope") {
        e.push(format!(
            "the registry says the token lacks the scope for {action}; needs {}",
            role_for(action)
        ));
        return vec![find(&c::NOT_AUTHORIZED, High, e)];
    }
    if challenge_error.as_deref() == Some("invalid_token") {
        e.push("the registry rejected the token itself (invalid_token)".into());
        return vec![
            find(&c::INVALID_CREDENTIALS, Medium, e),
            find(&c::EXPIRED_CREDENTIALS, Low, base.to_vec()),
        ];
    }
    if ex.path_class == "ping" || auth.scheme == "basic" {
        e.extend(username_fact(ex));
        return vec![
            find(&c::INVALID_CREDENTIALS, High, e),
            find(&c::EXPIRED_CREDENTIALS, Low, base.to_vec()),
        ];
    }
    let claims = presented.or(ctx.token.as_ref().map(|n| &n.claims));
    match (ex.repository.as_deref(), claims) {
        (Some(repo), Some(claims)) if grants(claims, repo, action) => {
            e.push(describe_grants(claims, repo));
            e.push(format!(
                "the token does grant {action} on {repo}: ACR answers 401 for a repository or tag that does not exist"
            ));
            let conf = if ex.path_class == "manifest" {
                Medium
            } else {
                Low
            };
            vec![
                find(&c::NOT_FOUND, conf, e),
                find(&c::NOT_AUTHORIZED, Low, base.to_vec()),
            ]
        }
        (Some(repo), Some(claims)) => {
            e.push(describe_grants(claims, repo));
            e.push(format!(
                "the request needs {action}: grant {} (or add it to the token's scope map)",
                role_for(action)
            ));
            vec![find(&c::NOT_AUTHORIZED, High, e)]
        }
        _ => {
            e.push(format!(
                "the request needs {action} ({}); the token's grants are not visible",
                role_for(action)
            ));
            vec![
                find(&c::NOT_AUTHORIZED, Medium, e),
                find(
                    &c::NOT_FOUND,
                    Low,
                    vec!["ACR also answers 401 for a repository or tag that does not exist".into()],
                ),
                find(&c::EXPIRED_CREDENTIALS, Low, base.to_vec()),
            ]
        }
    }
}

/// The client IP quoted in ACR's firewall denial: `client with IP '203.0.113.7' is not allowed`.
pub fn denied_client_ip(message: &str) -> Option<IpAddr> {
    let lower = message.to_ascii_lowercase();
    let start = lower.find("client with ip")? + "client with ip".len();
    let rest = &message[start..];
    let rest = rest.trim_start().trim_start_matches(['\'', '"']);
    let end = rest
        .find(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn forbidden(ex: &HttpExchange, base: &[String], token_ep: bool) -> Vec<Finding> {
    let said = server_text(ex);
    let mut e = base.to_vec();
    if said.contains("is not allowed access") || said.contains("client with ip") {
        let ip = ex
            .registry_errors
            .iter()
            .map(|r| r.message.as_str())
            .chain(ex.body_text.as_deref())
            .find_map(denied_client_ip);
        if let Some(ip) = ip {
            e.push(format!(
                "ACR saw this request come from {ip}: add it to the registry's network rules"
            ));
        }
        return vec![find(&c::PUBLIC_ACCESS_RULES, High, e)];
    }
    if said.contains("admin user is disabled") {
        e.push("the admin account is disabled on this registry".into());
        return vec![find(&c::INVALID_CREDENTIALS, High, e)];
    }
    let insufficient = ex
        .www_authenticate
        .as_ref()
        .and_then(|c| c.error.as_deref())
        .is_some_and(|s| s.eq_ignore_ascii_case("insufficient_scope"));
    if insufficient || has_code(ex, "DENIED") || token_ep {
        let action = needed_action(ex);
        if !token_ep {
            e.push(format!("the request needs {action}: {}", role_for(action)));
        }
        return vec![find(&c::NOT_AUTHORIZED, High, e)];
    }
    if ex.path_class == "ping" {
        e.push("a 403 on /v2/ is how ACR's network rules refuse a client".into());
        return vec![
            find(&c::PUBLIC_ACCESS_RULES, Medium, e),
            find(&c::NOT_AUTHORIZED, Low, base.to_vec()),
        ];
    }
    vec![
        find(&c::NOT_AUTHORIZED, Medium, e),
        find(&c::PUBLIC_ACCESS_RULES, Low, base.to_vec()),
    ]
}

fn not_found(ex: &HttpExchange, base: &[String], token_ep: bool) -> Vec<Finding> {
    let e = base.to_vec();
    if ex.path_class == "ping" || token_ep {
        let mut e = e;
        e.push("the host does not serve the registry API at this path".into());
        return vec![find(&c::REGISTRY_NAME, Medium, e)];
    }
    if has_code(ex, "NAME_UNKNOWN") {
        return vec![
            find(&c::NOT_FOUND, High, e),
            find(
                &c::REGISTRY_NAME,
                Low,
                vec!["the repository may live in another registry".into()],
            ),
        ];
    }
    if has_code(ex, "MANIFEST_UNKNOWN") {
        return vec![find(&c::NOT_FOUND, High, e)];
    }
    vec![find(&c::NOT_FOUND, Medium, e)]
}

fn bad_request_reply(ex: &HttpExchange, base: &[String], token_ep: bool) -> Vec<Finding> {
    let e = base.to_vec();
    if has_code(ex, "MANIFEST_BLOB_UNKNOWN") {
        return vec![
            find(&c::GEO_REPLICATION, Medium, {
                let mut e = e.clone();
                e.push("layers pushed earlier are unknown where the manifest landed".into());
                e
            }),
            find(&c::NOT_FOUND, Low, e),
        ];
    }
    if has_code(ex, "NAME_INVALID") {
        let mut e = e;
        e.push("repository names: lower-case letters, digits, '.', '-', '_', '/'".into());
        return vec![find(&c::NOT_FOUND, Medium, e)];
    }
    if token_ep {
        return vec![find(&c::INVALID_CREDENTIALS, Medium, e)];
    }
    let codes = error_codes(ex);
    let mut e = e;
    if !codes.is_empty() {
        e.push(format!("codes: {}", codes.join(",")));
    }
    vec![find(&c::REGISTRY_ERROR, Low, e)]
}

/// Issued token whose times only make sense with a wrong local clock.
fn issued_token_skew(ex: &HttpExchange, ctx: &ContextView, cfg: &RulesConfig) -> Vec<Finding> {
    let Some(claims) = &ex.issued_token else {
        return Vec::new();
    };
    let now = unix_now(ctx);
    let skew = i64::try_from(cfg.max_clock_skew.as_secs()).unwrap_or(i64::MAX);
    let mut e = Vec::new();
    if let Some(nbf) = claims
        .nbf
        .or(claims.iat)
        .filter(|t| *t > now.saturating_add(skew))
    {
        e.push(format!(
            "the registry issued a token valid from {}, {} s ahead of the local clock",
            unix_to_rfc3339(nbf),
            nbf - now
        ));
    }
    if let Some(exp) = claims.exp.filter(|exp| *exp <= now) {
        e.push(format!(
            "the registry issued a token that had already expired at {} by the local clock",
            unix_to_rfc3339(exp)
        ));
    }
    if e.is_empty() {
        Vec::new()
    } else {
        vec![find(&c::CLOCK_SKEW, Medium, e)]
    }
}

fn status_only(status: u16, t: Target<'_>) -> Vec<Finding> {
    let e = vec![format!("{} answered HTTP {status}", t.host)];
    match status {
        401 => vec![find(&c::INVALID_CREDENTIALS, Low, e)],
        403 => vec![
            find(&c::NOT_AUTHORIZED, Low, e.clone()),
            find(&c::PUBLIC_ACCESS_RULES, Low, e),
        ],
        404 => vec![find(&c::NOT_FOUND, Low, e)],
        429 => vec![find(&c::THROTTLED, High, e)],
        500..=599 => vec![find(&c::REGISTRY_ERROR, High, e)],
        _ => vec![find(&c::REGISTRY_ERROR, Low, e)],
    }
}
