//! `WWW-Authenticate` challenges (`regdoc::http::challenge::parse`), on a server's header value.
//!
//! Checked: no panic; the scheme is a non-empty RFC 9110 token; a parsed challenge written
//! back (its scheme and its parameters as quoted strings) parses to the same challenge.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regdoc::http::challenge::{parse, Challenge};

fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn write(c: &Challenge) -> String {
    let mut params = Vec::new();
    for (name, value) in [
        ("realm", &c.realm),
        ("service", &c.service),
        ("scope", &c.scope),
        ("error", &c.error),
        ("error_description", &c.error_description),
    ] {
        if let Some(v) = value {
            params.push(format!("{name}={}", quoted(v)));
        }
    }
    if params.is_empty() {
        c.scheme.clone()
    } else {
        format!("{} {}", c.scheme, params.join(", "))
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Some(c) = parse(&text) else {
        return;
    };
    assert!(!c.scheme.is_empty());
    assert!(
        c.scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)),
        "scheme {:?}",
        c.scheme
    );
    let written = write(&c);
    assert_eq!(
        parse(&written).as_ref(),
        Some(&c),
        "written back as {written:?}"
    );
    let _ = (c.is_bearer(), c.is_token_auth());
});
