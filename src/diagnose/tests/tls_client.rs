//! The client's side of a TLS handshake: a client refusing regdoc's interception CA, or
//! refusing the certificate a passthrough server showed it, judged by a probe of that
//! certificate when there is one.

use super::*;
use crate::observe::{CertProbe, CertProblem, ClientSignal};

/// A probe's facts as regdoc's probe reports them; `problem` against all trusted roots.
pub(super) fn probe(problem: Option<CertProblem>, public: bool) -> CertProbe {
    CertProbe {
        hop: "direct",
        via: "203.0.113.2:443".into(),
        sni: REG.into(),
        issuer: Some("CN=mitmproxy, O=mitmproxy".into()),
        subject: Some(format!("CN={REG}")),
        names: vec![REG.into()],
        not_before: Some(NOW as i64 - 86_400),
        not_after: Some(NOW as i64 + 86_400 * 90),
        checked_at: NOW as i64,
        chain_to_public_root: Some(public),
        chain_to_extra_root: false,
        problem,
        error: None,
    }
}

pub(super) fn refused(probe: Option<CertProbe>) -> FailureKind {
    FailureKind::TlsClientRefused {
        signal: ClientSignal::EncryptedAlert,
        alert: None,
        probe,
    }
}

#[test]
fn intercept_ca_not_trusted_by_client() {
    let d = diagnoser(vec![]);
    let ev = event(
        REG,
        FailureKind::TlsClientRejected {
            detail: "received fatal alert: UnknownCA".into(),
        },
    );
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["intercept_ca_untrusted"]);
    assert!(evidence(&f, "intercept_ca_untrusted")
        .contains("/etc/docker/certs.d/myregistry.azurecr.io/ca.crt"));
}

#[test]
fn client_refusing_a_private_chain_is_tls_interception_naming_issuer_and_hop() {
    let d = diagnoser(vec![]);
    let ev = event(
        REG,
        refused(Some(probe(Some(CertProblem::UnknownIssuer), false))),
    );
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["tls_interception"]);
    assert_eq!(f[0].confidence, Confidence::High);
    let e = evidence(&f, "tls_interception");
    assert!(
        e.contains(&format!(
            "probe: direct TLS to 203.0.113.2:443 sni={REG} issuer=\"CN=mitmproxy, O=mitmproxy\""
        )),
        "{e}"
    );
    assert!(e.contains("chain_to_public_root=false"), "{e}");
    assert!(e.contains("problem=unknown_issuer"), "{e}");
    assert!(
        e.contains("something on the path (the direct route to the server) re-signs TLS"),
        "{e}"
    );
    assert!(
        e.contains("encrypted record too short to be its Finished"),
        "{e}"
    );
    assert_eq!(
        sym(&ev, None),
        "x509: certificate signed by unknown authority"
    );

    // Through an upstream proxy, the hop is named.
    let mut p = probe(Some(CertProblem::UnknownIssuer), false);
    p.hop = "upstream_proxy";
    p.via = "corp-proxy:3128".into();
    let mut ev = event(REG, refused(Some(p)));
    ev.upstream_proxy = Some("corp-proxy:3128".into());
    let e = evidence(&d.diagnose_at(&ev, now()), "tls_interception");
    assert!(
        e.contains("probe: TLS through upstream proxy corp-proxy:3128"),
        "{e}"
    );
    assert!(
        e.contains("(through upstream proxy corp-proxy:3128) re-signs"),
        "{e}"
    );
}

#[test]
fn client_refusing_a_valid_public_chain_lacks_roots() {
    let d = diagnoser(vec![]);
    let f = d.diagnose_at(&event(REG, refused(Some(probe(None, true)))), now());
    assert_eq!(ids(&f), vec!["client_trust_store"]);
    assert_eq!(f[0].confidence, Confidence::High);
    assert!(evidence(&f, "client_trust_store").contains("lacks its root"));

    // A chain to an extra root only: a private CA the client does not trust.
    let mut p = probe(None, false);
    p.chain_to_extra_root = true;
    let f = d.diagnose_at(&event(REG, refused(Some(p))), now());
    assert_eq!(ids(&f), vec!["tls_interception", "client_trust_store"]);
    assert!(evidence(&f, "tls_interception").contains("intercept.extra_roots"));
}

#[test]
fn client_refusing_an_out_of_date_certificate_is_judged_by_the_dates() {
    let d = diagnoser(vec![]);
    // Not valid yet: the local clock is behind.
    let mut p = probe(Some(CertProblem::NotYetValid), true);
    p.not_before = Some(NOW as i64 + 3600);
    let ev = event(REG, refused(Some(p)));
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["clock_skew", "registry_certificate"]);
    assert_eq!(f[0].confidence, Confidence::High);
    assert!(evidence(&f, "clock_skew").contains("the local clock read 2027-01-15"));
    assert!(sym(&ev, None).ends_with("x509: certificate has expired or is not yet valid"));

    // Expired a little while ago: the certificate, more likely than the clock.
    let mut p = probe(Some(CertProblem::Expired), true);
    p.not_before = Some(NOW as i64 - 86_400 * 90);
    p.not_after = Some(NOW as i64 - 86_400);
    let f = d.diagnose_at(&event(REG, refused(Some(p))), now());
    assert_eq!(ids(&f), vec!["registry_certificate", "clock_skew"]);
    assert_eq!(f[1].confidence, Confidence::Low);

    // Expired longer ago than it was ever valid: the clock may well be far ahead.
    let mut p = probe(Some(CertProblem::Expired), true);
    p.not_before = Some(NOW as i64 - 86_400 * 400);
    p.not_after = Some(NOW as i64 - 86_400 * 300);
    let f = d.diagnose_at(&event(REG, refused(Some(p))), now());
    assert_eq!(f[1].cause.id, "clock_skew");
    assert_eq!(f[1].confidence, Confidence::Medium);
}

#[test]
fn client_refusing_a_certificate_for_another_name_is_a_wrong_endpoint_or_a_portal() {
    let d = diagnoser(vec![]);
    let f = d.diagnose_at(
        &event(
            REG,
            refused(Some(probe(Some(CertProblem::NameMismatch), true))),
        ),
        now(),
    );
    assert_eq!(ids(&f), vec!["registry_name", "client_firewall"]);
    assert!(evidence(&f, "client_firewall").contains("captive portal"));
}

#[test]
fn client_refusal_without_a_probe_reads_the_alert() {
    let d = diagnoser(vec![]);
    let kind = |alert: &str| FailureKind::TlsClientRefused {
        signal: ClientSignal::Alert,
        alert: Some(alert.into()),
        probe: None,
    };
    let f = d.diagnose_at(&event(REG, kind("unknown_ca")), now());
    assert_eq!(ids(&f), vec!["tls_interception", "client_trust_store"]);
    let e = evidence(&f, "tls_interception");
    assert!(e.contains("with a unknown_ca alert"), "{e}");
    assert!(
        e.contains("no probe of the server's certificate was made"),
        "{e}"
    );
    let f = d.diagnose_at(&event(REG, kind("certificate_expired")), now());
    assert_eq!(ids(&f)[0], "registry_certificate");

    // A probe that could not read a certificate says why.
    let mut p = probe(None, false);
    p.error = Some("no TLS answer within 5000 ms".into());
    let f = d.diagnose_at(&event(REG, refused(Some(p))), now());
    assert_eq!(ids(&f)[0], "tls_interception");
    assert!(evidence(&f, "tls_interception").contains("failed: no TLS answer within 5000 ms"));
}

#[test]
fn a_hang_up_is_no_refusal_from_a_client_whose_rest_calls_just_worked() {
    use crate::diagnose::context::ContextView;
    use crate::endpoint::EndpointKind;
    let mut view = ContextView::empty(SystemTime::UNIX_EPOCH + Duration::from_secs(NOW));
    assert!(rules::hang_up_is_refusal(&view, EndpointKind::RegistryRest));
    // Another client's success says nothing of this client's trust store.
    view.rest_ok_any_age = Some(Duration::from_secs(5));
    assert!(rules::hang_up_is_refusal(&view, EndpointKind::RegistryRest));
    // This client's own REST calls worked through regdoc moments ago: it gave up the
    // connection, it did not refuse the certificate it accepted then.
    view.rest_ok_age = Some(Duration::from_secs(5));
    assert!(!rules::hang_up_is_refusal(
        &view,
        EndpointKind::RegistryRest
    ));
    // Trust is per host (dockerd's certs.d): the REST endpoint's says nothing of a data host.
    assert!(rules::hang_up_is_refusal(&view, EndpointKind::DataEndpoint));
}
