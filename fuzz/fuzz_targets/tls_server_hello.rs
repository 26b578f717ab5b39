//! The server's first TLS message (`regdoc::tls::server_hello::parse`): a ServerHello or an
//! alert, on a server's first bytes.
//!
//! Checked: no panic; version, cipher, alert level and description are printable ASCII (they
//! go into logs and reason phrases); bytes after the answer change nothing; `Incomplete` is never said of `MAX_HELLO_BYTES`
//! bytes or more; every alert code
//! and level gets a name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regdoc::tls::server_hello::{alert_description, alert_level, cipher_name, parse, ServerFirst};
use regdoc::tls::{HelloError, MAX_HELLO_BYTES};

fn printable(s: &str) {
    assert!(
        !s.is_empty() && s.bytes().all(|c| c.is_ascii_graphic()),
        "{s:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let r = parse(data);
    if let Ok(first) = &r {
        let (a, b) = match first {
            ServerFirst::Hello { version, cipher } => (version, cipher),
            ServerFirst::Alert { level, description } => (level, description),
        };
        printable(a);
        printable(b);
        let mut longer = data.to_vec();
        longer.extend_from_slice(b"\x16\x03\x03\x00\x01\x0b");
        assert_eq!(parse(&longer).as_ref(), Ok(first));
    }
    if r == Err(HelloError::Incomplete) {
        assert!(
            data.len() < MAX_HELLO_BYTES,
            "incomplete after {} bytes",
            data.len()
        );
    }
    if let [a, b, c, ..] = data {
        printable(&alert_level(*a));
        printable(&alert_description(*b));
        printable(&cipher_name(u16::from_be_bytes([*b, *c])));
    }
});
