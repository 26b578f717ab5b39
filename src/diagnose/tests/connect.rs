//! TCP connect failures to the registry's REST endpoint: a private endpoint out of reach, or
//! a firewall in front of a public one.

use super::*;

#[test]
fn network_article_host_is_not_reachable_private_endpoint() {
    let d = diagnoser(vec![]);
    for kind in [FailureKind::ConnectTimeout, FailureKind::ConnectUnreachable] {
        let mut ev = event(REG, kind);
        ev.dns = Some(private_chain());
        let f = d.diagnose_at(&ev, now());
        assert_eq!(ids(&f)[0], "private_endpoint_unreachable");
        assert_eq!(f[0].confidence, Confidence::High);
        assert!(evidence(&f, "private_endpoint_unreachable").contains("10.1.2.4"));
    }
}

#[test]
fn network_article_client_firewall_blocks_rest_connect() {
    let d = diagnoser(vec![]);
    for kind in [
        FailureKind::ConnectTimeout,
        FailureKind::ConnectRefused,
        FailureKind::ConnectUnreachable,
    ] {
        let mut ev = event(REG, kind);
        ev.dns = Some(answer(
            &["r0403weu-3.westeurope.cloudapp.azure.com"],
            &["20.50.2.4"],
        ));
        let f = d.diagnose_at(&ev, now());
        assert_eq!(ids(&f), vec!["client_firewall"]);
        assert_eq!(f[0].confidence, Confidence::High);
        assert!(evidence(&f, "client_firewall").contains("allow myregistry.azurecr.io:443"));
    }
}
