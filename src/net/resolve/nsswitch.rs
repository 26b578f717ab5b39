//! The `hosts:` line of `/etc/nsswitch.conf`: in which order the hosts file and DNS are asked.
//!
//! Go's pure resolver (the one dockerd uses) understands two sources, `files` and `dns`, and
//! reduces the line to one of four orders; regdoc does the same. Every other source
//! (`myhostname`, `mymachines`, `resolve`, `mdns4_minimal`, …) is skipped, and status actions
//! such as `[NOTFOUND=return]` are ignored, as Go ignores them when it cannot hand the lookup
//! to libc.

/// A source of host addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostSource {
    Files,
    Dns,
}

/// What Go assumes when the file or its `hosts:` line is missing, unreadable or malformed.
pub const DEFAULT_ORDER: [HostSource; 2] = [HostSource::Files, HostSource::Dns];

/// The lookup order of `hosts:` in the text of an nsswitch.conf; `None` (no file) gives the
/// default order.
pub fn hosts_order(text: Option<&str>) -> Vec<HostSource> {
    let sources = match text.map(hosts_sources) {
        Some(Ok(s)) => s,
        // Go treats a malformed file as no file at all.
        Some(Err(())) | None => return DEFAULT_ORDER.to_vec(),
    };
    let mut order = Vec::new();
    for s in sources {
        let known = match s {
            "files" => HostSource::Files,
            "dns" => HostSource::Dns,
            _ => continue,
        };
        if !order.contains(&known) {
            order.push(known);
        }
    }
    if order.is_empty() {
        // Only sources Go cannot use: it falls back to its default.
        return DEFAULT_ORDER.to_vec();
    }
    order
}

/// The source names of every `hosts:` line, in order (Go appends repeated lines). Err: a line
/// without a colon or an unclosed `[`, which make Go ignore the whole file.
fn hosts_sources(text: &str) -> Result<Vec<&str>, ()> {
    let mut out = Vec::new();
    for raw in text.lines() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let (db, mut rest) = line.split_once(':').ok_or(())?;
        let is_hosts = db.trim() == "hosts";
        loop {
            rest = rest.trim_start();
            if rest.is_empty() {
                break;
            }
            if let Some(after) = rest.strip_prefix('[') {
                // A status action: skipped, but it must be closed.
                let close = after.find(']').ok_or(())?;
                rest = &after[close + 1..];
                continue;
            }
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '[')
                .unwrap_or(rest.len());
            if is_hosts {
                out.push(&rest[..end]);
            }
            rest = &rest[end..];
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::HostSource::{Dns, Files};
    use super::*;

    #[test]
    fn files_before_dns_and_the_reverse() {
        assert_eq!(hosts_order(Some("hosts: files dns\n")), vec![Files, Dns]);
        assert_eq!(hosts_order(Some("hosts:\tdns files\n")), vec![Dns, Files]);
        assert_eq!(hosts_order(Some("hosts: dns\n")), vec![Dns]);
        assert_eq!(hosts_order(Some("hosts: files\n")), vec![Files]);
    }

    #[test]
    fn missing_file_or_line_is_files_then_dns() {
        assert_eq!(hosts_order(None), vec![Files, Dns]);
        assert_eq!(hosts_order(Some("")), vec![Files, Dns]);
        assert_eq!(
            hosts_order(Some("passwd: files\ngroup: files\n")),
            vec![Files, Dns]
        );
        assert_eq!(hosts_order(Some("hosts:\n")), vec![Files, Dns]);
    }

    #[test]
    fn other_sources_and_status_actions_are_skipped() {
        // Ubuntu with systemd-resolved.
        assert_eq!(
            hosts_order(Some(
                "hosts: files mdns4_minimal [NOTFOUND=return] dns myhostname\n"
            )),
            vec![Files, Dns]
        );
        assert_eq!(
            hosts_order(Some(
                "hosts: mymachines resolve [!UNAVAIL=return] dns[NOTFOUND=return] files myhostname"
            )),
            vec![Dns, Files]
        );
        assert_eq!(
            hosts_order(Some("hosts: dns [ NOTFOUND = return ] files")),
            vec![Dns, Files]
        );
        // Only sources Go cannot use: its default.
        assert_eq!(
            hosts_order(Some("hosts: myhostname resolve\n")),
            vec![Files, Dns]
        );
    }

    #[test]
    fn comments_repeats_and_other_databases() {
        let text = "\
# hosts: dns files
passwd:   compat   # hosts: dns
hosts:    dns      # files comes next line
hosts:    files dns
networks: files
";
        assert_eq!(hosts_order(Some(text)), vec![Dns, Files]);
        // `hostsx` is another database; names are case-sensitive like Go's.
        assert_eq!(
            hosts_order(Some("hostsx: dns files\nhosts: files dns")),
            vec![Files, Dns]
        );
        assert_eq!(hosts_order(Some("hosts: DNS files")), vec![Files]);
    }

    #[test]
    fn malformed_file_is_the_default() {
        assert_eq!(
            hosts_order(Some("hosts: dns files\ngarbage line\n")),
            vec![Files, Dns]
        );
        assert_eq!(
            hosts_order(Some("hosts: dns [NOTFOUND=return files\n")),
            vec![Files, Dns]
        );
    }
}
