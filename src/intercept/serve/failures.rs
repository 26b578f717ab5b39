//! Failure records of an intercepted tunnel before its relay began: a server whose handshake
//! failed, a client that refused regdoc's certificate, a name regdoc would not vouch for.

use super::super::refuse;
use crate::intercept::upstream_tls::UpstreamTlsError;
use crate::intercept::{InterceptCtx, Interceptor};
use crate::observe::{FailureEvent, FailureKind, HttpExchange, Phase, TlsObservation};
use std::time::Instant;

impl Interceptor {
    /// Record a server whose handshake failed; the client is told by `answer`.
    pub(super) fn upstream_refused(
        &self,
        ctx: &InterceptCtx,
        tls: &TlsObservation,
        e: UpstreamTlsError,
        answer: refuse::Answer,
        started: Instant,
    ) {
        let (kind, error) = match &e {
            UpstreamTlsError::Certificate { problem, detail } => (
                FailureKind::TlsUpstreamCertificate {
                    problem: *problem,
                    detail: detail.clone(),
                },
                format!("the server's certificate was refused: {detail}"),
            ),
            UpstreamTlsError::Alert { description } => (
                FailureKind::TlsAlert {
                    level: "fatal".into(),
                    description: description.clone(),
                },
                e.to_string(),
            ),
            UpstreamTlsError::Closed { .. } => (FailureKind::TlsServerClosed, e.to_string()),
            UpstreamTlsError::Reset { .. } => (FailureKind::TlsServerReset, e.to_string()),
            UpstreamTlsError::NotTls { .. } => (FailureKind::TlsNotTls, e.to_string()),
            UpstreamTlsError::Timeout { .. } => (FailureKind::TlsServerSilent, e.to_string()),
            // No closer kind: a name rustls cannot use, or a local TLS configuration problem.
            UpstreamTlsError::Handshake { .. } => (FailureKind::TlsServerClosed, e.to_string()),
        };
        let alert = match answer {
            refuse::Answer::Alert(a) => Some(a),
            refuse::Answer::Close => None,
        };
        let error = match alert {
            Some(a) => format!(
                "{error}; the client got no certificate, only a TLS alert ({})",
                a.name
            ),
            None => format!("{error}; the client got no certificate, its connection was closed"),
        };
        let ev = failure_event(
            ctx,
            Phase::Tls,
            kind,
            error,
            Some(tls.clone()),
            None,
            started,
        );
        self.record_refusal(ctx, &ev, alert);
    }

    /// Write the failure record of a client turned away before any certificate.
    pub(super) fn record_refusal(
        &self,
        ctx: &InterceptCtx,
        ev: &FailureEvent,
        alert: Option<refuse::Alert>,
    ) {
        let findings = ctx.failures.diagnoser().diagnose(ev);
        ctx.failures.write(
            ev,
            &findings,
            None,
            alert.map(|a| crate::diagnose::symptom::Reply::Alert(a.name)),
        );
    }

    pub(super) fn client_rejected(
        &self,
        ctx: &InterceptCtx,
        tls: &TlsObservation,
        detail: String,
        started: Instant,
    ) {
        let ev = failure_event(
            ctx,
            Phase::Tls,
            FailureKind::TlsClientRejected {
                detail: detail.clone(),
            },
            format!("the client refused regdoc's certificate (is the regdoc CA trusted for this host?): {detail}"),
            Some(tls.clone()),
            None,
            started,
        );
        let findings = ctx.failures.diagnoser().diagnose(&ev);
        ctx.failures.write(&ev, &findings, None, None);
    }
}

pub(super) fn failure_event(
    ctx: &InterceptCtx,
    phase: Phase,
    kind: FailureKind,
    error: String,
    tls: Option<TlsObservation>,
    http: Option<HttpExchange>,
    started: Instant,
) -> FailureEvent {
    // Built as every failure of the proxy is: the target joined (an IPv6 host in brackets),
    // the sentence redacted.
    let mut ev = ctx
        .target_info()
        .event(phase, kind, error, started.elapsed());
    ev.dns = ctx.dns.clone();
    ev.tls = tls;
    ev.http = http;
    ev
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Failure records of an intercepted tunnel to an IPv6 literal name it as the proxy's
    /// other records do: `[::1]:8443`, not `::1:8443`.
    #[test]
    fn failure_events_keep_ipv6_brackets() {
        let cfg = crate::config::Config::default();
        let diagnoser = Arc::new(crate::diagnose::Diagnoser::new(&cfg));
        let ctx = InterceptCtx {
            conn_id: 7,
            client: "127.0.0.1:40000".parse().unwrap(),
            host: "::1".into(),
            port: 8443,
            endpoint: Default::default(),
            failures: Arc::new(crate::record::failures::FailureLog::new(
                diagnoser, &cfg.log,
            )),
            response_headers_timeout: std::time::Duration::from_secs(1),
            log_requests: false,
            upstream_proxy: None,
            dns: None,
            kept_alive: None,
        };
        let ev = failure_event(
            &ctx,
            Phase::Http,
            FailureKind::ResponseHeadersTimeout,
            "none came".into(),
            None,
            None,
            Instant::now(),
        );
        assert_eq!(ev.target, "[::1]:8443");
        assert_eq!(ev.host, "::1");
    }
}
