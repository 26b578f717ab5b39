//! `/etc/resolv.conf`, read as Go's resolver reads it: nameservers, the search list and `ndots`.
//!
//! hickory's parser is not used: it rejects the whole file over one line it does not
//! understand, where Go skips that line, and it has no notion of Go's defaults for a missing
//! file (the nameservers on localhost, the search domain taken from the host name).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Go keeps at most this many nameservers, like libc.
const MAX_NAMESERVERS: usize = 3;
/// Go clamps `ndots` here, like libc.
const MAX_NDOTS: usize = 15;

/// What the resolver needs from resolv.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    /// Nameservers, asked on port 53.
    pub nameservers: Vec<IpAddr>,
    /// Search domains, rooted (`corp.example.`), in order.
    pub search: Vec<String>,
    /// Names with at least this many dots are tried as they are before the search list.
    pub ndots: usize,
}

/// Go's nameservers when the file names none.
fn default_nameservers() -> Vec<IpAddr> {
    vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ]
}

/// Go's search list when the file gives none: the domain of the host name, if it has one.
fn default_search(hostname: Option<&str>) -> Vec<String> {
    let hn = hostname.map(str::trim).unwrap_or_default();
    match hn.find('.') {
        Some(i) if i + 1 < hn.len() => vec![rooted(&hn[i + 1..])],
        _ => Vec::new(),
    }
}

fn rooted(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// Go's `dtoi` for `ndots:`: the leading digits, 0 when there are none.
fn leading_number(s: &str) -> usize {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    // More digits than fit is more than the clamp anyway.
    s[..digits]
        .parse()
        .unwrap_or(if digits > 0 { MAX_NDOTS } else { 0 })
}

impl ResolvConf {
    /// Parse `text` (`None`: the file is missing or unreadable). `hostname` gives the default
    /// search domain when the file has no `search` or `domain` line.
    pub fn parse(text: Option<&str>, hostname: Option<&str>) -> ResolvConf {
        let mut conf = ResolvConf {
            nameservers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
        };
        for line in text.unwrap_or_default().lines() {
            // Only whole lines are comments: Go and libc keep a `#` after a value.
            if line.starts_with([';', '#']) {
                continue;
            }
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            match f.as_slice() {
                // Only addresses: a name would need DNS to be found. A zoned IPv6 address is
                // skipped, as `IpAddr` cannot carry the zone.
                ["nameserver", addr, ..] if conf.nameservers.len() < MAX_NAMESERVERS => {
                    if let Ok(ip) = addr.parse::<IpAddr>() {
                        conf.nameservers.push(ip);
                    }
                }
                // The last `domain` or `search` line wins.
                ["domain", domain, ..] => conf.search = vec![rooted(domain)],
                ["search", domains @ ..] => {
                    conf.search = domains
                        .iter()
                        .map(|d| rooted(d))
                        .filter(|d| d != ".")
                        .collect();
                }
                ["options", options @ ..] => {
                    for o in options {
                        if let Some(n) = o.strip_prefix("ndots:") {
                            conf.ndots = leading_number(n).min(MAX_NDOTS);
                        }
                    }
                }
                _ => {}
            }
        }
        if conf.nameservers.is_empty() {
            conf.nameservers = default_nameservers();
        }
        if conf.search.is_empty() {
            conf.search = default_search(hostname);
        }
        conf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(c: &ResolvConf) -> Vec<String> {
        c.nameservers.iter().map(|i| i.to_string()).collect()
    }

    #[test]
    fn nameservers_search_and_ndots() {
        let c = ResolvConf::parse(
            Some(
                "# generated\n; also a comment\nnameserver 10.0.0.4\nnameserver fd00::53\n\
                 search corp.example. lab.example\noptions edns0 ndots:2 timeout:1\n",
            ),
            Some("vm.ignored.example"),
        );
        assert_eq!(ips(&c), vec!["10.0.0.4", "fd00::53"]);
        assert_eq!(c.search, vec!["corp.example.", "lab.example."]);
        assert_eq!(c.ndots, 2);
    }

    #[test]
    fn missing_file_is_localhost_and_the_host_domain() {
        let c = ResolvConf::parse(None, Some("vm.corp.example\n"));
        assert_eq!(ips(&c), vec!["127.0.0.1", "::1"]);
        assert_eq!(c.search, vec!["corp.example."]);
        assert_eq!(c.ndots, 1);
        // A host name without a domain (or ending in its only dot) gives no search list.
        assert!(ResolvConf::parse(None, Some("vm")).search.is_empty());
        assert!(ResolvConf::parse(None, Some("vm.")).search.is_empty());
        assert!(ResolvConf::parse(None, None).search.is_empty());
    }

    #[test]
    fn last_search_or_domain_line_wins() {
        let c = ResolvConf::parse(Some("search a.example b.example\ndomain c.example\n"), None);
        assert_eq!(c.search, vec!["c.example."]);
        let c = ResolvConf::parse(Some("domain c.example\nsearch a.example\n"), None);
        assert_eq!(c.search, vec!["a.example."]);
        // `search .` means none, and then Go falls back to the host's domain.
        let c = ResolvConf::parse(Some("search .\n"), Some("vm.corp.example"));
        assert_eq!(c.search, vec!["corp.example."]);
    }

    #[test]
    fn odd_lines_are_skipped_not_fatal() {
        let c = ResolvConf::parse(
            Some(
                "nameserver dns.example\nnameserver\nnameserver fe80::1%eth0\nbogus line\n\
                 nameserver 192.0.2.1\nnameserver 192.0.2.2\nnameserver 192.0.2.3\nnameserver 192.0.2.4\n",
            ),
            None,
        );
        assert_eq!(ips(&c), vec!["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
        assert!(c.search.is_empty());
    }

    #[test]
    fn ndots_is_clamped_like_go() {
        let nd = |o: &str| ResolvConf::parse(Some(&format!("options {o}\n")), None).ndots;
        assert_eq!(nd("ndots:0"), 0);
        assert_eq!(nd("ndots:5"), 5);
        assert_eq!(nd("ndots:30"), 15);
        assert_eq!(nd("ndots:99999999999999999999999"), 15);
        assert_eq!(nd("ndots:x"), 0);
        assert_eq!(nd("ndots:3x"), 3);
        assert_eq!(nd("rotate"), 1);
    }
}
