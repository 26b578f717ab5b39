//! A local clock out of step, read from certificate dates, token times and `Date` headers.

use super::*;
use crate::observe::CertProblem;

#[test]
fn clock_skew_from_expired_certificate_and_date_header() {
    let d = diagnoser(vec![]);
    let mut ev = event(
        REG,
        FailureKind::TlsUpstreamCertificate {
            problem: CertProblem::Expired,
            detail: "certificate expired".into(),
        },
    );
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["clock_skew", "tls_interception"]);
    assert_eq!(f[0].confidence, Confidence::Medium);
    ev.http = Some(HttpExchange {
        date_skew_secs: Some(-4000),
        ..HttpExchange::default()
    });
    let f = d.diagnose_at(&ev, now());
    assert_eq!(f[0].confidence, Confidence::High);
    assert!(evidence(&f, "clock_skew").contains("-4000"));
}

#[test]
fn beyond_clock_skew_issued_token_not_yet_valid() {
    let d = diagnoser(vec![]);
    let mut tok = token_request(200);
    let mut claims = access_token("app/web", &["pull"]);
    claims.nbf = Some(NOW as i64 + 900);
    claims.iat = Some(NOW as i64 + 900);
    tok.issued_token = Some(claims);
    let f = judge(&d, REG, &tok);
    assert_eq!(ids(&f), vec!["clock_skew"]);
    assert!(evidence(&f, "clock_skew").contains("900 s ahead"));
}

#[test]
fn beyond_clock_skew_presented_token_not_yet_valid() {
    let d = diagnoser(vec![]);
    let mut claims = access_token("app/web", &["pull"]);
    claims.nbf = Some(NOW as i64 + 3600);
    let mut m = manifest("GET", 401, "app/web", "1.0");
    m.auth = Some(bearer(claims));
    assert_eq!(ids(&judge(&d, REG, &m)), vec!["clock_skew"]);
}

#[test]
fn beyond_clock_skew_date_header_on_auth_failure() {
    let d = diagnoser(vec![]);
    let mut ex = token_request(401);
    ex.auth = Some(basic(UsernameKind::Other, None));
    ex.date_skew_secs = Some(600);
    let f = judge(&d, REG, &ex);
    assert!(ids(&f).contains(&"clock_skew"));
    ex.date_skew_secs = Some(5);
    assert!(!ids(&judge(&d, REG, &ex)).contains(&"clock_skew"));
}
