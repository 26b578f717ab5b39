//! A loopback registry that speaks Azure Container Registry's protocol over real TLS, for
//! integration tests.
//!
//! Sources for each route are cited next to it:
//! * [TOKSPEC] distribution `docs/content/spec/auth/token.md` and `oauth.md` (token auth flow);
//! * [OAUTH] Azure/acr `docs/AAD-OAuth.md` (ACR's `/oauth2/exchange` and `/oauth2/token`, claims);
//! * [ERRCODE] distribution `registry/api/errcode/register.go` (error codes and messages);
//! * [M-SESS] moby's vendored `registry/client/auth/session.go` (Docker's token requests);
//! * [LOGIN] Microsoft's ACR login troubleshooting article (null-GUID token login);
//! * issue threads named inline for bodies ACR sends (firewall, AAD, 401-for-missing).
//!
//! The fixture makes its own CA (rcgen) and serves a leaf for its host name and 127.0.0.1.
//! Failure modes are switched at run time with [`AcrFixture::set_mode`].

// Route helpers return the reply to send as their error: a large `Err` is the point here.
#![allow(clippy::result_large_err)]

use super::secrets;
use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;

/// The SAS signature of the blob redirect's `Location` (`…/data?se=…&sig=<this>&sp=r`), as the
/// data endpoint's signed URLs carry one: a secret, listed in [`AcrFixture::secrets`].
pub const SAS_SIG: &str = "SECRETSIG0fixture0SAS0signature";

/// Null GUID: the user name for an ACR refresh token used as a password [OAUTH].
pub const NULL_GUID: &str = "00000000-0000-0000-0000-000000000000";

/// Global failure switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Registry network rules deny the client: 403 DENIED on every route.
    Firewall,
    /// 429 TOOMANYREQUESTS on every route.
    Throttle,
    /// 503 UNAVAILABLE on every route.
    Unavailable,
    /// Accepts requests and never sends response headers.
    Silent,
    /// Tokens are issued already expired.
    ExpiredTokens,
    /// Reads each request, then drops the connection without a response: over HTTP/1.1 the
    /// TCP connection closes (no TLS close_notify), over HTTP/2 the stream is reset.
    CloseBeforeHeaders,
    /// Every route echoes the request's credentials (Authorization, its decoded Basic pair,
    /// query, form) back in an error body: `/oauth2/…` in the OAuth shape, other paths in the
    /// shape their last segment names (`secrets::ECHO_SHAPES`), plain text otherwise.
    Echo,
    /// [`Mode::Echo`] for requests that carry credentials (an `Authorization` header, or a
    /// POST's form); anonymous requests are answered normally, so a client gets the challenge
    /// and then sends its credentials to an echoing token endpoint.
    EchoCredentials,
}

/// A registry identity and what it may do: `(repository or "*", actions)`.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub password: String,
    pub grants: Vec<(String, Vec<String>)>,
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

struct State {
    host: String,
    region: String,
    key: ring::hmac::Key,
    mode: Mutex<Mode>,
    users: Mutex<Vec<User>>,
    /// repository → tags
    manifests: Mutex<HashMap<String, HashSet<String>>>,
    /// Every token and secret the fixture issued or accepted, for leak scans.
    secrets: Mutex<Vec<String>>,
    requests: Mutex<u64>,
    /// Gate of the streaming route: chunk n+1 is sent after `stream_gate` is notified.
    stream_gate: tokio::sync::Notify,
    release_silent: tokio::sync::Notify,
}

/// The running fixture.
pub struct AcrFixture {
    pub addr: SocketAddr,
    pub host: String,
    /// PEM file of the fixture's CA (for `intercept.extra_roots`).
    pub ca_file: PathBuf,
    pub ca_der: rustls::pki_types::CertificateDer<'static>,
    state: Arc<State>,
    accept: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for AcrFixture {
    fn drop(&mut self) {
        self.state.release_silent.notify_waiters();
        self.accept.abort();
    }
}

impl AcrFixture {
    /// Serve `<name>.azurecr.io`'s protocol on 127.0.0.1 (an ephemeral port).
    pub async fn start(host: &str) -> AcrFixture {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ACR fixture test root");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let ca_file = dir.path().join("acr-fixture-ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();

        let leaf_key = rcgen::KeyPair::generate().unwrap();
        // The data endpoint of the fixture's region is served too (blob redirects lead there).
        let leaf_params = rcgen::CertificateParams::new(vec![
            host.to_string(),
            "127.0.0.1".to_string(),
            data_host(host),
        ])
        .unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .unwrap();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let mut secret = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret).unwrap();
        let state = Arc::new(State {
            host: host.to_string(),
            region: "westeurope".into(),
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
            mode: Mutex::new(Mode::Normal),
            users: Mutex::new(Vec::new()),
            manifests: Mutex::new(HashMap::new()),
            secrets: Mutex::new(vec![SAS_SIG.to_string()]),
            requests: Mutex::new(0),
            stream_gate: tokio::sync::Notify::new(),
            release_silent: tokio::sync::Notify::new(),
        });

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let st = state.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let st = st.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req| {
                        let st = st.clone();
                        async move {
                            if st.mode() == Mode::CloseBeforeHeaders {
                                *st.requests.lock().unwrap() += 1;
                                // A service error makes hyper drop the connection (HTTP/1.1) or
                                // reset the stream (HTTP/2) without writing a response.
                                return Err(std::io::Error::other("fixture drops the request"));
                            }
                            Ok(route(st, req).await)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        AcrFixture {
            addr,
            host: host.to_string(),
            ca_file,
            ca_der: ca.der().clone(),
            state,
            accept,
            _dir: dir,
        }
    }

    /// The data endpoint its blob redirects point to (`<name>.westeurope.data.azurecr.io`),
    /// served on the same address: point a `connect_to` rule at [`AcrFixture::addr`].
    pub fn data_host(&self) -> String {
        data_host(&self.host)
    }

    pub fn set_mode(&self, m: Mode) {
        *self.state.mode.lock().unwrap() = m;
    }

    pub fn add_user(&self, name: &str, password: &str, grants: &[(&str, &[&str])]) {
        self.state
            .secrets
            .lock()
            .unwrap()
            .push(password.to_string());
        self.state.users.lock().unwrap().push(User {
            name: name.into(),
            password: password.into(),
            grants: grants
                .iter()
                .map(|(r, a)| (r.to_string(), a.iter().map(|s| s.to_string()).collect()))
                .collect(),
        });
    }

    pub fn add_manifest(&self, repo: &str, tag: &str) {
        self.state
            .manifests
            .lock()
            .unwrap()
            .entry(repo.into())
            .or_default()
            .insert(tag.into());
    }

    /// Every password and token this fixture knows or issued.
    pub fn secrets(&self) -> Vec<String> {
        self.state.secrets.lock().unwrap().clone()
    }

    /// A token an identity provider would have issued for `user` (the `access_token` of
    /// `/oauth2/exchange`); recorded as a secret.
    pub fn aad_token(&self, user: &str) -> String {
        let now = now();
        let t = sign(
            &self.state.key,
            serde_json::json!({"sub": user, "aud": "https://management.azure.com/",
                "iss": "https://sts.windows.net/fixture/", "iat": now, "nbf": now, "exp": now + 3600,
                "typ": "aad"}),
        );
        self.state.secrets.lock().unwrap().push(t.clone());
        t
    }

    pub fn requests(&self) -> u64 {
        *self.state.requests.lock().unwrap()
    }

    /// Let the streaming route send its next chunk.
    pub fn release_chunk(&self) {
        self.state.stream_gate.notify_one();
    }
}

fn data_host(host: &str) -> String {
    let name = host.split('.').next().unwrap_or("reg");
    format!("{name}.westeurope.data.azurecr.io")
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A JWT (RFC 7519) signed HS256: `base64url(header).base64url(claims).base64url(hmac)`.
fn sign(key: &ring::hmac::Key, claims: serde_json::Value) -> String {
    let head = b64(br#"{"alg":"HS256","typ":"JWT","kid":"fixture"}"#);
    let body = b64(claims.to_string().as_bytes());
    let input = format!("{head}.{body}");
    let tag = ring::hmac::sign(key, input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

/// Verified claims of a JWT this fixture signed; None when forged or malformed.
fn verify(key: &ring::hmac::Key, jwt: &str) -> Option<serde_json::Value> {
    let (input, sig) = jwt.rsplit_once('.')?;
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .ok()?;
    ring::hmac::verify(key, input.as_bytes(), &sig).ok()?;
    let (_, claims) = input.split_once('.')?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .ok()?;
    serde_json::from_slice(&raw).ok()
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

fn json_reply(status: StatusCode, v: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(full(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// Registry error body [ERRCODE]: `{"errors":[{"code","message","detail"}]}`.
/// [`Mode::Echo`]: a server that quotes the client's credentials in its error.
async fn echo(req: Request<Incoming>) -> Response<Body> {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let query = req.uri().query().unwrap_or("").to_string();
    let path = req.uri().path().to_string();
    let form = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let echoed =
        secrets::echoed_credentials(auth.as_deref(), &query, &String::from_utf8_lossy(&form));
    let last = path.rsplit('/').next().unwrap_or("");
    let shape = if path.starts_with("/oauth2/") {
        "oauth"
    } else if secrets::ECHO_SHAPES.contains(&last) {
        last
    } else {
        "text"
    };
    let (status, ctype, body, challenge) = secrets::echo_reply(shape, &echoed);
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Some(c) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, c);
    }
    r
}

fn registry_error(
    status: StatusCode,
    code: &str,
    message: &str,
    detail: Option<serde_json::Value>,
) -> Response<Body> {
    let mut e = serde_json::json!({"code": code, "message": message});
    if let Some(d) = detail {
        e["detail"] = d;
    }
    json_reply(status, &serde_json::json!({ "errors": [e] }))
}

/// ACR's UNAUTHORIZED body (Azure/acr#841, azure-cli#29659).
const ACR_UNAUTHORIZED: &str =
    "authentication required, visit https://aka.ms/acr/authorization for more information.";

fn query(uri: &http::Uri) -> Vec<(String, String)> {
    uri.query().map(form).unwrap_or_default()
}

/// `application/x-www-form-urlencoded` pairs.
fn form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (pct(k), pct(v))
        })
        .collect()
}

fn pct(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn get<'a>(pairs: &'a [(String, String)], k: &str) -> Option<&'a str> {
    pairs.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
}

fn is_guid(s: &str) -> bool {
    let p: Vec<&str> = s.split('-').collect();
    p.len() == 5
        && [8, 4, 4, 4, 12]
            .iter()
            .zip(&p)
            .all(|(n, x)| x.len() == *n && x.bytes().all(|c| c.is_ascii_hexdigit()))
}

impl State {
    fn mode(&self) -> Mode {
        *self.mode.lock().unwrap()
    }

    fn user(&self, name: &str) -> Option<User> {
        self.users
            .lock()
            .unwrap()
            .iter()
            .find(|u| u.name == name)
            .cloned()
    }

    /// `Www-Authenticate` of an ACR 401 [OAUTH]: realm is the registry's own `/oauth2/token`.
    fn challenge(&self, scope: Option<&str>, error: Option<&str>) -> HeaderValue {
        let mut v = format!(
            "Bearer realm=\"https://{h}/oauth2/token\",service=\"{h}\"",
            h = self.host
        );
        if let Some(s) = scope {
            v.push_str(&format!(",scope=\"{s}\""));
        }
        if let Some(e) = error {
            v.push_str(&format!(",error=\"{e}\""));
        }
        HeaderValue::from_str(&v).unwrap()
    }

    fn lifetime(&self) -> (i64, i64) {
        let n = now();
        if self.mode() == Mode::ExpiredTokens {
            (n - 7200, n - 3600)
        } else {
            (n, n + 3 * 3600)
        }
    }

    fn issue(&self, claims: serde_json::Value) -> String {
        let t = sign(&self.key, claims);
        self.secrets.lock().unwrap().push(t.clone());
        t
    }

    /// Refresh token claims [OAUTH sample].
    fn refresh_token(&self, user: &str) -> String {
        let (iat, exp) = self.lifetime();
        self.issue(serde_json::json!({
            "jti": format!("rt-{iat}-{user}"), "sub": user, "nbf": iat, "exp": exp, "iat": iat,
            "iss": "Azure Container Registry", "aud": self.host, "version": "1.0",
            "grant_type": "refresh_token", "tenant": "fixture-tenant",
        }))
    }

    /// Access token: the requested scopes intersected with the user's grants. A subset (even
    /// empty) is not an error [TOKSPEC].
    fn access_token(&self, user: &User, scopes: &[String]) -> String {
        let mut access = Vec::new();
        for s in scopes {
            let mut parts = s.splitn(3, ':');
            let (Some(kind), Some(name), Some(actions)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let allowed: Vec<&str> = actions
                .split(',')
                .filter(|a| {
                    user.grants.iter().any(|(r, acts)| {
                        (r == name || r == "*") && acts.iter().any(|x| x == a || x == "*")
                    })
                })
                .collect();
            access.push(serde_json::json!({"type": kind, "name": name, "actions": allowed}));
        }
        let (iat, exp) = self.lifetime();
        self.issue(serde_json::json!({
            "jti": format!("at-{iat}-{}", user.name), "sub": user.name, "nbf": iat, "exp": exp,
            "iat": iat, "iss": "Azure Container Registry", "aud": self.host, "version": "1.0",
            "grant_type": "access_token", "tenant": "fixture-tenant", "access": access,
        }))
    }

    /// Check a Basic credential. Docker sends the user's name and password; the null GUID
    /// with an ACR refresh token as password is the token login [OAUTH, LOGIN].
    fn basic_user(&self, auth: &str) -> Result<User, Response<Body>> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        let (name, password) = raw.split_once(':').unwrap_or(("", ""));
        if name == NULL_GUID {
            return self.refresh_user(password);
        }
        match self.user(name) {
            Some(u) if u.password == password => Ok(u),
            Some(_) => Err(self.unauthorized(None)),
            // A GUID that is no known application: Entra ID's answer, as plain text
            // (azure-cli#29659, Azure/acr#366).
            None if is_guid(name) => {
                let mut r = Response::new(full("Application not registered with AAD."));
                *r.status_mut() = StatusCode::UNAUTHORIZED;
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                Err(r)
            }
            None => Err(self.unauthorized(None)),
        }
    }

    fn refresh_user(&self, token: &str) -> Result<User, Response<Body>> {
        let claims = verify(&self.key, token).ok_or_else(|| self.unauthorized(None))?;
        if claims["grant_type"] != "refresh_token" || claims["exp"].as_i64().unwrap_or(0) < now() {
            return Err(self.unauthorized(None));
        }
        let sub = claims["sub"].as_str().unwrap_or("");
        self.user(sub).ok_or_else(|| self.unauthorized(None))
    }

    fn unauthorized(&self, detail: Option<serde_json::Value>) -> Response<Body> {
        registry_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            ACR_UNAUTHORIZED,
            detail,
        )
    }

    /// 401 for a registry call the token does not cover. ACR also uses it for a repository or
    /// tag that does not exist (Azure/acr#359, Azure/AKS#4052), with the scope in the challenge.
    fn denied_scope(&self, repo: &str, action: &str, error: Option<&str>) -> Response<Body> {
        let scope = format!("repository:{repo}:{action}");
        let mut r = self.unauthorized(Some(serde_json::json!([
            {"Type": "repository", "Name": repo, "Action": action}
        ])));
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            self.challenge(Some(&scope), error),
        );
        r
    }

    /// Access claims of a Bearer token, or the 401 to send.
    fn bearer(
        &self,
        req: &Request<Incoming>,
        repo: &str,
        action: &str,
    ) -> Result<(), Response<Body>> {
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let Some(token) = token else {
            return Err(self.denied_scope(repo, action, None));
        };
        let Some(claims) = verify(&self.key, token) else {
            return Err(self.denied_scope(repo, action, Some("invalid_token")));
        };
        if claims["exp"].as_i64().unwrap_or(0) < now() {
            return Err(self.denied_scope(repo, action, Some("invalid_token")));
        }
        let granted = claims["access"].as_array().is_some_and(|acc| {
            acc.iter().any(|a| {
                a["name"] == repo
                    && a["actions"]
                        .as_array()
                        .is_some_and(|x| x.iter().any(|v| v == action || v == "*"))
            })
        });
        if granted {
            Ok(())
        } else {
            Err(self.denied_scope(repo, action, Some("insufficient_scope")))
        }
    }
}

fn with_registry_headers(mut r: Response<Body>) -> Response<Body> {
    // Headers ACR sends on /v2/ (renovatebot/renovate#14708).
    let h = r.headers_mut();
    h.insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    h.insert(header::SERVER, HeaderValue::from_static("openresty"));
    h.insert(
        header::DATE,
        HeaderValue::from_str(&httpdate::fmt_http_date(SystemTime::now())).unwrap(),
    );
    r
}

async fn route(st: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    *st.requests.lock().unwrap() += 1;
    let r = route_inner(st, req).await;
    with_registry_headers(r)
}

async fn route_inner(st: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    match st.mode() {
        Mode::Echo => return echo(req).await,
        Mode::EchoCredentials
            if req.headers().contains_key(header::AUTHORIZATION) || req.method() == Method::POST =>
        {
            return echo(req).await
        }
        // Registry firewall (docker/build-push-action#1214, Azure/acr#633): 403 DENIED with the
        // client's IP, on /v2/ and on manifests alike.
        Mode::Firewall => {
            return registry_error(
                StatusCode::FORBIDDEN,
                "DENIED",
                "client with IP '203.0.113.7' is not allowed access. Refer https://aka.ms/acr/firewall to grant access.",
                None,
            )
        }
        // Throttling [ERRCODE TOOMANYREQUESTS], PERF "Too many requests".
        Mode::Throttle => {
            let mut r = registry_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                "too many requests",
                None,
            );
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
            return r;
        }
        Mode::Unavailable => {
            return registry_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "service unavailable",
                None,
            )
        }
        // Never answers: bounded so a test that forgets it cannot hang forever.
        Mode::Silent => {
            tokio::select! {
                _ = st.release_silent.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            }
            return registry_error(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", "late", None);
        }
        // Handled before routing: no response at all.
        Mode::Normal | Mode::ExpiredTokens | Mode::CloseBeforeHeaders | Mode::EchoCredentials => {}
    }
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match (method.clone(), path.as_str()) {
        // API version check [distribution spec "/v2/"]: anonymous → 401 with the challenge
        // (ACR: renovatebot/renovate#14708, [OAUTH]); a valid token → 200 `{}`.
        (Method::GET, "/v2/") | (Method::GET, "/v2") => {
            let token = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .and_then(|t| verify(&st.key, t));
            match token {
                Some(c) if c["exp"].as_i64().unwrap_or(0) >= now() => {
                    json_reply(StatusCode::OK, &serde_json::json!({}))
                }
                _ => {
                    let mut r = registry_error(
                        StatusCode::UNAUTHORIZED,
                        "UNAUTHORIZED",
                        "authentication required",
                        None,
                    );
                    r.headers_mut()
                        .insert(header::WWW_AUTHENTICATE, st.challenge(None, None));
                    r
                }
            }
        }
        // Docker's username/password flow [M-SESS fetchTokenWithBasicAuth, TOKSPEC]:
        // GET realm?account=..&client_id=docker&offline_token=true&scope=..&service=.. with
        // Basic auth → {"token","access_token","refresh_token"} (refresh only when
        // offline_token=true).
        (Method::GET, "/oauth2/token") => {
            let q = query(req.uri());
            let auth = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Basic "))
                .map(str::to_string);
            let Some(auth) = auth else {
                // Anonymous pull is off on this registry.
                return st.unauthorized(None);
            };
            let user = match st.basic_user(&auth) {
                Ok(u) => u,
                Err(r) => return r,
            };
            let scopes: Vec<String> = q
                .iter()
                .filter(|(k, _)| k == "scope")
                .flat_map(|(_, v)| v.split(' ').map(str::to_string))
                .collect();
            let at = st.access_token(&user, &scopes);
            let mut body = serde_json::json!({"token": at, "access_token": at});
            if get(&q, "offline_token") == Some("true") {
                body["refresh_token"] = st.refresh_token(&user.name).into();
            }
            json_reply(StatusCode::OK, &body)
        }
        // AAD access token → ACR refresh token [OAUTH "/oauth2/exchange"]: form
        // grant_type=access_token, service, tenant, access_token → {"refresh_token"}.
        (Method::POST, "/oauth2/exchange") => {
            let f = read_form(req).await;
            let ok_grant = get(&f, "grant_type") == Some("access_token");
            let user = get(&f, "access_token")
                .and_then(|t| verify(&st.key, t))
                .filter(|c| c["exp"].as_i64().unwrap_or(0) >= now())
                .and_then(|c| c["sub"].as_str().and_then(|s| st.user(s)));
            match (ok_grant, user) {
                (true, Some(u)) => json_reply(
                    StatusCode::OK,
                    &serde_json::json!({"refresh_token": st.refresh_token(&u.name)}),
                ),
                _ => st.unauthorized(None),
            }
        }
        // Refresh token (or password) → access token [OAUTH "/oauth2/token"; TOKSPEC oauth.md;
        // Docker's POST with client_id=docker when it holds an identity token, M-SESS].
        (Method::POST, "/oauth2/token") => {
            let f = read_form(req).await;
            let user = match get(&f, "grant_type") {
                Some("refresh_token") => st.refresh_user(get(&f, "refresh_token").unwrap_or("")),
                Some("password") => match st.user(get(&f, "username").unwrap_or("")) {
                    Some(u) if Some(u.password.as_str()) == get(&f, "password") => Ok(u),
                    _ => Err(st.unauthorized(None)),
                },
                _ => Err(registry_error(
                    StatusCode::BAD_REQUEST,
                    "UNSUPPORTED",
                    "unsupported grant_type",
                    None,
                )),
            };
            match user {
                Ok(u) => {
                    let scopes: Vec<String> = get(&f, "scope")
                        .map(|s| s.split(' ').map(str::to_string).collect())
                        .unwrap_or_default();
                    json_reply(
                        StatusCode::OK,
                        &serde_json::json!({"access_token": st.access_token(&u, &scopes)}),
                    )
                }
                Err(r) => r,
            }
        }
        // Test-only: a body streamed in gated chunks (checks that regdoc never buffers a body).
        (Method::GET, "/_fixture/stream") => stream_body(st),
        // Test-only: a reply after which the server closes its connection (as servers do at
        // their idle timeout or with `Connection: close`).
        (Method::GET, "/_fixture/close") => {
            let mut r = json_reply(StatusCode::OK, &serde_json::json!({}));
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
        // Test-only: an error body larger than regdoc's 16 KiB diagnosis cap.
        (Method::GET, "/_fixture/big-error") => {
            let body: String = (0..40_000)
                .map(|i| (b'a' + (i % 26) as u8) as char)
                .collect();
            let mut r = Response::new(full(body));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
        // The data endpoint: blob storage behind a SAS URL (FW, DDE; H14). The signature is
        // the credential; a request that also carries the registry's Authorization is refused
        // as storage refuses it (H15).
        (Method::GET, p) if p.starts_with("/docker/registry/v2/blobs/") => {
            let signed = get(&query(req.uri()), "sig") == Some(SAS_SIG);
            let bearer = req.headers().contains_key(header::AUTHORIZATION);
            if signed && !bearer {
                let mut r = Response::new(full(&b"0123456789"[..]));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                r
            } else {
                let mut r = Response::new(full(
                    "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthenticationFailed</Code></Error>",
                ));
                *r.status_mut() = StatusCode::FORBIDDEN;
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/xml"),
                );
                r
            }
        }
        _ => registry_route(st, req).await,
    }
}

/// `/v2/<name>/manifests/<ref>`, `/v2/<name>/blobs/<digest>`, `/v2/<name>/blobs/uploads/`
/// [distribution spec].
async fn registry_route(st: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix("/v2/") else {
        return registry_error(StatusCode::NOT_FOUND, "UNSUPPORTED", "not found", None);
    };
    let method = req.method().clone();
    if let Some((repo, reference)) = rest.split_once("/manifests/") {
        let push = method == Method::PUT;
        if let Err(r) = st.bearer(&req, repo, if push { "push" } else { "pull" }) {
            return r;
        }
        if push {
            let _ = read_small(req).await;
            let mut r = Response::new(full(""));
            *r.status_mut() = StatusCode::CREATED;
            return r;
        }
        let known = st.manifests.lock().unwrap().get(repo).cloned();
        let Some(tags) = known else {
            // ACR answers a missing repository with 401 "authentication required"
            // (Azure/acr#359) even when the token grants pull on it.
            return st.denied_scope(repo, "pull", None);
        };
        if !tags.contains(reference) {
            // A missing tag of an existing repository: 404 MANIFEST_UNKNOWN [ERRCODE].
            return registry_error(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                "manifest unknown",
                Some(serde_json::json!({"Tag": reference})),
            );
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2, "digest": format!("sha256:{}", "a".repeat(64))},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 10, "digest": format!("sha256:{}", "b".repeat(64))}],
        })
        .to_string();
        let digest = ring::digest::digest(&ring::digest::SHA256, manifest.as_bytes());
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let len = manifest.len();
        let mut r = Response::new(if method == Method::HEAD {
            full("")
        } else {
            full(manifest)
        });
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.docker.distribution.manifest.v2+json"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        h.insert(
            "docker-content-digest",
            HeaderValue::from_str(&format!("sha256:{hex}")).unwrap(),
        );
        return r;
    }
    if let Some((repo, _)) = rest.split_once("/blobs/uploads") {
        // Push starts with POST /v2/<name>/blobs/uploads/ → 202 + Location.
        if let Err(r) = st.bearer(&req, repo, "push") {
            return r;
        }
        let mut r = Response::new(full(""));
        *r.status_mut() = StatusCode::ACCEPTED;
        r.headers_mut().insert(
            header::LOCATION,
            HeaderValue::from_str(&format!("/v2/{repo}/blobs/uploads/0f1e2d3c")).unwrap(),
        );
        return r;
    }
    if let Some((repo, digest)) = rest.split_once("/blobs/") {
        if let Err(r) = st.bearer(&req, repo, "pull") {
            return r;
        }
        // Layers are served by the data endpoint through a 307 (FW, DDE; H14).
        let name = st.host.split('.').next().unwrap_or("reg");
        let loc = format!(
            "https://{name}.{}.data.azurecr.io/docker/registry/v2/blobs/sha256/{}/data?se=2030-01-01&sig={SAS_SIG}&sp=r",
            st.region,
            digest.trim_start_matches("sha256:")
        );
        let mut r = Response::new(full(""));
        *r.status_mut() = StatusCode::TEMPORARY_REDIRECT;
        r.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_str(&loc).unwrap());
        return r;
    }
    registry_error(
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
        "repository name not known to registry",
        None,
    )
}

fn stream_body(st: Arc<State>) -> Response<Body> {
    Response::new(BodyExt::boxed(Chunks {
        st,
        sent: 0,
        wait: None,
    }))
}

type Wait = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>>;

/// 4 chunks of 64 KiB; chunk n+1 is produced only after `release_chunk()` (or 60 s), so a
/// client sees chunk 1 within its 30 s bound only if every hop streams.
struct Chunks {
    st: Arc<State>,
    sent: usize,
    wait: Option<Wait>,
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        use std::task::Poll;
        if self.sent == 4 {
            return Poll::Ready(None);
        }
        if self.sent > 0 {
            if self.wait.is_none() {
                let st = self.st.clone();
                self.wait = Some(Box::pin(async move {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(60), st.stream_gate.notified())
                            .await;
                }));
            }
            if let Some(w) = self.wait.as_mut() {
                if w.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
            self.wait = None;
        }
        self.sent += 1;
        let n = self.sent as u8;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![
            b'0' + n;
            64 * 1024
        ])))))
    }
}

async fn read_small(req: Request<Incoming>) -> Vec<u8> {
    let limited = http_body_util::Limited::new(req.into_body(), 64 * 1024);
    limited
        .collect()
        .await
        .map(|c| c.to_bytes().to_vec())
        .unwrap_or_default()
}

async fn read_form(req: Request<Incoming>) -> Vec<(String, String)> {
    let b = read_small(req).await;
    form(&String::from_utf8_lossy(&b))
}
