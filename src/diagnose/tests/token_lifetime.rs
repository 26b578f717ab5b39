//! Tokens without `exp`: their age against `diagnosis.token_lifetime`, dated by `iat` or by
//! the issue regdoc saw.

use super::*;

const THREE_HOURS: u64 = 3 * 3600;

/// An ACR-shaped access token for `app/web` without `exp`, issued `ago` seconds before NOW
/// (`None`: without `iat` either).
fn token_without_exp(ago: Option<u64>) -> Claims {
    Claims {
        exp: None,
        nbf: None,
        iat: ago.map(|a| NOW as i64 - a as i64),
        ..access_token("app/web", &["pull"])
    }
}

/// `GET /v2/app/web/manifests/1.0` answered 401 with the usual Bearer challenge.
fn manifest_401(auth: CredentialFacts) -> HttpExchange {
    let mut m = manifest("GET", 401, "app/web", "1.0");
    m.auth = Some(auth);
    m.www_authenticate = Some(bearer_challenge(REG));
    m.registry_errors = vec![acr_error(
        "UNAUTHORIZED",
        "authentication required, visit https://aka.ms/acr/authorization for more information.",
    )];
    m
}

fn opaque_bearer() -> CredentialFacts {
    CredentialFacts {
        scheme: "bearer".into(),
        username_kind: None,
        claims: None,
        ..Default::default()
    }
}

/// A token endpoint reply issuing `claims`, judged at `at` so the context remembers it.
fn issue(d: &Diagnoser, claims: Claims, at: SystemTime) {
    let mut tok = token_request(200);
    tok.auth = Some(basic(UsernameKind::ServicePrincipal, None));
    tok.issued_token = Some(claims);
    assert!(d
        .judge_exchange_at(client(), REG, 443, &classify(REG, &[]), None, &tok, at)
        .is_empty());
}

#[test]
fn token_lifetime_bearer_without_exp_older_than_lifetime_by_iat_is_expired() {
    let d = diagnoser(vec![]);
    let m = manifest_401(bearer(token_without_exp(Some(THREE_HOURS + 600))));
    let f = judge(&d, REG, &m);
    assert_eq!(ids(&f)[0], "expired_credentials", "{f:?}");
    assert_eq!(f[0].confidence, Confidence::Medium);
    let e = evidence(&f, "expired_credentials");
    assert!(e.contains("carries no exp claim"), "{e}");
    assert!(
        e.contains("issued at 2027-01-15T04:50:00Z (by its iat claim)"),
        "{e}"
    );
    assert!(e.contains("3h old (11400 s)"), "{e}");
    assert!(e.contains("the 3h (10800 s) lifetime"), "{e}");
    // The same refusal seen as a failure record names the same cause.
    let ev = http_event(REG, m);
    assert_eq!(ids(&d.diagnose_at(&ev, now()))[0], "expired_credentials");
}

#[test]
fn token_lifetime_young_token_without_exp_is_not_expired() {
    let d = diagnoser(vec![]);
    for ago in [3600, THREE_HOURS] {
        let f = judge(&d, REG, &manifest_401(bearer(token_without_exp(Some(ago)))));
        assert!(!ids(&f).contains(&"expired_credentials"), "{ago}: {f:?}");
        // It still names a cause: the token grants pull, so ACR's 401 means a missing tag.
        assert_eq!(ids(&f)[0], "not_found", "{ago}: {f:?}");
    }
}

#[test]
fn token_lifetime_without_iat_or_context_the_age_is_unknown() {
    let d = diagnoser(vec![]);
    let f = judge(&d, REG, &manifest_401(bearer(token_without_exp(None))));
    assert!(
        !evidence(&f, "expired_credentials").contains("carries no exp"),
        "{f:?}"
    );
    assert_eq!(ids(&f)[0], "not_found", "{f:?}");
}

#[test]
fn token_lifetime_follows_the_configuration() {
    let mut cfg = Config::default();
    cfg.diagnosis.token_lifetime = Duration::from_secs(3600);
    let d = Diagnoser::new(&cfg);
    let f = judge(
        &d,
        REG,
        &manifest_401(bearer(token_without_exp(Some(5400)))),
    );
    assert_eq!(ids(&f)[0], "expired_credentials", "{f:?}");
    let e = evidence(&f, "expired_credentials");
    assert!(e.contains("90m old (5400 s)"), "{e}");
    assert!(e.contains("the 60m (3600 s) lifetime"), "{e}");
    // The default 3 hours finds the same token young.
    let f = judge(
        &diagnoser(vec![]),
        REG,
        &manifest_401(bearer(token_without_exp(Some(5400)))),
    );
    assert!(!ids(&f).contains(&"expired_credentials"), "{f:?}");
}

#[test]
fn token_lifetime_issue_time_seen_by_regdoc_dates_a_token_without_iat() {
    let d = diagnoser(vec![]);
    let claims = token_without_exp(None);
    issue(&d, claims.clone(), now());
    let m = manifest_401(bearer(claims));
    let at = |s| d.judge_exchange_at(client(), REG, 443, &classify(REG, &[]), None, &m, later(s));
    let young = at(THREE_HOURS);
    assert!(!ids(&young).contains(&"expired_credentials"), "{young:?}");
    let old = at(THREE_HOURS + 1);
    assert_eq!(ids(&old)[0], "expired_credentials", "{old:?}");
    let e = evidence(&old, "expired_credentials");
    assert!(e.contains("when regdoc saw the registry issue it"), "{e}");
    assert!(e.contains("3h old (10801 s)"), "{e}");
}

#[test]
fn token_lifetime_other_claims_than_those_seen_issued_are_not_dated_by_them() {
    let d = diagnoser(vec![]);
    issue(&d, token_without_exp(None), now());
    // Another token (other grants) that regdoc never saw issued: its age is unknown.
    let other = Claims {
        access: Some(vec![Access {
            kind: "repository".into(),
            name: "app/web".into(),
            actions: vec!["pull".into(), "push".into()],
        }]),
        ..token_without_exp(None)
    };
    let m = manifest_401(bearer(other));
    let f = d.judge_exchange_at(
        client(),
        REG,
        443,
        &classify(REG, &[]),
        None,
        &m,
        later(5 * 3600),
    );
    assert_ne!(ids(&f)[0], "expired_credentials", "{f:?}");
    assert!(
        !evidence(&f, "expired_credentials").contains("carries no exp"),
        "{f:?}"
    );
}

#[test]
fn token_lifetime_opaque_bearer_is_dated_by_the_last_issued_token() {
    let d = diagnoser(vec![]);
    issue(&d, token_without_exp(Some(0)), now());
    let m = manifest_401(opaque_bearer());
    let f = d.judge_exchange_at(
        client(),
        REG,
        443,
        &classify(REG, &[]),
        None,
        &m,
        later(4 * 3600),
    );
    assert_eq!(ids(&f)[0], "expired_credentials", "{f:?}");
    let e = evidence(&f, "expired_credentials");
    assert!(e.contains("the last issued token carries no exp"), "{e}");
    assert!(e.contains("4h old (14400 s)"), "{e}");
    let f = d.judge_exchange_at(
        client(),
        REG,
        443,
        &classify(REG, &[]),
        None,
        &m,
        later(600),
    );
    assert!(!ids(&f).contains(&"expired_credentials"), "{f:?}");
}

#[test]
fn token_lifetime_refresh_token_in_the_form_body_without_exp() {
    let d = diagnoser(vec![]);
    let mut refresh = token_without_exp(None);
    refresh.grant_type = Some("refresh_token".into());
    refresh.access = None;
    issue(&d, refresh, now());
    let ex = exchange("POST", "token", 401);
    let judge_at =
        |s| d.judge_exchange_at(client(), REG, 443, &classify(REG, &[]), None, &ex, later(s));
    let f = judge_at(THREE_HOURS + 60);
    assert_eq!(ids(&f), vec!["expired_credentials", "invalid_credentials"]);
    let e = evidence(&f, "expired_credentials");
    assert!(e.contains("the refresh token carries no exp"), "{e}");
    assert!(e.contains("(10860 s)"), "{e}");
    // Young: the generic reading of a refused body token, not the age.
    let f = judge_at(60);
    assert!(
        !evidence(&f, "expired_credentials").contains("carries no exp"),
        "{f:?}"
    );
}

#[test]
fn token_lifetime_token_endpoint_refusing_an_old_token_password() {
    let d = diagnoser(vec![]);
    let mut refresh = token_without_exp(Some(THREE_HOURS + 3600));
    refresh.grant_type = Some("refresh_token".into());
    let mut ex = token_request(401);
    ex.auth = Some(basic(UsernameKind::NullGuidToken, Some(refresh)));
    let f = judge(&d, REG, &ex);
    assert_eq!(ids(&f)[0], "expired_credentials", "{f:?}");
    assert!(evidence(&f, "expired_credentials").contains("4h old (14400 s)"));
}

#[test]
fn token_lifetime_insufficient_scope_is_not_blamed_on_age() {
    let d = diagnoser(vec![]);
    let mut m = manifest_401(bearer(token_without_exp(Some(5 * 3600))));
    m.www_authenticate = Some(Challenge {
        error: Some("insufficient_scope".into()),
        scope: Some("repository:app/web:pull".into()),
        ..bearer_challenge(REG)
    });
    assert_eq!(ids(&judge(&d, REG, &m)), vec!["not_authorized"]);
}

#[test]
fn token_lifetime_exp_wins_over_the_assumed_lifetime() {
    let d = diagnoser(vec![]);
    // Issued 5 hours ago but valid for a day: the token says how long it lives.
    let mut claims = token_without_exp(Some(5 * 3600));
    claims.exp = Some(NOW as i64 + 19 * 3600);
    let f = judge(&d, REG, &manifest_401(bearer(claims)));
    assert!(!ids(&f).contains(&"expired_credentials"), "{f:?}");
}
