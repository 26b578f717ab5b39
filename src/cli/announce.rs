//! The start-up line of `regdoc run`, and the warning an open proxy gets at every start.

use super::TARGET;
use crate::config::Config;
use crate::net::upstream::UpstreamProxy;
use crate::policy::relay::Exposure;
use std::net::SocketAddr;

/// The one start-up line: where we listen, what configured us, what we can and cannot see.
pub fn announce(cfg: &Config, bound: SocketAddr, source: &str) {
    let upstream = cfg
        .upstream
        .proxy
        .as_deref()
        .and_then(|u| UpstreamProxy::parse(u).ok())
        .map(|p| p.display())
        .unwrap_or_else(|| "none (direct)".into());
    tracing::info!(
        target: TARGET,
        version = env!("CARGO_PKG_VERSION"),
        listen = %bound,
        config = source,
        log_file = %cfg.log.file.as_deref().map(|p| p.display().to_string()).unwrap_or_else(|| "-".into()),
        upstream_proxy = %upstream,
        connect_to_rules = cfg.dns.connect_to.len(),
        registries = cfg.registries.len(),
        visibility = visibility(cfg),
        "regdoc listening"
    );
}

/// What the proxy can observe with this configuration, in one sentence.
fn visibility(cfg: &Config) -> &'static str {
    if cfg.intercept.ca_cert.is_some() {
        "TLS interception on for the configured hosts: HTTP status, auth challenges, tokens and \
         registry errors are seen there; other hosts are passthrough (DNS, TCP, upstream proxy, \
         TLS handshake only)"
    } else {
        "passthrough only: DNS, TCP connect, upstream proxy and TLS handshake are seen; HTTP \
         status inside TLS (401/403/404/429) is not (set [intercept] ca_cert/ca_key, see \
         `regdoc ca init`)"
    }
}

/// A configuration that serves everyone, accepted because the operator said so, is said again
/// at every start.
pub fn warn_if_open(cfg: &Config) {
    if let Exposure::OpenRelay(why) = cfg.exposure() {
        tracing::warn!(
            target: TARGET,
            listen = %cfg.listen,
            "open proxy: {why} (accepted: i_know_this_is_an_open_proxy = true)"
        );
    }
}
