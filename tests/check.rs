//! `regdoc check` against in-process fixtures: the ACR fixture (token auth, blob redirects to
//! its data endpoint, faults), a test DNS server, and fake upstream proxies, all on loopback.
//! Names reach the fixture through `connect_to` rules or the test DNS server, never the
//! network. Each fault must be named with the cause id `run` gives it.

mod common;

use common::{acr, dns, net};

use acr::{AcrFixture, Mode};
use regdoc::cmd::check::args::{Credentials, Image, Secret};
use regdoc::cmd::check::{check, Outcome, Plan, Report};
use regdoc::config::{ClientKind, Config};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TIMEOUT: Duration = Duration::from_secs(10);
const USER: &str = "alice";
const PASSWORD: &str = "correct-horse-battery";

async fn fixture(host: &str) -> AcrFixture {
    let fx = AcrFixture::start(host).await;
    fx.add_user(USER, PASSWORD, &[("app", &["pull"])]);
    fx.add_manifest("app", "v1");
    fx
}

/// The fixture's registry and data endpoint reached through `connect_to`, its CA trusted
/// through `intercept.extra_roots`, as an operator would configure `run` for it.
fn config(fx: &AcrFixture) -> Config {
    let mut cfg = Config::default();
    cfg.dns.connect_to = vec![
        format!("{}:443={}", fx.host, fx.addr),
        format!("{}:443={}", fx.data_host(), fx.addr),
    ];
    cfg.intercept.extra_roots = vec![fx.ca_file.clone()];
    // The fixture is on loopback, which `run` refuses by default (as tests/common/proxy.rs).
    cfg.allowed_destinations
        .push("127.0.0.0/8".parse().expect("literal rule"));
    cfg
}

fn plan(host: &str, credentials: Credentials, image: bool) -> Plan {
    Plan {
        host: host.into(),
        port: 443,
        image: image.then(|| Image {
            repository: "app".into(),
            reference: "v1".into(),
        }),
        credentials,
    }
}

fn password(p: &str) -> Credentials {
    Credentials::Password {
        username: USER.into(),
        password: Secret::new(p.into()),
    }
}

fn step<'a>(r: &'a Report, name: &str) -> &'a regdoc::cmd::check::Step {
    r.steps
        .iter()
        .find(|s| s.step == name)
        .unwrap_or_else(|| panic!("no step {name:?} in\n{}", r.table()))
}

fn cause(r: &Report, name: &str) -> Option<&'static str> {
    step(r, name).cause.map(|c| c.id)
}

/// Print the table (the report's examples come from these runs) and check that no secret the
/// fixture knows or issued is in either output.
fn show(fx: &AcrFixture, r: &Report) -> String {
    let table = r.table();
    eprintln!("\n{table}");
    let json = r.json();
    // Every password and token the fixture knows or issued, in every encoding.
    let scan = common::secrets::Secrets::new();
    for secret in fx.secrets().into_iter().chain([PASSWORD.to_string()]) {
        if secret.len() >= common::secrets::MIN_SECRET_LEN {
            scan.register(secret);
        }
    }
    scan.assert_absent("table", &table);
    scan.assert_absent("json", &json);
    table
}

#[tokio::test]
async fn a_healthy_registry_passes_every_step_through_its_data_endpoint() {
    let fx = fixture("healthy.azurecr.io").await;
    let r = check(
        config(&fx),
        &plan(&fx.host, password(PASSWORD), true),
        TIMEOUT,
    )
    .await
    .unwrap();
    let table = show(&fx, &r);
    assert!(r.healthy(), "{table}");
    for name in [
        "dns", "tcp", "tls", "GET /v2/", "token", "login", "manifest", "blob", "data dns",
        "data tcp", "data tls", "data GET", "clock",
    ] {
        assert_eq!(step(&r, name).result, Outcome::Ok, "{name}: {table}");
    }
    assert!(step(&r, "dns").detail.contains("connect_to"), "{table}");
    assert!(
        step(&r, "tls").detail.contains("ACR fixture test root"),
        "{table}"
    );
    assert!(
        step(&r, "GET /v2/")
            .detail
            .contains("Bearer realm=https://healthy.azurecr.io/oauth2/token"),
        "{table}"
    );
    assert!(
        step(&r, "token").detail.contains("repository:app:pull"),
        "{table}"
    );
    assert!(step(&r, "blob").detail.contains(&fx.data_host()), "{table}");
    assert!(
        step(&r, "data GET").detail.contains("read 10 bytes"),
        "{table}"
    );
}

#[tokio::test]
async fn a_wrong_password_is_invalid_credentials_at_the_token_step() {
    let fx = fixture("wrongpw.azurecr.io").await;
    let r = check(
        config(&fx),
        &plan(&fx.host, password("not-the-password"), true),
        TIMEOUT,
    )
    .await
    .unwrap();
    let table = show(&fx, &r);
    assert!(!r.healthy());
    assert_eq!(step(&r, "GET /v2/").result, Outcome::Ok, "{table}");
    assert_eq!(cause(&r, "token"), Some("invalid_credentials"), "{table}");
    // Later steps need the token: skipped, with the reason.
    assert_eq!(step(&r, "login").result, Outcome::Skipped, "{table}");
    assert_eq!(step(&r, "manifest").result, Outcome::Skipped, "{table}");
    assert!(!table.contains("not-the-password"));
}

#[tokio::test]
async fn the_registry_firewall_is_public_access_rules_naming_the_ip_it_saw() {
    let fx = fixture("walled.azurecr.io").await;
    fx.set_mode(Mode::Firewall);
    let r = check(
        config(&fx),
        &plan(&fx.host, password(PASSWORD), false),
        TIMEOUT,
    )
    .await
    .unwrap();
    let table = show(&fx, &r);
    assert_eq!(
        cause(&r, "GET /v2/"),
        Some("public_access_rules"),
        "{table}"
    );
    assert!(
        step(&r, "GET /v2/").detail.contains("203.0.113.7"),
        "{table}"
    );
    assert!(step(&r, "GET /v2/").client_symptom.is_some(), "{table}");
    assert_eq!(step(&r, "token").result, Outcome::Skipped, "{table}");
    // The refusal still carries the registry's clock.
    assert_eq!(step(&r, "clock").result, Outcome::Ok, "{table}");
}

/// `regdoc check myregistyr.azurecr.io` with the test DNS server (which knows no name), for
/// `client`.
async fn check_misspelt(dns: &dns::TestDns, client: ClientKind) -> Report {
    let mut cfg = Config::default();
    cfg.dns.nameservers = vec![dns.local_addr().to_string()];
    cfg.diagnosis.client = client;
    let r = check(
        cfg,
        &plan("myregistyr.azurecr.io", Credentials::Anonymous, false),
        TIMEOUT,
    )
    .await
    .unwrap();
    eprintln!("{}", r.table());
    r
}

#[tokio::test]
async fn a_misspelt_registry_is_nxdomain_and_registry_name() {
    let dns = dns::TestDns::start("127.0.0.1:0".parse().unwrap(), dns::Zone::new());
    let r = check_misspelt(&dns, ClientKind::Docker).await;
    assert_eq!(cause(&r, "dns"), Some("registry_name"), "{}", r.table());
    for later in ["tcp", "tls", "GET /v2/", "token"] {
        assert_eq!(step(&r, later).result, Outcome::Skipped, "{later}");
    }
    assert!(dns.was_asked("myregistyr.azurecr.io"));
    // Docker's words and Docker's step, as `run`'s record would give them.
    let dns_step = step(&r, "dns");
    assert_eq!(dns_step.client, ClientKind::Docker);
    assert!(
        r.table()
            .contains("docker: Get \"https://myregistyr.azurecr.io/v2/\": regdoc registry_name: "),
        "{}",
        r.table()
    );
    assert!(dns_step
        .remedy
        .as_deref()
        .is_some_and(|r| r.contains("docker login")));

    // On a containerd node: containerd's words (no `Get "…/v2/":` framing) and its step.
    let r = check_misspelt(&dns, ClientKind::Containerd).await;
    let table = r.table();
    assert_eq!(step(&r, "dns").client, ClientKind::Containerd);
    assert!(
        table.contains(
            "containerd: regdoc registry_name: myregistyr.azurecr.io does not exist (NXDOMAIN)"
        ),
        "{table}"
    );
    assert!(!table.contains("docker"), "{table}");
    assert!(
        r.json().contains("\"client\": \"containerd\""),
        "{}",
        r.json()
    );
}

#[tokio::test]
async fn an_untrusted_certificate_is_tls_interception_naming_the_issuer() {
    let fx = fixture("inspected.azurecr.io").await;
    let mut cfg = config(&fx);
    // The fixture's CA is not trusted: to this host it is an unknown, inspecting issuer.
    cfg.intercept.extra_roots.clear();
    let r = check(cfg, &plan(&fx.host, password(PASSWORD), false), TIMEOUT)
        .await
        .unwrap();
    let table = show(&fx, &r);
    assert_eq!(cause(&r, "tls"), Some("tls_interception"), "{table}");
    assert!(
        step(&r, "tls").detail.contains("ACR fixture test root"),
        "{table}"
    );
    // Nothing is sent over a connection the check does not trust.
    assert_eq!(step(&r, "token").result, Outcome::Skipped, "{table}");
    assert_eq!(fx.requests(), 0);
}

/// A CONNECT proxy that answers `status` to every CONNECT, or (for 200) tunnels to `to`.
async fn fake_upstream(status: &'static str, to: Option<SocketAddr>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    if c.read(&mut b).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                let _ = c
                    .write_all(format!("HTTP/1.1 {status}\r\n\r\n").as_bytes())
                    .await;
                if let Some(to) = to {
                    if let Ok(mut s) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut c, &mut s).await;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_upstream_proxy_that_refuses_is_its_own_step() {
    let fx = fixture("chained.azurecr.io").await;
    let up = fake_upstream("403 Forbidden", None).await;
    let mut cfg = config(&fx);
    // No connect_to rule for the registry: `run` would send it through the upstream proxy.
    cfg.dns.connect_to.clear();
    cfg.upstream.proxy = Some(format!("http://{up}"));
    let r = check(cfg, &plan(&fx.host, password(PASSWORD), false), TIMEOUT)
        .await
        .unwrap();
    let table = show(&fx, &r);
    assert_eq!(step(&r, "dns").result, Outcome::Skipped, "{table}");
    assert_eq!(step(&r, "tcp").result, Outcome::Ok, "{table}");
    assert_eq!(
        cause(&r, "upstream proxy"),
        Some("upstream_proxy"),
        "{table}"
    );
    assert!(step(&r, "upstream proxy").detail.contains("403"), "{table}");
    assert_eq!(step(&r, "tls").result, Outcome::Skipped, "{table}");
}

#[tokio::test]
async fn an_upstream_proxy_that_tunnels_is_healthy() {
    let fx = fixture("tunnelled.azurecr.io").await;
    let up = fake_upstream("200 Connection established", Some(fx.addr)).await;
    let mut cfg = config(&fx);
    cfg.dns.connect_to.clear();
    cfg.upstream.proxy = Some(format!("http://{up}"));
    let r = check(cfg, &plan(&fx.host, password(PASSWORD), false), TIMEOUT)
        .await
        .unwrap();
    let table = show(&fx, &r);
    assert!(r.healthy(), "{table}");
    assert_eq!(step(&r, "upstream proxy").result, Outcome::Ok, "{table}");
    assert_eq!(step(&r, "login").result, Outcome::Ok, "{table}");
}

#[tokio::test]
async fn every_configured_region_is_reached() {
    let fx = fixture("geo.azurecr.io").await;
    let mut cfg = config(&fx);
    // westeurope is served; eastus's data endpoint is refused.
    let dead = net::refused_addr();
    cfg.dns
        .connect_to
        .push(format!("geo.eastus.data.azurecr.io:443={}", dead.addr()));
    cfg.registries.push(
        toml::from_str(
            r#"host = "geo.azurecr.io"
regions = ["westeurope", "eastus"]"#,
        )
        .unwrap(),
    );
    let r = check(cfg, &plan(&fx.host, password(PASSWORD), false), TIMEOUT)
        .await
        .unwrap();
    let table = show(&fx, &r);
    assert_eq!(
        step(&r, "data endpoint westeurope").result,
        Outcome::Ok,
        "{table}"
    );
    let east = step(&r, "data endpoint eastus");
    assert_eq!(east.result, Outcome::Problem, "{table}");
    assert!(
        east.detail.contains("geo.eastus.data.azurecr.io"),
        "{table}"
    );
    assert_eq!(
        east.cause.map(|c| c.id),
        Some("data_endpoint_firewall"),
        "{table}"
    );
}

/// The binary: credentials from standard input only, exit codes 0 / 1 / 2, JSON for scripts.
#[tokio::test]
async fn the_command_reads_the_password_from_stdin_and_exits_by_outcome() {
    let fx = fixture("cli.azurecr.io").await;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("regdoc.toml");
    std::fs::write(
        &conf,
        format!(
            "allowed_destinations = [\"127.0.0.0/8\"]\n[dns]\nconnect_to = [\"{}:443={}\"]\n[intercept]\nextra_roots = [{:?}]\n",
            fx.host, fx.addr, fx.ca_file
        ),
    )
    .unwrap();
    let run = |pw: &'static str, extra: &'static [&'static str]| {
        let conf = conf.clone();
        let host = fx.host.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            use std::process::{Command, Stdio};
            let mut child = Command::new(env!("CARGO_BIN_EXE_regdoc"))
                .args([
                    "check",
                    &host,
                    "--username",
                    USER,
                    "--password-stdin",
                    "--config",
                ])
                .arg(&conf)
                .args(extra)
                .env_remove("REGDOC_CONFIG")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let _ = child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("{pw}\n").as_bytes());
            child.wait_with_output().unwrap()
        })
    };
    let ok = run(PASSWORD, &["--json"]).await.unwrap();
    let out = String::from_utf8_lossy(&ok.stdout).to_string();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["healthy"], true);
    assert!(!out.contains(PASSWORD));
    let bad = run("wrong-password-here", &[]).await.unwrap();
    let out = String::from_utf8_lossy(&bad.stdout).to_string();
    assert_eq!(bad.status.code(), Some(1), "{out}");
    assert!(out.contains("invalid_credentials"), "{out}");
    assert!(!out.contains("wrong-password-here"));
    for secret in fx.secrets() {
        assert!(!out.contains(&secret));
    }
    let usage = run(PASSWORD, &["--timeout", "soon"]).await.unwrap();
    assert_eq!(usage.status.code(), Some(2));
}

#[tokio::test]
async fn throttling_and_a_registry_error_are_named_at_get_v2() {
    let fx = fixture("busy.azurecr.io").await;
    for (mode, want) in [
        (Mode::Throttle, "throttled"),
        (Mode::Unavailable, "registry_error"),
    ] {
        fx.set_mode(mode);
        let r = check(
            config(&fx),
            &plan(&fx.host, password(PASSWORD), false),
            TIMEOUT,
        )
        .await
        .unwrap();
        let table = show(&fx, &r);
        assert_eq!(cause(&r, "GET /v2/"), Some(want), "{table}");
        assert_eq!(step(&r, "token").result, Outcome::Skipped, "{table}");
    }
}

#[tokio::test]
async fn a_refresh_token_the_registry_refuses_is_a_credentials_problem() {
    let fx = fixture("refresh.azurecr.io").await;
    let token = Credentials::RefreshToken(Secret::new("eyJnot.a.refresh-token".into()));
    let r = check(config(&fx), &plan(&fx.host, token, true), TIMEOUT)
        .await
        .unwrap();
    let table = show(&fx, &r);
    assert!(!table.contains("eyJnot.a.refresh-token"), "{table}");
    let token = step(&r, "token");
    assert_eq!(token.result, Outcome::Problem, "{table}");
    assert!(
        matches!(
            token.cause.map(|c| c.id),
            Some("invalid_credentials" | "expired_credentials")
        ),
        "{table}"
    );
}

#[tokio::test]
async fn a_private_registry_answered_outside_its_networks_is_private_endpoint_dns() {
    let fx = fixture("privreg.azurecr.io").await;
    // The name resolves (through the test DNS server) to loopback, outside the private
    // network the configuration expects; the check says so and still goes on, as `run` does.
    let dns = dns::TestDns::start(
        "127.0.0.1:0".parse().unwrap(),
        dns::Zone::new().a("privreg.azurecr.io", [127, 0, 0, 1]),
    );
    let mut cfg = Config::default();
    cfg.dns.nameservers = vec![dns.local_addr().to_string()];
    cfg.intercept.extra_roots = vec![fx.ca_file.clone()];
    cfg.allowed_destinations
        .push("127.0.0.0/8".parse().expect("literal rule"));
    cfg.registries.push(
        toml::from_str(
            r#"host = "privreg.azurecr.io"
private_endpoint = true
expected_cidrs = ["10.20.0.0/16"]"#,
        )
        .unwrap(),
    );
    let mut p = plan(&fx.host, Credentials::Anonymous, false);
    p.port = fx.addr.port();
    cfg.allowed_ports.push(p.port);
    let r = check(cfg, &p, TIMEOUT).await.unwrap();
    let table = show(&fx, &r);
    assert_eq!(cause(&r, "dns"), Some("private_endpoint_dns"), "{table}");
    assert!(step(&r, "dns").detail.contains("127.0.0.1"), "{table}");
    assert_eq!(step(&r, "tls").result, Outcome::Ok, "{table}");
    assert_eq!(step(&r, "GET /v2/").result, Outcome::Ok, "{table}");
}

#[tokio::test]
async fn a_port_run_would_refuse_is_named_before_any_packet() {
    let fx = fixture("oddport.azurecr.io").await;
    let mut p = plan(&fx.host, Credentials::Anonymous, false);
    p.port = fx.addr.port();
    let r = check(config(&fx), &p, TIMEOUT).await.unwrap();
    let table = show(&fx, &r);
    assert_eq!(step(&r, "policy").result, Outcome::Problem, "{table}");
    assert!(step(&r, "policy").cause.is_some(), "{table}");
    assert_eq!(step(&r, "dns").result, Outcome::Skipped, "{table}");
    assert_eq!(fx.requests(), 0);
}

#[tokio::test]
async fn credentials_a_server_echoes_back_are_never_printed() {
    let fx = fixture("echo.azurecr.io").await;
    // The token endpoint quotes the request's credentials back in its error body.
    fx.set_mode(Mode::EchoCredentials);
    for creds in [
        password("echoed-Passw0rd-1"),
        Credentials::RefreshToken(Secret::new("echoed-refresh-token-2".into())),
    ] {
        let r = check(config(&fx), &plan(&fx.host, creds, true), TIMEOUT)
            .await
            .unwrap();
        let table = show(&fx, &r);
        // The credentials reached the echoing token endpoint, and what it said is shown.
        assert_eq!(step(&r, "token").result, Outcome::Problem, "{table}");
        for s in ["echoed-Passw0rd-1", "echoed-refresh-token-2"] {
            let scan = common::secrets::Secrets::new();
            scan.register(s);
            scan.register(format!("{USER}:{s}"));
            scan.assert_absent("table", &table);
            scan.assert_absent("json", &r.json());
        }
    }
}

#[tokio::test]
async fn a_destination_run_refuses_is_named_before_the_dial() {
    let fx = fixture("loopreg.azurecr.io").await;
    let mut cfg = config(&fx);
    // The defaults again: loopback is refused.
    cfg.allowed_destinations = Config::default().allowed_destinations;
    let r = check(cfg, &plan(&fx.host, Credentials::Anonymous, false), TIMEOUT)
        .await
        .unwrap();
    let table = show(&fx, &r);
    assert_eq!(step(&r, "dns").result, Outcome::Ok, "{table}");
    assert_eq!(cause(&r, "policy"), Some("proxy_policy"), "{table}");
    assert!(step(&r, "policy").detail.contains("127.0.0.0/8"), "{table}");
    assert_eq!(step(&r, "tcp").result, Outcome::Skipped, "{table}");
    assert_eq!(fx.requests(), 0);
}

#[tokio::test]
async fn a_certificate_for_another_name_is_judged_as_run_judges_it() {
    let fx = fixture("named.azurecr.io").await;
    let mut cfg = config(&fx);
    // Another registry's name leads to the fixture, whose certificate does not name it.
    cfg.dns
        .connect_to
        .push(format!("elsewhere.azurecr.io:443={}", fx.addr));
    let r = check(
        cfg,
        &plan("elsewhere.azurecr.io", Credentials::Anonymous, false),
        TIMEOUT,
    )
    .await
    .unwrap();
    let table = show(&fx, &r);
    let tls = step(&r, "tls");
    assert_eq!(tls.result, Outcome::Problem, "{table}");
    assert!(tls.detail.contains("names named.azurecr.io"), "{table}");
    // `run`'s rule for a chain that does not name the host: a wrong name or address, or a
    // device answering in the registry's place.
    assert_eq!(tls.cause.map(|c| c.id), Some("registry_name"), "{table}");
    assert_eq!(tls.alternatives, vec!["client_firewall"], "{table}");
}
