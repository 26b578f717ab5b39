//! Which destinations regdoc may connect to for its clients.
//!
//! Without this, any admitted client could reach what only the proxy's host should: the cloud
//! instance metadata service, services bound to loopback, regdoc itself. Rules are networks and
//! host patterns in two lists; a host pattern decides for the names it matches, otherwise each
//! address is judged by the most specific network that covers it, `allowed_destinations` winning
//! a tie (an exception is written to be an exception). An address no rule covers is allowed:
//! registries are on the internet. regdoc's own listening socket is always refused, whatever
//! the lists say: a connection to it is a loop.

use super::addr::{canonical, canonical_ip, net_contains, specificity};
use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// A destination rule as configured: a network (`169.254.0.0/16`, a bare address) or a host
/// pattern (`metadata.google.internal`, `*.internal.example` or `.internal.example` for the
/// names below it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum DestRule {
    Net(IpNet),
    Host(HostPattern),
}

/// A host name, or (`below`) every name under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    name: String,
    below: bool,
}

impl HostPattern {
    fn matches(&self, host: &str) -> bool {
        if self.below {
            host.len() > self.name.len() + 1
                && host.ends_with(&self.name)
                && host.as_bytes()[host.len() - self.name.len() - 1] == b'.'
        } else {
            host == self.name
        }
    }

    /// An exact name is more specific than any pattern; a longer suffix more than a shorter.
    fn specificity(&self) -> (bool, usize) {
        (!self.below, self.name.len())
    }
}

impl FromStr for DestRule {
    type Err = String;

    fn from_str(s: &str) -> Result<DestRule, String> {
        let t = s.trim();
        if let Ok(net) = t.parse::<IpNet>() {
            return Ok(DestRule::Net(net.trunc()));
        }
        if let Ok(ip) = t.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(DestRule::Net(IpNet::from(ip)));
        }
        let lower = t.trim_end_matches('.').to_ascii_lowercase();
        let (name, below) = match lower.strip_prefix("*.").or_else(|| lower.strip_prefix('.')) {
            Some(rest) => (rest.to_string(), true),
            None => (lower.clone(), false),
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(format!(
                "destination rule {s:?} is neither a network (\"10.0.0.0/8\", \"10.0.0.5\") \
                 nor a host pattern (\"registry.example\", \"*.example\"); ports belong in \
                 allowed_ports"
            ));
        }
        Ok(DestRule::Host(HostPattern { name, below }))
    }
}

impl TryFrom<String> for DestRule {
    type Error = String;

    fn try_from(s: String) -> Result<DestRule, String> {
        s.parse()
    }
}

impl fmt::Display for DestRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DestRule::Net(n) => write!(f, "{n}"),
            DestRule::Host(h) if h.below => write!(f, "*.{}", h.name),
            DestRule::Host(h) => write!(f, "{}", h.name),
        }
    }
}

fn rules(v: &[&str]) -> Vec<DestRule> {
    v.iter()
        .map(|s| s.parse().expect("literal destination rule"))
        .collect()
}

/// Refused unless `allowed_destinations` says otherwise: link-local (where cloud instance
/// metadata lives: 169.254.169.254, AWS's fd00:ec2::254), loopback, and the unspecified
/// addresses, which a connect on Linux turns into loopback.
pub fn default_denied() -> Vec<DestRule> {
    rules(&[
        "169.254.0.0/16",
        "fe80::/10",
        "fd00:ec2::254/128",
        "127.0.0.0/8",
        "::1/128",
        "0.0.0.0/8",
        "::/128",
    ])
}

/// The private ranges, where registries' private endpoints live. Nothing denies them by
/// default; listing them keeps them open if an operator denies a wider range.
pub fn default_allowed() -> Vec<DestRule> {
    rules(&["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"])
}

/// Why a destination is refused: what was refused and the rule that refused it, in the words
/// of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The address (`169.254.169.254:80`) or host name refused.
    pub what: String,
    /// `denied_destinations 169.254.0.0/16`, or regdoc's own listen address.
    pub rule: String,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "destination {} is refused by {}", self.what, self.rule)
    }
}

/// What a host name decides before any address is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameVerdict {
    /// An allowed host pattern names it: its addresses are not judged (but never regdoc itself).
    AllowedByName,
    /// No host pattern names it: each address it resolves to is judged.
    ByAddress,
}

/// regdoc's own listening socket. Listening on every interface, any of this host's addresses
/// at that port is regdoc.
#[derive(Debug, Clone, Default)]
pub struct Own {
    pub listen: Option<SocketAddr>,
    pub local_ips: Vec<IpAddr>,
}

impl Own {
    fn is(&self, addr: SocketAddr) -> bool {
        let Some(listen) = self.listen else {
            return false;
        };
        let listen_ip = canonical_ip(listen.ip());
        let ip = addr.ip();
        addr.port() == listen.port()
            && (ip == listen_ip
                || (listen_ip.is_unspecified()
                    && (ip.is_loopback()
                        || ip.is_unspecified()
                        || self.local_ips.iter().any(|l| canonical_ip(*l) == ip))))
    }
}

/// The configured rules, and regdoc's own address once it is listening.
#[derive(Debug, Clone, Default)]
pub struct DestinationPolicy {
    denied: Vec<DestRule>,
    allowed: Vec<DestRule>,
    own: Own,
}

impl DestinationPolicy {
    pub fn new(denied: &[DestRule], allowed: &[DestRule], own: Own) -> DestinationPolicy {
        DestinationPolicy {
            denied: denied.to_vec(),
            allowed: allowed.to_vec(),
            own,
        }
    }

    /// Judge the name a client asked for (an IP literal is judged as its address). Through an
    /// upstream proxy this is all regdoc can judge: the proxy resolves the name.
    pub fn check_name(&self, host: &str, port: u16) -> Result<NameVerdict, Denial> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            return self
                .check_addr(SocketAddr::new(ip, port), NameVerdict::ByAddress)
                .map(|()| NameVerdict::ByAddress);
        }
        let best = |list: &[DestRule]| {
            list.iter()
                .filter_map(|r| match r {
                    DestRule::Host(h) if h.matches(&host) => Some((h.specificity(), r.to_string())),
                    _ => None,
                })
                .max_by_key(|(s, _)| *s)
        };
        match (best(&self.denied), best(&self.allowed)) {
            (Some((d, rule)), a) if a.as_ref().is_none_or(|(a, _)| d > *a) => Err(Denial {
                what: host.clone(),
                rule: format!("denied_destinations {rule}"),
            }),
            (_, Some(_)) => Ok(NameVerdict::AllowedByName),
            _ => Ok(NameVerdict::ByAddress),
        }
    }

    /// Judge one address a connection would go to.
    pub fn check_addr(&self, addr: SocketAddr, name: NameVerdict) -> Result<(), Denial> {
        let addr = canonical(addr);
        if self.own.is(addr) {
            return Err(Denial {
                what: addr.to_string(),
                rule: format!(
                    "regdoc's own listen address {} (a connection to it would loop)",
                    self.own.listen.map(|l| l.to_string()).unwrap_or_default()
                ),
            });
        }
        if name == NameVerdict::AllowedByName {
            return Ok(());
        }
        let best = |list: &[DestRule]| {
            list.iter()
                .filter_map(|r| match r {
                    DestRule::Net(n) if net_contains(n, addr.ip()) => Some((specificity(n), *n)),
                    _ => None,
                })
                .max_by_key(|(s, _)| *s)
        };
        match (best(&self.denied), best(&self.allowed)) {
            (Some((d, rule)), a) if a.as_ref().is_none_or(|(a, _)| d > *a) => Err(Denial {
                what: addr.to_string(),
                rule: format!("denied_destinations {rule}"),
            }),
            _ => Ok(()),
        }
    }

    /// The addresses of `addrs` that may be dialled, in order, or the first refusal when none.
    pub fn admit(
        &self,
        addrs: &[SocketAddr],
        name: NameVerdict,
    ) -> Result<Vec<SocketAddr>, Denial> {
        let mut first = None;
        let mut ok = Vec::with_capacity(addrs.len());
        for a in addrs {
            match self.check_addr(*a, name) {
                Ok(()) => ok.push(*a),
                Err(d) => {
                    first.get_or_insert(d);
                }
            }
        }
        match (ok.is_empty(), first) {
            (true, Some(d)) => Err(d),
            _ => Ok(ok),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_policy() -> DestinationPolicy {
        DestinationPolicy::new(
            &default_denied(),
            &default_allowed(),
            Own {
                listen: Some("127.0.0.1:3128".parse().unwrap()),
                local_ips: vec![],
            },
        )
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn denied_by(p: &DestinationPolicy, a: &str) -> Option<String> {
        p.check_addr(addr(a), NameVerdict::ByAddress)
            .err()
            .map(|d| d.rule)
    }

    #[test]
    fn defaults_refuse_metadata_link_local_and_loopback() {
        let p = default_policy();
        for (a, rule) in [
            ("169.254.169.254:80", "169.254.0.0/16"),
            ("[fd00:ec2::254]:80", "fd00:ec2::254/128"),
            ("[fe80::1]:443", "fe80::/10"),
            ("127.0.0.1:443", "127.0.0.0/8"),
            ("[::1]:443", "::1/128"),
            ("0.0.0.0:443", "0.0.0.0/8"),
            // Spelt as IPv4-mapped IPv6, still the same host.
            ("[::ffff:169.254.169.254]:80", "169.254.0.0/16"),
            ("[::ffff:127.0.0.1]:443", "127.0.0.0/8"),
        ] {
            assert_eq!(
                denied_by(&p, a),
                Some(format!("denied_destinations {rule}")),
                "{a}"
            );
        }
    }

    #[test]
    fn defaults_allow_private_ranges_and_the_internet() {
        let p = default_policy();
        // fd00::1 is in fc00::/7 (allowed); only AWS's metadata address within it is denied.
        for a in [
            "10.1.2.3:443",
            "172.16.0.5:443",
            "192.168.1.1:443",
            "[fd00::1]:443",
            "20.0.0.1:443",
            "[2001:db8::1]:443",
            "203.0.113.9:443",
        ] {
            assert_eq!(denied_by(&p, a), None, "{a}");
        }
    }

    #[test]
    fn the_most_specific_rule_wins_and_allow_wins_a_tie() {
        let p = DestinationPolicy::new(
            &rules(&["10.0.0.0/8", "127.0.0.0/8"]),
            &rules(&["10.1.0.0/16", "127.0.0.0/8"]),
            Own::default(),
        );
        assert_eq!(denied_by(&p, "10.1.2.3:443"), None);
        assert!(denied_by(&p, "10.2.0.1:443").is_some());
        assert_eq!(denied_by(&p, "127.0.0.1:443"), None);
        // Written as IPv4-mapped, an allowed network is as specific as its IPv4 form.
        let p = DestinationPolicy::new(
            &rules(&["127.0.0.0/8"]),
            &rules(&["::ffff:127.0.0.0/104"]),
            Own::default(),
        );
        assert_eq!(denied_by(&p, "127.0.0.1:443"), None);
    }

    #[test]
    fn own_listen_address_is_refused_whatever_the_lists_say() {
        let everything = rules(&["0.0.0.0/0", "::/0"]);
        let p = DestinationPolicy::new(
            &[],
            &everything,
            Own {
                listen: Some(addr("127.0.0.1:3128")),
                local_ips: vec![],
            },
        );
        assert!(denied_by(&p, "127.0.0.1:3128")
            .unwrap()
            .contains("own listen address"));
        assert_eq!(denied_by(&p, "127.0.0.1:3129"), None);
        assert!(p
            .check_addr(addr("127.0.0.1:3128"), NameVerdict::AllowedByName)
            .is_err());
        // On every interface: each of the host's addresses at that port.
        let p = DestinationPolicy::new(
            &[],
            &everything,
            Own {
                listen: Some(addr("[::]:3128")),
                local_ips: vec!["10.0.0.4".parse().unwrap()],
            },
        );
        for a in ["10.0.0.4:3128", "127.0.0.5:3128", "[::ffff:10.0.0.4]:3128"] {
            assert!(denied_by(&p, a).is_some(), "{a}");
        }
        assert_eq!(denied_by(&p, "10.0.0.5:3128"), None);
    }

    #[test]
    fn host_patterns_decide_for_their_names() {
        let p = DestinationPolicy::new(
            &rules(&[
                "*.internal.example",
                "metadata.google.internal",
                "127.0.0.0/8",
            ]),
            &rules(&["registry.internal.example", "local-registry"]),
            Own::default(),
        );
        let d = p.check_name("Metadata.Google.Internal.", 80).unwrap_err();
        assert_eq!(d.what, "metadata.google.internal");
        assert_eq!(d.rule, "denied_destinations metadata.google.internal");
        assert!(p.check_name("db.internal.example", 443).is_err());
        // The bare suffix is not below itself.
        assert_eq!(
            p.check_name("internal.example", 443),
            Ok(NameVerdict::ByAddress)
        );
        // An exact allowed name beats the denied pattern above it.
        assert_eq!(
            p.check_name("registry.internal.example", 443),
            Ok(NameVerdict::AllowedByName)
        );
        // Allowed by name: its loopback address is not judged.
        assert_eq!(
            p.admit(&[addr("127.0.0.1:5000")], NameVerdict::AllowedByName),
            Ok(vec![addr("127.0.0.1:5000")])
        );
        assert!(p
            .admit(&[addr("127.0.0.1:5000")], NameVerdict::ByAddress)
            .is_err());
        // IP literals are judged as addresses, in either spelling.
        assert!(p.check_name("127.0.0.1", 443).is_err());
        assert!(p.check_name("[::ffff:127.0.0.1]", 443).is_err());
        assert!(default_policy().check_name("169.254.169.254", 80).is_err());
        assert!(default_policy().check_name("fd00::1", 443).is_ok());
    }

    #[test]
    fn admit_keeps_the_allowed_addresses_of_a_mixed_answer() {
        let p = default_policy();
        let got = p.admit(
            &[addr("169.254.169.254:443"), addr("20.1.2.3:443")],
            NameVerdict::ByAddress,
        );
        assert_eq!(got, Ok(vec![addr("20.1.2.3:443")]));
        let d = p
            .admit(&[addr("169.254.169.254:443")], NameVerdict::ByAddress)
            .unwrap_err();
        assert_eq!(
            d.to_string(),
            "destination 169.254.169.254:443 is refused by denied_destinations 169.254.0.0/16"
        );
    }

    #[test]
    fn rules_parse_and_print_as_written() {
        for (s, shown) in [
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("10.1.2.3/8", "10.0.0.0/8"),
            ("10.0.0.5", "10.0.0.5/32"),
            ("[fd00:ec2::254]", "fd00:ec2::254/128"),
            ("*.Internal.Example.", "*.internal.example"),
            (".internal.example", "*.internal.example"),
            ("local-registry", "local-registry"),
        ] {
            assert_eq!(s.parse::<DestRule>().unwrap().to_string(), shown, "{s}");
        }
        for bad in [
            "",
            "*",
            "*.",
            "a..b",
            "host:443",
            "10.0.0.0/33",
            "a b",
            "*x.example",
        ] {
            assert!(bad.parse::<DestRule>().is_err(), "{bad:?}");
        }
    }
}
