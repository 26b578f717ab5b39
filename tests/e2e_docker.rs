//! End to end with the real Docker daemon: `docker login`, `docker pull`, `docker run` and
//! `docker push` through regdoc against a real registry in a network namespace.
//!
//! Needs root and the programs `.ci/run` installs; without them each test skips with a message
//! naming what is missing (under `CI=true` it fails instead). Tests serialise on a file lock.

#[path = "e2e/harness.rs"]
mod harness;

use harness::*;

fn image(host: &str) -> String {
    format!("{host}/{IMAGE_REPO}:{IMAGE_TAG}")
}

/// Login, pull and run the image; every step must succeed.
fn login_pull_run(env: &Env, user: &str) {
    let login = env.docker_login(user, PASSWORD);
    assert!(login.success, "docker login failed:\n{}", env.dump());
    assert_printed(&login, "Login Succeeded");
    let pull = env.docker(&["pull", &image(REG_HOST)]);
    assert!(pull.success, "docker pull failed:\n{}", env.dump());
    assert_printed(&pull, "Pull complete");
    let run = env.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        &image(REG_HOST),
        "/bin/busybox",
        "echo",
        "regdoc-e2e-ran",
    ]);
    assert!(run.success, "docker run failed:\n{}", env.dump());
    assert_printed(&run, "regdoc-e2e-ran");
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
    if !ready("registry_accepts_tcp_and_never_answers") {
        return;
    }
    let env = Env::start(Options::default());
    let out = failed_pull(&env, SILENT_HOST);
    assert_diagnosed(&env, &out, "client_firewall");
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

#[test]
fn push_without_push_rights() {
    if !ready("push_without_push_rights") {
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
    let target = format!("{REG_HOST}/{IMAGE_REPO}:pushed");
    assert!(env.docker(&["tag", &image(REG_HOST), &target]).success);
    let out = env.docker(&["push", &target]);
    assert!(!out.success, "push must be refused");
    assert_printed(&out, "denied: requested access to the resource is denied");
    assert_diagnosed(&env, &out, "not_authorized");
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
        SymptomMatch::WholeBeforeGo120,
    );
}
