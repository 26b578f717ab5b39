//! Properties of every diagnosis: no secret in evidence, every observable cause reachable,
//! findings ranked and merged.

use super::tls_client::{probe, refused};
use super::*;
use crate::observe::{CertProblem, EarlyClose};
use std::collections::BTreeSet;

#[test]
fn evidence_never_contains_tokens_or_passwords() {
    let d = diagnoser(vec![private_registry(REG)]);
    let jwt =
        "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJqdGkiOiIxMjM0NTY3OCJ9.c2lnbmF0dXJlc2lnbmF0dXJl";
    let mut findings = Vec::new();
    let mut expired = access_token("app/web", &["pull"]);
    expired.exp = Some(NOW as i64 - 5);
    let mut ex = token_request(401);
    ex.auth = Some(basic(UsernameKind::NullGuidToken, Some(expired.clone())));
    ex.body_text = Some(format!(
        "invalid refresh_token={jwt} for password=hunter2secret"
    ));
    findings.extend(judge(&d, REG, &ex));
    let mut m = manifest("GET", 401, "app/web", "1.0");
    m.auth = Some(bearer(access_token("app/web", &["pull"])));
    m.registry_errors = vec![acr_error("UNAUTHORIZED", &format!("token {jwt} rejected"))];
    m.location = Some(format!("https://{DATA}/b?sig=U2VjcmV0U2lnbmF0dXJlMTIz"));
    findings.extend(judge(&d, REG, &m));
    let mut f403 = exchange("GET", "ping", 403);
    f403.body_text = Some(format!("Authorization: Bearer {jwt}"));
    findings.extend(judge(&d, REG, &f403));
    let mut ev = event(
        DATA,
        FailureKind::TlsUpstreamCertificate {
            problem: CertProblem::Other,
            detail: format!("cert for ?sig=QUJDREVGR0hJSktMTU5PUFFSU1RVVldY {jwt}"),
        },
    );
    ev.upstream_proxy = Some("http://proxy:3128".into());
    findings.extend(d.diagnose_at(&ev, now()));
    assert!(!findings.is_empty());
    for f in &findings {
        let json = serde_json::to_string(f).unwrap();
        for secret in [
            "eyJ",
            "hunter2secret",
            "U2VjcmV0U2lnbmF0dXJl",
            "QUJDREVGR0hJSktM",
            "sig=",
            "c2lnbmF0dXJl",
        ] {
            assert!(!json.contains(secret), "{secret} leaked in {json}");
        }
        // The claims themselves are facts and may be quoted: exp as a time.
        assert!(json.contains(&format!("\"cause\":\"{}\"", f.cause.id)));
    }
    let s = sym(&http_event(REG, m), None);
    assert!(!s.contains("eyJ"), "{s}");
}

#[test]
fn every_observable_cause_is_reachable() {
    let d = diagnoser(vec![private_registry("private.azurecr.io")]);
    let mut seen = BTreeSet::new();
    let mut add = |f: Vec<Finding>| {
        for x in f {
            seen.insert(x.cause.id);
        }
    };
    let kinds = vec![
        FailureKind::MalformedRequest,
        FailureKind::TlsInsteadOfHttp,
        FailureKind::PortNotAllowed { port: 25 },
        FailureKind::DnsNxDomain,
        FailureKind::ConnectTimeout,
        FailureKind::UpstreamProxyClosed,
        FailureKind::TlsUpstreamCertificate {
            problem: CertProblem::Expired,
            detail: String::new(),
        },
        FailureKind::TlsClientRejected {
            detail: String::new(),
        },
        refused(Some(probe(None, false))),
        refused(Some(probe(Some(CertProblem::Expired), true))),
        FailureKind::TransferStalled {
            idle_secs: 30,
            bytes_before: 1,
        },
        FailureKind::ResponseHeadersTimeout,
        FailureKind::UpstreamClosedBeforeHeaders {
            how: EarlyClose::Closed,
        },
        FailureKind::ResourceLimit {
            errno: "EMFILE".into(),
            nofile_soft: Some(1024),
            nofile_hard: Some(4096),
        },
    ];
    for k in kinds {
        add(d.diagnose_at(&event(REG, k.clone()), now()));
        add(d.diagnose_at(&event(DATA, k.clone()), now()));
        add(d.diagnose_at(&event("private.azurecr.io", k), now()));
    }
    let mut pe = event("private.azurecr.io", FailureKind::ConnectTimeout);
    pe.dns = Some(answer(&["private.privatelink.azurecr.io"], &["10.0.0.9"]));
    add(d.diagnose_at(&pe, now()));
    let mut ip = exchange("GET", "ping", 403);
    ip.body_text = Some("client with IP '198.51.100.1' is not allowed access".into());
    add(judge(&d, REG, &ip));
    let mut push = manifest("PUT", 401, "r", "t");
    push.auth = Some(bearer(access_token("r", &["pull"])));
    add(judge(&d, REG, &push));
    let mut old = access_token("r", &["pull"]);
    old.exp = Some(1);
    push.auth = Some(bearer(old));
    add(judge(&d, REG, &push));
    add(judge(&d, REG, &exchange("GET", "ping", 429)));
    let mut geo = manifest("PUT", 400, "r", "t");
    geo.registry_errors = vec![acr_error(
        "MANIFEST_BLOB_UNKNOWN",
        "blob unknown to registry",
    )];
    add(judge(&d, REG, &geo));
    add(judge(&d, REG, &token_request(401)));
    add(judge(&d, REG, &manifest("GET", 404, "r", "t")));
    for c in catalog::CAUSES {
        assert!(
            seen.contains(c.id) == c.observable,
            "cause {} observable={} reached={}",
            c.id,
            c.observable,
            seen.contains(c.id)
        );
    }
}

#[test]
fn diagnoser_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Diagnoser>();
    check::<aggregate::Aggregator>();
}

#[test]
fn location_host_keeps_only_the_host() {
    assert_eq!(
        location_host("https://myregistry.westeurope.data.azurecr.io/blobs/x?sig=abc"),
        Some("myregistry.westeurope.data.azurecr.io".into())
    );
    assert_eq!(
        location_host("https://user:pw@Acct.blob.core.windows.net:443/c/b?sv=1&sig=x"),
        Some("acct.blob.core.windows.net".into())
    );
    assert_eq!(location_host("/v2/app/blobs/uploads/123"), None);
    assert_eq!(location_host("https://bad host/"), None);
}

#[test]
fn findings_are_ranked_and_merged() {
    let e = |s: &str| vec![s.to_string()];
    let out = rules::rank(vec![
        Finding {
            cause: &catalog::NOT_FOUND,
            confidence: Confidence::Low,
            evidence: e("a"),
        },
        Finding {
            cause: &catalog::NOT_AUTHORIZED,
            confidence: Confidence::Medium,
            evidence: e("b"),
        },
        Finding {
            cause: &catalog::NOT_FOUND,
            confidence: Confidence::High,
            evidence: e("c"),
        },
    ]);
    assert_eq!(ids(&out), vec!["not_found", "not_authorized"]);
    assert_eq!(out[0].evidence, vec!["a", "c"]);
}
