//! The records regdoc writes: one `connection` record when a connection ends, one `failure`
//! record the moment a failure happens. Built from observations and findings, emitted through
//! tracing on the `regdoc::record` target, never on the per-byte path.

use crate::diagnose::Finding;
use crate::endpoint::Endpoint;
use crate::observe::{FailureEvent, TlsObservation};
use serde::Serialize;
use std::net::SocketAddr;
use std::time::SystemTime;

/// tracing target of record events; the log layer writes their `json` field as one line.
pub const TARGET: &str = "regdoc::record";

/// Emit a record: `kind` is `connection`, `failure` or `failure_summary`; `value` serialises to
/// a JSON object.
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
            ms: (elapsed.as_secs_f64() * 1e6).round() / 1e3,
        }
    }
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
    pub mode: &'static str,
    pub target: Option<String>,
    pub endpoint: &'static str,
    pub registry: Option<String>,
    pub region: Option<String>,
    pub resolved: Vec<String>,
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
    pub close_reason: &'static str,
    pub failed: bool,
}

impl ConnectionRecord {
    pub fn new(conn_id: u64, client: SocketAddr) -> Self {
        ConnectionRecord {
            timestamp: String::new(),
            event: "connection",
            conn_id,
            client,
            mode: "refused",
            target: None,
            endpoint: "other",
            registry: None,
            region: None,
            resolved: Vec::new(),
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
            close_reason: "",
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
    pub remedy: &'static [&'static str],
    pub doc: Option<&'static str>,
    pub client_symptom: Option<String>,
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
    client_symptom: Option<String>,
) -> FailureRecord<'a> {
    let top = findings.first();
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
        remedy: top.map(|f| f.cause.remedy).unwrap_or(&[]),
        doc: top.map(|f| f.cause.doc),
        client_symptom,
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

/// The `failure_summary` record: repeats of one failure that were counted, not written.
#[derive(Debug, Serialize)]
pub struct SummaryRecord<'a> {
    pub timestamp: String,
    pub event: &'static str,
    pub cause: &'a str,
    pub phase: &'a str,
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
        let (cause, phase, target) = s.parts();
        let rec = SummaryRecord {
            timestamp: timestamp(SystemTime::now()),
            event: "failure_summary",
            cause,
            phase,
            target,
            count: s.count,
            first: timestamp(s.first),
            last: timestamp(s.last),
            interval_secs: interval.as_secs(),
        };
        emit("failure_summary", &rec);
    }
}
