//! Typed facts about a connection, as the transport and the parsers see them.
//!
//! These types are the contract between the three kinds of code in regdoc: the transport fills
//! them in, the diagnosis reads them (and never touches a socket), and the log sink serialises
//! them. None of them ever holds a secret: credentials are described (scheme, claims, kind of
//! user name), never copied.

use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::endpoint::Endpoint;

/// The phase of a connection in which something happened. Serialised in snake_case because
/// dashboards filter on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Reading and validating the client's request head.
    Request,
    /// Client address, destination port and proxy authentication checks.
    Policy,
    Dns,
    Connect,
    UpstreamProxy,
    Tls,
    Http,
    Tunnel,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Request => "request",
            Phase::Policy => "policy",
            Phase::Dns => "dns",
            Phase::Connect => "connect",
            Phase::UpstreamProxy => "upstream_proxy",
            Phase::Tls => "tls",
            Phase::Http => "http",
            Phase::Tunnel => "tunnel",
        }
    }
}

/// What went wrong, as a closed set the diagnosis rules can match on. The `error` text of a
/// failure record is the human sentence; this is the machine fact behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailureKind {
    /// The request head could not be parsed.
    MalformedRequest,
    /// The request head exceeded the size limit.
    HeadTooLarge {
        limit: usize,
    },
    /// The client did not finish its request head in time.
    RequestTimeout,
    /// The client opened a TLS handshake where an HTTP request was expected: its proxy URL says
    /// `https://` but regdoc speaks plain HTTP.
    TlsInsteadOfHttp,
    /// The client's address is not allowed to use this proxy.
    ClientNotAllowed,
    /// The client already had `max_connections_per_client` connections open.
    ClientConnectionLimit {
        /// The setting.
        limit: usize,
        /// Connections the client had open.
        open: usize,
    },
    /// The destination port is outside the allowed set.
    PortNotAllowed {
        port: u16,
    },
    /// Proxy authentication is configured and the client sent none or a wrong one.
    ProxyAuthRequired {
        provided: bool,
    },
    /// The destination (a name, or an address it resolved to) is refused by
    /// `denied_destinations`, or is regdoc's own listening socket.
    DestinationNotAllowed {
        /// The address (`169.254.169.254:80`) or host name refused.
        addr: String,
        /// The rule that refused it, as the configuration writes it.
        rule: String,
    },
    /// regdoc itself could not open the outgoing connection for lack of file descriptors: its
    /// own limit (EMFILE) or the system's file table (ENFILE). Not the network's doing.
    ResourceLimit {
        /// `EMFILE` or `ENFILE`.
        errno: String,
        /// regdoc's RLIMIT_NOFILE at the time (soft, hard), when it could be read.
        nofile_soft: Option<u64>,
        nofile_hard: Option<u64>,
    },
    /// The name does not exist (NXDOMAIN).
    DnsNxDomain,
    /// The name exists but has no address records.
    DnsNoAddresses,
    DnsTimeout,
    DnsError,
    /// The name resolved, but not the way the configuration says it must (a private-endpoint
    /// registry answering with a public address, or outside `expected_cidrs`). The connection
    /// still proceeds; the record is the warning.
    DnsUnexpectedAnswer,
    ConnectRefused,
    ConnectTimeout,
    /// No route to host / network unreachable.
    ConnectUnreachable,
    ConnectError,
    /// The upstream proxy answered the CONNECT with a non-2xx status.
    UpstreamProxyStatus {
        status: u16,
        reason: String,
    },
    /// The upstream proxy closed the connection before answering the CONNECT.
    UpstreamProxyClosed,
    UpstreamProxyTimeout,
    /// regdoc could not reach the upstream proxy itself.
    UpstreamProxyUnreachable,
    /// The server accepted TCP but did not answer the ClientHello within `tls_timeout`.
    TlsServerSilent,
    /// The server answered the ClientHello with a TLS alert.
    TlsAlert {
        level: String,
        description: String,
    },
    /// The server answered with bytes that are not TLS.
    TlsNotTls,
    /// The server closed the connection right after the ClientHello.
    TlsServerClosed,
    /// The server, or a device on the path, reset the connection (TCP RST) in answer to the
    /// ClientHello: no ServerHello came. The usual signature of a firewall filtering by SNI.
    TlsServerReset,
    /// Interception: the upstream certificate failed verification.
    TlsUpstreamCertificate {
        problem: CertProblem,
        detail: String,
    },
    /// Interception: the client refused regdoc's minted certificate.
    TlsClientRejected {
        detail: String,
    },
    /// Interception: the client's TLS server name (SNI) is not the host of its CONNECT request.
    /// regdoc presents certificates only for the CONNECT host, so it refused the handshake.
    TlsSniMismatch {
        sni: String,
    },
    /// Interception: the host is outside the name constraints of regdoc's CA, so regdoc minted
    /// no certificate for it and refused the handshake. `permitted` is what the CA allows.
    InterceptNameNotPermitted {
        permitted: String,
    },
    /// Passthrough: after the server's first flight the client refused the handshake (an
    /// alert, or one encrypted record too short to be its Finished, then close) and sent no
    /// application data: it did not accept the certificate it was shown.
    TlsClientRefused {
        signal: ClientSignal,
        /// The alert's description, when it was sent in the clear (`unknown_ca`, …).
        alert: Option<String>,
        /// regdoc's own look at the server's certificate along the same path, when it ran.
        probe: Option<CertProbe>,
    },
    /// Interception: an HTTP exchange inside TLS that the rules judge a failure.
    HttpStatus {
        status: u16,
    },
    /// Interception or plain forwarding: no response headers in time.
    ResponseHeadersTimeout,
    /// Interception or plain forwarding: the server's connection (or, over HTTP/2, the
    /// request's stream) ended before any response headers came back, so no HTTP status came
    /// from the server. regdoc answers the client 502 itself.
    UpstreamClosedBeforeHeaders {
        how: EarlyClose,
    },
    /// Data flowed and then stopped for longer than the stall timeout.
    TransferStalled {
        idle_secs: u64,
        bytes_before: u64,
    },
}

/// How a server's connection ended before its response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EarlyClose {
    /// End of stream: the server (or something on the path) closed the connection.
    Closed,
    /// The connection was reset (TCP RST).
    Reset,
    /// Another failure: a protocol error, or an HTTP/2 stream or connection reset.
    Error,
}

impl EarlyClose {
    /// How a hyper client error that ended an exchange before its response headers came about:
    /// the innermost I/O error tells a reset from an end of stream.
    pub fn of(e: &hyper::Error) -> Self {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                return match io.kind() {
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted => {
                        EarlyClose::Reset
                    }
                    // rustls reports a TCP close without close_notify as UnexpectedEof.
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::BrokenPipe => {
                        EarlyClose::Closed
                    }
                    _ => EarlyClose::Error,
                };
            }
            source = s.source();
        }
        // hyper's own words for an end of stream with no I/O error behind it.
        if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
            EarlyClose::Closed
        } else {
            EarlyClose::Error
        }
    }

    /// How the connection ended, for a sentence: "the connection was {}".
    pub fn describe(self) -> &'static str {
        match self {
            EarlyClose::Closed => "closed",
            EarlyClose::Reset => "reset",
            EarlyClose::Error => "ended by an error",
        }
    }
}

/// Why an upstream certificate was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertProblem {
    UnknownIssuer,
    NameMismatch,
    Expired,
    NotYetValid,
    Other,
}

/// How a client refused a handshake it saw pass through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientSignal {
    /// A plaintext alert, named in the failure.
    Alert,
    /// An encrypted alert (TLS 1.3, or TLS 1.2 after the client's ChangeCipherSpec).
    EncryptedAlert,
    /// The client closed without a word after the server's first flight.
    Closed,
}

/// What regdoc saw when it opened its own TLS connection to a server, along the same path as
/// a client that refused the server's certificate. Public facts only: the probe never carries
/// the client's bytes or credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertProbe {
    /// The hop the probe went through: `direct` or `upstream_proxy`.
    pub hop: &'static str,
    /// The address dialled directly, or the upstream proxy's `host:port`.
    pub via: String,
    /// The server name sent (the client's SNI, or the target host).
    pub sni: String,
    /// The presented leaf's issuer and subject (RFC 4514 order as x509 prints them), names.
    pub issuer: Option<String>,
    pub subject: Option<String>,
    pub names: Vec<String>,
    /// Validity of the leaf, Unix seconds.
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    /// The local clock when the probe checked, Unix seconds (the rules read no clock).
    pub checked_at: i64,
    /// The chain verifies up to a root of the system store (dates and name aside); `None`
    /// when the system store is empty.
    pub chain_to_public_root: Option<bool>,
    /// The chain verifies only up to a CA of `intercept.extra_roots`.
    pub chain_to_extra_root: bool,
    /// What verification refused, against the system roots plus `intercept.extra_roots`;
    /// `None` when the chain is valid for this name now.
    pub problem: Option<CertProblem>,
    /// Why no certificate was read (timeout, refused, upstream proxy said no).
    pub error: Option<String>,
}

impl CertProbe {
    /// A probe of `sni` through `hop`/`via` at `checked_at`, before anything was read.
    pub fn new(hop: &'static str, via: String, sni: &str, checked_at: i64) -> Self {
        CertProbe {
            hop,
            via,
            sni: sni.to_string(),
            issuer: None,
            subject: None,
            names: Vec::new(),
            not_before: None,
            not_after: None,
            checked_at,
            chain_to_public_root: None,
            chain_to_extra_root: false,
            problem: None,
            error: None,
        }
    }
}

/// The answer the resolver gave, kept as evidence for private-endpoint rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DnsAnswer {
    /// CNAME chain from the queried name to the final name, in order (without the queried name).
    pub cnames: Vec<String>,
    pub addresses: Vec<IpAddr>,
    /// Where the answer came from.
    pub source: DnsSource,
    /// The name that answered, when the search list made it differ from the name asked
    /// (`myregistry` answered as `myregistry.corp.example`). Without the trailing dot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// For a `hosts_file` answer: which file and lines the addresses came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts_file: Option<HostsOrigin>,
}

/// Where a DNS answer came from. Serialised in snake_case because dashboards filter on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsSource {
    /// A DNS server (resolv.conf's nameservers, or `[dns] nameservers`).
    #[default]
    Dns,
    /// The hosts file (`/etc/hosts`).
    HostsFile,
    /// `[dns] overrides`.
    Override,
    /// A `[dns] connect_to` rule.
    ConnectTo,
    /// The host was an IP address.
    Literal,
}

impl DnsSource {
    pub fn as_str(self) -> &'static str {
        match self {
            DnsSource::Dns => "dns",
            DnsSource::HostsFile => "hosts_file",
            DnsSource::Override => "override",
            DnsSource::ConnectTo => "connect_to",
            DnsSource::Literal => "literal",
        }
    }
}

impl std::fmt::Display for DnsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The hosts-file lines behind an answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostsOrigin {
    pub path: String,
    /// The 1-based line of each address, in the order of `addresses`.
    pub lines: Vec<usize>,
}

/// A fact seen in the TLS handshake without decrypting it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TlsObservation {
    pub sni: Option<String>,
    pub alpn: Vec<String>,
    /// Versions the client offered, e.g. `["TLS1.3", "TLS1.2"]`.
    pub client_versions: Vec<String>,
    /// Version the server chose.
    pub version: Option<String>,
    pub cipher: Option<String>,
    /// Time from the ClientHello being forwarded to the server's first byte.
    #[serde(skip)]
    pub server_first_byte: Option<Duration>,
    pub alert: Option<String>,
}

/// One HTTP exchange seen inside an intercepted TLS session (or on plain forwarding). Secrets are
/// described, never stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HttpExchange {
    pub method: String,
    /// Path class: `ping`, `token`, `exchange`, `manifest`, `blob`, `upload`, `catalog`, `tags`,
    /// `other`.
    pub path_class: String,
    /// Repository named in the path, if any.
    pub repository: Option<String>,
    /// Tag or digest named in the path, if any.
    pub reference: Option<String>,
    pub status: u16,
    /// Milliseconds from request sent to response headers.
    pub headers_ms: Option<u64>,
    pub www_authenticate: Option<crate::http::challenge::Challenge>,
    /// `errors[]` of a registry JSON error body, or a plain-text body reduced to one line.
    pub registry_errors: Vec<crate::http::registry_error::RegistryError>,
    /// Plain-text error body (for non-JSON replies like "Application not registered with AAD."),
    /// trimmed and capped.
    pub body_text: Option<String>,
    pub location: Option<String>,
    /// What the client presented as credentials.
    pub auth: Option<crate::http::credentials::CredentialFacts>,
    /// Claims of a token the server issued in this exchange (token endpoint replies).
    pub issued_token: Option<crate::http::jwt::Claims>,
    pub user_agent: Option<String>,
    /// The request's `Accept`: which manifest media types the client takes, which also tells a
    /// pull's lookup of a tag from a push's check that a manifest is already there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept: Option<String>,
    /// The upstream `Date` header minus local time, in seconds.
    pub date_skew_secs: Option<i64>,
    /// Query `scope` (token requests) requested by the client.
    pub requested_scopes: Vec<String>,
    /// Query `service` of a token request: the registry the token is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

impl HttpExchange {
    /// Whether the request came from containerd's resolver (`containerd/1.6.20~ds1`: the CRI
    /// plugin's pulls and `ctr`). containerd frames registry errors in its own words, asks token
    /// services differently from Docker and gets its credentials from its caller.
    pub fn from_containerd(&self) -> bool {
        self.user_agent
            .as_deref()
            .is_some_and(|ua| ua.starts_with("containerd/"))
    }

    /// Whether this is containerd's check, before it pushes a manifest, that the registry has
    /// it already: a `HEAD` of the manifest accepting the one media type being pushed (its
    /// resolver, looking up a tag to pull, accepts every manifest type). A 404 to it is the
    /// expected answer.
    pub fn is_push_existence_check(&self) -> bool {
        self.from_containerd()
            && self.method.eq_ignore_ascii_case("HEAD")
            && self.path_class == "manifest"
            && self.accept.as_deref().is_some_and(|a| {
                a.split(',')
                    .map(|t| t.split(';').next().unwrap_or_default().trim())
                    .filter(|t| !t.is_empty() && *t != "*/*")
                    .count()
                    == 1
            })
    }
}

/// Words the tunnel's failure sentence uses when the client, not regdoc's deadline, ended a
/// silent handshake. The fact itself is [`FailureEvent::client_gave_up`]; nothing reads it back
/// from the sentence.
pub const CLIENT_GAVE_UP: &str = "the client gave up";

#[cfg(test)]
impl FailureEvent {
    /// A failure of `kind` at `host:port` for tests, with no observation, sentence or time.
    pub(crate) fn sample(host: &str, port: u16, phase: Phase, kind: FailureKind) -> FailureEvent {
        FailureEvent {
            conn_id: 1,
            client: SocketAddr::from(([127, 0, 0, 1], 40000)),
            target: crate::config::join_host_port(host, port),
            host: host.into(),
            port,
            endpoint: Endpoint::default(),
            phase,
            kind,
            error: String::new(),
            dns: None,
            tls: None,
            http: None,
            upstream_proxy: None,
            elapsed_ms: 0,
            client_gave_up: false,
        }
    }
}

/// A failure at the moment it happens: the input of the diagnosis.
#[derive(Debug, Clone, Serialize)]
pub struct FailureEvent {
    pub conn_id: u64,
    pub client: SocketAddr,
    /// `host:port` the client asked for.
    pub target: String,
    pub host: String,
    pub port: u16,
    #[serde(skip)]
    pub endpoint: Endpoint,
    pub phase: Phase,
    pub kind: FailureKind,
    /// One human sentence: what happened.
    pub error: String,
    pub dns: Option<DnsAnswer>,
    pub tls: Option<TlsObservation>,
    pub http: Option<HttpExchange>,
    pub upstream_proxy: Option<String>,
    /// Milliseconds spent in the failed phase.
    pub elapsed_ms: u64,
    /// The client, not regdoc's deadline, ended a handshake the server left unanswered: the
    /// client then printed its own handshake timeout rather than end of stream. Not a record
    /// field: the record's sentence says so in words.
    #[serde(skip)]
    pub client_gave_up: bool,
}
