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
    // `docker login` pings /v2/ with the credentials; a refusal there (a firewall 403, or a
    // registry with Basic auth refusing the password) is reported by the daemon itself.
    let basic_ping = ex.path_class == "ping"
        && ex.status == 401
        && ex
            .www_authenticate
            .as_ref()
            .is_some_and(|c| c.scheme.eq_ignore_ascii_case("basic"))
        && ex.auth.is_some();
    if ex.path_class == "ping" && (ex.status == 403 || basic_ping) {
        return format!(
            "{DAEMON}login attempt to https://{}/v2/ failed with status: {} {}",
            ev.host,
            ex.status,
            canonical_reason(ex.status)
        );
    }
    if matches!(ex.path_class.as_str(), "token" | "exchange") {
        // Docker names the registry it was talking to, which the token request names as its
        // `service` (a token server may live on another host).
        if let Some(service) = ex
            .service
            .as_deref()
            .filter(|s| !s.is_empty() && *s != ev.host)
        {
            let service = redact(service);
            return format!(
                "{DAEMON}Get \"https://{service}/v2/\": {}",
                registry_reply(ex)
            );
        }
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
        // The daemon reads regdoc's plain-text answer as a TLS record. The registry it wanted
        // is unknown here (its ClientHello names the proxy), so the URL part is left out.
        if ev.host.is_empty() {
            return if reply_reason.is_some() {
                "proxyconnect tcp: tls: first record does not look like a TLS handshake".to_string()
            } else {
                "proxyconnect tcp: EOF".to_string()
            };
        }
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
    if let FailureKind::UpstreamClosedBeforeHeaders { .. } = ev.kind {
        // regdoc answered the request itself with a 502 (inside TLS when intercepting), and the
        // registry client reports a 5xx by its status line. Over HTTP/1.1 the text is regdoc's
        // reason phrase; HTTP/2 carries none, and Go then prints the canonical one.
        let text = reply_reason
            .map(redact)
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| canonical_reason(502).to_string());
        return format!("{DAEMON}received unexpected HTTP status: 502 {text}");
    }
    if let Some(reason) = reply_reason {
        let reason = redact(reason);
        let reason = if reason.is_empty() {
            "unknown status code".to_string()
        } else {
            reason
        };
        if ev.endpoint.kind.is_data() {
            // Layer and config downloads: dockerd frames the error its own way
            // (`error pulling image configuration: download failed after attempts=6: <reason>`),
            // so the reason is the part every form shares.
            return reason;
        }
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
        FailureKind::TlsServerSilent if ev.error.contains(crate::observe::CLIENT_GAVE_UP) => {
            get(ev, "net/http: TLS handshake timeout")
        }
        // regdoc's own `tls` deadline ended the tunnel first: the client read end of stream.
        FailureKind::TlsServerSilent => get(ev, "EOF"),
        FailureKind::TlsServerClosed => get(ev, "EOF"),
        FailureKind::TlsServerReset => get(ev, "EOF"),
        // Passthrough: Go 1.19 (dockerd 20.10) prints the x509 error without the
        // `tls: failed to verify certificate: ` prefix Go 1.20 added.
        FailureKind::TlsClientRefused { probe, .. } => get(
            ev,
            match probe.as_ref().and_then(|p| p.problem) {
                Some(CertProblem::Expired | CertProblem::NotYetValid) => {
                    "x509: certificate has expired or is not yet valid"
                }
                Some(CertProblem::NameMismatch) => "x509: certificate is not valid for this host",
                _ => "x509: certificate signed by unknown authority",
            },
        ),
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
