//! Name resolution: static overrides, `connect_to` rules, IP literals, then hickory-resolver
//! (system configuration and `/etc/hosts` by default, or the configured nameservers).
//!
//! The answer is kept (CNAME chain and addresses) because it is evidence: a private-endpoint
//! registry that resolves to a public address is a DNS fault, not a firewall one.

use crate::config::{parse_nameserver, Config, ConnectTo};
use crate::observe::DnsAnswer;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, Protocol, ResolverConfig, ResolverOpts,
};
use hickory_resolver::error::ResolveErrorKind;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioAsyncResolver;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

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

/// The resolver regdoc dials with.
pub struct Resolver {
    overrides: BTreeMap<String, Vec<IpAddr>>,
    connect_to: Vec<ConnectTo>,
    inner: TokioAsyncResolver,
    timeout: Duration,
}

/// Why the resolver could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ResolverSetupError {
    #[error("cannot read the system DNS configuration: {0}")]
    System(String),
    #[error("{0}")]
    Config(String),
}

impl Resolver {
    pub fn from_config(cfg: &Config) -> Result<Resolver, ResolverSetupError> {
        let mut opts = ResolverOpts::default();
        opts.timeout = cfg.timeouts.dns;
        // One retry over the deadline: the deadline itself is enforced around the lookup.
        opts.attempts = 2;
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        opts.use_hosts_file = true;
        let inner = if cfg.dns.nameservers.is_empty() {
            let (rc, sys_opts) = hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| ResolverSetupError::System(e.to_string()))?;
            let mut o = sys_opts;
            o.timeout = opts.timeout;
            o.ip_strategy = opts.ip_strategy;
            o.use_hosts_file = true;
            TokioAsyncResolver::tokio(rc, o)
        } else {
            let mut rc = ResolverConfig::new();
            for ns in &cfg.dns.nameservers {
                let addr = parse_nameserver(ns).map_err(ResolverSetupError::Config)?;
                rc.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
                rc.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
            }
            // Configured nameservers are the whole truth: do not consult /etc/hosts, so tests
            // and operators get exactly the answers of the servers they named.
            opts.use_hosts_file = false;
            TokioAsyncResolver::tokio(rc, opts)
        };
        let overrides = cfg
            .dns
            .overrides
            .iter()
            .map(|(k, v)| (k.trim_end_matches('.').to_ascii_lowercase(), v.clone()))
            .collect();
        Ok(Resolver {
            overrides,
            connect_to: cfg.connect_to_rules(),
            inner,
            timeout: cfg.timeouts.dns,
        })
    }

    /// Resolve the `host:port` a client asked for into addresses to dial.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Resolved, ResolveError> {
        let lower = host.trim_end_matches('.').to_ascii_lowercase();
        if let Some(rule) = self
            .connect_to
            .iter()
            .find(|r| r.host == lower && r.port == port)
        {
            let mut r = self.lookup(&rule.to_host, rule.to_port).await?;
            r.answer.source = "connect_to";
            return Ok(r);
        }
        self.lookup(&lower, port).await
    }

    /// Resolve without `connect_to` (the rules map client targets, not arbitrary names).
    pub async fn lookup(&self, host: &str, port: u16) -> Result<Resolved, ResolveError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(Resolved {
                addrs: vec![SocketAddr::new(ip, port)],
                answer: DnsAnswer {
                    cnames: vec![],
                    addresses: vec![ip],
                    source: "literal",
                },
            });
        }
        let lower = host.trim_end_matches('.').to_ascii_lowercase();
        if let Some(ips) = self.overrides.get(&lower) {
            return Ok(Resolved {
                addrs: ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect(),
                answer: DnsAnswer {
                    cnames: vec![],
                    addresses: ips.clone(),
                    source: "override",
                },
            });
        }
        // A fully qualified query: registry names are absolute, and search domains would
        // only turn an NXDOMAIN into a confusing answer for some other name.
        let fqdn = format!("{lower}.");
        let lookup = tokio::time::timeout(self.timeout, self.inner.lookup_ip(fqdn.as_str())).await;
        let lookup = match lookup {
            Err(_) => {
                return Err(ResolveError::Timeout {
                    host: lower,
                    timeout_ms: self.timeout.as_millis() as u64,
                })
            }
            Ok(Err(e)) => return Err(classify_error(&lower, &e, self.timeout)),
            Ok(Ok(l)) => l,
        };
        let mut cnames = Vec::new();
        for rec in lookup.as_lookup().records() {
            if let Some(RData::CNAME(target)) = rec.data() {
                cnames.push(
                    target
                        .0
                        .to_utf8()
                        .trim_end_matches('.')
                        .to_ascii_lowercase(),
                );
            }
        }
        let addresses: Vec<IpAddr> = lookup.iter().collect();
        if addresses.is_empty() {
            return Err(ResolveError::NoAddresses { host: lower });
        }
        Ok(Resolved {
            addrs: addresses
                .iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect(),
            answer: DnsAnswer {
                cnames,
                addresses,
                source: "resolver",
            },
        })
    }
}

fn classify_error(
    host: &str,
    e: &hickory_resolver::error::ResolveError,
    t: Duration,
) -> ResolveError {
    match e.kind() {
        ResolveErrorKind::NoRecordsFound { response_code, .. } => {
            if *response_code == ResponseCode::NXDomain {
                ResolveError::NxDomain {
                    host: host.to_string(),
                }
            } else {
                ResolveError::NoAddresses {
                    host: host.to_string(),
                }
            }
        }
        ResolveErrorKind::Timeout => ResolveError::Timeout {
            host: host.to_string(),
            timeout_ms: t.as_millis() as u64,
        },
        _ => ResolveError::Other {
            host: host.to_string(),
            reason: e.to_string(),
        },
    }
}
