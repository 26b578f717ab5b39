//! The TLS ClientHello reader (`regdoc::tls::client_hello`), on a client's first bytes.
//!
//! Checked: no panic; what a parsed hello puts in a log is loggable (an SNI of DNS characters
//! and at most 255 bytes, printable ALPN ids and version names, at least one version); a
//! stream the quick check `looks_like_tls` rejects never parses; bytes after a
//! parsed hello change nothing; `Incomplete` is never said of `MAX_HELLO_BYTES` bytes or more.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regdoc::tls::client_hello::{looks_like_tls, parse, ClientHello};
use regdoc::tls::{HelloError, MAX_HELLO_BYTES};

fn assert_loggable(hello: &ClientHello) {
    if let Some(sni) = &hello.sni {
        assert!(!sni.is_empty() && sni.len() <= 255, "{sni:?}");
        assert!(
            sni.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)),
            "{sni:?}"
        );
    }
    for s in hello.alpn.iter().chain(&hello.versions) {
        assert!(
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()),
            "{s:?}"
        );
    }
    assert!(!hello.versions.is_empty());
}

fuzz_target!(|data: &[u8]| {
    let r = parse(data);
    let quick = looks_like_tls(data);
    match &r {
        Ok(hello) => {
            assert_loggable(hello);
            assert!(quick, "a parsed hello failed looks_like_tls");
            // Bytes after the hello change nothing.
            let mut longer = data.to_vec();
            longer.extend_from_slice(b"\x17\x03\x03\x00\x01x");
            assert_eq!(parse(&longer).as_ref(), Ok(hello));
        }
        Err(HelloError::Incomplete) => {
            // The documented bound: a caller that keeps reading is never kept waiting.
            assert!(
                data.len() < MAX_HELLO_BYTES,
                "incomplete after {} bytes",
                data.len()
            )
        }
        Err(_) => {}
    }
    if !quick {
        assert!(r.is_err(), "looks_like_tls rejected a hello that parses");
    }
});
