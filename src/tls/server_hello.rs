//! The server's first message: a ServerHello (version and cipher chosen) or an alert.
//!
//! Read from the server's side of a tunnel after the client's hello was forwarded. An alert here
//! is the server refusing the handshake (no common version, no common ALPN, unknown SNI), which
//! the diagnosis turns into a cause.

use serde::Serialize;

use super::wire::{self, First, Reader};
pub use super::HelloError;
use super::MAX_HELLO_BYTES;

const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// What the server sent first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServerFirst {
    /// A ServerHello (a HelloRetryRequest is reported the same way: it fixes version and cipher).
    Hello {
        /// `TLS1.3`, `TLS1.2`, …: from `supported_versions` when present (TLS 1.3), else the
        /// legacy version field.
        version: String,
        /// IANA cipher suite name (`TLS13_AES_128_GCM_SHA256`,
        /// `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`), or `0x....` if unknown.
        cipher: String,
    },
    /// An alert instead of a hello.
    Alert {
        /// `warning` or `fatal`.
        level: String,
        /// RFC 8446 §6 name (`handshake_failure`, `protocol_version`, …).
        description: String,
    },
}

/// Parse the server's first bytes.
pub fn parse(buf: &[u8]) -> Result<ServerFirst, HelloError> {
    if buf.is_empty() {
        return Err(HelloError::Incomplete);
    }
    // Any other record type from a TLS server at this point is a protocol error, not another
    // protocol: tell the two apart.
    if wire::check_record_start(
        buf,
        &[
            wire::CONTENT_HANDSHAKE,
            wire::CONTENT_ALERT,
            wire::CONTENT_CHANGE_CIPHER_SPEC,
            wire::CONTENT_APPLICATION_DATA,
        ],
    )
    .is_err()
    {
        return Err(HelloError::NotTls);
    }
    if !matches!(buf[0], wire::CONTENT_HANDSHAKE | wire::CONTENT_ALERT) {
        return Err(HelloError::Invalid(
            "server's first record is neither a handshake nor an alert",
        ));
    }
    match wire::read_first(buf, MAX_HELLO_BYTES)? {
        First::Alert(level, description) => Ok(ServerFirst::Alert {
            level: alert_level(level),
            description: alert_description(description),
        }),
        First::Handshake(wire::HANDSHAKE_SERVER_HELLO, body) => parse_body(&body),
        First::Handshake(..) => Err(HelloError::Invalid(
            "first handshake message is not a ServerHello",
        )),
    }
}

fn parse_body(body: &[u8]) -> Result<ServerFirst, HelloError> {
    let mut r = Reader::new(body);
    let legacy_version = r
        .u16()
        .ok_or(HelloError::Invalid("truncated legacy_version"))?;
    r.take(32).ok_or(HelloError::Invalid("truncated random"))?;
    let session_id = r
        .vec8()
        .ok_or(HelloError::Invalid("truncated session id"))?;
    if session_id.remaining() > 32 {
        return Err(HelloError::Invalid("session id longer than 32 bytes"));
    }
    let cipher = r
        .u16()
        .ok_or(HelloError::Invalid("truncated cipher suite"))?;
    r.u8()
        .ok_or(HelloError::Invalid("truncated compression method"))?;
    let mut version = legacy_version;
    if !r.is_empty() {
        let mut exts = r
            .vec16()
            .ok_or(HelloError::Invalid("truncated extensions"))?;
        while !exts.is_empty() {
            let ext_type = exts
                .u16()
                .ok_or(HelloError::Invalid("truncated extension type"))?;
            let mut data = exts
                .vec16()
                .ok_or(HelloError::Invalid("truncated extension data"))?;
            if ext_type == EXT_SUPPORTED_VERSIONS {
                version = data
                    .u16()
                    .ok_or(HelloError::Invalid("truncated supported_versions"))?;
            }
        }
    }
    Ok(ServerFirst::Hello {
        version: wire::version_name(version),
        cipher: cipher_name(cipher),
    })
}

/// Alert level name.
pub fn alert_level(level: u8) -> String {
    match level {
        1 => "warning".to_string(),
        2 => "fatal".to_string(),
        other => format!("unknown({other})"),
    }
}

/// Alert description name (RFC 8446 §6 and the earlier TLS RFCs), or `unknown(N)`.
pub fn alert_description(code: u8) -> String {
    let name = match code {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        111 => "certificate_unobtainable",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        114 => "bad_certificate_hash_value",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        121 => "ech_required",
        other => return format!("unknown({other})"),
    };
    name.to_string()
}

/// IANA name of a cipher suite (TLS 1.3 suites with the `TLS13_` prefix rustls uses), or
/// `0x....` for one not in the table. The table covers what registries, CDNs and intercepting
/// proxies negotiate in practice, not the whole registry.
pub fn cipher_name(suite: u16) -> String {
    let name = match suite {
        0x1301 => "TLS13_AES_128_GCM_SHA256",
        0x1302 => "TLS13_AES_256_GCM_SHA384",
        0x1303 => "TLS13_CHACHA20_POLY1305_SHA256",
        0x1304 => "TLS13_AES_128_CCM_SHA256",
        0x1305 => "TLS13_AES_128_CCM_8_SHA256",
        0xc02b => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        0xc02c => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        0xc02f => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        0xc030 => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        0xcca8 => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0xcca9 => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        0xccaa => "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0xc009 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        0xc00a => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        0xc013 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        0xc014 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        0xc023 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        0xc024 => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
        0xc027 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
        0xc028 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
        0x009e => "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        0x009f => "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
        0x0033 => "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
        0x0039 => "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
        0x0067 => "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
        0x006b => "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
        0x009c => "TLS_RSA_WITH_AES_128_GCM_SHA256",
        0x009d => "TLS_RSA_WITH_AES_256_GCM_SHA384",
        0x002f => "TLS_RSA_WITH_AES_128_CBC_SHA",
        0x0035 => "TLS_RSA_WITH_AES_256_CBC_SHA",
        0x003c => "TLS_RSA_WITH_AES_128_CBC_SHA256",
        0x003d => "TLS_RSA_WITH_AES_256_CBC_SHA256",
        0x000a => "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        0xc012 => "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        0x0005 => "TLS_RSA_WITH_RC4_128_SHA",
        0xc011 => "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
        other => return format!("0x{other:04x}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::wire::capture::{handshake, Side};
    use crate::tls::wire::{reframe, CONTENT_HANDSHAKE, RECORD_HEADER_LEN};
    use rustls::crypto::ring::cipher_suite;
    use rustls::version::{TLS12, TLS13};

    #[test]
    fn tls13_version_comes_from_supported_versions() {
        let server = Side {
            suites: vec![cipher_suite::TLS13_CHACHA20_POLY1305_SHA256],
            ..Side::default()
        };
        let cap = handshake("myreg.azurecr.io", &Side::default(), &server);
        assert!(!cap.server_failed);
        // The legacy field says TLS 1.2: only the extension tells the truth.
        assert_eq!(
            &cap.server_first[RECORD_HEADER_LEN + 4..RECORD_HEADER_LEN + 6],
            &[3, 3]
        );
        assert_eq!(
            parse(&cap.server_first),
            Ok(ServerFirst::Hello {
                version: "TLS1.3".into(),
                cipher: "TLS13_CHACHA20_POLY1305_SHA256".into(),
            })
        );
    }

    #[test]
    fn tls13_default_suites() {
        let client = Side {
            suites: vec![cipher_suite::TLS13_AES_128_GCM_SHA256],
            ..Side::default()
        };
        let cap = handshake(
            "myreg.westeurope.data.azurecr.io",
            &client,
            &Side::default(),
        );
        assert_eq!(
            parse(&cap.server_first),
            Ok(ServerFirst::Hello {
                version: "TLS1.3".into(),
                cipher: "TLS13_AES_128_GCM_SHA256".into(),
            })
        );
    }

    #[test]
    fn tls12_server_hello_shares_its_flight_with_the_certificate() {
        let server = Side {
            versions: vec![&TLS12],
            suites: vec![cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256],
            ..Side::default()
        };
        let cap = handshake("myreg.azurecr.io", &Side::default(), &server);
        assert!(!cap.server_failed);
        let expected = ServerFirst::Hello {
            version: "TLS1.2".into(),
            cipher: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into(),
        };
        assert_eq!(parse(&cap.server_first), Ok(expected.clone()));
        // The hello is complete long before the certificate: the first 150 bytes are enough.
        assert_eq!(parse(&cap.server_first[..150]), Ok(expected));
    }

    #[test]
    fn every_prefix_of_the_hello_is_incomplete() {
        let cap = handshake("myreg.azurecr.io", &Side::default(), &Side::default());
        let hello_len = RECORD_HEADER_LEN
            + 4
            + usize::from(u16::from_be_bytes([
                cap.server_first[7],
                cap.server_first[8],
            ]));
        for cut in 0..hello_len {
            assert_eq!(
                parse(&cap.server_first[..cut]),
                Err(HelloError::Incomplete),
                "cut {cut}"
            );
        }
        assert!(parse(&cap.server_first[..hello_len]).is_ok());
    }

    #[test]
    fn fragmented_server_hello() {
        let server = Side {
            max_fragment: Some(40),
            ..Side::default()
        };
        let cap = handshake("myreg.azurecr.io", &Side::default(), &server);
        let first_len = usize::from(u16::from_be_bytes([
            cap.server_first[3],
            cap.server_first[4],
        ]));
        assert!(first_len <= 40);
        assert!(matches!(
            parse(&cap.server_first),
            Ok(ServerFirst::Hello { version, .. }) if version == "TLS1.3"
        ));
        // The start of a hello spread over one-byte records still asks for more.
        let partial = reframe(
            &cap.server_first[RECORD_HEADER_LEN..RECORD_HEADER_LEN + first_len],
            CONTENT_HANDSHAKE,
            1,
        );
        assert_eq!(parse(&partial), Err(HelloError::Incomplete));
    }

    #[test]
    fn no_common_alpn_gives_no_application_protocol_alert() {
        // Over TLS 1.2 the alert replaces the ServerHello.
        let client = Side {
            alpn: vec!["http/1.1"],
            ..Side::default()
        };
        let server = Side {
            alpn: vec!["h2"],
            versions: vec![&TLS12],
            ..Side::default()
        };
        let cap = handshake("myreg.azurecr.io", &client, &server);
        assert!(cap.server_failed);
        assert_eq!(
            parse(&cap.server_first),
            Ok(ServerFirst::Alert {
                level: "fatal".into(),
                description: "no_application_protocol".into(),
            })
        );
    }

    #[test]
    fn tls13_alert_after_server_hello_is_encrypted_so_the_hello_is_reported() {
        // rustls checks ALPN after its TLS 1.3 ServerHello; the alert that follows is
        // encrypted, so what an observer can read is the hello.
        let client = Side {
            alpn: vec!["http/1.1"],
            ..Side::default()
        };
        let server = Side {
            alpn: vec!["h2"],
            ..Side::default()
        };
        let cap = handshake("myreg.azurecr.io", &client, &server);
        assert!(cap.server_failed);
        assert!(matches!(
            parse(&cap.server_first),
            Ok(ServerFirst::Hello { version, .. }) if version == "TLS1.3"
        ));
    }

    #[test]
    fn tls12_server_against_tls13_client_gives_protocol_version_alert() {
        let client = Side {
            versions: vec![&TLS13],
            ..Side::default()
        };
        let server = Side {
            versions: vec![&TLS12],
            ..Side::default()
        };
        let cap = handshake("myreg.azurecr.io", &client, &server);
        assert!(cap.server_failed);
        assert_eq!(
            parse(&cap.server_first),
            Ok(ServerFirst::Alert {
                level: "fatal".into(),
                description: "protocol_version".into(),
            })
        );
    }

    #[test]
    fn no_common_cipher_gives_handshake_failure_alert() {
        let client = Side {
            suites: vec![cipher_suite::TLS13_AES_256_GCM_SHA384],
            ..Side::default()
        };
        let server = Side {
            suites: vec![cipher_suite::TLS13_CHACHA20_POLY1305_SHA256],
            ..Side::default()
        };
        let cap = handshake("myreg.azurecr.io", &client, &server);
        assert!(cap.server_failed);
        assert_eq!(
            parse(&cap.server_first),
            Ok(ServerFirst::Alert {
                level: "fatal".into(),
                description: "handshake_failure".into(),
            })
        );
    }

    #[test]
    fn hand_written_alerts() {
        let alert = |level, desc| parse(&[0x15, 0x03, 0x03, 0x00, 0x02, level, desc]);
        assert_eq!(
            alert(1, 112),
            Ok(ServerFirst::Alert {
                level: "warning".into(),
                description: "unrecognized_name".into()
            })
        );
        assert_eq!(
            alert(2, 80),
            Ok(ServerFirst::Alert {
                level: "fatal".into(),
                description: "internal_error".into()
            })
        );
        assert_eq!(
            alert(7, 200),
            Ok(ServerFirst::Alert {
                level: "unknown(7)".into(),
                description: "unknown(200)".into()
            })
        );
        // SSL 3.0 record version, as some old middleboxes write.
        assert!(matches!(
            parse(&[0x15, 0x03, 0x00, 0x00, 0x02, 0x02, 0x28]),
            Ok(ServerFirst::Alert { description, .. }) if description == "handshake_failure"
        ));
    }

    #[test]
    fn not_tls_answers() {
        for input in [
            &b"HTTP/1.1 400 Bad Request\r\n\r\n"[..],
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"<html>",
            b"\x16\x01\x00",
            b"\x15\x03\x07",
            b"\x00\x00\x00\x00\x00",
        ] {
            assert_eq!(parse(input), Err(HelloError::NotTls), "{input:?}");
        }
        assert_eq!(parse(b""), Err(HelloError::Incomplete));
        assert_eq!(parse(b"\x16"), Err(HelloError::Incomplete));
        assert!(matches!(
            parse(b"\x17\x03\x03\x00\x10"),
            Err(HelloError::Invalid(_))
        ));
    }

    #[test]
    fn client_hello_bytes_are_not_a_server_hello() {
        let cap = handshake("myreg.azurecr.io", &Side::default(), &Side::default());
        assert_eq!(
            parse(&cap.client_first),
            Err(HelloError::Invalid(
                "first handshake message is not a ServerHello"
            ))
        );
    }

    #[test]
    fn names() {
        assert_eq!(cipher_name(0xc02f), "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
        assert_eq!(cipher_name(0x1302), "TLS13_AES_256_GCM_SHA384");
        assert_eq!(cipher_name(0xabcd), "0xabcd");
        assert_eq!(alert_description(70), "protocol_version");
        assert_eq!(alert_description(48), "unknown_ca");
        assert_eq!(alert_level(2), "fatal");
    }

    #[test]
    fn never_panics_on_mutated_server_flights() {
        let flights = [
            handshake("myreg.azurecr.io", &Side::default(), &Side::default()).server_first,
            handshake(
                "myreg.azurecr.io",
                &Side::default(),
                &Side {
                    versions: vec![&TLS12],
                    ..Side::default()
                },
            )
            .server_first,
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut hellos = 0;
        for i in 0..20_000 {
            let flight = &flights[i % 2];
            let cut = (next() as usize) % (flight.len() + 1);
            let mut input = flight[..cut.clamp(1, flight.len().min(200))].to_vec();
            for _ in 0..(next() % 4) {
                let at = (next() as usize) % input.len();
                input[at] = next() as u8;
            }
            if let Ok(ServerFirst::Hello { .. }) = parse(&input) {
                hellos += 1;
            }
        }
        assert!(hellos > 0);
    }
}

/// Properties of the server-first parser over real server flights (TLS 1.3, TLS 1.2 with its
/// certificate, alerts) and their mutations.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::proptest_support::mutated;
    use crate::tls::wire::capture::{handshake, Side};
    use crate::tls::wire::RECORD_HEADER_LEN;
    use proptest::prelude::*;
    use proptest::sample::Index;
    use rustls::version::{TLS12, TLS13};
    use std::sync::LazyLock;

    /// Real flights that start with a ServerHello, made once per test binary.
    static HELLO_FLIGHTS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
        let tls12 = Side {
            versions: vec![&TLS12],
            ..Side::default()
        };
        vec![
            handshake("myreg.azurecr.io", &Side::default(), &Side::default()).server_first,
            handshake("myreg.azurecr.io", &Side::default(), &tls12).server_first,
            handshake(
                "myreg.azurecr.io",
                &Side::default(),
                &Side {
                    max_fragment: Some(40),
                    ..Side::default()
                },
            )
            .server_first,
        ]
    });

    /// Every kind of real first answer: the hellos above and refusals (alerts).
    static FLIGHTS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
        let mut all = HELLO_FLIGHTS.clone();
        let refused = handshake(
            "myreg.azurecr.io",
            &Side {
                versions: vec![&TLS13],
                ..Side::default()
            },
            &Side {
                versions: vec![&TLS12],
                ..Side::default()
            },
        );
        assert!(refused.server_failed);
        all.push(refused.server_first);
        all.push(vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
        all
    });

    fn a_hello_flight() -> impl Strategy<Value = Vec<u8>> {
        any::<Index>().prop_map(|i| HELLO_FLIGHTS[i.index(HELLO_FLIGHTS.len())].clone())
    }

    /// Length of the ServerHello message's bytes, record header(s) included, at the start of a
    /// flight: the shortest prefix that parses.
    fn hello_end(flight: &[u8]) -> usize {
        (1..=flight.len())
            .find(|&n| parse(&flight[..n]).is_ok())
            .expect("a hello flight parses")
    }

    /// Names that reach the log are printable ASCII.
    fn assert_loggable(first: &ServerFirst) -> Result<(), TestCaseError> {
        let (a, b) = match first {
            ServerFirst::Hello { version, cipher } => (version, cipher),
            ServerFirst::Alert { level, description } => (level, description),
        };
        for s in [a, b] {
            prop_assert!(
                !s.is_empty() && s.bytes().all(|c| c.is_ascii_graphic()),
                "{:?}",
                s
            );
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(crate::proptest_support::cases(256))]

        #[test]
        fn never_panics_on_arbitrary_bytes(buf in prop::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(first) = parse(&buf) {
                assert_loggable(&first)?;
            }
        }

        #[test]
        fn mutated_flights_parse_to_loggable_facts_or_errors(buf in mutated(FLIGHTS.clone())) {
            if let Ok(first) = parse(&buf) {
                assert_loggable(&first)?;
            }
        }

        /// Before the hello is complete the answer is `Incomplete`; from then on, whatever
        /// else of the flight has arrived (certificate, encrypted records) the answer is the
        /// same. The tunnel re-parses its growing buffer after every read and relies on both.
        #[test]
        fn prefixes_are_incomplete_then_final(flight in a_hello_flight(), cut in any::<Index>()) {
            let end = hello_end(&flight);
            let cut = cut.index(flight.len() + 1);
            let full = parse(&flight);
            prop_assert!(full.is_ok());
            if cut < end {
                prop_assert_eq!(parse(&flight[..cut]), Err(HelloError::Incomplete));
            } else {
                prop_assert_eq!(parse(&flight[..cut]), full);
            }
        }

        /// The ServerHello message in records of any sizes gives the same answer.
        #[test]
        fn record_boundaries_do_not_change_the_answer(
            flight in a_hello_flight(),
            cuts in prop::collection::vec(any::<Index>(), 0..12),
        ) {
            let Some(records) = crate::proptest_support::handshake_in_records(&flight, &cuts) else {
                return Err(TestCaseError::fail("seed is not a handshake"));
            };
            prop_assert!(records.len() >= RECORD_HEADER_LEN);
            prop_assert_eq!(parse(&records), parse(&flight));
        }

        /// Every alert is reported by its names, whatever follows it.
        #[test]
        fn alerts_are_named(
            level in any::<u8>(),
            description in any::<u8>(),
            trailing in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut buf = vec![0x15, 0x03, 0x03, 0x00, 0x02, level, description];
            buf.extend_from_slice(&trailing);
            let first = parse(&buf);
            prop_assert_eq!(
                first.clone(),
                Ok(ServerFirst::Alert {
                    level: alert_level(level),
                    description: alert_description(description),
                })
            );
            assert_loggable(&first.unwrap())?;
        }
    }
}
