//! The one place that maps a failure to what the client sees: status code, reason phrase,
//! the `X-Regdoc-Cause` header and a one-line body, as raw bytes (a refusal before hyper reads
//! the connection) or as a hyper response (forwarding, interception).
//!
//! Go's HTTP client, and so the Docker daemon, prints the reason phrase of a refused CONNECT
//! verbatim (`Error response from daemon: Get "https://x.azurecr.io/v2/": <reason phrase>`), so
//! the phrase names the cause id and what happened in one short line.

use crate::diagnose::catalog::Cause;
use crate::diagnose::Finding;
use crate::observe::{FailureEvent, FailureKind};
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Response, StatusCode};

/// The header regdoc adds to every reply that is, or carries, a failure it judged.
pub const CAUSE_HEADER: HeaderName = HeaderName::from_static("x-regdoc-cause");

/// The answer to a CONNECT whose destination is reached: from here on the connection is the
/// tunnel.
pub const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

/// The challenge sent with a 407: Basic is the only scheme regdoc checks.
const PROXY_CHALLENGE: &str = "Basic realm=\"regdoc\"";

/// Status code for a failure regdoc answers itself.
pub fn status_for(kind: &FailureKind) -> StatusCode {
    match kind {
        FailureKind::MalformedRequest | FailureKind::TlsInsteadOfHttp => StatusCode::BAD_REQUEST,
        FailureKind::HeadTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        FailureKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        FailureKind::ClientNotAllowed
        | FailureKind::PortNotAllowed { .. }
        | FailureKind::DestinationNotAllowed { .. } => StatusCode::FORBIDDEN,
        // The client's own excess, not regdoc's shortage: it may retry once it closes some.
        FailureKind::ClientConnectionLimit { .. } => StatusCode::TOO_MANY_REQUESTS,
        // regdoc's own shortage, not the destination's: a retry later may work.
        FailureKind::ResourceLimit { .. } => StatusCode::SERVICE_UNAVAILABLE,
        FailureKind::ProxyAuthRequired { .. } => StatusCode::PROXY_AUTHENTICATION_REQUIRED,
        FailureKind::DnsTimeout
        | FailureKind::ConnectTimeout
        | FailureKind::UpstreamProxyTimeout
        | FailureKind::ResponseHeadersTimeout => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
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

/// `<cause id>; <short words>`, the `X-Regdoc-Cause` value README documents. Non-visible
/// characters are dropped so the value is always a valid header.
pub fn cause_value(id: &str, short: &str) -> HeaderValue {
    let text: String = format!("{id}; {short}")
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .collect();
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// The `X-Regdoc-Cause` value of the first finding, the one a reply names.
pub fn cause_of(findings: &[Finding]) -> Option<HeaderValue> {
    findings
        .first()
        .map(|f| cause_value(f.cause.id, f.cause.short))
}

/// The cause of a reply in place of the server's answer that no rule explained: the catalog's
/// "registry service error or no answer", which every such case is from the client's point of
/// view.
pub fn fallback_cause() -> Option<&'static Cause> {
    crate::diagnose::catalog::by_id("registry_error")
}

/// A reply regdoc makes itself, in place of a tunnel or of the server's answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    /// The status line's text: the cause and what happened (see [`reason_phrase`]), or the
    /// canonical phrase where none was worded (HTTP/2 sends none at all).
    pub reason: String,
    /// Named in `X-Regdoc-Cause`; `None` when no rule explained the failure.
    pub cause: Option<&'static Cause>,
    /// The client's connection ends after this reply. A raw reply always ends it.
    pub close: bool,
    /// The body, one line: what happened, for a client that shows bodies rather than status
    /// lines.
    pub body: String,
}

impl Reply {
    /// A reply whose body repeats its reason phrase.
    pub fn new(status: StatusCode, reason: String, cause: Option<&'static Cause>) -> Reply {
        Reply {
            body: format!("{reason}\n"),
            status,
            reason,
            cause,
            close: false,
        }
    }

    /// The reply with the canonical reason phrase and `body` as its text.
    pub fn plain(status: StatusCode, cause: Option<&'static Cause>, body: String) -> Reply {
        Reply {
            reason: status.canonical_reason().unwrap_or("").to_string(),
            status,
            cause,
            close: false,
            body,
        }
    }

    /// The same reply, ending the client's connection or not.
    pub fn closing(mut self, close: bool) -> Reply {
        self.close = close;
        self
    }

    /// How a `request` record names this reply.
    pub fn answered(&self) -> crate::record::Answered {
        crate::record::Answered::Regdoc {
            status: self.status.as_u16(),
            cause: self.cause.map(|c| c.id),
        }
    }

    fn cause_header(&self) -> Option<HeaderValue> {
        self.cause.map(|c| cause_value(c.id, c.short))
    }

    /// A complete HTTP/1.1 reply for a raw (pre-hyper) connection, which ends after it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status.as_u16(),
            self.reason,
            self.body.len()
        );
        if let Some(v) = self
            .cause_header()
            .and_then(|v| v.to_str().ok().map(str::to_string))
        {
            head.push_str(&format!("X-Regdoc-Cause: {v}\r\n"));
        }
        if self.status == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
            head.push_str(&format!("Proxy-Authenticate: {PROXY_CHALLENGE}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(self.body.as_bytes());
        bytes
    }

    /// The reply as a hyper response; the caller wraps the body in its own body type.
    pub fn to_response(&self) -> Response<Bytes> {
        let mut resp = Response::new(Bytes::from(self.body.clone()));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Some(v) = self.cause_header() {
            h.insert(CAUSE_HEADER, v);
        }
        if self.status == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
            h.insert(
                header::PROXY_AUTHENTICATE,
                HeaderValue::from_static(PROXY_CHALLENGE),
            );
        }
        if self.close {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        // hyper writes it on HTTP/1.1 only; HTTP/2 has no reason phrase.
        if let Ok(rp) = hyper::ext::ReasonPhrase::try_from(self.reason.as_bytes().to_vec()) {
            resp.extensions_mut().insert(rp);
        }
        resp
    }
}

/// [`Reply::to_bytes`] under the name and arguments `fuzz/fuzz_targets/proxy_head.rs` still
/// calls (the fuzz targets are maintained apart); new code builds a [`Reply`]. `cause` is a
/// catalog id; `extra_headers` (whole `Name: value\r\n` lines) end the head.
pub fn raw_reply(status: u16, reason: &str, cause: Option<&str>, extra_headers: &str) -> Vec<u8> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let cause = cause.and_then(crate::diagnose::catalog::by_id);
    let mut bytes = Reply::new(status, reason.to_string(), cause).to_bytes();
    if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let at = end + 2;
        bytes.splice(at..at, extra_headers.bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::Phase;

    fn ev(error: &str) -> FailureEvent {
        let kind = FailureKind::DnsNxDomain;
        let mut ev = FailureEvent::sample("r.azurecr.io", 443, Phase::Dns, kind);
        ev.error = error.into();
        ev
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
        assert_eq!(
            status_for(&FailureKind::DnsNxDomain),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            status_for(&FailureKind::ConnectTimeout),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            status_for(&FailureKind::PortNotAllowed { port: 22 }),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status_for(&FailureKind::ProxyAuthRequired { provided: false }),
            StatusCode::PROXY_AUTHENTICATION_REQUIRED
        );
        assert_eq!(
            status_for(&FailureKind::HeadTooLarge { limit: 1 }),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        assert_eq!(
            status_for(&FailureKind::ClientConnectionLimit { limit: 2, open: 2 }),
            StatusCode::TOO_MANY_REQUESTS
        );
        let dest = FailureKind::DestinationNotAllowed {
            addr: "169.254.169.254:80".into(),
            rule: "denied_destinations 169.254.0.0/16".into(),
        };
        assert_eq!(status_for(&dest), StatusCode::FORBIDDEN);
        let fds = FailureKind::ResourceLimit {
            errno: "EMFILE".into(),
            nofile_soft: Some(1024),
            nofile_hard: Some(4096),
        };
        assert_eq!(status_for(&fds), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn cause_value_is_a_clean_header() {
        assert_eq!(
            cause_value("registry_throttled", "rate limit\r\nX-Evil: 1 é")
                .to_str()
                .unwrap(),
            "registry_throttled; rate limitX-Evil: 1 "
        );
    }

    #[test]
    fn the_fallback_cause_is_in_the_catalog() {
        assert_eq!(fallback_cause().map(|c| c.id), Some("registry_error"));
    }

    fn policy_reply() -> Reply {
        let cause = crate::diagnose::catalog::by_id("proxy_policy");
        assert!(cause.is_some());
        Reply::new(
            StatusCode::FORBIDDEN,
            "regdoc proxy_policy: no".into(),
            cause,
        )
    }

    /// Raw bytes and a hyper response say the same: status, reason, cause in README's form.
    #[test]
    fn raw_and_hyper_renderings_agree() {
        let r = policy_reply();
        let raw = String::from_utf8(r.to_bytes()).unwrap();
        let short = crate::diagnose::catalog::by_id("proxy_policy")
            .unwrap()
            .short;
        assert!(
            raw.starts_with("HTTP/1.1 403 regdoc proxy_policy: no\r\n"),
            "{raw}"
        );
        assert!(
            raw.contains(&format!("\r\nX-Regdoc-Cause: proxy_policy; {short}\r\n")),
            "{raw}"
        );
        assert!(raw.contains("\r\nConnection: close\r\n"), "{raw}");
        assert!(raw.ends_with("\r\n\r\nregdoc proxy_policy: no\n"), "{raw}");
        assert!(!raw.contains("Proxy-Authenticate"), "{raw}");

        let resp = r.to_response();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            resp.headers()[CAUSE_HEADER],
            format!("proxy_policy; {short}").as_str()
        );
        assert!(resp.headers().get(header::CONNECTION).is_none());
        assert_eq!(
            resp.extensions()
                .get::<hyper::ext::ReasonPhrase>()
                .map(|p| p.as_bytes()),
            Some(&b"regdoc proxy_policy: no"[..])
        );
        assert_eq!(resp.body().as_ref(), b"regdoc proxy_policy: no\n");
        let closing = r.closing(true).to_response();
        assert_eq!(closing.headers()[header::CONNECTION], "close");
    }

    #[test]
    fn a_407_carries_the_challenge_both_ways() {
        let r = Reply::new(
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            "regdoc proxy_auth: none".into(),
            None,
        );
        let raw = String::from_utf8(r.to_bytes()).unwrap();
        assert!(
            raw.contains("\r\nProxy-Authenticate: Basic realm=\"regdoc\"\r\n"),
            "{raw}"
        );
        assert!(!raw.contains("X-Regdoc-Cause"), "{raw}");
        let resp = r.to_response();
        assert_eq!(
            resp.headers()[header::PROXY_AUTHENTICATE],
            "Basic realm=\"regdoc\""
        );
    }

    #[test]
    fn the_former_raw_renderer_is_the_reply() {
        let r = policy_reply();
        assert_eq!(
            raw_reply(403, "regdoc proxy_policy: no", Some("proxy_policy"), ""),
            r.to_bytes()
        );
        let raw = raw_reply(400, "regdoc: bad", None, "X-A: 1\r\n");
        let text = String::from_utf8(raw).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 regdoc: bad\r\n"), "{text}");
        assert!(text.ends_with("\r\nX-A: 1\r\n\r\nregdoc: bad\n"), "{text}");
    }

    #[test]
    fn a_plain_reply_has_the_canonical_phrase() {
        let r = Reply::plain(StatusCode::BAD_GATEWAY, None, "regdoc: gone\n".into());
        let raw = String::from_utf8(r.to_bytes()).unwrap();
        assert!(raw.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{raw}");
        assert!(raw.ends_with("\r\n\r\nregdoc: gone\n"), "{raw}");
    }
}
