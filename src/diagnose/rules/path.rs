//! Rules for the network path after resolution: TCP connect, the upstream proxy, TLS seen in
//! passthrough, certificates seen through interception, timeouts and stalls.

use super::*;

pub(super) fn connect_failure(
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
        e.extend(data_context_evidence(t, ctx, cfg));
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
        e.push(format!(
            "allow {}:{} on the path from this host",
            t.host, ev.port
        ));
    }
    out.push(find(&c::CLIENT_FIREWALL, conf, e));
    out
}

// ---------------------------------------------------------------------------------------------
// Upstream proxy.

pub(super) fn upstream_proxy(
    ev: &FailureEvent,
    t: Target<'_>,
    ctx: &ContextView,
    cfg: &RulesConfig,
) -> Vec<Finding> {
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
    // A policy refusal of the data host only; 407 concerns regdoc's own credentials.
    let refused = matches!(
        ev.kind,
        FailureKind::UpstreamProxyStatus { status: 403, .. }
    );
    if t.is_data() && refused && (ctx.rest_ok_age.is_some() || ctx.rest_ok_any_age.is_some()) {
        let mut d = data_context_evidence(t, ctx, cfg);
        d.push("the upstream proxy lets the REST endpoint through but not this data host".into());
        out.push(find(&c::DATA_ENDPOINT_FIREWALL, Medium, d));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// TLS seen in passthrough.

pub(super) fn tls_path(
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
        FailureKind::TlsServerReset => format!(
            "the connection to {} was reset (TCP RST) in answer to the ClientHello{}: a firewall on the path that filters by SNI does this",
            ev.target,
            ev.tls
                .as_ref()
                .and_then(|t| t.sni.as_deref())
                .map(|s| format!(" naming {}", redact(s)))
                .unwrap_or_default()
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
    if ev.kind == FailureKind::TlsServerReset {
        if let Some(p) = &ev.upstream_proxy {
            e.push(format!(
                "the reset came through upstream proxy {}: the proxy, or a firewall behind it, refused the name",
                redact(p)
            ));
        }
    }
    let mut out = Vec::new();
    if private_addr && ev.kind == FailureKind::TlsServerSilent {
        out.push(find(&c::PRIVATE_ENDPOINT_UNREACHABLE, Medium, e.clone()));
        out.push(find(&c::CLIENT_FIREWALL, Medium, e));
        return out;
    }
    if t.is_data() {
        let mut d = e.clone();
        d.extend(data_context_evidence(t, ctx, cfg));
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
    out
}

pub(super) fn upstream_certificate(
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

/// Whether a client that hung up in the middle of its handshake under regdoc's certificate
/// (no alert) refused that certificate. Not when the same client's calls to this registry's
/// REST endpoint worked through regdoc within the context window: it accepted the same
/// certificate moments ago, so the hang-up is the client dropping a connection it no longer
/// wants (Go cancels a push's or pull's other connections once one request has failed). A
/// client that refuses a certificate says so with an alert (Go, OpenSSL and rustls do), which
/// is a refusal whatever came before.
pub fn hang_up_is_refusal(ctx: &ContextView, kind: EndpointKind) -> bool {
    !(kind == EndpointKind::RegistryRest && ctx.rest_ok_age.is_some())
}

pub(super) fn client_rejected(detail: &str, t: Target<'_>) -> Vec<Finding> {
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

pub(super) fn headers_timeout(
    ev: &FailureEvent,
    t: Target<'_>,
    ctx: &ContextView,
    cfg: &RulesConfig,
) -> Vec<Finding> {
    let e = vec![format!(
        "no response headers from {} within {} ms",
        ev.target, ev.elapsed_ms
    )];
    if t.is_data() {
        let mut d = e.clone();
        d.extend(data_context_evidence(t, ctx, cfg));
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

/// The server's connection ended before any response headers. No status came from the server,
/// so nothing here says the registry "answered". Read like a silence ([`headers_timeout`]), with
/// what the transport adds: over TLS with the server's verified certificate nothing on the path
/// could read the request, so the registry side (or a stateful firewall dropping the flow) ended
/// it; over plain HTTP a reset is what a filtering device on the path sends.
pub(super) fn closed_before_headers(
    ev: &FailureEvent,
    how: EarlyClose,
    t: Target<'_>,
    ctx: &ContextView,
    cfg: &RulesConfig,
) -> Vec<Finding> {
    let request = ev
        .http
        .as_ref()
        .map(|ex| format!(" ({} {})", redact(&ex.method), redact(&ex.path_class)))
        .unwrap_or_default();
    let e = vec![format!(
        "the connection to {} was {} before any response headers to the request{request}: no HTTP status came from the server",
        ev.target,
        how.describe()
    )];
    if t.is_data() {
        let mut d = e.clone();
        d.extend(data_context_evidence(t, ctx, cfg));
        return vec![
            find(&c::DATA_ENDPOINT_FIREWALL, Medium, d),
            find(&c::REGISTRY_ERROR, Low, e),
        ];
    }
    let over_tls = ev.tls.as_ref().is_some_and(|tls| tls.version.is_some());
    if !over_tls && how == EarlyClose::Reset {
        let mut f = e.clone();
        f.push("over plain HTTP a device on the path can read the request and reset it".into());
        return vec![
            find(&c::CLIENT_FIREWALL, Medium, f),
            find(&c::REGISTRY_ERROR, Low, e),
        ];
    }
    let mut r = e.clone();
    if over_tls {
        r.push(
            "TLS with the server's verified certificate was up, so nothing on the path read the request: the registry (or its load balancer) ended it, or a stateful firewall dropped the established connection"
                .into(),
        );
    } else {
        r.push(
            "the connection was up: the server (or a middlebox) ended it without answering".into(),
        );
    }
    vec![
        find(&c::REGISTRY_ERROR, Medium, r),
        find(&c::CLIENT_FIREWALL, Low, e),
    ]
}

pub(super) fn stalled(
    idle_secs: u64,
    bytes_before: u64,
    t: Target<'_>,
    ctx: &ContextView,
) -> Vec<Finding> {
    let mut e = vec![format!(
        "{bytes_before} bytes flowed, then nothing for {idle_secs} s"
    )];
    if let Some(r) = t.endpoint.region.as_deref().or(ctx.region.as_deref()) {
        e.push(format!("data endpoint region {r}"));
    }
    let conf = if t.is_data() { High } else { Medium };
    vec![find(&c::TRANSFER_STALLED, conf, e)]
}
