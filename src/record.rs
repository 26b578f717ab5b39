//! The records regdoc writes: one `connection` record when a connection ends, one `failure`
//! record the moment a failure happens, and (with `log.requests`) one `request` record per HTTP
//! exchange. Built from observations and findings, emitted through tracing on the
//! `regdoc::record` target, never on the per-byte path.

use crate::diagnose::Finding;
use crate::endpoint::Endpoint;
use crate::observe::{DnsAnswer, FailureEvent, HttpExchange, TlsObservation};
use serde::Serialize;
use std::net::SocketAddr;
use std::time::SystemTime;

pub mod budget;
pub mod facts;
pub mod failures;

pub use facts::{CloseReason, Mode};

/// tracing target of record events; the log layer writes their `json` field as one line.
pub const TARGET: &str = "regdoc::record";

/// Emit a record: `kind` is `connection`, `failure`, `failure_summary` or `request`; `value`
/// serialises to a JSON object.
pub fn emit<T: Serialize>(kind: &'static str, value: &T) {
    match serde_json::to_string(value) {
        Ok(json) => tracing::info!(target: TARGET, kind, json = json.as_str()),
        Err(e) => tracing::error!("cannot encode {kind} record: {e}"),
    }
}

/// RFC 3339 UTC with milliseconds, the form log stacks parse without configuration.
pub fn timestamp(at: SystemTime) -> String {
    let t = time::OffsetDateTime::from(at);
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&fmt)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00.000Z"))
}

/// Outcome and duration of one phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseOutcome {
    /// `ok`, `failed` or `timeout`.
    pub outcome: &'static str,
    pub ms: f64,
}

impl PhaseOutcome {
    pub fn new(outcome: &'static str, elapsed: std::time::Duration) -> Self {
        PhaseOutcome {
            outcome,
            ms: millis(elapsed),
        }
    }
}

/// A duration as records write it: milliseconds with microsecond precision.
pub fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Per-phase outcomes of a connection; absent phases did not run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Phases {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<PhaseOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<PhaseOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_proxy: Option<PhaseOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<PhaseOutcome>,
}

/// The `connection` record, written once when a client connection ends.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionRecord {
    pub timestamp: String,
    pub event: &'static str,
    pub conn_id: u64,
    pub client: SocketAddr,
    /// `tunnel`, `intercept`, `forward`, or `refused` when no upstream was reached.
    pub mode: Mode,
    pub target: Option<String>,
    pub endpoint: &'static str,
    pub registry: Option<String>,
    pub region: Option<String>,
    pub resolved: Vec<String>,
    /// The answer behind `resolved`, in the shape of a failure record's `dns` (absent when the
    /// destination was not resolved, e.g. through an upstream proxy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsAnswer>,
    pub upstream_proxy: Option<String>,
    pub phases: Phases,
    pub sni: Option<String>,
    pub alpn: Vec<String>,
    pub tls_version: Option<String>,
    pub cipher: Option<String>,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Bulk bytes of this tunnel moved through a kernel pipe (`splice`) rather than regdoc.
    pub zero_copy: bool,
    pub requests: u64,
    pub duration_ms: f64,
    /// Set once, by whatever ended the connection first.
    #[serde(serialize_with = "facts::close_reason_or_empty")]
    pub close_reason: Option<CloseReason>,
    pub failed: bool,
}

impl ConnectionRecord {
    pub fn new(conn_id: u64, client: SocketAddr) -> Self {
        ConnectionRecord {
            timestamp: String::new(),
            event: "connection",
            conn_id,
            client,
            mode: Mode::Refused,
            target: None,
            endpoint: "other",
            registry: None,
            region: None,
            resolved: Vec::new(),
            dns: None,
            upstream_proxy: None,
            phases: Phases::default(),
            sni: None,
            alpn: Vec::new(),
            tls_version: None,
            cipher: None,
            bytes_up: 0,
            bytes_down: 0,
            zero_copy: false,
            requests: 0,
            duration_ms: 0.0,
            close_reason: None,
            failed: false,
        }
    }

    pub fn set_endpoint(&mut self, e: &Endpoint) {
        self.endpoint = e.kind.as_str();
        self.registry = e.registry.clone();
        self.region = e.region.clone();
    }

    pub fn set_tls(&mut self, t: &TlsObservation) {
        self.sni = t.sni.clone();
        self.alpn = t.alpn.clone();
        self.tls_version = t.version.clone();
        self.cipher = t.cipher.clone();
    }
}

/// The `failure` record: what happened, and the diagnosis.
#[derive(Debug, Serialize)]
pub struct FailureRecord<'a> {
    pub timestamp: String,
    pub event: &'static str,
    pub conn_id: u64,
    pub client: SocketAddr,
    pub target: &'a str,
    pub host: &'a str,
    pub port: u16,
    pub endpoint: &'static str,
    pub registry: Option<&'a str>,
    pub region: Option<&'a str>,
    pub phase: &'static str,
    pub error: &'a str,
    pub kind: &'a crate::observe::FailureKind,
    pub elapsed_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<&'a crate::observe::DnsAnswer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<&'a TlsObservation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<&'a crate::observe::HttpExchange>,
    pub upstream_proxy: Option<&'a str>,
    pub cause: Option<&'static str>,
    pub cause_title: Option<&'static str>,
    /// The steps for the client that failed (see `diagnose::remedy`).
    pub remedy: Vec<&'static str>,
    /// Which client `remedy` and the symptom are worded for: `docker` or `containerd`.
    pub client_kind: &'static str,
    pub doc: Option<&'static str>,
    /// The line the client printed, when regdoc knows the words (see `diagnose::symptom`).
    pub client_symptom: Option<String>,
    /// What the client is expected to print, when regdoc could not see its side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_client_symptom: Option<String>,
    /// The client operation the failure belongs to, when known (`login`, `pull`, `push`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<&'static str>,
    pub evidence: Vec<String>,
    pub confidence: Option<crate::diagnose::Confidence>,
    /// Other causes the rules found, less likely than `cause`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_causes: Vec<OtherCause>,
    pub reply_status: Option<u16>,
    pub reply_reason: Option<&'a str>,
}

/// A less likely cause, named with its confidence.
#[derive(Debug, Serialize)]
pub struct OtherCause {
    pub cause: &'static str,
    pub confidence: crate::diagnose::Confidence,
}

/// Build the failure record of `ev` with its findings (most likely first).
pub fn failure_record<'a>(
    ev: &'a FailureEvent,
    findings: &[Finding],
    reply: Option<(u16, &'a str)>,
    symptom: Option<crate::diagnose::Symptom>,
    operation: Option<crate::diagnose::symptom::Operation>,
    client: crate::config::ClientKind,
) -> FailureRecord<'a> {
    let top = findings.first();
    let (client_symptom, expected_client_symptom) = match symptom {
        Some(s) if s.basis == crate::diagnose::Basis::Known => (Some(s.text), None),
        Some(s) => (None, Some(s.text)),
        None => (None, None),
    };
    FailureRecord {
        timestamp: timestamp(SystemTime::now()),
        event: "failure",
        conn_id: ev.conn_id,
        client: ev.client,
        target: &ev.target,
        host: &ev.host,
        port: ev.port,
        endpoint: ev.endpoint.kind.as_str(),
        registry: ev.endpoint.registry.as_deref(),
        region: ev.endpoint.region.as_deref(),
        phase: ev.phase.as_str(),
        error: &ev.error,
        kind: &ev.kind,
        elapsed_ms: ev.elapsed_ms,
        dns: ev.dns.as_ref(),
        tls: ev.tls.as_ref(),
        http: ev.http.as_ref(),
        upstream_proxy: ev.upstream_proxy.as_deref(),
        cause: top.map(|f| f.cause.id),
        cause_title: top.map(|f| f.cause.title),
        remedy: top
            .map(|f| crate::diagnose::remedy::for_client(f.cause, client))
            .unwrap_or_default(),
        client_kind: client.name(),
        doc: top.map(|f| f.cause.doc),
        client_symptom,
        expected_client_symptom,
        operation: operation
            .filter(|o| *o != crate::diagnose::symptom::Operation::Unknown)
            .map(|o| o.as_str()),
        evidence: top.map(|f| f.evidence.clone()).unwrap_or_default(),
        confidence: top.map(|f| f.confidence),
        other_causes: findings
            .iter()
            .skip(1)
            .map(|f| OtherCause {
                cause: f.cause.id,
                confidence: f.confidence,
            })
            .collect(),
        reply_status: reply.map(|r| r.0),
        reply_reason: reply.map(|r| r.1),
    }
}

/// Write the failure record of an already diagnosed `ev`. `reply` is regdoc's own answer to
/// the client, when it made one; `symptom` the client's words rendered from what it was shown.
/// Private: every failure goes through [`failures::FailureLog`], the one aggregator.
fn write_failure(
    ev: &FailureEvent,
    findings: &[Finding],
    reply: Option<(u16, &str)>,
    symptom: Option<crate::diagnose::symptom::Symptom>,
    operation: Option<crate::diagnose::symptom::Operation>,
    client: crate::config::ClientKind,
) {
    let rec = failure_record(ev, findings, reply, symptom, operation, client);
    emit("failure", &rec);
}

/// Where an exchange of a `request` record happened: the connection and the origin it asked for.
#[derive(Debug, Clone, Copy)]
pub struct RequestOrigin<'a> {
    pub conn_id: u64,
    pub client: SocketAddr,
    /// `intercept` or `forward`, as the connection record names the mode.
    pub mode: Mode,
    pub host: &'a str,
    pub port: u16,
    pub endpoint: &'a Endpoint,
    /// Where the exchange's time to response headers is counted (`[admin]`).
    pub metrics: Option<&'a crate::metrics::Metrics>,
}

/// The `request` record: one HTTP exchange, written when its response head goes back to the
/// client (the body is not waited for: a record must not depend on the client reading it).
#[derive(Debug, Serialize)]
pub struct RequestRecord<'a> {
    pub timestamp: String,
    pub event: &'static str,
    pub conn_id: u64,
    pub client: SocketAddr,
    pub mode: Mode,
    /// `host:port` of the origin.
    pub target: String,
    pub host: &'a str,
    pub endpoint: &'static str,
    pub registry: Option<&'a str>,
    pub region: Option<&'a str>,
    /// The request path without its query ([`crate::intercept::exchange::record_path`]).
    pub path: &'a str,
    /// Host of an absolute `Location` (a redirect to a data endpoint or blob storage); the
    /// rest of that URL, its SAS query above all, is not kept.
    pub location_host: Option<String>,
    /// From the request reaching regdoc to its response head going back (the time to the
    /// server's headers alone is `http.headers_ms`).
    pub duration_ms: f64,
    /// Status regdoc answered itself (502, 504) when the server's answer never came or could
    /// not be used; null when the server's reply was passed on.
    pub reply_status: Option<u16>,
    /// Cause id when the exchange was judged a failure (its `failure` record has the rest; that
    /// record may have been counted in a `failure_summary` instead).
    pub cause: Option<&'static str>,
    /// The exchange, in the same shape as a failure record's `http`, except `location`, which
    /// is left out in favour of `location_host`.
    pub http: HttpExchange,
}

/// Build the request record of `ex`. `elapsed` is the time since the request reached regdoc;
/// `cause` the cause id of the failure this exchange was, if it was one.
pub fn request_record<'a>(
    origin: &RequestOrigin<'a>,
    path: &'a str,
    ex: &HttpExchange,
    elapsed: std::time::Duration,
    reply_status: Option<u16>,
    cause: Option<&'static str>,
) -> RequestRecord<'a> {
    let mut http = ex.clone();
    // `location` keeps the redirect's path; the record promises the host only.
    let location_host = http
        .location
        .take()
        .as_deref()
        .and_then(crate::diagnose::location_host);
    let target = crate::config::join_host_port(origin.host, origin.port);
    RequestRecord {
        timestamp: timestamp(SystemTime::now()),
        event: "request",
        conn_id: origin.conn_id,
        client: origin.client,
        mode: origin.mode,
        target,
        host: origin.host,
        endpoint: origin.endpoint.kind.as_str(),
        registry: origin.endpoint.registry.as_deref(),
        region: origin.endpoint.region.as_deref(),
        path,
        location_host,
        duration_ms: millis(elapsed),
        reply_status,
        cause,
        http,
    }
}

/// Who answered the request of a `request` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// The server's reply went on to the client; `cause` when it was judged a failure.
    Server { cause: Option<&'static str> },
    /// regdoc answered `status` itself: the server's answer never came or could not be used.
    Regdoc {
        status: u16,
        cause: Option<&'static str>,
    },
}

/// A request as its `request` record names it, taken when it reached regdoc, before it is
/// sent on. Forwarding and interception both write their records through it.
#[derive(Debug)]
pub struct SeenRequest {
    /// The path as the record shows it ([`crate::intercept::exchange::record_path`]); None
    /// when `log.requests` is off, so that the default path builds nothing.
    path: Option<String>,
    received: std::time::Instant,
}

impl SeenRequest {
    pub fn new(log_requests: bool, uri: &http::Uri) -> SeenRequest {
        SeenRequest {
            path: log_requests.then(|| crate::intercept::exchange::record_path(uri)),
            received: std::time::Instant::now(),
        }
    }

    /// Write the `request` record of `ex`, when `log.requests` asked for them.
    pub fn emit(&self, origin: &RequestOrigin<'_>, ex: &HttpExchange, answered: Answered) {
        // Counted whether or not the record is written: this is where every exchange ends.
        // In whole milliseconds, as the record's `headers_ms` is measured.
        if let (Some(m), Some(ms)) = (origin.metrics, ex.headers_ms) {
            m.response_headers(std::time::Duration::from_millis(ms));
        }
        let Some(path) = &self.path else {
            return;
        };
        let (reply_status, cause) = match answered {
            Answered::Server { cause } => (None, cause),
            Answered::Regdoc { status, cause } => (Some(status), cause),
        };
        let elapsed = self.received.elapsed();
        let rec = request_record(origin, path, ex, elapsed, reply_status, cause);
        emit("request", &rec);
    }
}

/// The `failure_summary` record: repeats of one failure that were counted, not written.
#[derive(Debug, Serialize)]
pub struct SummaryRecord<'a> {
    pub timestamp: String,
    pub event: &'static str,
    pub cause: &'a str,
    pub phase: &'a str,
    /// The client's address (no port: the repeats came on connections of their own).
    pub client: &'a str,
    pub target: &'a str,
    /// Repeats not written as their own record.
    pub count: u64,
    pub first: String,
    pub last: String,
    pub interval_secs: u64,
}

/// Write one `failure_summary` record per aggregated key.
pub fn emit_summaries(
    summaries: &[crate::diagnose::aggregate::Summary],
    interval: std::time::Duration,
) {
    for s in summaries {
        let k = s.parts();
        let rec = SummaryRecord {
            timestamp: timestamp(SystemTime::now()),
            event: "failure_summary",
            cause: k.cause,
            phase: k.phase,
            client: k.client,
            target: k.target,
            count: s.count,
            first: timestamp(s.first),
            last: timestamp(s.last),
            interval_secs: interval.as_secs(),
        };
        emit("failure_summary", &rec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_record_keeps_the_redirect_host_only() {
        let endpoint = crate::endpoint::classify("myreg.azurecr.io", &[]);
        let origin = RequestOrigin {
            conn_id: 7,
            client: "127.0.0.1:50000".parse().unwrap(),
            mode: Mode::Intercept,
            host: "myreg.azurecr.io",
            port: 443,
            endpoint: &endpoint,
            metrics: None,
        };
        let ex = HttpExchange {
            method: "GET".into(),
            path_class: "blob".into(),
            status: 307,
            // As `exchange::add_response` keeps it: without the query, with the path.
            location: Some("https://myreg.westeurope.data.azurecr.io/docker/registry/v2/x".into()),
            ..HttpExchange::default()
        };
        let rec = request_record(
            &origin,
            "/v2/app/blobs/sha256:ab",
            &ex,
            std::time::Duration::from_micros(12_345),
            None,
            None,
        );
        let v = serde_json::to_value(&rec).unwrap();
        assert_eq!(v["event"], "request");
        assert_eq!(v["mode"], "intercept");
        assert_eq!(v["target"], "myreg.azurecr.io:443");
        assert_eq!(v["endpoint"], "registry_rest");
        assert_eq!(v["registry"], "myreg");
        assert_eq!(v["path"], "/v2/app/blobs/sha256:ab");
        assert_eq!(v["location_host"], "myreg.westeurope.data.azurecr.io");
        assert_eq!(v["duration_ms"], 12.345);
        assert_eq!(v["http"]["status"], 307);
        assert_eq!(v["http"]["location"], serde_json::Value::Null);
        assert!(!v.to_string().contains("/docker/registry"), "{v}");

        // An IPv6 origin is bracketed in `target`, as connection records write it.
        let v6 = RequestOrigin {
            host: "::1",
            port: 5000,
            mode: Mode::Forward,
            ..origin
        };
        let rec = request_record(
            &v6,
            "/v2/",
            &HttpExchange::default(),
            std::time::Duration::ZERO,
            Some(502),
            Some("registry_error"),
        );
        let v = serde_json::to_value(&rec).unwrap();
        assert_eq!(v["target"], "[::1]:5000");
        assert_eq!(v["reply_status"], 502);
        assert_eq!(v["cause"], "registry_error");
    }
}
