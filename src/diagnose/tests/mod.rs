//! Rule tests with real-shaped inputs, one file per topic of the seed articles and beyond: the
//! failures they describe, the healthy flows that must stay silent, and the secrets that must
//! never reach evidence. This file holds the fixtures they share.

mod before_headers;
mod clock_skew;
mod connect;
mod data_endpoint;
mod dns;
mod healthy;
mod hostile;
mod hosts_file;
mod http_errors;
mod invariants;
mod login;
mod proxies;
mod refusals;
mod tls;
mod tls_client;
mod token_lifetime;

use super::*;
use crate::config::RegistryConfig;
use crate::endpoint::classify;
use crate::http::challenge::Challenge;
use crate::http::credentials::{CredentialFacts, UsernameKind};
use crate::http::jwt::{Access, Claims};
use crate::http::registry_error::RegistryError;
use crate::observe::{DnsAnswer, DnsSource, FailureKind, Phase};
use std::net::SocketAddr;
use std::time::Duration;

const NOW: u64 = 1_800_000_000;
const REG: &str = "myregistry.azurecr.io";
const DATA: &str = "myregistry.westeurope.data.azurecr.io";

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
}

fn later(s: u64) -> SystemTime {
    now() + Duration::from_secs(s)
}

fn client() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

fn private_registry(host: &str) -> RegistryConfig {
    RegistryConfig {
        host: host.into(),
        private_endpoint: true,
        expected_cidrs: Vec::new(),
        regions: vec!["westeurope".into()],
    }
}

fn diagnoser(registries: Vec<RegistryConfig>) -> Diagnoser {
    let cfg = Config {
        registries,
        ..Config::default()
    };
    Diagnoser::new(&cfg)
}

fn phase_of(kind: &FailureKind) -> Phase {
    match kind {
        FailureKind::DnsNxDomain
        | FailureKind::DnsNoAddresses
        | FailureKind::DnsTimeout
        | FailureKind::DnsError => Phase::Dns,
        FailureKind::ConnectRefused
        | FailureKind::ConnectTimeout
        | FailureKind::ConnectUnreachable
        | FailureKind::ConnectError => Phase::Connect,
        FailureKind::UpstreamProxyStatus { .. }
        | FailureKind::UpstreamProxyClosed
        | FailureKind::UpstreamProxyTimeout
        | FailureKind::UpstreamProxyUnreachable => Phase::UpstreamProxy,
        FailureKind::TlsServerSilent
        | FailureKind::TlsServerClosed
        | FailureKind::TlsServerReset
        | FailureKind::TlsNotTls
        | FailureKind::TlsAlert { .. }
        | FailureKind::TlsUpstreamCertificate { .. }
        | FailureKind::TlsClientRejected { .. }
        | FailureKind::TlsClientRefused { .. } => Phase::Tls,
        FailureKind::HttpStatus { .. }
        | FailureKind::ResponseHeadersTimeout
        | FailureKind::UpstreamClosedBeforeHeaders { .. } => Phase::Http,
        FailureKind::TransferStalled { .. } => Phase::Tunnel,
        FailureKind::ClientNotAllowed
        | FailureKind::PortNotAllowed { .. }
        | FailureKind::ProxyAuthRequired { .. } => Phase::Policy,
        _ => Phase::Request,
    }
}

fn event(host: &str, kind: FailureKind) -> FailureEvent {
    let phase = phase_of(&kind);
    FailureEvent {
        conn_id: 7,
        client: SocketAddr::new(client(), 50_000),
        endpoint: classify(host, &[]),
        error: "failed".into(),
        elapsed_ms: 10_000,
        ..FailureEvent::sample(host, 443, phase, kind)
    }
}

fn answer(cnames: &[&str], addrs: &[&str]) -> DnsAnswer {
    DnsAnswer {
        cnames: cnames.iter().map(|s| s.to_string()).collect(),
        addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        source: DnsSource::Dns,
        ..DnsAnswer::default()
    }
}

/// The public chain of a private-link registry seen from outside the VNet.
fn public_privatelink_chain() -> DnsAnswer {
    answer(
        &[
            "myregistry.privatelink.azurecr.io",
            "weu-acr-reg.trafficmanager.net",
            "r0403weu-3.westeurope.cloudapp.azure.com",
        ],
        &["20.50.2.4"],
    )
}

fn private_chain() -> DnsAnswer {
    answer(&["myregistry.privatelink.azurecr.io"], &["10.1.2.4"])
}

fn ids(f: &[Finding]) -> Vec<&'static str> {
    f.iter().map(|f| f.cause.id).collect()
}

fn evidence(f: &[Finding], id: &str) -> String {
    f.iter()
        .find(|f| f.cause.id == id)
        .map(|f| f.evidence.join(" | "))
        .unwrap_or_default()
}

fn bearer_challenge(host: &str) -> Challenge {
    Challenge {
        scheme: "Bearer".into(),
        realm: Some(format!("https://{host}/oauth2/token")),
        service: Some(host.into()),
        ..Challenge::default()
    }
}

fn acr_error(code: &str, message: &str) -> RegistryError {
    RegistryError {
        code: code.into(),
        message: message.into(),
        ..Default::default()
    }
}

/// What a failure judged without context tells of itself: the operation read from its exchange.
fn situation_without_context(ev: &FailureEvent) -> Situation {
    Situation {
        operation: ev
            .http
            .as_ref()
            .map(|ex| symptom::operation::of_exchange(ex, false)),
        ..Situation::default()
    }
}

/// [`sym`] for an HTTP answer regdoc made itself inside interception.
fn sym_own(ev: &FailureEvent, status: u16, reason: &str) -> String {
    let situation = situation_without_context(ev);
    client_symptom(
        ev,
        Some(symptom::Reply::Http { status, reason }),
        &situation,
    )
    .map(|s| s.text)
    .unwrap_or_default()
}

/// The client's line as a failure record carries it (known words, or the expected ones), for a
/// failure judged without context: the operation is read from the exchange alone, and `reply`
/// is the reason phrase of a refused CONNECT.
fn sym(ev: &FailureEvent, reply: Option<&str>) -> String {
    let situation = situation_without_context(ev);
    client_symptom(ev, reply.map(symptom::Reply::Connect), &situation)
        .map(|s| s.text)
        .unwrap_or_default()
}

fn basic(kind: UsernameKind, claims: Option<Claims>) -> CredentialFacts {
    CredentialFacts {
        scheme: "basic".into(),
        username_kind: Some(kind),
        claims,
        ..Default::default()
    }
}

fn bearer(claims: Claims) -> CredentialFacts {
    CredentialFacts {
        scheme: "bearer".into(),
        username_kind: None,
        claims: Some(claims),
        ..Default::default()
    }
}

/// Access-token claims as ACR issues them (OAUTH sample shape), valid around NOW.
fn access_token(repo: &str, actions: &[&str]) -> Claims {
    let now = NOW as i64;
    Claims {
        exp: Some(now + 3 * 3600),
        nbf: Some(now - 60),
        iat: Some(now - 60),
        aud: Some(serde_json::json!(REG)),
        iss: Some("Azure Container Registry".into()),
        grant_type: Some("access_token".into()),
        access: Some(vec![Access {
            kind: "repository".into(),
            name: repo.into(),
            actions: actions.iter().map(|s| s.to_string()).collect(),
        }]),
        ..Claims::default()
    }
}

fn exchange(method: &str, path_class: &str, status: u16) -> HttpExchange {
    HttpExchange {
        method: method.into(),
        path_class: path_class.into(),
        status,
        user_agent: Some(
            "docker/27.3.1 go/go1.22.7 git-commit/41ca978 kernel/6.8.0 os/linux arch/amd64".into(),
        ),
        ..HttpExchange::default()
    }
}

fn manifest(method: &str, status: u16, repo: &str, tag: &str) -> HttpExchange {
    HttpExchange {
        repository: Some(repo.into()),
        reference: Some(tag.into()),
        ..exchange(method, "manifest", status)
    }
}

fn judge(d: &Diagnoser, host: &str, ex: &HttpExchange) -> Vec<Finding> {
    d.judge_exchange_at(client(), host, 443, &classify(host, &[]), None, ex, now())
}

fn http_event(host: &str, ex: HttpExchange) -> FailureEvent {
    let mut ev = event(host, FailureKind::HttpStatus { status: ex.status });
    ev.http = Some(ex);
    ev
}

/// A token request for `app/web`, the scope a pull asks for.
fn token_request(status: u16) -> HttpExchange {
    HttpExchange {
        requested_scopes: vec!["repository:app/web:pull".into()],
        ..exchange("GET", "token", status)
    }
}
