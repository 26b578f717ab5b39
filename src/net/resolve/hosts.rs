//! `/etc/hosts`, read the way Go's resolver reads it, keeping the line of every address.
//!
//! The line number is evidence: an address pinned here by hand does not follow the endpoint
//! when its address changes, and the failure record says which line to fix.
//!
//! hickory's `Hosts` is not used: it keeps no line numbers and its lookups are keyed on
//! fully qualified names.

use std::collections::HashMap;
use std::net::IpAddr;

/// One address of a name, and the 1-based line it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostsAddr {
    pub addr: IpAddr,
    pub line: usize,
}

/// Names to addresses, as the file lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsTable {
    by_name: HashMap<String, Vec<HostsAddr>>,
}

/// The key a name is stored and looked up under: Go compares names case-insensitively and
/// treats `name` and `name.` as the same name.
fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl HostsTable {
    /// Parse the text of a hosts file. Lines Go would skip are skipped too: comments (from `#`
    /// to the end of the line), lines with fewer than two fields, and lines whose first field is
    /// not an IP address. An address with an IPv6 zone (`fe80::1%eth0`) is skipped as well:
    /// it cannot be dialled without its interface, which `IpAddr` does not carry.
    pub fn parse(text: &str) -> HostsTable {
        let mut by_name: HashMap<String, Vec<HostsAddr>> = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or_default();
            let mut fields = line.split_ascii_whitespace();
            let Some(Ok(addr)) = fields.next().map(str::parse::<IpAddr>) else {
                continue;
            };
            let entry = HostsAddr { addr, line: i + 1 };
            for name in fields {
                let addrs = by_name.entry(key(name)).or_default();
                // Go lists a repeated address twice; dialling it twice only doubles the wait, so
                // the first line that names it is kept.
                if !addrs.iter().any(|a| a.addr == addr) {
                    addrs.push(entry);
                }
            }
        }
        HostsTable { by_name }
    }

    /// The addresses of `host` in file order, if the file names it. `host` is matched as
    /// asked: Go applies no search domains to the hosts file.
    pub fn lookup(&self, host: &str) -> Option<&[HostsAddr]> {
        self.by_name
            .get(&key(host))
            .map(Vec::as_slice)
            .filter(|a| !a.is_empty())
    }

    /// How many names the file lists.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(t: &HostsTable, host: &str) -> Vec<(String, usize)> {
        t.lookup(host)
            .unwrap_or_default()
            .iter()
            .map(|a| (a.addr.to_string(), a.line))
            .collect()
    }

    const FILE: &str = "\
# The following lines are desirable for IPv4 capable hosts
127.0.0.1 localhost
10.1.2.3\tmyregistry.azurecr.io   myregistry.westeurope.data.azurecr.io # pinned PE
fd00::7 myregistry.azurecr.io

   # indented comment 192.0.2.1 commented.example
192.0.2.9
not-an-ip some.example
Mixed.Example.  192.0.2.10
192.0.2.11 Mixed.Example. alias
192.0.2.12 mixed.example
10.1.2.3 myregistry.azurecr.io
fe80::1%eth0 zoned.example
";

    #[test]
    fn several_names_per_line_and_line_numbers() {
        let t = HostsTable::parse(FILE);
        assert_eq!(
            addrs(&t, "myregistry.azurecr.io"),
            vec![("10.1.2.3".into(), 3), ("fd00::7".into(), 4)],
            "IPv4 then IPv6 in file order; the repeated 10.1.2.3 keeps its first line"
        );
        assert_eq!(
            addrs(&t, "myregistry.westeurope.data.azurecr.io"),
            vec![("10.1.2.3".into(), 3)]
        );
        assert_eq!(addrs(&t, "localhost"), vec![("127.0.0.1".into(), 2)]);
    }

    #[test]
    fn case_and_trailing_dot_are_the_same_name() {
        let t = HostsTable::parse(FILE);
        let want = vec![
            ("192.0.2.11".to_string(), 10),
            ("192.0.2.12".to_string(), 11),
        ];
        assert_eq!(addrs(&t, "mixed.example"), want);
        assert_eq!(addrs(&t, "MIXED.example."), want);
        assert_eq!(addrs(&t, "alias."), vec![("192.0.2.11".into(), 10)]);
        assert_eq!(
            addrs(&t, "MyRegistry.AzureCR.io."),
            addrs(&t, "myregistry.azurecr.io")
        );
    }

    #[test]
    fn skipped_lines() {
        let t = HostsTable::parse(FILE);
        // Commented out, address only, first field not an address (a name first is not a
        // reversed line: Go skips it), zoned IPv6.
        for host in ["commented.example", "some.example", "zoned.example"] {
            assert_eq!(t.lookup(host), None, "{host}");
        }
        assert_eq!(t.lookup("192.0.2.9"), None);
        assert_eq!(t.lookup("192.0.2.10"), None);
        assert_eq!(t.lookup("not-an-ip"), None);
    }

    #[test]
    fn names_are_matched_as_asked_not_by_prefix_or_suffix() {
        let t = HostsTable::parse(FILE);
        assert_eq!(t.lookup("myregistry"), None);
        assert_eq!(t.lookup("azurecr.io"), None);
        assert_eq!(t.lookup("myregistry.azurecr.io.corp.example"), None);
    }

    #[test]
    fn empty_and_comment_only_files() {
        assert!(HostsTable::parse("").is_empty());
        assert!(HostsTable::parse("# nothing\n\n  \n").is_empty());
        assert_eq!(HostsTable::parse(FILE).len(), 5);
    }
}
