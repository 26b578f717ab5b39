//! The server's side of a TLS handshake seen in passthrough: silence, a reset or a non-TLS
//! answer to the ClientHello, alerts, and a certificate that does not verify.

use super::*;
use crate::observe::{CertProblem, TlsObservation};

#[test]
fn tls_silent_server_is_client_firewall_or_private_endpoint() {
    let d = diagnoser(vec![]);
    let mut ev = event(REG, FailureKind::TlsServerSilent);
    ev.dns = Some(answer(&[], &["20.50.2.4"]));
    assert_eq!(ids(&d.diagnose_at(&ev, now()))[0], "client_firewall");
    ev.dns = Some(private_chain());
    let f = d.diagnose_at(&ev, now());
    assert_eq!(
        ids(&f),
        vec!["private_endpoint_unreachable", "client_firewall"]
    );
    // regdoc's own deadline closed the tunnel first: the client read end of stream.
    let s = sym(&ev, None);
    assert!(s.ends_with("\": EOF"), "{s}");
    // The client's own handshake timeout fired first.
    ev.error = format!(
        "server did not answer; {} after 10000 ms",
        crate::observe::CLIENT_GAVE_UP
    );
    ev.client_gave_up = true;
    let s = sym(&ev, None);
    assert!(s.ends_with("net/http: TLS handshake timeout"), "{s}");
}

#[test]
fn tls_not_tls_answer_is_a_middlebox() {
    let d = diagnoser(vec![]);
    let f = d.diagnose_at(&event(REG, FailureKind::TlsNotTls), now());
    assert_eq!(ids(&f), vec!["client_firewall", "tls_interception"]);
}

#[test]
fn reset_after_client_hello_names_the_sni_and_the_filtering_firewall() {
    let d = diagnoser(vec![]);
    let mut ev = event(REG, FailureKind::TlsServerReset);
    ev.tls = Some(TlsObservation {
        sni: Some(REG.into()),
        ..TlsObservation::default()
    });
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["client_firewall"]);
    assert_eq!(f[0].confidence, Confidence::High);
    let e = evidence(&f, "client_firewall");
    assert!(
        e.contains("reset (TCP RST) in answer to the ClientHello"),
        "{e}"
    );
    assert!(e.contains(&format!("naming {REG}")), "{e}");
    assert!(e.contains("filters by SNI"), "{e}");
    let s = sym(&ev, None);
    assert_eq!(s, format!("Get \"https://{REG}/v2/\": EOF"));

    // Through an upstream proxy, the evidence says where the reset came from.
    ev.upstream_proxy = Some("corp-proxy:3128".into());
    let e = evidence(&d.diagnose_at(&ev, now()), "client_firewall");
    assert!(e.contains("through upstream proxy corp-proxy:3128"), "{e}");
    // A data endpoint is the data-endpoint firewall gap, as for a close.
    let f = d.diagnose_at(&event(DATA, FailureKind::TlsServerReset), now());
    assert_eq!(ids(&f)[0], "data_endpoint_firewall");
}

#[test]
fn tls_interception_alert_and_unknown_issuer() {
    let d = diagnoser(vec![]);
    let ev = event(
        REG,
        FailureKind::TlsAlert {
            level: "fatal".into(),
            description: "handshake_failure".into(),
        },
    );
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["tls_interception"]);
    assert!(sym(&ev, None).ends_with("remote error: tls: handshake failure"));

    let ev = event(
        REG,
        FailureKind::TlsUpstreamCertificate {
            problem: CertProblem::UnknownIssuer,
            detail: "issuer CN=Corp Inspection CA".into(),
        },
    );
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["tls_interception"]);
    assert_eq!(f[0].confidence, Confidence::High);
    assert!(sym(&ev, None).contains("certificate signed by unknown authority"));
}

#[test]
fn tls_alert_protocol_version_and_unrecognized_name() {
    let d = diagnoser(vec![]);
    let mut ev = event(
        REG,
        FailureKind::TlsAlert {
            level: "fatal".into(),
            description: "protocol_version".into(),
        },
    );
    ev.tls = Some(TlsObservation {
        client_versions: vec!["TLS1.0".into()],
        ..TlsObservation::default()
    });
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f)[0], "docker_config");
    assert!(evidence(&f, "docker_config").contains("TLS1.0"));
    let ev = event(
        REG,
        FailureKind::TlsAlert {
            level: "fatal".into(),
            description: "unrecognized_name".into(),
        },
    );
    assert_eq!(ids(&d.diagnose_at(&ev, now()))[0], "registry_name");
}
