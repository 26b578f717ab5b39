//! End to end with the real Docker daemon: `docker login`, `docker pull`, `docker run` and
//! `docker push` through regdoc against a real registry in a network namespace.
//!
//! Needs root and the programs `.ci/run` installs; without them each test skips with a message
//! naming what is missing (under `CI=true` it fails instead). Tests serialise on a file lock.

mod common;
mod e2e;

use e2e::harness::*;
use std::time::Duration;

fn image(host: &str) -> String {
    format!("{host}/{IMAGE_REPO}:{IMAGE_TAG}")
}

/// Login, pull and run the image of the registry at `host` (a name, `name:port`); every step
/// must succeed.
fn login_pull_run_at(env: &Env, host: &str, user: &str) {
    let login = env.docker(&["login", "-u", user, "-p", PASSWORD, host]);
    assert!(login.success, "docker login failed:\n{}", env.dump());
    assert_printed(&login, "Login Succeeded");
    let pull = env.docker(&["pull", &image(host)]);
    assert!(pull.success, "docker pull failed:\n{}", env.dump());
    assert_printed(&pull, "Pull complete");
    let run = env.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        &image(host),
        "/bin/busybox",
        "echo",
        "regdoc-e2e-ran",
    ]);
    assert!(run.success, "docker run failed:\n{}", env.dump());
    assert_printed(&run, "regdoc-e2e-ran");
}

/// [`login_pull_run_at`] the registry's usual name.
fn login_pull_run(env: &Env, user: &str) {
    login_pull_run_at(env, REG_HOST, user);
}

/// `REG_HOST:5443`.
fn alt_host() -> String {
    format!("{REG_HOST}:{ALT_PORT}")
}

#[test]
fn harness_self_check_through_squid() {
    // The stack without regdoc: if this fails, the environment is broken, not regdoc.
    if !ready("harness_self_check_through_squid") {
        return;
    }
    let env = Env::start(Options {
        daemon_proxy: DaemonProxy::SquidOnly,
        ..Options::default()
    });
    login_pull_run(&env, USER);
}

#[test]
fn harness_self_check_token_server_through_squid() {
    // The token server, its RS256 tokens and the registry's trust in them, without regdoc: a
    // pull-only user pulls and runs, and its push is refused by the registry.
    if !ready("harness_self_check_token_server_through_squid") {
        return;
    }
    let env = Env::start(Options {
        daemon_proxy: DaemonProxy::SquidOnly,
        auth: Auth::Token,
        ..Options::default()
    });
    login_pull_run(&env, PULL_USER);
    let target = format!("{REG_HOST}/{IMAGE_REPO}:pushed");
    assert!(env.docker(&["tag", &image(REG_HOST), &target]).success);
    let push = env.docker(&["push", &target]);
    assert!(!push.success, "a pull-only token must not push");
    let bad = env.docker_login(USER, "not-the-password");
    assert!(!bad.success);
    assert_printed(
        &bad,
        "unauthorized: authentication required, visit https://aka.ms/acr/authorization for more information.",
    );
}

#[test]
fn healthy_passthrough() {
    if !ready("healthy_passthrough") {
        return;
    }
    let env = Env::start(Options::default());
    // The daemon trusts only the registry's CA for it: regdoc left TLS alone.
    assert_eq!(env.client_trust(REG_HOST), Some(Ca::Registry));
    login_pull_run(&env, USER);
    assert_regdoc_saw(&env, REG_HOST, Some("tunnel"));
    assert_regdoc_saw(&env, DATA_HOST, Some("tunnel"));
    assert_no_failures(&env);
}

#[test]
fn healthy_passthrough_through_upstream_squid() {
    // The corporate setup: regdoc chained to the company's proxy (squid, allowing CONNECT).
    // regdoc resolves nothing itself (the upstream does, with the test's hosts file and zone
    // DNS); every tunnel, the 307 to the data endpoint included, is a CONNECT through squid.
    if !ready("healthy_passthrough_through_upstream_squid") {
        return;
    }
    let env = Env::start(Options {
        upstream: Upstream::Squid,
        ..Options::default()
    });
    assert_eq!(env.client_trust(REG_HOST), Some(Ca::Registry));
    login_pull_run(&env, USER);
    assert_regdoc_went_through_squid(&env, REG_HOST, "tunnel");
    assert_regdoc_went_through_squid(&env, DATA_HOST, "tunnel");
    assert_no_failures(&env);
}

#[test]
fn healthy_interception_through_upstream_squid() {
    // regdoc intercepts the registry and speaks TLS to it inside squid's CONNECT tunnel; the
    // data endpoint stays a passthrough tunnel through squid.
    if !ready("healthy_interception_through_upstream_squid") {
        return;
    }
    let env = Env::start(Options {
        mode: Mode::Intercept,
        upstream: Upstream::Squid,
        ..Options::default()
    });
    assert_eq!(env.client_trust(REG_HOST), Some(Ca::Regdoc));
    login_pull_run(&env, USER);
    assert_regdoc_went_through_squid(&env, REG_HOST, "intercept");
    assert_regdoc_went_through_squid(&env, DATA_HOST, "tunnel");
    assert_no_failures(&env);
}

#[test]
fn healthy_interception_token_server() {
    if !ready("healthy_interception_token_server") {
        return;
    }
    let env = Env::start(Options {
        mode: Mode::Intercept,
        auth: Auth::Token,
        ..Options::default()
    });
    // The daemon trusts only regdoc's CA for the registry (and the token server): the real
    // certificate would be refused, so a pull that works went through interception.
    assert_eq!(env.client_trust(REG_HOST), Some(Ca::Regdoc));
    assert_eq!(env.client_trust(AUTH_HOST), Some(Ca::Regdoc));
    login_pull_run(&env, USER);
    assert_regdoc_saw(&env, REG_HOST, Some("intercept"));
    assert_no_failures(&env);
}

#[test]
fn healthy_interception_htpasswd() {
    if !ready("healthy_interception_htpasswd") {
        return;
    }
    let env = Env::start(Options {
        mode: Mode::Intercept,
        ..Options::default()
    });
    assert_eq!(env.client_trust(REG_HOST), Some(Ca::Regdoc));
    login_pull_run(&env, USER);
    assert_regdoc_saw(&env, REG_HOST, Some("intercept"));
    assert_no_failures(&env);
}

#[test]
fn wrong_password_htpasswd() {
    if !ready("wrong_password_htpasswd") {
        return;
    }
    let env = Env::start(Options {
        mode: Mode::Intercept,
        ..Options::default()
    });
    let out = env.docker_login(USER, "not-the-password");
    assert!(!out.success);
    assert_printed(
        &out,
        &format!("login attempt to https://{REG_HOST}/v2/ failed with status: 401 Unauthorized"),
    );
    // A wrong password and an expired one look the same to the registry.
    assert_diagnosed_as(
        &env,
        &out,
        "invalid_credentials",
        &["expired_credentials"],
        SymptomMatch::Whole,
    );
}

#[test]
fn wrong_password_token_server() {
    if !ready("wrong_password_token_server") {
        return;
    }
    let env = Env::start(Options {
        mode: Mode::Intercept,
        auth: Auth::Token,
        ..Options::default()
    });
    let out = env.docker_login(USER, "not-the-password");
    assert!(!out.success);
    assert_printed(
        &out,
        "unauthorized: authentication required, visit https://aka.ms/acr/authorization for more information.",
    );
    // A wrong password and an expired one look the same to the registry.
    assert_diagnosed_as(
        &env,
        &out,
        "invalid_credentials",
        &["expired_credentials"],
        SymptomMatch::Whole,
    );
}

/// A pull that must fail at the network level; returns what Docker printed.
fn failed_pull(env: &Env, host: &str) -> Output {
    let out = env.docker(&["pull", &image(host)]);
    assert!(!out.success, "pull from {host} unexpectedly worked");
    assert_printed(&out, &format!("Get \"https://{host}/v2/\""));
    out
}

#[test]
fn registry_name_does_not_resolve() {
    if !ready("registry_name_does_not_resolve") {
        return;
    }
    let env = Env::start(Options::default());
    let out = failed_pull(&env, NX_HOST);
    assert_diagnosed(&env, &out, "registry_name");
}

#[test]
fn registry_down_connection_refused() {
    if !ready("registry_down_connection_refused") {
        return;
    }
    let env = Env::start(Options::default());
    let out = failed_pull(&env, DOWN_HOST);
    assert_diagnosed(&env, &out, "client_firewall");
}

#[test]
fn registry_firewalled_connect_timeout() {
    if !ready("registry_firewalled_connect_timeout") {
        return;
    }
    let env = Env::start(Options::default());
    let out = failed_pull(&env, DROP_HOST);
    assert_diagnosed(&env, &out, "client_firewall");
}

#[test]
fn private_endpoint_firewalled_connect_timeout() {
    if !ready("private_endpoint_firewalled_connect_timeout") {
        return;
    }
    let env = Env::start(Options::default());
    let out = failed_pull(&env, PRIVATE_HOST);
    // An NSG or firewall in front of the endpoint's subnet is the alternative.
    assert_diagnosed_as(
        &env,
        &out,
        "private_endpoint_unreachable",
        &["client_firewall"],
        SymptomMatch::Whole,
    );
}

#[test]
fn registry_accepts_tcp_and_never_answers() {
    // regdoc with its own deadlines: the daemon's TLS handshake timeout (10 s) must be the one
    // the client meets, and regdoc must say so, not close the tunnel first.
    if !ready("registry_accepts_tcp_and_never_answers") {
        return;
    }
    let env = Env::start(Options::default());
    let out = failed_pull(&env, SILENT_HOST);
    assert_printed(
        &out,
        &format!("Get \"https://{SILENT_HOST}/v2/\": net/http: TLS handshake timeout"),
    );
    let rec = assert_diagnosed(&env, &out, "client_firewall");
    assert!(
        client_symptom(&rec).is_some_and(|s| s.contains("net/http: TLS handshake timeout")),
        "{rec:#}"
    );
}

#[test]
fn upstream_proxy_refuses_connect() {
    if !ready("upstream_proxy_refuses_connect") {
        return;
    }
    let env = Env::start(Options {
        upstream: Upstream::SquidDenyConnect,
        ..Options::default()
    });
    let out = failed_pull(&env, REG_HOST);
    let rec = assert_diagnosed(&env, &out, "upstream_proxy");
    assert!(
        rec.to_string().contains("403"),
        "the record should carry squid's 403: {rec:#}"
    );
}

#[test]
fn upstream_proxy_closes() {
    if !ready("upstream_proxy_closes") {
        return;
    }
    let env = Env::start(Options {
        upstream: Upstream::Closer,
        ..Options::default()
    });
    let out = failed_pull(&env, REG_HOST);
    assert_diagnosed(&env, &out, "upstream_proxy");
}

#[test]
fn data_endpoint_unreachable_rest_works() {
    if !ready("data_endpoint_unreachable_rest_works") {
        return;
    }
    let env = Env::start(Options {
        data_endpoint_blocked: true,
        ..Options::default()
    });
    let login = env.docker_login(USER, PASSWORD);
    assert!(
        login.success,
        "login (REST endpoint) must work:\n{}",
        env.dump()
    );
    let out = env.docker(&["pull", &image(REG_HOST)]);
    assert!(!out.success, "pull must fail on the blocked data endpoint");
    // dockerd 20.10 retries the image configuration 6 times whatever --max-download-attempts
    // says, and names the proxy's reason, not the data host.
    assert_printed(&out, "error pulling image configuration");
    let rec = assert_diagnosed(&env, &out, "data_endpoint_firewall");
    assert!(rec.to_string().contains(DATA_HOST), "{rec:#}");
}

/// A user the token service lets pull `e2e/busybox` and nothing else logs in, pulls it, tags it
/// as `target` and pushes: refused, in Docker's words, and diagnosed `not_authorized`.
fn push_refused(test: &str, target: &str) {
    if !ready(test) {
        return;
    }
    let env = Env::start(Options {
        mode: Mode::Intercept,
        auth: Auth::Token,
        ..Options::default()
    });
    let login = env.docker_login(PULL_USER, PASSWORD);
    assert!(login.success, "{}", env.dump());
    let pull = env.docker(&["pull", &image(REG_HOST)]);
    assert!(pull.success, "a pull-only user may pull:\n{}", env.dump());
    assert!(env.docker(&["tag", &image(REG_HOST), target]).success);
    let out = env.docker(&["push", target]);
    assert!(!out.success, "push must be refused");
    assert_printed(&out, "denied: requested access to the resource is denied");
    assert_diagnosed(&env, &out, "not_authorized");
    assert_no_unprinted_symptom(&env, &out, SymptomMatch::Whole);
}

#[test]
fn push_without_push_rights() {
    push_refused(
        "push_without_push_rights",
        &format!("{REG_HOST}/{IMAGE_REPO}:pushed"),
    );
}

#[test]
fn push_to_a_repository_without_rights() {
    // Not even pull on the target: the blobs' existence checks are refused already.
    push_refused(
        "push_to_a_repository_without_rights",
        &format!("{REG_HOST}/e2e/elsewhere:pushed"),
    );
}

#[test]
fn daemon_proxy_url_with_https_scheme() {
    if !ready("daemon_proxy_url_with_https_scheme") {
        return;
    }
    let env = Env::start(Options {
        daemon_proxy: DaemonProxy::RegdocHttpsScheme,
        ..Options::default()
    });
    let out = env.docker_login(USER, PASSWORD);
    assert!(!out.success);
    assert_printed(&out, "proxyconnect tcp");
    assert_diagnosed_as(
        &env,
        &out,
        "proxy_scheme_mismatch",
        &["docker_config"],
        SymptomMatch::Whole,
    );
}

#[test]
fn interception_ca_not_trusted_by_dockerd() {
    // regdoc intercepts the registry, but the daemon's certs.d holds only the registry's CA.
    if !ready("interception_ca_not_trusted_by_dockerd") {
        return;
    }
    let env = Env::start(Options {
        mode: Mode::Intercept,
        client_trusts_regdoc: false,
        ..Options::default()
    });
    assert_eq!(env.client_trust(REG_HOST), Some(Ca::Registry));
    let out = failed_pull(&env, REG_HOST);
    assert_printed(
        &out,
        &format!("Get \"https://{REG_HOST}/v2/\": x509: certificate signed by unknown authority"),
    );
    assert_diagnosed_as(
        &env,
        &out,
        "intercept_ca_untrusted",
        &[],
        SymptomMatch::Whole,
    );
}

// ---- issue 10: diagnosis as the client lives it ----

#[test]
fn hosts_file_registry_healthy() {
    // regdoc as deployed (the system resolver, no [dns] section) and a registry name that only
    // /etc/hosts knows: the zone server answers NXDOMAIN for it.
    if !ready("hosts_file_registry_healthy") {
        return;
    }
    let env = Env::start(Options {
        regdoc_as_deployed: true,
        hosts: vec![(HOSTS_HOST.to_string(), REGISTRY_IP)],
        ..Options::default()
    });
    assert!(!zone_knows(HOSTS_HOST));
    assert!(env
        .hosts_file()
        .contains(&format!("{REGISTRY_IP} {HOSTS_HOST}")));
    assert_eq!(env.client_trust(HOSTS_HOST), Some(Ca::Registry));
    login_pull_run_at(&env, HOSTS_HOST, USER);
    assert_regdoc_saw(&env, HOSTS_HOST, Some("tunnel"));
    assert_no_failures(&env);
    let recs = wait_connection_records(&env, HOSTS_HOST);
    assert!(!recs.is_empty());
    for r in &recs {
        assert_eq!(
            dns_source_of(r).as_deref(),
            Some("hosts_file"),
            "every connection to {HOSTS_HOST} was resolved from /etc/hosts: {r:#}"
        );
    }
}

#[test]
fn hosts_file_pinned_address_refuses() {
    // Someone pinned the registry in /etc/hosts to an address that refuses; the zone server
    // still answers the registry's real address, so only a resolver that reads /etc/hosts (as
    // dockerd's does) goes to the pinned one.
    if !ready("hosts_file_pinned_address_refuses") {
        return;
    }
    let env = Env::start(Options {
        regdoc_as_deployed: true,
        hosts: vec![(REG_HOST.to_string(), REFUSING_IP)],
        ..Options::default()
    });
    assert!(env
        .hosts_file()
        .contains(&format!("{REFUSING_IP} {REG_HOST}")));
    let out = env.docker(&["pull", &image(REG_HOST)]);
    // A resolver that ignores /etc/hosts reaches the real registry, which asks for credentials
    // (`no basic auth credentials`) instead of refusing the connection.
    let reached: Vec<String> = wait_connection_records(&env, REG_HOST)
        .iter()
        .filter_map(|r| r.get("resolved").map(|v| v.to_string()))
        .collect();
    assert!(
        !reached.iter().any(|a| a.contains(&REGISTRY_IP.to_string())),
        "regdoc connected to the zone's address {REGISTRY_IP}, not the one /etc/hosts pins \
         ({REFUSING_IP}): resolved {reached:?}; the client printed:\n{}",
        out.text()
    );
    assert!(!out.success, "pull from {REG_HOST} unexpectedly worked");
    assert_printed(&out, &format!("Get \"https://{REG_HOST}/v2/\""));
    let rec = assert_diagnosed(&env, &out, "client_firewall");
    let evidence = rec
        .get("evidence")
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        evidence.contains("/etc/hosts"),
        "the evidence must name the hand-pinned address in /etc/hosts: {rec:#}"
    );
    assert_eq!(
        dns_source_of(&rec).as_deref(),
        Some("hosts_file"),
        "{rec:#}"
    );
}

#[test]
fn alt_port_healthy_passthrough() {
    if !ready("alt_port_healthy_passthrough") {
        return;
    }
    let env = Env::start(Options {
        alt_port: true,
        ..Options::default()
    });
    assert_eq!(env.client_trust(&alt_host()), Some(Ca::Registry));
    login_pull_run_at(&env, &alt_host(), USER);
    assert_regdoc_saw(&env, &alt_host(), Some("tunnel"));
    assert_no_failures(&env);
}

/// The registry URL with its port must be in the client's line and in regdoc's symptom.
fn assert_symptom_names(rec: &serde_json::Value, url: &str) {
    assert!(
        client_symptom(rec).is_some_and(|s| s.contains(url)),
        "client_symptom must name {url}: {rec:#}"
    );
}

#[test]
fn alt_port_upstream_proxy_refuses_connect() {
    // squid's ACLs allow any port: its 403 is `deny CONNECT`, not a port rule.
    if !ready("alt_port_upstream_proxy_refuses_connect") {
        return;
    }
    let env = Env::start(Options {
        alt_port: true,
        upstream: Upstream::SquidDenyConnect,
        ..Options::default()
    });
    let out = failed_pull(&env, &alt_host());
    let rec = assert_diagnosed(&env, &out, "upstream_proxy");
    assert_symptom_names(&rec, &format!("https://{}/v2/", alt_host()));
    assert!(rec.to_string().contains("403"), "{rec:#}");
}

#[test]
fn alt_port_registry_name_does_not_resolve() {
    if !ready("alt_port_registry_name_does_not_resolve") {
        return;
    }
    let env = Env::start(Options {
        alt_port: true,
        ..Options::default()
    });
    let host = format!("{NX_HOST}:{ALT_PORT}");
    let out = failed_pull(&env, &host);
    let rec = assert_diagnosed(&env, &out, "registry_name");
    assert_symptom_names(&rec, &format!("https://{host}/v2/"));
}

#[test]
fn alt_port_wrong_password_interception() {
    // regdoc intercepts a listed host on a port other than 443 too.
    if !ready("alt_port_wrong_password_interception") {
        return;
    }
    let env = Env::start(Options {
        alt_port: true,
        mode: Mode::Intercept,
        ..Options::default()
    });
    assert_eq!(env.client_trust(&alt_host()), Some(Ca::Regdoc));
    let out = env.docker(&["login", "-u", USER, "-p", "not-the-password", &alt_host()]);
    assert!(!out.success);
    let line = format!(
        "Error response from daemon: login attempt to https://{}/v2/ failed with status: 401 Unauthorized",
        alt_host()
    );
    assert_printed(&out, &line);
    assert_regdoc_saw(&env, &alt_host(), Some("intercept"));
    let rec = assert_diagnosed_as(
        &env,
        &out,
        "invalid_credentials",
        &["expired_credentials"],
        SymptomMatch::Whole,
    );
    assert_symptom_names(&rec, &format!("https://{}/v2/", alt_host()));
}

#[test]
fn token_rejected_by_registry_login() {
    // The token server issues a token (right password) that the registry answers 401 to: it is
    // signed by a key the registry does not trust. regdoc intercepts both, on :5443.
    if !ready("token_rejected_by_registry_login") {
        return;
    }
    let env = Env::start(Options {
        alt_port: true,
        mode: Mode::Intercept,
        auth: Auth::Token,
        token_rejected: true,
        ..Options::default()
    });
    assert_eq!(env.client_trust(&alt_host()), Some(Ca::Regdoc));
    let out = env.docker(&["login", "-u", USER, "-p", PASSWORD, &alt_host()]);
    assert!(!out.success);
    let line = format!(
        "Error response from daemon: login attempt to https://{}/v2/ failed with status: 401 Unauthorized",
        alt_host()
    );
    assert_printed(&out, &line);
    assert_regdoc_saw(&env, AUTH_HOST, Some("intercept"));
    assert_regdoc_saw(&env, &alt_host(), Some("intercept"));
    let rec = assert_diagnosed_as(
        &env,
        &out,
        "invalid_credentials",
        &["expired_credentials"],
        SymptomMatch::Whole,
    );
    assert_eq!(client_symptom(&rec), Some(line.as_str()), "{rec:#}");
}

/// `docker login` to the firewalled "private" registry; it must fail with ACR's 403.
fn login_to_firewalled_private_registry(env: &Env) -> (Output, String) {
    let out = env.docker(&["login", "-u", USER, "-p", PASSWORD, PRIVFW_HOST]);
    assert!(!out.success);
    let line = format!(
        "Error response from daemon: login attempt to https://{PRIVFW_HOST}/v2/ failed with status: 403 Forbidden"
    );
    assert_printed(&out, &line);
    (out, line)
}

#[test]
fn private_registry_public_answer_firewall_interception() {
    // The registry is declared private (private_endpoint, 10.231.0.0/24) but its name resolves
    // to a public address, where ACR's firewall answers 403 DENIED. regdoc sees the 403.
    if !ready("private_registry_public_answer_firewall_interception") {
        return;
    }
    let env = Env::start(Options {
        mode: Mode::Intercept,
        ..Options::default()
    });
    assert_eq!(env.client_trust(PRIVFW_HOST), Some(Ca::Regdoc));
    let (out, line) = login_to_firewalled_private_registry(&env);
    assert_regdoc_saw(&env, PRIVFW_HOST, Some("intercept"));
    // Every record blames the name resolution: the warning when the public address came back,
    // and each 403 the public endpoint's firewall answered, with that firewall as the
    // alternative.
    let failures = env.wait_failures();
    for r in &failures {
        assert_eq!(
            cause_id(r).as_deref(),
            Some("private_endpoint_dns"),
            "{r:#}"
        );
        if r.get("phase").and_then(|v| v.as_str()) == Some("http") {
            assert_eq!(other_cause_ids(r), ["public_access_rules"], "{r:#}");
        }
    }
    // The login's authenticated `GET /v2/` (its second) carries the words Docker printed;
    // the first, which a pull sends too, only expects them.
    assert!(
        failures
            .iter()
            .any(|r| client_symptom(r) == Some(line.as_str())),
        "no record says what Docker printed ({line}): {failures:#?}"
    );
    assert_no_unprinted_symptom(&env, &out, SymptomMatch::Whole);
}

#[test]
fn private_registry_public_answer_firewall_passthrough() {
    // The same through a tunnel: regdoc cannot see the 403, so it must not claim the words.
    if !ready("private_registry_public_answer_firewall_passthrough") {
        return;
    }
    let env = Env::start(Options::default());
    assert_eq!(env.client_trust(PRIVFW_HOST), Some(Ca::Registry));
    let (out, _) = login_to_firewalled_private_registry(&env);
    assert_regdoc_saw(&env, PRIVFW_HOST, Some("tunnel"));
    let failures = assert_no_unprinted_symptom(&env, &out, SymptomMatch::Whole);
    assert!(
        failures
            .iter()
            .all(|r| cause_id(r).as_deref() == Some("private_endpoint_dns")),
        "{failures:#?}"
    );
}

/// A pull through mitmproxy as regdoc's upstream: the daemon refuses mitmproxy's certificate.
fn tls_inspection_by_mitmproxy(tls12: bool) {
    let env = Env::start(Options {
        upstream: Upstream::Mitmproxy { tls12 },
        ..Options::default()
    });
    assert_eq!(env.client_trust(REG_HOST), Some(Ca::Registry));
    assert!(env.mitmproxy_ca().is_some(), "mitmproxy made no CA");
    let out = failed_pull(&env, REG_HOST);
    assert_printed(
        &out,
        &format!("Get \"https://{REG_HOST}/v2/\": x509: certificate signed by unknown authority"),
    );
    // The certificate the daemon refused was mitmproxy's: it logged the client's refusal.
    assert!(
        wait_for(Duration::from_secs(10), || env
            .mitmproxy_log()
            .contains("does not trust the proxy's certificate")),
        "mitmproxy did not see the daemon refuse its certificate:\n{}",
        env.mitmproxy_log()
    );
    assert_diagnosed_as(&env, &out, "tls_interception", &[], SymptomMatch::Whole);
    let failures = env.failures();
    assert!(
        failures.iter().any(|r| r
            .get("evidence")
            .is_some_and(|e| e.to_string().contains("mitmproxy"))),
        "a record's evidence must name the issuer (mitmproxy): {failures:#?}"
    );
}

#[test]
fn tls_inspection_upstream_mitmproxy() {
    if !ready("tls_inspection_upstream_mitmproxy") {
        return;
    }
    tls_inspection_by_mitmproxy(false);
}

#[test]
fn tls_inspection_upstream_mitmproxy_tls12() {
    if !ready("tls_inspection_upstream_mitmproxy_tls12") {
        return;
    }
    tls_inspection_by_mitmproxy(true);
}

#[test]
fn sni_filter_resets_client_hello() {
    // A firewall that reads the ClientHello's server_name and answers it with a TCP reset.
    if !ready("sni_filter_resets_client_hello") {
        return;
    }
    let env = Env::start(Options {
        sni_filter: true,
        ..Options::default()
    });
    let out = failed_pull(&env, SNI_HOST);
    assert!(
        env.sni_filter_resets() > 0,
        "the SNI filter reset nothing: the client met something else"
    );
    // regdoc relays the server's reset as a close: Go reads EOF where it waited for the
    // ServerHello.
    assert_printed(
        &out,
        &format!("Error response from daemon: Get \"https://{SNI_HOST}/v2/\": EOF"),
    );
    assert_diagnosed(&env, &out, "client_firewall");
    let failures = env.failures();
    assert!(
        failures.iter().any(|r| {
            r.get("phase").and_then(|v| v.as_str()) == Some("tls")
                && r.pointer("/tls/sni").and_then(|v| v.as_str()) == Some(SNI_HOST)
        }),
        "a failure record in the tls phase must name the SNI {SNI_HOST}: {failures:#?}"
    );
}

/// Not a test but a measurement, run by `benches/docker-pull.sh`: how long the real daemon
/// takes to pull an image with one large layer (token auth, blob redirect to the data
/// endpoint) with no proxy, through Squid and through regdoc, in one environment. The three
/// paths take turns, each round in a rotated order, so a drift of the machine's load is shared
/// among them. Prints a markdown table (and writes it to `PULL_OUT`, when set).
#[test]
#[ignore = "a benchmark: benches/docker-pull.sh runs it"]
fn docker_pull_timing() {
    if !ready("docker_pull_timing") {
        return;
    }
    let knob = |name: &str, default: u64| -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let runs = knob("PULL_RUNS", 3).clamp(1, 20) as usize;
    let layer_mib = knob("PULL_LAYER_MIB", 256).clamp(1, 4096);
    let mut env = Env::start(Options {
        auth: Auth::Token,
        every_path: true,
        layer_bytes: layer_mib << 20,
        ..Options::default()
    });
    let paths = [
        ("no proxy", DaemonProxy::Direct),
        ("Squid", DaemonProxy::SquidOnly),
        ("regdoc", DaemonProxy::Regdoc),
    ];
    // One pull that is not counted: the first pull of a fresh environment also warms the
    // registry's storage and the page cache, which would count against whichever path is first.
    env.restart_dockerd(DaemonProxy::Direct);
    assert!(env.docker_login(PULL_USER, PASSWORD).success);
    assert!(
        env.docker(&["pull", &image(REG_HOST)]).success,
        "{}",
        env.dump()
    );
    assert!(env.docker(&["rmi", &image(REG_HOST)]).success);
    let mut secs: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    for round in 0..runs {
        for k in 0..paths.len() {
            let i = (round + k) % paths.len();
            let (name, via) = paths[i];
            env.restart_dockerd(via);
            let login = env.docker_login(PULL_USER, PASSWORD);
            assert!(login.success, "login via {name} failed:\n{}", env.dump());
            let started = std::time::Instant::now();
            let pull = env.docker(&["pull", &image(REG_HOST)]);
            let took = started.elapsed().as_secs_f64();
            assert!(pull.success, "pull via {name} failed:\n{}", env.dump());
            assert!(env.docker(&["rmi", &image(REG_HOST)]).success);
            secs[i].push(took);
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let base = median(&secs[0]);
    let mut table = format!(
        "| path | docker pull, {layer_mib} MiB layer, s (median of {runs}) | runs | × no proxy |\n\
         |---|---:|---|---:|\n"
    );
    for (i, (name, _)) in paths.iter().enumerate() {
        let m = median(&secs[i]);
        let all: Vec<String> = secs[i].iter().map(|s| format!("{s:.2}")).collect();
        table += &format!(
            "| {name} | {m:.2} | {} | {:.2}× |\n",
            all.join(", "),
            m / base
        );
    }
    println!("\n{table}");
    if let Ok(out) = std::env::var("PULL_OUT") {
        std::fs::write(out, &table).expect("write PULL_OUT");
    }
    // Every pull above went where it was sent: regdoc saw the registry and the data endpoint.
    assert_regdoc_saw(&env, REG_HOST, Some("tunnel"));
    assert_regdoc_saw(&env, DATA_HOST, Some("tunnel"));
}

/// `regdoc check` with the scenario's own configuration (the file `run` was started with),
/// `stdin` as its standard input; returns its exit status and JSON report.
fn regdoc_check(env: &Env, args: &[&str], stdin: &str) -> (Option<i32>, serde_json::Value) {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, text) = regdoc_check_output(env, &all, stdin);
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (code, json)
}

/// `regdoc check ARGS` as a person runs it (the table, unless `--json` is among `args`): its
/// exit status and standard output, printed for the test log.
fn regdoc_check_output(env: &Env, args: &[&str], stdin: &str) -> (Option<i32>, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("timeout")
        .args(["-k", "5", "120"])
        .arg(env!("CARGO_BIN_EXE_regdoc"))
        .arg("check")
        .args(args)
        .arg("--config")
        .arg(env.dir.join("regdoc.toml"))
        .env_remove("REGDOC_CONFIG")
        .env("SSL_CERT_FILE", daemon_roots(env))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("regdoc check starts");
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("regdoc check ends");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    eprintln!("$ regdoc check {}\n{text}{err}", args.join(" "));
    env.secrets.assert_absent("regdoc check output", &text);
    env.secrets.assert_absent("regdoc check stderr", &err);
    (out.status.code(), text)
}

/// What the test's Docker daemon trusts, as one PEM file: its system roots (the data
/// endpoint's CA among them) and the registry's CA it finds in certs.d.
fn daemon_roots(env: &Env) -> std::path::PathBuf {
    let mut pem = std::fs::read_to_string(env.dir.join("system-roots.pem")).unwrap_or_default();
    pem.push_str(&std::fs::read_to_string(env.dir.join("registry-ca.crt")).unwrap_or_default());
    let path = env.dir.join("check-roots.pem");
    std::fs::write(&path, pem).expect("write the check's roots");
    path
}

/// The cause id of the check's step `name`.
fn check_cause(report: &serde_json::Value, name: &str) -> Option<String> {
    report["steps"]
        .as_array()?
        .iter()
        .find(|s| s["step"] == name)?
        .get("cause")?
        .as_str()
        .map(str::to_string)
}

#[test]
fn check_names_the_cause_run_logs_for_the_same_fault() {
    // Issue 14: for each fault, `regdoc check` and `run`'s record of a real Docker client name
    // the same cause id.
    if !ready("check_names_the_cause_run_logs_for_the_same_fault") {
        return;
    }
    let env = Env::start(Options {
        mode: Mode::Intercept,
        auth: Auth::Token,
        ..Options::default()
    });
    // A healthy registry: the check passes every step it can run without an image.
    env.secrets.register(PASSWORD);
    let image = format!("{IMAGE_REPO}:{IMAGE_TAG}");
    let (code, healthy) = regdoc_check(
        &env,
        &[
            REG_HOST,
            "--username",
            USER,
            "--password-stdin",
            "--image",
            &image,
        ],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(code, Some(0), "{healthy:#}");
    assert_eq!(healthy["healthy"], true);
    // The blob came from the data endpoint the registry redirected to.
    let data_get = healthy["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["step"] == "data GET"))
        .expect("a data GET step");
    assert!(
        data_get["detail"]
            .as_str()
            .unwrap_or("")
            .contains(DATA_HOST),
        "{healthy:#}"
    );

    // A private registry whose name resolves to a public address, where ACR's firewall
    // answers 403: run blames the name resolution, so must the check, at both steps.
    let (out, _) = login_to_firewalled_private_registry(&env);
    let run_priv = env.wait_failures();
    assert!(!out.success);
    assert!(run_priv
        .iter()
        .all(|r| cause_id(r).as_deref() == Some("private_endpoint_dns")));
    let (code, private) = regdoc_check(
        &env,
        &[PRIVFW_HOST, "--username", USER, "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(code, Some(1), "{private:#}");
    for step in ["dns", "GET /v2/"] {
        assert_eq!(
            check_cause(&private, step).as_deref(),
            Some("private_endpoint_dns"),
            "{step}: {private:#}"
        );
    }
    let private_failures = env.failures().len();

    // NXDOMAIN.
    failed_pull(&env, NX_HOST);
    let after = env.wait_failures();
    let run_nx = after[private_failures..]
        .first()
        .cloned()
        .expect("a failure record of the pull");
    assert_eq!(cause_id(&run_nx).as_deref(), Some("registry_name"));
    let (code, nx) = regdoc_check(&env, &[NX_HOST], "");
    assert_eq!(code, Some(1), "{nx:#}");
    assert_eq!(check_cause(&nx, "dns"), cause_id(&run_nx), "{nx:#}");

    // A wrong password at the token server.
    let before = env.failures().len();
    let out = env.docker_login(USER, "not-the-password");
    assert!(!out.success);
    let after = env.wait_failures();
    let run_pw: Vec<Option<String>> = after[before..].iter().map(cause_id).collect();
    assert!(
        !run_pw.is_empty()
            && run_pw
                .iter()
                .all(|c| c.as_deref() == Some("invalid_credentials")),
        "run's records of the wrong login: {run_pw:?}"
    );
    let (code, pw) = regdoc_check(
        &env,
        &[REG_HOST, "--username", USER, "--password-stdin"],
        "not-the-password\n",
    );
    assert_eq!(code, Some(1), "{pw:#}");
    assert_eq!(check_cause(&pw, "token"), run_pw[0], "{pw:#}");
}

/// Run's cause for a failed `docker pull` of the registry, and the check's step `step` for
/// the same registry: the same id.
fn pull_and_check_agree(env: &Env, step: &str, args: &[&str]) -> serde_json::Value {
    let out = failed_pull(env, REG_HOST);
    let failures = env.wait_failures();
    let run_cause = failures.first().and_then(cause_id);
    assert!(run_cause.is_some(), "{}", out.text());
    let mut all = vec![REG_HOST];
    all.extend_from_slice(args);
    let (code, report) = regdoc_check(env, &all, "");
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(check_cause(&report, step), run_cause, "{report:#}");
    report
}

#[test]
fn check_agrees_with_run_on_the_path_to_the_registry() {
    // Issue 14: the upstream proxy that refuses, the upstream proxy that inspects TLS, and
    // the data endpoint a firewall drops, each named by `regdoc check` as `run` names it.
    if !ready("check_agrees_with_run_on_the_path_to_the_registry") {
        return;
    }
    {
        let env = Env::start(Options {
            upstream: Upstream::SquidDenyConnect,
            ..Options::default()
        });
        pull_and_check_agree(&env, "upstream proxy", &[]);
    }
    {
        let env = Env::start(Options {
            upstream: Upstream::Mitmproxy { tls12: false },
            ..Options::default()
        });
        let report = pull_and_check_agree(&env, "tls", &[]);
        assert!(
            report.to_string().contains("mitmproxy"),
            "the issuer: {report:#}"
        );
    }
    {
        let env = Env::start(Options {
            data_endpoint_blocked: true,
            ..Options::default()
        });
        let reference = format!("{IMAGE_REPO}:{IMAGE_TAG}");
        let login = env.docker_login(USER, PASSWORD);
        assert!(login.success, "login (REST endpoint) must work");
        let out = env.docker(&["pull", &image(REG_HOST)]);
        assert!(!out.success);
        let run_cause = env.wait_failures().first().and_then(cause_id);
        assert_eq!(run_cause.as_deref(), Some("data_endpoint_firewall"));
        let (code, report) = regdoc_check(
            &env,
            &[
                REG_HOST,
                "--username",
                USER,
                "--password-stdin",
                "--image",
                &reference,
            ],
            &format!("{PASSWORD}\n"),
        );
        assert_eq!(code, Some(1), "{report:#}");
        // A Basic registry: no token flow, Docker's Basic login instead.
        let result = |name: &str| {
            report["steps"]
                .as_array()
                .and_then(|s| s.iter().find(|s| s["step"] == name))
                .map(|s| s["result"].clone())
        };
        assert_eq!(result("token"), Some("skipped".into()), "{report:#}");
        assert_eq!(result("login"), Some("ok".into()), "{report:#}");
        // Both the blob's redirect and the configured region lead to the dropped endpoint.
        assert_eq!(check_cause(&report, "data tcp"), run_cause, "{report:#}");
        assert_eq!(
            check_cause(&report, "data endpoint eastus"),
            run_cause,
            "{report:#}"
        );
    }
}

#[test]
fn throttled_registry_pull_and_check_agree() {
    // Issue 14: a registry past its request limits answers 429 `TOOMANYREQUESTS`. Docker
    // prints the registry's error, `run` (which reads the exchange through interception) logs
    // `throttled` with Docker's words, and `regdoc check` names the same cause at the first
    // request it makes.
    if !ready("throttled_registry_pull_and_check_agree") {
        return;
    }
    let env = Env::start(Options {
        mode: Mode::Intercept,
        ..Options::default()
    });
    assert_eq!(env.client_trust(THROTTLE_HOST), Some(Ca::Regdoc));
    let out = env.docker(&["pull", &image(THROTTLE_HOST)]);
    assert!(!out.success, "a throttled pull must fail:\n{}", out.text());
    // The error's message is its code's own ("too many requests"), so Docker prints the code alone.
    assert_printed(&out, "Error response from daemon: toomanyrequests");
    assert_regdoc_saw(&env, THROTTLE_HOST, Some("intercept"));
    // The tag's HEAD was refused first; Docker asked again with GET and printed that answer's
    // error, so the HEAD's record rightly carries no words.
    let rec = assert_diagnosed_expect(
        &env,
        &out,
        Expect {
            symptomless_records_ok: true,
            ..Expect::cause("throttled")
        },
    );
    for r in env.failures() {
        if client_symptom(&r).is_none() && expected_client_symptom(&r).is_none() {
            let error = r.get("error").and_then(|v| v.as_str()).unwrap_or("");
            assert!(
                error.contains("HEAD "),
                "only the HEAD goes without words: {r:#}"
            );
        }
    }
    assert_eq!(
        client_symptom(&rec),
        Some("Error response from daemon: toomanyrequests"),
        "{rec:#}"
    );

    let (code, report) = regdoc_check(&env, &[THROTTLE_HOST], "");
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(
        check_cause(&report, "GET /v2/"),
        cause_id(&rec),
        "{report:#}"
    );

    // The table a person reads, for the healthy registry beside it and for two faults: the
    // verdict, and each problem's cause on its step's row.
    env.secrets.register(PASSWORD);
    let image = format!("{IMAGE_REPO}:{IMAGE_TAG}");
    let args = [
        REG_HOST,
        "--username",
        USER,
        "--password-stdin",
        "--image",
        &image,
    ];
    let (code, table) = regdoc_check_output(&env, &args, &format!("{PASSWORD}\n"));
    assert_eq!(code, Some(0), "{table}");
    assert!(table.contains("\nno problem found"), "{table}");
    for (host, step, cause) in [
        (THROTTLE_HOST, "GET /v2/", "throttled"),
        (NX_HOST, "dns", "registry_name"),
    ] {
        let (code, table) = regdoc_check_output(&env, &[host], "");
        assert_eq!(code, Some(1), "{table}");
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(step) && l.contains(cause)),
            "the {step} row names {cause}:\n{table}"
        );
    }
}
