//! What the Docker client printed for one failure.
//!
//! When regdoc refuses a CONNECT, Go's transport turns the status line's text into the error, so
//! dockerd prints `Get "https://<host>/v2/": <our reason phrase>`. When the failure happened
//! inside the tunnel, the client prints the registry's error in distribution's shape
//! (`<code lowercased>: <message>`) or Go's own network/TLS error text.

use super::catalog::Cause;
use super::text::redact;
use crate::observe::{CertProblem, FailureEvent, FailureKind, HttpExchange};

const DAEMON: &str = "Error response from daemon: ";

/// The URL dockerd names in its error: the ping for REST endpoints, a blob URL for data hosts.
fn url(ev: &FailureEvent) -> String {
    if ev.endpoint.kind.is_data() {
        format!("https://{}/...", ev.host)
    } else {
        format!("https://{}/v2/", ev.host)
    }
}

fn get(ev: &FailureEvent, what: &str) -> String {
    format!("{DAEMON}Get \"{}\": {what}", url(ev))
}

fn canonical_reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// The distribution client's rendering of an error reply (docker/distribution
/// `registry/client/errors.go`).
fn registry_reply(ex: &HttpExchange) -> String {
    if let Some(e) = ex.registry_errors.first() {
        return format!(
            "{}: {}",
            redact(&e.code.to_ascii_lowercase()),
            redact(&e.message)
        );
    }
    let body = ex
        .body_text
        .as_deref()
        .map(redact)
        .filter(|b| !b.is_empty());
    match (ex.status, body) {
        (401, Some(b)) => format!("unauthorized: {b}"),
        (401, None) => "unauthorized: authentication required".into(),
        (403, Some(b)) => format!("denied: {b}"),
        (403, None) => "denied: requested access to the resource is denied".into(),
        (429, Some(b)) => format!("toomanyrequests: {b}"),
        (429, None) => "toomanyrequests: too many requests".into(),
        (s @ 400..=499, Some(b)) => format!("unknown: {b} (HTTP {s})"),
        (s, _) => format!(
            "received unexpected HTTP status: {s} {}",
            canonical_reason(s)
        )
        .trim_end()
        .to_string(),
    }
}

fn http_symptom(ev: &FailureEvent, ex: &HttpExchange) -> String {
    let login_path = matches!(ex.path_class.as_str(), "ping" | "token" | "exchange");
    if ex.path_class == "ping" && ex.status == 403 {
        return format!(
            "{DAEMON}login attempt to https://{}/v2/ failed with status: 403 Forbidden",
            ev.host
        );
    }
    if (500..600).contains(&ex.status) {
        return format!(
            "{DAEMON}received unexpected HTTP status: {} {}",
            ex.status,
            canonical_reason(ex.status)
        )
        .trim_end()
        .to_string();
    }
    let reply = registry_reply(ex);
    if login_path {
        get(ev, &reply)
    } else {
        format!("{DAEMON}{reply}")
    }
}

/// The concrete message the Docker client showed (or will show) for this failure.
///
/// `reply_reason` is the reason phrase of the status line regdoc sent back when it refused the
/// CONNECT (or the forwarded request) itself; `None` when regdoc closed the connection or the
/// failure happened inside an established tunnel.
pub fn client_symptom(cause: &Cause, ev: &FailureEvent, reply_reason: Option<&str>) -> String {
    if ev.kind == FailureKind::TlsInsteadOfHttp {
        // The daemon reads regdoc's plain-text answer as a TLS record.
        return if reply_reason.is_some() {
            format!(
                "{DAEMON}Get \"https://{}/v2/\": proxyconnect tcp: tls: first record does not look like a TLS handshake",
                ev.host
            )
        } else {
            format!(
                "{DAEMON}Get \"https://{}/v2/\": proxyconnect tcp: EOF",
                ev.host
            )
        };
    }
    if let Some(reason) = reply_reason {
        let reason = redact(reason);
        let reason = if reason.is_empty() {
            "unknown status code".to_string()
        } else {
            reason
        };
        return get(ev, &reason);
    }
    match &ev.kind {
        FailureKind::HttpStatus { .. } => match &ev.http {
            Some(ex) => http_symptom(ev, ex),
            None => cause.client_symptom.replace("{host}", &ev.host),
        },
        FailureKind::ResponseHeadersTimeout => get(
            ev,
            "net/http: request canceled while waiting for connection (Client.Timeout exceeded while awaiting headers)",
        ),
        FailureKind::TlsServerSilent => get(ev, "net/http: TLS handshake timeout"),
        FailureKind::TlsServerClosed => get(ev, "EOF"),
        FailureKind::TlsNotTls => get(ev, "tls: first record does not look like a TLS handshake"),
        FailureKind::TlsAlert { description, .. } => get(
            ev,
            &format!("remote error: tls: {}", redact(&description.replace('_', " "))),
        ),
        FailureKind::TlsUpstreamCertificate { problem, .. } => get(
            ev,
            match problem {
                CertProblem::UnknownIssuer => {
                    "tls: failed to verify certificate: x509: certificate signed by unknown authority"
                }
                CertProblem::Expired | CertProblem::NotYetValid => {
                    "tls: failed to verify certificate: x509: certificate has expired or is not yet valid"
                }
                CertProblem::NameMismatch => {
                    "tls: failed to verify certificate: x509: certificate is not valid for this host"
                }
                CertProblem::Other => "tls: failed to verify certificate",
            },
        ),
        // Connection-level failures with no reply: regdoc closed the client connection.
        FailureKind::DnsNxDomain
        | FailureKind::DnsNoAddresses
        | FailureKind::DnsTimeout
        | FailureKind::DnsError
        | FailureKind::ConnectRefused
        | FailureKind::ConnectTimeout
        | FailureKind::ConnectUnreachable
        | FailureKind::ConnectError
        | FailureKind::UpstreamProxyStatus { .. }
        | FailureKind::UpstreamProxyClosed
        | FailureKind::UpstreamProxyTimeout
        | FailureKind::UpstreamProxyUnreachable => get(ev, "EOF"),
        _ => cause.client_symptom.replace("{host}", &ev.host),
    }
}
