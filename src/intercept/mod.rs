//! TLS interception of registry hosts through a local CA.
//!
//! With `intercept.ca_cert`/`ca_key` set, the CONNECT path hands the tunnels of the hosts
//! [`Interceptor::wants`] to [`Interceptor::serve`]: regdoc then sees the HTTP exchanges inside
//! TLS (401/403/404/429, tokens, timeouts) and judges each one. Everything else stays an opaque
//! tunnel.
//!
//! * [`ca`]: making (`regdoc ca init`) and loading the CA;
//! * [`mint`]: per-host leaves, cached;
//! * [`upstream_tls`]: TLS to the real server, with certificate failures as observations;
//! * [`exchange`]: an exchange into an [`HttpExchange`](crate::observe::HttpExchange);
//! * [`answer`]: a server's answer judged and recorded (interception and forwarding alike);
//! * [`serve`]: the engine; [`body`]: streamed reply bodies.

pub mod answer;
pub mod body;
pub mod ca;
pub mod coalesce;
pub mod constraints;
pub mod exchange;
pub mod mint;
mod refuse;
pub mod serve;
pub mod upstream_tls;

use crate::config::Config;
use crate::endpoint::{Endpoint, EndpointKind};
use crate::observe::TlsObservation;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use ca::{Ca, CaError, CaPaths};
pub use mint::{LeafMinter, MintError};
pub use upstream_tls::{RootsError, UpstreamTls, UpstreamTlsError};

/// Why interception could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum InterceptError {
    #[error("interception CA: {0}")]
    Ca(#[from] CaError),
    #[error("interception upstream trust: {0}")]
    Roots(#[from] RootsError),
    #[error("interception: {0}")]
    Mint(#[from] MintError),
}

/// Host patterns never intercepted when `intercept.passthrough` is empty: layer downloads are
/// large and carry nothing the diagnosis needs from inside TLS.
pub const DEFAULT_PASSTHROUGH: &[&str] = &["*.data.azurecr.io", "*.blob.core.windows.net"];

/// The interception engine: CA, leaf cache, upstream trust and policy.
pub struct Interceptor {
    minter: LeafMinter,
    upstream: UpstreamTls,
    hosts: Vec<String>,
    passthrough: Vec<String>,
    registries: Vec<String>,
    tls_timeout: Duration,
    /// An intercepted HTTP/1.1 client that sends no request head for this long is let go
    /// ([`crate::config::Timeouts::next_request_head`]).
    next_head_timeout: Duration,
}

/// What the CONNECT path knows about the tunnel it hands over.
pub struct InterceptCtx {
    pub conn_id: u64,
    pub client: SocketAddr,
    pub host: String,
    pub port: u16,
    pub endpoint: Endpoint,
    /// The proxy's one writer of failure records (and its diagnoser): intercepted failures are
    /// aggregated with every other failure.
    pub failures: Arc<crate::record::failures::FailureLog>,
    pub response_headers_timeout: Duration,
    /// Write a `request` record per exchange (`log.requests`).
    pub log_requests: bool,
    /// The upstream proxy the server connection goes through, for failure records.
    pub upstream_proxy: Option<String>,
    /// The answer the server connection was dialled with (none through an upstream proxy):
    /// evidence for every failure of the tunnel, as for a passthrough one.
    pub dns: Option<crate::observe::DnsAnswer>,
    /// The connection's registration among the kept-alive connections the proxy may close
    /// when slots run short (none outside a proxy).
    pub kept_alive: Option<crate::server::idle::KeptAlive>,
}

impl InterceptCtx {
    /// The tunnel's target as the proxy's failure events name it.
    pub fn target_info(&self) -> crate::proxy::TargetInfo {
        crate::proxy::TargetInfo {
            conn_id: self.conn_id,
            client: self.client,
            host: self.host.clone(),
            port: self.port,
            endpoint: self.endpoint.clone(),
            upstream_proxy: self.upstream_proxy.clone(),
            metrics: self.failures.metrics().cloned(),
        }
    }
}

/// How an intercepted tunnel went, for its connection record.
#[derive(Debug, Clone)]
pub struct InterceptOutcome {
    /// Bytes read from the client (TLS records included).
    pub bytes_up: u64,
    /// Bytes written to the client (TLS records included).
    pub bytes_down: u64,
    pub requests: u64,
    pub failures: u64,
    pub tls: TlsObservation,
    pub close_reason: crate::record::CloseReason,
}

impl Interceptor {
    /// None when no CA is configured (everything passthrough); Err on unreadable CA files or
    /// extra roots.
    pub fn from_config(cfg: &Config) -> Result<Option<Interceptor>, InterceptError> {
        let (Some(cert), Some(key)) = (&cfg.intercept.ca_cert, &cfg.intercept.ca_key) else {
            return Ok(None);
        };
        let ca = Arc::new(Ca::load(cert, key)?);
        let minter = LeafMinter::new(ca, cfg.intercept.cert_cache.unwrap_or(mint::DEFAULT_CACHE))?;
        let upstream = UpstreamTls::new(&cfg.intercept.extra_roots)?;
        let passthrough = if cfg.intercept.passthrough.is_empty() {
            DEFAULT_PASSTHROUGH.iter().map(|s| s.to_string()).collect()
        } else {
            cfg.intercept.passthrough.clone()
        };
        Ok(Some(Interceptor {
            minter,
            upstream,
            hosts: cfg.intercept.hosts.clone(),
            passthrough,
            registries: cfg.registry_hosts(),
            tls_timeout: cfg.timeouts.tls,
            next_head_timeout: cfg.timeouts.next_request_head(),
        }))
    }

    /// Policy: intercept registry REST endpoints (`*.azurecr.io` and `[[registry]]` hosts) by
    /// default, or the `intercept.hosts` patterns when set; never the `intercept.passthrough`
    /// patterns (data endpoints and blob storage by default).
    pub fn wants(&self, host: &str, endpoint: &Endpoint) -> bool {
        decide(
            &self.hosts,
            &self.passthrough,
            &self.registries,
            host,
            endpoint,
        )
    }

    /// The leaf cache, for statistics.
    pub fn minter(&self) -> &LeafMinter {
        &self.minter
    }
}

/// The policy of [`Interceptor::wants`] from the configuration alone, without loading the CA:
/// `regdoc doctor docker` asks it which registry hosts must trust regdoc's CA.
pub fn intercepts(cfg: &Config, host: &str) -> bool {
    let passthrough: Vec<String> = if cfg.intercept.passthrough.is_empty() {
        DEFAULT_PASSTHROUGH.iter().map(|s| s.to_string()).collect()
    } else {
        cfg.intercept.passthrough.clone()
    };
    let registries = cfg.registry_hosts();
    let endpoint = crate::endpoint::classify(host, &registries);
    decide(
        &cfg.intercept.hosts,
        &passthrough,
        &registries,
        host,
        &endpoint,
    )
}

fn decide(
    hosts: &[String],
    passthrough: &[String],
    registries: &[String],
    host: &str,
    endpoint: &Endpoint,
) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if passthrough.iter().any(|p| matches(p, &host)) {
        return false;
    }
    if !hosts.is_empty() {
        return hosts.iter().any(|p| matches(p, &host));
    }
    endpoint.kind == EndpointKind::RegistryRest || registries.iter().any(|r| r == &host)
}

/// `*.example.com` / `.example.com` match any name below `example.com`; anything else matches
/// exactly. Case-insensitive.
fn matches(pattern: &str, host: &str) -> bool {
    let p = pattern.trim().trim_end_matches('.').to_ascii_lowercase();
    if let Some(suffix) = p.strip_prefix("*.").or_else(|| p.strip_prefix('.')) {
        host.len() > suffix.len() + 1
            && host.ends_with(suffix)
            && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
    } else {
        p == host || p == "*"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::classify;

    fn interceptor(toml: &str) -> (tempfile::TempDir, Interceptor) {
        let dir = tempfile::tempdir().unwrap();
        let p = ca::generate(dir.path(), false).unwrap();
        let text = format!(
            "[intercept]\nca_cert = {:?}\nca_key = {:?}\nextra_roots = [{:?}]\n{toml}",
            p.cert, p.key, p.cert
        );
        let cfg = Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
        let ic = Interceptor::from_config(&cfg).unwrap().unwrap();
        (dir, ic)
    }

    #[test]
    fn no_ca_means_no_interceptor_and_bad_ca_is_an_error() {
        assert!(Interceptor::from_config(&Config::default())
            .unwrap()
            .is_none());
        let cfg = Config::parse(
            "[intercept]\nca_cert = \"/nonexistent/ca.crt\"\nca_key = \"/nonexistent/ca.key\"\n",
            std::path::Path::new("t"),
        )
        .unwrap();
        let e = Interceptor::from_config(&cfg).err().unwrap();
        assert!(e.to_string().contains("/nonexistent/ca.crt"), "{e}");
    }

    #[test]
    fn default_policy_intercepts_rest_not_data() {
        let (_d, ic) = interceptor("[[registry]]\nhost = \"registry.internal\"\n");
        let w = |h: &str| ic.wants(h, &classify(h, &["registry.internal".to_string()]));
        assert!(w("myreg.azurecr.io"));
        assert!(w("MyReg.AzureCR.io."));
        assert!(w("registry.internal"));
        assert!(!w("myreg.westeurope.data.azurecr.io"));
        assert!(!w("acct.blob.core.windows.net"));
        assert!(!w("login.microsoftonline.com"));
        assert!(!w("example.com"));
    }

    #[test]
    fn configured_patterns() {
        let (_d, ic) = interceptor(
            "hosts = [\"*.example.com\", \"exact.test\"]\npassthrough = [\"big.example.com\"]\n",
        );
        let w = |h: &str| ic.wants(h, &classify(h, &[]));
        assert!(w("a.example.com"));
        assert!(!w("example.com"));
        assert!(!w("big.example.com"));
        assert!(w("exact.test"));
        assert!(!w("myreg.azurecr.io"));
        assert!(!matches("*.example.com", "badexample.com"));
    }
}
