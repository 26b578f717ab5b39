//! The data endpoints a pull is redirected to: firewall gaps read in the light of the REST
//! endpoint's earlier success, their DNS, and transfers that stall.

use super::*;

#[test]
fn network_article_data_endpoint_firewall_after_rest_success() {
    let d = diagnoser(vec![]);
    // The healthy pull so far: ping challenge, then a 307 from the blob URL to the data endpoint.
    let mut ping = exchange("GET", "ping", 401);
    ping.www_authenticate = Some(bearer_challenge(REG));
    assert!(judge(&d, REG, &ping).is_empty());
    let mut blob = exchange("GET", "blob", 307);
    blob.repository = Some("app/web".into());
    blob.location = Some(format!(
        "https://{DATA}/blobs/sha256:ab12?se=2026-11-23T19%3A00Z&sig=ZmFrZXNpZw%3D%3D&sp=r"
    ));
    blob.auth = Some(bearer(access_token("app/web", &["pull"])));
    assert!(judge(&d, REG, &blob).is_empty());

    for kind in [
        FailureKind::ConnectTimeout,
        FailureKind::TlsServerClosed,
        FailureKind::TlsServerSilent,
    ] {
        let mut ev = event(DATA, kind);
        ev.dns = Some(answer(&[], &["20.60.100.5"]));
        let f = d.diagnose_at(&ev, later(20));
        assert_eq!(ids(&f)[0], "data_endpoint_firewall", "{:?}", ev.kind);
        assert_eq!(f[0].confidence, Confidence::High);
        let e = evidence(&f, "data_endpoint_firewall");
        assert!(e.contains(&format!("allow {DATA}:443")), "{e}");
        assert!(e.contains("region westeurope"), "{e}");
        assert!(e.contains("worked for this client 20s earlier"), "{e}");
        assert!(!e.contains("sig="), "{e}");
    }
}

#[test]
fn network_article_data_endpoint_without_context_is_still_data_endpoint_firewall() {
    let d = diagnoser(vec![]);
    let f = d.diagnose_at(&event(DATA, FailureKind::ConnectTimeout), now());
    assert_eq!(ids(&f), vec!["data_endpoint_firewall"]);
    assert_eq!(f[0].confidence, Confidence::Medium);
}

#[test]
fn network_article_blob_storage_redirect_target_blocked() {
    let d = diagnoser(vec![]);
    let blob_host = "weumyregistry123.blob.core.windows.net";
    let mut blob = exchange("GET", "blob", 307);
    blob.location = Some(format!(
        "https://{blob_host}/abc/def?sv=2019-02-02&sr=b&sig=c2lnbmF0dXJlMTIzNDU2Nzg5MA%3D%3D&sp=r"
    ));
    assert!(judge(&d, REG, &blob).is_empty());
    let f = d.diagnose_at(&event(blob_host, FailureKind::TlsServerClosed), later(5));
    assert_eq!(ids(&f)[0], "data_endpoint_firewall");
    assert_eq!(f[0].confidence, Confidence::High);
    let e = evidence(&f, "data_endpoint_firewall");
    assert!(e.contains("redirected a client here"), "{e}");
}

#[test]
fn network_article_geo_replica_region_missing_from_firewall() {
    let reg = RegistryConfig {
        host: REG.into(),
        private_endpoint: false,
        expected_cidrs: Vec::new(),
        regions: vec!["westeurope".into()],
    };
    let d = diagnoser(vec![reg]);
    let eus = classify("myregistry.eastus.data.azurecr.io", &[]);
    d.note_success(SuccessNote {
        client: client(),
        host: DATA.into(),
        endpoint: classify(DATA, &[]),
        at: now(),
        http: None,
    });
    let mut ev = event(
        "myregistry.eastus.data.azurecr.io",
        FailureKind::ConnectTimeout,
    );
    ev.endpoint = eus;
    let f = d.diagnose_at(&ev, later(1));
    let e = evidence(&f, "data_endpoint_firewall");
    assert!(
        e.contains("region eastus is not among the regions configured"),
        "{e}"
    );
    assert!(
        e.contains(&format!(
            "other data hosts of this registry worked: {DATA} (westeurope)"
        )),
        "{e}"
    );
}

#[test]
fn network_article_data_endpoint_dns_for_private_registry() {
    let d = diagnoser(vec![private_registry(REG)]);
    let f = d.diagnose_at(&event(DATA, FailureKind::DnsNxDomain), now());
    assert_eq!(ids(&f)[0], "private_endpoint_dns");
    assert!(evidence(&f, "private_endpoint_dns")
        .contains("myregistry.westeurope.data.privatelink.azurecr.io"));
}

#[test]
fn network_article_data_endpoint_dns_public_registry_after_rest() {
    let d = diagnoser(vec![]);
    let mut ping = exchange("GET", "ping", 401);
    ping.www_authenticate = Some(bearer_challenge(REG));
    assert!(judge(&d, REG, &ping).is_empty());
    let f = d.diagnose_at(&event(DATA, FailureKind::DnsNxDomain), later(3));
    assert_eq!(
        ids(&f),
        vec!["data_endpoint_firewall", "private_endpoint_dns"]
    );
}

#[test]
fn beyond_transfer_stalled_on_data_endpoint() {
    let d = diagnoser(vec![]);
    let ev = event(
        DATA,
        FailureKind::TransferStalled {
            idle_secs: 30,
            bytes_before: 52_428_800,
        },
    );
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["transfer_stalled"]);
    assert_eq!(f[0].confidence, Confidence::High);
    let e = evidence(&f, "transfer_stalled");
    assert!(
        e.contains("52428800 bytes") && e.contains("westeurope"),
        "{e}"
    );
}
