//! Asking DNS servers through hickory: each candidate name of the search list in turn, as a
//! fully qualified name so hickory applies no search of its own.

use super::search::{candidates, is_domain_name};
use super::ResolveError;
use crate::observe::{DnsAnswer, DnsSource};
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, Protocol, ResolverConfig, ResolverOpts,
};
use hickory_resolver::error::ResolveErrorKind;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioAsyncResolver;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// The DNS half of the configuration: servers (as a hickory client) and the search rules.
pub struct DnsView {
    pub servers: Vec<SocketAddr>,
    pub search: Vec<String>,
    pub ndots: usize,
    pub client: Arc<TokioAsyncResolver>,
}

/// A hickory client asking exactly `servers` (UDP, then TCP on truncation). It never reads
/// the hosts file: regdoc consults it itself, in the order nsswitch.conf gives.
pub fn client(servers: &[SocketAddr], timeout: Duration) -> TokioAsyncResolver {
    let mut rc = ResolverConfig::new();
    for addr in servers {
        rc.add_name_server(NameServerConfig::new(*addr, Protocol::Udp));
        rc.add_name_server(NameServerConfig::new(*addr, Protocol::Tcp));
    }
    let mut opts = ResolverOpts::default();
    opts.timeout = timeout;
    // One retry over the deadline: the deadline itself is enforced around the whole search.
    opts.attempts = 2;
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.use_hosts_file = false;
    // Candidates are fully qualified; this only keeps hickory from searching if one is not.
    opts.ndots = 0;
    TokioAsyncResolver::tokio(rc, opts)
}

/// Why one candidate name gave no addresses, worst last: a name is only reported as
/// nonexistent when every candidate said so, and a resolver in trouble on any candidate means
/// nonexistence was not shown.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Miss {
    NxDomain,
    NoAddresses,
    Timeout,
    Other(String),
}

fn classify(e: &hickory_resolver::error::ResolveError) -> Miss {
    match e.kind() {
        ResolveErrorKind::NoRecordsFound { response_code, .. } => match *response_code {
            ResponseCode::NXDomain => Miss::NxDomain,
            ResponseCode::NoError => Miss::NoAddresses,
            code => Miss::Other(format!("the server answered {code}")),
        },
        ResolveErrorKind::Timeout => Miss::Timeout,
        _ => Miss::Other(e.to_string()),
    }
}

fn error(host: &str, miss: Miss, timeout: Duration) -> ResolveError {
    let host = host.to_string();
    match miss {
        Miss::NxDomain => ResolveError::NxDomain { host },
        Miss::NoAddresses => ResolveError::NoAddresses { host },
        Miss::Timeout => ResolveError::Timeout {
            host,
            timeout_ms: timeout.as_millis() as u64,
        },
        Miss::Other(reason) => ResolveError::Other { host, reason },
    }
}

/// Look `asked` up in DNS, trying the candidate names in order within `timeout`. Errors name
/// `shown` (the name the client asked for), never a suffixed candidate: which suffixes were
/// tried depends on the host, the name asked is what the user typed.
pub async fn query(
    view: &DnsView,
    asked: &str,
    shown: &str,
    timeout: Duration,
) -> Result<DnsAnswer, ResolveError> {
    if !is_domain_name(asked) {
        // Go answers "no such host" without a query.
        return Err(error(shown, Miss::NxDomain, timeout));
    }
    let names = candidates(asked, &view.search, view.ndots);
    let search = async {
        let mut worst = Miss::NxDomain;
        for name in &names {
            let miss = match view.client.lookup_ip(name.as_str()).await {
                Ok(lookup) => {
                    let addresses: Vec<IpAddr> = lookup.iter().collect();
                    if !addresses.is_empty() {
                        return Ok(answer(&lookup, addresses, name, shown));
                    }
                    Miss::NoAddresses
                }
                Err(e) => classify(&e),
            };
            tracing::debug!("{name}: {miss:?}");
            worst = worst.max(miss);
        }
        Err(worst)
    };
    match tokio::time::timeout(timeout, search).await {
        Err(_) => Err(error(shown, Miss::Timeout, timeout)),
        Ok(Err(miss)) => Err(error(shown, miss, timeout)),
        Ok(Ok(a)) => Ok(a),
    }
}

fn answer(
    lookup: &hickory_resolver::lookup_ip::LookupIp,
    addresses: Vec<IpAddr>,
    name: &str,
    shown: &str,
) -> DnsAnswer {
    let cnames = lookup
        .as_lookup()
        .records()
        .iter()
        .filter_map(|rec| match rec.data() {
            Some(RData::CNAME(target)) => Some(
                target
                    .0
                    .to_utf8()
                    .trim_end_matches('.')
                    .to_ascii_lowercase(),
            ),
            _ => None,
        })
        .collect();
    let answered = name.trim_end_matches('.').to_ascii_lowercase();
    DnsAnswer {
        cnames,
        addresses,
        source: DnsSource::Dns,
        name: (answered != shown).then_some(answered),
        hosts_file: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonexistence_is_claimed_only_when_every_name_said_so() {
        let worst = |m: &[Miss]| m.iter().cloned().fold(Miss::NxDomain, Miss::max);
        assert_eq!(worst(&[Miss::NxDomain, Miss::NxDomain]), Miss::NxDomain);
        assert_eq!(
            worst(&[Miss::NoAddresses, Miss::NxDomain]),
            Miss::NoAddresses
        );
        assert_eq!(
            worst(&[Miss::NxDomain, Miss::Timeout, Miss::NoAddresses]),
            Miss::Timeout
        );
        assert!(matches!(
            worst(&[Miss::Other("SERVFAIL".into()), Miss::NxDomain]),
            Miss::Other(_)
        ));
        // No candidate at all (too long, .onion): no such host, as Go says.
        assert_eq!(worst(&[]), Miss::NxDomain);
    }

    #[test]
    fn errors_name_the_asked_host() {
        let t = Duration::from_millis(1500);
        assert_eq!(
            error("myregistry", Miss::NxDomain, t).to_string(),
            "myregistry does not exist (NXDOMAIN)"
        );
        assert_eq!(
            error("a.example", Miss::Timeout, t).to_string(),
            "no DNS answer for a.example within 1500 ms"
        );
    }
}
