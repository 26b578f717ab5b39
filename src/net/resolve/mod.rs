//! Name resolution: static overrides, `connect_to` rules, IP literals, then the system's way of
//! resolving a name, as Docker's Go resolver does it on the same host: `/etc/hosts` and DNS in
//! the order of nsswitch.conf's `hosts:` line, DNS with resolv.conf's search list and `ndots`.
//!
//! The answer is kept (CNAME chain, addresses, where it came from) because it is evidence: a
//! private-endpoint registry that resolves to a public address is a DNS fault, not a firewall
//! one, and an address pinned in `/etc/hosts` goes stale when the endpoint moves.

mod dns;
pub mod hosts;
pub mod nsswitch;
pub mod resolv_conf;
pub mod search;
pub mod system;

use crate::config::{parse_nameserver, Config, ConnectTo};
use crate::observe::{DnsAnswer, DnsSource, HostsOrigin};
use dns::DnsView;
use hickory_resolver::TokioAsyncResolver;
use hosts::HostsTable;
use nsswitch::HostSource;
use resolv_conf::ResolvConf;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use system::Watched;

pub use system::SystemPaths;

/// Why a name could not be turned into addresses.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    #[error("{host} does not exist (NXDOMAIN)")]
    NxDomain { host: String },
    #[error("{host} has no address records")]
    NoAddresses { host: String },
    #[error("no DNS answer for {host} within {timeout_ms} ms")]
    Timeout { host: String, timeout_ms: u64 },
    #[error("DNS lookup of {host} failed: {reason}")]
    Other { host: String, reason: String },
}

/// Where to dial for a requested `host:port`, and the DNS facts behind it.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub addrs: Vec<SocketAddr>,
    pub answer: DnsAnswer,
}

/// Why the resolver could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ResolverSetupError {
    #[error("{0}")]
    Config(String),
}

/// The system files as last read, and the DNS client built from them.
struct SystemFiles {
    hosts: Watched<HostsTable>,
    nsswitch: Watched<Vec<HostSource>>,
    resolv: Watched<ResolvConf>,
    dns: Arc<DnsView>,
}

/// One consistent view of the system files for one lookup.
struct Snapshot {
    hosts: Arc<HostsTable>,
    order: Arc<Vec<HostSource>>,
    dns: Arc<DnsView>,
}

/// The resolver regdoc dials with.
pub struct Resolver {
    overrides: BTreeMap<String, Vec<IpAddr>>,
    connect_to: Vec<ConnectTo>,
    timeout: Duration,
    hosts_path: String,
    /// `[dns] nameservers`: they replace resolv.conf's nameservers and nothing else.
    configured: Option<(Vec<SocketAddr>, Arc<TokioAsyncResolver>)>,
    files: Mutex<SystemFiles>,
}

impl Resolver {
    pub fn from_config(cfg: &Config) -> Result<Resolver, ResolverSetupError> {
        Resolver::with_system(cfg, SystemPaths::default())
    }

    /// A resolver reading the system files at `paths` (tests point them at temporary files).
    pub fn with_system(cfg: &Config, paths: SystemPaths) -> Result<Resolver, ResolverSetupError> {
        let timeout = cfg.timeouts.dns;
        let configured = if cfg.dns.nameservers.is_empty() {
            None
        } else {
            let servers = cfg
                .dns
                .nameservers
                .iter()
                .map(|ns| parse_nameserver(ns).map_err(ResolverSetupError::Config))
                .collect::<Result<Vec<_>, _>>()?;
            let client = Arc::new(dns::client(&servers, timeout));
            Some((servers, client))
        };
        let now = Instant::now();
        let hostname = paths.hostname.clone();
        let resolv = Watched::load(
            paths.resolv_conf.clone(),
            move |text| {
                let (hn, _) = system::read(&hostname);
                ResolvConf::parse(text, hn.as_deref())
            },
            now,
        );
        let hosts = Watched::load(
            paths.hosts.clone(),
            |t| HostsTable::parse(t.unwrap_or_default()),
            now,
        );
        let nsswitch = Watched::load(paths.nsswitch.clone(), nsswitch::hosts_order, now);
        let view = dns_view(&resolv.value(), configured.as_ref(), None, timeout);
        tracing::info!(
            "name resolution: hosts {} ({} names in {}), nameservers {}{}, search [{}], ndots {}",
            order_text(&nsswitch.value()),
            hosts.value().len(),
            paths.hosts.display(),
            join(&view.servers),
            if configured.is_some() {
                " (configured)"
            } else {
                ""
            },
            view.search.join(" "),
            view.ndots
        );
        let overrides = cfg
            .dns
            .overrides
            .iter()
            .map(|(k, v)| (k.trim_end_matches('.').to_ascii_lowercase(), v.clone()))
            .collect();
        Ok(Resolver {
            overrides,
            connect_to: cfg.connect_to_rules(),
            timeout,
            hosts_path: paths.hosts.display().to_string(),
            configured,
            files: Mutex::new(SystemFiles {
                hosts,
                nsswitch,
                resolv,
                dns: Arc::new(view),
            }),
        })
    }

    /// The `connect_to` rule for the `host:port` a client asked for, if any. The one place
    /// that matches rules, so that resolving and choosing a route (direct or upstream proxy)
    /// cannot disagree on case or a trailing dot.
    pub fn connect_to_rule(&self, host: &str, port: u16) -> Option<&ConnectTo> {
        if self.connect_to.is_empty() {
            return None;
        }
        let lower = host.trim_end_matches('.').to_ascii_lowercase();
        self.connect_to
            .iter()
            .find(|r| r.host == lower && r.port == port)
    }

    /// Resolve the `host:port` a client asked for into addresses to dial.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Resolved, ResolveError> {
        if let Some(rule) = self.connect_to_rule(host, port) {
            let mut r = self.lookup(&rule.to_host, rule.to_port).await?;
            r.answer.source = DnsSource::ConnectTo;
            return Ok(r);
        }
        self.lookup(host, port).await
    }

    /// Resolve without `connect_to` (the rules map client targets, not arbitrary names).
    pub async fn lookup(&self, host: &str, port: u16) -> Result<Resolved, ResolveError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let answer = if let Ok(ip) = bare.parse::<IpAddr>() {
            DnsAnswer {
                addresses: vec![ip],
                source: DnsSource::Literal,
                ..DnsAnswer::default()
            }
        } else {
            let lower = host.trim_end_matches('.').to_ascii_lowercase();
            match self.overrides.get(&lower) {
                Some(ips) => DnsAnswer {
                    addresses: ips.clone(),
                    source: DnsSource::Override,
                    ..DnsAnswer::default()
                },
                None => self.system_lookup(host, &lower).await?,
            }
        };
        Ok(Resolved {
            addrs: answer
                .addresses
                .iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect(),
            answer,
        })
    }

    /// The hosts file and DNS in nsswitch order, as Go does it: the first source with addresses
    /// answers; when none does, the error is DNS's if DNS was asked, else "no such host".
    async fn system_lookup(&self, host: &str, lower: &str) -> Result<DnsAnswer, ResolveError> {
        let snap = self.snapshot(Instant::now());
        let mut err = ResolveError::NxDomain {
            host: lower.to_string(),
        };
        for source in snap.order.iter() {
            match source {
                HostSource::Files => {
                    if let Some(found) = snap.hosts.lookup(host) {
                        return Ok(DnsAnswer {
                            addresses: found.iter().map(|a| a.addr).collect(),
                            source: DnsSource::HostsFile,
                            hosts_file: Some(HostsOrigin {
                                path: self.hosts_path.clone(),
                                lines: found.iter().map(|a| a.line).collect(),
                            }),
                            ..DnsAnswer::default()
                        });
                    }
                }
                HostSource::Dns => match dns::query(&snap.dns, host, lower, self.timeout).await {
                    Ok(a) => return Ok(a),
                    Err(e) => err = e,
                },
            }
        }
        Err(err)
    }

    /// The system files as they are now, re-read if they changed (looked at every few
    /// seconds at most). The lock is held for a stat or two, never across a query.
    fn snapshot(&self, now: Instant) -> Snapshot {
        let mut f = self.files.lock().unwrap_or_else(|p| p.into_inner());
        f.hosts.refresh(now);
        f.nsswitch.refresh(now);
        if f.resolv.refresh(now) {
            let view = dns_view(
                &f.resolv.value(),
                self.configured.as_ref(),
                Some(&f.dns),
                self.timeout,
            );
            f.dns = Arc::new(view);
        }
        Snapshot {
            hosts: f.hosts.value(),
            order: f.nsswitch.value(),
            dns: f.dns.clone(),
        }
    }
}

/// The DNS view of a resolv.conf: its search rules, with the configured nameservers if there
/// are any, else its own. The previous client is kept when the servers did not change, so its
/// cache and connections survive an edit of the search list.
fn dns_view(
    rc: &ResolvConf,
    configured: Option<&(Vec<SocketAddr>, Arc<TokioAsyncResolver>)>,
    previous: Option<&Arc<DnsView>>,
    timeout: Duration,
) -> DnsView {
    let (servers, client) = match configured {
        Some((servers, client)) => (servers.clone(), client.clone()),
        None => {
            let servers: Vec<SocketAddr> = rc
                .nameservers
                .iter()
                .map(|ip| SocketAddr::new(*ip, 53))
                .collect();
            let client = match previous {
                Some(p) if p.servers == servers => p.client.clone(),
                _ => Arc::new(dns::client(&servers, timeout)),
            };
            (servers, client)
        }
    };
    DnsView {
        servers,
        search: rc.search.clone(),
        ndots: rc.ndots,
        client,
    }
}

fn order_text(order: &[HostSource]) -> String {
    order
        .iter()
        .map(|s| match s {
            HostSource::Files => "files",
            HostSource::Dns => "dns",
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn join(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Routing (direct or upstream proxy) and resolving ask the same question: a target written
    /// in another case or with a trailing dot still matches its rule.
    #[test]
    fn connect_to_rule_matches_like_the_resolver() {
        let mut cfg = Config::default();
        cfg.dns.connect_to = vec!["myreg.azurecr.io:443=127.0.0.1:8443".into()];
        let r = Resolver::from_config(&cfg).expect("resolver");
        for host in ["myreg.azurecr.io", "MyReg.AzureCR.io", "myreg.azurecr.io."] {
            let rule = r.connect_to_rule(host, 443).expect(host);
            assert_eq!((rule.to_host.as_str(), rule.to_port), ("127.0.0.1", 8443));
        }
        assert!(r.connect_to_rule("myreg.azurecr.io", 5000).is_none());
        assert!(r.connect_to_rule("other.azurecr.io", 443).is_none());
    }
}
