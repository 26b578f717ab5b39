//! TLS record-layer helpers shared by the ClientHello and ServerHello parsers.
//!
//! Both parsers look at the first bytes of a stream without decrypting anything: they gather the
//! first handshake message from one or more plaintext records (a hello may be fragmented across
//! records, and a record may be cut short by the read that produced the buffer), or report the
//! alert a server sent instead.

use super::HelloError;

/// Record content type `change_cipher_spec`.
pub const CONTENT_CHANGE_CIPHER_SPEC: u8 = 0x14;
/// Record content type `alert`.
pub const CONTENT_ALERT: u8 = 0x15;
/// Record content type `handshake`.
pub const CONTENT_HANDSHAKE: u8 = 0x16;
/// Record content type `application_data`.
pub const CONTENT_APPLICATION_DATA: u8 = 0x17;

/// Record header: type (1), legacy version (2), length (2).
pub const RECORD_HEADER_LEN: usize = 5;
/// Handshake header: type (1), length (3).
const HANDSHAKE_HEADER_LEN: usize = 4;
/// RFC 8446 §5.1: a plaintext fragment is at most 2^14 bytes. Some stacks pad a little, so a
/// small margin is accepted before calling the record invalid.
const MAX_RECORD_LEN: usize = (1 << 14) + 256;

/// Handshake message type `client_hello`.
pub const HANDSHAKE_CLIENT_HELLO: u8 = 1;
/// Handshake message type `server_hello`.
pub const HANDSHAKE_SERVER_HELLO: u8 = 2;

/// A bounds-checked cursor over wire bytes. Every read returns `None` instead of panicking
/// when the input is short, so hostile lengths can never index out of range.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, starting at its first byte.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    /// Everything not yet read.
    pub fn rest(self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// One byte.
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    /// A big-endian 16-bit integer.
    pub fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    /// A big-endian 24-bit integer.
    pub fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }

    /// A vector with a one-byte length prefix, as a reader over its contents.
    pub fn vec8(&mut self) -> Option<Reader<'a>> {
        let len = usize::from(self.u8()?);
        self.take(len).map(Reader::new)
    }

    /// A vector with a two-byte length prefix, as a reader over its contents.
    pub fn vec16(&mut self) -> Option<Reader<'a>> {
        let len = usize::from(self.u16()?);
        self.take(len).map(Reader::new)
    }
}

/// What the first record(s) of a stream hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum First {
    /// An alert record: (level, description).
    Alert(u8, u8),
    /// The first handshake message: its type and its body (without the 4-byte header).
    Handshake(u8, Vec<u8>),
}

/// Whether the first bytes of a buffer look like a TLS record of the given content types.
/// Returns `Err(NotTls)` as soon as a byte rules TLS out, `Ok(())` otherwise (also when there
/// are too few bytes to tell).
pub fn check_record_start(buf: &[u8], types: &[u8]) -> Result<(), HelloError> {
    if let Some(&t) = buf.first() {
        if !types.contains(&t) {
            return Err(HelloError::NotTls);
        }
    }
    if let Some(&major) = buf.get(1) {
        if major != 0x03 {
            return Err(HelloError::NotTls);
        }
    }
    // Record versions in the wild are SSL 3.0 (0x0300) to TLS 1.2 (0x0303); TLS 1.3 freezes the
    // record version at 0x0303, so a minor above 4 is not TLS.
    if let Some(&minor) = buf.get(2) {
        if minor > 0x04 {
            return Err(HelloError::NotTls);
        }
    }
    Ok(())
}

/// Read the first alert or the first handshake message from `buf`, reassembling a handshake
/// message fragmented over several records. Returns `Incomplete` while more bytes could finish
/// it, and `Invalid` once `cap` bytes have been seen without a complete message (so a caller
/// that keeps reading never waits forever).
pub fn read_first(buf: &[u8], cap: usize) -> Result<First, HelloError> {
    let mut pos = 0usize;
    let mut message: Vec<u8> = Vec::new();
    let mut first_type: Option<u8> = None;
    loop {
        let Some(header) = buf.get(pos..pos + RECORD_HEADER_LEN) else {
            return need_more(buf, cap);
        };
        let content_type = header[0];
        check_record_start(header, &[CONTENT_HANDSHAKE, CONTENT_ALERT])
            .map_err(|_| HelloError::Invalid("record header is not TLS"))?;
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 {
            return Err(HelloError::Invalid("empty record"));
        }
        if len > MAX_RECORD_LEN {
            return Err(HelloError::Invalid("record longer than 2^14 bytes"));
        }
        match first_type {
            None => first_type = Some(content_type),
            Some(t) if t != content_type => {
                return Err(HelloError::Invalid(
                    "record of another type inside a fragmented handshake message",
                ))
            }
            Some(_) => {}
        }
        let body_start = pos + RECORD_HEADER_LEN;
        // A record may be cut short by the read that filled `buf`: use what is there, since the
        // message often ends well before the record does (a TLS 1.2 ServerHello shares its record
        // with the certificate chain).
        let available = &buf[body_start..buf.len().min(body_start + len)];
        if content_type == CONTENT_ALERT {
            return match available {
                [level, description, ..] => Ok(First::Alert(*level, *description)),
                _ if len < 2 => Err(HelloError::Invalid("alert record shorter than 2 bytes")),
                _ => need_more(buf, cap),
            };
        }
        message.extend_from_slice(available);
        if message.len() >= HANDSHAKE_HEADER_LEN {
            let body_len = (usize::from(message[1]) << 16)
                | (usize::from(message[2]) << 8)
                | usize::from(message[3]);
            let total = HANDSHAKE_HEADER_LEN + body_len;
            if total > cap {
                return Err(HelloError::Invalid(
                    "handshake message larger than the limit",
                ));
            }
            if message.len() >= total {
                let msg_type = message[0];
                message.truncate(total);
                message.drain(..HANDSHAKE_HEADER_LEN);
                return Ok(First::Handshake(msg_type, message));
            }
        }
        if available.len() < len {
            return need_more(buf, cap);
        }
        pos = body_start + len;
    }
}

fn need_more(buf: &[u8], cap: usize) -> Result<First, HelloError> {
    if buf.len() >= cap {
        Err(HelloError::Invalid(
            "no complete handshake message within the size limit",
        ))
    } else {
        Err(HelloError::Incomplete)
    }
}

/// Name of a protocol version as regdoc logs it (`TLS1.3`), or `0x....` if unknown.
pub fn version_name(v: u16) -> String {
    match v {
        0x0304 => "TLS1.3".to_string(),
        0x0303 => "TLS1.2".to_string(),
        0x0302 => "TLS1.1".to_string(),
        0x0301 => "TLS1.0".to_string(),
        0x0300 => "SSL3.0".to_string(),
        other => format!("0x{other:04x}"),
    }
}

/// RFC 8701 GREASE values (`0x?a?a` with equal bytes), which clients send to keep servers
/// tolerant and which say nothing about what the client supports.
pub fn is_grease(v: u16) -> bool {
    let [hi, lo] = v.to_be_bytes();
    hi == lo && hi & 0x0f == 0x0a
}

/// Wrap a handshake message into records of at most `fragment` body bytes. Test helper for
/// fragmented hellos.
#[cfg(test)]
pub fn reframe(message: &[u8], content_type: u8, fragment: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in message.chunks(fragment) {
        out.push(content_type);
        out.extend_from_slice(&[0x03, 0x03]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// A handshake message (type, 24-bit length, body), for tests that frame one in records.
#[cfg(test)]
pub(crate) fn handshake_message(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![msg_type];
    m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    m.extend_from_slice(body);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_never_reads_past_the_end() {
        let mut r = Reader::new(&[0x00, 0x05, 0x01]);
        assert!(r.vec16().is_none());
        let mut r = Reader::new(&[0x01, 0x02, 0x03]);
        assert_eq!(r.u24(), Some(0x010203));
        assert!(r.u8().is_none());
        let mut r = Reader::new(&[0x02, 0xaa, 0xbb, 0xcc]);
        let mut v = r.vec8().unwrap();
        assert_eq!(v.u16(), Some(0xaabb));
        assert!(v.is_empty());
        assert_eq!(r.remaining(), 1);
        assert!(r.take(usize::MAX).is_none());
    }

    #[test]
    fn single_record_message() {
        let msg = handshake_message(2, &[1, 2, 3]);
        let bytes = reframe(&msg, CONTENT_HANDSHAKE, 100);
        assert_eq!(
            read_first(&bytes, 16384),
            Ok(First::Handshake(2, vec![1, 2, 3]))
        );
    }

    #[test]
    fn message_fragmented_over_records_is_reassembled() {
        let body: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let msg = handshake_message(1, &body);
        for fragment in [1, 3, 4, 5, 64, 999, 1004] {
            let bytes = reframe(&msg, CONTENT_HANDSHAKE, fragment);
            assert_eq!(
                read_first(&bytes, 16384),
                Ok(First::Handshake(1, body.clone())),
                "fragment size {fragment}"
            );
            // Every strict prefix asks for more bytes.
            for cut in [0, 1, 4, 5, bytes.len() / 2, bytes.len() - 1] {
                assert_eq!(
                    read_first(&bytes[..cut], 16384),
                    Err(HelloError::Incomplete),
                    "fragment {fragment} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn message_ending_inside_a_partial_record_is_returned() {
        // ServerHello followed by a certificate in the same record, cut after the hello.
        let mut record_body = handshake_message(2, &[9; 70]);
        let hello_len = record_body.len();
        record_body.extend_from_slice(&handshake_message(11, &[7; 3000]));
        let bytes = reframe(&record_body, CONTENT_HANDSHAKE, 16384);
        let cut = &bytes[..RECORD_HEADER_LEN + hello_len];
        assert_eq!(read_first(cut, 16384), Ok(First::Handshake(2, vec![9; 70])));
    }

    #[test]
    fn alert_record() {
        let bytes = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28];
        assert_eq!(read_first(&bytes, 16384), Ok(First::Alert(2, 40)));
        assert_eq!(read_first(&bytes[..6], 16384), Err(HelloError::Incomplete));
        let short = [0x15, 0x03, 0x03, 0x00, 0x01, 0x02];
        assert!(matches!(
            read_first(&short, 16384),
            Err(HelloError::Invalid(_))
        ));
    }

    #[test]
    fn mixed_record_types_inside_a_message_are_invalid() {
        let msg = handshake_message(1, &[0; 20]);
        let mut bytes = reframe(&msg[..10], CONTENT_HANDSHAKE, 100);
        bytes.extend_from_slice(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
        assert!(matches!(
            read_first(&bytes, 16384),
            Err(HelloError::Invalid(_))
        ));
    }

    #[test]
    fn size_limit_turns_incomplete_into_invalid() {
        // Declared length beyond the cap: invalid at once.
        let bytes = [0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x01, 0x00, 0x00];
        assert_eq!(
            read_first(&bytes, 16384),
            Err(HelloError::Invalid(
                "handshake message larger than the limit"
            ))
        );
        // A stream of tiny records that never completes the message stops at the cap.
        let msg = handshake_message(1, &vec![0; 16000]);
        let bytes = reframe(&msg, CONTENT_HANDSHAKE, 1);
        assert!(matches!(
            read_first(&bytes[..16384], 16384),
            Err(HelloError::Invalid(_))
        ));
        assert_eq!(
            read_first(&bytes[..1000], 16384),
            Err(HelloError::Incomplete)
        );
    }

    #[test]
    fn bad_record_headers() {
        assert!(matches!(
            read_first(&[0x16, 0x03, 0x03, 0x00, 0x00], 16384),
            Err(HelloError::Invalid("empty record"))
        ));
        assert!(matches!(
            read_first(&[0x16, 0x03, 0x03, 0xff, 0xff], 16384),
            Err(HelloError::Invalid(_))
        ));
    }

    #[test]
    fn grease_and_version_names() {
        assert!(is_grease(0x0a0a));
        assert!(is_grease(0xfafa));
        assert!(!is_grease(0x0304));
        assert!(!is_grease(0x0a1a));
        assert_eq!(version_name(0x0304), "TLS1.3");
        assert_eq!(version_name(0x0300), "SSL3.0");
        assert_eq!(version_name(0x7f1c), "0x7f1c");
    }
}

/// Properties of the record layer: hostile lengths never index out of range, the size cap
/// always ends a read (so a caller that keeps reading cannot wait forever), and fragmentation is
/// invisible.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// One read of a [`Reader`], as a hostile length field would drive it.
    #[derive(Debug, Clone)]
    enum Op {
        U8,
        U16,
        U24,
        Vec8,
        Vec16,
        Take(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::U8),
            Just(Op::U16),
            Just(Op::U24),
            Just(Op::Vec8),
            Just(Op::Vec16),
            prop_oneof![0..64usize, Just(usize::MAX), Just(usize::MAX - 1)].prop_map(Op::Take),
        ]
    }

    proptest! {
        #![proptest_config(crate::proptest_support::cases(256))]

        /// Any sequence of reads over any bytes: no panic, and a failed read consumes nothing.
        #[test]
        fn reader_reads_stay_in_bounds(
            buf in prop::collection::vec(any::<u8>(), 0..64),
            ops in prop::collection::vec(op(), 0..32),
        ) {
            let mut r = Reader::new(&buf);
            for op in ops {
                let before = r.remaining();
                let took = match op {
                    Op::U8 => r.u8().map(|_| 1),
                    Op::U16 => r.u16().map(|_| 2),
                    Op::U24 => r.u24().map(|_| 3),
                    Op::Vec8 => r.vec8().map(|v| 1 + v.remaining()),
                    Op::Vec16 => r.vec16().map(|v| 2 + v.remaining()),
                    Op::Take(n) => r.take(n).map(<[u8]>::len),
                };
                match took {
                    Some(n) => prop_assert_eq!(r.remaining(), before - n),
                    // A vector whose length prefix fits but whose body does not has consumed
                    // the prefix: the caller stops at the error either way.
                    None => prop_assert!(r.remaining() <= before),
                }
            }
            let _ = r.rest();
        }

        /// Any bytes, any cap: no panic; a message is never larger than the cap; and once
        /// `cap` bytes are there the answer is final (never `Incomplete`).
        #[test]
        fn read_first_is_bounded_by_its_cap(
            buf in prop::collection::vec(any::<u8>(), 0..700),
            cap in 0usize..600,
            // Most random bytes fail the first header check: make some look like records.
            header in prop::option::of((prop::sample::select(vec![CONTENT_HANDSHAKE, CONTENT_ALERT]), 0u8..5)),
        ) {
            let mut buf = buf;
            if let (Some((t, minor)), true) = (header, buf.len() >= 3) {
                buf[0] = t;
                buf[1] = 3;
                buf[2] = minor;
            }
            match read_first(&buf, cap) {
                Ok(First::Handshake(_, body)) => prop_assert!(body.len() + HANDSHAKE_HEADER_LEN <= cap),
                Ok(First::Alert(..)) | Err(HelloError::Invalid(_)) | Err(HelloError::NotTls) => {}
                Err(HelloError::Incomplete) => prop_assert!(buf.len() < cap),
            }
        }

        /// A message split into records of any sizes reads back whole, and every strict prefix
        /// of its records asks for more bytes.
        #[test]
        fn fragmentation_is_invisible(
            msg_type in any::<u8>(),
            body in prop::collection::vec(any::<u8>(), 0..1500),
            sizes in prop::collection::vec(1usize..400, 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let msg = handshake_message(msg_type, &body);
            let mut bytes = Vec::new();
            let mut rest = &msg[..];
            for size in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (chunk, tail) = rest.split_at((*size).min(rest.len()));
                bytes.extend_from_slice(&reframe(chunk, CONTENT_HANDSHAKE, chunk.len()));
                rest = tail;
            }
            prop_assert_eq!(
                read_first(&bytes, MAX_RECORD_LEN),
                Ok(First::Handshake(msg_type, body.clone()))
            );
            let cut = cut.index(bytes.len());
            prop_assert_eq!(read_first(&bytes[..cut], MAX_RECORD_LEN), Err(HelloError::Incomplete));
        }

        /// An alert record is read as it is, whatever follows it.
        #[test]
        fn alert_is_read_whatever_follows(
            level in any::<u8>(),
            description in any::<u8>(),
            minor in 0u8..=4,
            trailing in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut bytes = vec![CONTENT_ALERT, 3, minor, 0, 2, level, description];
            bytes.extend_from_slice(&trailing);
            prop_assert_eq!(read_first(&bytes, 16384), Ok(First::Alert(level, description)));
        }
    }
}

/// Real handshakes captured in memory: a rustls client and a rustls server exchange their first
/// flights through byte vectors, so the parsers are tested against what a real TLS stack writes.
#[cfg(test)]
pub(crate) mod capture {
    use std::sync::Arc;

    use rustls::crypto::{ring, CryptoProvider};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};
    use rustls::{RootCertStore, SupportedCipherSuite, SupportedProtocolVersion};

    /// One side's settings.
    #[derive(Clone)]
    pub struct Side {
        pub versions: Vec<&'static SupportedProtocolVersion>,
        pub alpn: Vec<&'static str>,
        /// Restrict the cipher suites (empty: the provider's defaults).
        pub suites: Vec<SupportedCipherSuite>,
        pub max_fragment: Option<usize>,
    }

    impl Default for Side {
        fn default() -> Self {
            Side {
                versions: vec![&rustls::version::TLS13, &rustls::version::TLS12],
                alpn: Vec::new(),
                suites: Vec::new(),
                max_fragment: None,
            }
        }
    }

    fn provider(side: &Side) -> Arc<CryptoProvider> {
        let mut p = ring::default_provider();
        if !side.suites.is_empty() {
            p.cipher_suites = side.suites.clone();
        }
        Arc::new(p)
    }

    /// What each side wrote first.
    pub struct Capture {
        /// The client's first flight (its ClientHello records).
        pub client_first: Vec<u8>,
        /// The server's answer to it.
        pub server_first: Vec<u8>,
        /// Whether the server refused the hello.
        pub server_failed: bool,
    }

    /// Run the first round trip of a handshake for `sni` and return both flights.
    pub fn handshake(sni: &str, client: &Side, server: &Side) -> Capture {
        let certified = rcgen::generate_simple_self_signed(vec![sni.to_string()]).unwrap();
        let cert_der: CertificateDer<'static> = certified.cert.der().clone();
        let key_der =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));

        let mut roots = RootCertStore::empty();
        roots.add(cert_der.clone()).unwrap();
        let mut cc = ClientConfig::builder_with_provider(provider(client))
            .with_protocol_versions(&client.versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cc.alpn_protocols = client.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        cc.max_fragment_size = client.max_fragment;

        let mut sc = ServerConfig::builder_with_provider(provider(server))
            .with_protocol_versions(&server.versions)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert_der], key_der)
            .unwrap();
        sc.alpn_protocols = server.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        sc.max_fragment_size = server.max_fragment;

        let name = ServerName::try_from(sni.to_string()).unwrap();
        let mut c = ClientConnection::new(Arc::new(cc), name).unwrap();
        let mut client_first = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut client_first).unwrap();
        }

        let mut s = ServerConnection::new(Arc::new(sc)).unwrap();
        let mut rd = &client_first[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
        }
        let server_failed = s.process_new_packets().is_err();
        let mut server_first = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut server_first).unwrap();
        }
        Capture {
            client_first,
            server_first,
            server_failed,
        }
    }
}
