//! The steps of a check in order, each run when what it needs is there, each judged by the
//! same [`crate::diagnose::Diagnoser`] `run` uses.

use super::args::{Credentials, Image};
use super::auth::{self, describe_challenge, issued_token};
use super::http::{request, send, Answer, NoAnswer};
use super::judge;
use super::manifest::{platform_manifest, short_digest, smallest_blob};
use super::path::{unix_now, Conn, Net};
use super::step::Step;
use crate::diagnose::catalog as c;
use crate::http::challenge::Challenge;
use crate::observe::{DnsAnswer, FailureKind, Phase};
use bytes::Bytes;
use http::{header, Method};
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
        let Some(realm) = challenge.realm.as_deref().and_then(auth::parse_https_url) else {
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
        let (realm_host, realm_port) = (realm.host.clone(), realm.port);
        let conn = if realm_host == self.plan.host && realm_port == self.plan.port {
            rest
        } else {
            let (steps, conn) = self.net.open(&realm_host, realm_port, "token ").await;
            self.steps.extend(steps);
            let Some(conn) = conn else {
                self.steps.push(Step::skipped(
                    "token",
                    format!("no TLS connection to the token service {realm_host}"),
                ));
                return None;
            };
            own = conn;
            &mut own
        };
        let auth::TokenRequest { request: req, form } =
            auth::token_request(&self.plan.credentials, &realm, &service, scope.as_deref());
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
                auth::basic(username, password.expose())
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
            let mut headers = vec![(header::ACCEPT, super::manifest::MEDIA_TYPES)];
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
            match location.as_deref().and_then(auth::parse_https_url) {
                Some(to) => self.data_fetch(&to.host, to.port, &to.path, &short).await,
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
        step.worded_for(&ev, None, &net.diagnoser);
        self.steps.push(step);
        None
    }
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
