//! Registry API paths (`regdoc::http::path::{classify, query_pairs, percent_decode}`), on a
//! request target a client sends.
//!
//! Input: byte 0 picks the method, the rest is the target. Checked: no panic; the class is one
//! of the documented ones and a repository has no empty segment; query pairs are the
//! non-empty pieces; percent-decoding inverts `redact::percent_encode` for any text, leaves text without
//! `%` and `+` alone, and never grows its input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regdoc::http::path::{classify, percent_decode, query_pairs};
use regdoc::redact::percent_encode;

const CLASSES: &[&str] = &[
    "ping",
    "token",
    "exchange",
    "manifest",
    "blob",
    "upload",
    "catalog",
    "tags",
    "referrers",
    "other",
];

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let method = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "get", "CONNECT",
    ][m as usize % 8];
    let text = String::from_utf8_lossy(rest);

    let info = classify(method, &text);
    assert!(CLASSES.contains(&info.class), "class {:?}", info.class);
    if let Some(repo) = &info.repository {
        assert!(
            !repo.is_empty() && repo.split('/').all(|s| !s.is_empty()),
            "{repo:?}"
        );
    }
    if info.reference.is_some() {
        assert!(info.repository.is_some());
    }
    for s in &info.scopes {
        assert!(!s.is_empty() && !s.contains(char::is_whitespace));
    }

    let pieces = text.split('&').filter(|p| !p.is_empty()).count();
    assert_eq!(query_pairs(&text).count(), pieces);
    for (k, v) in query_pairs(&text) {
        assert!(k.len() + v.len() <= text.len());
    }

    for plus in [false, true] {
        let decoded = percent_decode(&text, plus);
        assert!(decoded.len() <= text.len(), "decoding grew the text");
        if !text.contains(['%', '+']) {
            assert_eq!(decoded, text, "plain text changed");
        }
        assert_eq!(
            percent_decode(&percent_encode(&text), plus),
            text,
            "round trip"
        );
    }
});
