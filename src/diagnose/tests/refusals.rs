//! What regdoc refuses itself (policy, interception names, destinations, its own limits,
//! malformed requests), and the words a refused CONNECT carries to the client.

use super::*;

#[test]
fn proxy_policy_refusals() {
    let d = diagnoser(vec![]);
    for (kind, needle) in [
        (FailureKind::PortNotAllowed { port: 22 }, "port 22"),
        (FailureKind::ClientNotAllowed, "allowed_clients"),
        (
            FailureKind::ClientConnectionLimit { limit: 2, open: 2 },
            "max_connections_per_client (2)",
        ),
        (
            FailureKind::ProxyAuthRequired { provided: false },
            "sent none",
        ),
        (
            FailureKind::ProxyAuthRequired { provided: true },
            "not accepted",
        ),
    ] {
        let ev = event(REG, kind);
        let f = d.diagnose_at(&ev, now());
        assert_eq!(ids(&f), vec!["proxy_policy"]);
        assert!(evidence(&f, "proxy_policy").contains(needle));
        let s = sym(&ev, Some("regdoc: refused by proxy policy [proxy_policy]"));
        assert_eq!(
            s,
            "Get \"https://myregistry.azurecr.io/v2/\": regdoc: refused by proxy policy [proxy_policy]"
        );
    }
}

/// Interception refusals by name: a client naming a foreign host in its SNI, a host outside the
/// CA's name constraints. Both are regdoc's policy; the client saw a TLS alert.
#[test]
fn interception_name_refusals() {
    let d = diagnoser(vec![]);
    for (kind, needle) in [
        (
            FailureKind::TlsSniMismatch {
                sni: "www.google.com".into(),
            },
            "\"www.google.com\" inside a tunnel to myregistry.azurecr.io",
        ),
        (
            FailureKind::InterceptNameNotPermitted {
                permitted: ".azurecr.io".into(),
            },
            "--permit myregistry.azurecr.io",
        ),
    ] {
        let ev = event(REG, kind);
        let f = d.diagnose_at(&ev, now());
        assert_eq!(ids(&f), vec!["proxy_policy"]);
        assert!(evidence(&f, "proxy_policy").contains(needle), "{f:?}");
        let s = client_symptom(
            &ev,
            Some(symptom::Reply::Alert("unrecognized_name")),
            &Situation::default(),
        )
        .map(|s| s.text)
        .unwrap_or_default();
        assert_eq!(
            s,
            "Get \"https://myregistry.azurecr.io/v2/\": remote error: tls: unrecognized name"
        );
        // Without the alert (the record of a refusal always has it), nothing is predicted.
        assert_eq!(sym(&ev, None), "");
    }
}

#[test]
fn destination_refusals_name_the_rule() {
    let d = diagnoser(vec![]);
    let ev = event(
        "metadata.example",
        FailureKind::DestinationNotAllowed {
            addr: "169.254.169.254:80".into(),
            rule: "denied_destinations 169.254.0.0/16".into(),
        },
    );
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["proxy_policy"]);
    assert_eq!(
        evidence(&f, "proxy_policy"),
        "destination 169.254.169.254:80 is refused by denied_destinations 169.254.0.0/16"
    );
}

/// EMFILE used to reach the connect rules and be blamed on a firewall.
#[test]
fn descriptor_shortage_is_regdocs_own_limit_not_the_network() {
    let d = diagnoser(vec![]);
    for (errno, needle) in [("EMFILE", "own open-file limit"), ("ENFILE", "file table")] {
        let mut ev = event(
            REG,
            FailureKind::ResourceLimit {
                errno: errno.into(),
                nofile_soft: Some(1024),
                nofile_hard: None,
            },
        );
        ev.phase = Phase::Connect;
        let f = d.diagnose_at(&ev, now());
        assert_eq!(ids(&f), vec!["regdoc_resource_limit"], "{errno}");
        let e = evidence(&f, "regdoc_resource_limit");
        assert!(
            e.contains(needle) && e.contains("soft 1024, hard unknown"),
            "{e}"
        );
        assert!(!e.contains("firewall"), "{e}");
    }
    let remedy = catalog::REGDOC_RESOURCE_LIMIT.remedy.join(" ");
    assert!(
        remedy.contains("LimitNOFILE=") && remedy.contains("ulimit -n"),
        "{remedy}"
    );
}

#[test]
fn malformed_client_requests() {
    let d = diagnoser(vec![]);
    for kind in [
        FailureKind::MalformedRequest,
        FailureKind::HeadTooLarge { limit: 16384 },
        FailureKind::RequestTimeout,
    ] {
        assert_eq!(
            ids(&d.diagnose_at(&event(REG, kind), now())),
            vec!["bad_client_request"]
        );
    }
}

#[test]
fn symptom_uses_regdoc_reason_phrase_when_connect_was_refused() {
    let d = diagnoser(vec![]);
    let ev = event(REG, FailureKind::DnsNxDomain);
    let f = d.diagnose_at(&ev, now());
    // The phrase production sends (proxy::reply), not one built for the test.
    let reason = crate::proxy::reply::reason_phrase(&ev, &f);
    assert!(reason.starts_with("regdoc registry_name: "), "{reason}");
    assert_eq!(
        sym(&ev, Some(&reason)),
        format!("Get \"https://myregistry.azurecr.io/v2/\": {reason}")
    );
    assert_eq!(
        sym(&ev, None),
        "Get \"https://myregistry.azurecr.io/v2/\": EOF"
    );
    // Blob downloads: dockerd frames the reason its own way ("error pulling image
    // configuration: download failed after attempts=6: <reason>"), seen with dockerd 20.10.
    let data = event(DATA, FailureKind::ConnectTimeout);
    assert_eq!(sym(&data, Some("Bad Gateway")), "Bad Gateway");
}
