//! X.509 name constraints of the interception CA: which names it may vouch for.
//!
//! `regdoc ca init` writes them into the CA (critical, RFC 5280 §4.2.1.10) so that a CA trusted
//! too widely (a system store instead of `certs.d/<host>/`) still cannot vouch for anything
//! else; the proxy reads them back at load and refuses to mint outside them, because a leaf the
//! client would reject anyway is only a confusing failure.
//!
//! DNS subtrees follow the form Go, OpenSSL and webpki all accept: `example.com` permits that
//! name and every name below it, `.example.com` only the names below it.

use std::net::IpAddr;

/// The names a new CA permits when `ca init` is given none: Azure Container Registry's login
/// servers (`<name>.azurecr.io`, geo-replicas).
pub const DEFAULT_PERMIT: &[&str] = &["*.azurecr.io"];

/// Why a `--permit` name cannot be a constraint.
#[derive(Debug, thiserror::Error)]
#[error("--permit {name:?}: {reason}")]
pub struct PermitError {
    pub name: String,
    pub reason: &'static str,
}

/// One DNS subtree: `base` and, when `below_only`, only the names strictly below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSubtree {
    pub base: String,
    pub below_only: bool,
}

impl DnsSubtree {
    /// The constraint's text as written in the certificate.
    pub fn as_constraint(&self) -> String {
        if self.below_only {
            format!(".{}", self.base)
        } else {
            self.base.clone()
        }
    }

    /// Parse a constraint as found in a certificate (`example.com`, `.example.com`).
    fn from_constraint(s: &str) -> DnsSubtree {
        let s = s.trim_end_matches('.').to_ascii_lowercase();
        match s.strip_prefix('.') {
            Some(rest) => DnsSubtree {
                base: rest.to_string(),
                below_only: true,
            },
            None => DnsSubtree {
                base: s,
                below_only: false,
            },
        }
    }

    fn contains(&self, name: &str) -> bool {
        // An empty constraint matches every name (RFC 5280, and every verifier agrees).
        if self.base.is_empty() {
            return true;
        }
        let below = name.len() > self.base.len() + 1
            && name.ends_with(&self.base)
            && name.as_bytes()[name.len() - self.base.len() - 1] == b'.';
        below || (!self.below_only && name == self.base)
    }

    /// Whether every name of `other` is inside `self`.
    fn covers(&self, other: &DnsSubtree) -> bool {
        if self.contains(&other.base) {
            // Below `other.base` is below a name `self` contains, hence inside `self` too.
            return true;
        }
        // `other.base` itself is excluded from `other` and only that made it fail.
        other.below_only && self.base == other.base
    }

    /// Whether `self` and `other` share at least one name.
    fn meets(&self, other: &DnsSubtree) -> bool {
        self.covers(other) || other.covers(self)
    }
}

/// One IP subtree: an address and a mask, in network byte order (4 or 16 bytes each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpSubtree {
    pub addr: Vec<u8>,
    pub mask: Vec<u8>,
}

impl IpSubtree {
    fn contains(&self, ip: &IpAddr) -> bool {
        let bytes = match ip {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        bytes.len() == self.addr.len()
            && bytes
                .iter()
                .zip(&self.addr)
                .zip(&self.mask)
                .all(|((b, a), m)| b & m == a & m)
    }

    fn to_rcgen(&self) -> Option<rcgen::CidrSubnet> {
        match (self.addr.len(), self.mask.len()) {
            (4, 4) => Some(rcgen::CidrSubnet::V4(
                self.addr.clone().try_into().ok()?,
                self.mask.clone().try_into().ok()?,
            )),
            (16, 16) => Some(rcgen::CidrSubnet::V6(
                self.addr.clone().try_into().ok()?,
                self.mask.clone().try_into().ok()?,
            )),
            _ => None,
        }
    }

    fn display(&self) -> String {
        let prefix: u32 = self.mask.iter().map(|b| b.count_ones()).sum();
        let ip = match self.addr.len() {
            4 => <[u8; 4]>::try_from(self.addr.as_slice())
                .map(|a| IpAddr::from(a).to_string())
                .ok(),
            16 => <[u8; 16]>::try_from(self.addr.as_slice())
                .map(|a| IpAddr::from(a).to_string())
                .ok(),
            _ => None,
        };
        format!("{}/{prefix}", ip.unwrap_or_else(|| "?".into()))
    }
}

/// A CA's name constraints: permitted and excluded subtrees of the two name forms a TLS server
/// certificate uses. Other forms (e-mail, URI, directory names) are not read: regdoc's leaves
/// carry only DNS names and IP addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameConstraints {
    pub permitted_dns: Vec<DnsSubtree>,
    pub excluded_dns: Vec<DnsSubtree>,
    pub permitted_ip: Vec<IpSubtree>,
    pub excluded_ip: Vec<IpSubtree>,
}

impl NameConstraints {
    /// The constraints for `names` (`*.example.com` / `.example.com`: the names below;
    /// `example.com`: it and the names below; an IP address, optionally `/prefix`). At least one
    /// DNS name is needed: without a DNS subtree, DNS names would be unconstrained. Without an IP
    /// address, every address is excluded, so no leaf for an IP can verify either.
    pub fn permitting(names: &[String]) -> Result<NameConstraints, PermitError> {
        let mut nc = NameConstraints::default();
        for raw in names {
            let err = |reason| PermitError {
                name: raw.clone(),
                reason,
            };
            let name = raw.trim().trim_end_matches('.').to_ascii_lowercase();
            if let Some(ip) = parse_ip_subtree(&name).map_err(err)? {
                nc.permitted_ip.push(ip);
                continue;
            }
            let (base, below_only) =
                match name.strip_prefix("*.").or_else(|| name.strip_prefix('.')) {
                    Some(rest) => (rest.to_string(), true),
                    None => (name.clone(), false),
                };
            if base.is_empty() || !base.contains('.') && below_only {
                return Err(err(
                    "names a whole top-level domain or nothing; name a domain",
                ));
            }
            if base.len() > 253 || !base.split('.').all(valid_label) {
                return Err(err("not a DNS name (letters, digits, '-' and '_' in dot-separated labels, an optional leading '*.')"));
            }
            let s = DnsSubtree { base, below_only };
            if !nc.permitted_dns.contains(&s) {
                nc.permitted_dns.push(s);
            }
        }
        if nc.permitted_dns.is_empty() {
            return Err(PermitError {
                name: names.join(" "),
                reason: "at least one DNS name is needed (an IP-only CA would leave DNS names unconstrained)",
            });
        }
        if nc.permitted_ip.is_empty() {
            nc.excluded_ip = vec![
                IpSubtree {
                    addr: vec![0; 4],
                    mask: vec![0; 4],
                },
                IpSubtree {
                    addr: vec![0; 16],
                    mask: vec![0; 16],
                },
            ];
        }
        Ok(nc)
    }

    /// The constraints of a CA certificate; `None` when it carries none (it may vouch for any
    /// name). An extension regdoc cannot read is an error, never "no constraints".
    pub fn of_certificate(
        cert: &x509_parser::certificate::X509Certificate<'_>,
    ) -> Result<Option<NameConstraints>, String> {
        use x509_parser::extensions::{GeneralName, GeneralSubtree};
        let ext = cert
            .name_constraints()
            .map_err(|e| format!("unreadable name constraints: {e}"))?;
        let Some(ext) = ext else {
            return Ok(None);
        };
        let mut nc = NameConstraints::default();
        let read = |subtrees: &Option<Vec<GeneralSubtree<'_>>>,
                    dns: &mut Vec<DnsSubtree>,
                    ip: &mut Vec<IpSubtree>| {
            for s in subtrees.iter().flatten() {
                match &s.base {
                    GeneralName::DNSName(d) => dns.push(DnsSubtree::from_constraint(d)),
                    GeneralName::IPAddress(b) if b.len() == 8 || b.len() == 32 => {
                        let (addr, mask) = b.split_at(b.len() / 2);
                        ip.push(IpSubtree {
                            addr: addr.to_vec(),
                            mask: mask.to_vec(),
                        });
                    }
                    _ => {}
                }
            }
        };
        read(
            &ext.value.permitted_subtrees,
            &mut nc.permitted_dns,
            &mut nc.permitted_ip,
        );
        read(
            &ext.value.excluded_subtrees,
            &mut nc.excluded_dns,
            &mut nc.excluded_ip,
        );
        Ok(Some(nc))
    }

    /// The extension for rcgen (which writes it critical).
    pub fn to_rcgen(&self) -> rcgen::NameConstraints {
        let dns = |v: &[DnsSubtree]| {
            v.iter()
                .map(|s| rcgen::GeneralSubtree::DnsName(s.as_constraint()))
                .collect::<Vec<_>>()
        };
        let ip = |v: &[IpSubtree]| {
            v.iter()
                .filter_map(IpSubtree::to_rcgen)
                .map(rcgen::GeneralSubtree::IpAddress)
                .collect::<Vec<_>>()
        };
        rcgen::NameConstraints {
            permitted_subtrees: [dns(&self.permitted_dns), ip(&self.permitted_ip)].concat(),
            excluded_subtrees: [dns(&self.excluded_dns), ip(&self.excluded_ip)].concat(),
        }
    }

    /// Whether a certificate naming `host` (a DNS name or an IP literal, already lower case
    /// without a trailing dot) satisfies the constraints.
    pub fn permits(&self, host: &str) -> bool {
        match host.parse::<IpAddr>() {
            Ok(ip) => {
                (self.permitted_ip.is_empty() || self.permitted_ip.iter().any(|s| s.contains(&ip)))
                    && !self.excluded_ip.iter().any(|s| s.contains(&ip))
            }
            Err(_) => {
                (self.permitted_dns.is_empty()
                    || self.permitted_dns.iter().any(|s| s.contains(host)))
                    && !self.excluded_dns.iter().any(|s| s.contains(host))
            }
        }
    }

    /// Whether every host an `intercept.hosts` pattern matches (`*.example.com`, `.example.com`,
    /// an exact name, `*` for all) is permitted.
    pub fn permits_pattern(&self, pattern: &str) -> bool {
        let p = pattern.trim().trim_end_matches('.').to_ascii_lowercase();
        let subtree = match p.strip_prefix("*.").or_else(|| p.strip_prefix('.')) {
            Some(rest) => DnsSubtree {
                base: rest.to_string(),
                below_only: true,
            },
            None if p == "*" => DnsSubtree {
                base: String::new(),
                below_only: false,
            },
            None => return self.permits(&p),
        };
        (self.permitted_dns.is_empty() || self.permitted_dns.iter().any(|s| s.covers(&subtree)))
            && !self.excluded_dns.iter().any(|s| s.meets(&subtree))
    }

    /// `.azurecr.io, registry.internal` style, for messages.
    pub fn describe_permitted(&self) -> String {
        let mut all: Vec<String> = self
            .permitted_dns
            .iter()
            .map(DnsSubtree::as_constraint)
            .collect();
        all.extend(self.permitted_ip.iter().map(IpSubtree::display));
        if all.is_empty() {
            "any name".into()
        } else {
            all.join(", ")
        }
    }
}

fn valid_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && l.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `10.0.0.5` or `10.0.0.0/8` (or IPv6); `Ok(None)` when `s` is not an address at all.
fn parse_ip_subtree(s: &str) -> Result<Option<IpSubtree>, &'static str> {
    let (ip, prefix) = match s.split_once('/') {
        Some((ip, p)) => (ip, Some(p)),
        None => (s, None),
    };
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return if prefix.is_some() {
            Err("not an IP address before '/'")
        } else {
            Ok(None)
        };
    };
    let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(p) if p <= max => p,
            _ => return Err("prefix length out of range"),
        },
    };
    let subnet = rcgen::CidrSubnet::from_addr_prefix(ip, prefix);
    let (addr, mask) = match subnet {
        rcgen::CidrSubnet::V4(a, m) => (a.to_vec(), m.to_vec()),
        rcgen::CidrSubnet::V6(a, m) => (a.to_vec(), m.to_vec()),
    };
    Ok(Some(IpSubtree { addr, mask }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nc(names: &[&str]) -> NameConstraints {
        NameConstraints::permitting(&names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap()
    }

    #[test]
    fn wildcard_permits_names_below_only() {
        let c = nc(&["*.azurecr.io"]);
        assert_eq!(c.describe_permitted(), ".azurecr.io");
        assert!(c.permits("myreg.azurecr.io"));
        assert!(c.permits("myreg.westeurope.geo.azurecr.io"));
        assert!(!c.permits("azurecr.io"));
        assert!(!c.permits("evilazurecr.io"));
        assert!(!c.permits("www.google.com"));
        // No IP address was permitted: every address is excluded.
        assert!(!c.permits("127.0.0.1"));
        assert!(!c.permits("::1"));
        assert!(c.permits_pattern("*.azurecr.io"));
        assert!(c.permits_pattern("myreg.azurecr.io"));
        assert!(c.permits_pattern("*.westeurope.data.azurecr.io"));
        assert!(!c.permits_pattern("*.example.com"));
        assert!(!c.permits_pattern("*"));
        assert!(!c.permits_pattern("azurecr.io"));
    }

    #[test]
    fn exact_names_and_addresses() {
        let c = nc(&["registry.internal", "10.1.2.3", "fd00::/8"]);
        assert!(c.permits("registry.internal"));
        assert!(c.permits("a.registry.internal"));
        assert!(!c.permits("registry.internal.evil"));
        assert!(c.permits("10.1.2.3"));
        assert!(!c.permits("10.1.2.4"));
        assert!(c.permits("fd12::1"));
        assert!(c.excluded_ip.is_empty());
        assert!(c.permits_pattern("*.registry.internal"));
        assert_eq!(
            c.describe_permitted(),
            "registry.internal, 10.1.2.3/32, fd00::/8"
        );
    }

    #[test]
    fn bad_permits_are_refused() {
        for bad in [
            vec!["*.com"],
            vec!["bad host"],
            vec![""],
            vec!["10.0.0.0/40"],
            vec!["10.0.0.1"],
            vec!["é.example"],
        ] {
            let v: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
            assert!(NameConstraints::permitting(&v).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn round_trip_through_a_certificate() {
        let c = nc(&["*.azurecr.io", "registry.internal"]);
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        p.name_constraints = Some(c.to_rcgen());
        let k = rcgen::KeyPair::generate().unwrap();
        let cert = p.self_signed(&k).unwrap();
        let (_, x) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
        let back = NameConstraints::of_certificate(&x).unwrap().unwrap();
        assert_eq!(back, c);
        let ext = x
            .extensions()
            .iter()
            .find(|e| e.oid == x509_parser::oid_registry::OID_X509_EXT_NAME_CONSTRAINTS)
            .unwrap();
        assert!(ext.critical);
    }

    #[test]
    fn excluded_subtrees_of_foreign_cas_are_honoured() {
        let c = NameConstraints {
            permitted_dns: vec![DnsSubtree::from_constraint("example.com")],
            excluded_dns: vec![DnsSubtree::from_constraint(".secret.example.com")],
            ..NameConstraints::default()
        };
        assert!(c.permits("a.example.com"));
        assert!(c.permits("secret.example.com"));
        assert!(!c.permits("x.secret.example.com"));
        assert!(!c.permits_pattern("*.example.com"));
        assert!(c.permits_pattern("*.public.example.com"));
        // Nothing about addresses: unconstrained.
        assert!(c.permits("192.0.2.1"));
    }
}
