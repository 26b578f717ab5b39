//! Proxy variables as dockerd (Go's `golang.org/x/net/http/httpproxy`) reads them: the proxy
//! URL and the NO_PROXY rules. Written to Go's behaviour, not curl's, because the daemon is Go.

use std::net::IpAddr;

/// A proxy URL: scheme, host, port. User info is dropped (never printed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl ProxyUrl {
    /// Go prepends `http://` to a value without a scheme; the port defaults by scheme.
    pub fn parse(value: &str) -> Result<ProxyUrl, String> {
        let v = value.trim();
        let (scheme, rest) = match v.split_once("://") {
            Some((s, r)) => (s.to_ascii_lowercase(), r),
            None => ("http".to_string(), v),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let hostport = authority
            .rsplit_once('@')
            .map(|(_, h)| h)
            .unwrap_or(authority);
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or("unclosed [ in the host")?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err("no host".into());
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| format!("invalid port {p:?}"))?,
            None => match scheme.as_str() {
                "https" => 443,
                "socks5" | "socks5h" => 1080,
                _ => 80,
            },
        };
        Ok(ProxyUrl {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// The URL without user info, for reports.
    pub fn display(&self) -> String {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => format!("{}://[{}]:{}", self.scheme, self.host, self.port),
            _ => format!("{}://{}:{}", self.scheme, self.host, self.port),
        }
    }
}

/// Hide the user info of a proxy URL (`http://user:pw@host` -> `http://***@host`).
pub fn redact_url(value: &str) -> String {
    let (prefix, rest) = match value.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), value),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{prefix}***@{}", &rest[at + 1..]),
        None => value.to_string(),
    }
}

/// NO_PROXY as Go reads it.
#[derive(Debug, Clone, Default)]
pub struct NoProxy {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
enum Entry {
    All,
    Ip(IpAddr),
    Cidr(ipnet::IpNet),
    /// `suffix` starts with a dot; `exact` also matches the bare name (entry without a
    /// leading dot), as Go's `domainMatch.matchHost`.
    Domain {
        text: String,
        suffix: String,
        exact: bool,
        port: Option<u16>,
    },
}

impl NoProxy {
    pub fn parse(value: &str) -> NoProxy {
        let mut entries = Vec::new();
        for raw in value.split(',') {
            let e = raw.trim().to_ascii_lowercase();
            if e.is_empty() {
                continue;
            }
            if e == "*" {
                // Go: a lone `*` disables the proxy for every host.
                return NoProxy {
                    entries: vec![Entry::All],
                };
            }
            if let Ok(net) = e.parse::<ipnet::IpNet>() {
                entries.push(Entry::Cidr(net));
                continue;
            }
            let (host, port) = split_port(&e);
            if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
                entries.push(Entry::Ip(ip));
                continue;
            }
            // Go: `*.example.com` is `.example.com`; a name without a dot prefix also matches
            // itself.
            let h = host.strip_prefix('*').unwrap_or(host);
            let (suffix, exact) = match h.strip_prefix('.') {
                Some(_) => (h.to_string(), false),
                None => (format!(".{h}"), true),
            };
            entries.push(Entry::Domain {
                text: e.clone(),
                suffix,
                exact,
                port,
            });
        }
        NoProxy { entries }
    }

    /// The entry that sends `host:port` around the proxy, if any (as written, for reports).
    pub fn bypasses(&self, host: &str, port: u16) -> Option<String> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let ip = host.trim_matches(['[', ']']).parse::<IpAddr>().ok();
        self.entries.iter().find_map(|e| match e {
            Entry::All => Some("*".to_string()),
            Entry::Ip(a) => (ip == Some(*a)).then(|| a.to_string()),
            Entry::Cidr(n) => ip.filter(|ip| n.contains(ip)).map(|_| n.to_string()),
            Entry::Domain {
                text,
                suffix,
                exact,
                port: p,
            } => {
                let name_hit = host.ends_with(suffix.as_str()) || (*exact && host == suffix[1..]);
                (ip.is_none() && name_hit && p.is_none_or(|p| p == port)).then(|| text.clone())
            }
        })
    }
}

fn split_port(e: &str) -> (&str, Option<u16>) {
    match e.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && !h.is_empty() => match p.parse() {
            Ok(port) => (h, Some(port)),
            Err(_) => (e, None),
        },
        _ => (e, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_as_go_reads_them() {
        let p = ProxyUrl::parse("http://127.0.0.1:3128").unwrap();
        assert_eq!(
            (p.scheme.as_str(), p.host.as_str(), p.port),
            ("http", "127.0.0.1", 3128)
        );
        assert_eq!(ProxyUrl::parse("127.0.0.1:3128").unwrap().scheme, "http");
        assert_eq!(ProxyUrl::parse("https://proxy").unwrap().port, 443);
        assert_eq!(ProxyUrl::parse("http://proxy/").unwrap().port, 80);
        let p = ProxyUrl::parse("http://u:p@[::1]:3128/").unwrap();
        assert_eq!(p.display(), "http://[::1]:3128");
        assert!(ProxyUrl::parse("http://:3128").is_err());
        assert!(ProxyUrl::parse("http://h:port").is_err());
        assert_eq!(
            redact_url("http://alice:pw@proxy:3128/"),
            "http://***@proxy:3128/"
        );
        assert_eq!(redact_url("http://proxy:3128"), "http://proxy:3128");
    }

    #[test]
    fn no_proxy_as_go_matches() {
        let n = NoProxy::parse(".azurecr.io, localhost,10.0.0.0/8 ,127.0.0.1,example.com:8443");
        assert_eq!(
            n.bypasses("r.azurecr.io", 443).as_deref(),
            Some(".azurecr.io")
        );
        // A leading dot matches subdomains only.
        assert_eq!(n.bypasses("azurecr.io", 443), None);
        assert_eq!(n.bypasses("localhost", 80).as_deref(), Some("localhost"));
        assert_eq!(n.bypasses("10.1.2.3", 443).as_deref(), Some("10.0.0.0/8"));
        assert!(n.bypasses("a.example.com", 8443).is_some());
        assert!(n.bypasses("a.example.com", 443).is_none());
        // A bare domain matches itself and below; `*.` is a leading dot.
        let n = NoProxy::parse("azurecr.io");
        assert!(n.bypasses("azurecr.io", 443).is_some());
        assert!(n.bypasses("r.azurecr.io", 443).is_some());
        assert!(n.bypasses("notazurecr.io", 443).is_none());
        let n = NoProxy::parse("*.blob.core.windows.net");
        assert!(n.bypasses("acct.blob.core.windows.net", 443).is_some());
        assert!(NoProxy::parse("localhost,*")
            .bypasses("x.azurecr.io", 443)
            .is_some());
        assert!(NoProxy::parse("").bypasses("x.azurecr.io", 443).is_none());
    }
}
