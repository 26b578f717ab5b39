//! Rules for a client that refused the server's certificate in passthrough, read with what
//! regdoc's own probe of the same server along the same path found.

use super::*;
use crate::observe::{CertProbe, ClientSignal};

/// The probe's facts as one evidence line, e.g. `probe: direct TLS to 203.0.113.2:443
/// sni=reg.azurecr.io issuer="CN=mitmproxy, O=mitmproxy" chain_to_public_root=false`.
pub(super) fn probe_line(p: &CertProbe) -> String {
    let hop = match p.hop {
        "upstream_proxy" => format!("TLS through upstream proxy {}", redact(&p.via)),
        _ => format!("direct TLS to {}", redact(&p.via)),
    };
    if let Some(e) = &p.error {
        return format!("probe: {hop} sni={} failed: {}", redact(&p.sni), redact(e));
    }
    let public = match p.chain_to_public_root {
        Some(b) => b.to_string(),
        None => "unknown (empty system store)".into(),
    };
    let mut s = format!(
        "probe: {hop} sni={} issuer=\"{}\" subject=\"{}\" chain_to_public_root={public}",
        redact(&p.sni),
        redact(p.issuer.as_deref().unwrap_or("?")),
        redact(p.subject.as_deref().unwrap_or("?")),
    );
    if p.chain_to_extra_root {
        s.push_str(" chain_to_extra_root=true");
    }
    if let Some(problem) = p.problem {
        s.push_str(&format!(" problem={}", problem_name(problem)));
    }
    s
}

fn problem_name(p: CertProblem) -> &'static str {
    match p {
        CertProblem::UnknownIssuer => "unknown_issuer",
        CertProblem::NameMismatch => "name_mismatch",
        CertProblem::Expired => "expired",
        CertProblem::NotYetValid => "not_yet_valid",
        CertProblem::Other => "other",
    }
}

fn signal_line(signal: ClientSignal, alert: Option<&str>, ev: &FailureEvent) -> String {
    match (signal, alert) {
        (ClientSignal::Alert, Some(a)) => format!(
            "the client answered the server's certificate for {} with a {} alert and sent no application data",
            ev.target,
            redact(a)
        ),
        (ClientSignal::Closed, _) => format!(
            "the client closed the connection to {} after the server's first flight without answering it",
            ev.target
        ),
        _ => format!(
            "the client answered the server's first flight for {} with one encrypted record too short to be its Finished (an alert) and closed without application data",
            ev.target
        ),
    }
}

/// A client refused the handshake after seeing the server's certificate (passthrough).
pub(super) fn client_refused(
    signal: ClientSignal,
    alert: Option<&str>,
    probe: Option<&CertProbe>,
    ev: &FailureEvent,
    t: Target<'_>,
) -> Vec<Finding> {
    let mut e = vec![signal_line(signal, alert, ev)];
    let via = ev
        .upstream_proxy
        .as_deref()
        .map(|p| format!("through upstream proxy {}", redact(p)))
        .unwrap_or_else(|| "the direct route to the server".into());
    let Some(p) = probe.filter(|p| p.error.is_none()) else {
        e.push(match probe {
            Some(p) => probe_line(p),
            None => "no probe of the server's certificate was made (probe.enabled is off, or one ran for this target within probe.interval)".into(),
        });
        return without_probe(alert, e);
    };
    e.push(probe_line(p));
    let dates = dates_line(p);
    match p.problem {
        Some(CertProblem::UnknownIssuer) => vec![find(&c::TLS_INTERCEPTION, High, {
            e.push(format!(
                "the certificate presented for {} is issued by \"{}\", which chains to no public root: something on the path ({via}) re-signs TLS",
                t.host,
                redact(p.issuer.as_deref().unwrap_or("?"))
            ));
            e
        })],
        None if p.chain_to_extra_root => {
            e.push(format!(
                "the chain ends at a CA listed in intercept.extra_roots, not at a public root: a private or inspecting CA on the path ({via}) that the client does not trust"
            ));
            vec![
                find(&c::TLS_INTERCEPTION, Medium, e.clone()),
                find(&c::CLIENT_TRUST_STORE, Medium, e),
            ]
        }
        None => vec![find(&c::CLIENT_TRUST_STORE, High, {
            e.push(format!(
                "regdoc verified the same chain against this host's public roots ({via}): it is valid for {} now, so the client's own trust store lacks its root",
                t.host
            ));
            e
        })],
        Some(CertProblem::NotYetValid) => {
            e.extend(dates);
            e.push(
                "the certificate starts after the local time: the local clock is probably behind"
                    .into(),
            );
            vec![
                find(&c::CLOCK_SKEW, High, e.clone()),
                find(&c::REGISTRY_CERTIFICATE, Low, e),
            ]
        }
        Some(CertProblem::Expired) => {
            e.extend(dates);
            // A clock far ahead is rarer than a certificate left to expire, unless the
            // certificate would have expired longer ago than it was ever valid.
            let ahead = match (p.not_before, p.not_after) {
                (Some(nb), Some(na)) => p.checked_at - na > na - nb,
                _ => false,
            };
            let (cert, skew) = if ahead {
                (Medium, Medium)
            } else {
                (Medium, Low)
            };
            vec![
                find(&c::REGISTRY_CERTIFICATE, cert, e.clone()),
                find(&c::CLOCK_SKEW, skew, e),
            ]
        }
        Some(CertProblem::NameMismatch) => {
            e.push(format!(
                "the certificate does not name {}: the client reached another endpoint than it meant (a wrong name or address), or a captive portal or filtering device answered in its place",
                t.host
            ));
            vec![
                find(&c::REGISTRY_NAME, Medium, e.clone()),
                find(&c::CLIENT_FIREWALL, Medium, e),
            ]
        }
        Some(CertProblem::Other) => vec![find(&c::TLS_INTERCEPTION, Medium, e)],
    }
}

/// No certificate to judge: the alert is all there is.
fn without_probe(alert: Option<&str>, e: Vec<String>) -> Vec<Finding> {
    match alert {
        Some("certificate_expired") => vec![
            find(&c::REGISTRY_CERTIFICATE, Medium, e.clone()),
            find(&c::CLOCK_SKEW, Medium, e),
        ],
        _ => vec![
            find(&c::TLS_INTERCEPTION, Medium, e.clone()),
            find(&c::CLIENT_TRUST_STORE, Low, e),
        ],
    }
}

fn dates_line(p: &CertProbe) -> Vec<String> {
    match (p.not_before, p.not_after) {
        (Some(nb), Some(na)) => vec![format!(
            "the certificate is valid from {} to {}; the local clock read {}",
            unix_to_rfc3339(nb),
            unix_to_rfc3339(na),
            unix_to_rfc3339(p.checked_at)
        )],
        _ => Vec::new(),
    }
}
