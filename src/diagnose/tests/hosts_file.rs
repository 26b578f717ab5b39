//! Addresses pinned in /etc/hosts: evidence names the file and line, because a pin goes stale
//! silently when the endpoint moves.

use super::*;
use crate::observe::{CertProblem, HostsOrigin};

/// What the resolver answers for a name found on line 3 (and its IPv6 address on line 4).
fn pinned(addrs: &[&str]) -> DnsAnswer {
    DnsAnswer {
        addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        source: DnsSource::HostsFile,
        hosts_file: Some(HostsOrigin {
            path: "/etc/hosts".into(),
            lines: (3..3 + addrs.len()).collect(),
        }),
        ..DnsAnswer::default()
    }
}

const STALE: &str = "an address pinned by hand goes stale when the endpoint's address changes";

#[test]
fn a_pinned_address_that_refuses_says_it_came_from_the_hosts_file() {
    let d = diagnoser(vec![]);
    let mut ev = event(REG, FailureKind::ConnectRefused);
    ev.dns = Some(pinned(&["10.1.2.3", "fd00::7"]));
    let f = d.diagnose_at(&ev, now());
    // The cause is what the connect rules say; the hosts file is evidence, second sentence.
    assert_eq!(f[0].cause.id, "private_endpoint_unreachable");
    assert_eq!(
        f[0].evidence[1],
        format!(
            "{REG} came from /etc/hosts, not DNS: 10.1.2.3 (line 3), fd00::7 (line 4); {STALE}: compare it with what DNS answers (nslookup skips /etc/hosts) and update or remove the line"
        )
    );
    assert!(f[0].evidence[0].starts_with("TCP connect to 10.1.2.3:443 was refused"));

    // The same failure on a DNS answer says nothing of the kind.
    ev.dns = Some(answer(&[], &["10.1.2.3"]));
    let f = d.diagnose_at(&ev, now());
    assert!(f
        .iter()
        .all(|f| f.evidence.iter().all(|e| !e.contains(STALE))));
}

#[test]
fn pinned_evidence_on_connect_and_tls_failures_only() {
    let on_path = [
        FailureKind::ConnectTimeout,
        FailureKind::ConnectUnreachable,
        FailureKind::ConnectError,
        FailureKind::TlsServerSilent,
        FailureKind::TlsServerClosed,
        FailureKind::TlsNotTls,
        FailureKind::TlsAlert {
            level: "fatal".into(),
            description: "handshake_failure".into(),
        },
        FailureKind::TlsUpstreamCertificate {
            problem: CertProblem::NameMismatch,
            detail: "certificate is for another name".into(),
        },
    ];
    let d = diagnoser(vec![]);
    for kind in on_path {
        let mut ev = event(REG, kind.clone());
        ev.dns = Some(pinned(&["20.1.2.3"]));
        let sentence = rules::pinned_address(&ev).unwrap_or_default();
        assert!(
            sentence.contains("20.1.2.3 (line 3)"),
            "{kind:?}: {sentence}"
        );
        let f = d.diagnose_at(&ev, now());
        assert!(!f.is_empty(), "{kind:?}");
        assert!(
            f.iter().all(|f| f.evidence.contains(&sentence)),
            "{kind:?}: {f:#?}"
        );
    }
    for kind in [
        FailureKind::HttpStatus { status: 401 },
        FailureKind::ResponseHeadersTimeout,
        FailureKind::UpstreamProxyUnreachable,
    ] {
        let mut ev = event(REG, kind.clone());
        ev.dns = Some(pinned(&["20.1.2.3"]));
        assert_eq!(rules::pinned_address(&ev), None, "{kind:?}");
    }
    // No answer, or an answer without its lines: nothing to say.
    let ev = event(REG, FailureKind::ConnectRefused);
    assert_eq!(rules::pinned_address(&ev), None);
    let mut ev = event(REG, FailureKind::ConnectRefused);
    ev.dns = Some(DnsAnswer {
        hosts_file: None,
        ..pinned(&["20.1.2.3"])
    });
    assert_eq!(rules::pinned_address(&ev), None);
}

#[test]
fn a_pinned_public_address_for_a_private_registry_names_the_line() {
    let d = diagnoser(vec![private_registry(REG)]);
    let f = d
        .judge_resolution(REG, &classify(REG, &[]), &pinned(&["20.50.2.4"]))
        .expect("a public address for a private registry is a finding");
    assert_eq!(f.cause.id, "private_endpoint_dns");
    assert!(
        f.evidence[0].starts_with("answer (hosts_file): "),
        "{:?}",
        f.evidence
    );
    assert!(
        f.evidence[1].contains("20.50.2.4 (line 3)"),
        "{:?}",
        f.evidence
    );
}
