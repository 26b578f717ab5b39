//! The proxies around regdoc: a client's proxy URL with the wrong scheme, and an upstream
//! proxy that refuses or fails a CONNECT.

use super::*;

#[test]
fn network_article_proxyconnect_tcp_eof_https_proxy_scheme() {
    let d = diagnoser(vec![]);
    let ev = event(REG, FailureKind::TlsInsteadOfHttp);
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["proxy_scheme_mismatch", "docker_config"]);
    assert_eq!(
        sym(&ev, None),
        "Get \"https://myregistry.azurecr.io/v2/\": proxyconnect tcp: EOF"
    );
    assert!(sym(&ev, Some("Bad Request"))
        .ends_with("proxyconnect tcp: tls: first record does not look like a TLS handshake"));
}

#[test]
fn network_article_upstream_proxy_refuses_connect() {
    let d = diagnoser(vec![]);
    let mut ev = event(
        REG,
        FailureKind::UpstreamProxyStatus {
            status: 403,
            reason: "Forbidden".into(),
        },
    );
    ev.upstream_proxy = Some("proxy.corp.example:8080".into());
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["upstream_proxy"]);
    assert!(evidence(&f, "upstream_proxy").contains("proxy.corp.example:8080"));

    let ev = event(
        REG,
        FailureKind::UpstreamProxyStatus {
            status: 407,
            reason: "Proxy Authentication Required".into(),
        },
    );
    let f = d.diagnose_at(&ev, now());
    assert!(evidence(&f, "upstream_proxy").contains("credentials"));

    for kind in [
        FailureKind::UpstreamProxyClosed,
        FailureKind::UpstreamProxyTimeout,
        FailureKind::UpstreamProxyUnreachable,
    ] {
        assert_eq!(
            ids(&d.diagnose_at(&event(REG, kind), now())),
            vec!["upstream_proxy"]
        );
    }
}

#[test]
fn network_article_upstream_proxy_allows_rest_but_not_data_endpoint() {
    let d = diagnoser(vec![]);
    d.note_success(SuccessNote {
        client: client(),
        host: REG.into(),
        endpoint: classify(REG, &[]),
        at: now(),
        http: None,
    });
    let ev = event(
        DATA,
        FailureKind::UpstreamProxyStatus {
            status: 403,
            reason: "Forbidden".into(),
        },
    );
    let f = d.diagnose_at(&ev, later(2));
    assert_eq!(ids(&f), vec!["upstream_proxy", "data_endpoint_firewall"]);
}
