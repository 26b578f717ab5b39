//! Headers that describe one hop of a message, not the message (RFC 9110 §7.6.1), removed
//! before a request or response is relayed: the one list forwarding and interception share.

use http::header::{self, HeaderMap, HeaderName};

/// Which hop regdoc relays a message across.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    /// regdoc is the client's proxy (plain `http://` forwarding): `Proxy-Authorization` is
    /// regdoc's own credential and `Proxy-Authenticate` a challenge to regdoc (from an
    /// upstream proxy); neither goes on (RFC 9110 §11.7).
    Proxy,
    /// regdoc stands in for the origin inside a tunnel (interception): the client addresses
    /// the origin, and every end-to-end field, `Authorization` above all, goes on as sent.
    Tunnel,
}

/// Fields that are hop-by-hop on every leg. `Trailer` is not among them: RFC 9110 §6.6.2 makes
/// it end-to-end, and without it hyper drops the trailers it announces.
const ALWAYS: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Fields addressed to the proxy itself.
const PROXY_ONLY: [HeaderName; 2] = [header::PROXY_AUTHORIZATION, header::PROXY_AUTHENTICATE];

/// The options `Connection` lists, lowercased (`close`, `keep-alive`, or names of fields for
/// this hop only).
pub fn connection_options(h: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    h.get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
}

/// `Connection: close` among the connection options: the sender ends its connection after
/// this message.
pub fn wants_close(h: &HeaderMap) -> bool {
    connection_options(h).any(|t| t == "close")
}

/// Remove the fields `Connection` names, then the fixed hop-by-hop set of `leg`.
pub fn strip(h: &mut HeaderMap, leg: Leg) {
    let named: Vec<HeaderName> = connection_options(h)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named {
        h.remove(name);
    }
    for name in ALWAYS {
        h.remove(name);
    }
    if leg == Leg::Proxy {
        for name in PROXY_ONLY {
            h.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<&str> {
        let mut n: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        n.sort_unstable();
        n
    }

    const SENT: &[(&str, &str)] = &[
        ("connection", "close, X-Private"),
        ("connection", "keep-alive"),
        ("x-private", "1"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("te", "trailers"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "h2c"),
        ("proxy-authorization", "Basic cHJveHk6cHc="),
        ("proxy-authenticate", "Basic realm=\"up\""),
        ("authorization", "Bearer for-the-origin"),
        ("trailer", "x-checksum"),
        ("content-length", "5"),
        ("host", "reg.local"),
    ];

    #[test]
    fn a_proxied_message_loses_the_proxys_credentials() {
        let mut h = headers(SENT);
        strip(&mut h, Leg::Proxy);
        assert_eq!(
            names(&h),
            ["authorization", "content-length", "host", "trailer"]
        );
    }

    #[test]
    fn a_tunnelled_message_keeps_every_end_to_end_field() {
        let mut h = headers(SENT);
        strip(&mut h, Leg::Tunnel);
        assert_eq!(
            names(&h),
            [
                "authorization",
                "content-length",
                "host",
                "proxy-authenticate",
                "proxy-authorization",
                "trailer"
            ]
        );
        assert_eq!(h["authorization"], "Bearer for-the-origin");
    }

    /// `Connection` may name any field, in any case, across several lines; junk is ignored.
    #[test]
    fn fields_named_by_connection_go() {
        let mut h = headers(&[
            ("connection", "X-Foo ,, x-bar"),
            ("connection", "not a name"),
            ("x-foo", "1"),
            ("x-bar", "2"),
            ("x-baz", "3"),
        ]);
        strip(&mut h, Leg::Tunnel);
        assert_eq!(names(&h), ["x-baz"]);
    }

    #[test]
    fn close_is_seen_among_options() {
        assert!(wants_close(&headers(&[(
            "connection",
            "keep-alive, Close"
        )])));
        assert!(!wants_close(&headers(&[("connection", "keep-alive")])));
        assert!(!wants_close(&headers(&[("x-close", "close")])));
    }
}
