//! Diagnosis: failures into documented causes.
//!
//! The catalog ([`catalog`]) is data; the rules ([`rules`]) are small pure functions from a
//! [`FailureEvent`] plus context to [`Finding`]s; [`context`] keeps a small bounded memory of each
//! client's and registry's recent successes, so that a data-endpoint failure after REST success is
//! recognised as such; [`symptom`] renders what the Docker client printed; [`aggregate`] counts
//! repeats so the log is not flooded. Nothing here touches a socket. The only clock read is in
//! the thin [`Diagnoser`] methods without an `_at` suffix; rules get the time as a value.
//!
//! How the transport uses it (one `Arc<Diagnoser>` shared by all connections):
//! * a failure: `let findings = diagnoser.diagnose(&ev)`; the first finding is the cause of the
//!   record, the rest are alternatives. When regdoc answers the client itself, the reason phrase
//!   goes into [`client_symptom`]`(findings[0].cause, &ev, Some(reason))` to get the line the
//!   Docker user reads; `None` when the connection was just closed or the failure happened
//!   inside a tunnel.
//! * a success: [`Diagnoser::note_success`] when a REST or data host answered (its ServerHello
//!   came back, or a tunnel carried server bytes), so later failures of the same registry are
//!   read in that light.
//! * interception: [`Diagnoser::judge_exchange`] for every exchange; empty means healthy (and is
//!   remembered), otherwise the findings of a failure with `FailureKind::HttpStatus`.
//! * a lookup that worked: [`Diagnoser::judge_resolution`] flags a private registry resolving
//!   to a public address before anything else fails.
//! * repeats: [`aggregate::Aggregator`] keyed by [`aggregate::key`]`(cause, phase, client, target)`,
//!   written through [`crate::record::failures::FailureLog`].

pub mod aggregate;
pub mod catalog;
pub mod context;
pub mod remedy;
pub mod rules;
pub mod symptom;
pub mod text;

use crate::config::Config;
use crate::endpoint::{Endpoint, EndpointKind};
use crate::observe::{DnsAnswer, FailureEvent, HttpExchange};
use serde::{Serialize, Serializer};
use std::net::IpAddr;
use std::time::SystemTime;

pub use catalog::Cause;
pub use context::{Context, ContextView, TokenNote};
pub use rules::RulesConfig;
pub use symptom::{client_symptom, Basis, Situation, Symptom};

/// How sure a rule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

impl Confidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }
}

fn cause_id<S: Serializer>(cause: &&'static Cause, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(cause.id)
}

/// One cause a rule found, with the facts that made it think so.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Serialised as the cause id.
    #[serde(serialize_with = "cause_id")]
    pub cause: &'static Cause,
    pub confidence: Confidence,
    /// Facts, each a short sentence or `key=value`, never a secret.
    pub evidence: Vec<String>,
}

impl Finding {
    /// The cause's stable id.
    pub fn cause_id(&self) -> &'static str {
        self.cause.id
    }
}

/// A success worth remembering as context: a connection or exchange that worked.
#[derive(Debug, Clone)]
pub struct SuccessNote {
    pub client: IpAddr,
    pub host: String,
    pub endpoint: crate::endpoint::Endpoint,
    pub at: SystemTime,
    /// Set when the success was an HTTP exchange seen through interception.
    pub http: Option<HttpExchange>,
}

/// The diagnosis engine: rules plus their bounded context. `Send + Sync`: share it in an `Arc`.
#[derive(Debug)]
pub struct Diagnoser {
    rules: RulesConfig,
    context: Context,
    /// Whose words to predict where the traffic does not name its client.
    client: crate::config::ClientKind,
}

/// containerd 1.6 asks a token service with the OAuth2 form first (`POST`, `grant_type=password`)
/// and, when that is refused with 400, 401, 404 or 405 (ACR answers 400, other services 401 or
/// 404), asks again with `GET` and Basic credentials. Such a refusal is no failure: a healthy pull
/// from those services goes through it every time, and a wrong password is judged on the `GET`.
pub fn containerd_retries_token(ex: &HttpExchange) -> bool {
    ex.from_containerd()
        && ex.method == "POST"
        && ex.path_class == "token"
        && matches!(ex.status, 400 | 401 | 404 | 405)
}

impl Diagnoser {
    pub fn new(cfg: &Config) -> Self {
        Diagnoser {
            rules: RulesConfig::from_config(cfg),
            context: Context::new(
                cfg.diagnosis.context_window,
                cfg.diagnosis.token_lifetime,
                context::DEFAULT_CAPACITY,
            ),
            client: cfg.diagnosis.client,
        }
    }

    /// The rule configuration in use.
    pub fn rules(&self) -> &RulesConfig {
        &self.rules
    }

    /// Remember a success (REST call that worked, tunnel that carried data).
    pub fn note_success(&self, note: SuccessNote) {
        let registry = registry_key(&note.host, &note.endpoint);
        match note.endpoint.kind {
            EndpointKind::RegistryRest => {
                self.context.note_rest_ok(note.client, &registry, note.at)
            }
            k if k.is_data() => self
                .context
                .note_data_ok(&note.endpoint, &note.host, note.at),
            _ => {}
        }
        if let Some(ex) = &note.http {
            if rules::is_healthy(ex) {
                self.remember_exchange(note.client, &note.host, &note.endpoint, ex, note.at);
            }
        }
    }

    /// Causes of a failure, most likely first. Empty when no rule applies.
    pub fn diagnose(&self, ev: &FailureEvent) -> Vec<Finding> {
        self.diagnose_at(ev, SystemTime::now())
    }

    /// [`Diagnoser::diagnose`] at a given time.
    pub fn diagnose_at(&self, ev: &FailureEvent, now: SystemTime) -> Vec<Finding> {
        let view = self
            .context
            .view(ev.client.ip(), &ev.host, &ev.endpoint, now);
        rules::evaluate(ev, &view, &self.rules)
    }

    /// Whether `client` hanging up in the middle of its handshake under regdoc's certificate
    /// for `host` refused that certificate ([`rules::hang_up_is_refusal`]).
    pub fn hang_up_is_refusal(&self, client: IpAddr, host: &str, endpoint: &Endpoint) -> bool {
        let view = self.context.view(client, host, endpoint, SystemTime::now());
        rules::hang_up_is_refusal(&view, endpoint.kind)
    }

    /// Judge one HTTP exchange seen through interception or plain forwarding. Empty means
    /// healthy (the success is remembered as context); otherwise the causes, most likely first.
    pub fn judge_exchange(
        &self,
        client: IpAddr,
        host: &str,
        port: u16,
        endpoint: &Endpoint,
        dns: Option<&DnsAnswer>,
        ex: &HttpExchange,
    ) -> Vec<Finding> {
        self.judge_exchange_at(client, host, port, endpoint, dns, ex, SystemTime::now())
    }

    /// [`Diagnoser::judge_exchange`] at a given time. `dns` is the answer the connection was
    /// dialled with, when regdoc resolved the name itself.
    #[allow(clippy::too_many_arguments)]
    pub fn judge_exchange_at(
        &self,
        client: IpAddr,
        host: &str,
        port: u16,
        endpoint: &Endpoint,
        dns: Option<&DnsAnswer>,
        ex: &HttpExchange,
        now: SystemTime,
    ) -> Vec<Finding> {
        let view = self.context.view(client, host, endpoint, now);
        let target = rules::Target { host, endpoint };
        let findings = rules::exchange(ex, target, &view, &self.rules);
        self.note_sequence(client, host, port, ex, now);
        if rules::is_healthy(ex) {
            self.remember_exchange(client, host, endpoint, ex, now);
        }
        // A registry that should be private, reached at a public address, answered from the
        // wrong endpoint: whatever it said, the name resolution is the cause.
        let misrouted = dns.and_then(|d| rules::resolution(target, d, &self.rules, None));
        if misrouted.is_none() && containerd_retries_token(ex) {
            // Not the client's last word: the GET it retries with is judged in its turn.
            return Vec::new();
        }
        rules::lead_with(misrouted, findings)
    }

    /// Check a successful DNS answer against the configuration (a private registry resolving to
    /// a public address). `None` when the answer is as expected or the host is not configured.
    pub fn judge_resolution(
        &self,
        host: &str,
        endpoint: &Endpoint,
        answer: &DnsAnswer,
    ) -> Option<Finding> {
        rules::resolution(rules::Target { host, endpoint }, answer, &self.rules, None)
    }

    /// What the context adds to the client's words for `ev`: its operation, and the registry
    /// a token service was asked on behalf of. Call after [`Diagnoser::judge_exchange`] for
    /// the same exchange.
    pub fn situation(&self, ev: &FailureEvent) -> Situation {
        let Some(ex) = &ev.http else {
            return Situation {
                client: self.client,
                ..Situation::default()
            };
        };
        let target = crate::config::join_host_port(&ev.host, ev.port);
        let second_ping = ex.path_class == "ping"
            && self
                .context
                .pinged_twice(ev.client.ip(), &target, SystemTime::now());
        Situation {
            operation: Some(symptom::operation::of_exchange(ex, second_ping)),
            registry_target: matches!(ex.path_class.as_str(), "token" | "exchange")
                .then(|| self.context.registry_for_realm(ev.client.ip(), &ev.host))
                .flatten(),
            client: self.client,
        }
    }

    /// Remember what later exchanges of the same client are read against: its pings (a login
    /// pings twice) and which registry sent it to which token service.
    fn note_sequence(
        &self,
        client: IpAddr,
        host: &str,
        port: u16,
        ex: &HttpExchange,
        now: SystemTime,
    ) {
        if ex.path_class != "ping" {
            return;
        }
        let target = crate::config::join_host_port(host, port);
        self.context.note_ping(client, &target, now);
        if let Some(realm) = ex
            .www_authenticate
            .as_ref()
            .filter(|c| c.is_bearer())
            .and_then(|c| c.realm.as_deref())
            .and_then(location_host)
        {
            self.context.note_realm(client, &realm, &target);
        }
    }

    fn remember_exchange(
        &self,
        client: IpAddr,
        host: &str,
        endpoint: &Endpoint,
        ex: &HttpExchange,
        at: SystemTime,
    ) {
        let registry = registry_key(host, endpoint);
        if endpoint.kind == EndpointKind::RegistryRest {
            self.context.note_rest_ok(client, &registry, at);
        }
        if (300..400).contains(&ex.status) {
            if let Some(to) = ex.location.as_deref().and_then(location_host) {
                if !to.eq_ignore_ascii_case(host) {
                    let ep = crate::endpoint::classify(&to, &[]);
                    self.context
                        .note_redirect(&registry, &to, ep.region.as_deref(), at);
                }
            }
        }
        if let (Some(claims), true) = (&ex.issued_token, (200..300).contains(&ex.status)) {
            self.context.note_token(
                client,
                &registry,
                TokenNote {
                    claims: claims.clone(),
                    requested_scopes: ex.requested_scopes.iter().take(16).cloned().collect(),
                    at,
                },
            );
        }
    }
}

/// The context key of a registry: its name for ACR, the host otherwise.
fn registry_key(host: &str, endpoint: &Endpoint) -> String {
    endpoint
        .registry
        .clone()
        .unwrap_or_else(|| host.to_ascii_lowercase())
}

/// Host of an absolute `Location` (no user info, port, path or query: SAS signatures live in the
/// query and must never be kept).
pub fn location_host(location: &str) -> Option<String> {
    let rest = location
        .strip_prefix("https://")
        .or_else(|| location.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    ok.then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests;
