//! ClientHello: what a client offers at the start of a TLS connection.
//!
//! regdoc reads it from the client's side of a CONNECT tunnel (to log SNI and ALPN and to check
//! the SNI against the CONNECT target), and from the first bytes of a connection that was meant
//! to carry an HTTP request (a client whose proxy URL says `https://`).

use serde::Serialize;

use super::wire::{self, First, Reader};
pub use super::HelloError;
use super::MAX_HELLO_BYTES;

const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// Facts from a ClientHello.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClientHello {
    /// The host name of the `server_name` extension.
    pub sni: Option<String>,
    /// ALPN protocols in the client's order (`h2`, `http/1.1`).
    pub alpn: Vec<String>,
    /// Versions offered, most preferred first (`TLS1.3`, `TLS1.2`): the `supported_versions`
    /// extension without GREASE values, or the legacy version when the extension is absent.
    pub versions: Vec<String>,
    /// Number of cipher suites offered (GREASE values included).
    pub cipher_suites: usize,
}

/// Whether `first` (the first bytes a client sent, possibly only one) can be the start of a
/// TLS ClientHello. Every byte present is checked, so `CONNECT`, `GET ` or any other HTTP
/// method is rejected on its first byte.
pub fn looks_like_tls(first: &[u8]) -> bool {
    if first.is_empty() || wire::check_record_start(first, &[wire::CONTENT_HANDSHAKE]).is_err() {
        return false;
    }
    if let (Some(&hi), Some(&lo)) = (first.get(3), first.get(4)) {
        if u16::from_be_bytes([hi, lo]) == 0 {
            return false;
        }
    }
    match first.get(5) {
        Some(&t) => t == wire::HANDSHAKE_CLIENT_HELLO,
        None => true,
    }
}

/// Parse the ClientHello at the start of `buf`, which holds the client's bytes from the start of
/// the stream (possibly several records, possibly incomplete).
pub fn parse(buf: &[u8]) -> Result<ClientHello, HelloError> {
    if buf.is_empty() {
        return Err(HelloError::Incomplete);
    }
    wire::check_record_start(buf, &[wire::CONTENT_HANDSHAKE])?;
    match wire::read_first(buf, MAX_HELLO_BYTES)? {
        First::Handshake(wire::HANDSHAKE_CLIENT_HELLO, body) => parse_body(&body),
        First::Handshake(..) => Err(HelloError::Invalid(
            "first handshake message is not a ClientHello",
        )),
        // Excluded by the record-start check, kept for completeness.
        First::Alert(..) => Err(HelloError::NotTls),
    }
}

fn parse_body(body: &[u8]) -> Result<ClientHello, HelloError> {
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
    let suites = r
        .vec16()
        .ok_or(HelloError::Invalid("truncated cipher suites"))?;
    if suites.remaining() == 0 || suites.remaining() % 2 != 0 {
        return Err(HelloError::Invalid("cipher suite list is empty or odd"));
    }
    let cipher_suites = suites.remaining() / 2;
    r.vec8()
        .ok_or(HelloError::Invalid("truncated compression methods"))?;

    let mut hello = ClientHello {
        cipher_suites,
        ..ClientHello::default()
    };
    let mut offered_versions: Option<Vec<String>> = None;
    // Extensions are optional for pre-TLS 1.3 clients.
    if !r.is_empty() {
        let mut exts = r
            .vec16()
            .ok_or(HelloError::Invalid("truncated extensions"))?;
        if !r.is_empty() {
            return Err(HelloError::Invalid("bytes after the extensions"));
        }
        let mut seen: Vec<u16> = Vec::new();
        while !exts.is_empty() {
            let ext_type = exts
                .u16()
                .ok_or(HelloError::Invalid("truncated extension type"))?;
            let data = exts
                .vec16()
                .ok_or(HelloError::Invalid("truncated extension data"))?;
            if seen.contains(&ext_type) {
                return Err(HelloError::Invalid("duplicate extension"));
            }
            seen.push(ext_type);
            match ext_type {
                EXT_SERVER_NAME => hello.sni = parse_server_name(data)?,
                EXT_ALPN => hello.alpn = parse_alpn(data)?,
                EXT_SUPPORTED_VERSIONS => offered_versions = Some(parse_versions(data)?),
                _ => {}
            }
        }
    } else if legacy_version == 0 {
        return Err(HelloError::Invalid("legacy_version is zero"));
    }
    hello.versions = match offered_versions {
        Some(v) if !v.is_empty() => v,
        _ => vec![wire::version_name(legacy_version)],
    };
    Ok(hello)
}

fn parse_server_name(mut data: Reader<'_>) -> Result<Option<String>, HelloError> {
    let mut list = data
        .vec16()
        .ok_or(HelloError::Invalid("truncated server_name list"))?;
    let mut host = None;
    while !list.is_empty() {
        let name_type = list
            .u8()
            .ok_or(HelloError::Invalid("truncated server name type"))?;
        let name = list
            .vec16()
            .ok_or(HelloError::Invalid("truncated server name"))?;
        let bytes = name.rest();
        // RFC 6066: type 0 is host_name, and there is at most one of each type.
        if name_type == 0 && host.is_none() {
            host = Some(host_name(bytes)?);
        }
    }
    Ok(host)
}

/// A DNS host name as sent in SNI: ASCII letters, digits, `-`, `.`, `_` only. Anything else
/// would be logged verbatim, so it is refused rather than escaped.
fn host_name(bytes: &[u8]) -> Result<String, HelloError> {
    if bytes.is_empty() || bytes.len() > 255 {
        return Err(HelloError::Invalid(
            "server name is empty or longer than 255 bytes",
        ));
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err(HelloError::Invalid("server name is not a DNS host name"));
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

fn parse_alpn(mut data: Reader<'_>) -> Result<Vec<String>, HelloError> {
    let mut list = data
        .vec16()
        .ok_or(HelloError::Invalid("truncated ALPN list"))?;
    let mut out = Vec::new();
    while !list.is_empty() {
        let proto = list
            .vec8()
            .ok_or(HelloError::Invalid("truncated ALPN protocol"))?;
        let bytes = proto.rest();
        if bytes.is_empty() {
            return Err(HelloError::Invalid("empty ALPN protocol"));
        }
        out.push(protocol_name(bytes));
    }
    Ok(out)
}

/// ALPN ids are opaque bytes; registered ones are printable ASCII. Others (GREASE) are shown in
/// hex so a log line never carries control bytes.
pub(crate) fn protocol_name(bytes: &[u8]) -> String {
    if bytes.iter().all(|b| b.is_ascii_graphic()) {
        String::from_utf8_lossy(bytes).into_owned()
    } else {
        let mut s = String::from("0x");
        for b in bytes {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

fn parse_versions(mut data: Reader<'_>) -> Result<Vec<String>, HelloError> {
    let mut list = data
        .vec8()
        .ok_or(HelloError::Invalid("truncated supported_versions"))?;
    if list.remaining() % 2 != 0 {
        return Err(HelloError::Invalid("odd supported_versions length"));
    }
    let mut out = Vec::new();
    while let Some(v) = list.u16() {
        if !wire::is_grease(v) {
            out.push(wire::version_name(v));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::wire::capture::{handshake, Side};
    use crate::tls::wire::{reframe, CONTENT_HANDSHAKE, RECORD_HEADER_LEN};
    use rustls::version::{TLS12, TLS13};

    fn hello_for(client: Side) -> Vec<u8> {
        handshake("myreg.azurecr.io", &client, &Side::default()).client_first
    }

    #[test]
    fn rustls_tls13_hello_with_alpn() {
        let bytes = hello_for(Side {
            alpn: vec!["h2", "http/1.1"],
            ..Side::default()
        });
        assert!(looks_like_tls(&bytes));
        let hello = parse(&bytes).unwrap();
        assert_eq!(hello.sni.as_deref(), Some("myreg.azurecr.io"));
        assert_eq!(hello.alpn, vec!["h2", "http/1.1"]);
        assert_eq!(hello.versions, vec!["TLS1.3", "TLS1.2"]);
        // ring's default provider: three TLS 1.3 suites and six TLS 1.2 ones, and rustls adds
        // the renegotiation SCSV.
        assert_eq!(
            hello.cipher_suites,
            rustls::crypto::ring::DEFAULT_CIPHER_SUITES.len() + 1
        );
    }

    #[test]
    fn rustls_tls12_only_hello_uses_legacy_version() {
        let bytes = hello_for(Side {
            versions: vec![&TLS12],
            ..Side::default()
        });
        let hello = parse(&bytes).unwrap();
        assert_eq!(hello.versions, vec!["TLS1.2"]);
        assert!(hello.alpn.is_empty());
        assert_eq!(hello.sni.as_deref(), Some("myreg.azurecr.io"));
    }

    #[test]
    fn rustls_tls13_only_hello() {
        let bytes = hello_for(Side {
            versions: vec![&TLS13],
            alpn: vec!["http/1.1"],
            ..Side::default()
        });
        let hello = parse(&bytes).unwrap();
        assert_eq!(hello.versions, vec!["TLS1.3"]);
        assert_eq!(hello.alpn, vec!["http/1.1"]);
    }

    #[test]
    fn ip_address_target_sends_no_sni() {
        let bytes = handshake("127.0.0.1", &Side::default(), &Side::default()).client_first;
        let hello = parse(&bytes).unwrap();
        assert_eq!(hello.sni, None);
    }

    #[test]
    fn hello_fragmented_by_rustls_is_reassembled() {
        let bytes = hello_for(Side {
            alpn: vec!["h2"],
            max_fragment: Some(64),
            ..Side::default()
        });
        // More than one record really was written.
        let first_len = usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
        assert!(RECORD_HEADER_LEN + first_len < bytes.len());
        let hello = parse(&bytes).unwrap();
        assert_eq!(hello.sni.as_deref(), Some("myreg.azurecr.io"));
        assert_eq!(hello.alpn, vec!["h2"]);
    }

    #[test]
    fn every_prefix_is_incomplete_and_full_hello_parses() {
        let bytes = hello_for(Side {
            max_fragment: Some(100),
            ..Side::default()
        });
        for cut in 0..bytes.len() {
            assert_eq!(
                parse(&bytes[..cut]),
                Err(HelloError::Incomplete),
                "cut {cut}"
            );
        }
        assert!(parse(&bytes).is_ok());
        // Trailing bytes (the client's next records) do not matter.
        let mut more = bytes.clone();
        more.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x01, 0x00]);
        assert!(parse(&more).is_ok());
    }

    #[test]
    fn reframed_hello_with_one_byte_records() {
        let bytes = hello_for(Side::default());
        let message = &bytes[RECORD_HEADER_LEN..];
        let tiny = reframe(message, CONTENT_HANDSHAKE, 7);
        assert_eq!(parse(&tiny), parse(&bytes));
    }

    #[test]
    fn captured_openssl_hello() {
        let bytes = include_bytes!("../../tests/fixtures/tls/openssl_client_hello.bin");
        let hello = parse(bytes).unwrap();
        assert_eq!(hello.sni.as_deref(), Some("myreg.azurecr.io"));
        assert_eq!(hello.alpn, vec!["h2", "http/1.1"]);
        // OpenSSL 3.0's default still offers TLS 1.1 and 1.0 in supported_versions.
        assert_eq!(hello.versions, vec!["TLS1.3", "TLS1.2", "TLS1.1", "TLS1.0"]);
        assert!(hello.cipher_suites > 10);
        assert!(looks_like_tls(&bytes[..3]));
    }

    #[test]
    fn captured_openssl_tls12_only_hello() {
        let bytes = include_bytes!("../../tests/fixtures/tls/openssl_tls12_client_hello.bin");
        let hello = parse(bytes).unwrap();
        assert_eq!(hello.sni.as_deref(), Some("legacy.example"));
        assert!(hello.alpn.is_empty());
        assert_eq!(hello.versions, vec!["TLS1.2"]);
    }

    #[test]
    fn captured_curl_hello_with_padding_extension() {
        let bytes = include_bytes!("../../tests/fixtures/tls/curl_client_hello.bin");
        // curl pads its hello to 512 bytes of handshake message.
        assert_eq!(bytes.len(), 517);
        let hello = parse(bytes).unwrap();
        assert_eq!(
            hello.sni.as_deref(),
            Some("myreg.westeurope.data.azurecr.io")
        );
        assert_eq!(hello.alpn, vec!["h2", "http/1.1"]);
        assert_eq!(hello.versions, vec!["TLS1.3", "TLS1.2", "TLS1.1", "TLS1.0"]);
        for cut in [1, 5, 100, 516] {
            assert_eq!(parse(&bytes[..cut]), Err(HelloError::Incomplete));
        }
    }

    /// A hand-built hello with GREASE values, as Chrome and Go's uTLS send.
    pub(super) fn grease_hello() -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[0x11; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0x00, 0x06, 0x2a, 0x2a, 0x13, 0x01, 0xc0, 0x2f]);
        body.extend_from_slice(&[0x01, 0x00]); // compression: null
        let mut exts = Vec::new();
        // GREASE extension, empty.
        exts.extend_from_slice(&[0x0a, 0x0a, 0x00, 0x00]);
        // server_name: registry.example
        let host = b"Registry.Example";
        let mut sn = vec![0x00];
        sn.extend_from_slice(&(host.len() as u16).to_be_bytes());
        sn.extend_from_slice(host);
        let mut sn_list = (sn.len() as u16).to_be_bytes().to_vec();
        sn_list.extend_from_slice(&sn);
        exts.extend_from_slice(&[0x00, 0x00]);
        exts.extend_from_slice(&(sn_list.len() as u16).to_be_bytes());
        exts.extend_from_slice(&sn_list);
        // supported_versions: GREASE, 1.3, 1.2
        exts.extend_from_slice(&[
            0x00, 0x2b, 0x00, 0x07, 0x06, 0x7a, 0x7a, 0x03, 0x04, 0x03, 0x03,
        ]);
        // ALPN: a GREASE-like binary id and h2
        exts.extend_from_slice(&[0x00, 0x10, 0x00, 0x08, 0x00, 0x06, 0x02, 0x1a, 0x1a, 0x02]);
        exts.extend_from_slice(b"h2");
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut msg = vec![1];
        msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend_from_slice(&body);
        reframe(&msg, CONTENT_HANDSHAKE, 16384)
    }

    #[test]
    fn grease_values_are_ignored_and_binary_alpn_is_hex() {
        let hello = parse(&grease_hello()).unwrap();
        assert_eq!(hello.versions, vec!["TLS1.3", "TLS1.2"]);
        assert_eq!(hello.sni.as_deref(), Some("Registry.Example"));
        assert_eq!(hello.alpn, vec!["0x1a1a", "h2"]);
        assert_eq!(hello.cipher_suites, 3);
    }

    #[test]
    fn minimal_ssl3_style_hello_without_extensions() {
        let mut body = vec![0x03, 0x01];
        body.extend_from_slice(&[0; 32]);
        body.push(0);
        body.extend_from_slice(&[0x00, 0x02, 0x00, 0x2f, 0x01, 0x00]);
        let mut msg = vec![1, 0, 0, body.len() as u8];
        msg.extend_from_slice(&body);
        let hello = parse(&reframe(&msg, CONTENT_HANDSHAKE, 100)).unwrap();
        assert_eq!(hello.versions, vec!["TLS1.0"]);
        assert_eq!(hello.sni, None);
        assert_eq!(hello.cipher_suites, 1);
    }

    #[test]
    fn not_tls_inputs() {
        for input in [
            &b"CONNECT myreg.azurecr.io:443 HTTP/1.1\r\n"[..],
            b"GET / HTTP/1.1\r\n",
            b"\x16\x02\x00",
            b"\x16\x03\x09",
            b"SSH-2.0-OpenSSH_9.6\r\n",
            // An alert record is TLS, but not a client's first bytes.
            b"\x15\x03\x03\x00\x02\x02\x28",
        ] {
            assert_eq!(parse(input), Err(HelloError::NotTls), "{input:?}");
            assert!(!looks_like_tls(input), "{input:?}");
        }
        assert!(!looks_like_tls(b""));
        assert_eq!(parse(b""), Err(HelloError::Incomplete));
    }

    #[test]
    fn looks_like_tls_on_short_prefixes() {
        let bytes = hello_for(Side::default());
        for n in 1..=8 {
            assert!(looks_like_tls(&bytes[..n]), "{n}");
        }
        // A handshake record holding something other than a ClientHello.
        assert!(!looks_like_tls(&[0x16, 0x03, 0x01, 0x00, 0x10, 0x02]));
        assert!(!looks_like_tls(&[0x16, 0x03, 0x01, 0x00, 0x00]));
    }

    #[test]
    fn server_hello_bytes_are_not_a_client_hello() {
        let cap = handshake("myreg.azurecr.io", &Side::default(), &Side::default());
        assert_eq!(
            parse(&cap.server_first),
            Err(HelloError::Invalid(
                "first handshake message is not a ClientHello"
            ))
        );
    }

    #[test]
    fn hostile_server_names_are_refused() {
        let bytes = grease_hello();
        let pos = bytes
            .windows(16)
            .position(|w| w == b"Registry.Example")
            .unwrap();
        for bad in [b'\n', b' ', 0x1b, 0xc3] {
            let mut b = bytes.clone();
            b[pos + 3] = bad;
            assert_eq!(
                parse(&b),
                Err(HelloError::Invalid("server name is not a DNS host name"))
            );
        }
    }

    /// xorshift64*: deterministic, no extra crate, good enough to shake a parser.
    pub(crate) struct Rng(u64);
    impl Rng {
        pub(crate) fn new(seed: u64) -> Self {
            Rng(seed | 1)
        }
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn never_panics_on_random_truncated_or_mutated_input() {
        let seeds = [
            hello_for(Side::default()),
            hello_for(Side {
                max_fragment: Some(50),
                alpn: vec!["h2"],
                ..Side::default()
            }),
            grease_hello(),
            include_bytes!("../../tests/fixtures/tls/curl_client_hello.bin").to_vec(),
        ];
        let mut rng = Rng::new(0x5eed_1234);
        let mut parsed = 0usize;
        for i in 0..20_000 {
            let seed = &seeds[i % seeds.len()];
            let mut input = match i % 4 {
                // Truncated.
                0 => seed[..rng.below(seed.len() + 1)].to_vec(),
                // Random bytes behind a plausible record header.
                1 => {
                    let n = rng.below(600);
                    let mut v = vec![0x16, 0x03, 0x01, (n >> 8) as u8, n as u8];
                    v.extend((0..n).map(|_| rng.next() as u8));
                    v
                }
                // Fully random.
                2 => (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
                // Mutated.
                _ => seed.clone(),
            };
            if i % 4 == 3 || i % 4 == 0 {
                for _ in 0..=rng.below(4) {
                    if input.is_empty() {
                        break;
                    }
                    let at = rng.below(input.len());
                    input[at] = rng.next() as u8;
                }
            }
            let _ = looks_like_tls(&input);
            if parse(&input).is_ok() {
                parsed += 1;
            }
        }
        // Some mutations only touch bytes the parser skips (random, key shares).
        assert!(parsed > 0);
    }
}

/// Properties of the ClientHello parser over real hellos (rustls, OpenSSL, curl, a GREASEd one)
/// and their mutations. What is logged from a hello must stay clean whatever the client sent.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::proptest_support::mutated;
    use crate::tls::wire::capture::{handshake, Side};
    use proptest::prelude::*;
    use proptest::sample::Index;
    use rustls::version::{TLS12, TLS13};
    use std::sync::LazyLock;

    /// Real hellos; rustls ones are made once per test binary (a handshake mints a key).
    static HELLOS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
        let rustls =
            |sni: &str, client: Side| handshake(sni, &client, &Side::default()).client_first;
        vec![
            rustls(
                "myreg.azurecr.io",
                Side {
                    alpn: vec!["h2", "http/1.1"],
                    ..Side::default()
                },
            ),
            rustls(
                "myreg.azurecr.io",
                Side {
                    versions: vec![&TLS12],
                    ..Side::default()
                },
            ),
            rustls(
                "myreg.westeurope.data.azurecr.io",
                Side {
                    versions: vec![&TLS13],
                    alpn: vec!["http/1.1"],
                    ..Side::default()
                },
            ),
            rustls(
                "myreg.azurecr.io",
                Side {
                    max_fragment: Some(64),
                    alpn: vec!["h2"],
                    ..Side::default()
                },
            ),
            rustls("127.0.0.1", Side::default()),
            include_bytes!("../../tests/fixtures/tls/openssl_client_hello.bin").to_vec(),
            include_bytes!("../../tests/fixtures/tls/openssl_tls12_client_hello.bin").to_vec(),
            include_bytes!("../../tests/fixtures/tls/curl_client_hello.bin").to_vec(),
            super::tests::grease_hello(),
        ]
    });

    fn a_hello() -> impl Strategy<Value = Vec<u8>> {
        any::<Index>().prop_map(|i| HELLOS[i.index(HELLOS.len())].clone())
    }

    /// What a parsed hello may put in a log: DNS characters in the SNI, printable ASCII in
    /// ALPN ids and version names, at least one version.
    fn assert_loggable(hello: &ClientHello) -> Result<(), TestCaseError> {
        if let Some(sni) = &hello.sni {
            prop_assert!(!sni.is_empty() && sni.len() <= 255);
            prop_assert!(
                sni.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)),
                "{:?}",
                sni
            );
        }
        for s in hello.alpn.iter().chain(&hello.versions) {
            prop_assert!(
                !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()),
                "{:?}",
                s
            );
        }
        prop_assert!(!hello.versions.is_empty());
        Ok(())
    }

    proptest! {
        #![proptest_config(crate::proptest_support::cases(256))]

        #[test]
        fn never_panics_on_arbitrary_bytes(buf in prop::collection::vec(any::<u8>(), 0..2048)) {
            let _ = looks_like_tls(&buf);
            if let Ok(hello) = parse(&buf) {
                assert_loggable(&hello)?;
            }
        }

        /// Near-valid hellos: no panic, anything parsed is loggable, and a parsed buffer also
        /// passes the first-bytes check the tunnel makes before parsing.
        #[test]
        fn mutated_hellos_parse_to_loggable_facts_or_errors(buf in mutated(HELLOS.clone())) {
            let looks = looks_like_tls(&buf);
            if let Ok(hello) = parse(&buf) {
                assert_loggable(&hello)?;
                prop_assert!(looks);
            }
        }

        /// Whatever the client sends after its hello (its next records, garbage) does not
        /// change what the hello says.
        #[test]
        fn trailing_bytes_do_not_change_the_hello(
            hello in a_hello(),
            trailing in prop::collection::vec(any::<u8>(), 0..1024),
        ) {
            let alone = parse(&hello);
            prop_assert!(alone.is_ok());
            let mut more = hello.clone();
            more.extend_from_slice(&trailing);
            prop_assert_eq!(parse(&more), alone);
        }

        /// Every strict prefix of a real hello is `Incomplete` (read more), never an error, and
        /// looks like TLS from its first byte on.
        #[test]
        fn every_prefix_is_incomplete(hello in a_hello(), cut in any::<Index>()) {
            let cut = cut.index(hello.len());
            prop_assert_eq!(parse(&hello[..cut]), Err(HelloError::Incomplete));
            if cut > 0 {
                prop_assert!(looks_like_tls(&hello[..cut]));
            }
        }

        /// The same hello message in records of any sizes gives the same facts.
        #[test]
        fn record_boundaries_do_not_change_the_hello(
            hello in a_hello(),
            cuts in prop::collection::vec(any::<Index>(), 0..12),
        ) {
            let Some(records) = crate::proptest_support::handshake_in_records(&hello, &cuts) else {
                return Err(TestCaseError::fail("seed is not a hello"));
            };
            prop_assert_eq!(parse(&records), parse(&hello));
        }

        /// An HTTP request (or anything starting with a printable byte) is never TLS.
        #[test]
        fn printable_first_byte_is_not_tls(
            first in 0x20u8..0x7f,
            rest in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut buf = vec![first];
            buf.extend_from_slice(&rest);
            prop_assert!(!looks_like_tls(&buf));
            prop_assert_eq!(parse(&buf), Err(HelloError::NotTls));
        }
    }
}
