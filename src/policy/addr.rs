//! Addresses as the rules compare them.
//!
//! A dual-stack listener (`[::]`) sees an IPv4 client as `::ffff:a.b.c.d`, and a client may
//! name an IPv4 destination that way too. Both are the IPv4 address they map: every match and
//! every record uses that form, and a network written either way covers both spellings.

use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// `::ffff:a.b.c.d` as `a.b.c.d`; anything else unchanged.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// A socket address with its IP in canonical form.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical_ip(addr.ip()), addr.port())
}

/// Whether `net` covers `ip`, whichever way either spells an IPv4 address.
pub fn net_contains(net: &IpNet, ip: IpAddr) -> bool {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => {
            net.contains(&IpAddr::V4(v4)) || net.contains(&IpAddr::V6(v4.to_ipv6_mapped()))
        }
        v6 => net.contains(&v6),
    }
}

/// Whether any of `nets` covers `ip`.
pub fn any_contains(nets: &[IpNet], ip: IpAddr) -> bool {
    nets.iter().any(|n| net_contains(n, ip))
}

/// The prefix length of `net` counted as the rules compare specificity: an IPv4-mapped IPv6
/// network (`::ffff:10.0.0.0/104`) is as specific as the IPv4 network it maps (`/8`).
pub fn specificity(net: &IpNet) -> u8 {
    match net {
        IpNet::V6(n) if n.prefix_len() >= 96 && n.network().to_ipv4_mapped().is_some() => {
            n.prefix_len() - 96
        }
        other => other.prefix_len(),
    }
}

/// Whether `nets` together cover every IPv4 address or every IPv6 address (so they admit
/// anyone who can reach the socket over that family).
pub fn covers_a_whole_family(nets: &[IpNet]) -> bool {
    let mut all: Vec<IpNet> = nets.to_vec();
    // An IPv6 network covering all of ::ffff:0:0/96 covers every IPv4 client too.
    if nets
        .iter()
        .any(|n| n.contains(&"::ffff:0:0/96".parse::<IpNet>().expect("literal CIDR")))
    {
        all.push("0.0.0.0/0".parse().expect("literal CIDR"));
    }
    IpNet::aggregate(&all).iter().any(|n| n.prefix_len() == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn mapped_addresses_are_their_ipv4_address() {
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:4000".parse().unwrap();
        assert_eq!(canonical(mapped), "127.0.0.1:4000".parse().unwrap());
        let v6: SocketAddr = "[::1]:1".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }

    #[test]
    fn a_network_covers_both_spellings_of_an_ipv4_address() {
        let v4 = nets(&["127.0.0.0/8"]);
        assert!(any_contains(&v4, "::ffff:127.0.0.1".parse().unwrap()));
        assert!(any_contains(&v4, "127.0.0.1".parse().unwrap()));
        let mapped = nets(&["::ffff:10.0.0.0/104"]);
        assert!(any_contains(&mapped, "10.1.2.3".parse().unwrap()));
        assert!(!any_contains(&mapped, "11.0.0.1".parse().unwrap()));
        assert!(!any_contains(&v4, "::1".parse().unwrap()));
        assert_eq!(specificity(&mapped[0]), 8);
    }

    #[test]
    fn whole_family_covers() {
        assert!(covers_a_whole_family(&nets(&["0.0.0.0/0"])));
        assert!(covers_a_whole_family(&nets(&["::/0"])));
        assert!(covers_a_whole_family(&nets(&["0.0.0.0/1", "128.0.0.0/1"])));
        assert!(covers_a_whole_family(&nets(&["::ffff:0:0/96"])));
        assert!(!covers_a_whole_family(&nets(&["10.0.0.0/8", "::1/128"])));
        assert!(!covers_a_whole_family(&nets(&["0.0.0.0/1"])));
        assert!(!covers_a_whole_family(&[]));
    }
}
