//! Facts a `connection` record states, as types: how the connection was served and why it
//! ended. Each serialises to the snake_case word the records have always carried, so a typo is
//! a compile error rather than a new word in the log.

use serde::Serialize;

/// How a connection was served (`mode` of `connection` and `request` records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Refused before any upstream was reached.
    Refused,
    /// A CONNECT tunnel relayed as bytes (passthrough).
    Tunnel,
    /// A CONNECT tunnel whose TLS regdoc intercepted.
    Intercept,
    /// Plain `http://` requests forwarded.
    Forward,
}

/// Why a connection ended (`close_reason` of a `connection` record).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// Everything was relayed and both sides were done; what a connection that ended without
    /// naming another reason is recorded with.
    #[default]
    Done,
    /// regdoc refused the client (policy, an unreachable destination).
    Refused,
    /// The request head could not be read as HTTP.
    BadRequest,
    /// The proxy shut down while the connection was open.
    Shutdown,
    /// Closed gracefully between requests for a new client when slots ran short.
    Shed,
    ClientClosed,
    ServerClosed,
    /// Nothing moved either way for `timeouts.idle`.
    IdleTimeout,
    /// No next request head within the keep-alive bound.
    KeepAliveTimeout,
    HeadTooLarge,
    /// The client's side of an HTTP connection failed (not a timeout, not a parse error).
    ClientError,
    TlsTimeout,
    Reset,
    BrokenPipe,
    Timeout,
    IoError,
    /// Passthrough: the client refused the server's certificate.
    ClientRefusedCertificate,
    // Interception, in the order of a connection.
    ClientHelloInvalid,
    ClientHelloTimeout,
    SniMismatch,
    NameNotPermitted,
    UpstreamTlsFailed,
    LeafMintFailed,
    ClientRejectedCertificate,
    ClientHandshakeFailed,
    ClientHandshakeTimeout,
}

/// Serialise an unset close reason as the empty word, as the record did before it had a type
/// (a written record always has one: see `proxy::conn::finish`).
pub fn close_reason_or_empty<S: serde::Serializer>(
    r: &Option<CloseReason>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match r {
        Some(r) => r.serialize(s),
        None => s.serialize_str(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word<T: Serialize>(t: T) -> String {
        serde_json::to_value(t)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// The words records carried as string literals, unchanged.
    #[test]
    fn close_reasons_serialise_to_their_old_words() {
        use CloseReason::*;
        let all = [
            (Done, "done"),
            (Refused, "refused"),
            (BadRequest, "bad_request"),
            (Shutdown, "shutdown"),
            (Shed, "shed"),
            (ClientClosed, "client_closed"),
            (ServerClosed, "server_closed"),
            (IdleTimeout, "idle_timeout"),
            (KeepAliveTimeout, "keep_alive_timeout"),
            (HeadTooLarge, "head_too_large"),
            (ClientError, "client_error"),
            (TlsTimeout, "tls_timeout"),
            (Reset, "reset"),
            (BrokenPipe, "broken_pipe"),
            (Timeout, "timeout"),
            (IoError, "io_error"),
            (ClientRefusedCertificate, "client_refused_certificate"),
            (ClientHelloInvalid, "client_hello_invalid"),
            (ClientHelloTimeout, "client_hello_timeout"),
            (SniMismatch, "sni_mismatch"),
            (NameNotPermitted, "name_not_permitted"),
            (UpstreamTlsFailed, "upstream_tls_failed"),
            (LeafMintFailed, "leaf_mint_failed"),
            (ClientRejectedCertificate, "client_rejected_certificate"),
            (ClientHandshakeFailed, "client_handshake_failed"),
            (ClientHandshakeTimeout, "client_handshake_timeout"),
        ];
        for (r, w) in all {
            assert_eq!(word(r), w);
        }
    }

    #[test]
    fn modes_serialise_to_their_old_words() {
        assert_eq!(word(Mode::Refused), "refused");
        assert_eq!(word(Mode::Tunnel), "tunnel");
        assert_eq!(word(Mode::Intercept), "intercept");
        assert_eq!(word(Mode::Forward), "forward");
    }

    #[test]
    fn an_unset_close_reason_is_the_empty_word() {
        #[derive(Serialize)]
        struct R(#[serde(serialize_with = "close_reason_or_empty")] Option<CloseReason>);
        assert_eq!(serde_json::to_string(&R(None)).unwrap(), "\"\"");
        assert_eq!(
            serde_json::to_string(&R(Some(CloseReason::Shed))).unwrap(),
            "\"shed\""
        );
    }
}
