//! End to end with containerd (Debian's containerd 1.6 and its `ctr` client) through regdoc.
//!
//! Same prerequisites and skipping rules as `e2e_docker.rs`; a private containerd is started
//! instead of a Docker daemon. `ctr images pull` resolves and fetches in the `ctr` process, so
//! regdoc is `ctr`'s `HTTPS_PROXY` and the registry's trust is containerd's `hosts.toml` layout
//! (`--hosts-dir`, one `<host>/hosts.toml` with `ca = ...` per host).
//!
//! regdoc runs as on a Kubernetes node, with `diagnosis.client = "containerd"`, and every
//! `client_symptom` it writes must be in ctr's output whole (`SymptomMatch::Whole`). Before any
//! exchange regdoc reads (a refused CONNECT, a tunnel), the wire does not say which client it
//! is, and the configuration does: regdoc writes the error containerd prints after `failed to do
//! request: Head "<manifest url>": ` (the manifest's URL never crosses regdoc in the clear).
//! Where containerd words a registry's answer itself (a refused manifest or token request),
//! the `User-Agent` tells regdoc, and it writes containerd's own line. See tests/e2e/NOTES.md
//! for what ctr printed.

mod common;
mod e2e;

use e2e::harness::*;

fn reference(host: &str) -> String {
    format!("{host}/{IMAGE_REPO}:{IMAGE_TAG}")
}

fn start(opts: Options) -> Env {
    Env::start(Options {
        docker: false,
        containerd: true,
        ..opts
    })
}

/// A pull that worked: ctr says so, containerd lists the image, regdoc carried the registry in
/// `mode` and logged no failure.
fn assert_pulled(env: &Env, out: &Output, mode: &str) {
    assert!(out.success, "ctr images pull failed:\n{}", env.dump());
    let listed = env.ctr(&["images", "ls", "-q"]);
    assert!(
        listed.stdout.contains(&reference(REG_HOST)),
        "containerd does not list the pulled image:\n{}",
        listed.text()
    );
    assert_regdoc_saw(env, REG_HOST, Some(mode));
    assert_regdoc_saw(env, DATA_HOST, Some("tunnel"));
    assert_no_failures(env);
}

#[test]
fn containerd_harness_self_check_through_squid() {
    // containerd, ctr, hosts.toml trust and the proxy settings, without regdoc.
    if !ready("containerd_harness_self_check_through_squid") {
        return;
    }
    let env = start(Options {
        daemon_proxy: DaemonProxy::SquidOnly,
        auth: Auth::Token,
        ..Options::default()
    });
    let out = env.ctr_pull(&reference(REG_HOST), Some((USER, PASSWORD)));
    assert!(
        out.success,
        "ctr images pull through squid failed:\n{}",
        env.dump()
    );
    let bad = env.ctr_pull(&reference(REG_HOST), Some((USER, "not-the-password")));
    assert!(!bad.success);
    assert_printed(&bad, "401 Unauthorized");
    assert!(
        env.squid_access_log()
            .contains(&format!("CONNECT {REG_HOST}:443")),
        "squid carried no CONNECT to the registry:\n{}",
        env.squid_access_log()
    );
}

#[test]
fn containerd_healthy_passthrough() {
    if !ready("containerd_healthy_passthrough") {
        return;
    }
    let env = start(Options::default());
    // hosts.toml names the registry's own CA: regdoc leaves TLS alone.
    assert_eq!(env.containerd_trust(REG_HOST), Some(Ca::Registry));
    let out = env.ctr_pull(&reference(REG_HOST), Some((USER, PASSWORD)));
    assert_pulled(&env, &out, "tunnel");
}

#[test]
fn containerd_healthy_interception() {
    if !ready("containerd_healthy_interception") {
        return;
    }
    let env = start(Options {
        mode: Mode::Intercept,
        ..Options::default()
    });
    // hosts.toml names regdoc's CA alone for the registry: a pull that works took regdoc's
    // certificate.
    assert_eq!(env.containerd_trust(REG_HOST), Some(Ca::Regdoc));
    let out = env.ctr_pull(&reference(REG_HOST), Some((USER, PASSWORD)));
    assert_pulled(&env, &out, "intercept");
}

#[test]
fn containerd_healthy_interception_token_server() {
    // containerd posts the OAuth2 form to the token server, through regdoc's interception.
    if !ready("containerd_healthy_interception_token_server") {
        return;
    }
    let env = start(Options {
        mode: Mode::Intercept,
        auth: Auth::Token,
        ..Options::default()
    });
    assert_eq!(env.containerd_trust(REG_HOST), Some(Ca::Regdoc));
    assert_eq!(env.containerd_trust(AUTH_HOST), Some(Ca::Regdoc));
    let out = env.ctr_pull(&reference(REG_HOST), Some((USER, PASSWORD)));
    assert_pulled(&env, &out, "intercept");
    assert_regdoc_saw(&env, AUTH_HOST, Some("intercept"));
}

#[test]
fn containerd_registry_name_does_not_resolve() {
    if !ready("containerd_registry_name_does_not_resolve") {
        return;
    }
    let env = start(Options::default());
    let out = env.ctr_pull(&reference(NX_HOST), None);
    // containerd's words, not Docker's `Get "…/v2/": …`.
    assert_request_failed(
        &env,
        &out,
        NX_HOST,
        "regdoc registry_name: regdoce2enx.azurecr.io does not exist (NXDOMAIN)",
        "registry_name",
    );
}

/// ctr's first request, the tag's manifest on `host`, failed before regdoc could read it: ctr
/// printed `error` in its request framing; every record names `cause`, one says `error`
/// exactly (regdoc saw no path, so the framing is not its to predict), and none claims words
/// ctr did not print.
fn assert_request_failed(env: &Env, out: &Output, host: &str, error: &str, cause: &str) {
    let reference = reference(host);
    assert!(!out.success, "the pull of {reference} must fail");
    assert_printed(
        out,
        &format!(
            "ctr: failed to resolve reference \"{reference}\": failed to do request: Head \"https://{host}/v2/{IMAGE_REPO}/manifests/{IMAGE_TAG}\": {error}"
        ),
    );
    let rec = assert_diagnosed_as(env, out, cause, &[], SymptomMatch::Whole);
    assert_eq!(client_symptom(&rec), Some(error), "{rec:#}");
    assert_no_unprinted_symptom(env, out, SymptomMatch::Whole);
}

fn wrong_password(auth: Auth) {
    let env = start(Options {
        mode: Mode::Intercept,
        auth,
        ..Options::default()
    });
    let out = env.ctr_pull(&reference(REG_HOST), Some((USER, "not-the-password")));
    assert!(!out.success, "a wrong password must fail");
    assert_printed(
        &out,
        "ctr: failed to resolve reference \"regdoce2e.azurecr.io/e2e/busybox:1\": ",
    );
    // containerd frames these failures in its own words (not the registry's error, which
    // Docker and skopeo print): regdoc words them as containerd does, from its User-Agent, so
    // the whole predicted line must be in ctr's output.
    let rec = assert_diagnosed_as(
        &env,
        &out,
        "invalid_credentials",
        &["expired_credentials"],
        SymptomMatch::Whole,
    );
    // Every record says what ctr printed, not the registry's error body. (The token server's
    // refusal of containerd's OAuth2 POST is no failure: containerd retries with a Basic GET,
    // whose refusal is the record.)
    assert_no_unprinted_symptom(&env, &out, SymptomMatch::Whole);
    let said = client_symptom(&rec).unwrap_or_default();
    match auth {
        Auth::Htpasswd => assert_eq!(
            said,
            "pulling from host regdoce2e.azurecr.io failed with status code [manifests 1]: 401 Unauthorized"
        ),
        Auth::Token => assert_eq!(
            said,
            "failed to authorize: failed to fetch oauth token: unexpected status: 401 Unauthorized"
        ),
    }
}

#[test]
fn containerd_wrong_password_htpasswd() {
    if !ready("containerd_wrong_password_htpasswd") {
        return;
    }
    wrong_password(Auth::Htpasswd);
}

#[test]
fn containerd_wrong_password_token_server() {
    if !ready("containerd_wrong_password_token_server") {
        return;
    }
    wrong_password(Auth::Token);
}

#[test]
fn containerd_data_endpoint_unreachable_rest_works() {
    if !ready("containerd_data_endpoint_unreachable_rest_works") {
        return;
    }
    let env = start(Options {
        data_endpoint_blocked: true,
        ..Options::default()
    });
    let out = env.ctr_pull(&reference(REG_HOST), Some((USER, PASSWORD)));
    assert!(
        !out.success,
        "a pull whose blobs cannot be fetched must fail"
    );
    // One attempt (dockerd makes six): ctr fails at regdoc's 8 s connect deadline.
    assert_printed(&out, "ctr: failed to copy: httpReadSeeker: failed open: failed to do request: Get \"https://regdoce2e.eastus.data.azurecr.io/");
    let rec = assert_diagnosed_as(
        &env,
        &out,
        "data_endpoint_firewall",
        &[],
        SymptomMatch::Whole,
    );
    assert_no_unprinted_symptom(&env, &out, SymptomMatch::Whole);
    assert!(
        rec.get("target")
            .and_then(|v| v.as_str())
            .is_some_and(|t| t.starts_with(DATA_HOST)),
        "the record must name the data endpoint: {rec:#}"
    );
}

#[test]
fn containerd_interception_ca_not_trusted() {
    if !ready("containerd_interception_ca_not_trusted") {
        return;
    }
    let env = start(Options {
        mode: Mode::Intercept,
        client_trusts_regdoc: false,
        ..Options::default()
    });
    assert_eq!(env.containerd_trust(REG_HOST), Some(Ca::Registry));
    let out = env.ctr_pull(&reference(REG_HOST), Some((USER, PASSWORD)));
    assert!(!out.success, "ctr must refuse regdoc's certificate");
    assert_printed(&out, "x509: certificate signed by unknown authority");
    assert_diagnosed_as(
        &env,
        &out,
        "intercept_ca_untrusted",
        &[],
        SymptomMatch::Whole,
    );
    assert_no_unprinted_symptom(&env, &out, SymptomMatch::Whole);
}

/// ctr failed to resolve `reference` and printed `line` after its own prefix; every record of
/// regdoc names `cause`, one says `line` exactly, and none claims words ctr did not print.
fn assert_resolution_failed(env: &Env, out: &Output, reference: &str, line: &str, cause: &str) {
    assert!(!out.success, "the pull of {reference} must fail");
    assert_printed(
        out,
        &format!("ctr: failed to resolve reference \"{reference}\": {line}"),
    );
    let rec = assert_diagnosed_as(env, out, cause, &[], SymptomMatch::Whole);
    assert_eq!(client_symptom(&rec), Some(line), "{rec:#}");
    assert_no_unprinted_symptom(env, out, SymptomMatch::Whole);
}

#[test]
fn containerd_tag_not_found() {
    // A tag the repository does not have: the registry answers the tag's HEAD 404 and
    // containerd, with no other host to try, says the reference was not found.
    if !ready("containerd_tag_not_found") {
        return;
    }
    let env = start(Options {
        mode: Mode::Intercept,
        ..Options::default()
    });
    let reference = format!("{REG_HOST}/{IMAGE_REPO}:no-such-tag");
    let out = env.ctr_pull(&reference, Some((USER, PASSWORD)));
    let line = format!("{reference}: not found");
    assert_resolution_failed(&env, &out, &reference, &line, "not_found");
}

#[test]
fn containerd_anonymous_pull_of_a_private_registry() {
    // No credentials for a registry that wants them (token auth): containerd asks the token
    // service anonymously, as the challenge tells it to, and prints the status alone (not the
    // service's error body, which Docker would print).
    if !ready("containerd_anonymous_pull_of_a_private_registry") {
        return;
    }
    let env = start(Options {
        mode: Mode::Intercept,
        auth: Auth::Token,
        ..Options::default()
    });
    let out = env.ctr_pull(&reference(REG_HOST), None);
    assert_resolution_failed(
        &env,
        &out,
        &reference(REG_HOST),
        "failed to authorize: failed to fetch anonymous token: unexpected status: 401 Unauthorized",
        "invalid_credentials",
    );
}

/// A user the token service lets pull `e2e/busybox` and nothing else pulls it, tags it as
/// `target` and pushes. ctr's output must end with `printed`, and every record must say
/// `not_authorized` with ctr's words: containerd prints the challenge's `insufficient_scope`,
/// not the status or the body.
fn push_refused(test: &str, target: &str, printed: &str) {
    if !ready(test) {
        return;
    }
    let env = start(Options {
        mode: Mode::Intercept,
        auth: Auth::Token,
        ..Options::default()
    });
    let source = reference(REG_HOST);
    let pull = env.ctr_pull(&source, Some((PULL_USER, PASSWORD)));
    assert!(pull.success, "a pull-only user may pull:\n{}", env.dump());
    let tag = env.ctr(&["images", "tag", &source, target]);
    assert!(tag.success, "{}", tag.text());
    let out = env.ctr_push(target, Some((PULL_USER, PASSWORD)));
    assert!(!out.success, "a pull-only user must not push");
    assert_printed(&out, printed);
    let line = "server message: insufficient_scope: authorization failed";
    let rec = assert_diagnosed_as(&env, &out, "not_authorized", &[], SymptomMatch::Whole);
    assert_eq!(client_symptom(&rec), Some(line), "{rec:#}");
    assert_no_unprinted_symptom(&env, &out, SymptomMatch::Whole);
}

#[test]
fn containerd_push_without_push_rights() {
    // Its own repository: the config blob is there already; containerd asks whether the
    // manifest is (HEAD, 404: no failure), then PUTs it with a token that grants pull only.
    push_refused(
        "containerd_push_without_push_rights",
        &format!("{REG_HOST}/{IMAGE_REPO}:pushed"),
        "ctr: failed commit on ref \"manifest-sha256:",
    );
}

#[test]
fn containerd_push_to_a_repository_without_rights() {
    // A repository it may not even pull: the blobs' existence checks are refused already
    // (containerd goes on with the upload, which is refused the same way).
    push_refused(
        "containerd_push_to_a_repository_without_rights",
        &format!("{REG_HOST}/e2e/elsewhere:pushed"),
        "ctr: server message: insufficient_scope: authorization failed",
    );
}

#[test]
fn containerd_sni_filter_resets_client_hello() {
    // A firewall that reads the ClientHello's server_name and answers it with a TCP reset,
    // inside a passthrough tunnel: regdoc cannot read containerd's request, so its words come
    // from the configuration (`client = "containerd"`): Go's error for the closed connection.
    if !ready("containerd_sni_filter_resets_client_hello") {
        return;
    }
    let env = start(Options {
        sni_filter: true,
        ..Options::default()
    });
    let out = env.ctr_pull(&reference(SNI_HOST), Some((USER, PASSWORD)));
    assert!(
        env.sni_filter_resets() > 0,
        "the SNI filter reset nothing: the client met something else"
    );
    assert_request_failed(&env, &out, SNI_HOST, "EOF", "client_firewall");
}

#[test]
fn containerd_registry_accepts_tcp_and_never_answers() {
    // A registry that accepts the connection and never answers the ClientHello: containerd's
    // own TLS handshake timeout (10 s, Go's default transport's) ends the request before
    // regdoc's deadline, and regdoc says so in Go's words.
    if !ready("containerd_registry_accepts_tcp_and_never_answers") {
        return;
    }
    let env = start(Options::default());
    let out = env.ctr_pull(&reference(SILENT_HOST), None);
    assert_request_failed(
        &env,
        &out,
        SILENT_HOST,
        "net/http: TLS handshake timeout",
        "client_firewall",
    );
}

#[test]
fn containerd_proxy_url_with_https_scheme() {
    // containerd's HTTPS_PROXY says https:// while regdoc speaks plain HTTP: Go starts TLS with
    // the proxy and reads regdoc's plain answer as a broken handshake. The remedy names where
    // containerd's pulls take the proxy, not Docker's daemon (checked for every containerd
    // record).
    if !ready("containerd_proxy_url_with_https_scheme") {
        return;
    }
    let env = start(Options {
        daemon_proxy: DaemonProxy::RegdocHttpsScheme,
        ..Options::default()
    });
    let out = env.ctr_pull(&reference(REG_HOST), None);
    let error = "proxyconnect tcp: tls: first record does not look like a TLS handshake";
    assert_printed(
        &out,
        &format!(
            "ctr: failed to resolve reference \"{}\": failed to do request: Head \"https://{REG_HOST}/v2/{IMAGE_REPO}/manifests/{IMAGE_TAG}\": {error}",
            reference(REG_HOST)
        ),
    );
    let rec = assert_diagnosed_as(
        &env,
        &out,
        "proxy_scheme_mismatch",
        &["docker_config"],
        SymptomMatch::Whole,
    );
    assert_eq!(client_symptom(&rec), Some(error), "{rec:#}");
    let remedy = rec.get("remedy").map(|r| r.to_string()).unwrap_or_default();
    // ctr pulls in its own process: its shell's HTTPS_PROXY is the one to fix; the CRI
    // plugin's is containerd's drop-in.
    assert!(remedy.contains("systemctl restart containerd"), "{rec:#}");
    assert!(
        remedy.contains("the HTTPS_PROXY of the shell that runs it"),
        "{rec:#}"
    );
    assert_no_unprinted_symptom(&env, &out, SymptomMatch::Whole);
}
