//! Rule tests with real-shaped inputs: the seed articles' symptoms, the healthy flows that must
//! stay silent, and the secrets that must never reach evidence.

use super::*;
use crate::config::RegistryConfig;
use crate::endpoint::classify;
use crate::http::challenge::Challenge;
use crate::http::credentials::{CredentialFacts, UsernameKind};
use crate::http::jwt::{Access, Claims};
use crate::http::registry_error::RegistryError;
use crate::observe::{
    CertProbe, CertProblem, ClientSignal, DnsAnswer, DnsSource, EarlyClose, FailureKind,
    HostsOrigin, Phase, TlsObservation,
};
use std::collections::BTreeSet;
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

/// [`sym`] for an HTTP answer regdoc made itself inside interception.
fn sym_own(ev: &FailureEvent, status: u16, reason: &str) -> String {
    let situation = Situation {
        operation: ev
            .http
            .as_ref()
            .map(|ex| symptom::operation::of_exchange(ex, false)),
        registry_target: None,
    };
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
    let situation = Situation {
        operation: ev
            .http
            .as_ref()
            .map(|ex| symptom::operation::of_exchange(ex, false)),
        registry_target: None,
    };
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

// --- Network article -------------------------------------------------------------------------

#[test]
fn network_article_dial_tcp_lookup_nxdomain_is_registry_name() {
    let d = diagnoser(vec![]);
    let f = d.diagnose_at(
        &event("myregistri.azurecr.io", FailureKind::DnsNxDomain),
        now(),
    );
    assert_eq!(ids(&f)[0], "registry_name");
    assert_eq!(f[0].confidence, Confidence::High);
    assert!(!ids(&f).contains(&"private_endpoint_dns"));
}

#[test]
fn login_article_registry_name_hints() {
    let h = rules::name_hints("my-registry.azurecr.io");
    assert!(h.iter().any(|s| s.contains("letters and digits")), "{h:?}");
    let h = rules::name_hints("myregistry");
    assert!(
        h.iter().any(|s| s.contains("myregistry.azurecr.io")),
        "{h:?}"
    );
    let h = rules::name_hints("MyRegistry.azurecr.io");
    assert!(h.iter().any(|s| s.contains("upper-case")), "{h:?}");
    let h = rules::name_hints("myregistry.azurecr.com");
    assert!(h.iter().any(|s| s.contains(".azurecr.io")), "{h:?}");
    let h = rules::name_hints("myregistry.azurcr.io");
    assert!(h.iter().any(|s| s.contains(".azurecr.io")), "{h:?}");
    let h = rules::name_hints("abc.azurecr.io");
    assert!(h.iter().any(|s| s.contains("5 to 50")), "{h:?}");
    assert!(rules::name_hints("myregistry.azurecr.io").is_empty());
    assert!(rules::name_hints("registry-1.docker.io").is_empty());
}

#[test]
fn login_article_registry_name_nxdomain_evidence_carries_hints() {
    let d = diagnoser(vec![]);
    let f = d.diagnose_at(
        &event("my-registry.azurecr.io", FailureKind::DnsNxDomain),
        now(),
    );
    assert_eq!(ids(&f)[0], "registry_name");
    assert!(evidence(&f, "registry_name").contains("letters and digits"));
}

#[test]
fn network_article_nxdomain_for_private_registry_offers_private_endpoint_dns() {
    let d = diagnoser(vec![private_registry(REG)]);
    let f = d.diagnose_at(&event(REG, FailureKind::DnsNxDomain), now());
    assert_eq!(ids(&f), vec!["registry_name", "private_endpoint_dns"]);
    assert!(f[0].confidence > f[1].confidence);
    assert!(evidence(&f, "private_endpoint_dns").contains("myregistry.privatelink.azurecr.io"));
}

#[test]
fn network_article_nxdomain_after_the_name_worked_is_not_a_name_problem() {
    let d = diagnoser(vec![private_registry(REG)]);
    let mut ping = exchange("GET", "ping", 401);
    ping.www_authenticate = Some(bearer_challenge(REG));
    assert!(judge(&d, REG, &ping).is_empty());
    let f = d.diagnose_at(&event(REG, FailureKind::DnsNxDomain), later(30));
    assert_eq!(ids(&f), vec!["private_endpoint_dns", "registry_name"]);
    assert!(evidence(&f, "private_endpoint_dns").contains("worked for this client 30s earlier"));
    let d = diagnoser(vec![]);
    assert!(judge(&d, REG, &ping).is_empty());
    let f = d.diagnose_at(&event(REG, FailureKind::DnsNxDomain), later(30));
    assert_eq!(ids(&f), vec!["client_firewall", "registry_name"]);
}

#[test]
fn network_article_private_endpoint_dns_privatelink_zone_without_record() {
    let d = diagnoser(vec![]);
    let mut ev = event(REG, FailureKind::DnsNoAddresses);
    ev.dns = Some(answer(&["myregistry.privatelink.azurecr.io"], &[]));
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f)[0], "private_endpoint_dns");
    assert_eq!(f[0].confidence, Confidence::High);
}

#[test]
fn network_article_private_endpoint_dns_public_answer() {
    let d = diagnoser(vec![private_registry(REG)]);
    let mut ev = event(REG, FailureKind::ConnectTimeout);
    ev.dns = Some(public_privatelink_chain());
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f)[0], "private_endpoint_dns", "{:?}", ids(&f));
    let e = evidence(&f, "private_endpoint_dns");
    assert!(e.contains("20.50.2.4"), "{e}");
    assert!(e.contains("cloudapp.azure.com"), "{e}");
    // The same answer on a successful lookup is reported too.
    let ep = classify(REG, &[]);
    let r = d.judge_resolution(REG, &ep, &public_privatelink_chain());
    assert_eq!(r.map(|f| f.cause.id), Some("private_endpoint_dns"));
}

#[test]
fn network_article_private_endpoint_dns_outside_expected_cidrs() {
    let mut reg = private_registry(REG);
    reg.expected_cidrs = vec!["10.10.0.0/16".parse().unwrap()];
    let d = diagnoser(vec![reg]);
    let ep = classify(REG, &[]);
    let wrong = answer(&["myregistry.privatelink.azurecr.io"], &["10.20.0.5"]);
    let f = d.judge_resolution(REG, &ep, &wrong).expect("finding");
    assert!(f.evidence.join(" ").contains("10.10.0.0/16"));
    let right = answer(&["myregistry.privatelink.azurecr.io"], &["10.10.0.5"]);
    assert!(d.judge_resolution(REG, &ep, &right).is_none());
}

#[test]
fn private_answer_for_private_registry_is_quiet() {
    let d = diagnoser(vec![private_registry(REG)]);
    let ep = classify(REG, &[]);
    assert!(d.judge_resolution(REG, &ep, &private_chain()).is_none());
    // Data endpoints of the configured registry are checked by registry name.
    let dep = classify(DATA, &[]);
    let public = answer(
        &["myregistry.westeurope.data.privatelink.azurecr.io"],
        &["20.60.1.1"],
    );
    assert!(d.judge_resolution(DATA, &dep, &public).is_some());
    // Unconfigured registries are never judged on their answer.
    let other = classify("other.azurecr.io", &[]);
    assert!(d
        .judge_resolution("other.azurecr.io", &other, &public_privatelink_chain())
        .is_none());
}

#[test]
fn network_article_host_is_not_reachable_private_endpoint() {
    let d = diagnoser(vec![]);
    for kind in [FailureKind::ConnectTimeout, FailureKind::ConnectUnreachable] {
        let mut ev = event(REG, kind);
        ev.dns = Some(private_chain());
        let f = d.diagnose_at(&ev, now());
        assert_eq!(ids(&f)[0], "private_endpoint_unreachable");
        assert_eq!(f[0].confidence, Confidence::High);
        assert!(evidence(&f, "private_endpoint_unreachable").contains("10.1.2.4"));
    }
}

#[test]
fn network_article_client_firewall_blocks_rest_connect() {
    let d = diagnoser(vec![]);
    for kind in [
        FailureKind::ConnectTimeout,
        FailureKind::ConnectRefused,
        FailureKind::ConnectUnreachable,
    ] {
        let mut ev = event(REG, kind);
        ev.dns = Some(answer(
            &["r0403weu-3.westeurope.cloudapp.azure.com"],
            &["20.50.2.4"],
        ));
        let f = d.diagnose_at(&ev, now());
        assert_eq!(ids(&f), vec!["client_firewall"]);
        assert_eq!(f[0].confidence, Confidence::High);
        assert!(evidence(&f, "client_firewall").contains("allow myregistry.azurecr.io:443"));
    }
}

#[test]
fn network_article_client_timeout_exceeded_while_awaiting_headers() {
    let d = diagnoser(vec![]);
    let ev = event(REG, FailureKind::ResponseHeadersTimeout);
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["registry_error", "client_firewall"]);
    let s = sym(&ev, None);
    assert!(
        s.contains("Client.Timeout exceeded while awaiting headers"),
        "{s}"
    );
    let ev = event(
        "login.microsoftonline.com",
        FailureKind::ResponseHeadersTimeout,
    );
    assert_eq!(ids(&d.diagnose_at(&ev, now())), vec!["client_firewall"]);
}

// --- Addresses pinned in /etc/hosts ----------------------------------------------------------

/// What the resolver answers for a name found on line 3 (and its IPv6 address on line 4).
fn pinned(addrs: &[&str]) -> DnsAnswer {
    DnsAnswer {
        addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        source: DnsSource::HostsFile,
        hosts_file: Some(HostsOrigin {
            path: "/etc/hosts".into(),
            lines: (3..3 + addrs.len()).collect(),
        }),
        ..DnsAnswer::default()
    }
}

const STALE: &str = "an address pinned by hand goes stale when the endpoint's address changes";

#[test]
fn a_pinned_address_that_refuses_says_it_came_from_the_hosts_file() {
    let d = diagnoser(vec![]);
    let mut ev = event(REG, FailureKind::ConnectRefused);
    ev.dns = Some(pinned(&["10.1.2.3", "fd00::7"]));
    let f = d.diagnose_at(&ev, now());
    // The cause is what the connect rules say; the hosts file is evidence, second sentence.
    assert_eq!(f[0].cause.id, "private_endpoint_unreachable");
    assert_eq!(
        f[0].evidence[1],
        format!(
            "{REG} came from /etc/hosts, not DNS: 10.1.2.3 (line 3), fd00::7 (line 4); {STALE}: compare it with what DNS answers (nslookup skips /etc/hosts) and update or remove the line"
        )
    );
    assert!(f[0].evidence[0].starts_with("TCP connect to 10.1.2.3:443 was refused"));

    // The same failure on a DNS answer says nothing of the kind.
    ev.dns = Some(answer(&[], &["10.1.2.3"]));
    let f = d.diagnose_at(&ev, now());
    assert!(f
        .iter()
        .all(|f| f.evidence.iter().all(|e| !e.contains(STALE))));
}

#[test]
fn pinned_evidence_on_connect_and_tls_failures_only() {
    let on_path = [
        FailureKind::ConnectTimeout,
        FailureKind::ConnectUnreachable,
        FailureKind::ConnectError,
        FailureKind::TlsServerSilent,
        FailureKind::TlsServerClosed,
        FailureKind::TlsNotTls,
        FailureKind::TlsAlert {
            level: "fatal".into(),
            description: "handshake_failure".into(),
        },
        FailureKind::TlsUpstreamCertificate {
            problem: CertProblem::NameMismatch,
            detail: "certificate is for another name".into(),
        },
    ];
    let d = diagnoser(vec![]);
    for kind in on_path {
        let mut ev = event(REG, kind.clone());
        ev.dns = Some(pinned(&["20.1.2.3"]));
        let sentence = rules::pinned_address(&ev).unwrap_or_default();
        assert!(
            sentence.contains("20.1.2.3 (line 3)"),
            "{kind:?}: {sentence}"
        );
        let f = d.diagnose_at(&ev, now());
        assert!(!f.is_empty(), "{kind:?}");
        assert!(
            f.iter().all(|f| f.evidence.contains(&sentence)),
            "{kind:?}: {f:#?}"
        );
    }
    for kind in [
        FailureKind::HttpStatus { status: 401 },
        FailureKind::ResponseHeadersTimeout,
        FailureKind::UpstreamProxyUnreachable,
    ] {
        let mut ev = event(REG, kind.clone());
        ev.dns = Some(pinned(&["20.1.2.3"]));
        assert_eq!(rules::pinned_address(&ev), None, "{kind:?}");
    }
    // No answer, or an answer without its lines: nothing to say.
    let ev = event(REG, FailureKind::ConnectRefused);
    assert_eq!(rules::pinned_address(&ev), None);
    let mut ev = event(REG, FailureKind::ConnectRefused);
    ev.dns = Some(DnsAnswer {
        hosts_file: None,
        ..pinned(&["20.1.2.3"])
    });
    assert_eq!(rules::pinned_address(&ev), None);
}

#[test]
fn a_pinned_public_address_for_a_private_registry_names_the_line() {
    let d = diagnoser(vec![private_registry(REG)]);
    let f = d
        .judge_resolution(REG, &classify(REG, &[]), &pinned(&["20.50.2.4"]))
        .expect("a public address for a private registry is a finding");
    assert_eq!(f.cause.id, "private_endpoint_dns");
    assert!(
        f.evidence[0].starts_with("answer (hosts_file): "),
        "{:?}",
        f.evidence
    );
    assert!(
        f.evidence[1].contains("20.50.2.4 (line 3)"),
        "{:?}",
        f.evidence
    );
}

#[test]
fn an_answer_through_the_search_list_names_the_name_that_answered() {
    let d = diagnoser(vec![]);
    let mut ev = event(REG, FailureKind::ConnectTimeout);
    ev.dns = Some(DnsAnswer {
        name: Some("myregistry.azurecr.io.corp.example".into()),
        ..answer(&["edge.corp.example"], &["192.0.2.7"])
    });
    let f = d.diagnose_at(&ev, now());
    assert!(
        f[0].evidence.iter().any(|e| e.starts_with(
            "answer (dns): myregistry.azurecr.io (as myregistry.azurecr.io.corp.example) -> edge.corp.example"
        )),
        "{:?}",
        f[0].evidence
    );
}

// --- A server whose connection ends before any response headers ------------------------------

/// Intercepted `GET /v2/` (TLS with the server's verified certificate up) whose connection ended
/// before response headers: what `Conn::handle` records.
fn closed_before_headers(host: &str, how: EarlyClose) -> FailureEvent {
    let mut ev = event(host, FailureKind::UpstreamClosedBeforeHeaders { how });
    ev.error = format!(
        "the server's connection was {} before any response headers: connection error: peer closed connection without sending TLS close_notify",
        how.describe()
    );
    ev.tls = Some(TlsObservation {
        sni: Some(host.into()),
        alpn: vec!["http/1.1".into()],
        client_versions: vec!["TLS1.3".into(), "TLS1.2".into()],
        version: Some("TLS1.3".into()),
        cipher: Some("TLS13_AES_128_GCM_SHA256".into()),
        ..TlsObservation::default()
    });
    ev.http = Some(exchange("GET", "ping", 0));
    ev
}

#[test]
fn closed_before_headers_over_verified_tls_is_the_registry_side_and_claims_no_status() {
    let d = diagnoser(vec![]);
    for how in [EarlyClose::Closed, EarlyClose::Reset, EarlyClose::Error] {
        let ev = closed_before_headers(REG, how);
        let f = d.diagnose_at(&ev, now());
        assert_eq!(
            ids(&f),
            vec!["registry_error", "client_firewall"],
            "{how:?}"
        );
        assert_eq!(f[0].confidence, Confidence::Medium);
        let e = evidence(&f, "registry_error");
        assert!(
            e.contains(&format!(
                "the connection to myregistry.azurecr.io:443 was {} before any response headers to the request (GET ping): no HTTP status came from the server",
                how.describe()
            )),
            "{e}"
        );
        assert!(e.contains("verified certificate was up"), "{e}");
        // Nothing says the registry answered, or names a status it never sent.
        for fd in &f {
            for line in &fd.evidence {
                assert!(!line.contains("answered"), "{line}");
                assert!(!line.contains("502"), "{line}");
            }
        }
    }
}

#[test]
fn closed_before_headers_plain_http_reset_points_at_the_path() {
    let d = diagnoser(vec![]);
    // Plain forwarding: no TLS, a device on the path can read the request and reset it.
    let mut ev = closed_before_headers("registry.internal", EarlyClose::Reset);
    ev.tls = None;
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["client_firewall", "registry_error"]);
    assert!(evidence(&f, "client_firewall").contains("over plain HTTP"));
    // A plain close over HTTP is read as the server's side.
    let mut ev = closed_before_headers("registry.internal", EarlyClose::Closed);
    ev.tls = None;
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["registry_error", "client_firewall"]);
}

#[test]
fn closed_before_headers_on_a_data_endpoint_is_the_data_path() {
    let d = diagnoser(vec![]);
    let f = d.diagnose_at(&closed_before_headers(DATA, EarlyClose::Reset), now());
    assert_eq!(ids(&f), vec!["data_endpoint_firewall", "registry_error"]);
}

#[test]
fn closed_before_headers_symptom_is_regdocs_own_502() {
    let ev = closed_before_headers(REG, EarlyClose::Closed);
    let reason =
        "regdoc registry_error: the server's connection was closed before any response headers";
    // On the ping only a login reads the status, with Go's text: what regdoc expects.
    assert_eq!(
        sym_own(&ev, 502, reason),
        "Error response from daemon: login attempt to https://myregistry.azurecr.io/v2/ failed with status: 502 Bad Gateway"
    );
    let mut ev = ev;
    ev.http = Some(manifest("GET", 0, "app/web", "1.0"));
    assert_eq!(
        sym_own(&ev, 502, reason),
        format!("Error response from daemon: received unexpected HTTP status: 502 {reason}")
    );
    // HTTP/2 carries no reason phrase: Go prints the canonical one.
    assert_eq!(
        sym_own(&ev, 502, ""),
        "Error response from daemon: received unexpected HTTP status: 502 Bad Gateway"
    );
}

#[test]
fn network_article_data_endpoint_firewall_after_rest_success() {
    let d = diagnoser(vec![]);
    // The healthy pull so far: ping challenge, then a 307 from the blob URL to the data endpoint.
    let mut ping = exchange("GET", "ping", 401);
    ping.www_authenticate = Some(bearer_challenge(REG));
    assert!(judge(&d, REG, &ping).is_empty());
    let mut blob = exchange("GET", "blob", 307);
    blob.repository = Some("app/web".into());
    blob.location = Some(format!(
        "https://{DATA}/blobs/sha256:ab12?se=2026-11-23T19%3A00Z&sig=ZmFrZXNpZw%3D%3D&sp=r"
    ));
    blob.auth = Some(bearer(access_token("app/web", &["pull"])));
    assert!(judge(&d, REG, &blob).is_empty());

    for kind in [
        FailureKind::ConnectTimeout,
        FailureKind::TlsServerClosed,
        FailureKind::TlsServerSilent,
    ] {
        let mut ev = event(DATA, kind);
        ev.dns = Some(answer(&[], &["20.60.100.5"]));
        let f = d.diagnose_at(&ev, later(20));
        assert_eq!(ids(&f)[0], "data_endpoint_firewall", "{:?}", ev.kind);
        assert_eq!(f[0].confidence, Confidence::High);
        let e = evidence(&f, "data_endpoint_firewall");
        assert!(e.contains(&format!("allow {DATA}:443")), "{e}");
        assert!(e.contains("region westeurope"), "{e}");
        assert!(e.contains("worked for this client 20s earlier"), "{e}");
        assert!(!e.contains("sig="), "{e}");
    }
}

#[test]
fn network_article_data_endpoint_without_context_is_still_data_endpoint_firewall() {
    let d = diagnoser(vec![]);
    let f = d.diagnose_at(&event(DATA, FailureKind::ConnectTimeout), now());
    assert_eq!(ids(&f), vec!["data_endpoint_firewall"]);
    assert_eq!(f[0].confidence, Confidence::Medium);
}

#[test]
fn network_article_blob_storage_redirect_target_blocked() {
    let d = diagnoser(vec![]);
    let blob_host = "weumyregistry123.blob.core.windows.net";
    let mut blob = exchange("GET", "blob", 307);
    blob.location = Some(format!(
        "https://{blob_host}/abc/def?sv=2019-02-02&sr=b&sig=c2lnbmF0dXJlMTIzNDU2Nzg5MA%3D%3D&sp=r"
    ));
    assert!(judge(&d, REG, &blob).is_empty());
    let f = d.diagnose_at(&event(blob_host, FailureKind::TlsServerClosed), later(5));
    assert_eq!(ids(&f)[0], "data_endpoint_firewall");
    assert_eq!(f[0].confidence, Confidence::High);
    let e = evidence(&f, "data_endpoint_firewall");
    assert!(e.contains("redirected a client here"), "{e}");
}

#[test]
fn network_article_geo_replica_region_missing_from_firewall() {
    let reg = RegistryConfig {
        host: REG.into(),
        private_endpoint: false,
        expected_cidrs: Vec::new(),
        regions: vec!["westeurope".into()],
    };
    let d = diagnoser(vec![reg]);
    let eus = classify("myregistry.eastus.data.azurecr.io", &[]);
    d.note_success(SuccessNote {
        client: client(),
        host: DATA.into(),
        endpoint: classify(DATA, &[]),
        at: now(),
        http: None,
    });
    let mut ev = event(
        "myregistry.eastus.data.azurecr.io",
        FailureKind::ConnectTimeout,
    );
    ev.endpoint = eus;
    let f = d.diagnose_at(&ev, later(1));
    let e = evidence(&f, "data_endpoint_firewall");
    assert!(
        e.contains("region eastus is not among the regions configured"),
        "{e}"
    );
    assert!(
        e.contains(&format!(
            "other data hosts of this registry worked: {DATA} (westeurope)"
        )),
        "{e}"
    );
}

#[test]
fn network_article_data_endpoint_dns_for_private_registry() {
    let d = diagnoser(vec![private_registry(REG)]);
    let f = d.diagnose_at(&event(DATA, FailureKind::DnsNxDomain), now());
    assert_eq!(ids(&f)[0], "private_endpoint_dns");
    assert!(evidence(&f, "private_endpoint_dns")
        .contains("myregistry.westeurope.data.privatelink.azurecr.io"));
}

#[test]
fn network_article_data_endpoint_dns_public_registry_after_rest() {
    let d = diagnoser(vec![]);
    let mut ping = exchange("GET", "ping", 401);
    ping.www_authenticate = Some(bearer_challenge(REG));
    assert!(judge(&d, REG, &ping).is_empty());
    let f = d.diagnose_at(&event(DATA, FailureKind::DnsNxDomain), later(3));
    assert_eq!(
        ids(&f),
        vec!["data_endpoint_firewall", "private_endpoint_dns"]
    );
}

#[test]
fn network_article_proxyconnect_tcp_eof_https_proxy_scheme() {
    let d = diagnoser(vec![]);
    let ev = event(REG, FailureKind::TlsInsteadOfHttp);
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["proxy_scheme_mismatch", "docker_config"]);
    assert_eq!(
        sym(&ev, None),
        "Get \"https://myregistry.azurecr.io/v2/\": proxyconnect tcp: EOF"
    );
    assert!(sym(&ev, Some("Bad Request"))
        .ends_with("proxyconnect tcp: tls: first record does not look like a TLS handshake"));
}

#[test]
fn network_article_login_attempt_failed_403_public_access_rules() {
    let d = diagnoser(vec![]);
    let mut ping = exchange("GET", "ping", 403);
    ping.registry_errors = vec![acr_error(
        "DENIED",
        "client with IP '203.0.113.7' is not allowed access. Refer https://aka.ms/acr/firewall to grant access.",
    )];
    let f = judge(&d, REG, &ping);
    assert_eq!(ids(&f), vec!["public_access_rules"]);
    assert_eq!(f[0].confidence, Confidence::High);
    assert!(evidence(&f, "public_access_rules").contains("203.0.113.7"));
    let ev = http_event(REG, ping);
    assert_eq!(
        sym(&ev, None),
        "Error response from daemon: login attempt to https://myregistry.azurecr.io/v2/ failed with status: 403 Forbidden"
    );
}

#[test]
fn network_article_public_access_rules_on_manifest_pull() {
    let d = diagnoser(vec![]);
    let mut m = manifest("HEAD", 403, "app/web", "1.0");
    m.auth = Some(bearer(access_token("app/web", &["pull"])));
    m.registry_errors = vec![acr_error(
        "DENIED",
        "client with IP '2001:db8::7' is not allowed access. Refer https://aka.ms/acr/firewall to grant access.",
    )];
    let f = judge(&d, REG, &m);
    assert_eq!(ids(&f)[0], "public_access_rules");
    assert!(evidence(&f, "public_access_rules").contains("2001:db8::7"));
    let s = sym(&http_event(REG, m), None);
    assert_eq!(
        s,
        "Error response from daemon: pull access denied for myregistry.azurecr.io/app/web, repository does not exist or may require 'docker login': denied: client with IP '2001:db8::7' is not allowed access. Refer https://aka.ms/acr/firewall to grant access."
    );
}

#[test]
fn denied_client_ip_extraction() {
    assert_eq!(
        rules::denied_client_ip("client with IP '172.214.169.102' is not allowed access."),
        Some("172.214.169.102".parse().unwrap())
    );
    assert_eq!(
        rules::denied_client_ip("client with IP 'junk' is not"),
        None
    );
    assert_eq!(rules::denied_client_ip("requested access is denied"), None);
}

#[test]
fn network_article_ping_403_without_message_is_public_access_rules() {
    let d = diagnoser(vec![]);
    let f = judge(&d, REG, &exchange("GET", "ping", 403));
    assert_eq!(ids(&f), vec!["public_access_rules", "not_authorized"]);
}

#[test]
fn network_article_upstream_proxy_refuses_connect() {
    let d = diagnoser(vec![]);
    let mut ev = event(
        REG,
        FailureKind::UpstreamProxyStatus {
            status: 403,
            reason: "Forbidden".into(),
        },
    );
    ev.upstream_proxy = Some("proxy.corp.example:8080".into());
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["upstream_proxy"]);
    assert!(evidence(&f, "upstream_proxy").contains("proxy.corp.example:8080"));

    let ev = event(
        REG,
        FailureKind::UpstreamProxyStatus {
            status: 407,
            reason: "Proxy Authentication Required".into(),
        },
    );
    let f = d.diagnose_at(&ev, now());
    assert!(evidence(&f, "upstream_proxy").contains("credentials"));

    for kind in [
        FailureKind::UpstreamProxyClosed,
        FailureKind::UpstreamProxyTimeout,
        FailureKind::UpstreamProxyUnreachable,
    ] {
        assert_eq!(
            ids(&d.diagnose_at(&event(REG, kind), now())),
            vec!["upstream_proxy"]
        );
    }
}

#[test]
fn network_article_upstream_proxy_allows_rest_but_not_data_endpoint() {
    let d = diagnoser(vec![]);
    d.note_success(SuccessNote {
        client: client(),
        host: REG.into(),
        endpoint: classify(REG, &[]),
        at: now(),
        http: None,
    });
    let ev = event(
        DATA,
        FailureKind::UpstreamProxyStatus {
            status: 403,
            reason: "Forbidden".into(),
        },
    );
    let f = d.diagnose_at(&ev, later(2));
    assert_eq!(ids(&f), vec!["upstream_proxy", "data_endpoint_firewall"]);
}

#[test]
fn tls_silent_server_is_client_firewall_or_private_endpoint() {
    let d = diagnoser(vec![]);
    let mut ev = event(REG, FailureKind::TlsServerSilent);
    ev.dns = Some(answer(&[], &["20.50.2.4"]));
    assert_eq!(ids(&d.diagnose_at(&ev, now()))[0], "client_firewall");
    ev.dns = Some(private_chain());
    let f = d.diagnose_at(&ev, now());
    assert_eq!(
        ids(&f),
        vec!["private_endpoint_unreachable", "client_firewall"]
    );
    // regdoc's own deadline closed the tunnel first: the client read end of stream.
    let s = sym(&ev, None);
    assert!(s.ends_with("\": EOF"), "{s}");
    // The client's own handshake timeout fired first.
    ev.error = format!(
        "server did not answer; {} after 10000 ms",
        crate::observe::CLIENT_GAVE_UP
    );
    ev.client_gave_up = true;
    let s = sym(&ev, None);
    assert!(s.ends_with("net/http: TLS handshake timeout"), "{s}");
}

#[test]
fn tls_not_tls_answer_is_a_middlebox() {
    let d = diagnoser(vec![]);
    let f = d.diagnose_at(&event(REG, FailureKind::TlsNotTls), now());
    assert_eq!(ids(&f), vec!["client_firewall", "tls_interception"]);
}

#[test]
fn tls_interception_alert_and_unknown_issuer() {
    let d = diagnoser(vec![]);
    let ev = event(
        REG,
        FailureKind::TlsAlert {
            level: "fatal".into(),
            description: "handshake_failure".into(),
        },
    );
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["tls_interception"]);
    assert!(sym(&ev, None).ends_with("remote error: tls: handshake failure"));

    let ev = event(
        REG,
        FailureKind::TlsUpstreamCertificate {
            problem: CertProblem::UnknownIssuer,
            detail: "issuer CN=Corp Inspection CA".into(),
        },
    );
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["tls_interception"]);
    assert_eq!(f[0].confidence, Confidence::High);
    assert!(sym(&ev, None).contains("certificate signed by unknown authority"));
}

#[test]
fn tls_alert_protocol_version_and_unrecognized_name() {
    let d = diagnoser(vec![]);
    let mut ev = event(
        REG,
        FailureKind::TlsAlert {
            level: "fatal".into(),
            description: "protocol_version".into(),
        },
    );
    ev.tls = Some(TlsObservation {
        client_versions: vec!["TLS1.0".into()],
        ..TlsObservation::default()
    });
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f)[0], "docker_config");
    assert!(evidence(&f, "docker_config").contains("TLS1.0"));
    let ev = event(
        REG,
        FailureKind::TlsAlert {
            level: "fatal".into(),
            description: "unrecognized_name".into(),
        },
    );
    assert_eq!(ids(&d.diagnose_at(&ev, now()))[0], "registry_name");
}

#[test]
fn clock_skew_from_expired_certificate_and_date_header() {
    let d = diagnoser(vec![]);
    let mut ev = event(
        REG,
        FailureKind::TlsUpstreamCertificate {
            problem: CertProblem::Expired,
            detail: "certificate expired".into(),
        },
    );
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["clock_skew", "tls_interception"]);
    assert_eq!(f[0].confidence, Confidence::Medium);
    ev.http = Some(HttpExchange {
        date_skew_secs: Some(-4000),
        ..HttpExchange::default()
    });
    let f = d.diagnose_at(&ev, now());
    assert_eq!(f[0].confidence, Confidence::High);
    assert!(evidence(&f, "clock_skew").contains("-4000"));
}

#[test]
fn intercept_ca_not_trusted_by_client() {
    let d = diagnoser(vec![]);
    let ev = event(
        REG,
        FailureKind::TlsClientRejected {
            detail: "received fatal alert: UnknownCA".into(),
        },
    );
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["intercept_ca_untrusted"]);
    assert!(evidence(&f, "intercept_ca_untrusted")
        .contains("/etc/docker/certs.d/myregistry.azurecr.io/ca.crt"));
}

// --- Login article ---------------------------------------------------------------------------

fn token_request(status: u16) -> HttpExchange {
    HttpExchange {
        requested_scopes: vec!["repository:app/web:pull".into()],
        ..exchange("GET", "token", status)
    }
}

#[test]
fn login_article_invalid_credentials_application_not_registered() {
    let d = diagnoser(vec![]);
    // `docker login` asks for a token with no scope; ACR's token service answers in the
    // `details` shape.
    let mut ex = exchange("GET", "token", 401);
    ex.registry_errors = crate::http::registry_error::parse(
        br#"{"details":"Application not registered with AAD."}"#,
        &crate::redact::Redactor::default(),
    );
    ex.auth = Some(basic(UsernameKind::ServicePrincipal, None));
    let f = judge(&d, REG, &ex);
    assert_eq!(ids(&f), vec!["invalid_credentials"]);
    assert_eq!(f[0].confidence, Confidence::High);
    assert!(evidence(&f, "invalid_credentials").contains("service principal application id"));
    let s = sym(&http_event(REG, ex), None);
    assert_eq!(
        s,
        "Error response from daemon: Get \"https://myregistry.azurecr.io/v2/\": unauthorized: Application not registered with AAD."
    );
}

#[test]
fn login_article_invalid_credentials_unauthorized_at_token_endpoint() {
    let d = diagnoser(vec![]);
    let mut ex = token_request(401);
    ex.registry_errors = vec![acr_error(
        "UNAUTHORIZED",
        "authentication required, visit https://aka.ms/acr/authorization for more information.",
    )];
    ex.auth = Some(basic(UsernameKind::Other, None));
    let f = judge(&d, REG, &ex);
    assert_eq!(ids(&f), vec!["invalid_credentials", "expired_credentials"]);
    assert_eq!(f[1].confidence, Confidence::Low);
    let s = sym(&http_event(REG, ex), None);
    assert!(s.ends_with(
        "unauthorized: authentication required, visit https://aka.ms/acr/authorization for more information."
    ));
}

#[test]
fn login_article_anonymous_token_request_refused_needs_login() {
    let d = diagnoser(vec![]);
    let f = judge(&d, REG, &token_request(401));
    assert_eq!(ids(&f), vec!["invalid_credentials"]);
    assert!(evidence(&f, "invalid_credentials").contains("docker login"));
}

#[test]
fn login_article_expired_credentials_presented_token_exp_past() {
    let d = diagnoser(vec![]);
    let mut refresh = access_token("app/web", &["pull"]);
    refresh.grant_type = Some("refresh_token".into());
    refresh.iat = Some(NOW as i64 - 4 * 3600);
    refresh.exp = Some(NOW as i64 - 3600);
    let mut ex = exchange("POST", "token", 401);
    ex.auth = Some(basic(UsernameKind::NullGuidToken, Some(refresh)));
    let f = judge(&d, REG, &ex);
    assert_eq!(ids(&f), vec!["expired_credentials"]);
    let e = evidence(&f, "expired_credentials");
    assert!(e.contains("expired at 2027-01-15T07:00:00Z"), "{e}");
    assert!(e.contains("3600 s before"), "{e}");
}

#[test]
fn login_article_expired_bearer_on_manifest() {
    let d = diagnoser(vec![]);
    let mut claims = access_token("app/web", &["pull"]);
    claims.exp = Some(NOW as i64 - 10);
    let mut m = manifest("GET", 401, "app/web", "1.0");
    m.auth = Some(bearer(claims));
    m.www_authenticate = Some(bearer_challenge(REG));
    assert_eq!(ids(&judge(&d, REG, &m)), vec!["expired_credentials"]);
}

#[test]
fn login_article_expose_token_null_guid_with_non_jwt_password() {
    let d = diagnoser(vec![]);
    let mut ex = token_request(401);
    ex.auth = Some(basic(UsernameKind::NullGuidToken, None));
    let f = judge(&d, REG, &ex);
    assert_eq!(ids(&f), vec!["invalid_credentials"]);
    assert!(evidence(&f, "invalid_credentials").contains("--expose-token"));
}

#[test]
fn login_article_expired_credentials_exchange_refuses_entra_token() {
    let d = diagnoser(vec![]);
    let mut ex = exchange("POST", "exchange", 401);
    ex.registry_errors = vec![acr_error(
        "UNAUTHORIZED",
        "authentication required, visit https://aka.ms/acr/authorization for more information.",
    )];
    let f = judge(&d, REG, &ex);
    assert_eq!(ids(&f), vec!["expired_credentials", "invalid_credentials"]);
    assert!(evidence(&f, "expired_credentials").contains("az login"));
}

#[test]
fn login_article_expired_refresh_token_known_from_context() {
    let d = diagnoser(vec![]);
    let mut issued = exchange("POST", "exchange", 200);
    let mut refresh = access_token("app/web", &["pull"]);
    refresh.grant_type = Some("refresh_token".into());
    refresh.exp = Some(NOW as i64 + 600);
    issued.issued_token = Some(refresh);
    assert!(judge(&d, REG, &issued).is_empty());
    // An hour later the daemon trades the refresh token (in the form body) and is refused.
    let ex = exchange("POST", "token", 401);
    let f = d.judge_exchange_at(
        client(),
        REG,
        443,
        &classify(REG, &[]),
        None,
        &ex,
        later(3600),
    );
    assert_eq!(ids(&f), vec!["expired_credentials"]);
    assert_eq!(f[0].confidence, Confidence::High);
    assert!(evidence(&f, "expired_credentials").contains("refresh token expired"));
}

// --- Tokens without `exp`: their age against `diagnosis.token_lifetime` ----------------------

const THREE_HOURS: u64 = 3 * 3600;

/// An ACR-shaped access token for `app/web` without `exp`, issued `ago` seconds before NOW
/// (`None`: without `iat` either).
fn token_without_exp(ago: Option<u64>) -> Claims {
    Claims {
        exp: None,
        nbf: None,
        iat: ago.map(|a| NOW as i64 - a as i64),
        ..access_token("app/web", &["pull"])
    }
}

/// `GET /v2/app/web/manifests/1.0` answered 401 with the usual Bearer challenge.
fn manifest_401(auth: CredentialFacts) -> HttpExchange {
    let mut m = manifest("GET", 401, "app/web", "1.0");
    m.auth = Some(auth);
    m.www_authenticate = Some(bearer_challenge(REG));
    m.registry_errors = vec![acr_error(
        "UNAUTHORIZED",
        "authentication required, visit https://aka.ms/acr/authorization for more information.",
    )];
    m
}

fn opaque_bearer() -> CredentialFacts {
    CredentialFacts {
        scheme: "bearer".into(),
        username_kind: None,
        claims: None,
        ..Default::default()
    }
}

/// A token endpoint reply issuing `claims`, judged at `at` so the context remembers it.
fn issue(d: &Diagnoser, claims: Claims, at: SystemTime) {
    let mut tok = token_request(200);
    tok.auth = Some(basic(UsernameKind::ServicePrincipal, None));
    tok.issued_token = Some(claims);
    assert!(d
        .judge_exchange_at(client(), REG, 443, &classify(REG, &[]), None, &tok, at)
        .is_empty());
}

#[test]
fn token_lifetime_bearer_without_exp_older_than_lifetime_by_iat_is_expired() {
    let d = diagnoser(vec![]);
    let m = manifest_401(bearer(token_without_exp(Some(THREE_HOURS + 600))));
    let f = judge(&d, REG, &m);
    assert_eq!(ids(&f)[0], "expired_credentials", "{f:?}");
    assert_eq!(f[0].confidence, Confidence::Medium);
    let e = evidence(&f, "expired_credentials");
    assert!(e.contains("carries no exp claim"), "{e}");
    assert!(
        e.contains("issued at 2027-01-15T04:50:00Z (by its iat claim)"),
        "{e}"
    );
    assert!(e.contains("3h old (11400 s)"), "{e}");
    assert!(e.contains("the 3h (10800 s) lifetime"), "{e}");
    // The same refusal seen as a failure record names the same cause.
    let ev = http_event(REG, m);
    assert_eq!(ids(&d.diagnose_at(&ev, now()))[0], "expired_credentials");
}

#[test]
fn token_lifetime_young_token_without_exp_is_not_expired() {
    let d = diagnoser(vec![]);
    for ago in [3600, THREE_HOURS] {
        let f = judge(&d, REG, &manifest_401(bearer(token_without_exp(Some(ago)))));
        assert!(!ids(&f).contains(&"expired_credentials"), "{ago}: {f:?}");
        // It still names a cause: the token grants pull, so ACR's 401 means a missing tag.
        assert_eq!(ids(&f)[0], "not_found", "{ago}: {f:?}");
    }
}

#[test]
fn token_lifetime_without_iat_or_context_the_age_is_unknown() {
    let d = diagnoser(vec![]);
    let f = judge(&d, REG, &manifest_401(bearer(token_without_exp(None))));
    assert!(
        !evidence(&f, "expired_credentials").contains("carries no exp"),
        "{f:?}"
    );
    assert_eq!(ids(&f)[0], "not_found", "{f:?}");
}

#[test]
fn token_lifetime_follows_the_configuration() {
    let mut cfg = Config::default();
    cfg.diagnosis.token_lifetime = Duration::from_secs(3600);
    let d = Diagnoser::new(&cfg);
    let f = judge(
        &d,
        REG,
        &manifest_401(bearer(token_without_exp(Some(5400)))),
    );
    assert_eq!(ids(&f)[0], "expired_credentials", "{f:?}");
    let e = evidence(&f, "expired_credentials");
    assert!(e.contains("90m old (5400 s)"), "{e}");
    assert!(e.contains("the 60m (3600 s) lifetime"), "{e}");
    // The default 3 hours finds the same token young.
    let f = judge(
        &diagnoser(vec![]),
        REG,
        &manifest_401(bearer(token_without_exp(Some(5400)))),
    );
    assert!(!ids(&f).contains(&"expired_credentials"), "{f:?}");
}

#[test]
fn token_lifetime_issue_time_seen_by_regdoc_dates_a_token_without_iat() {
    let d = diagnoser(vec![]);
    let claims = token_without_exp(None);
    issue(&d, claims.clone(), now());
    let m = manifest_401(bearer(claims));
    let at = |s| d.judge_exchange_at(client(), REG, 443, &classify(REG, &[]), None, &m, later(s));
    let young = at(THREE_HOURS);
    assert!(!ids(&young).contains(&"expired_credentials"), "{young:?}");
    let old = at(THREE_HOURS + 1);
    assert_eq!(ids(&old)[0], "expired_credentials", "{old:?}");
    let e = evidence(&old, "expired_credentials");
    assert!(e.contains("when regdoc saw the registry issue it"), "{e}");
    assert!(e.contains("3h old (10801 s)"), "{e}");
}

#[test]
fn token_lifetime_other_claims_than_those_seen_issued_are_not_dated_by_them() {
    let d = diagnoser(vec![]);
    issue(&d, token_without_exp(None), now());
    // Another token (other grants) that regdoc never saw issued: its age is unknown.
    let other = Claims {
        access: Some(vec![Access {
            kind: "repository".into(),
            name: "app/web".into(),
            actions: vec!["pull".into(), "push".into()],
        }]),
        ..token_without_exp(None)
    };
    let m = manifest_401(bearer(other));
    let f = d.judge_exchange_at(
        client(),
        REG,
        443,
        &classify(REG, &[]),
        None,
        &m,
        later(5 * 3600),
    );
    assert_ne!(ids(&f)[0], "expired_credentials", "{f:?}");
    assert!(
        !evidence(&f, "expired_credentials").contains("carries no exp"),
        "{f:?}"
    );
}

#[test]
fn token_lifetime_opaque_bearer_is_dated_by_the_last_issued_token() {
    let d = diagnoser(vec![]);
    issue(&d, token_without_exp(Some(0)), now());
    let m = manifest_401(opaque_bearer());
    let f = d.judge_exchange_at(
        client(),
        REG,
        443,
        &classify(REG, &[]),
        None,
        &m,
        later(4 * 3600),
    );
    assert_eq!(ids(&f)[0], "expired_credentials", "{f:?}");
    let e = evidence(&f, "expired_credentials");
    assert!(e.contains("the last issued token carries no exp"), "{e}");
    assert!(e.contains("4h old (14400 s)"), "{e}");
    let f = d.judge_exchange_at(
        client(),
        REG,
        443,
        &classify(REG, &[]),
        None,
        &m,
        later(600),
    );
    assert!(!ids(&f).contains(&"expired_credentials"), "{f:?}");
}

#[test]
fn token_lifetime_refresh_token_in_the_form_body_without_exp() {
    let d = diagnoser(vec![]);
    let mut refresh = token_without_exp(None);
    refresh.grant_type = Some("refresh_token".into());
    refresh.access = None;
    issue(&d, refresh, now());
    let ex = exchange("POST", "token", 401);
    let judge_at =
        |s| d.judge_exchange_at(client(), REG, 443, &classify(REG, &[]), None, &ex, later(s));
    let f = judge_at(THREE_HOURS + 60);
    assert_eq!(ids(&f), vec!["expired_credentials", "invalid_credentials"]);
    let e = evidence(&f, "expired_credentials");
    assert!(e.contains("the refresh token carries no exp"), "{e}");
    assert!(e.contains("(10860 s)"), "{e}");
    // Young: the generic reading of a refused body token, not the age.
    let f = judge_at(60);
    assert!(
        !evidence(&f, "expired_credentials").contains("carries no exp"),
        "{f:?}"
    );
}

#[test]
fn token_lifetime_token_endpoint_refusing_an_old_token_password() {
    let d = diagnoser(vec![]);
    let mut refresh = token_without_exp(Some(THREE_HOURS + 3600));
    refresh.grant_type = Some("refresh_token".into());
    let mut ex = token_request(401);
    ex.auth = Some(basic(UsernameKind::NullGuidToken, Some(refresh)));
    let f = judge(&d, REG, &ex);
    assert_eq!(ids(&f)[0], "expired_credentials", "{f:?}");
    assert!(evidence(&f, "expired_credentials").contains("4h old (14400 s)"));
}

#[test]
fn token_lifetime_insufficient_scope_is_not_blamed_on_age() {
    let d = diagnoser(vec![]);
    let mut m = manifest_401(bearer(token_without_exp(Some(5 * 3600))));
    m.www_authenticate = Some(Challenge {
        error: Some("insufficient_scope".into()),
        scope: Some("repository:app/web:pull".into()),
        ..bearer_challenge(REG)
    });
    assert_eq!(ids(&judge(&d, REG, &m)), vec!["not_authorized"]);
}

#[test]
fn token_lifetime_exp_wins_over_the_assumed_lifetime() {
    let d = diagnoser(vec![]);
    // Issued 5 hours ago but valid for a day: the token says how long it lives.
    let mut claims = token_without_exp(Some(5 * 3600));
    claims.exp = Some(NOW as i64 + 19 * 3600);
    let f = judge(&d, REG, &manifest_401(bearer(claims)));
    assert!(!ids(&f).contains(&"expired_credentials"), "{f:?}");
}

#[test]
fn login_article_admin_user_disabled() {
    let d = diagnoser(vec![]);
    let mut ex = exchange("POST", "exchange", 403);
    ex.body_text =
        Some("Unable to get admin user credentials with message: Admin user is disabled.".into());
    assert_eq!(ids(&judge(&d, REG, &ex)), vec!["invalid_credentials"]);
}

#[test]
fn login_article_sp_client_id_must_be_guid() {
    let d = diagnoser(vec![]);
    let mut ex = token_request(401);
    ex.body_text = Some("aad access token with sp failed client id must be guid".into());
    ex.auth = Some(basic(UsernameKind::Other, None));
    let f = judge(&d, REG, &ex);
    assert_eq!(ids(&f), vec!["invalid_credentials"]);
    assert!(evidence(&f, "invalid_credentials").contains("GUID"));
}

#[test]
fn login_article_basic_credentials_refused_on_ping() {
    let d = diagnoser(vec![]);
    let mut ping = exchange("GET", "ping", 401);
    ping.www_authenticate = Some(Challenge {
        scheme: "Basic".into(),
        realm: Some("Registry Realm".into()),
        ..Challenge::default()
    });
    ping.auth = Some(basic(UsernameKind::Other, None));
    let f = judge(&d, "registry.internal", &ping);
    assert_eq!(ids(&f)[0], "invalid_credentials");
}

#[test]
fn login_article_not_authorized_token_lacks_push() {
    let d = diagnoser(vec![]);
    let mut m = manifest("PUT", 401, "app/web", "1.1");
    m.auth = Some(bearer(access_token("app/web", &["pull"])));
    m.www_authenticate = Some(bearer_challenge(REG));
    let f = judge(&d, REG, &m);
    assert_eq!(ids(&f), vec!["not_authorized"]);
    assert_eq!(f[0].confidence, Confidence::High);
    let e = evidence(&f, "not_authorized");
    assert!(e.contains("grants [pull] on repository app/web"), "{e}");
    assert!(e.contains("AcrPush"), "{e}");
}

#[test]
fn login_article_not_authorized_insufficient_scope() {
    let d = diagnoser(vec![]);
    let mut m = manifest("GET", 401, "billing", "latest");
    m.auth = Some(CredentialFacts {
        scheme: "bearer".into(),
        username_kind: None,
        claims: None,
        ..Default::default()
    });
    m.www_authenticate = Some(Challenge {
        error: Some("insufficient_scope".into()),
        scope: Some("repository:billing:pull".into()),
        ..bearer_challenge(REG)
    });
    let f = judge(&d, REG, &m);
    assert_eq!(ids(&f), vec!["not_authorized"]);
    assert!(evidence(&f, "not_authorized").contains("AcrPull"));
}

#[test]
fn login_article_not_authorized_denied_on_push() {
    let d = diagnoser(vec![]);
    let mut up = exchange("POST", "upload", 403);
    up.repository = Some("app/web".into());
    up.auth = Some(bearer(access_token("app/web", &["pull", "push"])));
    up.registry_errors = vec![acr_error(
        "DENIED",
        "requested access to the resource is denied",
    )];
    let f = judge(&d, REG, &up);
    assert_eq!(ids(&f), vec!["not_authorized"]);
    // A push streams its progress: no daemon prefix; a bare code prints as the code.
    let s = sym(&http_event(REG, up.clone()), None);
    assert_eq!(s, "denied");
    up.registry_errors[0].has_detail = true;
    let s = sym(&http_event(REG, up), None);
    assert_eq!(s, "denied: requested access to the resource is denied");
}

#[test]
fn login_article_not_authorized_from_last_issued_token_when_bearer_is_opaque() {
    let d = diagnoser(vec![]);
    let mut tok = token_request(200);
    tok.requested_scopes = vec!["repository:app/web:pull,push".into()];
    tok.auth = Some(basic(UsernameKind::ServicePrincipal, None));
    tok.issued_token = Some(access_token("app/web", &["pull"]));
    assert!(judge(&d, REG, &tok).is_empty());
    let mut m = manifest("PUT", 401, "app/web", "2.0");
    m.auth = Some(CredentialFacts {
        scheme: "bearer".into(),
        username_kind: None,
        claims: None,
        ..Default::default()
    });
    let f = d.judge_exchange_at(client(), REG, 443, &classify(REG, &[]), None, &m, later(1));
    assert_eq!(ids(&f), vec!["not_authorized"]);
}

#[test]
fn beyond_not_found_as_401_when_token_grants_pull() {
    let d = diagnoser(vec![]);
    let mut m = manifest("GET", 401, "app/web", "does-not-exist");
    m.auth = Some(bearer(access_token("app/web", &["pull"])));
    m.www_authenticate = Some(bearer_challenge(REG));
    m.registry_errors = vec![RegistryError {
        code: "UNAUTHORIZED".into(),
        message:
            "authentication required, visit https://aka.ms/acr/authorization for more information."
                .into(),
        detail: Some(serde_json::json!([{"Type":"repository","Name":"app/web","Action":"pull"}])),
        has_detail: true,
        ..Default::default()
    }];
    let f = judge(&d, REG, &m);
    assert_eq!(ids(&f), vec!["not_found", "not_authorized"]);
    assert_eq!(f[0].confidence, Confidence::Medium);
}

#[test]
fn beyond_not_found_manifest_unknown_and_name_unknown() {
    let d = diagnoser(vec![]);
    let mut m = manifest("GET", 404, "app/web", "9.9");
    m.auth = Some(bearer(access_token("app/web", &["pull"])));
    m.registry_errors = vec![acr_error(
        "MANIFEST_UNKNOWN",
        "manifest tagged by \"9.9\" is not found",
    )];
    let f = judge(&d, REG, &m);
    assert_eq!(ids(&f), vec!["not_found"]);
    assert_eq!(f[0].confidence, Confidence::High);
    let s = sym(&http_event(REG, m.clone()), None);
    assert_eq!(
        s,
        "Error response from daemon: manifest for myregistry.azurecr.io/app/web:9.9 not found: manifest unknown: manifest tagged by \"9.9\" is not found"
    );
    m.registry_errors = vec![acr_error(
        "NAME_UNKNOWN",
        "repository name not known to registry",
    )];
    assert_eq!(ids(&judge(&d, REG, &m)), vec!["not_found", "registry_name"]);
    // Without a detail, a default message makes a bare code, which the pull prints as it is.
    assert_eq!(
        sym(&http_event(REG, m.clone()), None),
        "Error response from daemon: name unknown"
    );
    m.registry_errors[0].has_detail = true;
    assert_eq!(
        sym(&http_event(REG, m), None),
        "Error response from daemon: repository myregistry.azurecr.io/app/web not found: name unknown: repository name not known to registry"
    );
}

#[test]
fn beyond_ping_404_is_not_a_registry() {
    let d = diagnoser(vec![]);
    assert_eq!(
        ids(&judge(&d, REG, &exchange("GET", "ping", 404))),
        vec!["registry_name"]
    );
}

#[test]
fn beyond_throttled_429() {
    let d = diagnoser(vec![]);
    let mut m = manifest("GET", 429, "app/web", "1.0");
    m.auth = Some(bearer(access_token("app/web", &["pull"])));
    m.registry_errors = vec![acr_error("TOOMANYREQUESTS", "too many requests")];
    let f = judge(&d, REG, &m);
    assert_eq!(ids(&f), vec!["throttled"]);
    assert_eq!(
        sym(&http_event(REG, m.clone()), None),
        "Error response from daemon: toomanyrequests"
    );
    m.registry_errors[0].message = "Too many requests. Retry after 30 seconds.".into();
    assert_eq!(
        sym(&http_event(REG, m), None),
        "Error response from daemon: toomanyrequests: Too many requests. Retry after 30 seconds."
    );
}

#[test]
fn beyond_registry_error_5xx() {
    let d = diagnoser(vec![]);
    let mut m = manifest("GET", 503, "app/web", "1.0");
    m.registry_errors = vec![acr_error("UNAVAILABLE", "service unavailable")];
    let f = judge(&d, REG, &m);
    assert_eq!(ids(&f), vec!["registry_error"]);
    assert_eq!(f[0].confidence, Confidence::High);
    assert_eq!(
        sym(&http_event(REG, m), None),
        "Error response from daemon: received unexpected HTTP status: 503 Service Unavailable"
    );
}

#[test]
fn beyond_registry_did_not_issue_a_challenge() {
    let d = diagnoser(vec![]);
    let f = judge(&d, REG, &exchange("GET", "ping", 401));
    assert_eq!(ids(&f), vec!["registry_error"]);
    assert!(evidence(&f, "registry_error").contains("without a WWW-Authenticate"));
}

#[test]
fn http_status_without_exchange_details_still_names_a_cause() {
    let d = diagnoser(vec![]);
    for (status, id) in [
        (429, "throttled"),
        (503, "registry_error"),
        (404, "not_found"),
        (401, "invalid_credentials"),
        (403, "not_authorized"),
    ] {
        let f = d.diagnose_at(&event(REG, FailureKind::HttpStatus { status }), now());
        assert_eq!(ids(&f)[0], id, "{status}");
    }
    // An exchange the transport reports although the rules find it healthy.
    let f = d.diagnose_at(&http_event(REG, exchange("GET", "ping", 200)), now());
    assert_eq!(ids(&f), vec!["registry_error"]);
}

#[test]
fn beyond_geo_replication_manifest_blob_unknown() {
    let d = diagnoser(vec![]);
    let mut m = manifest("PUT", 400, "app/web", "1.0");
    m.registry_errors = vec![acr_error(
        "MANIFEST_BLOB_UNKNOWN",
        "blob unknown to registry",
    )];
    assert_eq!(
        ids(&judge(&d, REG, &m)),
        vec!["geo_replication", "not_found"]
    );
}

#[test]
fn beyond_clock_skew_issued_token_not_yet_valid() {
    let d = diagnoser(vec![]);
    let mut tok = token_request(200);
    let mut claims = access_token("app/web", &["pull"]);
    claims.nbf = Some(NOW as i64 + 900);
    claims.iat = Some(NOW as i64 + 900);
    tok.issued_token = Some(claims);
    let f = judge(&d, REG, &tok);
    assert_eq!(ids(&f), vec!["clock_skew"]);
    assert!(evidence(&f, "clock_skew").contains("900 s ahead"));
}

#[test]
fn beyond_clock_skew_presented_token_not_yet_valid() {
    let d = diagnoser(vec![]);
    let mut claims = access_token("app/web", &["pull"]);
    claims.nbf = Some(NOW as i64 + 3600);
    let mut m = manifest("GET", 401, "app/web", "1.0");
    m.auth = Some(bearer(claims));
    assert_eq!(ids(&judge(&d, REG, &m)), vec!["clock_skew"]);
}

#[test]
fn beyond_clock_skew_date_header_on_auth_failure() {
    let d = diagnoser(vec![]);
    let mut ex = token_request(401);
    ex.auth = Some(basic(UsernameKind::Other, None));
    ex.date_skew_secs = Some(600);
    let f = judge(&d, REG, &ex);
    assert!(ids(&f).contains(&"clock_skew"));
    ex.date_skew_secs = Some(5);
    assert!(!ids(&judge(&d, REG, &ex)).contains(&"clock_skew"));
}

#[test]
fn login_article_docker_config_old_docker_user_agent() {
    assert_eq!(
        rules::old_docker("docker/17.09.0-ce go/go1.8.3 git-commit/afdb6d4 kernel/4.4.0"),
        Some("17.09.0-ce".into())
    );
    assert_eq!(
        rules::old_docker("docker/1.13.1 go/go1.7.5"),
        Some("1.13.1".into())
    );
    assert_eq!(rules::old_docker("docker/18.03.0-ce go/go1.9.4"), None);
    assert_eq!(rules::old_docker("docker/27.3.1 go/go1.22.7"), None);
    assert_eq!(rules::old_docker("containerd/v1.7.2"), None);
    let d = diagnoser(vec![]);
    let mut ex = token_request(401);
    ex.auth = Some(basic(UsernameKind::Other, None));
    ex.user_agent = Some("docker/17.09.0-ce go/go1.8.3 git-commit/afdb6d4".into());
    let f = judge(&d, REG, &ex);
    assert!(evidence(&f, "docker_config").contains("17.09.0-ce"));
}

#[test]
fn beyond_transfer_stalled_on_data_endpoint() {
    let d = diagnoser(vec![]);
    let ev = event(
        DATA,
        FailureKind::TransferStalled {
            idle_secs: 30,
            bytes_before: 52_428_800,
        },
    );
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["transfer_stalled"]);
    assert_eq!(f[0].confidence, Confidence::High);
    let e = evidence(&f, "transfer_stalled");
    assert!(
        e.contains("52428800 bytes") && e.contains("westeurope"),
        "{e}"
    );
}

#[test]
fn proxy_policy_refusals() {
    let d = diagnoser(vec![]);
    for (kind, needle) in [
        (FailureKind::PortNotAllowed { port: 22 }, "port 22"),
        (FailureKind::ClientNotAllowed, "allowed_clients"),
        (
            FailureKind::ClientConnectionLimit { limit: 2, open: 2 },
            "max_connections_per_client (2)",
        ),
        (
            FailureKind::ProxyAuthRequired { provided: false },
            "sent none",
        ),
        (
            FailureKind::ProxyAuthRequired { provided: true },
            "not accepted",
        ),
    ] {
        let ev = event(REG, kind);
        let f = d.diagnose_at(&ev, now());
        assert_eq!(ids(&f), vec!["proxy_policy"]);
        assert!(evidence(&f, "proxy_policy").contains(needle));
        let s = sym(&ev, Some("regdoc: refused by proxy policy [proxy_policy]"));
        assert_eq!(
            s,
            "Get \"https://myregistry.azurecr.io/v2/\": regdoc: refused by proxy policy [proxy_policy]"
        );
    }
}

/// Interception refusals by name: a client naming a foreign host in its SNI, a host outside the
/// CA's name constraints. Both are regdoc's policy; the client saw a TLS alert.
#[test]
fn interception_name_refusals() {
    let d = diagnoser(vec![]);
    for (kind, needle) in [
        (
            FailureKind::TlsSniMismatch {
                sni: "www.google.com".into(),
            },
            "\"www.google.com\" inside a tunnel to myregistry.azurecr.io",
        ),
        (
            FailureKind::InterceptNameNotPermitted {
                permitted: ".azurecr.io".into(),
            },
            "--permit myregistry.azurecr.io",
        ),
    ] {
        let ev = event(REG, kind);
        let f = d.diagnose_at(&ev, now());
        assert_eq!(ids(&f), vec!["proxy_policy"]);
        assert!(evidence(&f, "proxy_policy").contains(needle), "{f:?}");
        let s = client_symptom(
            &ev,
            Some(symptom::Reply::Alert("unrecognized_name")),
            &Situation::default(),
        )
        .map(|s| s.text)
        .unwrap_or_default();
        assert_eq!(
            s,
            "Get \"https://myregistry.azurecr.io/v2/\": remote error: tls: unrecognized name"
        );
        // Without the alert (the record of a refusal always has it), nothing is predicted.
        assert_eq!(sym(&ev, None), "");
    }
}

#[test]
fn destination_refusals_name_the_rule() {
    let d = diagnoser(vec![]);
    let ev = event(
        "metadata.example",
        FailureKind::DestinationNotAllowed {
            addr: "169.254.169.254:80".into(),
            rule: "denied_destinations 169.254.0.0/16".into(),
        },
    );
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["proxy_policy"]);
    assert_eq!(
        evidence(&f, "proxy_policy"),
        "destination 169.254.169.254:80 is refused by denied_destinations 169.254.0.0/16"
    );
}

/// EMFILE used to reach the connect rules and be blamed on a firewall.
#[test]
fn descriptor_shortage_is_regdocs_own_limit_not_the_network() {
    let d = diagnoser(vec![]);
    for (errno, needle) in [("EMFILE", "own open-file limit"), ("ENFILE", "file table")] {
        let mut ev = event(
            REG,
            FailureKind::ResourceLimit {
                errno: errno.into(),
                nofile_soft: Some(1024),
                nofile_hard: None,
            },
        );
        ev.phase = Phase::Connect;
        let f = d.diagnose_at(&ev, now());
        assert_eq!(ids(&f), vec!["regdoc_resource_limit"], "{errno}");
        let e = evidence(&f, "regdoc_resource_limit");
        assert!(
            e.contains(needle) && e.contains("soft 1024, hard unknown"),
            "{e}"
        );
        assert!(!e.contains("firewall"), "{e}");
    }
    let remedy = catalog::REGDOC_RESOURCE_LIMIT.remedy.join(" ");
    assert!(
        remedy.contains("LimitNOFILE=") && remedy.contains("ulimit -n"),
        "{remedy}"
    );
}

#[test]
fn malformed_client_requests() {
    let d = diagnoser(vec![]);
    for kind in [
        FailureKind::MalformedRequest,
        FailureKind::HeadTooLarge { limit: 16384 },
        FailureKind::RequestTimeout,
    ] {
        assert_eq!(
            ids(&d.diagnose_at(&event(REG, kind), now())),
            vec!["bad_client_request"]
        );
    }
}

#[test]
fn dns_resolver_failure_is_not_a_name_problem() {
    let d = diagnoser(vec![]);
    let f = d.diagnose_at(&event(REG, FailureKind::DnsTimeout), now());
    assert_eq!(ids(&f), vec!["client_firewall"]);
}

#[test]
fn symptom_uses_regdoc_reason_phrase_when_connect_was_refused() {
    let d = diagnoser(vec![]);
    let ev = event(REG, FailureKind::DnsNxDomain);
    let f = d.diagnose_at(&ev, now());
    // The phrase production sends (proxy::reply), not one built for the test.
    let reason = crate::proxy::reply::reason_phrase(&ev, &f);
    assert!(reason.starts_with("regdoc registry_name: "), "{reason}");
    assert_eq!(
        sym(&ev, Some(&reason)),
        format!("Get \"https://myregistry.azurecr.io/v2/\": {reason}")
    );
    assert_eq!(
        sym(&ev, None),
        "Get \"https://myregistry.azurecr.io/v2/\": EOF"
    );
    // Blob downloads: dockerd frames the reason its own way ("error pulling image
    // configuration: download failed after attempts=6: <reason>"), seen with dockerd 20.10.
    let data = event(DATA, FailureKind::ConnectTimeout);
    assert_eq!(sym(&data, Some("Bad Gateway")), "Bad Gateway");
}

// --- Healthy flows ---------------------------------------------------------------------------

#[test]
fn healthy_anonymous_ping_with_bearer_challenge() {
    let d = diagnoser(vec![]);
    let mut ping = exchange("GET", "ping", 401);
    ping.www_authenticate = Some(bearer_challenge(REG));
    ping.registry_errors = vec![acr_error(
        "UNAUTHORIZED",
        "authentication required, visit https://aka.ms/acr/authorization for more information.",
    )];
    assert!(judge(&d, REG, &ping).is_empty());
    // ... and it counts as REST success for later data endpoint failures.
    let v = d
        .context
        .view(client(), DATA, &classify(DATA, &[]), later(1));
    assert!(v.rest_ok_age.is_some());
}

#[test]
fn healthy_basic_challenge_before_credentials() {
    let d = diagnoser(vec![]);
    let mut ping = exchange("GET", "ping", 401);
    ping.www_authenticate = Some(Challenge {
        scheme: "Basic".into(),
        realm: Some("Registry Realm".into()),
        ..Challenge::default()
    });
    assert!(judge(&d, "registry.internal", &ping).is_empty());
}

#[test]
fn healthy_anonymous_manifest_challenge_containerd_style() {
    let d = diagnoser(vec![]);
    let mut m = manifest("HEAD", 401, "app/web", "1.0");
    m.www_authenticate = Some(Challenge {
        scope: Some("repository:app/web:pull".into()),
        ..bearer_challenge(REG)
    });
    assert!(judge(&d, REG, &m).is_empty());
}

#[test]
fn healthy_redirects_and_successes() {
    let d = diagnoser(vec![]);
    let mut blob = exchange("GET", "blob", 307);
    blob.location = Some(format!("https://{DATA}/x?sig=abc"));
    assert!(judge(&d, REG, &blob).is_empty());
    let mut tok = token_request(200);
    tok.auth = Some(basic(UsernameKind::ServicePrincipal, None));
    tok.issued_token = Some(access_token("app/web", &["pull"]));
    assert!(judge(&d, REG, &tok).is_empty());
    let mut m = manifest("GET", 200, "app/web", "1.0");
    m.auth = Some(bearer(access_token("app/web", &["pull"])));
    assert!(judge(&d, REG, &m).is_empty());
    let mut put = manifest("PUT", 201, "app/web", "1.0");
    put.auth = Some(bearer(access_token("app/web", &["pull", "push"])));
    assert!(judge(&d, REG, &put).is_empty());
    assert!(judge(&d, REG, &exchange("GET", "ping", 200)).is_empty());
}

#[test]
fn healthy_head_blob_404_during_push() {
    let d = diagnoser(vec![]);
    let mut head = exchange("HEAD", "blob", 404);
    head.repository = Some("app/web".into());
    head.auth = Some(bearer(access_token("app/web", &["pull", "push"])));
    assert!(judge(&d, REG, &head).is_empty());
    // A HEAD on a manifest with a push token is the same existence check.
    let mut hm = manifest("HEAD", 404, "app/web", "1.2");
    hm.auth = Some(bearer(access_token("app/web", &["pull", "push"])));
    assert!(judge(&d, REG, &hm).is_empty());
    // With a pull-only token it is a pull of a missing tag.
    hm.auth = Some(bearer(access_token("app/web", &["pull"])));
    assert_eq!(ids(&judge(&d, REG, &hm)), vec!["not_found"]);
}

// --- Secrets and invariants ------------------------------------------------------------------

#[test]
fn evidence_never_contains_tokens_or_passwords() {
    let d = diagnoser(vec![private_registry(REG)]);
    let jwt =
        "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJqdGkiOiIxMjM0NTY3OCJ9.c2lnbmF0dXJlc2lnbmF0dXJl";
    let mut findings = Vec::new();
    let mut expired = access_token("app/web", &["pull"]);
    expired.exp = Some(NOW as i64 - 5);
    let mut ex = token_request(401);
    ex.auth = Some(basic(UsernameKind::NullGuidToken, Some(expired.clone())));
    ex.body_text = Some(format!(
        "invalid refresh_token={jwt} for password=hunter2secret"
    ));
    findings.extend(judge(&d, REG, &ex));
    let mut m = manifest("GET", 401, "app/web", "1.0");
    m.auth = Some(bearer(access_token("app/web", &["pull"])));
    m.registry_errors = vec![acr_error("UNAUTHORIZED", &format!("token {jwt} rejected"))];
    m.location = Some(format!("https://{DATA}/b?sig=U2VjcmV0U2lnbmF0dXJlMTIz"));
    findings.extend(judge(&d, REG, &m));
    let mut f403 = exchange("GET", "ping", 403);
    f403.body_text = Some(format!("Authorization: Bearer {jwt}"));
    findings.extend(judge(&d, REG, &f403));
    let mut ev = event(
        DATA,
        FailureKind::TlsUpstreamCertificate {
            problem: CertProblem::Other,
            detail: format!("cert for ?sig=QUJDREVGR0hJSktMTU5PUFFSU1RVVldY {jwt}"),
        },
    );
    ev.upstream_proxy = Some("http://proxy:3128".into());
    findings.extend(d.diagnose_at(&ev, now()));
    assert!(!findings.is_empty());
    for f in &findings {
        let json = serde_json::to_string(f).unwrap();
        for secret in [
            "eyJ",
            "hunter2secret",
            "U2VjcmV0U2lnbmF0dXJl",
            "QUJDREVGR0hJSktM",
            "sig=",
            "c2lnbmF0dXJl",
        ] {
            assert!(!json.contains(secret), "{secret} leaked in {json}");
        }
        // The claims themselves are facts and may be quoted: exp as a time.
        assert!(json.contains(&format!("\"cause\":\"{}\"", f.cause.id)));
    }
    let s = sym(&http_event(REG, m), None);
    assert!(!s.contains("eyJ"), "{s}");
}

#[test]
fn every_observable_cause_is_reachable() {
    let d = diagnoser(vec![private_registry("private.azurecr.io")]);
    let mut seen = BTreeSet::new();
    let mut add = |f: Vec<Finding>| {
        for x in f {
            seen.insert(x.cause.id);
        }
    };
    let kinds = vec![
        FailureKind::MalformedRequest,
        FailureKind::TlsInsteadOfHttp,
        FailureKind::PortNotAllowed { port: 25 },
        FailureKind::DnsNxDomain,
        FailureKind::ConnectTimeout,
        FailureKind::UpstreamProxyClosed,
        FailureKind::TlsUpstreamCertificate {
            problem: CertProblem::Expired,
            detail: String::new(),
        },
        FailureKind::TlsClientRejected {
            detail: String::new(),
        },
        refused(Some(probe(None, false))),
        refused(Some(probe(Some(CertProblem::Expired), true))),
        FailureKind::TransferStalled {
            idle_secs: 30,
            bytes_before: 1,
        },
        FailureKind::ResponseHeadersTimeout,
        FailureKind::UpstreamClosedBeforeHeaders {
            how: EarlyClose::Closed,
        },
        FailureKind::ResourceLimit {
            errno: "EMFILE".into(),
            nofile_soft: Some(1024),
            nofile_hard: Some(4096),
        },
    ];
    for k in kinds {
        add(d.diagnose_at(&event(REG, k.clone()), now()));
        add(d.diagnose_at(&event(DATA, k.clone()), now()));
        add(d.diagnose_at(&event("private.azurecr.io", k), now()));
    }
    let mut pe = event("private.azurecr.io", FailureKind::ConnectTimeout);
    pe.dns = Some(answer(&["private.privatelink.azurecr.io"], &["10.0.0.9"]));
    add(d.diagnose_at(&pe, now()));
    let mut ip = exchange("GET", "ping", 403);
    ip.body_text = Some("client with IP '198.51.100.1' is not allowed access".into());
    add(judge(&d, REG, &ip));
    let mut push = manifest("PUT", 401, "r", "t");
    push.auth = Some(bearer(access_token("r", &["pull"])));
    add(judge(&d, REG, &push));
    let mut old = access_token("r", &["pull"]);
    old.exp = Some(1);
    push.auth = Some(bearer(old));
    add(judge(&d, REG, &push));
    add(judge(&d, REG, &exchange("GET", "ping", 429)));
    let mut geo = manifest("PUT", 400, "r", "t");
    geo.registry_errors = vec![acr_error(
        "MANIFEST_BLOB_UNKNOWN",
        "blob unknown to registry",
    )];
    add(judge(&d, REG, &geo));
    add(judge(&d, REG, &token_request(401)));
    add(judge(&d, REG, &manifest("GET", 404, "r", "t")));
    for c in catalog::CAUSES {
        assert!(
            seen.contains(c.id) == c.observable,
            "cause {} observable={} reached={}",
            c.id,
            c.observable,
            seen.contains(c.id)
        );
    }
}

#[test]
fn diagnoser_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Diagnoser>();
    check::<aggregate::Aggregator>();
}

#[test]
fn location_host_keeps_only_the_host() {
    assert_eq!(
        location_host("https://myregistry.westeurope.data.azurecr.io/blobs/x?sig=abc"),
        Some("myregistry.westeurope.data.azurecr.io".into())
    );
    assert_eq!(
        location_host("https://user:pw@Acct.blob.core.windows.net:443/c/b?sv=1&sig=x"),
        Some("acct.blob.core.windows.net".into())
    );
    assert_eq!(location_host("/v2/app/blobs/uploads/123"), None);
    assert_eq!(location_host("https://bad host/"), None);
}

#[test]
fn findings_are_ranked_and_merged() {
    let e = |s: &str| vec![s.to_string()];
    let out = rules::rank(vec![
        Finding {
            cause: &catalog::NOT_FOUND,
            confidence: Confidence::Low,
            evidence: e("a"),
        },
        Finding {
            cause: &catalog::NOT_AUTHORIZED,
            confidence: Confidence::Medium,
            evidence: e("b"),
        },
        Finding {
            cause: &catalog::NOT_FOUND,
            confidence: Confidence::High,
            evidence: e("c"),
        },
    ]);
    assert_eq!(ids(&out), vec!["not_found", "not_authorized"]);
    assert_eq!(out[0].evidence, vec!["a", "c"]);
}

// --- Hostile input ---------------------------------------------------------------------------

/// A small deterministic generator: no dependency, same cases on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
    fn text(&mut self) -> String {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl";
        let pieces = [
            "",
            "client with IP '203.0.113.9' is not allowed access",
            "\r\n\u{0}\u{1b}[31m",
            "Application not registered with AAD.",
            jwt,
            "é€😀",
            "sig=AAAABBBBCCCC",
            "admin user is disabled",
            "x",
            "    ",
        ];
        let mut s = String::new();
        for _ in 0..(self.next() % 4) {
            let p = *self.pick::<&str>(&pieces);
            s.push_str(p);
        }
        if self.next().is_multiple_of(10) {
            s.push_str(&"A".repeat(20_000));
        }
        s
    }
    fn opt_i64(&mut self) -> Option<i64> {
        *self.pick(&[
            None,
            Some(i64::MIN),
            Some(i64::MAX),
            Some(0),
            Some(NOW as i64 - 10),
            Some(NOW as i64 + 10_000),
        ])
    }
}

#[test]
fn hostile_inputs_never_panic_and_evidence_stays_bounded() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let d = diagnoser(vec![private_registry(REG)]);
    let hosts = [
        REG,
        DATA,
        "weuacct0123.blob.core.windows.net",
        "example.com",
        "10.0.0.1",
        "",
        "MY-REG.azurecr.io",
        "é.azurecr.io",
    ];
    let jwt_marker = "eyJhbGci";
    for i in 0..3000u64 {
        let host = *rng.pick(&hosts);
        let kind = match i % 25 {
            0 => FailureKind::MalformedRequest,
            1 => FailureKind::HeadTooLarge { limit: 1 },
            2 => FailureKind::RequestTimeout,
            3 => FailureKind::TlsInsteadOfHttp,
            4 => FailureKind::ClientNotAllowed,
            5 => FailureKind::PortNotAllowed { port: 0 },
            6 => FailureKind::ProxyAuthRequired { provided: true },
            7 => FailureKind::DnsNxDomain,
            8 => FailureKind::DnsNoAddresses,
            9 => FailureKind::DnsTimeout,
            10 => FailureKind::DnsError,
            11 => FailureKind::ConnectRefused,
            12 => FailureKind::ConnectTimeout,
            13 => FailureKind::ConnectUnreachable,
            14 => FailureKind::UpstreamProxyStatus {
                status: (rng.next() % 1000) as u16,
                reason: rng.text(),
            },
            15 => FailureKind::UpstreamProxyClosed,
            16 => FailureKind::TlsServerSilent,
            17 => FailureKind::TlsAlert {
                level: rng.text(),
                description: rng.text(),
            },
            18 => FailureKind::TlsNotTls,
            19 => FailureKind::TlsUpstreamCertificate {
                problem: *rng.pick(&[
                    CertProblem::UnknownIssuer,
                    CertProblem::Expired,
                    CertProblem::NameMismatch,
                    CertProblem::Other,
                ]),
                detail: rng.text(),
            },
            20 => FailureKind::TlsClientRejected { detail: rng.text() },
            21 => FailureKind::ResponseHeadersTimeout,
            22 => FailureKind::TransferStalled {
                idle_secs: u64::MAX,
                bytes_before: u64::MAX,
            },
            23 => FailureKind::UpstreamClosedBeforeHeaders {
                how: *rng.pick(&[EarlyClose::Closed, EarlyClose::Reset, EarlyClose::Error]),
            },
            _ => FailureKind::HttpStatus {
                status: (rng.next() % 1000) as u16,
            },
        };
        let mut ev = event(host, kind);
        ev.error = rng.text();
        if rng.next().is_multiple_of(2) {
            let source = *rng.pick(&[
                DnsSource::Dns,
                DnsSource::HostsFile,
                DnsSource::Override,
                DnsSource::Literal,
                DnsSource::ConnectTo,
            ]);
            ev.dns = Some(DnsAnswer {
                cnames: (0..rng.next() % 20).map(|_| rng.text()).collect(),
                addresses: (0..rng.next() % 3)
                    .map(|_| *rng.pick(&["10.1.2.3", "20.1.2.3", "::1", "fd00::5", "127.0.0.1"]))
                    .map(|a| a.parse().unwrap())
                    .collect(),
                source,
                name: rng.next().is_multiple_of(3).then(|| rng.text()),
                hosts_file: (source == DnsSource::HostsFile).then(|| HostsOrigin {
                    path: rng.text(),
                    lines: (0..rng.next() % 4).map(|_| rng.next() as usize).collect(),
                }),
            });
        }
        let claims = Claims {
            exp: rng.opt_i64(),
            nbf: rng.opt_i64(),
            iat: rng.opt_i64(),
            access: Some(vec![Access {
                kind: rng.text(),
                name: rng.text(),
                actions: vec![rng.text()],
            }]),
            grant_type: Some(rng.pick(&["refresh_token", "access_token", ""]).to_string()),
            ..Claims::default()
        };
        let ex = HttpExchange {
            method: rng
                .pick(&["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "", "BREW"])
                .to_string(),
            path_class: rng
                .pick(&[
                    "ping", "token", "exchange", "manifest", "blob", "upload", "catalog", "tags",
                    "other",
                ])
                .to_string(),
            repository: Some(rng.text()),
            reference: Some(rng.text()),
            status: (rng.next() % 1000) as u16,
            www_authenticate: rng.next().is_multiple_of(2).then(|| Challenge {
                scheme: rng.text(),
                error: Some(rng.text()),
                ..Challenge::default()
            }),
            registry_errors: vec![acr_error(&rng.text(), &rng.text())],
            body_text: Some(rng.text()),
            location: Some(format!("https://{}/x?sig={}", rng.text(), rng.text())),
            auth: rng.next().is_multiple_of(2).then(|| CredentialFacts {
                scheme: rng.pick(&["basic", "bearer", ""]).to_string(),
                username_kind: Some(*rng.pick(&[
                    UsernameKind::NullGuidToken,
                    UsernameKind::ServicePrincipal,
                    UsernameKind::Other,
                ])),
                claims: Some(claims.clone()),
                empty_secret: rng.next().is_multiple_of(2),
                malformed: rng.next().is_multiple_of(2),
            }),
            issued_token: Some(claims),
            user_agent: Some(rng.text()),
            date_skew_secs: rng.opt_i64(),
            requested_scopes: vec![rng.text()],
            ..HttpExchange::default()
        };
        if rng.next().is_multiple_of(2) {
            ev.http = Some(ex.clone());
        }
        let mut all = d.diagnose_at(&ev, later(i));
        all.extend(d.judge_exchange_at(
            client(),
            host,
            443,
            &classify(host, &[]),
            None,
            &ex,
            later(i),
        ));
        for f in &all {
            let s = sym(&ev, Some(&rng.text()));
            assert!(!s.contains(jwt_marker), "{s}");
            for e in &f.evidence {
                let chars = e.chars().count();
                assert!(chars <= 2 * text::MAX_EVIDENCE_CHARS, "{chars} chars");
                assert!(!e.chars().any(char::is_control), "{e:?}");
                assert!(!e.contains(jwt_marker), "{e}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Passthrough: a reset in answer to the ClientHello, and a client refusing the certificate.

/// A probe's facts as regdoc's probe reports them; `problem` against all trusted roots.
fn probe(problem: Option<CertProblem>, public: bool) -> CertProbe {
    CertProbe {
        hop: "direct",
        via: "203.0.113.2:443".into(),
        sni: REG.into(),
        issuer: Some("CN=mitmproxy, O=mitmproxy".into()),
        subject: Some(format!("CN={REG}")),
        names: vec![REG.into()],
        not_before: Some(NOW as i64 - 86_400),
        not_after: Some(NOW as i64 + 86_400 * 90),
        checked_at: NOW as i64,
        chain_to_public_root: Some(public),
        chain_to_extra_root: false,
        problem,
        error: None,
    }
}

fn refused(probe: Option<CertProbe>) -> FailureKind {
    FailureKind::TlsClientRefused {
        signal: ClientSignal::EncryptedAlert,
        alert: None,
        probe,
    }
}

#[test]
fn reset_after_client_hello_names_the_sni_and_the_filtering_firewall() {
    let d = diagnoser(vec![]);
    let mut ev = event(REG, FailureKind::TlsServerReset);
    ev.tls = Some(TlsObservation {
        sni: Some(REG.into()),
        ..TlsObservation::default()
    });
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["client_firewall"]);
    assert_eq!(f[0].confidence, Confidence::High);
    let e = evidence(&f, "client_firewall");
    assert!(
        e.contains("reset (TCP RST) in answer to the ClientHello"),
        "{e}"
    );
    assert!(e.contains(&format!("naming {REG}")), "{e}");
    assert!(e.contains("filters by SNI"), "{e}");
    let s = sym(&ev, None);
    assert_eq!(s, format!("Get \"https://{REG}/v2/\": EOF"));

    // Through an upstream proxy, the evidence says where the reset came from.
    ev.upstream_proxy = Some("corp-proxy:3128".into());
    let e = evidence(&d.diagnose_at(&ev, now()), "client_firewall");
    assert!(e.contains("through upstream proxy corp-proxy:3128"), "{e}");
    // A data endpoint is the data-endpoint firewall gap, as for a close.
    let f = d.diagnose_at(&event(DATA, FailureKind::TlsServerReset), now());
    assert_eq!(ids(&f)[0], "data_endpoint_firewall");
}

#[test]
fn client_refusing_a_private_chain_is_tls_interception_naming_issuer_and_hop() {
    let d = diagnoser(vec![]);
    let ev = event(
        REG,
        refused(Some(probe(Some(CertProblem::UnknownIssuer), false))),
    );
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["tls_interception"]);
    assert_eq!(f[0].confidence, Confidence::High);
    let e = evidence(&f, "tls_interception");
    assert!(
        e.contains(&format!(
            "probe: direct TLS to 203.0.113.2:443 sni={REG} issuer=\"CN=mitmproxy, O=mitmproxy\""
        )),
        "{e}"
    );
    assert!(e.contains("chain_to_public_root=false"), "{e}");
    assert!(e.contains("problem=unknown_issuer"), "{e}");
    assert!(
        e.contains("something on the path (the direct route to the server) re-signs TLS"),
        "{e}"
    );
    assert!(
        e.contains("encrypted record too short to be its Finished"),
        "{e}"
    );
    assert_eq!(
        sym(&ev, None),
        "x509: certificate signed by unknown authority"
    );

    // Through an upstream proxy, the hop is named.
    let mut p = probe(Some(CertProblem::UnknownIssuer), false);
    p.hop = "upstream_proxy";
    p.via = "corp-proxy:3128".into();
    let mut ev = event(REG, refused(Some(p)));
    ev.upstream_proxy = Some("corp-proxy:3128".into());
    let e = evidence(&d.diagnose_at(&ev, now()), "tls_interception");
    assert!(
        e.contains("probe: TLS through upstream proxy corp-proxy:3128"),
        "{e}"
    );
    assert!(
        e.contains("(through upstream proxy corp-proxy:3128) re-signs"),
        "{e}"
    );
}

#[test]
fn client_refusing_a_valid_public_chain_lacks_roots() {
    let d = diagnoser(vec![]);
    let f = d.diagnose_at(&event(REG, refused(Some(probe(None, true)))), now());
    assert_eq!(ids(&f), vec!["client_trust_store"]);
    assert_eq!(f[0].confidence, Confidence::High);
    assert!(evidence(&f, "client_trust_store").contains("lacks its root"));

    // A chain to an extra root only: a private CA the client does not trust.
    let mut p = probe(None, false);
    p.chain_to_extra_root = true;
    let f = d.diagnose_at(&event(REG, refused(Some(p))), now());
    assert_eq!(ids(&f), vec!["tls_interception", "client_trust_store"]);
    assert!(evidence(&f, "tls_interception").contains("intercept.extra_roots"));
}

#[test]
fn client_refusing_an_out_of_date_certificate_is_judged_by_the_dates() {
    let d = diagnoser(vec![]);
    // Not valid yet: the local clock is behind.
    let mut p = probe(Some(CertProblem::NotYetValid), true);
    p.not_before = Some(NOW as i64 + 3600);
    let ev = event(REG, refused(Some(p)));
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f), vec!["clock_skew", "registry_certificate"]);
    assert_eq!(f[0].confidence, Confidence::High);
    assert!(evidence(&f, "clock_skew").contains("the local clock read 2027-01-15"));
    assert!(sym(&ev, None).ends_with("x509: certificate has expired or is not yet valid"));

    // Expired a little while ago: the certificate, more likely than the clock.
    let mut p = probe(Some(CertProblem::Expired), true);
    p.not_before = Some(NOW as i64 - 86_400 * 90);
    p.not_after = Some(NOW as i64 - 86_400);
    let f = d.diagnose_at(&event(REG, refused(Some(p))), now());
    assert_eq!(ids(&f), vec!["registry_certificate", "clock_skew"]);
    assert_eq!(f[1].confidence, Confidence::Low);

    // Expired longer ago than it was ever valid: the clock may well be far ahead.
    let mut p = probe(Some(CertProblem::Expired), true);
    p.not_before = Some(NOW as i64 - 86_400 * 400);
    p.not_after = Some(NOW as i64 - 86_400 * 300);
    let f = d.diagnose_at(&event(REG, refused(Some(p))), now());
    assert_eq!(f[1].cause.id, "clock_skew");
    assert_eq!(f[1].confidence, Confidence::Medium);
}

#[test]
fn client_refusing_a_certificate_for_another_name_is_a_wrong_endpoint_or_a_portal() {
    let d = diagnoser(vec![]);
    let f = d.diagnose_at(
        &event(
            REG,
            refused(Some(probe(Some(CertProblem::NameMismatch), true))),
        ),
        now(),
    );
    assert_eq!(ids(&f), vec!["registry_name", "client_firewall"]);
    assert!(evidence(&f, "client_firewall").contains("captive portal"));
}

#[test]
fn client_refusal_without_a_probe_reads_the_alert() {
    let d = diagnoser(vec![]);
    let kind = |alert: &str| FailureKind::TlsClientRefused {
        signal: ClientSignal::Alert,
        alert: Some(alert.into()),
        probe: None,
    };
    let f = d.diagnose_at(&event(REG, kind("unknown_ca")), now());
    assert_eq!(ids(&f), vec!["tls_interception", "client_trust_store"]);
    let e = evidence(&f, "tls_interception");
    assert!(e.contains("with a unknown_ca alert"), "{e}");
    assert!(
        e.contains("no probe of the server's certificate was made"),
        "{e}"
    );
    let f = d.diagnose_at(&event(REG, kind("certificate_expired")), now());
    assert_eq!(ids(&f)[0], "registry_certificate");

    // A probe that could not read a certificate says why.
    let mut p = probe(None, false);
    p.error = Some("no TLS answer within 5000 ms".into());
    let f = d.diagnose_at(&event(REG, refused(Some(p))), now());
    assert_eq!(ids(&f)[0], "tls_interception");
    assert!(evidence(&f, "tls_interception").contains("failed: no TLS answer within 5000 ms"));
}

#[test]
fn a_private_registry_reached_at_a_public_address_is_the_dns_whatever_it_answers() {
    // ACR's public endpoint refuses with its firewall; the registry should have been reached
    // through its private endpoint, so the name resolution leads and the firewall follows.
    let d = diagnoser(vec![private_registry(REG)]);
    let mut ping = exchange("GET", "ping", 403);
    ping.registry_errors = vec![acr_error(
        "DENIED",
        "client with IP '203.0.113.1' is not allowed access. Refer https://aka.ms/acr/firewall to grant access.",
    )];
    let public = answer(&[], &["20.61.1.1"]);
    let f = d.judge_exchange_at(
        client(),
        REG,
        443,
        &classify(REG, &[]),
        Some(&public),
        &ping,
        now(),
    );
    assert_eq!(ids(&f), vec!["private_endpoint_dns", "public_access_rules"]);
    // Without the answer, or with a private one, the exchange is judged on its own.
    assert_eq!(ids(&judge(&d, REG, &ping)), vec!["public_access_rules"]);
    let private = answer(&[], &["10.1.2.3"]);
    let f = d.judge_exchange_at(
        client(),
        REG,
        443,
        &classify(REG, &[]),
        Some(&private),
        &ping,
        now(),
    );
    assert_eq!(ids(&f), vec!["public_access_rules"]);
    // A healthy exchange stays healthy whatever the answer.
    let mut ok = exchange("GET", "ping", 401);
    ok.www_authenticate = Some(bearer_challenge(REG));
    let f = d.judge_exchange_at(
        client(),
        REG,
        443,
        &classify(REG, &[]),
        Some(&public),
        &ok,
        now(),
    );
    assert!(f.is_empty(), "{:?}", ids(&f));
}
