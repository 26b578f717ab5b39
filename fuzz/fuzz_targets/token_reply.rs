//! The token endpoint's reply and request form, as an intercepted exchange reads them
//! (`regdoc::intercept::exchange::{add_body, add_form}`): the JSON reply whose issued token's
//! claims are decoded (and the token dropped), and the form body whose secrets join the
//! exchange's redactor.
//!
//! Input: byte 0 picks the status (200 or 401) and the path class (`token` or `exchange`); the
//! rest is the reply body and, at the same time, the request's form body. Checked: no panic;
//! the claims recorded are those of the first of `access_token`, `token`, `refresh_token` that
//! is a JWT; a failed reply is read as an error body instead; the form's first secret field
//! (4 characters or more) is removed by value from anything the redactor cleans afterwards.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regdoc::http::{jwt, path};
use regdoc::intercept::exchange::{add_body, add_form, wants_body};
use regdoc::observe::HttpExchange;
use regdoc::redact::{is_secret_key, Redactor, MASK};

fn issued(body: &[u8]) -> Option<jwt::Claims> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["access_token", "token", "refresh_token"]
        .iter()
        .filter_map(|k| v.get(k)?.as_str())
        .find_map(jwt::decode_claims)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let status = if mode & 1 == 0 { 200 } else { 401 };
    let class = if mode & 2 == 0 { "token" } else { "exchange" };
    let mut ex = HttpExchange {
        method: "POST".into(),
        path_class: class.into(),
        status,
        ..HttpExchange::default()
    };
    assert!(wants_body(&ex));
    let mut redactor = Redactor::default();
    add_form(&mut ex, &mut redactor, body);
    add_body(&mut ex, &redactor, body, true);
    if status == 200 {
        assert_eq!(ex.issued_token, issued(body));
        assert!(ex.registry_errors.is_empty() && ex.body_text.is_none());
    } else {
        assert!(ex.issued_token.is_none());
    }
    if let Some(auth) = &ex.auth {
        assert!(auth.scheme.starts_with("form:"));
        assert!(auth.scheme.chars().count() <= 5 + 256);
    }
    serde_json::to_string(&ex).expect("exchange serialises");

    // The first secret field of the form is held by value.
    let text = String::from_utf8_lossy(body);
    let first_secret = path::query_pairs(text.trim())
        .filter(|(k, _)| is_secret_key(k))
        .map(|(_, v)| v)
        .find(|v| v.chars().count() >= 4);
    if let Some(secret) = first_secret {
        if !secret.contains(['[', ']']) && !MASK.contains(secret.as_str()) {
            let out = redactor.clean(&format!("invalid grant {secret} for you"));
            assert!(!out.contains(&secret), "{secret:?} survived in {out:?}");
        }
    }
});
