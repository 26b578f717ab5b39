//! End to end with skopeo (containers/image, another Go client) through regdoc.
//!
//! Same prerequisites and skipping rules as `e2e_docker.rs`; no Docker daemon is started.

mod common;
mod e2e;

use e2e::harness::*;

fn source() -> String {
    format!("docker://{REG_HOST}/{IMAGE_REPO}:{IMAGE_TAG}")
}

fn copy(env: &Env, password: &str) -> Output {
    let dest = format!("dir:{}", env.dir.join("copied").display());
    let certs = env.skopeo_cert_dir(REG_HOST);
    let creds = format!("{USER}:{password}");
    env.skopeo(&[
        "copy",
        "--src-cert-dir",
        &certs,
        "--src-creds",
        &creds,
        &source(),
        &dest,
    ])
}

fn healthy(opts: Options) {
    let env = Env::start(Options {
        docker: false,
        ..opts
    });
    // skopeo's --cert-dir for the registry holds one CA: regdoc's through interception, so a
    // copy that works took regdoc's certificate; the registry's otherwise.
    let (mode, ca) = match env.opts.mode {
        Mode::Passthrough => ("tunnel", Ca::Registry),
        Mode::Intercept => ("intercept", Ca::Regdoc),
    };
    assert_eq!(env.client_trust(REG_HOST), Some(ca));
    let out = copy(&env, PASSWORD);
    assert!(out.success, "skopeo copy failed:\n{}", env.dump());
    assert_printed(&out, "Writing manifest to image destination");
    assert_regdoc_saw(&env, REG_HOST, Some(mode));
    assert_no_failures(&env);
}

#[test]
fn skopeo_harness_self_check_through_squid() {
    // skopeo, its --cert-dir trust and the proxy settings, without regdoc.
    if !ready("skopeo_harness_self_check_through_squid") {
        return;
    }
    let env = Env::start(Options {
        daemon_proxy: DaemonProxy::SquidOnly,
        auth: Auth::Token,
        docker: false,
        ..Options::default()
    });
    let out = copy(&env, PASSWORD);
    assert!(out.success, "skopeo copy failed:\n{}", env.dump());
    let bad = copy(&env, "not-the-password");
    assert!(!bad.success);
    assert_printed(&bad, "unauthorized");
}

#[test]
fn skopeo_healthy_passthrough() {
    if !ready("skopeo_healthy_passthrough") {
        return;
    }
    healthy(Options::default());
}

#[test]
fn skopeo_healthy_interception_token_server() {
    if !ready("skopeo_healthy_interception_token_server") {
        return;
    }
    healthy(Options {
        mode: Mode::Intercept,
        auth: Auth::Token,
        ..Options::default()
    });
}

fn wrong_password(auth: Auth) {
    let env = Env::start(Options {
        mode: Mode::Intercept,
        auth,
        docker: false,
        ..Options::default()
    });
    let out = copy(&env, "not-the-password");
    assert!(!out.success, "a wrong password must fail");
    assert_printed(&out, "unauthorized: authentication required");
    // regdoc words its symptom as Docker prints it; skopeo frames the same registry message
    // its own way, so only the message must match.
    assert_diagnosed_as(
        &env,
        &out,
        "invalid_credentials",
        &["expired_credentials"],
        SymptomMatch::Message,
    );
}

#[test]
fn skopeo_wrong_password_htpasswd() {
    if !ready("skopeo_wrong_password_htpasswd") {
        return;
    }
    wrong_password(Auth::Htpasswd);
}

#[test]
fn skopeo_wrong_password_token_server() {
    if !ready("skopeo_wrong_password_token_server") {
        return;
    }
    wrong_password(Auth::Token);
}
