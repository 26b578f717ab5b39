//! Registry error bodies (`regdoc::http::registry_error::{parse, body_line}`), on a server's
//! response body, through a `Redactor` that holds this exchange's secret.
//!
//! Input: byte 0 is the cap of the body line, then a secret up to the first NUL byte (used
//! when it has 8 to 64 characters of the token alphabet), then the body. Checked: no panic; at
//! most 16 entries, codes of at most 64 and messages of at most 1024 characters; the body line
//! is one trimmed line of at most `cap` characters without control characters or runs of
//! spaces; the registered secret, as sent, base64 or percent-encoded, survives nowhere.
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use regdoc::http::registry_error::{body_line, parse};
use regdoc::redact::{percent_encode, Redactor, MASK};

/// A secret the redaction promises to remove wherever it is echoed: 8 to 64 characters, none
/// of them a bracket or whitespace, and not a piece of the mask itself.
fn secret(bytes: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(bytes).ok()?;
    let ok = (8..=64).contains(&s.chars().count())
        && s.chars()
            .all(|c| c.is_ascii_graphic() && c != '[' && c != ']')
        && !MASK.contains(s);
    ok.then(|| s.to_string())
}

fn assert_gone(out: &str, secret: &str) {
    for form in [
        secret.to_string(),
        STANDARD.encode(secret),
        percent_encode(secret),
    ] {
        assert!(
            !out.contains(&form),
            "{form:?} (of {secret:?}) survived in {out:?}"
        );
    }
}

/// Every string of a JSON value, keys included.
fn json_gone(v: &serde_json::Value, secret: &str) {
    use serde_json::Value;
    match v {
        Value::String(s) => assert_gone(s, secret),
        Value::Array(items) => items.iter().for_each(|i| json_gone(i, secret)),
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            assert_gone(k, secret);
            json_gone(v, secret);
        }),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cap, rest)) = data.split_first() else {
        return;
    };
    let (secret, body) = match rest.iter().position(|&b| b == 0) {
        Some(at) => (secret(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let mut redactor = Redactor::default();
    if let Some(s) = &secret {
        redactor.add_secret(s);
    }

    let errors = parse(body, &redactor);
    assert!(errors.len() <= 16);
    for e in &errors {
        assert!(e.code.chars().count() <= 64);
        assert!(e.message.chars().count() <= 1024);
        if let Some(s) = &secret {
            assert_gone(&e.code, s);
            assert_gone(&e.message, s);
            if let Some(d) = &e.detail {
                json_gone(d, s);
            }
        }
    }

    let cap = cap as usize;
    if let Some(line) = body_line(body, cap, &redactor) {
        assert!(cap > 0);
        assert!(!line.is_empty());
        assert!(
            line.chars().count() <= cap,
            "{} chars over a cap of {cap}",
            line.chars().count()
        );
        assert_eq!(line.trim(), line);
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(!line.contains("  "), "{line:?}");
        if let Some(s) = &secret {
            // A cut line may end in the first characters of an encoding; the whole never stays.
            assert_gone(&line, s);
        }
    }
});
