//! The steps of a check in order, each run when what it needs is there, each judged by the
//! same [`crate::diagnose::Diagnoser`] `run` uses.

use super::args::{Credentials, Image};
use super::http::{send, Answer, NoAnswer};
use super::judge;
use super::path::{unix_now, Conn, Net};
use super::step::Step;
use crate::diagnose::catalog as c;
use crate::diagnose::symptom::client_symptom;
use crate::http::challenge::Challenge;
use crate::observe::{DnsAnswer, FailureKind, Phase};
use base64::Engine as _;
use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::Full;
use std::time::Duration;

/// What to check.
#[derive(Debug, Clone)]
pub struct Plan {
    pub host: String,
    pub port: u16,
    pub image: Option<Image>,
    pub credentials: Credentials,
}

/// Largest manifest read.
const MANIFEST_CAP: usize = 1024 * 1024;
/// Bytes of a blob read from the data endpoint: enough to know it serves.
const BLOB_BYTES: usize = 1024;
const USER_AGENT: &str = concat!("regdoc-check/", env!("CARGO_PKG_VERSION"));

/// The steps' rows, and every secret seen (given or issued) for the caller to keep out of
/// what it prints.
pub struct Outcome {
    pub steps: Vec<Step>,
    pub secrets: Vec<String>,
}

pub async fn run(net: &Net, plan: &Plan) -> Outcome {
    let mut r = Run {
        net,
        plan,
        steps: Vec::new(),
        skew: None,
        secrets: match &plan.credentials {
            Credentials::Anonymous => Vec::new(),
            Credentials::Password { password, .. } => vec![password.expose().to_string()],
            Credentials::RefreshToken(t) => vec![t.expose().to_string()],
        },
    };
    r.registry().await;
    r.regions().await;
    Outcome {
        steps: r.steps,
        secrets: r.secrets,
    }
}

struct Run<'a> {
    net: &'a Net,
    plan: &'a Plan,
    steps: Vec<Step>,
    secrets: Vec<String>,
    /// The registry's `Date` minus local time, from the first answer that had one.
    skew: Option<i64>,
}

/// How the registry wants to be asked, from its answer to `GET /v2/`.
enum Auth {
    /// 200 to an anonymous ping.
    None,
    Challenge(Challenge),
    /// The ping failed.
    Unknown,
}

impl Run<'_> {
    async fn registry(&mut self) {
        let (host, port) = (self.plan.host.clone(), self.plan.port);
        let (steps, conn) = self.net.open(&host, port, "").await;
        self.steps.extend(steps);
        let Some(mut rest) = conn else {
            let why = format!(
                "no TLS connection to {}",
                crate::config::join_host_port(&host, port)
            );
            for s in ["GET /v2/", "token", "login", "manifest", "blob", "clock"] {
                self.steps.push(Step::skipped(s, why.clone()));
            }
            return;
        };
        let ping = self.ping(&mut rest).await;
        let auth = match &ping {
            Some(a) if a.ex.status == 200 => Auth::None,
            Some(a) => match &a.ex.www_authenticate {
                Some(c) if a.ex.status == 401 => Auth::Challenge(c.clone()),
                _ => Auth::Unknown,
            },
            None => Auth::Unknown,
        };
        let token = self.token(&mut rest, &auth).await;
        let authorized = self.login(&mut rest, &auth, token.as_deref()).await;
        match (&self.plan.image, authorized) {
            (None, _) => {
                self.steps
                    .push(Step::skipped("manifest", "no --image given".into()));
            }
            (Some(_), Err(why)) => {
                self.steps.push(Step::skipped("manifest", why.clone()));
                self.steps.push(Step::skipped("blob", why));
            }
            (Some(image), Ok(credential)) => {
                let image = image.clone();
                self.image(&mut rest, &image, credential.as_deref()).await;
            }
        }
        self.clock(self.skew);
    }

    /// `GET /v2/` without credentials: the challenge, or the registry's refusal.
    async fn ping(&mut self, rest: &mut Conn) -> Option<Answer> {
        let (host, port) = (self.plan.host.clone(), self.plan.port);
        let req = request(Method::GET, &host, port, "/v2/", &[], Bytes::new());
        let got = send(
            &mut rest.sender,
            req,
            None,
            &[],
            crate::intercept::exchange::BODY_CAP,
            self.net.timeout,
        )
        .await;
        let dns = rest.dns.clone();
        let a = self.judge("GET /v2/", &host, port, dns.as_ref(), got, |a| {
            match &a.ex.www_authenticate {
                Some(c) if a.ex.status == 401 => {
                    format!("401, challenge {}", describe_challenge(c))
                }
                _ => format!("{}: the registry asks for no authentication", a.ex.status),
            }
        })?;
        if a.ex.status == 401 {
            if let Some(c) =
                a.ex.www_authenticate
                    .as_ref()
                    .filter(|c| !c.is_token_auth())
            {
                // az acr check-health's CONNECTIVITY_AAD_LOGIN_ERROR: Docker can still log in
                // with Basic, but no token flow is possible.
                if let Some(last) = self.steps.last_mut() {
                    last.detail.push_str(&format!(
                        " (not a Bearer challenge with realm and service: {} login only)",
                        c.scheme
                    ));
                }
            }
        }
        Some(a)
    }

    /// The token endpoint, with the credentials given: Docker's Basic GET, or a refresh-token
    /// POST, or an anonymous GET for a pull.
    async fn token(&mut self, rest: &mut Conn, auth: &Auth) -> Option<String> {
        let challenge = match auth {
            Auth::Challenge(c) if c.is_bearer() => c.clone(),
            Auth::Challenge(c) => {
                self.steps.push(Step::skipped(
                    "token",
                    format!(
                        "the registry asks for {} authentication, not a token",
                        c.scheme
                    ),
                ));
                return None;
            }
            Auth::None => {
                self.steps
                    .push(Step::skipped("token", "the registry needs no token".into()));
                return None;
            }
            Auth::Unknown => {
                self.steps.push(Step::skipped(
                    "token",
                    "GET /v2/ failed: no challenge to follow".into(),
                ));
                return None;
            }
        };
        if matches!(self.plan.credentials, Credentials::Anonymous) && self.plan.image.is_none() {
            self.steps.push(Step::skipped(
                "token",
                "no credentials (--username with --password-stdin, or --token-stdin) and no --image".into(),
            ));
            return None;
        }
        let Some((realm_host, realm_port, realm_path)) =
            challenge.realm.as_deref().and_then(split_https_url)
        else {
            self.steps.push(Step::skipped(
                "token",
                format!(
                    "the challenge's realm {:?} is not an https URL",
                    challenge.realm.as_deref().unwrap_or("")
                ),
            ));
            return None;
        };
        let service = challenge.service.clone().unwrap_or_default();
        let scope = self.scope();
        let mut own;
        let conn = if realm_host == self.plan.host && realm_port == self.plan.port {
            rest
        } else {
            let (steps, conn) = self.net.open(&realm_host, realm_port, "token ").await;
            self.steps.extend(steps);
            own = conn?;
            &mut own
        };
        let enc = crate::redact::percent_encode;
        let mut query = Vec::new();
        let (req, form) = match &self.plan.credentials {
            Credentials::Password { username, password } => {
                query.push(format!("account={}", enc(username)));
                query.push("client_id=docker".into());
                query.push("offline_token=true".into());
                if let Some(s) = &scope {
                    query.push(format!("scope={}", enc(s)));
                }
                query.push(format!("service={}", enc(&service)));
                let basic = crate::http::credentials::B64
                    .encode(format!("{username}:{}", password.expose()));
                let path = format!("{realm_path}?{}", query.join("&"));
                let auth = format!("Basic {basic}");
                (
                    request(
                        Method::GET,
                        &realm_host,
                        realm_port,
                        &path,
                        &[(header::AUTHORIZATION, auth.as_str())],
                        Bytes::new(),
                    ),
                    None,
                )
            }
            Credentials::RefreshToken(t) => {
                let mut f = vec![
                    "grant_type=refresh_token".to_string(),
                    "client_id=docker".into(),
                    format!("service={}", enc(&service)),
                ];
                if let Some(s) = &scope {
                    f.push(format!("scope={}", enc(s)));
                }
                f.push(format!("refresh_token={}", enc(t.expose())));
                let body = Bytes::from(f.join("&"));
                (
                    request(
                        Method::POST,
                        &realm_host,
                        realm_port,
                        &realm_path,
                        &[(header::CONTENT_TYPE, "application/x-www-form-urlencoded")],
                        body.clone(),
                    ),
                    Some(body),
                )
            }
            Credentials::Anonymous => {
                if let Some(s) = &scope {
                    query.push(format!("scope={}", enc(s)));
                }
                query.push(format!("service={}", enc(&service)));
                let path = format!("{realm_path}?{}", query.join("&"));
                (
                    request(
                        Method::GET,
                        &realm_host,
                        realm_port,
                        &path,
                        &[],
                        Bytes::new(),
                    ),
                    None,
                )
            }
        };
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        let got = send(
            &mut conn.sender,
            req,
            form.as_deref(),
            &secrets,
            crate::intercept::exchange::BODY_CAP,
            self.net.timeout,
        )
        .await;
        let dns = conn.dns.clone();
        let now = unix_now();
        let answer = self.judge("token", &realm_host, realm_port, dns.as_ref(), got, |a| {
            let claims =
                a.ex.issued_token
                    .as_ref()
                    .map(|c| judge::describe_claims(c, now))
                    .unwrap_or_else(|| "no token claims could be read".into());
            format!("{} from {realm_host}: {claims}", a.ex.status)
        })?;
        let token = issued_token(&answer.body)?;
        self.secrets.push(token.clone());
        if let Some((cause, why)) = answer
            .ex
            .issued_token
            .as_ref()
            .and_then(|claims| judge::token_claims(claims, scope.as_deref(), now))
        {
            if let Some(last) = self.steps.last_mut() {
                let took = Duration::from_millis(last.ms.unwrap_or(0));
                let mut s = Step::problem("token", took, why.clone()).with_cause(cause);
                s.evidence = vec![why];
                *last = s;
            }
        }
        Some(token)
    }

    /// Docker's login: `GET /v2/` again with the credential. Says with which `Authorization`
    /// later requests go on (none when the registry needs none), or why they cannot.
    async fn login(
        &mut self,
        rest: &mut Conn,
        auth: &Auth,
        token: Option<&str>,
    ) -> Result<Option<String>, String> {
        let (host, port) = (self.plan.host.clone(), self.plan.port);
        let header_value = match (auth, token, &self.plan.credentials) {
            (Auth::Unknown, _, _) => {
                let why = "GET /v2/ failed".to_string();
                self.steps.push(Step::skipped("login", why.clone()));
                return Err(why);
            }
            (Auth::None, _, _) => {
                self.steps.push(Step::skipped(
                    "login",
                    "the registry needs no authentication".into(),
                ));
                return Ok(None);
            }
            (_, _, Credentials::Anonymous) => {
                self.steps
                    .push(Step::skipped("login", "no credentials given".into()));
                // An anonymous pull goes on with the anonymous token, when there is one.
                return match (auth, token) {
                    (_, Some(t)) => Ok(Some(format!("Bearer {t}"))),
                    (Auth::Challenge(c), None) if c.is_bearer() && self.plan.image.is_some() => {
                        Err("no token: the token step failed".into())
                    }
                    _ => Ok(None),
                };
            }
            (_, Some(t), _) => format!("Bearer {t}"),
            (Auth::Challenge(c), None, Credentials::Password { username, password })
                if !c.is_bearer() =>
            {
                let pair = format!("{username}:{}", password.expose());
                format!("Basic {}", crate::http::credentials::B64.encode(pair))
            }
            _ => {
                let why = "no token: the token step failed".to_string();
                self.steps.push(Step::skipped("login", why.clone()));
                return Err(why);
            }
        };
        let req = request(
            Method::GET,
            &host,
            port,
            "/v2/",
            &[(header::AUTHORIZATION, header_value.as_str())],
            Bytes::new(),
        );
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        let got = send(
            &mut rest.sender,
            req,
            None,
            &secrets,
            crate::intercept::exchange::BODY_CAP,
            self.net.timeout,
        )
        .await;
        let dns = rest.dns.clone();
        match self.judge("login", &host, port, dns.as_ref(), got, |a| {
            format!("{}: the registry accepts the credential", a.ex.status)
        }) {
            Some(a) if a.ex.status == 200 => Ok(Some(header_value)),
            Some(a) => {
                let why = format!("{}: the credential was not accepted", a.ex.status);
                self.unexpected(why);
                Err("the login step failed".into())
            }
            None => Err("the login step failed".into()),
        }
    }

    /// The manifest, then the first bytes of its smallest blob through the redirect.
    async fn image(&mut self, rest: &mut Conn, image: &Image, credential: Option<&str>) {
        let (host, port) = (self.plan.host.clone(), self.plan.port);
        let bearer = credential;
        let mut reference = image.reference.clone();
        let mut manifest = None;
        // An index names one manifest per platform: follow it once.
        for round in 0..2 {
            let path = format!("/v2/{}/manifests/{reference}", image.repository);
            let mut headers = vec![(header::ACCEPT, MANIFEST_TYPES)];
            if let Some(b) = bearer {
                headers.push((header::AUTHORIZATION, b));
            }
            let req = request(Method::GET, &host, port, &path, &headers, Bytes::new());
            let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
            let got = send(
                &mut rest.sender,
                req,
                None,
                &secrets,
                MANIFEST_CAP,
                self.net.timeout,
            )
            .await;
            let dns = rest.dns.clone();
            let name = if round == 0 {
                "manifest".to_string()
            } else {
                "manifest (platform)".to_string()
            };
            let repo_ref = format!("{}:{}", image.repository, reference);
            let Some(a) = self.judge(&name, &host, port, dns.as_ref(), got, |a| {
                format!("{}: {repo_ref}, {} bytes", a.ex.status, a.body.len())
            }) else {
                self.steps
                    .push(Step::skipped("blob", "the manifest step failed".into()));
                return;
            };
            if a.ex.status != 200 {
                self.unexpected(format!(
                    "{}: the registry did not serve the manifest (credentials needed?)",
                    a.ex.status
                ));
                self.steps
                    .push(Step::skipped("blob", "the manifest step failed".into()));
                return;
            }
            let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
            match platform_manifest(&v) {
                Some(d) if round == 0 => reference = d,
                _ => {
                    manifest = Some(v);
                    break;
                }
            }
        }
        let Some((digest, size)) = manifest.as_ref().and_then(smallest_blob) else {
            self.steps
                .push(Step::skipped("blob", "the manifest names no blob".into()));
            return;
        };
        let path = format!("/v2/{}/blobs/{digest}", image.repository);
        let mut headers = Vec::new();
        if let Some(b) = bearer {
            headers.push((header::AUTHORIZATION, b));
        }
        let req = request(Method::GET, &host, port, &path, &headers, Bytes::new());
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        let got = send(
            &mut rest.sender,
            req,
            None,
            &secrets,
            BLOB_BYTES,
            self.net.timeout,
        )
        .await;
        let dns = rest.dns.clone();
        let short = short_digest(&digest);
        let Some(a) = self.judge("blob", &host, port, dns.as_ref(), got, |a| {
            match a
                .ex
                .location
                .as_deref()
                .and_then(crate::diagnose::location_host)
            {
                Some(to) => format!("{}: {short} ({size} bytes) is served by {to}", a.ex.status),
                None => format!(
                    "{}: {short} ({size} bytes) is served by the registry itself",
                    a.ex.status
                ),
            }
        }) else {
            return;
        };
        if !(200..400).contains(&a.ex.status) {
            self.unexpected(format!(
                "{}: the registry did not serve the blob",
                a.ex.status
            ));
            return;
        }
        if (300..400).contains(&a.ex.status) {
            // The full Location (it carries the storage signature) is used to fetch and never
            // shown: the exchange keeps it without its query.
            let location = a
                .headers
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            match location.as_deref().and_then(split_https_url) {
                Some((to_host, to_port, to_path)) => {
                    self.data_fetch(&to_host, to_port, &to_path, &short).await
                }
                None => self.steps.push(Step::skipped(
                    "data GET",
                    "the redirect is not an absolute https URL".into(),
                )),
            }
        }
    }

    /// Follow a blob redirect to the data endpoint, without the registry's credential (the
    /// storage signature in the URL is the credential there).
    async fn data_fetch(&mut self, host: &str, port: u16, path: &str, what: &str) {
        let (steps, conn) = self.net.open(host, port, "data ").await;
        self.steps.extend(steps);
        let Some(mut conn) = conn else {
            self.steps.push(Step::skipped(
                "data GET",
                format!("no TLS connection to {host}"),
            ));
            return;
        };
        let range = format!("bytes=0-{}", BLOB_BYTES - 1);
        let req = request(
            Method::GET,
            host,
            port,
            path,
            &[(header::RANGE, range.as_str())],
            Bytes::new(),
        );
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        let got = send(
            &mut conn.sender,
            req,
            None,
            &secrets,
            BLOB_BYTES,
            self.net.timeout,
        )
        .await;
        let dns = conn.dns.clone();
        let served = self.judge("data GET", host, port, dns.as_ref(), got, |a| {
            format!(
                "{}: read {} bytes of {what} from {host}",
                a.ex.status,
                a.body.len()
            )
        });
        if let Some(a) = served.filter(|a| !(200..300).contains(&a.ex.status)) {
            self.unexpected(format!(
                "{}: the data endpoint did not serve the blob",
                a.ex.status
            ));
        }
    }

    /// Each data endpoint `[[registry]] regions` names, reached as `run` would reach it.
    async fn regions(&mut self) {
        let Some(reg) = self
            .net
            .cfg
            .registries
            .iter()
            .find(|r| r.host.eq_ignore_ascii_case(&self.plan.host))
            .cloned()
        else {
            return;
        };
        for region in &reg.regions {
            let name = format!("data endpoint {region}");
            let Some(host) = judge::data_endpoint(&self.plan.host, region) else {
                self.steps.push(Step::skipped(
                    &name,
                    format!("{} is not an ACR login server", self.plan.host),
                ));
                continue;
            };
            let (steps, conn) = self.net.open(&host, 443, "").await;
            let total: u64 = steps.iter().filter_map(|s| s.ms).sum();
            let took = Duration::from_millis(total);
            let merged = match (conn, steps.iter().find(|s| s.is_problem())) {
                (_, Some(bad)) => {
                    let mut s = bad.clone();
                    s.detail = format!("{host}: {} failed: {}", bad.step, bad.detail);
                    s.step = name;
                    s.ms = Some(total);
                    s
                }
                (Some(_), None) => {
                    let tls = steps.last().map(|s| s.detail.clone()).unwrap_or_default();
                    Step::ok(&name, took, format!("{host}: {tls}"))
                }
                (None, None) => Step::problem(&name, took, format!("{host}: not reached")),
            };
            self.steps.push(merged);
        }
    }

    /// The last step answered without a fault the rules know, but not as the check needs:
    /// a problem without a cause id.
    fn unexpected(&mut self, why: String) {
        if let Some(last) = self.steps.last_mut() {
            let took = Duration::from_millis(last.ms.unwrap_or(0));
            *last = Step::problem(&last.step, took, why);
        }
    }

    fn clock(&mut self, skew: Option<i64>) {
        let max = self.net.diagnoser.rules().max_clock_skew;
        self.steps.push(match skew {
            None => Step::skipped("clock", "no Date header from the registry".into()),
            Some(s) => match judge::clock_skew(s, max) {
                Some(why) => {
                    let mut step = Step::problem("clock", Duration::ZERO, why.clone())
                        .with_cause(&c::CLOCK_SKEW);
                    step.evidence = vec![why];
                    step
                }
                None => Step::ok(
                    "clock",
                    Duration::ZERO,
                    format!("the registry's Date is {s} s from local time"),
                ),
            },
        });
    }

    fn scope(&self) -> Option<String> {
        self.plan
            .image
            .as_ref()
            .map(|i| format!("repository:{}:pull", i.repository))
    }

    /// Judge an exchange as interception would, and add its step. The answer comes back when
    /// the exchange is healthy.
    fn judge(
        &mut self,
        name: &str,
        host: &str,
        port: u16,
        dns: Option<&DnsAnswer>,
        got: Result<Answer, NoAnswer>,
        ok: impl Fn(&Answer) -> String,
    ) -> Option<Answer> {
        let net = self.net;
        let a = match got {
            Ok(a) => {
                if host == self.plan.host {
                    self.skew = self.skew.or(a.ex.date_skew_secs);
                }
                a
            }
            Err(no) => {
                let mut ev = net.event(host, port, Phase::Http, no.kind, no.error, no.took);
                ev.dns = dns.cloned();
                ev.http = Some(no.ex);
                self.steps.push(net.judged(name, &ev, no.took));
                return None;
            }
        };
        let findings = net.diagnoser.judge_exchange(
            net.client.ip(),
            host,
            port,
            &net.endpoint(host),
            dns,
            &a.ex,
        );
        if findings.is_empty() {
            self.steps.push(Step::ok(name, a.took, ok(&a)));
            return Some(a);
        }
        let mut ev = net.event(
            host,
            port,
            Phase::Http,
            FailureKind::HttpStatus {
                status: a.ex.status,
            },
            answer_sentence(&a),
            a.took,
        );
        ev.dns = dns.cloned();
        ev.http = Some(a.ex.clone());
        let mut step = Step::diagnosed(name, a.took, ev.error.clone(), &findings);
        step.client_symptom =
            client_symptom(&ev, None, &net.diagnoser.situation(&ev)).map(|s| s.text);
        self.steps.push(step);
        None
    }
}

/// Manifest media types Docker accepts, indexes first.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.oci.image.manifest.v1+json";

fn request(
    method: Method,
    host: &str,
    port: u16,
    path: &str,
    headers: &[(header::HeaderName, &str)],
    body: Bytes,
) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, crate::config::authority(host, port, 443))
        .header(header::USER_AGENT, USER_AGENT);
    for (k, v) in headers {
        b = b.header(k, *v);
    }
    b.body(Full::new(body)).unwrap_or_else(|_| {
        // Only a path with bytes a URI cannot hold gets here; send `/` and let the server say.
        let mut r = Request::new(Full::new(Bytes::new()));
        *r.uri_mut() = http::Uri::from_static("/");
        r
    })
}

/// `GET /v2/ -> 403 DENIED: client with IP ...`.
fn answer_sentence(a: &Answer) -> String {
    let said =
        a.ex.registry_errors
            .first()
            .map(|e| format!(": {} {}", e.code, e.message))
            .or_else(|| a.ex.body_text.as_ref().map(|t| format!(": {t}")))
            .unwrap_or_default();
    let mut s = format!(
        "{} {} -> {}{said}",
        a.ex.method, a.ex.path_class, a.ex.status
    );
    if let Some(ip) =
        a.ex.registry_errors
            .iter()
            .find_map(|e| crate::diagnose::rules::denied_client_ip(&e.message))
    {
        s.push_str(&format!(" (the registry saw this host as {ip})"));
    }
    s
}

fn describe_challenge(c: &Challenge) -> String {
    let mut s = c.scheme.clone();
    if let Some(r) = &c.realm {
        s.push_str(&format!(" realm={r}"));
    }
    if let Some(v) = &c.service {
        s.push_str(&format!(" service={v}"));
    }
    s
}

/// `https://host[:port]/path?query` into its parts (port 443 when absent).
fn split_https_url(url: &str) -> Option<(String, u16, String)> {
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
    Some((host.to_ascii_lowercase(), port, path))
}

/// The token a token endpoint issued (`token`, else `access_token`).
fn issued_token(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["token", "access_token"]
        .iter()
        .find_map(|k| v.get(k).and_then(|t| t.as_str()))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// An index's manifest for linux/amd64 (else its first).
fn platform_manifest(v: &serde_json::Value) -> Option<String> {
    let list = v.get("manifests")?.as_array()?;
    let digest =
        |m: &serde_json::Value| m.get("digest").and_then(|d| d.as_str()).map(str::to_string);
    list.iter()
        .find(|m| {
            let p = &m["platform"];
            p["os"] == "linux" && p["architecture"] == "amd64"
        })
        .and_then(digest)
        .or_else(|| list.first().and_then(digest))
}

/// The smallest of a manifest's layers and config: `(digest, size)`.
fn smallest_blob(v: &serde_json::Value) -> Option<(String, u64)> {
    let mut blobs: Vec<&serde_json::Value> = v
        .get("layers")
        .and_then(|l| l.as_array())
        .map(|l| l.iter().collect())
        .unwrap_or_default();
    blobs.extend(v.get("config"));
    blobs
        .into_iter()
        .filter_map(|b| {
            let d = b.get("digest")?.as_str()?;
            let ok = d.starts_with("sha256:")
                && d.len() == 71
                && d[7..].bytes().all(|c| c.is_ascii_hexdigit());
            ok.then(|| {
                (
                    d.to_string(),
                    b.get("size").and_then(|s| s.as_u64()).unwrap_or(0),
                )
            })
        })
        .min_by_key(|(_, size)| *size)
}

fn short_digest(d: &str) -> String {
    d.chars().take(19).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realm_urls() {
        assert_eq!(
            split_https_url("https://r.azurecr.io/oauth2/token"),
            Some(("r.azurecr.io".into(), 443, "/oauth2/token".into()))
        );
        assert_eq!(
            split_https_url("https://auth.example:8443/token?x=1"),
            Some(("auth.example".into(), 8443, "/token?x=1".into()))
        );
        assert_eq!(split_https_url("http://r.io/t"), None);
        assert_eq!(split_https_url("https://u:p@r.io/t"), None);
    }

    #[test]
    fn the_smallest_blob_is_chosen() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let v = serde_json::json!({
            "config": {"digest": d('a'), "size": 500},
            "layers": [{"digest": d('b'), "size": 10}, {"digest": d('c'), "size": 99}],
        });
        assert_eq!(smallest_blob(&v), Some((d('b'), 10)));
        assert_eq!(
            smallest_blob(&serde_json::json!({"layers": [{"digest": "../x"}]})),
            None
        );
    }

    #[test]
    fn an_index_leads_to_linux_amd64() {
        let v = serde_json::json!({"manifests": [
            {"digest": "sha256:1", "platform": {"os": "windows", "architecture": "amd64"}},
            {"digest": "sha256:2", "platform": {"os": "linux", "architecture": "amd64"}},
        ]});
        assert_eq!(platform_manifest(&v).as_deref(), Some("sha256:2"));
        assert_eq!(platform_manifest(&serde_json::json!({"layers": []})), None);
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
