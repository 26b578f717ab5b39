//! The login article: credentials refused at the token endpoint, expired credentials, and a
//! valid token that does not grant what the request needs.

use super::*;

#[test]
fn login_article_invalid_credentials_application_not_registered() {
    let d = diagnoser(vec![]);
    // `docker login` asks for a token with no scope; ACR's token service answers in the
    // `details` shape.
    let mut ex = exchange("GET", "token", 401);
    ex.registry_errors = crate::http::registry_error::parse(
        br#"{"details":"Application not registered with AAD."}"#,
        &crate::redact::Redactor::default(),
    );
    ex.auth = Some(basic(UsernameKind::ServicePrincipal, None));
    let f = judge(&d, REG, &ex);
    assert_eq!(ids(&f), vec!["invalid_credentials"]);
    assert_eq!(f[0].confidence, Confidence::High);
    assert!(evidence(&f, "invalid_credentials").contains("service principal application id"));
    let s = sym(&http_event(REG, ex), None);
    assert_eq!(
        s,
        "Error response from daemon: Get \"https://myregistry.azurecr.io/v2/\": unauthorized: Application not registered with AAD."
    );
}

#[test]
fn login_article_invalid_credentials_unauthorized_at_token_endpoint() {
    let d = diagnoser(vec![]);
    let mut ex = token_request(401);
    ex.registry_errors = vec![acr_error(
        "UNAUTHORIZED",
        "authentication required, visit https://aka.ms/acr/authorization for more information.",
    )];
    ex.auth = Some(basic(UsernameKind::Other, None));
    let f = judge(&d, REG, &ex);
    assert_eq!(ids(&f), vec!["invalid_credentials", "expired_credentials"]);
    assert_eq!(f[1].confidence, Confidence::Low);
    let s = sym(&http_event(REG, ex), None);
    assert!(s.ends_with(
        "unauthorized: authentication required, visit https://aka.ms/acr/authorization for more information."
    ));
}

#[test]
fn login_article_anonymous_token_request_refused_needs_login() {
    let d = diagnoser(vec![]);
    let f = judge(&d, REG, &token_request(401));
    assert_eq!(ids(&f), vec!["invalid_credentials"]);
    assert!(evidence(&f, "invalid_credentials").contains("docker login"));
    // containerd has no `docker login`: its caller brings the credentials.
    let mut ctr = token_request(401);
    ctr.user_agent = Some("containerd/1.6.20~ds1".into());
    let f = judge(&d, REG, &ctr);
    assert_eq!(ids(&f), vec!["invalid_credentials"]);
    let e = evidence(&f, "invalid_credentials");
    assert!(
        !e.contains("docker login") && e.contains("imagePullSecrets"),
        "{e}"
    );
}

#[test]
fn login_article_expired_credentials_presented_token_exp_past() {
    let d = diagnoser(vec![]);
    let mut refresh = access_token("app/web", &["pull"]);
    refresh.grant_type = Some("refresh_token".into());
    refresh.iat = Some(NOW as i64 - 4 * 3600);
    refresh.exp = Some(NOW as i64 - 3600);
    let mut ex = exchange("POST", "token", 401);
    ex.auth = Some(basic(UsernameKind::NullGuidToken, Some(refresh)));
    let f = judge(&d, REG, &ex);
    assert_eq!(ids(&f), vec!["expired_credentials"]);
    let e = evidence(&f, "expired_credentials");
    assert!(e.contains("expired at 2027-01-15T07:00:00Z"), "{e}");
    assert!(e.contains("3600 s before"), "{e}");
}

#[test]
fn login_article_expired_bearer_on_manifest() {
    let d = diagnoser(vec![]);
    let mut claims = access_token("app/web", &["pull"]);
    claims.exp = Some(NOW as i64 - 10);
    let mut m = manifest("GET", 401, "app/web", "1.0");
    m.auth = Some(bearer(claims));
    m.www_authenticate = Some(bearer_challenge(REG));
    assert_eq!(ids(&judge(&d, REG, &m)), vec!["expired_credentials"]);
}

#[test]
fn login_article_expose_token_null_guid_with_non_jwt_password() {
    let d = diagnoser(vec![]);
    let mut ex = token_request(401);
    ex.auth = Some(basic(UsernameKind::NullGuidToken, None));
    let f = judge(&d, REG, &ex);
    assert_eq!(ids(&f), vec!["invalid_credentials"]);
    assert!(evidence(&f, "invalid_credentials").contains("--expose-token"));
}

#[test]
fn login_article_expired_credentials_exchange_refuses_entra_token() {
    let d = diagnoser(vec![]);
    let mut ex = exchange("POST", "exchange", 401);
    ex.registry_errors = vec![acr_error(
        "UNAUTHORIZED",
        "authentication required, visit https://aka.ms/acr/authorization for more information.",
    )];
    let f = judge(&d, REG, &ex);
    assert_eq!(ids(&f), vec!["expired_credentials", "invalid_credentials"]);
    assert!(evidence(&f, "expired_credentials").contains("az login"));
}

#[test]
fn login_article_expired_refresh_token_known_from_context() {
    let d = diagnoser(vec![]);
    let mut issued = exchange("POST", "exchange", 200);
    let mut refresh = access_token("app/web", &["pull"]);
    refresh.grant_type = Some("refresh_token".into());
    refresh.exp = Some(NOW as i64 + 600);
    issued.issued_token = Some(refresh);
    assert!(judge(&d, REG, &issued).is_empty());
    // An hour later the daemon trades the refresh token (in the form body) and is refused.
    let ex = exchange("POST", "token", 401);
    let f = d.judge_exchange_at(
        client(),
        REG,
        443,
        &classify(REG, &[]),
        None,
        &ex,
        later(3600),
    );
    assert_eq!(ids(&f), vec!["expired_credentials"]);
    assert_eq!(f[0].confidence, Confidence::High);
    assert!(evidence(&f, "expired_credentials").contains("refresh token expired"));
}

#[test]
fn login_article_admin_user_disabled() {
    let d = diagnoser(vec![]);
    let mut ex = exchange("POST", "exchange", 403);
    ex.body_text =
        Some("Unable to get admin user credentials with message: Admin user is disabled.".into());
    assert_eq!(ids(&judge(&d, REG, &ex)), vec!["invalid_credentials"]);
}

#[test]
fn login_article_sp_client_id_must_be_guid() {
    let d = diagnoser(vec![]);
    let mut ex = token_request(401);
    ex.body_text = Some("aad access token with sp failed client id must be guid".into());
    ex.auth = Some(basic(UsernameKind::Other, None));
    let f = judge(&d, REG, &ex);
    assert_eq!(ids(&f), vec!["invalid_credentials"]);
    assert!(evidence(&f, "invalid_credentials").contains("GUID"));
}

#[test]
fn login_article_basic_credentials_refused_on_ping() {
    let d = diagnoser(vec![]);
    let mut ping = exchange("GET", "ping", 401);
    ping.www_authenticate = Some(Challenge {
        scheme: "Basic".into(),
        realm: Some("Registry Realm".into()),
        ..Challenge::default()
    });
    ping.auth = Some(basic(UsernameKind::Other, None));
    let f = judge(&d, "registry.internal", &ping);
    assert_eq!(ids(&f)[0], "invalid_credentials");
}

#[test]
fn login_article_not_authorized_token_lacks_push() {
    let d = diagnoser(vec![]);
    let mut m = manifest("PUT", 401, "app/web", "1.1");
    m.auth = Some(bearer(access_token("app/web", &["pull"])));
    m.www_authenticate = Some(bearer_challenge(REG));
    let f = judge(&d, REG, &m);
    assert_eq!(ids(&f), vec!["not_authorized"]);
    assert_eq!(f[0].confidence, Confidence::High);
    let e = evidence(&f, "not_authorized");
    assert!(e.contains("grants [pull] on repository app/web"), "{e}");
    assert!(e.contains("AcrPush"), "{e}");
}

#[test]
fn login_article_not_authorized_insufficient_scope() {
    let d = diagnoser(vec![]);
    let mut m = manifest("GET", 401, "billing", "latest");
    m.auth = Some(CredentialFacts {
        scheme: "bearer".into(),
        username_kind: None,
        claims: None,
        ..Default::default()
    });
    m.www_authenticate = Some(Challenge {
        error: Some("insufficient_scope".into()),
        scope: Some("repository:billing:pull".into()),
        ..bearer_challenge(REG)
    });
    let f = judge(&d, REG, &m);
    assert_eq!(ids(&f), vec!["not_authorized"]);
    assert!(evidence(&f, "not_authorized").contains("AcrPull"));
}

#[test]
fn login_article_not_authorized_denied_on_push() {
    let d = diagnoser(vec![]);
    let mut up = exchange("POST", "upload", 403);
    up.repository = Some("app/web".into());
    up.auth = Some(bearer(access_token("app/web", &["pull", "push"])));
    up.registry_errors = vec![acr_error(
        "DENIED",
        "requested access to the resource is denied",
    )];
    let f = judge(&d, REG, &up);
    assert_eq!(ids(&f), vec!["not_authorized"]);
    // A push streams its progress: no daemon prefix; a bare code prints as the code.
    let s = sym(&http_event(REG, up.clone()), None);
    assert_eq!(s, "denied");
    up.registry_errors[0].has_detail = true;
    let s = sym(&http_event(REG, up), None);
    assert_eq!(s, "denied: requested access to the resource is denied");
}

#[test]
fn login_article_not_authorized_from_last_issued_token_when_bearer_is_opaque() {
    let d = diagnoser(vec![]);
    let mut tok = token_request(200);
    tok.requested_scopes = vec!["repository:app/web:pull,push".into()];
    tok.auth = Some(basic(UsernameKind::ServicePrincipal, None));
    tok.issued_token = Some(access_token("app/web", &["pull"]));
    assert!(judge(&d, REG, &tok).is_empty());
    let mut m = manifest("PUT", 401, "app/web", "2.0");
    m.auth = Some(CredentialFacts {
        scheme: "bearer".into(),
        username_kind: None,
        claims: None,
        ..Default::default()
    });
    let f = d.judge_exchange_at(client(), REG, 443, &classify(REG, &[]), None, &m, later(1));
    assert_eq!(ids(&f), vec!["not_authorized"]);
}

#[test]
fn login_article_docker_config_old_docker_user_agent() {
    assert_eq!(
        rules::old_docker("docker/17.09.0-ce go/go1.8.3 git-commit/afdb6d4 kernel/4.4.0"),
        Some("17.09.0-ce".into())
    );
    assert_eq!(
        rules::old_docker("docker/1.13.1 go/go1.7.5"),
        Some("1.13.1".into())
    );
    assert_eq!(rules::old_docker("docker/18.03.0-ce go/go1.9.4"), None);
    assert_eq!(rules::old_docker("docker/27.3.1 go/go1.22.7"), None);
    assert_eq!(rules::old_docker("containerd/v1.7.2"), None);
    let d = diagnoser(vec![]);
    let mut ex = token_request(401);
    ex.auth = Some(basic(UsernameKind::Other, None));
    ex.user_agent = Some("docker/17.09.0-ce go/go1.8.3 git-commit/afdb6d4".into());
    let f = judge(&d, REG, &ex);
    assert!(evidence(&f, "docker_config").contains("17.09.0-ce"));
}
