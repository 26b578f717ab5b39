//! Pure judging: transport errors into the `FailureKind`s `run` records for them, and the facts
//! of a step into one line. No socket, no clock: the time comes in as a value.

use crate::diagnose::catalog::{self as c, Cause};
use crate::diagnose::text::{is_private, unix_to_rfc3339};
use crate::http::jwt::Claims;
use crate::intercept::upstream_tls::UpstreamTlsError;
use crate::net::dial::DialError;
use crate::net::resolve::ResolveError;
use crate::net::upstream::UpstreamError;
use crate::observe::{CertProbe, CertProblem, ClientSignal, DnsAnswer, FailureKind};
use std::time::Duration;

/// The kind `run` records for a failed lookup of the CONNECT target.
pub fn dns_kind(e: &ResolveError) -> FailureKind {
    match e {
        ResolveError::NxDomain { .. } => FailureKind::DnsNxDomain,
        ResolveError::NoAddresses { .. } => FailureKind::DnsNoAddresses,
        ResolveError::Timeout { .. } => FailureKind::DnsTimeout,
        ResolveError::Other { .. } => FailureKind::DnsError,
    }
}

/// The kind `run` records for a failed dial of the target.
pub fn dial_kind(e: &DialError) -> FailureKind {
    match e {
        DialError::Refused { .. } => FailureKind::ConnectRefused,
        DialError::Timeout { .. } => FailureKind::ConnectTimeout,
        DialError::Unreachable { .. } => FailureKind::ConnectUnreachable,
        DialError::Other { .. } | DialError::NoAddress => FailureKind::ConnectError,
        DialError::ResourceLimit { .. } => {
            crate::proxy::connect::resource_limit(e).unwrap_or(FailureKind::ConnectError)
        }
    }
}

/// The kind `run` records when the upstream proxy does not open the tunnel.
pub fn upstream_kind(e: &UpstreamError) -> FailureKind {
    match e {
        UpstreamError::Status { status, reason, .. } => FailureKind::UpstreamProxyStatus {
            status: *status,
            reason: reason.clone(),
        },
        UpstreamError::Closed { .. } | UpstreamError::Io { .. } | UpstreamError::Garbled { .. } => {
            FailureKind::UpstreamProxyClosed
        }
        UpstreamError::Timeout { .. } => FailureKind::UpstreamProxyTimeout,
    }
}

/// The kind of a handshake that failed before any certificate was judged (the same mapping
/// interception uses for its upstream handshake).
pub fn tls_kind(e: &UpstreamTlsError) -> FailureKind {
    match e {
        UpstreamTlsError::Certificate { problem, detail } => FailureKind::TlsUpstreamCertificate {
            problem: *problem,
            detail: detail.clone(),
        },
        UpstreamTlsError::Alert { description } => FailureKind::TlsAlert {
            level: "fatal".into(),
            description: description.clone(),
        },
        UpstreamTlsError::Reset { .. } => FailureKind::TlsServerReset,
        UpstreamTlsError::NotTls { .. } => FailureKind::TlsNotTls,
        UpstreamTlsError::Timeout { .. } => FailureKind::TlsServerSilent,
        UpstreamTlsError::Closed { .. } | UpstreamTlsError::Handshake { .. } => {
            FailureKind::TlsServerClosed
        }
    }
}

/// A certificate the check refused, as `run` records a Docker client refusing it in
/// passthrough: Go answers an untrusted chain with a `bad_certificate` alert, and regdoc's
/// own probe of the server says why.
pub fn refused_certificate(probe: CertProbe) -> FailureKind {
    FailureKind::TlsClientRefused {
        signal: ClientSignal::Alert,
        alert: Some("bad_certificate".into()),
        probe: Some(probe),
    }
}

/// `A 10.0.0.5 (private), 20.1.2.3 (public) via CNAME a -> b, from dns`.
pub fn describe_answer(a: &DnsAnswer) -> String {
    let addrs: Vec<String> = a
        .addresses
        .iter()
        .map(|ip| {
            let class = if ip.is_loopback() {
                "loopback"
            } else if is_private(*ip) {
                "private"
            } else {
                "public"
            };
            format!("{ip} ({class})")
        })
        .collect();
    let mut s = addrs.join(", ");
    if !a.cnames.is_empty() {
        s.push_str(&format!(" via CNAME {}", a.cnames.join(" -> ")));
    }
    if let Some(n) = &a.name {
        s.push_str(&format!(", answered as {n}"));
    }
    s.push_str(&format!(", from {}", a.source));
    s
}

/// `TLS1.3, issuer "CN=..." (public root), valid until 2027-01-01T00:00:00Z, names a, b`.
pub fn describe_certificate(version: Option<&str>, p: &CertProbe) -> String {
    let root = match (p.chain_to_public_root, p.chain_to_extra_root) {
        (Some(true), _) => "public root",
        (_, true) => "root from intercept.extra_roots, not public",
        (Some(false), false) => "no public root",
        (None, false) => "no system roots to compare",
    };
    let mut s = format!(
        "{}issuer \"{}\" ({root})",
        version.map(|v| format!("{v}, ")).unwrap_or_default(),
        p.issuer.as_deref().unwrap_or("?"),
    );
    if let (Some(nb), Some(na)) = (p.not_before, p.not_after) {
        let state = if p.checked_at < nb {
            "not yet valid"
        } else if p.checked_at > na {
            "expired"
        } else {
            "valid"
        };
        s.push_str(&format!(
            ", {state} {} to {}",
            unix_to_rfc3339(nb),
            unix_to_rfc3339(na)
        ));
    }
    if !p.names.is_empty() {
        s.push_str(&format!(", names {}", p.names.join(" ")));
    }
    s
}

/// Why a chain was refused, in words.
pub fn cert_problem_words(p: Option<CertProblem>) -> &'static str {
    match p {
        Some(CertProblem::UnknownIssuer) => "untrusted issuer",
        Some(CertProblem::NameMismatch) => "it does not name the host",
        Some(CertProblem::Expired) => "expired",
        Some(CertProblem::NotYetValid) => "not valid yet",
        Some(CertProblem::Other) | None => "refused",
    }
}

/// What a token's claims say against the operation the check is about to make: `scope`
/// (`repository:app:pull`) when an image was given. `now` in Unix seconds. `None` when the
/// token serves the purpose.
pub fn token_claims(
    claims: &Claims,
    scope: Option<&str>,
    now: i64,
) -> Option<(&'static Cause, String)> {
    if let Some(exp) = claims.exp.filter(|e| *e <= now) {
        return Some((
            &c::EXPIRED_CREDENTIALS,
            format!(
                "the token the registry issued expired at {} (local clock {})",
                unix_to_rfc3339(exp),
                unix_to_rfc3339(now)
            ),
        ));
    }
    let scope = scope?;
    let mut parts = scope.splitn(3, ':');
    let (Some(_), Some(name), Some(actions)) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let access = claims.access.as_ref()?;
    let granted = |action: &str| {
        access
            .iter()
            .any(|a| a.name == name && a.actions.iter().any(|x| x == action || x == "*"))
    };
    let missing: Vec<&str> = actions.split(',').filter(|a| !granted(a)).collect();
    if missing.is_empty() {
        return None;
    }
    Some((
        &c::NOT_AUTHORIZED,
        format!(
            "the token grants no {} on {name} (its access claim is {})",
            missing.join(","),
            serde_json::to_string(access).unwrap_or_default()
        ),
    ))
}

/// `exp in 3h0m, access repository:app:pull` from a token's claims.
pub fn describe_claims(claims: &Claims, now: i64) -> String {
    let mut parts = Vec::new();
    if let Some(g) = &claims.grant_type {
        parts.push(g.clone());
    }
    if let Some(exp) = claims.exp {
        let left = exp - now;
        parts.push(if left >= 0 {
            format!(
                "exp in {}",
                crate::diagnose::text::age(Duration::from_secs(left as u64))
            )
        } else {
            format!("expired {} s ago", -left)
        });
    }
    if let Some(aud) = &claims.aud {
        parts.push(format!("aud {}", aud.to_string().trim_matches('"')));
    }
    if let Some(access) = &claims.access {
        let list: Vec<String> = access
            .iter()
            .map(|a| format!("{}:{}:{}", a.kind, a.name, a.actions.join(",")))
            .collect();
        parts.push(if list.is_empty() {
            "access none".into()
        } else {
            format!("access {}", list.join(" "))
        });
    }
    parts.join(", ")
}

/// The clock skew finding when the registry's `Date` differs from local time by more than
/// `max`.
pub fn clock_skew(skew_secs: i64, max: Duration) -> Option<String> {
    (skew_secs.unsigned_abs() > max.as_secs()).then(|| {
        format!(
            "the registry's Date header differs from local time by {skew_secs} s (limit {} s)",
            max.as_secs()
        )
    })
}

/// The data endpoint of `registry` (an ACR login server) in `region`.
pub fn data_endpoint(registry: &str, region: &str) -> Option<String> {
    let name = registry.strip_suffix(".azurecr.io")?;
    (!name.is_empty() && !name.contains('.'))
        .then(|| format!("{name}.{}.data.azurecr.io", region.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::jwt::Access;

    fn claims(exp: i64, access: Vec<Access>) -> Claims {
        Claims {
            exp: Some(exp),
            access: Some(access),
            grant_type: Some("access_token".into()),
            ..Claims::default()
        }
    }

    fn access(name: &str, actions: &[&str]) -> Access {
        Access {
            kind: "repository".into(),
            name: name.into(),
            actions: actions.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn an_expired_token_is_expired_credentials() {
        let (cause, why) = token_claims(&claims(100, vec![]), None, 200).unwrap();
        assert_eq!(cause.id, "expired_credentials");
        assert!(why.contains("expired"), "{why}");
    }

    #[test]
    fn a_token_without_the_action_is_not_authorized() {
        let c = claims(1000, vec![access("app", &["pull"])]);
        assert!(token_claims(&c, Some("repository:app:pull"), 10).is_none());
        let (cause, why) = token_claims(&c, Some("repository:app:pull,push"), 10).unwrap();
        assert_eq!(cause.id, "not_authorized");
        assert!(why.contains("push on app"), "{why}");
        let (cause, _) = token_claims(&c, Some("repository:other:pull"), 10).unwrap();
        assert_eq!(cause.id, "not_authorized");
        // Without an intended operation only the expiry is judged.
        assert!(token_claims(&c, None, 10).is_none());
    }

    #[test]
    fn claims_are_described_without_the_token() {
        let c = claims(3600 + 10, vec![access("app", &["pull"])]);
        let s = describe_claims(&c, 10);
        assert!(s.contains("access_token"), "{s}");
        assert!(s.contains("repository:app:pull"), "{s}");
        assert!(s.contains("exp in"), "{s}");
    }

    #[test]
    fn skew_beyond_the_limit_only() {
        assert!(clock_skew(30, Duration::from_secs(60)).is_none());
        assert!(clock_skew(-300, Duration::from_secs(60)).is_some());
    }

    #[test]
    fn data_endpoints_of_acr_only() {
        assert_eq!(
            data_endpoint("myreg.azurecr.io", "WestEurope").as_deref(),
            Some("myreg.westeurope.data.azurecr.io")
        );
        assert_eq!(data_endpoint("reg.internal", "westeurope"), None);
    }

    #[test]
    fn answers_say_private_or_public() {
        let a = DnsAnswer {
            cnames: vec!["r.privatelink.azurecr.io".into()],
            addresses: vec!["10.0.0.5".parse().unwrap(), "20.1.2.3".parse().unwrap()],
            ..DnsAnswer::default()
        };
        let s = describe_answer(&a);
        assert!(s.contains("10.0.0.5 (private)"), "{s}");
        assert!(s.contains("20.1.2.3 (public)"), "{s}");
        assert!(s.contains("via CNAME r.privatelink.azurecr.io"), "{s}");
    }

    #[test]
    fn transport_errors_map_to_runs_kinds() {
        let nx = ResolveError::NxDomain { host: "x".into() };
        assert_eq!(dns_kind(&nx), FailureKind::DnsNxDomain);
        let r = DialError::Refused {
            addr: "127.0.0.1:1".parse().unwrap(),
        };
        assert_eq!(dial_kind(&r), FailureKind::ConnectRefused);
        let s = UpstreamError::Status {
            proxy: "p:3128".into(),
            status: 403,
            reason: "Forbidden".into(),
        };
        assert!(matches!(
            upstream_kind(&s),
            FailureKind::UpstreamProxyStatus { status: 403, .. }
        ));
    }
}
