//! regdoc's own look at a server's certificate, after a client refused it in passthrough.
//!
//! A passthrough tunnel sees the client refuse the handshake, but not why: the certificate is
//! encrypted under TLS 1.3, and even under TLS 1.2 the client's alert does not say whose fault it
//! is. So regdoc opens its own TLS connection to the same server along the same path (the same
//! address, or through the same upstream proxy with a CONNECT), names the same SNI, reads the
//! chain, and stops (see [`read_chain`]): nothing of the client's is ever sent, neither bytes nor
//! credentials, and no request is made. The chain is then judged against the system roots and
//! `intercept.extra_roots` with the interception's verifier ([`judge_chain`]).
//!
//! Bounded: each probe ends after `probe.timeout`, and a target is probed at most once per
//! `probe.interval` (failures in between reuse that probe's facts).

use crate::config::Config;
use crate::intercept::upstream_tls::{
    add_extra_roots, describe_names, judge_chain, read_chain, system_roots, verifier, RootsError,
};
use crate::net::prefixed::Prefixed;
use crate::net::upstream::{connect_through, UpstreamProxy};
use crate::observe::{CertProbe, CertProblem};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpStream;

/// Targets remembered for the interval; beyond this the oldest are dropped.
const MAX_REMEMBERED: usize = 1024;

/// Where a probe goes: the way the client's tunnel went.
#[derive(Debug, Clone)]
pub enum ProbePath {
    /// Straight to the address the tunnel connected to.
    Direct(SocketAddr),
    /// Through the upstream proxy at `addr` (the address the tunnel used), with a CONNECT to
    /// `host:port`.
    Upstream {
        proxy: UpstreamProxy,
        addr: SocketAddr,
        host: String,
        port: u16,
    },
}

/// Probes servers' certificates, bounded in time and rate. Share it in an `Arc`.
pub struct Prober {
    timeout: Duration,
    interval: Duration,
    /// The system roots only: "chains to a public root".
    public: Option<Arc<WebPkiServerVerifier>>,
    /// The system roots plus `intercept.extra_roots`, when any are configured.
    configured: Option<Arc<WebPkiServerVerifier>>,
    /// Per target: when it was last probed, and what was found (None while under way).
    recent: Mutex<HashMap<String, (Instant, Option<CertProbe>)>>,
}

impl std::fmt::Debug for Prober {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prober")
            .field("timeout", &self.timeout)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Prober {
    /// None when `probe.enabled` is off; Err on unreadable `intercept.extra_roots`.
    pub fn from_config(cfg: &Config) -> Result<Option<Prober>, RootsError> {
        if !cfg.probe.enabled {
            return Ok(None);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let system = system_roots();
        let public = verifier(system.clone(), &provider).ok();
        let configured = if cfg.intercept.extra_roots.is_empty() {
            None
        } else {
            let mut all = system;
            add_extra_roots(&mut all, &cfg.intercept.extra_roots)?;
            Some(verifier(all, &provider)?)
        };
        Ok(Some(Prober {
            timeout: cfg.probe.timeout,
            interval: cfg.probe.interval,
            public,
            configured,
            recent: Mutex::new(HashMap::new()),
        }))
    }

    /// Probe `target` (`host:port`) along `path` naming `sni`, unless it was probed within the
    /// interval: then that probe's facts, or None while it is still under way.
    pub async fn probe(&self, target: &str, path: &ProbePath, sni: &str) -> Option<CertProbe> {
        if let Some(known) = self.admit(target, Instant::now()) {
            return known;
        }
        let found = self.run(path, sni).await;
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = recent.get_mut(target) {
            entry.1 = Some(found.clone());
        }
        Some(found)
    }

    /// `None` when a probe of `target` may run now (and is noted as under way); otherwise what
    /// the last one found.
    fn admit(&self, target: &str, now: Instant) -> Option<Option<CertProbe>> {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, found)) = recent.get(target) {
            if now.saturating_duration_since(*at) < self.interval {
                return Some(found.clone());
            }
        }
        if recent.len() >= MAX_REMEMBERED {
            let interval = self.interval;
            recent.retain(|_, (at, _)| now.saturating_duration_since(*at) < interval);
            if recent.len() >= MAX_REMEMBERED {
                recent.clear();
            }
        }
        recent.insert(target.to_string(), (now, None));
        None
    }

    async fn run(&self, path: &ProbePath, sni: &str) -> CertProbe {
        let (hop, via) = match path {
            ProbePath::Direct(a) => ("direct", a.to_string()),
            ProbePath::Upstream { proxy, .. } => ("upstream_proxy", proxy.display()),
        };
        let mut probe = CertProbe::new(hop, via, sni, unix_now());
        let chain = match tokio::time::timeout(self.timeout, fetch(path, sni, self.timeout)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                probe.error = Some(e);
                return probe;
            }
            Err(_) => {
                probe.error = Some(format!(
                    "no certificate within {} ms",
                    self.timeout.as_millis()
                ));
                return probe;
            }
        };
        self.judge(&mut probe, &chain, sni);
        probe
    }

    /// Fill in what `chain` says, judged at the probe's clock.
    pub fn judge(&self, probe: &mut CertProbe, chain: &[CertificateDer<'static>], sni: &str) {
        if let Some(leaf) = chain.first() {
            let n = describe_names(leaf);
            probe.issuer = n.issuer;
            probe.subject = n.subject;
            probe.names = n.names;
            probe.not_before = n.not_before;
            probe.not_after = n.not_after;
        }
        let Ok(name) = ServerName::try_from(sni.to_string()) else {
            probe.problem = Some(CertProblem::Other);
            return;
        };
        let now = UnixTime::since_unix_epoch(Duration::from_secs(probe.checked_at.max(0) as u64));
        let public = self
            .public
            .as_ref()
            .map(|v| judge_chain(v, chain, &name, now));
        probe.chain_to_public_root = public
            .as_ref()
            .map(|r| !matches!(r, Some((CertProblem::UnknownIssuer, _))));
        probe.problem = match (public, &self.configured) {
            (Some(Some((CertProblem::UnknownIssuer, _))) | None, Some(all)) => {
                let r = judge_chain(all, chain, &name, now);
                probe.chain_to_extra_root = !matches!(r, Some((CertProblem::UnknownIssuer, _)));
                r.map(|(p, _)| p)
            }
            (Some(r), _) => r.map(|(p, _)| p),
            // Nothing is trusted at all: regdoc cannot say whether the chain is good.
            (None, None) => Some(CertProblem::Other),
        };
    }
}

/// Connect along `path` and read the chain the server presents for `sni`.
async fn fetch(
    path: &ProbePath,
    sni: &str,
    timeout: Duration,
) -> Result<Vec<CertificateDer<'static>>, String> {
    match path {
        ProbePath::Direct(addr) => {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect to {addr}: {e}"))?;
            read_chain(tcp, sni).await.map_err(|e| e.to_string())
        }
        ProbePath::Upstream {
            proxy,
            addr,
            host,
            port,
        } => {
            let mut tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect to upstream proxy {}: {e}", proxy.display()))?;
            let leftover = connect_through(&mut tcp, proxy, host, *port, timeout)
                .await
                .map_err(|e| e.to_string())?;
            read_chain(Prefixed::new(leftover.into(), tcp), sni)
                .await
                .map_err(|e| e.to_string())
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prober(interval: Duration) -> Prober {
        Prober {
            timeout: Duration::from_secs(1),
            interval,
            public: None,
            configured: None,
            recent: Mutex::new(HashMap::new()),
        }
    }

    #[test]
    fn one_probe_per_target_per_interval() {
        let p = prober(Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(p.admit("a:443", t0).is_none());
        // Under way: nothing to reuse yet, and no second probe.
        assert_eq!(p.admit("a:443", t0 + Duration::from_secs(1)), Some(None));
        assert!(p.admit("b:443", t0).is_none());
        assert!(p.admit("a:443", t0 + Duration::from_secs(61)).is_none());
    }

    #[test]
    fn memory_is_bounded() {
        let p = prober(Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..(MAX_REMEMBERED * 2) {
            assert!(p.admit(&format!("h{i}:443"), t0).is_none());
        }
        assert!(p.recent.lock().unwrap().len() <= MAX_REMEMBERED);
    }

    #[test]
    fn a_chain_nothing_trusts_is_judged_unknown() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["reg.example.test".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Inspection CA");
        let cert = params.self_signed(&key).unwrap();
        let p = prober(Duration::from_secs(60));
        let mut probe = CertProbe::new(
            "direct",
            "127.0.0.1:443".into(),
            "reg.example.test",
            unix_now(),
        );
        p.judge(&mut probe, &[cert.der().clone()], "reg.example.test");
        assert_eq!(probe.issuer.as_deref(), Some("CN=Inspection CA"));
        assert_eq!(probe.names, vec!["reg.example.test".to_string()]);
        assert!(probe.not_before.is_some() && probe.not_after.is_some());
        assert_eq!(probe.chain_to_public_root, None);
        assert_eq!(probe.problem, Some(CertProblem::Other));
    }
}
