//! A request that got no response headers: the server's connection ended first, or the
//! deadline passed. No status may be claimed for a server that sent none.

use super::*;
use crate::observe::{EarlyClose, TlsObservation};

#[test]
fn network_article_client_timeout_exceeded_while_awaiting_headers() {
    let d = diagnoser(vec![]);
    let ev = event(REG, FailureKind::ResponseHeadersTimeout);
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["registry_error", "client_firewall"]);
    let s = sym(&ev, None);
    assert!(
        s.contains("Client.Timeout exceeded while awaiting headers"),
        "{s}"
    );
    let ev = event(
        "login.microsoftonline.com",
        FailureKind::ResponseHeadersTimeout,
    );
    assert_eq!(ids(&d.diagnose_at(&ev, now())), vec!["client_firewall"]);
}

/// Intercepted `GET /v2/` (TLS with the server's verified certificate up) whose connection ended
/// before response headers: what `Conn::handle` records.
fn closed_before_headers(host: &str, how: EarlyClose) -> FailureEvent {
    let mut ev = event(host, FailureKind::UpstreamClosedBeforeHeaders { how });
    ev.error = format!(
        "the server's connection was {} before any response headers: connection error: peer closed connection without sending TLS close_notify",
        how.describe()
    );
    ev.tls = Some(TlsObservation {
        sni: Some(host.into()),
        alpn: vec!["http/1.1".into()],
        client_versions: vec!["TLS1.3".into(), "TLS1.2".into()],
        version: Some("TLS1.3".into()),
        cipher: Some("TLS13_AES_128_GCM_SHA256".into()),
        ..TlsObservation::default()
    });
    ev.http = Some(exchange("GET", "ping", 0));
    ev
}

#[test]
fn closed_before_headers_over_verified_tls_is_the_registry_side_and_claims_no_status() {
    let d = diagnoser(vec![]);
    for how in [EarlyClose::Closed, EarlyClose::Reset, EarlyClose::Error] {
        let ev = closed_before_headers(REG, how);
        let f = d.diagnose_at(&ev, now());
        assert_eq!(
            ids(&f),
            vec!["registry_error", "client_firewall"],
            "{how:?}"
        );
        assert_eq!(f[0].confidence, Confidence::Medium);
        let e = evidence(&f, "registry_error");
        assert!(
            e.contains(&format!(
                "the connection to myregistry.azurecr.io:443 was {} before any response headers to the request (GET ping): no HTTP status came from the server",
                how.describe()
            )),
            "{e}"
        );
        assert!(e.contains("verified certificate was up"), "{e}");
        // Nothing says the registry answered, or names a status it never sent.
        for fd in &f {
            for line in &fd.evidence {
                assert!(!line.contains("answered"), "{line}");
                assert!(!line.contains("502"), "{line}");
            }
        }
    }
}

#[test]
fn closed_before_headers_plain_http_reset_points_at_the_path() {
    let d = diagnoser(vec![]);
    // Plain forwarding: no TLS, a device on the path can read the request and reset it.
    let mut ev = closed_before_headers("registry.internal", EarlyClose::Reset);
    ev.tls = None;
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["client_firewall", "registry_error"]);
    assert!(evidence(&f, "client_firewall").contains("over plain HTTP"));
    // A plain close over HTTP is read as the server's side.
    let mut ev = closed_before_headers("registry.internal", EarlyClose::Closed);
    ev.tls = None;
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["registry_error", "client_firewall"]);
}

#[test]
fn closed_before_headers_on_a_data_endpoint_is_the_data_path() {
    let d = diagnoser(vec![]);
    let f = d.diagnose_at(&closed_before_headers(DATA, EarlyClose::Reset), now());
    assert_eq!(ids(&f), vec!["data_endpoint_firewall", "registry_error"]);
}

#[test]
fn closed_before_headers_symptom_is_regdocs_own_502() {
    let ev = closed_before_headers(REG, EarlyClose::Closed);
    let reason =
        "regdoc registry_error: the server's connection was closed before any response headers";
    // On the ping only a login reads the status, with Go's text: what regdoc expects.
    assert_eq!(
        sym_own(&ev, 502, reason),
        "Error response from daemon: login attempt to https://myregistry.azurecr.io/v2/ failed with status: 502 Bad Gateway"
    );
    let mut ev = ev;
    ev.http = Some(manifest("GET", 0, "app/web", "1.0"));
    assert_eq!(
        sym_own(&ev, 502, reason),
        format!("Error response from daemon: received unexpected HTTP status: 502 {reason}")
    );
    // HTTP/2 carries no reason phrase: Go prints the canonical one.
    assert_eq!(
        sym_own(&ev, 502, ""),
        "Error response from daemon: received unexpected HTTP status: 502 Bad Gateway"
    );
}
