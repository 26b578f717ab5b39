//! JWT claims (`regdoc::http::jwt::{decode_claims, looks_like_jwt}`) and the `Authorization`
//! description built on them (`regdoc::http::credentials::describe`).
//!
//! Input: byte 0 picks the mode. Even: the rest is a token as a client or server sends it.
//! Odd: the rest is a token's payload, wrapped in an `alg: none` token, so that arbitrary JSON
//! reaches the claim reader. Checked: no panic; claims come only from what `looks_like_jwt`
//! accepts; a wrapped payload gives claims exactly when it is a JSON object; list claims are
//! capped at 64 entries; the claim helpers do not panic at any time.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use regdoc::http::credentials::describe;
use regdoc::http::jwt::{decode_claims, looks_like_jwt, Claims};

fn check(c: &Claims) {
    if let Some(access) = &c.access {
        assert!(access.len() <= 64);
        for a in access {
            assert!(a.actions.len() <= 64);
            let _ = c.actions_for(&a.name);
        }
    }
    if let Some(p) = &c.permissions {
        assert!(p.actions.len() <= 64 && p.not_actions.len() <= 64);
    }
    if let Some(r) = &c.roles {
        assert!(r.len() <= 64);
    }
    for now in [i64::MIN, -1, 0, 1_700_000_000, i64::MAX] {
        let _ = (
            c.expires_in(now),
            c.is_expired(now),
            c.is_not_yet_valid(now),
        );
    }
    let _ = c.has_audience("myreg.azurecr.io");
    let _ = c.actions_for("app");
    serde_json::to_string(c).expect("claims serialise");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let text = String::from_utf8_lossy(rest);
        let claims = decode_claims(&text);
        if let Some(c) = &claims {
            assert!(looks_like_jwt(text.trim()), "claims from a non-JWT");
            check(c);
        }
        for scheme in ["Bearer ", "Basic ", ""] {
            if let Some(facts) = describe(&format!("{scheme}{text}")) {
                if let Some(c) = &facts.claims {
                    check(c);
                }
                serde_json::to_string(&facts).expect("facts serialise");
            }
        }
    } else {
        let token = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(rest)
        );
        let claims = decode_claims(&token);
        let object = matches!(
            serde_json::from_slice::<serde_json::Value>(rest),
            Ok(serde_json::Value::Object(_))
        );
        if token.len() <= 64 * 1024 {
            assert_eq!(
                claims.is_some(),
                object,
                "claims of a JSON object payload: {claims:?}"
            );
        }
        if let Some(c) = &claims {
            check(c);
        }
    }
});
