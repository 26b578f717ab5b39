//! Asking a token service the way Docker does, and reading what it says. Pure: requests are
//! built here and sent by the caller.

use super::args::Credentials;
use super::http::request;
use crate::http::challenge::Challenge;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::Full;

/// Where a URL points: `https://host[:port]/path?query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    /// Path and query, as sent in the request line.
    pub path: String,
}

/// An absolute `https` URL into its parts (port 443 when absent). `None` for anything else,
/// including URLs with user info: a realm must not carry credentials.
pub fn parse_https_url(url: &str) -> Option<Url> {
    let rest = url.strip_prefix("https://")?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') || authority.is_empty() {
        return None;
    }
    let (host, port) = match crate::config::split_host_port(authority) {
        Some((h, p)) => (h, p),
        None => (authority.to_string(), 443),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    Some(Url {
        host: host.to_ascii_lowercase(),
        port,
        path,
    })
}

/// A token request, and its form body when it has one (the form names secrets the exchange's
/// redactor must know).
pub struct TokenRequest {
    pub request: Request<Full<Bytes>>,
    pub form: Option<Bytes>,
}

/// Docker's token request for `credentials`: a Basic `GET` with `account`, `client_id=docker`
/// and `offline_token=true` for a password; a `POST` with `grant_type=refresh_token` for a
/// refresh token; an anonymous `GET` otherwise. `scope` is the operation asked for.
pub fn token_request(
    credentials: &Credentials,
    realm: &Url,
    service: &str,
    scope: Option<&str>,
) -> TokenRequest {
    let enc = crate::redact::percent_encode;
    let mut query = Vec::new();
    let with_query = |query: Vec<String>| {
        let sep = if realm.path.contains('?') { '&' } else { '?' };
        format!("{}{sep}{}", realm.path, query.join("&"))
    };
    match credentials {
        Credentials::Password { username, password } => {
            query.push(format!("account={}", enc(username)));
            query.push("client_id=docker".into());
            query.push("offline_token=true".into());
            if let Some(s) = scope {
                query.push(format!("scope={}", enc(s)));
            }
            query.push(format!("service={}", enc(service)));
            let auth = basic(username, password.expose());
            TokenRequest {
                request: request(
                    Method::GET,
                    &realm.host,
                    realm.port,
                    &with_query(query),
                    &[(header::AUTHORIZATION, auth.as_str())],
                    Bytes::new(),
                ),
                form: None,
            }
        }
        Credentials::RefreshToken(t) => {
            let mut f = vec![
                "grant_type=refresh_token".to_string(),
                "client_id=docker".into(),
                format!("service={}", enc(service)),
            ];
            if let Some(s) = scope {
                f.push(format!("scope={}", enc(s)));
            }
            f.push(format!("refresh_token={}", enc(t.expose())));
            let body = Bytes::from(f.join("&"));
            TokenRequest {
                request: request(
                    Method::POST,
                    &realm.host,
                    realm.port,
                    &realm.path,
                    &[(header::CONTENT_TYPE, "application/x-www-form-urlencoded")],
                    body.clone(),
                ),
                form: Some(body),
            }
        }
        Credentials::Anonymous => {
            if let Some(s) = scope {
                query.push(format!("scope={}", enc(s)));
            }
            query.push(format!("service={}", enc(service)));
            TokenRequest {
                request: request(
                    Method::GET,
                    &realm.host,
                    realm.port,
                    &with_query(query),
                    &[],
                    Bytes::new(),
                ),
                form: None,
            }
        }
    }
}

/// The `Authorization` value of a Basic credential.
pub fn basic(username: &str, password: &str) -> String {
    format!(
        "Basic {}",
        crate::http::credentials::B64.encode(format!("{username}:{password}"))
    )
}

/// The token a token endpoint issued (`token`, else `access_token`).
pub fn issued_token(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["token", "access_token"]
        .iter()
        .find_map(|k| v.get(k).and_then(|t| t.as_str()))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// `Bearer realm=... service=...`.
pub fn describe_challenge(c: &Challenge) -> String {
    let mut s = c.scheme.clone();
    if let Some(r) = &c.realm {
        s.push_str(&format!(" realm={r}"));
    }
    if let Some(v) = &c.service {
        s.push_str(&format!(" service={v}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::check::args::Secret;

    fn realm() -> Url {
        parse_https_url("https://r.azurecr.io/oauth2/token").unwrap()
    }

    #[test]
    fn realm_urls() {
        assert_eq!(
            realm(),
            Url {
                host: "r.azurecr.io".into(),
                port: 443,
                path: "/oauth2/token".into()
            }
        );
        let u = parse_https_url("https://auth.example:8443/token?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("auth.example", 8443, "/token?x=1")
        );
        assert_eq!(parse_https_url("http://r.io/t"), None);
        assert_eq!(parse_https_url("https://u:p@r.io/t"), None);
    }

    #[test]
    fn a_password_is_dockers_basic_get() {
        let creds = Credentials::Password {
            username: "alice".into(),
            password: Secret::new("pw with space".into()),
        };
        let t = token_request(
            &creds,
            &realm(),
            "r.azurecr.io",
            Some("repository:app:pull"),
        );
        let r = &t.request;
        assert_eq!(r.method(), Method::GET);
        assert_eq!(
            r.uri().to_string(),
            "/oauth2/token?account=alice&client_id=docker&offline_token=true&scope=repository%3Aapp%3Apull&service=r.azurecr.io"
        );
        assert_eq!(r.headers()[header::HOST], "r.azurecr.io");
        assert_eq!(
            r.headers()[header::AUTHORIZATION],
            basic("alice", "pw with space").as_str()
        );
        assert!(t.form.is_none());
    }

    #[test]
    fn a_refresh_token_is_posted_in_a_form() {
        let creds = Credentials::RefreshToken(Secret::new("rt.value".into()));
        let t = token_request(&creds, &realm(), "r.azurecr.io", None);
        assert_eq!(t.request.method(), Method::POST);
        assert_eq!(t.request.uri().to_string(), "/oauth2/token");
        let form = String::from_utf8(t.form.unwrap().to_vec()).unwrap();
        assert_eq!(
            form,
            "grant_type=refresh_token&client_id=docker&service=r.azurecr.io&refresh_token=rt.value"
        );
    }

    #[test]
    fn anonymous_asks_for_the_scope_only() {
        let mut realm = realm();
        realm.path.push_str("?tenant=t");
        let t = token_request(
            &Credentials::Anonymous,
            &realm,
            "svc",
            Some("repository:a:pull"),
        );
        assert_eq!(
            t.request.uri().to_string(),
            "/oauth2/token?tenant=t&scope=repository%3Aa%3Apull&service=svc"
        );
        assert!(t.request.headers().get(header::AUTHORIZATION).is_none());
    }

    #[test]
    fn token_replies() {
        assert_eq!(issued_token(br#"{"token":"abc"}"#).as_deref(), Some("abc"));
        assert_eq!(
            issued_token(br#"{"access_token":"xyz"}"#).as_deref(),
            Some("xyz")
        );
        assert_eq!(issued_token(br#"{"token":""}"#), None);
        assert_eq!(issued_token(b"nope"), None);
    }
}
