//! The redaction step (`regdoc::redact`), on text a server or client sends.
//!
//! Input: byte 0 says how the secret was seen (a bare value, the password of a Basic
//! credential, a form's `password` field, a Bearer token), byte 1 which encoding of it the
//! server echoes, byte 2 where; then the secret up to the first NUL byte, then the text around
//! it. Checked, for a secret of 8 to 64 characters without brackets, whitespace or control
//! characters that is not a piece of the mask itself (the README's promise): no panic; after
//! `Redactor::clean` the secret, its base64 and its percent-encoding survive nowhere in the
//! text. Also: the shape-only step (`redact`, `request_target`) never panics and `redact` is
//! idempotent.
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use regdoc::redact::{encodings, percent_encode, redact, request_target, Redactor, MASK};

fn secret(bytes: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(bytes).ok()?;
    let ok = (8..=64).contains(&s.chars().count())
        && s.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '[' && c != ']')
        && !MASK.contains(s);
    ok.then(|| s.to_string())
}

fuzz_target!(|data: &[u8]| {
    let [how, encoding, at, rest @ ..] = data else {
        return;
    };
    let (secret_bytes, text) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&[][..], rest),
    };
    let text = String::from_utf8_lossy(text);

    let once = redact(&text);
    assert_eq!(redact(&once), once, "redact is not idempotent on {text:?}");
    let _ = request_target(&text);

    let Some(secret) = secret(secret_bytes) else {
        return;
    };
    let mut r = Redactor::default();
    match how % 4 {
        0 => r.add_secret(&secret),
        1 => r.add_authorization(&format!(
            "Basic {}",
            STANDARD.encode(format!("user:{secret}"))
        )),
        2 => r.add_form(format!("password={}", percent_encode(&secret)).as_bytes()),
        _ => r.add_authorization(&format!("Bearer {secret}")),
    }
    let forms = encodings(&secret);
    let echoed = &forms[*encoding as usize % forms.len()];
    let mut cut = (*at as usize * text.len() / 255).min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let input = format!("{}{echoed}{}", &text[..cut], &text[cut..]);
    let out = r.clean(&input);
    for form in [
        secret.clone(),
        STANDARD.encode(&secret),
        percent_encode(&secret),
    ] {
        assert!(
            !out.contains(&form),
            "{form:?} (of {secret:?}) survived in {out:?}"
        );
    }
});
