//! The names a lookup tries, in order: Go's search list and `ndots` rules.
//!
//! dockerd applies them, so regdoc must too: a bare `myregistry` that the daemon finds as
//! `myregistry.corp.example` must not be NXDOMAIN through regdoc.

/// The fully qualified names (ending in `.`) to query for `name`, in order:
/// - a rooted name (`name.`) only as it is;
/// - a name with at least `ndots` dots as it is first, then with each search domain;
/// - a name with fewer dots with each search domain first, then as it is.
///
/// Names that are too long, with or without a suffix, are left out; `.onion` names are never
/// sent to DNS (RFC 7686). An empty list means there is nothing to ask.
pub fn candidates(name: &str, search: &[String], ndots: usize) -> Vec<String> {
    let len = name.len();
    let is_rooted = name.ends_with('.');
    if len > 254 || len == 254 && !is_rooted {
        return Vec::new();
    }
    if is_rooted {
        return if avoid_dns(name) {
            Vec::new()
        } else {
            vec![name.to_string()]
        };
    }
    let has_ndots = name.matches('.').count() >= ndots;
    let as_is = format!("{name}.");
    let mut out = Vec::with_capacity(search.len() + 1);
    if has_ndots && !avoid_dns(&as_is) {
        out.push(as_is.clone());
    }
    for suffix in search {
        let fqdn = format!("{as_is}{suffix}");
        if !avoid_dns(&fqdn) && fqdn.len() <= 254 {
            out.push(fqdn);
        }
    }
    if !has_ndots && !avoid_dns(&as_is) {
        out.push(as_is);
    }
    out
}

/// RFC 7686: `.onion` names must not leak into DNS.
fn avoid_dns(name: &str) -> bool {
    let n = name.trim_end_matches('.');
    n.len() >= 6 && n[n.len() - 6..].eq_ignore_ascii_case(".onion")
}

/// Go's `isDomainName`: whether DNS may be asked about `s` at all. Go answers "no such host"
/// for anything else without a query (after the hosts file was consulted).
pub fn is_domain_name(s: &str) -> bool {
    if s == "." {
        return true;
    }
    let len = s.len();
    if len == 0 || len > 254 || len == 254 && !s.ends_with('.') {
        return false;
    }
    let mut last = b'.';
    let mut non_numeric = false;
    let mut part = 0usize;
    for c in s.bytes() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                non_numeric = true;
                part += 1;
            }
            b'0'..=b'9' => part += 1,
            b'-' => {
                if last == b'.' {
                    return false;
                }
                part += 1;
                non_numeric = true;
            }
            b'.' => {
                if last == b'.' || last == b'-' || part > 63 || part == 0 {
                    return false;
                }
                part = 0;
            }
            _ => return false,
        }
        last = c;
    }
    last != b'-' && part <= 63 && non_numeric
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search() -> Vec<String> {
        vec!["corp.example.".into(), "lab.example.".into()]
    }

    #[test]
    fn bare_name_tries_the_search_list_first() {
        assert_eq!(
            candidates("myregistry", &search(), 1),
            vec![
                "myregistry.corp.example.",
                "myregistry.lab.example.",
                "myregistry."
            ]
        );
        // With ndots 0 every name has "enough" dots.
        assert_eq!(
            candidates("myregistry", &search(), 0),
            vec![
                "myregistry.",
                "myregistry.corp.example.",
                "myregistry.lab.example."
            ]
        );
    }

    #[test]
    fn dotted_names_and_ndots() {
        let host = "myregistry.azurecr.io";
        // Go's default ndots (1) and 2: two dots are enough, the name goes first.
        for ndots in [1, 2] {
            assert_eq!(
                candidates(host, &search(), ndots),
                vec![
                    "myregistry.azurecr.io.",
                    "myregistry.azurecr.io.corp.example.",
                    "myregistry.azurecr.io.lab.example."
                ],
                "ndots {ndots}"
            );
        }
        // Kubernetes-style ndots:5: the suffixes go first.
        assert_eq!(
            candidates(host, &search(), 5),
            vec![
                "myregistry.azurecr.io.corp.example.",
                "myregistry.azurecr.io.lab.example.",
                "myregistry.azurecr.io."
            ]
        );
    }

    #[test]
    fn rooted_names_are_tried_only_as_they_are() {
        assert_eq!(candidates("myregistry.", &search(), 1), vec!["myregistry."]);
        assert_eq!(
            candidates("myregistry.azurecr.io.", &search(), 5),
            vec!["myregistry.azurecr.io."]
        );
    }

    #[test]
    fn no_search_list() {
        assert_eq!(candidates("myregistry", &[], 1), vec!["myregistry."]);
        assert_eq!(candidates("a.example", &[], 3), vec!["a.example."]);
    }

    #[test]
    fn length_limits_and_onion() {
        let long = format!("{}.example", "a".repeat(240));
        // Fits as it is, not with a suffix.
        assert_eq!(candidates(&long, &search(), 1), vec![format!("{long}.")]);
        assert!(candidates(&"a".repeat(254), &search(), 1).is_empty());
        assert_eq!(
            candidates(&format!("{}.", "a".repeat(253)), &[], 1).len(),
            1
        );
        // Only the `.onion` name itself stays out of DNS, as in Go; a suffixed one is another
        // name.
        assert_eq!(
            candidates("hidden.onion", &search(), 1),
            vec!["hidden.onion.corp.example.", "hidden.onion.lab.example."]
        );
        assert!(candidates("hidden.onion", &[], 1).is_empty());
        assert!(candidates("hidden.ONION.", &[], 1).is_empty());
    }

    #[test]
    fn domain_name_validity() {
        for ok in [
            "myregistry",
            "myregistry.azurecr.io",
            "a-b.c_d.example.",
            "x1",
            ".",
        ] {
            assert!(is_domain_name(ok), "{ok}");
        }
        for bad in [
            "",
            "my registry.azurecr.io",
            "a..b",
            "-a.example",
            "a-.example",
            "a.example-",
            "123",
            "10.1.2.3",
            "https://myregistry.azurecr.io",
            &"a".repeat(64),
        ] {
            assert!(!is_domain_name(bad), "{bad}");
        }
    }
}
