//! How an intercepted client is turned away before it gets a certificate.
//!
//! regdoc vouches for a name only when it is the CONNECT host, the CA permits it and the real
//! server proved it (its certificate passed verification). Otherwise the client gets no leaf:
//! a fatal TLS alert in answer to its ClientHello, or the end of the connection when the server
//! itself just went away (what the client would have seen without regdoc).

use super::upstream_tls::UpstreamTlsError;
use crate::observe::CertProblem;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// A TLS alert: its code and its name as RFC 8446 spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Alert {
    pub code: u8,
    pub name: &'static str,
}

/// TLS alert codes and names (IANA "TLS Alerts" registry).
const ALERTS: &[(u8, &str)] = &[
    (0, "close_notify"),
    (10, "unexpected_message"),
    (20, "bad_record_mac"),
    (22, "record_overflow"),
    (40, "handshake_failure"),
    (42, "bad_certificate"),
    (43, "unsupported_certificate"),
    (44, "certificate_revoked"),
    (45, "certificate_expired"),
    (46, "certificate_unknown"),
    (47, "illegal_parameter"),
    (48, "unknown_ca"),
    (49, "access_denied"),
    (50, "decode_error"),
    (51, "decrypt_error"),
    (70, "protocol_version"),
    (71, "insufficient_security"),
    (80, "internal_error"),
    (86, "inappropriate_fallback"),
    (90, "user_canceled"),
    (100, "no_renegotiation"),
    (109, "missing_extension"),
    (110, "unsupported_extension"),
    (112, "unrecognized_name"),
    (113, "bad_certificate_status_response"),
    (115, "unknown_psk_identity"),
    (116, "certificate_required"),
    (120, "no_application_protocol"),
];

impl Alert {
    fn of(code: u8) -> Alert {
        let name = ALERTS
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, n)| *n)
            .unwrap_or("handshake_failure");
        Alert { code, name }
    }

    /// The client asked for a name regdoc will not vouch for.
    pub const UNRECOGNIZED_NAME: Alert = Alert {
        code: 112,
        name: "unrecognized_name",
    };
    pub const HANDSHAKE_FAILURE: Alert = Alert {
        code: 40,
        name: "handshake_failure",
    };
    pub const INTERNAL_ERROR: Alert = Alert {
        code: 80,
        name: "internal_error",
    };

    /// The alert rustls names `debug` (`HandshakeFailure`, its `Debug` form, which is how
    /// [`UpstreamTlsError::Alert`] records it).
    fn from_rustls_name(debug: &str) -> Option<Alert> {
        (0..=u8::MAX)
            .find(|c| format!("{:?}", rustls::AlertDescription::from(*c)) == debug)
            .map(Alert::of)
    }
}

/// What the client gets when the server's handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    Alert(Alert),
    /// End the connection without a word, as the server did.
    Close,
}

/// The answer to a client whose server failed its handshake with regdoc. The server's own alert
/// is relayed; a certificate regdoc refused is named by the alert that says why (Go prints
/// `remote error: tls: unknown certificate authority`); a server that closed, reset or stayed
/// silent is mirrored by closing.
pub(super) fn for_upstream(e: &UpstreamTlsError) -> Answer {
    match e {
        UpstreamTlsError::Alert { description } => {
            Answer::Alert(Alert::from_rustls_name(description).unwrap_or(Alert::HANDSHAKE_FAILURE))
        }
        UpstreamTlsError::Certificate { problem, .. } => Answer::Alert(Alert::of(match problem {
            CertProblem::UnknownIssuer => 48,
            CertProblem::Expired | CertProblem::NotYetValid => 45,
            CertProblem::NameMismatch | CertProblem::Other => 42,
        })),
        UpstreamTlsError::Closed { .. }
        | UpstreamTlsError::Reset { .. }
        | UpstreamTlsError::Timeout { .. } => Answer::Close,
        UpstreamTlsError::NotTls { .. } => Answer::Alert(Alert::HANDSHAKE_FAILURE),
        UpstreamTlsError::Handshake { .. } => Answer::Alert(Alert::INTERNAL_ERROR),
    }
}

/// Whether the client's server name (SNI) allows a leaf for the CONNECT `host`: absent (a
/// client that sends none, as for an IP address, gets the CONNECT host), or the same name.
/// Both sides are compared as [`super::mint::normalize`] leaves them.
pub(super) fn sni_matches(sni: Option<&str>, host: &str) -> bool {
    sni.is_none_or(|s| super::mint::normalize(s) == super::mint::normalize(host))
}

/// Send `alert` as the answer to a ClientHello and close. Nothing has been sent yet, so the
/// alert travels as a plaintext record, which every TLS version accepts at this point.
pub(super) async fn send_alert<IO: AsyncWrite + Unpin>(io: &mut IO, alert: Alert, limit: Duration) {
    let record = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, alert.code];
    // The client may be gone already; the failure record says what regdoc tried to tell it.
    let _ = tokio::time::timeout(limit, async {
        io.write_all(&record).await?;
        io.flush().await?;
        io.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_failures_map_to_alerts_or_a_close() {
        let cert = |problem| UpstreamTlsError::Certificate {
            problem,
            detail: String::new(),
        };
        assert_eq!(
            for_upstream(&cert(CertProblem::UnknownIssuer)),
            Answer::Alert(Alert::of(48))
        );
        assert_eq!(Alert::of(48).name, "unknown_ca");
        assert_eq!(
            for_upstream(&cert(CertProblem::Expired)),
            Answer::Alert(Alert::of(45))
        );
        let relayed = UpstreamTlsError::Alert {
            description: format!("{:?}", rustls::AlertDescription::ProtocolVersion),
        };
        assert_eq!(
            for_upstream(&relayed),
            Answer::Alert(Alert {
                code: 70,
                name: "protocol_version"
            })
        );
        let odd = UpstreamTlsError::Alert {
            description: "Nonsense".into(),
        };
        assert_eq!(for_upstream(&odd), Answer::Alert(Alert::HANDSHAKE_FAILURE));
        assert_eq!(
            for_upstream(&UpstreamTlsError::Timeout { secs: 8 }),
            Answer::Close
        );
    }

    #[test]
    fn sni_must_be_the_connect_host() {
        assert!(sni_matches(None, "myreg.azurecr.io"));
        assert!(sni_matches(Some("MyReg.azurecr.io."), "myreg.azurecr.io"));
        assert!(!sni_matches(Some("www.google.com"), "myreg.azurecr.io"));
        assert!(!sni_matches(Some("myreg.azurecr.io"), "10.0.0.1"));
        assert!(sni_matches(None, "[::1]"));
    }

    #[tokio::test]
    async fn the_alert_is_one_plaintext_record() {
        let (mut a, mut b) = tokio::io::duplex(64);
        send_alert(&mut a, Alert::UNRECOGNIZED_NAME, Duration::from_secs(5)).await;
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut b, &mut got)
            .await
            .unwrap();
        assert_eq!(got, [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112]);
    }
}
