//! The one place that maps a failure to what the client sees: status code, reason phrase and
//! (for forwarded requests) the `X-Regdoc-Cause` header.
//!
//! Go's HTTP client, and so the Docker daemon, prints the reason phrase of a refused CONNECT
//! verbatim (`Error response from daemon: Get "https://x.azurecr.io/v2/": <reason phrase>`), so
//! the phrase names the cause id and what happened in one short line.

use crate::diagnose::Finding;
use crate::observe::{FailureEvent, FailureKind};

/// Status code for a failure that is answered before any tunnel exists.
pub fn status_for(kind: &FailureKind) -> u16 {
    match kind {
        FailureKind::MalformedRequest | FailureKind::TlsInsteadOfHttp => 400,
        FailureKind::HeadTooLarge { .. } => 431,
        FailureKind::RequestTimeout => 408,
        FailureKind::ClientNotAllowed
        | FailureKind::PortNotAllowed { .. }
        | FailureKind::DestinationNotAllowed { .. } => 403,
        // The client's own excess, not regdoc's shortage: it may retry once it closes some.
        FailureKind::ClientConnectionLimit { .. } => 429,
        // regdoc's own shortage, not the destination's: a retry later may work.
        FailureKind::ResourceLimit { .. } => 503,
        FailureKind::ProxyAuthRequired { .. } => 407,
        FailureKind::DnsTimeout
        | FailureKind::ConnectTimeout
        | FailureKind::UpstreamProxyTimeout
        | FailureKind::ResponseHeadersTimeout => 504,
        _ => 502,
    }
}

/// Longest reason phrase sent; Docker prints it on one line.
const MAX_REASON: usize = 200;

/// `regdoc <cause>: <what happened>`, restricted to the characters a reason phrase may carry.
pub fn reason_phrase(ev: &FailureEvent, findings: &[Finding]) -> String {
    let head = match findings.first() {
        Some(f) => format!("regdoc {}: ", f.cause.id),
        None => String::from("regdoc: "),
    };
    let mut s = head + &ev.error;
    s.retain(|c| c == ' ' || c == '\t' || c.is_ascii_graphic());
    if s.len() > MAX_REASON {
        s.truncate(MAX_REASON);
    }
    s
}

/// A complete HTTP/1.1 error reply for a raw (pre-hyper) connection.
pub fn raw_reply(status: u16, reason: &str, cause: Option<&str>, extra_headers: &str) -> Vec<u8> {
    let body = format!("{reason}\n");
    let cause_header = cause
        .map(|c| format!("X-Regdoc-Cause: {c}\r\n"))
        .unwrap_or_default();
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n{cause_header}{extra_headers}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::Phase;

    fn ev(error: &str) -> FailureEvent {
        FailureEvent {
            conn_id: 1,
            client: "127.0.0.1:1".parse().unwrap(),
            target: "r.azurecr.io:443".into(),
            host: "r.azurecr.io".into(),
            port: 443,
            endpoint: Default::default(),
            phase: Phase::Dns,
            kind: FailureKind::DnsNxDomain,
            error: error.into(),
            dns: None,
            tls: None,
            http: None,
            upstream_proxy: None,
            elapsed_ms: 0,
        }
    }

    #[test]
    fn reason_phrase_is_one_safe_line() {
        let r = reason_phrase(&ev("bad\r\nX-Injected: yes\u{7f} é"), &[]);
        assert_eq!(r, "regdoc: badX-Injected: yes ");
        let long = reason_phrase(&ev(&"a".repeat(500)), &[]);
        assert_eq!(long.len(), MAX_REASON);
    }

    #[test]
    fn statuses() {
        assert_eq!(status_for(&FailureKind::DnsNxDomain), 502);
        assert_eq!(status_for(&FailureKind::ConnectTimeout), 504);
        assert_eq!(status_for(&FailureKind::PortNotAllowed { port: 22 }), 403);
        assert_eq!(
            status_for(&FailureKind::ProxyAuthRequired { provided: false }),
            407
        );
        assert_eq!(status_for(&FailureKind::HeadTooLarge { limit: 1 }), 431);
        assert_eq!(
            status_for(&FailureKind::ClientConnectionLimit { limit: 2, open: 2 }),
            429
        );
        let dest = FailureKind::DestinationNotAllowed {
            addr: "169.254.169.254:80".into(),
            rule: "denied_destinations 169.254.0.0/16".into(),
        };
        assert_eq!(status_for(&dest), 403);
        let fds = FailureKind::ResourceLimit {
            errno: "EMFILE".into(),
            nofile_soft: Some(1024),
            nofile_hard: Some(4096),
        };
        assert_eq!(status_for(&fds), 503);
    }
}
