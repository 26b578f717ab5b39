//! Small servers the scenarios need besides the real registry: an ACR-style token server, a data
//! endpoint that serves the registry's blobs after its redirect, a TCP server that never answers,
//! an upstream "proxy" that closes every connection, and a registry-shaped server with one fixed
//! answer (ACR's firewall refusal).
//!
//! Each runs on the test's tokio runtime from a listening socket the harness created (possibly
//! inside the test's network namespace). HTTP is one request per connection, which every client
//! under test handles.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A parsed request head.
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn query_values(&self, key: &str) -> Vec<String> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| percent_decode(v))
            .collect()
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Read one request head (bounded to 16 KiB).
async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Option<Request> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    loop {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if buf.len() > 16 * 1024 {
            return None;
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(&buf).ok()?;
    let target = req.path?.to_string();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    Some(Request {
        method: req.method?.to_string(),
        path,
        query,
        headers: req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
    })
}

async fn respond<S: AsyncWrite + Unpin>(
    s: &mut S,
    status: &str,
    content_type: &str,
    extra: &[(&str, String)],
    body: &[u8],
    head_only: bool,
) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes()).await;
    if !head_only {
        let _ = s.write_all(body).await;
    }
    let _ = s.shutdown().await;
}

/// Build a TLS acceptor from PEM files.
pub fn acceptor(cert_pem: &Path, key_pem: &Path) -> TlsAcceptor {
    let certs: Vec<_> = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert_pem).unwrap(),
    ))
    .collect::<Result<_, _>>()
    .unwrap();
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key_pem).unwrap(),
    ))
    .unwrap()
    .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    TlsAcceptor::from(Arc::new(cfg))
}

/// A user of the token server and what it may do.
#[derive(Clone)]
pub struct TokenUser {
    pub name: String,
    pub password: String,
    /// Actions granted on every repository (`pull`, `push`).
    pub actions: Vec<String>,
}

/// Settings of the ACR-style token server.
#[derive(Clone)]
pub struct TokenServer {
    pub issuer: String,
    /// RSA key (PEM) that signs tokens; `openssl dgst` does the RS256 signature.
    pub key_pem: PathBuf,
    /// The self-signed certificate of that key, sent in the `x5c` header; the registry trusts it
    /// through `rootcertbundle`.
    pub cert_der: Vec<u8>,
    pub users: Vec<TokenUser>,
    /// Every token issued goes here, for the secret scan of regdoc's outputs.
    pub issued: Arc<crate::common::secrets::Secrets>,
}

const ACR_UNAUTHORIZED: &str = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required, visit https://aka.ms/acr/authorization for more information."}]}"#;

impl TokenServer {
    /// Serve `GET /oauth2/token` over TLS.
    pub fn spawn(self, rt: &tokio::runtime::Runtime, l: std::net::TcpListener, tls: TlsAcceptor) {
        let me = Arc::new(self);
        rt.spawn(async move {
            let l = TcpListener::from_std(l).unwrap();
            loop {
                let Ok((tcp, _)) = l.accept().await else {
                    continue;
                };
                let tls = tls.clone();
                let me = me.clone();
                tokio::spawn(async move {
                    let Ok(mut s) = tls.accept(tcp).await else {
                        return;
                    };
                    let Some(req) = read_head(&mut s).await else {
                        return;
                    };
                    me.handle(&mut s, req).await;
                });
            }
        });
    }

    async fn handle<S: AsyncWrite + Unpin>(&self, s: &mut S, req: Request) {
        if req.path != "/oauth2/token" {
            return respond(s, "404 Not Found", "text/plain", &[], b"not found", false).await;
        }
        let user = req
            .header("authorization")
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| STANDARD.decode(b.trim()).ok())
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|up| {
                let (u, p) = up.split_once(':')?;
                self.users
                    .iter()
                    .find(|x| x.name == u && x.password == p)
                    .cloned()
            });
        let Some(user) = user else {
            return respond(
                s,
                "401 Unauthorized",
                "application/json; charset=utf-8",
                &[],
                ACR_UNAUTHORIZED.as_bytes(),
                false,
            )
            .await;
        };
        let service = req.query_values("service").into_iter().next();
        let mut access = Vec::new();
        for scope in req.query_values("scope") {
            // A scope may list several `type:name:actions` items separated by spaces.
            for item in scope.split(' ') {
                let parts: Vec<&str> = item.split(':').collect();
                if parts.len() < 3 {
                    continue;
                }
                let (typ, actions) = (parts[0], parts[parts.len() - 1]);
                let name = parts[1..parts.len() - 1].join(":");
                let granted: Vec<&str> = actions
                    .split(',')
                    .filter(|a| user.actions.iter().any(|g| g == a))
                    .collect();
                access.push(serde_json::json!({"type": typ, "name": name, "actions": granted}));
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = serde_json::json!({
            "typ": "JWT", "alg": "RS256", "x5c": [STANDARD.encode(&self.cert_der)]
        });
        let claims = serde_json::json!({
            "iss": self.issuer, "sub": user.name, "aud": service,
            "exp": now + 3600, "nbf": now - 30, "iat": now,
            "jti": format!("e2e-{now}-{}", access.len()),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let key = self.key_pem.clone();
        let input = signing_input.clone();
        let sig = tokio::task::spawn_blocking(move || sign_rs256(&key, input.as_bytes()))
            .await
            .unwrap();
        let signature = URL_SAFE_NO_PAD.encode(sig);
        let token = format!("{signing_input}.{signature}");
        self.issued.register(token.clone());
        self.issued.register(signature);
        let body = serde_json::json!({
            "token": token, "access_token": token, "expires_in": 3600,
        });
        respond(
            s,
            "200 OK",
            "application/json",
            &[],
            body.to_string().as_bytes(),
            false,
        )
        .await;
    }
}

/// RS256 (RSASSA-PKCS1-v1_5 with SHA-256) through the openssl command.
fn sign_rs256(key: &Path, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl dgst failed: {out:?}");
    out.stdout
}

/// Serve the registry's storage tree over TLS, as a data endpoint behind the registry's
/// `redirect` middleware (which sends `https://<data host><storage path>`).
pub fn spawn_data_endpoint(
    rt: &tokio::runtime::Runtime,
    l: std::net::TcpListener,
    tls: TlsAcceptor,
    root: PathBuf,
) {
    let root = Arc::new(root);
    rt.spawn(async move {
        let l = TcpListener::from_std(l).unwrap();
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                continue;
            };
            let tls = tls.clone();
            let root = root.clone();
            tokio::spawn(async move {
                let Ok(mut s) = tls.accept(tcp).await else {
                    return;
                };
                let Some(req) = read_head(&mut s).await else {
                    return;
                };
                let head_only = req.method == "HEAD";
                let safe = req.path.starts_with("/docker/registry/v2/blobs/")
                    && !req.path.split('/').any(|c| c == "..");
                let file = root.join(req.path.trim_start_matches('/'));
                match (safe, tokio::fs::read(&file).await) {
                    (true, Ok(body)) => {
                        respond(
                            &mut s,
                            "200 OK",
                            "application/octet-stream",
                            &[],
                            &body,
                            head_only,
                        )
                        .await
                    }
                    _ => {
                        respond(
                            &mut s,
                            "404 Not Found",
                            "application/xml",
                            &[],
                            b"<Error><Code>BlobNotFound</Code></Error>",
                            head_only,
                        )
                        .await
                    }
                }
            });
        }
    });
}

/// Accept TCP connections and never send a byte (a registry that hangs).
pub fn spawn_silent(rt: &tokio::runtime::Runtime, l: std::net::TcpListener) {
    rt.spawn(async move {
        let l = TcpListener::from_std(l).unwrap();
        let mut held = Vec::new();
        loop {
            if let Ok((tcp, _)) = l.accept().await {
                // Keep them open until the runtime is dropped; bounded by the test's clients.
                if held.len() < 256 {
                    held.push(tcp);
                }
            }
        }
    });
}

/// Accept TCP connections and close each one at once, before any reply (an upstream proxy
/// that drops the connection).
pub fn spawn_closer(rt: &tokio::runtime::Runtime, l: std::net::TcpListener) {
    rt.spawn(async move {
        let l = TcpListener::from_std(l).unwrap();
        loop {
            if let Ok((mut tcp, _)) = l.accept().await {
                // Read what the proxy client sent, so the close is a clean FIN after its request.
                let mut buf = [0u8; 1024];
                let _ =
                    tokio::time::timeout(std::time::Duration::from_millis(500), tcp.read(&mut buf))
                        .await;
                drop(tcp);
            }
        }
    });
}

/// What ACR's firewall answers a client whose address it does not allow (public network access
/// restricted, or disabled in favour of a private endpoint), from the host side of the veth.
pub const ACR_FIREWALL_DENIED: &str = r#"{"errors":[{"code":"DENIED","message":"client with IP '203.0.113.1' is not allowed access. Refer https://aka.ms/acr/firewall to grant access."}]}"#;

/// What a registry throttling its clients answers (distribution's `TOOMANYREQUESTS` error code
/// and its message, which ACR sends with status 429).
pub const ACR_TOO_MANY_REQUESTS: &str =
    r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"too many requests"}]}"#;

/// A registry-shaped server over TLS that answers every request with `status` and the JSON
/// `body` (with the registry API version header and a `Date`, as distribution and ACR send
/// them).
pub fn spawn_fixed(
    rt: &tokio::runtime::Runtime,
    l: std::net::TcpListener,
    tls: TlsAcceptor,
    status: &'static str,
    body: &'static str,
) {
    rt.spawn(async move {
        let l = TcpListener::from_std(l).unwrap();
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                continue;
            };
            let tls = tls.clone();
            tokio::spawn(async move {
                let Ok(mut s) = tls.accept(tcp).await else {
                    return;
                };
                let Some(req) = read_head(&mut s).await else {
                    return;
                };
                respond(
                    &mut s,
                    status,
                    "application/json; charset=utf-8",
                    &[
                        (
                            "Docker-Distribution-Api-Version",
                            "registry/2.0".to_string(),
                        ),
                        // An origin server with a clock sends one (RFC 9110 §6.6.1); ACR does.
                        (
                            "Date",
                            httpdate::fmt_http_date(std::time::SystemTime::now()),
                        ),
                    ],
                    body.as_bytes(),
                    req.method == "HEAD",
                )
                .await;
            });
        }
    });
}
