//! Interception end to end over real TLS: a client trusting only the regdoc CA, the
//! interceptor, and a loopback registry speaking ACR's protocol (tests/common/acr.rs).
//!
//! Until the transport is on this branch, the tests drive `Interceptor::serve` directly: they
//! dial the fixture themselves (as the CONNECT path would) and hand the interceptor one end of
//! an in-memory duplex as the client stream.

mod common;

use base64::Engine;
use bytes::Bytes;
use common::acr::{self, AcrFixture, Mode, NULL_GUID};
use common::tls::client_config;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use regdoc::config::Config;
use regdoc::diagnose::Diagnoser;
use regdoc::intercept::{InterceptCtx, InterceptOutcome, Interceptor};
use regdoc::record::failures::FailureLog;
use regdoc::record::CloseReason;
use regdoc::server::idle::IdleConnections;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

const HOST: &str = "myreg.azurecr.io";

// Cause ids (src/diagnose/catalog.rs) the diagnosis gives each scenario.
const CAUSE_BAD_CREDS: &str = "invalid_credentials";
const CAUSE_APP_NOT_REG: &str = "invalid_credentials";
const CAUSE_EXPIRED: &str = "expired_credentials";
const CAUSE_NOT_AUTHORIZED: &str = "not_authorized";
const CAUSE_NOT_FOUND_401: &str = "not_found";
const CAUSE_NOT_FOUND: &str = "not_found";
const CAUSE_FIREWALL: &str = "public_access_rules";
const CAUSE_THROTTLED: &str = "throttled";
const CAUSE_SERVER: &str = "registry_error";
const CAUSE_TIMEOUT: &str = "registry_error";
const CAUSE_CLOSED_EARLY: &str = "registry_error";
const CAUSE_UPSTREAM_CERT: &str = "tls_interception";

// ---------------------------------------------------------------------------------------------
// Log capture: every event of every target (and `log` records, e.g. from rustls) as text.

#[derive(Default)]
struct Capture {
    lines: Mutex<Vec<String>>,
}

struct CaptureLayer(Arc<Capture>);

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", f.name(), v));
    }
    fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
        self.0.push_str(&format!(" {}={}", f.name(), v));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CaptureLayer {
    fn on_event(&self, e: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut f = Fields(format!(
            "{} {}",
            e.metadata().level(),
            e.metadata().target()
        ));
        e.record(&mut f);
        self.0.lines.lock().unwrap().push(f.0);
    }
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut f = Fields(format!("span {}", attrs.metadata().name()));
        attrs.record(&mut f);
        self.0.lines.lock().unwrap().push(f.0);
    }
}

fn capture() -> Arc<Capture> {
    static CAP: OnceLock<Arc<Capture>> = OnceLock::new();
    CAP.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let cap = Arc::new(Capture::default());
        let sub = tracing_subscriber::registry().with(CaptureLayer(cap.clone()));
        tracing::subscriber::set_global_default(sub).unwrap();
        let _ = tracing_log::LogTracer::init();
        cap
    })
    .clone()
}

/// Failure records (JSON) of one connection.
fn failures_of(conn_id: u64) -> Vec<serde_json::Value> {
    records_of("failure", conn_id)
}

/// Records (JSON) of one kind and one connection, in the order they were written.
fn records_of(kind: &str, conn_id: u64) -> Vec<serde_json::Value> {
    let needle = format!("\"conn_id\":{conn_id},");
    let kind = format!(" kind={kind} json=");
    capture()
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("regdoc::record") && l.contains(&kind) && l.contains(&needle))
        .filter_map(|l| l.split_once(" json=").map(|(_, j)| j.to_string()))
        .filter_map(|j| serde_json::from_str(&j).ok())
        .collect()
}

/// All string values of `key` anywhere in `v`.
fn values_of(v: &serde_json::Value, key: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                if k == key {
                    if let Some(s) = x.as_str() {
                        out.push(s.to_string());
                    }
                }
                values_of(x, key, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| values_of(x, key, out)),
        _ => {}
    }
}

/// All numbers under `key` anywhere in `v`.
fn numbers_of(v: &serde_json::Value, key: &str, out: &mut Vec<u64>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                if k == key {
                    out.extend(x.as_u64());
                }
                numbers_of(x, key, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| numbers_of(x, key, out)),
        _ => {}
    }
}

fn kinds(records: &[serde_json::Value]) -> Vec<String> {
    let mut out = Vec::new();
    records.iter().for_each(|r| values_of(r, "kind", &mut out));
    out
}

// ---------------------------------------------------------------------------------------------
// Harness: fixture + interceptor + a client that trusts only the regdoc CA.

struct Harness {
    fx: AcrFixture,
    ic: Arc<Interceptor>,
    regdoc_ca: rustls::pki_types::CertificateDer<'static>,
    /// One writer of failure records for every connection of the harness, as the proxy has.
    failures: Arc<FailureLog>,
    /// Every connection registers here, as the proxy's do, to be shed when slots run short.
    idle: Arc<IdleConnections>,
    headers_timeout: Duration,
    /// `log.requests` of the harness configuration, handed to each connection.
    log_requests: bool,
    _dir: tempfile::TempDir,
}

static CONN_IDS: AtomicU64 = AtomicU64::new(1000);

async fn harness() -> Harness {
    harness_with(true, Duration::from_secs(20)).await
}

async fn harness_with(trust_fixture: bool, headers_timeout: Duration) -> Harness {
    harness_idle(trust_fixture, headers_timeout, "300s").await
}

async fn harness_idle(trust_fixture: bool, headers_timeout: Duration, idle: &str) -> Harness {
    harness_full(trust_fixture, headers_timeout, idle, "").await
}

/// A harness whose configuration writes a `request` record per exchange.
async fn harness_requests() -> Harness {
    harness_full(
        true,
        Duration::from_secs(20),
        "300s",
        "[log]\nrequests = true\n",
    )
    .await
}

/// `extra` is appended to the configuration text (whole sections).
async fn harness_full(
    trust_fixture: bool,
    headers_timeout: Duration,
    idle: &str,
    extra: &str,
) -> Harness {
    capture();
    let fx = AcrFixture::start(HOST).await;
    fx.add_user("alice", "alice-S3cret-pw!", &[("*", &["pull", "push"])]);
    fx.add_user("puller", "puller-S3cret-pw!", &[("*", &["pull"])]);
    fx.add_manifest("samples/hello", "latest");
    let dir = tempfile::tempdir().unwrap();
    let p = regdoc::intercept::ca::generate(dir.path(), false).unwrap();
    // Without the fixture CA, trust only regdoc's own CA upstream: the fixture is then an
    // unknown issuer, like a server behind a TLS-inspecting middlebox.
    let roots = if trust_fixture { &fx.ca_file } else { &p.cert };
    let text = format!(
        "[timeouts]\ntls = \"2s\"\nidle = {idle:?}\n[intercept]\nca_cert = {:?}\nca_key = {:?}\nextra_roots = [{:?}]\n{extra}",
        p.cert, p.key, roots
    );
    let cfg = Config::parse(&text, std::path::Path::new("test.toml")).unwrap();
    let ic = Arc::new(Interceptor::from_config(&cfg).unwrap().unwrap());
    let regdoc_ca = regdoc::intercept::Ca::load(&p.cert, &p.key)
        .unwrap()
        .cert_der()
        .clone();
    Harness {
        fx,
        ic,
        regdoc_ca,
        failures: Arc::new(FailureLog::new(
            Arc::new(Diagnoser::new(&cfg)),
            // Every failure written: these tests read each connection's own records, and
            // repeat failures on purpose. Aggregation is tested through the proxy
            // (tests/limits.rs).
            &regdoc::config::LogConfig {
                aggregate_interval: Duration::ZERO,
                ..cfg.log.clone()
            },
        )),
        idle: IdleConnections::new(),
        headers_timeout,
        log_requests: cfg.log.requests,
        _dir: dir,
    }
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

struct Client {
    sender: Sender,
    conn_id: u64,
    served: tokio::task::JoinHandle<InterceptOutcome>,
}

impl Client {
    async fn send(&mut self, req: Request<Full<Bytes>>) -> Response<Incoming> {
        let fut = async {
            match &mut self.sender {
                Sender::H1(s) => {
                    s.ready().await.unwrap();
                    s.send_request(req).await.unwrap()
                }
                Sender::H2(s) => {
                    s.ready().await.unwrap();
                    s.send_request(req).await.unwrap()
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), fut)
            .await
            .expect("response within 30 s")
    }

    fn is_h2(&self) -> bool {
        matches!(self.sender, Sender::H2(_))
    }

    fn req(&self, method: &str, path: &str) -> http::request::Builder {
        if self.is_h2() {
            Request::builder()
                .method(method)
                .uri(format!("https://{HOST}{path}"))
        } else {
            Request::builder()
                .method(method)
                .uri(path)
                .header(header::HOST, HOST)
        }
    }

    /// Close the client side and wait for the interceptor's outcome.
    async fn finish(self) -> InterceptOutcome {
        drop(self.sender);
        tokio::time::timeout(Duration::from_secs(30), self.served)
            .await
            .expect("interceptor ends after the client")
            .unwrap()
    }
}

impl Harness {
    /// Start an intercepted connection, as the CONNECT path would after its `200`.
    fn start(
        &self,
    ) -> (
        tokio::io::DuplexStream,
        u64,
        tokio::task::JoinHandle<InterceptOutcome>,
    ) {
        self.start_to(self.fx.addr)
    }

    /// Like `start`, with the upstream TCP connection going to `addr`.
    fn start_to(
        &self,
        addr: std::net::SocketAddr,
    ) -> (
        tokio::io::DuplexStream,
        u64,
        tokio::task::JoinHandle<InterceptOutcome>,
    ) {
        let (client_io, regdoc_io) = tokio::io::duplex(64 * 1024);
        let conn_id = CONN_IDS.fetch_add(1, Ordering::Relaxed);
        let ctx = InterceptCtx {
            conn_id,
            client: "127.0.0.1:50000".parse().unwrap(),
            host: HOST.into(),
            port: 443,
            endpoint: regdoc::endpoint::classify(HOST, &[]),
            failures: self.failures.clone(),
            response_headers_timeout: self.headers_timeout,
            log_requests: self.log_requests,
            upstream_proxy: None,
            dns: None,
            kept_alive: Some(self.idle.register(conn_id)),
        };
        let ic = self.ic.clone();
        let served = tokio::spawn(async move {
            let up = tokio::net::TcpStream::connect(addr).await.unwrap();
            ic.serve(regdoc_io, up, ctx).await
        });
        (client_io, conn_id, served)
    }

    fn client_tls(
        &self,
        alpn: Vec<Vec<u8>>,
        trust: &rustls::pki_types::CertificateDer<'static>,
    ) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(Arc::new(client_config(alpn, trust)))
    }

    async fn client(&self, h2: bool) -> Client {
        self.client_to(h2, self.fx.addr).await
    }

    async fn client_to(&self, h2: bool, addr: std::net::SocketAddr) -> Client {
        let (io, conn_id, served) = self.start_to(addr);
        let alpn = if h2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        let tls = self
            .client_tls(alpn, &self.regdoc_ca)
            .connect(HOST.try_into().unwrap(), io)
            .await
            .expect("client trusts the regdoc leaf");
        let negotiated_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        assert_eq!(negotiated_h2, h2, "ALPN mirrors what the server chose");
        let io = TokioIo::new(tls);
        let sender = if h2 {
            let (s, c) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(c);
            Sender::H2(s)
        } else {
            let (s, c) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(c);
            Sender::H1(s)
        };
        Client {
            sender,
            conn_id,
            served,
        }
    }
}

fn empty() -> Full<Bytes> {
    Full::new(Bytes::new())
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn cause(r: &Response<Incoming>) -> Option<String> {
    r.headers()
        .get("x-regdoc-cause")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
}

async fn body(r: Response<Incoming>) -> Bytes {
    r.into_body().collect().await.unwrap().to_bytes()
}

/// Docker's token request for `scope` with Basic credentials; returns the response.
async fn token(c: &mut Client, user: &str, pass: &str, scope: &str) -> Response<Incoming> {
    let path = format!(
        "/oauth2/token?account={user}&client_id=docker&offline_token=true&scope={}&service={HOST}",
        scope.replace(':', "%3A").replace('/', "%2F")
    );
    let req = c
        .req("GET", &path)
        .header(header::AUTHORIZATION, basic(user, pass))
        .body(empty())
        .unwrap();
    c.send(req).await
}

async fn access_token(c: &mut Client, user: &str, pass: &str, scope: &str) -> (String, String) {
    let r = token(c, user, pass, scope).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body(r).await).unwrap();
    (
        v["access_token"].as_str().unwrap().to_string(),
        v["refresh_token"].as_str().unwrap().to_string(),
    )
}

fn bearer(c: &Client, method: &str, path: &str, tok: &str) -> Request<Full<Bytes>> {
    c.req(method, path)
        .header(header::AUTHORIZATION, format!("Bearer {tok}"))
        .body(empty())
        .unwrap()
}

// ---------------------------------------------------------------------------------------------

/// Docker's login and pull, step by step: the anonymous ping and its challenge, the Basic token
/// request, the authenticated ping, manifest HEAD/GET, the blob redirect, and the refresh-token
/// grant. None of it is a failure, and every reply reaches the client unchanged.
async fn healthy_flow(h2: bool) {
    let h = harness().await;
    let id = healthy_flow_on(&h, h2).await;
    assert!(
        records_of("request", id).is_empty(),
        "log.requests is off by default: {:?}",
        records_of("request", id)
    );
}

/// The flow of [`healthy_flow`] on `h`; returns the connection's id.
async fn healthy_flow_on(h: &Harness, h2: bool) -> u64 {
    let mut c = h.client(h2).await;

    let r = c.send(c.req("GET", "/v2/").body(empty()).unwrap()).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(cause(&r), None, "the anonymous challenge is normal");
    let www = r.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        www,
        format!("Bearer realm=\"https://{HOST}/oauth2/token\",service=\"{HOST}\"")
    );
    let b = body(r).await;
    assert_eq!(
        &b[..],
        br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        "error bodies read for diagnosis are replayed unchanged"
    );

    let (at, rt) = access_token(
        &mut c,
        "alice",
        "alice-S3cret-pw!",
        "repository:samples/hello:pull",
    )
    .await;
    let r = c.send(bearer(&c, "GET", "/v2/", &at)).await;
    assert_eq!(r.status(), StatusCode::OK);
    body(r).await;

    let r = c
        .send(bearer(
            &c,
            "HEAD",
            "/v2/samples/hello/manifests/latest",
            &at,
        ))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().contains_key("docker-content-digest"));
    body(r).await;
    let r = c
        .send(bearer(&c, "GET", "/v2/samples/hello/manifests/latest", &at))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let m: serde_json::Value = serde_json::from_slice(&body(r).await).unwrap();
    assert_eq!(m["schemaVersion"], 2);

    let digest = format!("sha256:{}", "b".repeat(64));
    let r = c
        .send(bearer(
            &c,
            "GET",
            &format!("/v2/samples/hello/blobs/{digest}"),
            &at,
        ))
        .await;
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    assert!(r.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .starts_with("https://myreg.westeurope.data.azurecr.io/"));
    body(r).await;

    // Docker with a stored identity token: POST grant_type=refresh_token.
    let form = format!(
        "grant_type=refresh_token&client_id=docker&service={HOST}&scope=repository%3Asamples%2Fhello%3Apull&refresh_token={rt}"
    );
    let req = c
        .req("POST", "/oauth2/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))
        .unwrap();
    let r = c.send(req).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body(r).await).unwrap();
    assert!(v["access_token"].as_str().unwrap().split('.').count() == 3);

    let id = c.conn_id;
    let out = c.finish().await;
    assert_eq!(out.requests, 7);
    assert_eq!(out.failures, 0);
    assert!(failures_of(id).is_empty(), "{:?}", failures_of(id));
    assert_eq!(out.tls.sni.as_deref(), Some(HOST));
    assert_eq!(out.tls.version.as_deref(), Some("TLS1.3"));
    assert_eq!(out.tls.client_versions, vec!["TLS1.3", "TLS1.2"]);
    assert!(out.tls.cipher.as_deref().unwrap().starts_with("TLS13_"));
    assert!(out.bytes_up > 0 && out.bytes_down > 0);
    id
}

#[tokio::test]
async fn healthy_docker_login_and_pull_http1() {
    healthy_flow(false).await;
}

#[tokio::test]
async fn healthy_docker_login_and_pull_http2() {
    healthy_flow(true).await;
}

/// With `log.requests = true` the same login and pull leaves one `request` record per exchange,
/// in order, each with what the exchange showed: the challenge of the anonymous ping, the
/// credentials' kind (never their value), the issued token's claims, the redirect's host only.
async fn request_records_follow_the_flow(h2: bool) {
    let h = harness_requests().await;
    let id = healthy_flow_on(&h, h2).await;
    assert!(failures_of(id).is_empty(), "{:?}", failures_of(id));
    let recs = records_of("request", id);
    let steps: Vec<(String, String, String, u64)> = recs
        .iter()
        .map(|r| {
            (
                r["http"]["method"].as_str().unwrap().to_string(),
                r["http"]["path_class"].as_str().unwrap().to_string(),
                r["path"].as_str().unwrap().to_string(),
                r["http"]["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let blob = format!("/v2/samples/hello/blobs/sha256:{}", "b".repeat(64));
    let manifest = "/v2/samples/hello/manifests/latest";
    let want: Vec<(&str, &str, &str, u64)> = vec![
        ("GET", "ping", "/v2/", 401),
        ("GET", "token", "/oauth2/token", 200),
        ("GET", "ping", "/v2/", 200),
        ("HEAD", "manifest", manifest, 200),
        ("GET", "manifest", manifest, 200),
        ("GET", "blob", &blob, 307),
        ("POST", "token", "/oauth2/token", 200),
    ];
    let want: Vec<(String, String, String, u64)> = want
        .into_iter()
        .map(|(m, c, p, s)| (m.into(), c.into(), p.into(), s))
        .collect();
    assert_eq!(steps, want, "{recs:#?}");

    for r in &recs {
        assert_eq!(r["event"], "request");
        assert_eq!(r["mode"], "intercept");
        assert_eq!(r["conn_id"], id);
        assert_eq!(r["client"], "127.0.0.1:50000");
        assert_eq!(r["target"], format!("{HOST}:443"));
        assert_eq!(r["host"], HOST);
        assert_eq!(r["endpoint"], "registry_rest");
        assert_eq!(r["registry"], "myreg");
        assert!(r["cause"].is_null() && r["reply_status"].is_null(), "{r}");
        assert!(r["timestamp"].as_str().unwrap().ends_with('Z'));
        let ms = r["duration_ms"].as_f64().unwrap();
        let headers_ms = r["http"]["headers_ms"].as_u64().unwrap();
        // Every exchange crossed real sockets: it took time, and its headers came within it.
        assert!(ms > 0.0 && (headers_ms as f64) <= ms + 1.0, "{r}");
        // The redirect's URL is reduced to its host; no record keeps a `location`.
        assert!(r["http"]["location"].is_null(), "{r}");
    }

    // The anonymous ping: the challenge and the registry's error code, no credentials.
    let ping = &recs[0];
    let www = &ping["http"]["www_authenticate"];
    assert_eq!(www["scheme"], "Bearer");
    assert_eq!(www["realm"], format!("https://{HOST}/oauth2/token"));
    assert_eq!(www["service"], HOST);
    assert_eq!(ping["http"]["registry_errors"][0]["code"], "UNAUTHORIZED");
    assert!(ping["http"]["auth"].is_null());
    // Docker's token request: Basic with a plain user name, the scope asked, the token issued.
    let tok = &recs[1];
    assert_eq!(tok["http"]["auth"]["scheme"], "basic");
    assert_eq!(tok["http"]["auth"]["username_kind"], "other");
    assert_eq!(
        tok["http"]["requested_scopes"],
        serde_json::json!(["repository:samples/hello:pull"])
    );
    assert_eq!(tok["http"]["service"], HOST);
    assert_eq!(
        tok["http"]["issued_token"]["access"][0]["name"],
        "samples/hello"
    );
    // The authenticated calls: a bearer token, described by its claims.
    for r in &recs[2..6] {
        assert_eq!(r["http"]["auth"]["scheme"], "bearer", "{r}");
        assert!(r["http"]["auth"]["claims"]["exp"].is_i64(), "{r}");
    }
    assert_eq!(recs[3]["http"]["repository"], "samples/hello");
    assert_eq!(recs[3]["http"]["reference"], "latest");
    // The layer redirect: the data endpoint's host, and nothing of its signed URL.
    assert_eq!(recs[5]["location_host"], "myreg.westeurope.data.azurecr.io");
    assert!(recs[..5].iter().all(|r| r["location_host"].is_null()));
    // The refresh-token grant: the form's credential, by kind.
    assert_eq!(recs[6]["http"]["auth"]["scheme"], "form:refresh_token");
}

#[tokio::test]
async fn request_records_follow_docker_login_and_pull_http1() {
    request_records_follow_the_flow(false).await;
}

#[tokio::test]
async fn request_records_follow_docker_login_and_pull_http2() {
    request_records_follow_the_flow(true).await;
}

/// A judged failure and regdoc's own answer are requests too: their records carry the cause
/// (the failure record has the rest), and regdoc's own status apart from the server's.
#[tokio::test]
async fn request_records_name_failures_and_regdocs_own_replies() {
    let h = harness_requests().await;
    let mut c = h.client(false).await;
    let r = token(
        &mut c,
        "alice",
        "wrong-S3cret-pw!",
        "repository:samples/hello:pull",
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    body(r).await;
    let id = c.conn_id;
    c.finish().await;
    let recs = records_of("request", id);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0]["http"]["status"], 401);
    assert_eq!(recs[0]["cause"], CAUSE_BAD_CREDS);
    assert!(recs[0]["reply_status"].is_null());
    assert_eq!(failures_of(id).len(), 1);

    // A server whose certificate regdoc refuses: the client gets no certificate, so it sends no
    // request and there is no request record; the failure record has the diagnosis.
    let h = harness_full(
        false,
        Duration::from_secs(20),
        "300s",
        "[log]\nrequests = true\n",
    )
    .await;
    let (e, id, out) = refused_handshake(&h, h.fx.addr).await;
    assert!(alert_of(&e).is_some(), "{e:?}");
    assert_eq!(out.close_reason, CloseReason::UpstreamTlsFailed);
    assert!(records_of("request", id).is_empty());
    let recs = failures_of(id);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0]["cause"], CAUSE_UPSTREAM_CERT);
    assert!(recs[0]["reply_status"].is_null());
}

/// Start an intercepted connection to `addr` with a client trusting only regdoc's CA, whose
/// handshake must fail; returns its error, the connection's id and the interceptor's outcome.
async fn refused_handshake(
    h: &Harness,
    addr: std::net::SocketAddr,
) -> (std::io::Error, u64, InterceptOutcome) {
    let (io, conn_id, served) = h.start_to(addr);
    let e = tokio::time::timeout(
        Duration::from_secs(30),
        h.client_tls(vec![b"http/1.1".to_vec()], &h.regdoc_ca)
            .connect(HOST.try_into().unwrap(), io),
    )
    .await
    .expect("the handshake ends within 30 s")
    .expect_err("no certificate for a server that failed its handshake");
    let out = tokio::time::timeout(Duration::from_secs(30), served)
        .await
        .expect("interceptor ends")
        .unwrap();
    (e, conn_id, out)
}

/// The alert a failed client handshake received, if it was one.
fn alert_of(e: &std::io::Error) -> Option<rustls::AlertDescription> {
    match e.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(a) => Some(*a),
        _ => None,
    }
}

/// Assert one judged failure: the header the client sees and the record written.
fn assert_failure(r: &Response<Incoming>, conn_id: u64, want: &str, status: u16) {
    assert_eq!(r.status().as_u16(), status);
    assert_eq!(cause(r).as_deref(), Some(want), "X-Regdoc-Cause");
    let recs = failures_of(conn_id);
    assert!(!recs.is_empty(), "a failure record for conn {conn_id}");
    let mut ids = Vec::new();
    recs.iter().for_each(|x| values_of(x, "cause", &mut ids));
    assert!(ids.iter().any(|i| i == want), "{ids:?} in {recs:?}");
}

#[tokio::test]
async fn wrong_password_is_invalid_credentials() {
    let h = harness().await;
    let mut c = h.client(false).await;
    let r = token(
        &mut c,
        "alice",
        "not-the-password",
        "repository:samples/hello:pull",
    )
    .await;
    assert_failure(&r, c.conn_id, CAUSE_BAD_CREDS, 401);
    let v: serde_json::Value = serde_json::from_slice(&body(r).await).unwrap();
    assert_eq!(v["errors"][0]["code"], "UNAUTHORIZED");
    assert_eq!(c.finish().await.failures, 1);
}

#[tokio::test]
async fn unknown_application_id_is_app_not_registered() {
    let h = harness().await;
    let mut c = h.client(true).await;
    let r = token(
        &mut c,
        "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
        "sp-secret-value",
        "repository:samples/hello:pull",
    )
    .await;
    assert_failure(&r, c.conn_id, CAUSE_APP_NOT_REG, 401);
    assert_eq!(&body(r).await[..], b"Application not registered with AAD.");
    let recs = failures_of(c.conn_id);
    // The body is kept where it belongs, and the evidence draws the conclusion from it.
    assert_eq!(
        recs[0]["http"]["body_text"], "Application not registered with AAD.",
        "{:#}",
        recs[0]
    );
    let evidence: Vec<&str> = recs[0]["evidence"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e.as_str()).collect())
        .unwrap_or_default();
    assert!(
        evidence.contains(
            &"ACR does not know this user name as an application (client) id in its tenant"
        ),
        "{evidence:#?}"
    );
    c.finish().await;
}

#[tokio::test]
async fn expired_token_is_reported_as_expired() {
    let h = harness().await;
    h.fx.set_mode(Mode::ExpiredTokens);
    let mut c = h.client(false).await;
    let (at, rt) = access_token(
        &mut c,
        "alice",
        "alice-S3cret-pw!",
        "repository:samples/hello:pull",
    )
    .await;
    let r = c
        .send(bearer(&c, "GET", "/v2/samples/hello/manifests/latest", &at))
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(cause(&r).as_deref(), Some(CAUSE_EXPIRED));
    body(r).await;

    // Docker with a stored identity token: the expired refresh token travels in the form body.
    let form = format!(
        "grant_type=refresh_token&client_id=docker&service={HOST}&scope=repository%3Asamples%2Fhello%3Apull&refresh_token={rt}"
    );
    let req = c
        .req("POST", "/oauth2/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))
        .unwrap();
    let r = c.send(req).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(cause(&r).as_deref(), Some(CAUSE_EXPIRED));
    body(r).await;
    // The token endpoint itself issued tokens that were already expired: the 200 is judged
    // too (the registry's clock and regdoc's disagree).
    let id = c.conn_id;
    assert_eq!(c.finish().await.failures, 3);
    let mut ids = Vec::new();
    values_of(&failures_of(id)[0], "cause", &mut ids);
    assert_eq!(
        ids.first().map(String::as_str),
        Some("clock_skew"),
        "{ids:?}"
    );
}

#[tokio::test]
async fn push_without_push_permission_is_not_authorized() {
    let h = harness().await;
    let mut c = h.client(false).await;
    let (at, _) = access_token(
        &mut c,
        "puller",
        "puller-S3cret-pw!",
        "repository:samples/hello:pull,push",
    )
    .await;
    let r = c
        .send(bearer(&c, "POST", "/v2/samples/hello/blobs/uploads/", &at))
        .await;
    assert_failure(&r, c.conn_id, CAUSE_NOT_AUTHORIZED, 401);
    let v: serde_json::Value = serde_json::from_slice(&body(r).await).unwrap();
    assert_eq!(v["errors"][0]["detail"][0]["Action"], "push");
    c.finish().await;
}

#[tokio::test]
async fn missing_repository_answered_401_is_recognised() {
    let h = harness().await;
    let mut c = h.client(false).await;
    let (at, _) = access_token(
        &mut c,
        "alice",
        "alice-S3cret-pw!",
        "repository:samples/gone:pull",
    )
    .await;
    let r = c
        .send(bearer(&c, "GET", "/v2/samples/gone/manifests/latest", &at))
        .await;
    assert_failure(&r, c.conn_id, CAUSE_NOT_FOUND_401, 401);
    body(r).await;
    c.finish().await;
}

#[tokio::test]
async fn missing_tag_is_not_found() {
    let h = harness().await;
    let mut c = h.client(true).await;
    let (at, _) = access_token(
        &mut c,
        "alice",
        "alice-S3cret-pw!",
        "repository:samples/hello:pull",
    )
    .await;
    let r = c
        .send(bearer(&c, "GET", "/v2/samples/hello/manifests/v9", &at))
        .await;
    assert_failure(&r, c.conn_id, CAUSE_NOT_FOUND, 404);
    let v: serde_json::Value = serde_json::from_slice(&body(r).await).unwrap();
    assert_eq!(v["errors"][0]["code"], "MANIFEST_UNKNOWN");
    c.finish().await;
}

#[tokio::test]
async fn registry_modes_firewall_throttle_unavailable() {
    let h = harness().await;
    for (mode, want, status) in [
        (Mode::Firewall, CAUSE_FIREWALL, 403),
        (Mode::Throttle, CAUSE_THROTTLED, 429),
        (Mode::Unavailable, CAUSE_SERVER, 503),
    ] {
        h.fx.set_mode(mode);
        let mut c = h.client(false).await;
        let r = c.send(c.req("GET", "/v2/").body(empty()).unwrap()).await;
        assert_failure(&r, c.conn_id, want, status);
        let b = body(r).await;
        if mode == Mode::Firewall {
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            assert!(v["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("203.0.113.7"));
        }
        let recs = failures_of(c.conn_id);
        assert!(kinds(&recs).iter().any(|k| k == "http_status"), "{recs:?}");
        c.finish().await;
    }
}

#[tokio::test]
async fn silent_registry_gets_504_and_a_timeout_record() {
    let h = harness_with(true, Duration::from_millis(300)).await;
    h.fx.set_mode(Mode::Silent);
    let mut c = h.client(false).await;
    let r = c.send(c.req("GET", "/v2/").body(empty()).unwrap()).await;
    assert_failure(&r, c.conn_id, CAUSE_TIMEOUT, 504);
    let recs = failures_of(c.conn_id);
    assert!(
        kinds(&recs).iter().any(|k| k == "response_headers_timeout"),
        "{recs:?}"
    );
    body(r).await;
    c.finish().await;
}

/// A registry that takes the request and drops the connection without answering. regdoc answers
/// 502 itself, naming the cause in the status line, and records what happened: the connection
/// ended before response headers. No record claims a status the registry never sent.
#[tokio::test]
async fn registry_closing_before_response_headers_is_recorded_as_such_not_as_a_502() {
    let h = harness().await;
    h.fx.set_mode(Mode::CloseBeforeHeaders);
    for h2 in [false, true] {
        let before = h.fx.requests();
        let mut c = h.client(h2).await;
        // A pull's manifest request: the client reports the status it got (a ping's status
        // only a login reads).
        let r = c
            .send(c.req("GET", "/v2/app/manifests/1.0").body(empty()).unwrap())
            .await;
        assert_failure(&r, c.conn_id, CAUSE_CLOSED_EARLY, 502);
        // The form a forwarded failure's header has (README): `<cause id>; <words>`.
        assert_eq!(
            r.headers()
                .get("x-regdoc-cause")
                .and_then(|v| v.to_str().ok()),
            Some("registry_error; registry service error")
        );
        assert_eq!(h.fx.requests(), before + 1, "the registry took the request");
        let reason = r
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned());
        if h2 {
            assert_eq!(reason, None, "HTTP/2 has no reason phrase");
        } else {
            let reason = reason.expect("a reason phrase naming the cause");
            assert!(
                reason.starts_with("regdoc registry_error: the server's connection was closed before any response headers"),
                "{reason}"
            );
        }

        let recs = failures_of(c.conn_id);
        assert_eq!(recs.len(), 1, "{recs:?}");
        let rec = &recs[0];
        assert_eq!(
            rec["kind"]["kind"], "upstream_closed_before_headers",
            "{rec}"
        );
        // HTTP/1.1: the fixture's TCP connection closed; HTTP/2: its stream was reset.
        let how = if h2 { "error" } else { "closed" };
        assert_eq!(rec["kind"]["how"], how, "{rec}");
        assert_eq!(rec["phase"], "http");
        assert_eq!(rec["cause"], CAUSE_CLOSED_EARLY);
        assert!(!kinds(&recs).iter().any(|k| k == "http_status"), "{recs:?}");
        // The 502 is regdoc's own reply, recorded as such; no observed status is 502.
        assert_eq!(rec["reply_status"], 502);
        let mut statuses = Vec::new();
        numbers_of(rec, "status", &mut statuses);
        assert!(!statuses.contains(&502), "{rec}");
        assert_eq!(rec["http"]["status"], 0, "no status came from the server");
        let evidence = rec["evidence"].to_string();
        assert!(
            evidence.contains("no HTTP status came from the server"),
            "{evidence}"
        );
        assert!(!evidence.contains("answered"), "{evidence}");
        let symptom = rec["client_symptom"].as_str().unwrap_or_default();
        assert!(
            symptom
                .starts_with("Error response from daemon: received unexpected HTTP status: 502 "),
            "{symptom}"
        );
        assert!(!symptom.contains("[redacted]"), "{symptom}");
        if !h2 {
            assert_eq!(rec["reply_reason"].as_str(), reason_of(&r).as_deref());
        }
        let text = String::from_utf8(body(r).await.to_vec()).unwrap();
        assert!(text.contains("before any response headers"), "{text}");
        assert_eq!(c.finish().await.failures, 1);
    }
}

fn reason_of(r: &Response<Incoming>) -> Option<String> {
    r.extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned())
}

/// A server regdoc cannot verify never gets its name vouched for: the client gets the alert that
/// says why (Go prints `remote error: tls: unknown certificate authority`), no certificate, and
/// the record names the issuer.
#[tokio::test]
async fn untrusted_upstream_certificate_gets_an_alert_naming_it_and_no_leaf() {
    let h = harness_with(false, Duration::from_secs(20)).await;
    let (e, id, out) = refused_handshake(&h, h.fx.addr).await;
    assert_eq!(
        alert_of(&e),
        Some(rustls::AlertDescription::UnknownCA),
        "{e:?}"
    );
    assert_eq!(out.failures, 1);
    let recs = failures_of(id);
    assert!(
        kinds(&recs).iter().any(|k| k == "tls_upstream_certificate"),
        "{recs:?}"
    );
    assert_eq!(recs[0]["cause"], CAUSE_UPSTREAM_CERT);
    assert_eq!(recs[0]["kind"]["problem"], "unknown_issuer", "{recs:?}");
    assert!(recs[0]["error"]
        .as_str()
        .unwrap()
        .contains("ACR fixture test root"));
    assert_eq!(
        recs[0]["client_symptom"],
        format!("Get \"https://{HOST}/v2/\": remote error: tls: unknown certificate authority")
    );
    assert_eq!(
        h.fx.requests(),
        0,
        "nothing is sent to an unverified server"
    );
    assert_eq!(h.ic.minter().mints(), 0, "no leaf for an unverified server");
}

/// Servers that break the handshake: one closes at once, one never answers, one is not TLS. The
/// client gets no certificate: a close where the server closed or stayed silent, an alert where
/// it spoke something else than TLS.
#[tokio::test]
async fn broken_upstream_handshakes_are_typed() {
    let h = harness().await;
    for (behaviour, kind, alert) in [
        ("close", "tls_server_closed", None),
        ("silent", "tls_server_silent", None),
        (
            "http",
            "tls_not_tls",
            Some(rustls::AlertDescription::HandshakeFailure),
        ),
    ] {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            match behaviour {
                "close" => drop(s),
                "silent" => tokio::time::sleep(Duration::from_secs(10)).await,
                _ => {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = [0u8; 512];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                        .await;
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
            }
        });
        let (e, id, out) = refused_handshake(&h, addr).await;
        assert_eq!(alert_of(&e), alert, "{behaviour}: {e:?}");
        assert_eq!(
            out.close_reason,
            CloseReason::UpstreamTlsFailed,
            "{behaviour}"
        );
        let recs = failures_of(id);
        assert!(
            kinds(&recs).iter().any(|k| k == kind),
            "{behaviour}: {recs:?}"
        );
        server.abort();
    }
    assert_eq!(h.ic.minter().mints(), 0);
}

#[tokio::test]
async fn client_that_does_not_trust_the_ca_is_recorded() {
    let h = harness().await;
    let (io, conn_id, served) = h.start();
    // This client trusts the fixture's CA, not regdoc's.
    let e = h
        .client_tls(vec![b"http/1.1".to_vec()], &h.fx.ca_der)
        .connect(HOST.try_into().unwrap(), io)
        .await;
    assert!(e.is_err());
    let out = tokio::time::timeout(Duration::from_secs(30), served)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.close_reason, CloseReason::ClientRejectedCertificate);
    let recs = failures_of(conn_id);
    assert!(
        kinds(&recs).iter().any(|k| k == "tls_client_rejected"),
        "{recs:?}"
    );
    let mut ids = Vec::new();
    recs.iter().for_each(|r| values_of(r, "cause", &mut ids));
    assert!(ids.iter().any(|i| i == "intercept_ca_untrusted"), "{ids:?}");
}

/// A client that trusts regdoc's CA, sends its ClientHello, reads the start of regdoc's answer
/// and hangs up without an alert, as Go does when the request the connection was for has been
/// cancelled.
async fn hang_up_mid_handshake(h: &Harness) -> (u64, InterceptOutcome) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut io, conn_id, served) = h.start();
    let cfg = client_config(Vec::new(), &h.regdoc_ca);
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), HOST.try_into().unwrap()).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    io.write_all(&hello).await.unwrap();
    let mut first = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(30), io.read_exact(&mut first))
        .await
        .expect("regdoc answered the ClientHello")
        .unwrap();
    assert_eq!(first[0], 22, "a handshake record");
    drop(io);
    let out = tokio::time::timeout(Duration::from_secs(30), served)
        .await
        .unwrap()
        .unwrap();
    (conn_id, out)
}

/// A hang-up in the middle of the handshake is a refusal of regdoc's certificate from a client
/// never seen to accept it, and no refusal from one whose calls to the registry just worked
/// through regdoc under the same certificate (containerd, whose push had failed, dropped its
/// other connection this way, and regdoc had claimed its CA was not trusted).
#[tokio::test]
async fn a_hang_up_is_a_refusal_only_from_a_client_not_seen_to_trust_regdoc() {
    let h = harness().await;
    let (first, out) = hang_up_mid_handshake(&h).await;
    assert_eq!(out.close_reason, CloseReason::ClientRejectedCertificate);
    let mut ids = Vec::new();
    failures_of(first)
        .iter()
        .for_each(|r| values_of(r, "cause", &mut ids));
    assert_eq!(ids, vec!["intercept_ca_untrusted"]);

    let mut c = h.client(false).await;
    let r = c.send(c.req("GET", "/v2/").body(empty()).unwrap()).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    body(r).await;
    c.finish().await;

    let (second, out) = hang_up_mid_handshake(&h).await;
    assert_eq!(out.close_reason, CloseReason::ClientHandshakeFailed);
    assert_eq!(failures_of(second), Vec::<serde_json::Value>::new());
}

#[tokio::test]
async fn bodies_stream_through_and_large_error_bodies_replay_whole() {
    let h = harness().await;
    for h2 in [false, true] {
        let mut c = h.client(h2).await;
        let r = c
            .send(c.req("GET", "/_fixture/stream").body(empty()).unwrap())
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let mut b = r.into_body();
        let mut total = 0usize;
        let mut chunks_seen = 0u8;
        // The fixture produces chunk n+1 only after we have seen bytes of chunk n: this
        // completes only if regdoc forwards each chunk as it comes.
        while let Some(f) = tokio::time::timeout(Duration::from_secs(30), b.frame())
            .await
            .expect("a chunk arrives before the next one is released")
        {
            let f = f.unwrap();
            if let Some(d) = f.data_ref().filter(|d| !d.is_empty()) {
                let first = d[0] - b'0';
                if first > chunks_seen {
                    chunks_seen = first;
                    h.fx.release_chunk();
                }
                total += d.len();
            }
        }
        assert_eq!(total, 4 * 64 * 1024);
        // An HTTP/2 connection stays open while a response body handle lives.
        drop(b);

        let r = c
            .send(c.req("GET", "/_fixture/big-error").body(empty()).unwrap())
            .await;
        assert_eq!(cause(&r).as_deref(), Some(CAUSE_SERVER));
        let b = body(r).await;
        assert_eq!(b.len(), 40_000);
        assert!(b
            .iter()
            .enumerate()
            .all(|(i, c)| *c == b'a' + (i % 26) as u8));
        c.finish().await;
    }
}

/// A server that ends its connection takes the client's intercepted connection with it, so the
/// client's next request opens a new tunnel instead of meeting a dead upstream.
#[tokio::test]
async fn server_closing_its_connection_closes_the_clients() {
    let h = harness().await;
    let mut c = h.client(false).await;
    let r = c
        .send(c.req("GET", "/_fixture/close").body(empty()).unwrap())
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONNECTION], "close");
    body(r).await;
    let served = c.served;
    let out = tokio::time::timeout(Duration::from_secs(30), served)
        .await
        .expect("the interceptor ends without the client closing first")
        .unwrap();
    assert_eq!(out.failures, 0);
    assert_eq!(out.requests, 1);
    drop(c.sender);
}

/// An HTTP/1.1 client that goes quiet after a request is let go after `timeouts.keep_alive`,
/// or `timeouts.idle` when that is shorter (as here).
#[tokio::test]
async fn idle_http1_client_is_let_go() {
    let h = harness_idle(true, Duration::from_secs(20), "300ms").await;
    let mut c = h.client(false).await;
    let r = c.send(c.req("GET", "/v2/").body(empty()).unwrap()).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    body(r).await;
    // The client keeps its connection open and sends nothing more.
    let out = tokio::time::timeout(Duration::from_secs(30), c.served)
        .await
        .expect("the idle client is let go")
        .unwrap();
    assert_eq!((out.requests, out.failures), (1, 0));
    assert_eq!(out.close_reason, CloseReason::KeepAliveTimeout);
    drop(c.sender);
}

/// A client connection waiting for its next request is closed, gracefully, when the proxy
/// sheds it for a new client (every slot taken), over HTTP/1.1 and HTTP/2; before its reply's
/// body is written it does not count as waiting.
#[tokio::test]
async fn a_client_connection_between_requests_is_shed_when_slots_run_short() {
    for h2 in [false, true] {
        let h = harness().await;
        let mut c = h.client(h2).await;
        let r = c.send(c.req("GET", "/v2/").body(empty()).unwrap()).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        body(r).await;
        // The exchange ends when hyper drops the reply's body, just after writing it.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while h.idle.idle() == 0 {
            assert!(std::time::Instant::now() < deadline, "h2={h2}: never idle");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(h.idle.shed_one(), "h2={h2}");
        let out = tokio::time::timeout(Duration::from_secs(10), c.served)
            .await
            .expect("the shed connection closes")
            .unwrap();
        assert_eq!(out.close_reason, CloseReason::Shed, "h2={h2}");
        assert_eq!((out.requests, out.failures), (1, 0), "h2={h2}");
        drop(c.sender);
    }
}

/// One server configuration per host (not per connection): a returning client resumes its TLS
/// session instead of a full handshake.
#[tokio::test]
async fn returning_clients_resume_tls_sessions() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = harness().await;
    let connector = h.client_tls(vec![b"http/1.1".to_vec()], &h.regdoc_ca);
    let mut kinds = Vec::new();
    for _ in 0..2 {
        let (io, _, served) = h.start();
        let mut tls = connector
            .connect(HOST.try_into().unwrap(), io)
            .await
            .unwrap();
        kinds.push(tls.get_ref().1.handshake_kind());
        // Reading the reply also reads the session tickets sent after the handshake.
        tls.write_all(
            format!("GET /v2/ HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(30), tls.read_to_end(&mut reply)).await;
        assert!(reply.starts_with(b"HTTP/1.1 401"));
        drop(tls);
        served.await.unwrap();
    }
    assert_eq!(
        kinds,
        vec![
            Some(rustls::HandshakeKind::Full),
            Some(rustls::HandshakeKind::Resumed)
        ]
    );
}

#[tokio::test]
async fn no_secret_reaches_the_log() {
    secret_scan(false).await;
}

/// With a record per request, every request path, challenge and redirect is in the log: still
/// no password, token, Basic value, token-request query or SAS signature.
#[tokio::test]
async fn no_secret_reaches_the_log_with_request_records() {
    secret_scan(true).await;
}

/// Logins of every kind, a failure, and a layer redirect; then no line of the whole log holds
/// a secret. `requests` sets `log.requests`.
async fn secret_scan(requests: bool) {
    let h = if requests {
        harness_requests().await
    } else {
        harness().await
    };
    let mut c = h.client(false).await;
    let (at, rt) = access_token(
        &mut c,
        "alice",
        "alice-S3cret-pw!",
        "repository:samples/hello:pull",
    )
    .await;
    body(
        c.send(bearer(&c, "GET", "/v2/samples/gone/manifests/x", &at))
            .await,
    )
    .await;
    body(
        token(
            &mut c,
            "alice",
            "wrong-S3cret-pw!",
            "repository:samples/hello:pull",
        )
        .await,
    )
    .await;
    // Token login with the null GUID and the refresh token as password.
    let r = token(&mut c, NULL_GUID, &rt, "repository:samples/hello:pull").await;
    assert_eq!(r.status(), StatusCode::OK);
    body(r).await;
    // AAD exchange.
    let aad = h.fx.aad_token("alice");
    let req = c
        .req("POST", "/oauth2/exchange")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(format!(
            "grant_type=access_token&service={HOST}&tenant=t&access_token={aad}"
        ))))
        .unwrap();
    let r = c.send(req).await;
    assert_eq!(r.status(), StatusCode::OK);
    body(r).await;
    // A layer: the 307 to the data endpoint carries a SAS signature in its query.
    let digest = format!("sha256:{}", "b".repeat(64));
    let path = format!("/v2/samples/hello/blobs/{digest}");
    let r = c.send(bearer(&c, "GET", &path, &at)).await;
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = r.headers()[header::LOCATION].to_str().unwrap().to_string();
    assert!(location.contains(acr::SAS_SIG), "{location}");
    body(r).await;
    let id = c.conn_id;
    c.finish().await;

    let recs = records_of("request", id);
    if requests {
        assert_eq!(recs.len(), 6, "one record per request: {recs:#?}");
        assert_eq!(recs[5]["path"], path);
        assert_eq!(recs[5]["location_host"], "myreg.westeurope.data.azurecr.io");
    } else {
        assert!(recs.is_empty(), "{recs:#?}");
    }

    let mut secrets = h.fx.secrets();
    assert!(secrets.iter().any(|s| s == acr::SAS_SIG));
    secrets.push("wrong-S3cret-pw!".into());
    for (u, p) in [
        ("alice", "alice-S3cret-pw!"),
        ("alice", "wrong-S3cret-pw!"),
        (NULL_GUID, rt.as_str()),
    ] {
        secrets.push(basic(u, p).trim_start_matches("Basic ").to_string());
    }
    let lines = capture().lines.lock().unwrap().clone();
    assert!(
        lines.iter().any(|l| l.contains("regdoc::record")),
        "records were captured"
    );
    for s in &secrets {
        assert!(s.len() >= 12);
        // The signature part alone is the replayable secret of a JWT.
        let sig = s.rsplit('.').next().unwrap();
        for l in &lines {
            assert!(!l.contains(s.as_str()), "secret leaked into: {l}");
            if s.contains('.') && sig.len() >= 20 {
                assert!(!l.contains(sig), "token signature leaked into: {l}");
            }
        }
    }
    // No query string reaches the log: not the token request's (it names the account), not
    // the redirect's (its signature grants read access to the layer).
    for l in &lines {
        assert!(
            !l.contains("sig=") && !l.contains("account=") && !l.contains("offline_token"),
            "a query string leaked into: {l}"
        );
    }
}

/// A registry (and its token service) that echoes the client's credentials back, in every body
/// shape: registry JSON errors (message and detail), OAuth `error_description`, `{"details"}`,
/// plain text and a challenge's `error_description`; with Basic, a whole JWT with its
/// signature, an opaque token, a token query and a password-grant form. Nothing of it reaches
/// the log (records, their `http` facts, client words, evidence, spans) or `regdoc report`.
#[tokio::test]
async fn echoed_credentials_never_reach_the_log_through_interception() {
    use common::secrets::{self, Secrets};
    let secrets = Secrets::new();
    let password = secrets.register("Icp-Basic-Pw-1234");
    secrets.register(format!("alice:{password}"));
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let signature = secrets.register("SigNaTuRe-Icp-0123456789abcdef");
    let jwt = secrets.register(format!(
        "{}.{}.{signature}",
        e.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
        e.encode(r#"{"exp":1700000000,"aud":"myreg.azurecr.io"}"#)
    ));
    let opaque = secrets.register("opaque-Icp-Token-9x7y");
    let query_pw = secrets.register("Icp-Query-Pw-4567");
    let query_rt = secrets.register("Icp-Query-Rt-8910");
    let form_pw = secrets.register("Icp-Form-Pw-1357!");
    let form_rt = secrets.register("Icp-Form-Rt-2468");

    let h = harness_requests().await;
    h.fx.set_mode(Mode::Echo);
    let mut c = h.client(false).await;
    let mut answers = String::new();
    for auth in [
        basic("alice", &password),
        format!("Bearer {jwt}"),
        format!("Bearer {opaque}"),
    ] {
        for shape in secrets::ECHO_SHAPES {
            let req = c
                .req("GET", &format!("/v2/echo/{shape}"))
                .header(header::AUTHORIZATION, &auth)
                .body(empty())
                .unwrap();
            let r = c.send(req).await;
            assert!(r.status().is_client_error(), "{shape}: {}", r.status());
            if let Some(w) = r.headers().get(header::WWW_AUTHENTICATE) {
                answers.push_str(w.to_str().unwrap_or(""));
            }
            answers.push_str(&String::from_utf8_lossy(&body(r).await));
        }
    }
    let req = c
        .req(
            "GET",
            &format!("/oauth2/token?service={HOST}&password={query_pw}&refresh_token={query_rt}"),
        )
        .body(empty())
        .unwrap();
    answers.push_str(&String::from_utf8_lossy(&body(c.send(req).await).await));
    let form = format!(
        "grant_type=password&service={HOST}&username=alice&password={}&refresh_token={form_rt}",
        secrets::percent_encode(&form_pw)
    );
    let req = c
        .req("POST", "/oauth2/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))
        .unwrap();
    answers.push_str(&String::from_utf8_lossy(&body(c.send(req).await).await));
    // Not a vacuous scan: the server did echo them, and regdoc replayed its bodies unchanged.
    assert!(secrets.find_in(&answers).is_some(), "the fixture echoes");
    assert!(answers.contains(&signature) && answers.contains(&opaque));

    // Every record of the connection is written once the interceptor is done with it.
    let conn_id = c.conn_id;
    c.finish().await;
    assert!(
        !failures_of(conn_id).is_empty(),
        "the echoes were judged failures"
    );
    assert_eq!(records_of("request", conn_id).len(), 17);
    let lines = capture().lines.lock().unwrap().clone();
    let text = lines.join("\n");
    secrets.assert_absent("log", &text);
    // `regdoc report` of those records, as an operator would run it on the log.
    let log: String = lines
        .iter()
        .filter_map(|l| l.split_once(" json=").map(|(_, j)| format!("{j}\n")))
        .collect();
    let report = regdoc::cmd::report::report(std::io::BufReader::new(log.as_bytes()));
    secrets.assert_absent("report", &report.render_text());
    secrets.assert_absent("report --json", &serde_json::to_string(&report).unwrap());
    assert!(
        text.contains("bad credentials"),
        "messages survive around the mask"
    );
}
