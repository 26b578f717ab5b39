//! Registry answers other than a login's: 403 from the registry's firewall, 404 and its 401
//! disguise, 429, 5xx, a missing challenge, and geo-replication lag.

use super::*;

#[test]
fn network_article_login_attempt_failed_403_public_access_rules() {
    let d = diagnoser(vec![]);
    let mut ping = exchange("GET", "ping", 403);
    ping.registry_errors = vec![acr_error(
        "DENIED",
        "client with IP '203.0.113.7' is not allowed access. Refer https://aka.ms/acr/firewall to grant access.",
    )];
    let f = judge(&d, REG, &ping);
    assert_eq!(ids(&f), vec!["public_access_rules"]);
    assert_eq!(f[0].confidence, Confidence::High);
    assert!(evidence(&f, "public_access_rules").contains("203.0.113.7"));
    let ev = http_event(REG, ping);
    assert_eq!(
        sym(&ev, None),
        "Error response from daemon: login attempt to https://myregistry.azurecr.io/v2/ failed with status: 403 Forbidden"
    );
}

#[test]
fn network_article_public_access_rules_on_manifest_pull() {
    let d = diagnoser(vec![]);
    // The GET Docker asks again with after its HEAD was refused: the one whose error it prints.
    let mut m = manifest("GET", 403, "app/web", "1.0");
    m.auth = Some(bearer(access_token("app/web", &["pull"])));
    m.registry_errors = vec![acr_error(
        "DENIED",
        "client with IP '2001:db8::7' is not allowed access. Refer https://aka.ms/acr/firewall to grant access.",
    )];
    let f = judge(&d, REG, &m);
    assert_eq!(ids(&f)[0], "public_access_rules");
    assert!(evidence(&f, "public_access_rules").contains("2001:db8::7"));
    let s = sym(&http_event(REG, m), None);
    assert_eq!(
        s,
        "Error response from daemon: pull access denied for myregistry.azurecr.io/app/web, repository does not exist or may require 'docker login': denied: client with IP '2001:db8::7' is not allowed access. Refer https://aka.ms/acr/firewall to grant access."
    );
}

#[test]
fn denied_client_ip_extraction() {
    assert_eq!(
        rules::denied_client_ip("client with IP '172.214.169.102' is not allowed access."),
        Some("172.214.169.102".parse().unwrap())
    );
    assert_eq!(
        rules::denied_client_ip("client with IP 'junk' is not"),
        None
    );
    assert_eq!(rules::denied_client_ip("requested access is denied"), None);
}

#[test]
fn network_article_ping_403_without_message_is_public_access_rules() {
    let d = diagnoser(vec![]);
    let f = judge(&d, REG, &exchange("GET", "ping", 403));
    assert_eq!(ids(&f), vec!["public_access_rules", "not_authorized"]);
}

#[test]
fn beyond_not_found_as_401_when_token_grants_pull() {
    let d = diagnoser(vec![]);
    let mut m = manifest("GET", 401, "app/web", "does-not-exist");
    m.auth = Some(bearer(access_token("app/web", &["pull"])));
    m.www_authenticate = Some(bearer_challenge(REG));
    m.registry_errors = vec![RegistryError {
        code: "UNAUTHORIZED".into(),
        message:
            "authentication required, visit https://aka.ms/acr/authorization for more information."
                .into(),
        detail: Some(serde_json::json!([{"Type":"repository","Name":"app/web","Action":"pull"}])),
        has_detail: true,
        ..Default::default()
    }];
    let f = judge(&d, REG, &m);
    assert_eq!(ids(&f), vec!["not_found", "not_authorized"]);
    assert_eq!(f[0].confidence, Confidence::Medium);
}

#[test]
fn beyond_not_found_manifest_unknown_and_name_unknown() {
    let d = diagnoser(vec![]);
    let mut m = manifest("GET", 404, "app/web", "9.9");
    m.auth = Some(bearer(access_token("app/web", &["pull"])));
    m.registry_errors = vec![acr_error(
        "MANIFEST_UNKNOWN",
        "manifest tagged by \"9.9\" is not found",
    )];
    let f = judge(&d, REG, &m);
    assert_eq!(ids(&f), vec!["not_found"]);
    assert_eq!(f[0].confidence, Confidence::High);
    let s = sym(&http_event(REG, m.clone()), None);
    assert_eq!(
        s,
        "Error response from daemon: manifest for myregistry.azurecr.io/app/web:9.9 not found: manifest unknown: manifest tagged by \"9.9\" is not found"
    );
    m.registry_errors = vec![acr_error(
        "NAME_UNKNOWN",
        "repository name not known to registry",
    )];
    assert_eq!(ids(&judge(&d, REG, &m)), vec!["not_found", "registry_name"]);
    // Without a detail, a default message makes a bare code, which the pull prints as it is.
    assert_eq!(
        sym(&http_event(REG, m.clone()), None),
        "Error response from daemon: name unknown"
    );
    m.registry_errors[0].has_detail = true;
    assert_eq!(
        sym(&http_event(REG, m), None),
        "Error response from daemon: repository myregistry.azurecr.io/app/web not found: name unknown: repository name not known to registry"
    );
}

#[test]
fn beyond_ping_404_is_not_a_registry() {
    let d = diagnoser(vec![]);
    assert_eq!(
        ids(&judge(&d, REG, &exchange("GET", "ping", 404))),
        vec!["registry_name"]
    );
}

#[test]
fn beyond_throttled_429() {
    let d = diagnoser(vec![]);
    let mut m = manifest("GET", 429, "app/web", "1.0");
    m.auth = Some(bearer(access_token("app/web", &["pull"])));
    m.registry_errors = vec![acr_error("TOOMANYREQUESTS", "too many requests")];
    let f = judge(&d, REG, &m);
    assert_eq!(ids(&f), vec!["throttled"]);
    assert_eq!(
        sym(&http_event(REG, m.clone()), None),
        "Error response from daemon: toomanyrequests"
    );
    m.registry_errors[0].message = "Too many requests. Retry after 30 seconds.".into();
    assert_eq!(
        sym(&http_event(REG, m.clone()), None),
        "Error response from daemon: toomanyrequests: Too many requests. Retry after 30 seconds."
    );
    // The tag's HEAD refused: Docker asks again with GET and prints that one's error, so the
    // HEAD is a cause without words (seen with dockerd 20.10 in
    // throttled_registry_pull_and_check_agree).
    let mut head = manifest("HEAD", 429, "app/web", "1.0");
    head.auth = m.auth.clone();
    assert_eq!(ids(&judge(&d, REG, &head)), vec!["throttled"]);
    assert_eq!(sym(&http_event(REG, head), None), "");
}

#[test]
fn beyond_registry_error_5xx() {
    let d = diagnoser(vec![]);
    let mut m = manifest("GET", 503, "app/web", "1.0");
    m.registry_errors = vec![acr_error("UNAVAILABLE", "service unavailable")];
    let f = judge(&d, REG, &m);
    assert_eq!(ids(&f), vec!["registry_error"]);
    assert_eq!(f[0].confidence, Confidence::High);
    assert_eq!(
        sym(&http_event(REG, m), None),
        "Error response from daemon: received unexpected HTTP status: 503 Service Unavailable"
    );
}

#[test]
fn beyond_registry_did_not_issue_a_challenge() {
    let d = diagnoser(vec![]);
    let f = judge(&d, REG, &exchange("GET", "ping", 401));
    assert_eq!(ids(&f), vec!["registry_error"]);
    assert!(evidence(&f, "registry_error").contains("without a WWW-Authenticate"));
}

#[test]
fn http_status_without_exchange_details_still_names_a_cause() {
    let d = diagnoser(vec![]);
    for (status, id) in [
        (429, "throttled"),
        (503, "registry_error"),
        (404, "not_found"),
        (401, "invalid_credentials"),
        (403, "not_authorized"),
    ] {
        let f = d.diagnose_at(&event(REG, FailureKind::HttpStatus { status }), now());
        assert_eq!(ids(&f)[0], id, "{status}");
    }
    // An exchange the transport reports although the rules find it healthy.
    let f = d.diagnose_at(&http_event(REG, exchange("GET", "ping", 200)), now());
    assert_eq!(ids(&f), vec!["registry_error"]);
}

#[test]
fn beyond_geo_replication_manifest_blob_unknown() {
    let d = diagnoser(vec![]);
    let mut m = manifest("PUT", 400, "app/web", "1.0");
    m.registry_errors = vec![acr_error(
        "MANIFEST_BLOB_UNKNOWN",
        "blob unknown to registry",
    )];
    assert_eq!(
        ids(&judge(&d, REG, &m)),
        vec!["geo_replication", "not_found"]
    );
}

#[test]
fn registry_error_detail_is_its_own_words_in_the_evidence() {
    // distribution's 401 to a push without the scope names what was asked in `detail`.
    let d = diagnoser(vec![]);
    let mut put = manifest("PUT", 401, "app/web", "1.0");
    put.auth = Some(bearer(access_token("app/web", &["pull"])));
    put.registry_errors = vec![RegistryError {
        detail: Some(serde_json::json!([{"Action": "push", "Name": "app/web"}])),
        ..acr_error("UNAUTHORIZED", "authentication required")
    }];
    let f = judge(&d, REG, &put);
    let e = evidence(&f, "not_authorized");
    assert!(
        e.contains("registry says 401 UNAUTHORIZED: authentication required detail [{"),
        "{e}"
    );
}
