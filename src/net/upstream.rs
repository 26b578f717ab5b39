//! Chaining to an upstream (corporate) proxy: its URL, NO_PROXY exceptions, and the CONNECT
//! exchange with it, whose answer is recorded as its own phase.

use base64::Engine;
use ipnet::IpNet;
use std::net::IpAddr;

/// A parsed `upstream.proxy` URL. The credentials are kept only to build the
/// `Proxy-Authorization` header; [`UpstreamProxy::display`] never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamProxy {
    pub host: String,
    pub port: u16,
    /// Precomputed `Basic ...` value, if the URL had credentials.
    authorization: Option<String>,
}

impl std::fmt::Debug for UpstreamProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamProxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("credentials", &self.authorization.is_some())
            .finish()
    }
}

/// Why an upstream proxy URL is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpstreamUrlError {
    #[error("upstream proxy URL must start with http:// (got {0:?})")]
    Scheme(String),
    #[error("upstream proxy URL has no host")]
    NoHost,
    #[error("upstream proxy URL has an invalid port")]
    Port,
    #[error("upstream proxy URL must not have a path")]
    Path,
}

impl UpstreamProxy {
    /// Parse `http://[user[:pass]@]host[:port]` (port 3128 when absent, as Squid's default).
    pub fn parse(url: &str) -> Result<UpstreamProxy, UpstreamUrlError> {
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => return Err(UpstreamUrlError::Scheme(scheme.to_string())),
            None => return Err(UpstreamUrlError::Scheme(String::new())),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err(UpstreamUrlError::Path);
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            match v6.split_once(']') {
                Some((h, "")) => (h.to_string(), 3128),
                Some((h, p)) => (
                    h.to_string(),
                    p.strip_prefix(':')
                        .and_then(|p| p.parse().ok())
                        .ok_or(UpstreamUrlError::Port)?,
                ),
                None => return Err(UpstreamUrlError::NoHost),
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    p.parse().map_err(|_| UpstreamUrlError::Port)?,
                ),
                None => (hostport.to_string(), 3128),
            }
        };
        if host.is_empty() {
            return Err(UpstreamUrlError::NoHost);
        }
        let authorization = userinfo.map(|u| {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            let creds = format!("{}:{}", percent_decode(user), percent_decode(pass));
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(creds)
            )
        });
        Ok(UpstreamProxy {
            host,
            port,
            authorization,
        })
    }

    /// `host:port`, without credentials: what logs show.
    pub fn display(&self) -> String {
        crate::config::join_host_port(&self.host, self.port)
    }

    /// The `Proxy-Authorization` value to send, if any. Never log it.
    pub fn authorization(&self) -> Option<&str> {
        self.authorization.as_deref()
    }
}

/// How a CONNECT through the upstream proxy failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum UpstreamError {
    #[error("upstream proxy {proxy} answered {status} {reason}")]
    Status {
        proxy: String,
        status: u16,
        reason: String,
    },
    #[error("upstream proxy {proxy} closed the connection without answering")]
    Closed { proxy: String },
    #[error("upstream proxy {proxy} did not answer within {timeout_ms} ms")]
    Timeout { proxy: String, timeout_ms: u64 },
    #[error("upstream proxy {proxy} sent an unreadable answer: {reason}")]
    Garbled { proxy: String, reason: String },
    #[error("cannot write to upstream proxy {proxy}: {reason}")]
    Io { proxy: String, reason: String },
}

/// Largest answer head accepted from an upstream proxy.
const MAX_ANSWER: usize = 16 * 1024;

/// Send `CONNECT host:port` on `stream` (already connected to the upstream proxy) and read its
/// answer. On success returns any bytes the proxy sent after its answer head, which belong to
/// the tunnel.
pub async fn connect_through(
    stream: &mut tokio::net::TcpStream,
    proxy: &UpstreamProxy,
    host: &str,
    port: u16,
    timeout: std::time::Duration,
) -> Result<Vec<u8>, UpstreamError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let name = proxy.display();
    let authority = crate::config::join_host_port(host, port);
    let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(auth) = proxy.authorization() {
        req.push_str("Proxy-Authorization: ");
        req.push_str(auth);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    let exchange = async {
        stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| UpstreamError::Io {
                proxy: name.clone(),
                reason: e.to_string(),
            })?;
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        loop {
            let n = match stream.read(&mut chunk).await {
                Ok(0) => {
                    return Err(UpstreamError::Closed {
                        proxy: name.clone(),
                    })
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Err(UpstreamError::Closed {
                        proxy: name.clone(),
                    })
                }
                Err(e) => {
                    return Err(UpstreamError::Io {
                        proxy: name.clone(),
                        reason: e.to_string(),
                    })
                }
            };
            buf.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = resp.code.unwrap_or(0);
                    if (200..300).contains(&status) {
                        return Ok(buf[len..].to_vec());
                    }
                    let reason = resp
                        .reason
                        .unwrap_or("")
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(200)
                        .collect();
                    return Err(UpstreamError::Status {
                        proxy: name.clone(),
                        status,
                        reason,
                    });
                }
                Ok(httparse::Status::Partial) if buf.len() < MAX_ANSWER => continue,
                Ok(httparse::Status::Partial) => {
                    return Err(UpstreamError::Garbled {
                        proxy: name.clone(),
                        reason: "answer head too large".into(),
                    })
                }
                Err(e) => {
                    return Err(UpstreamError::Garbled {
                        proxy: name.clone(),
                        reason: e.to_string(),
                    })
                }
            }
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(UpstreamError::Timeout {
            proxy: name.clone(),
            timeout_ms: timeout.as_millis() as u64,
        }),
    }
}

/// Decoding of the user info. The byte-wise query decoder, because slicing the text after a `%`
/// splits a multi-byte character (`%€`) and panics.
fn percent_decode(s: &str) -> String {
    crate::http::path::percent_decode(s, false)
}

/// NO_PROXY rules, with the semantics curl and Go share: `*` matches everything; `.example.com`
/// and `example.com` match the domain and its subdomains; an IP or CIDR matches addresses;
/// an optional `:port` restricts the rule to that port.
#[derive(Debug, Clone, Default)]
pub struct NoProxy {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
enum Rule {
    All,
    Domain { suffix: String, port: Option<u16> },
    Net(IpNet),
}

impl NoProxy {
    pub fn new(entries: &[String]) -> NoProxy {
        let mut rules = Vec::new();
        for e in entries.iter().flat_map(|e| e.split(',')) {
            let e = e.trim().to_ascii_lowercase();
            if e.is_empty() {
                continue;
            }
            if e == "*" {
                rules.push(Rule::All);
            } else if let Ok(net) = e.parse::<IpNet>() {
                rules.push(Rule::Net(net));
            } else if let Ok(ip) = e.trim_matches(['[', ']']).parse::<IpAddr>() {
                rules.push(Rule::Net(IpNet::from(ip)));
            } else {
                let (name, port) = match e.rsplit_once(':') {
                    Some((n, p)) if p.parse::<u16>().is_ok() => (n.to_string(), p.parse().ok()),
                    _ => (e.clone(), None),
                };
                let suffix = name
                    .trim_start_matches("*.")
                    .trim_start_matches('.')
                    .to_string();
                rules.push(Rule::Domain { suffix, port });
            }
        }
        NoProxy { rules }
    }

    /// Whether `host:port` is reached directly.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let ip = host.trim_matches(['[', ']']).parse::<IpAddr>().ok();
        self.rules.iter().any(|r| match r {
            Rule::All => true,
            Rule::Net(net) => ip.map(|ip| net.contains(&ip)).unwrap_or(false),
            Rule::Domain { suffix, port: p } => {
                p.map(|p| p == port).unwrap_or(true)
                    && (host == *suffix || host.ends_with(&format!(".{suffix}")))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_url_and_hides_credentials() {
        let p = UpstreamProxy::parse("http://alice:s%40cret@corp-proxy:8080").unwrap();
        assert_eq!(p.display(), "corp-proxy:8080");
        // base64("alice:s@cret")
        assert_eq!(p.authorization(), Some("Basic YWxpY2U6c0BjcmV0"));
        assert!(!format!("{p:?}").contains("cret"));
        assert_eq!(
            UpstreamProxy::parse("http://[::1]:3129/")
                .unwrap()
                .display(),
            "[::1]:3129"
        );
        assert_eq!(UpstreamProxy::parse("http://squid").unwrap().port, 3128);
        assert!(matches!(
            UpstreamProxy::parse("https://x:1"),
            Err(UpstreamUrlError::Scheme(_))
        ));
        assert_eq!(
            UpstreamProxy::parse("http://x:port"),
            Err(UpstreamUrlError::Port)
        );
        assert_eq!(
            UpstreamProxy::parse("http://x:1/path"),
            Err(UpstreamUrlError::Path)
        );
        // A `%` before a multi-byte character (found by properties::parse_never_panics).
        let p = UpstreamProxy::parse("http://alice:s%\u{20ac}40@corp-proxy:8080").unwrap();
        assert_eq!(p.display(), "corp-proxy:8080");
        assert!(p.authorization().is_some());
    }

    #[test]
    fn no_proxy_semantics() {
        let n = NoProxy::new(&[
            ".internal, localhost".into(),
            "10.0.0.0/8".into(),
            "reg.io:5000".into(),
        ]);
        assert!(n.matches("a.b.internal", 443));
        assert!(n.matches("internal", 443));
        assert!(n.matches("localhost", 80));
        assert!(!n.matches("notinternal", 443));
        assert!(n.matches("10.2.3.4", 443));
        assert!(!n.matches("11.2.3.4", 443));
        assert!(n.matches("reg.io", 5000));
        assert!(!n.matches("reg.io", 443));
        assert!(NoProxy::new(&["*".into()]).matches("anything", 1));
    }
}

/// Properties of the upstream-proxy settings (user text from the configuration, the command line
/// or the environment): no URL or NO_PROXY list panics them, and a URL's parts come back.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::proptest_support::text_input;
    use proptest::prelude::*;

    const URLS: &[&str] = &[
        "http://alice:s%40cret@corp-proxy:8080",
        "http://[::1]:3129/",
        "http://squid",
        "HTTP://user@10.0.0.1:3128",
    ];

    proptest! {
        #![proptest_config(crate::proptest_support::cases(256))]

        #[test]
        fn parse_never_panics(url in text_input(URLS)) {
            if let Ok(p) = UpstreamProxy::parse(&url) {
                prop_assert!(!p.host.is_empty());
                let _ = p.display();
            }
        }

        /// Credentials of any text reach the header decoded, and never the Debug form.
        #[test]
        fn url_parts_round_trip(
            user in "[^:]{0,12}!\\PC{0,12}",
            pass in "\\PC{0,12}!\\PC{0,12}",
            host in prop_oneof!["[a-z0-9.-]{1,30}", any::<std::net::Ipv6Addr>().prop_map(|a| format!("[{a}]"))],
            port in prop::option::of(any::<u16>()),
            slash in any::<bool>(),
        ) {
            let url = format!(
                "http://{}:{}@{host}{}{}",
                crate::proptest_support::percent_encode(&user),
                crate::proptest_support::percent_encode(&pass),
                port.map(|p| format!(":{p}")).unwrap_or_default(),
                if slash { "/" } else { "" }
            );
            let p = UpstreamProxy::parse(&url);
            prop_assert!(p.is_ok(), "{:?}: {:?}", url, p);
            let p = p.unwrap();
            prop_assert_eq!(&p.host, host.trim_start_matches('[').trim_end_matches(']'));
            prop_assert_eq!(p.port, port.unwrap_or(3128));
            let want = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
            );
            prop_assert_eq!(p.authorization(), Some(want.as_str()));
            let shown = format!("{p:?}");
            prop_assert!(!shown.contains('!'), "{}", shown);
        }

        /// User info of any text but `/` (which starts a path), escapes and multi-byte
        /// characters mixed.
        #[test]
        fn any_credentials_parse(userinfo in "([%:0-9a-fA-F]|[^/\\p{C}]){0,16}") {
            let url = format!("http://{userinfo}@corp-proxy:8080");
            let p = UpstreamProxy::parse(&url);
            prop_assert!(p.is_ok(), "{:?}: {:?}", url, p);
            prop_assert_eq!(p.unwrap().port, 8080);
        }

        #[test]
        fn no_proxy_never_panics(
            entries in prop::collection::vec(text_input(&["*", ".internal, localhost", "10.0.0.0/8", "reg.io:5000", "[::1]"]), 0..4),
            host in text_input(&["a.b.internal", "10.2.3.4", "reg.io", "::1"]),
            port in any::<u16>(),
        ) {
            let _ = NoProxy::new(&entries).matches(&host, port);
        }
    }
}
