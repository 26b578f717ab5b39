//! One intercepted HTTP exchange into an [`HttpExchange`]: what the request asked, what the
//! server answered, and what small bodies (errors, token replies) said.
//!
//! Secrets: the `Authorization` value is described through the credentials parser and dropped;
//! token replies are decoded into claims and dropped; a `Location` loses its query (blob storage
//! redirects carry a SAS signature there). Nothing here keeps a header value that could be
//! replayed. What the server says (error bodies, challenge parameters) passes the exchange's
//! [`Redactor`], built from the credentials the request carried, before it is stored: servers
//! echo credentials back.

use crate::http::{challenge, credentials, jwt, path, registry_error};
use crate::observe::HttpExchange;
use crate::redact::Redactor;
use http::header::{HeaderMap, HeaderName};
use std::time::SystemTime;

/// Largest body prefix read for diagnosis; the rest streams untouched.
pub const BODY_CAP: usize = 16 * 1024;
/// Cap of a plain-text error line kept in the record.
const TEXT_CAP: usize = 512;
/// Cap of the path a `request` record shows: enough for any registry route (a repository name
/// is at most 255 characters in ACR), short enough that a hostile path cannot bloat the log.
const PATH_CAP: usize = 512;
/// Cap of the `Accept` list kept: the manifest media types a client names fit well within it.
const ACCEPT_CAP: usize = 600;

/// Facts of the request, before it is sent, and the redactor of what its server will say.
pub fn from_request(
    method: &http::Method,
    uri: &http::Uri,
    headers: &HeaderMap,
) -> (HttpExchange, Redactor) {
    let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let info = path::classify(method.as_str(), pq);
    let redactor = Redactor::for_request(uri, headers);
    let ex = HttpExchange {
        method: method.as_str().to_string(),
        path_class: info.class.to_string(),
        repository: info.repository,
        reference: info.reference,
        auth: headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(credentials::describe),
        user_agent: header_text(headers, http::header::USER_AGENT, 200),
        // Cleaned whole, then capped: a cut credential would no longer match its value.
        accept: accept(headers).map(|a| redactor.clean(&a).chars().take(ACCEPT_CAP).collect()),
        requested_scopes: info.scopes,
        service: info.service,
        ..HttpExchange::default()
    };
    (ex, redactor)
}

/// Every `Accept` line of the request as one list (Docker sends one line per media type,
/// containerd one line). Bounded by the request head's own limit.
fn accept(headers: &HeaderMap) -> Option<String> {
    let mut out = String::new();
    for v in headers.get_all(http::header::ACCEPT) {
        let Ok(v) = v.to_str() else { continue };
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(v);
    }
    (!out.is_empty()).then_some(out)
}

/// The request path as a `request` record shows it. Only the path: the query goes (token
/// requests name the account there, storage and other services put signatures there), and so
/// does the authority of an absolute-form target (it may carry `user:password@`). Registry paths
/// name repositories, tags, digests and upload sessions, none of which is a credential.
pub fn record_path(uri: &http::Uri) -> String {
    let path = uri.path();
    // `http::Uri` never keeps a fragment, but nothing may depend on that for a secret.
    let path = path.split(['?', '#']).next().unwrap_or_default();
    if path.is_empty() {
        return "/".to_string();
    }
    path.chars()
        .filter(|c| !c.is_control())
        .take(PATH_CAP)
        .collect()
}

/// A client-side transport error with its causes, `outer: inner: innermost`. hyper's own text
/// is only the outermost layer ("connection error"); the reason is in the sources. These are
/// transport errors: they carry no request data, so no secret.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    // rustls ends some messages with a link to its manual, which only lengthens the sentence
    // (and the reason phrase built from it).
    let layer = |s: &dyn std::error::Error| {
        let text = s.to_string();
        match text.find(": https://") {
            Some(at) => text[..at].to_string(),
            None => text,
        }
    };
    let mut out = layer(e);
    let mut source = e.source();
    while let Some(s) = source {
        let text = layer(s);
        // Some layers repeat their source's text in their own.
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    let out: String = out.chars().filter(|c| !c.is_control()).collect();
    match out.char_indices().nth(TEXT_CAP) {
        Some((at, _)) => out[..at].to_string(),
        None => out,
    }
}

/// Facts of the response head.
pub fn add_response(
    ex: &mut HttpExchange,
    redactor: &Redactor,
    status: u16,
    headers: &HeaderMap,
    now: SystemTime,
) {
    ex.status = status;
    ex.www_authenticate = headers
        .get(http::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .and_then(challenge::parse)
        .map(|c| redact_challenge(c, redactor));
    ex.location = headers
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(strip_query);
    ex.date_skew_secs = headers
        .get(http::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|d| httpdate::parse_http_date(d).ok())
        .map(|server| skew_secs(server, now));
}

/// Whether the body prefix of this response is worth reading: error bodies, and token
/// endpoint replies (to decode the issued token's claims).
pub fn wants_body(ex: &HttpExchange) -> bool {
    ex.status >= 400 || (ex.status == 200 && matches!(ex.path_class.as_str(), "token" | "exchange"))
}

/// A challenge's parameters are the server's words (`error_description` above all): the
/// scheme is a token already, the rest passes the redactor.
fn redact_challenge(mut c: challenge::Challenge, redactor: &Redactor) -> challenge::Challenge {
    for field in [
        &mut c.realm,
        &mut c.service,
        &mut c.scope,
        &mut c.error,
        &mut c.error_description,
    ]
    .into_iter()
    .flatten()
    {
        *field = redactor.clean(field);
    }
    c
}

/// Facts of a body prefix (at most [`BODY_CAP`] bytes; `complete` when it is the whole body).
pub fn add_body(ex: &mut HttpExchange, redactor: &Redactor, body: &[u8], complete: bool) {
    if ex.status >= 400 {
        ex.registry_errors = registry_error::parse(body, redactor);
        if ex.registry_errors.is_empty() {
            ex.body_text = registry_error::body_line(body, TEXT_CAP, redactor);
        }
    } else if complete {
        ex.issued_token = issued_token_claims(body);
    }
}

/// Facts of a token-endpoint form body (`grant_type=refresh_token|password|access_token`):
/// when the client sent no `Authorization`, the credential it presented is the form's refresh
/// token, password or Entra ID token, described like a header credential would be. The form's
/// secrets join the exchange's redactor.
pub fn add_form(ex: &mut HttpExchange, redactor: &mut Redactor, body: &[u8]) {
    redactor.add_form(body);
    let form = credentials::describe_form_body(body);
    if ex.requested_scopes.is_empty() {
        ex.requested_scopes = form.scopes.clone();
    }
    if ex.service.is_none() {
        ex.service = form.service.clone();
    }
    if ex.auth.is_some() {
        return;
    }
    let presented = form.has_refresh_token || form.has_password || form.has_access_token;
    if !presented {
        return;
    }
    ex.auth = Some(credentials::CredentialFacts {
        scheme: format!("form:{}", form.grant_type.as_deref().unwrap_or("unknown")),
        username_kind: form.username_kind,
        claims: form.refresh_token_claims.or(form.access_token_claims),
        empty_secret: false,
        malformed: false,
    });
}

/// Claims of the token a token endpoint issued: the access token when there is one (that is
/// what the client presents next), else the refresh token (`/oauth2/exchange`).
fn issued_token_claims(body: &[u8]) -> Option<jwt::Claims> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["access_token", "token", "refresh_token"]
        .iter()
        .filter_map(|k| v.get(k).and_then(|t| t.as_str()))
        .find_map(jwt::decode_claims)
}

/// `scheme://host/path` of a URL, without its query and fragment, and without a
/// `user:password@` before the host (a credential too, however rarely a server sends one).
fn strip_query(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..end];
    let kept = match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    };
    kept.chars().take(512).collect()
}

/// The failure sentence of an answer judged a failure: the status, and what the server said
/// (its first registry error, or its text), or, for a 2xx/3xx judged a failure (e.g. a token
/// issued already expired), why.
pub fn server_answered(ex: &HttpExchange, findings: &[crate::diagnose::Finding]) -> String {
    let status = ex.status;
    match (ex.registry_errors.first(), &ex.body_text) {
        (Some(e), _) => format!("the server answered {status}: {}: {}", e.code, e.message),
        (None, Some(t)) => format!("the server answered {status}: {t}"),
        (None, None) => match findings.first().and_then(|f| f.evidence.first()) {
            Some(why) => format!("the server answered {status}, but {why}"),
            None => format!("the server answered {status}"),
        },
    }
}

fn skew_secs(server: SystemTime, local: SystemTime) -> i64 {
    match server.duration_since(local) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

fn header_text(headers: &HeaderMap, name: HeaderName, cap: usize) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(cap).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use http::header::HeaderValue;

    fn jwt(claims: &str) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.{}",
            e.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            e.encode(claims),
            e.encode("sig")
        )
    }

    #[test]
    fn request_facts_never_keep_the_credential() {
        let secret = "S3cret-pass";
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("alice:{secret}"));
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {basic}")).unwrap(),
        );
        h.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static("docker/27.3.1 go/go1.22.7"),
        );
        let uri: http::Uri =
            "/oauth2/token?account=alice&client_id=docker&offline_token=true&scope=repository%3Ahello%3Apull&service=r.azurecr.io"
                .parse()
                .unwrap();
        let (ex, _) = from_request(&http::Method::GET, &uri, &h);
        assert_eq!(ex.path_class, "token");
        assert_eq!(ex.requested_scopes, vec!["repository:hello:pull"]);
        assert_eq!(ex.auth.as_ref().unwrap().scheme, "basic");
        let json = serde_json::to_string(&ex).unwrap();
        assert!(!json.contains(secret) && !json.contains(&basic), "{json}");
        assert!(!json.contains("alice"), "{json}");
    }

    #[test]
    fn record_path_keeps_the_path_only() {
        let u: http::Uri = "/oauth2/token?account=alice&scope=repository%3Ax%3Apull&service=r"
            .parse()
            .unwrap();
        assert_eq!(record_path(&u), "/oauth2/token");
        let u: http::Uri = "http://user:pw@reg.local:5000/v2/app/blobs/uploads/0f1e?_state=SECRET"
            .parse()
            .unwrap();
        assert_eq!(record_path(&u), "/v2/app/blobs/uploads/0f1e");
        let u: http::Uri = "http://reg.local:5000".parse().unwrap();
        assert_eq!(record_path(&u), "/");
        let long: http::Uri = format!("/v2/{}app/manifests/latest", "a/".repeat(400))
            .parse()
            .unwrap();
        assert_eq!(record_path(&long).len(), PATH_CAP);
    }

    #[test]
    fn response_facts() {
        let mut ex = HttpExchange {
            path_class: "blob".into(),
            ..HttpExchange::default()
        };
        let mut h = HeaderMap::new();
        h.insert(
            http::header::LOCATION,
            HeaderValue::from_static(
                "https://acct.blob.core.windows.net/c/d?se=2026&sig=SECRETSIG&sp=r",
            ),
        );
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let server = now + std::time::Duration::from_secs(120);
        h.insert(
            http::header::DATE,
            HeaderValue::from_str(&httpdate::fmt_http_date(server)).unwrap(),
        );
        add_response(&mut ex, &Redactor::default(), 307, &h, now);
        assert_eq!(
            ex.location.as_deref(),
            Some("https://acct.blob.core.windows.net/c/d")
        );
        assert_eq!(ex.date_skew_secs, Some(120));
        assert!(!wants_body(&ex));
    }

    #[test]
    fn location_loses_user_info_and_query() {
        assert_eq!(
            strip_query("https://u:pw-S3cret@acct.blob.core.windows.net/c/d?sig=SECRETSIG"),
            "https://acct.blob.core.windows.net/c/d"
        );
        // An `@` in the path is not user info.
        assert_eq!(
            strip_query("https://reg.example/v2/a@b/blobs/x"),
            "https://reg.example/v2/a@b/blobs/x"
        );
        assert_eq!(
            strip_query("/v2/app/blobs/uploads/0f1e?_state=S"),
            "/v2/app/blobs/uploads/0f1e"
        );
    }

    #[test]
    fn bodies_errors_text_and_tokens() {
        let mut ex = HttpExchange {
            path_class: "token".into(),
            status: 401,
            ..HttpExchange::default()
        };
        add_body(
            &mut ex,
            &Redactor::default(),
            b"Application not registered with AAD.\n",
            true,
        );
        assert_eq!(
            ex.body_text.as_deref(),
            Some("Application not registered with AAD.")
        );
        let mut ex = HttpExchange {
            path_class: "manifest".into(),
            status: 403,
            ..HttpExchange::default()
        };
        add_body(&mut ex, &Redactor::default(), br#"{"errors":[{"code":"DENIED","message":"client with IP '203.0.113.7' is not allowed access. Refer https://aka.ms/acr/firewall to grant access."}]}"#, true);
        assert_eq!(ex.registry_errors[0].code, "DENIED");
        let mut ex = HttpExchange {
            path_class: "token".into(),
            status: 200,
            ..HttpExchange::default()
        };
        assert!(wants_body(&ex));
        let at = jwt(
            r#"{"exp":1700003600,"access":[{"type":"repository","name":"hello","actions":["pull"]}]}"#,
        );
        let body = format!(
            r#"{{"refresh_token":"{}","access_token":"{at}"}}"#,
            jwt(r#"{"exp":1}"#)
        );
        add_body(&mut ex, &Redactor::default(), body.as_bytes(), true);
        let c = ex.issued_token.clone().unwrap();
        assert_eq!(c.exp, Some(1_700_003_600));
        assert_eq!(c.access.unwrap()[0].actions, vec!["pull"]);
        assert!(!serde_json::to_string(&ex).unwrap().contains(&at));
        // A truncated body is not decoded.
        let mut ex2 = HttpExchange {
            status: 200,
            path_class: "token".into(),
            ..HttpExchange::default()
        };
        add_body(
            &mut ex2,
            &Redactor::default(),
            &body.as_bytes()[..20],
            false,
        );
        assert!(ex2.issued_token.is_none());
    }

    #[test]
    fn form_credentials_are_described_not_kept() {
        let rt = jwt(r#"{"exp":1000,"grant_type":"refresh_token"}"#);
        let body = format!(
            "grant_type=refresh_token&service=r.azurecr.io&scope=repository%3Ahello%3Apull&refresh_token={rt}"
        );
        let mut ex = HttpExchange {
            path_class: "token".into(),
            ..HttpExchange::default()
        };
        add_form(&mut ex, &mut Redactor::default(), body.as_bytes());
        let auth = ex.auth.clone().unwrap();
        assert_eq!(auth.scheme, "form:refresh_token");
        assert_eq!(auth.claims.unwrap().exp, Some(1000));
        assert_eq!(ex.requested_scopes, vec!["repository:hello:pull"]);
        assert!(!serde_json::to_string(&ex).unwrap().contains(&rt));

        let mut ex = HttpExchange::default();
        add_form(
            &mut ex,
            &mut Redactor::default(),
            b"grant_type=password&username=alice&password=pw-S3cret",
        );
        assert_eq!(ex.auth.as_ref().unwrap().scheme, "form:password");
        assert!(!serde_json::to_string(&ex).unwrap().contains("pw-S3cret"));
        let mut ex = HttpExchange::default();
        add_form(&mut ex, &mut Redactor::default(), b"service=r.azurecr.io");
        assert!(ex.auth.is_none());
    }

    /// Forwarding and interception word a judged answer the same way.
    #[test]
    fn the_server_answered_sentence() {
        let mut ex = HttpExchange {
            status: 200,
            ..Default::default()
        };
        assert_eq!(server_answered(&ex, &[]), "the server answered 200");
        let why = crate::diagnose::Finding {
            cause: crate::diagnose::catalog::by_id("registry_error").unwrap(),
            confidence: crate::diagnose::Confidence::High,
            evidence: vec!["the token had expired".into()],
        };
        assert_eq!(
            server_answered(&ex, std::slice::from_ref(&why)),
            "the server answered 200, but the token had expired"
        );
        ex.status = 503;
        ex.body_text = Some("down".into());
        assert_eq!(
            server_answered(&ex, &[why]),
            "the server answered 503: down"
        );
        ex.registry_errors = vec![crate::http::registry_error::RegistryError {
            code: "DENIED".into(),
            message: "no".into(),
            ..Default::default()
        }];
        assert_eq!(
            server_answered(&ex, &[]),
            "the server answered 503: DENIED: no"
        );
    }

    /// hyper's shape: an outer error whose text is one word, the reason in its source.
    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("connection error")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn error_chain_names_the_inner_reason_without_rustls_links() {
        let io = std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "peer closed connection without sending TLS close_notify: https://docs.rs/rustls/latest/rustls/manual/_03_howto/index.html#unexpected-eof",
        );
        assert_eq!(
            error_chain(&Outer(io)),
            "connection error: peer closed connection without sending TLS close_notify"
        );
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(
            error_chain(&Outer(reset)),
            "connection error: connection reset"
        );
    }
}
