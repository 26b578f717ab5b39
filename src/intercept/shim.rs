//! PRE-MERGE SHIMS — delete this module when the parser, diagnosis and record helpers' branches
//! are merged, and replace each `shim::x` call with the function named in its doc line.
//!
//! Each function has the exact signature of the function it stands in for, so the swap is a
//! rename. They are deliberately small: enough for interception to be tested end to end.

use crate::diagnose::{Cause, Confidence, Finding};
use crate::http::challenge::Challenge;
use crate::http::credentials::{CredentialFacts, UsernameKind};
use crate::http::jwt::Claims;
use crate::http::registry_error::RegistryError;
use crate::observe::{FailureEvent, FailureKind, HttpExchange};
use base64::Engine;
use std::net::IpAddr;

/// Stands in for `http::path::PathInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathInfo {
    pub class: &'static str,
    pub repository: Option<String>,
    pub reference: Option<String>,
    pub scopes: Vec<String>,
    pub service: Option<String>,
}

/// wire: `http::path::classify(method, path_and_query)`.
pub fn path_classify(_method: &str, path_and_query: &str) -> PathInfo {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut info = PathInfo {
        class: "other",
        ..PathInfo::default()
    };
    for pair in query.split('&') {
        if let Some((k, v)) = pair.split_once('=') {
            match k {
                "scope" => info.scopes.push(percent_decode(v)),
                "service" => info.service = Some(percent_decode(v)),
                _ => {}
            }
        }
    }
    let p = path.trim_end_matches('/');
    if p == "/v2" {
        info.class = "ping";
    } else if p == "/oauth2/token" {
        info.class = "token";
    } else if p == "/oauth2/exchange" {
        info.class = "exchange";
    } else if p == "/v2/_catalog" {
        info.class = "catalog";
    } else if let Some(rest) = p.strip_prefix("/v2/") {
        let split = |marker: &str| rest.split_once(marker);
        if let Some((repo, r)) = split("/manifests/") {
            info.class = "manifest";
            info.repository = Some(repo.to_string());
            info.reference = Some(r.to_string());
        } else if let Some((repo, _)) = split("/blobs/uploads") {
            info.class = "upload";
            info.repository = Some(repo.to_string());
        } else if let Some((repo, d)) = split("/blobs/") {
            info.class = "blob";
            info.repository = Some(repo.to_string());
            info.reference = Some(d.to_string());
        } else if let Some(repo) = rest.strip_suffix("/tags/list") {
            info.class = "tags";
            info.repository = Some(repo.to_string());
        }
    }
    info
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// wire: `http::challenge::parse`.
pub fn challenge_parse(h: &str) -> Option<Challenge> {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    if scheme.is_empty() {
        return None;
    }
    let mut c = Challenge {
        scheme: scheme.to_string(),
        ..Challenge::default()
    };
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((k, v)) = rest.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let v = v.trim_start();
        let (val, after) = if let Some(q) = v.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            }
        } else {
            let end = v.find(',').unwrap_or(v.len());
            (&v[..end], &v[end..])
        };
        let val = Some(val.to_string());
        match k.as_str() {
            "realm" => c.realm = val,
            "service" => c.service = val,
            "scope" => c.scope = val,
            "error" => c.error = val,
            _ => {}
        }
        rest = after.trim_start().trim_start_matches(',').trim_start();
    }
    Some(c)
}

/// wire: `http::registry_error::parse`.
pub fn registry_errors(body: &[u8]) -> Vec<RegistryError> {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<RegistryError>,
    }
    serde_json::from_slice::<Body>(body)
        .map(|b| b.errors)
        .unwrap_or_default()
}

/// wire: `http::registry_error::body_line`.
pub fn body_line(body: &[u8], cap: usize) -> Option<String> {
    let s = String::from_utf8_lossy(body);
    let line: String = s
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .take(cap)
        .collect();
    (!line.is_empty()).then_some(line)
}

/// wire: `http::jwt::decode_claims`.
pub fn jwt_claims(token: &str) -> Option<Claims> {
    let mut parts = token.trim().split('.');
    let (_h, p, _s) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(p.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// wire: `http::credentials::describe`.
pub fn credentials_describe(value: &str) -> Option<CredentialFacts> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let scheme = scheme.to_ascii_lowercase();
    let rest = rest.trim();
    let mut facts = CredentialFacts {
        scheme: scheme.clone(),
        username_kind: None,
        claims: None,
    };
    match scheme.as_str() {
        "basic" => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?;
            let text = String::from_utf8(raw).ok()?;
            let (user, pass) = text.split_once(':')?;
            facts.username_kind = Some(if user == "00000000-0000-0000-0000-000000000000" {
                UsernameKind::NullGuidToken
            } else if is_guid(user) {
                UsernameKind::ServicePrincipal
            } else {
                UsernameKind::Other
            });
            facts.claims = jwt_claims(pass);
        }
        "bearer" => facts.claims = jwt_claims(rest),
        _ => {}
    }
    Some(facts)
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && [8, 4, 4, 4, 12]
            .iter()
            .zip(&parts)
            .all(|(n, p)| p.len() == *n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

macro_rules! cause {
    ($name:ident, $id:literal, $short:literal) => {
        static $name: Cause = Cause {
            id: $id,
            title: $short,
            short: $short,
            remedy: &[],
            doc: "",
            client_symptom: "",
        };
    };
}
cause!(
    FIREWALL,
    "registry_firewall_denied",
    "registry firewall denies this client IP"
);
cause!(
    APP_NOT_REG,
    "login_app_not_registered",
    "user name is not a known application id"
);
cause!(
    BAD_CREDS,
    "login_invalid_credentials",
    "registry rejected the credentials"
);
cause!(EXPIRED, "login_token_expired", "registry token expired");
cause!(
    NOT_AUTHORIZED,
    "not_authorized",
    "identity lacks permission for this action"
);
cause!(
    NOT_FOUND_401,
    "not_found_as_unauthorized",
    "repository or tag missing (ACR answers 401)"
);
cause!(
    NOT_FOUND,
    "repository_or_tag_not_found",
    "repository or tag not found"
);
cause!(
    THROTTLED,
    "registry_throttled",
    "registry request rate limit reached"
);
cause!(SERVER, "registry_server_error", "registry server error");
cause!(
    HEADERS_TIMEOUT,
    "registry_response_timeout",
    "registry sent no response headers in time"
);
cause!(
    UPSTREAM_CERT,
    "upstream_tls_interception",
    "server certificate not trusted"
);

fn finding(cause: &'static Cause, evidence: Vec<String>) -> Vec<Finding> {
    vec![Finding {
        cause,
        confidence: Confidence::Medium,
        evidence,
    }]
}

/// wire: `Diagnoser::judge_exchange(client_ip, host, endpoint, exchange)`.
pub fn judge_exchange(
    diagnoser: &crate::diagnose::Diagnoser,
    _client: IpAddr,
    _host: &str,
    _endpoint: &crate::endpoint::Endpoint,
    ex: &HttpExchange,
) -> Vec<Finding> {
    let _ = diagnoser;
    let msg = ex
        .registry_errors
        .first()
        .map(|e| e.message.as_str())
        .or(ex.body_text.as_deref())
        .unwrap_or("");
    let code = ex
        .registry_errors
        .first()
        .map(|e| e.code.as_str())
        .unwrap_or("");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let presented = ex.auth.as_ref().and_then(|a| a.claims.as_ref());
    let ev = |s: &str| vec![format!("status={}", ex.status), s.to_string()];
    match ex.status {
        0..=399 => Vec::new(),
        401 if ex.path_class == "ping" && ex.auth.is_none() => Vec::new(),
        401 if msg.contains("Application not registered") => {
            finding(&APP_NOT_REG, ev("body names an unregistered application"))
        }
        401 if presented.and_then(|c| c.exp).is_some_and(|e| e < now) => {
            finding(&EXPIRED, ev("presented token exp is in the past"))
        }
        401 if matches!(ex.path_class.as_str(), "token" | "exchange") => {
            finding(&BAD_CREDS, ev("token endpoint refused the credentials"))
        }
        401 | 403
            if matches!(
                ex.path_class.as_str(),
                "manifest" | "blob" | "upload" | "tags"
            ) && !msg.contains("not allowed access") =>
        {
            let wanted = if matches!(ex.method.as_str(), "PUT" | "POST" | "PATCH") {
                "push"
            } else {
                "pull"
            };
            let granted = presented
                .and_then(|c| c.access.as_ref())
                .map(|acc| {
                    acc.iter().any(|a| {
                        Some(&a.name) == ex.repository.as_ref()
                            && a.actions.iter().any(|x| x == wanted || x == "*")
                    })
                })
                .unwrap_or(false);
            if granted {
                finding(
                    &NOT_FOUND_401,
                    ev("token grants the action; repository or tag is missing"),
                )
            } else {
                finding(
                    &NOT_AUTHORIZED,
                    ev(&format!("token does not grant {wanted}")),
                )
            }
        }
        403 if code == "DENIED" && msg.contains("not allowed access") => {
            finding(&FIREWALL, ev("registry network rules deny the client IP"))
        }
        404 => finding(&NOT_FOUND, ev(code)),
        429 => finding(&THROTTLED, ev(code)),
        500..=599 => finding(&SERVER, ev(code)),
        _ => finding(&BAD_CREDS, ev(code)),
    }
}

/// wire: `Diagnoser::diagnose(&FailureEvent)` — the pre-merge diagnoser has no rules, so the
/// kinds interception produces get a local answer.
pub fn diagnose(diagnoser: &crate::diagnose::Diagnoser, ev: &FailureEvent) -> Vec<Finding> {
    let f = diagnoser.diagnose(ev);
    if !f.is_empty() {
        return f;
    }
    match &ev.kind {
        FailureKind::ResponseHeadersTimeout => finding(&HEADERS_TIMEOUT, vec![ev.error.clone()]),
        FailureKind::TlsUpstreamCertificate { detail, .. } => {
            finding(&UPSTREAM_CERT, vec![detail.clone()])
        }
        _ => Vec::new(),
    }
}

/// wire: `record::failure(event, findings, reply)`.
pub fn record_failure(ev: &FailureEvent, findings: &[Finding], reply: Option<(u16, &str)>) {
    let causes: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "cause": f.cause.id,
                "title": f.cause.title,
                "confidence": f.confidence,
                "evidence": f.evidence,
            })
        })
        .collect();
    let value = serde_json::json!({
        "event": ev,
        "endpoint": ev.endpoint,
        "causes": causes,
        "reply": reply.map(|(s, r)| serde_json::json!({"status": s, "reason": r})),
    });
    crate::record::emit("failure", &value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_and_challenge() {
        let i = path_classify(
            "GET",
            "/oauth2/token?account=u&client_id=docker&offline_token=true&scope=repository%3Asamples%2Fhello%3Apull&service=r.azurecr.io",
        );
        assert_eq!(i.class, "token");
        assert_eq!(i.scopes, vec!["repository:samples/hello:pull"]);
        let i = path_classify("HEAD", "/v2/samples/hello/manifests/latest");
        assert_eq!(
            (i.class, i.repository.as_deref()),
            ("manifest", Some("samples/hello"))
        );
        let c = challenge_parse(
            r#"Bearer realm="https://r.azurecr.io/oauth2/token",service="r.azurecr.io""#,
        )
        .unwrap();
        assert_eq!(
            c.realm.as_deref(),
            Some("https://r.azurecr.io/oauth2/token")
        );
        assert_eq!(c.service.as_deref(), Some("r.azurecr.io"));
        assert_eq!(percent_decode("a%3"), "a%3");
    }
}
