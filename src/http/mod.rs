//! Parsers for what an HTTP exchange with a registry carries: authentication challenges,
//! registry error bodies, credentials (described, never kept), token claims and API paths; and
//! the hop-by-hop fields removed before a message is relayed.

pub mod challenge;
pub mod credentials;
pub mod hop;
pub mod jwt;
pub mod path;
pub mod registry_error;

/// Hostile-input checks across the HTTP parsers: none may panic, whatever the bytes.
#[cfg(test)]
mod robustness {
    use super::*;

    /// xorshift64: deterministic, no extra crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    const SEEDS: &[&str] = &[
        r#"Bearer realm="https://myreg.azurecr.io/oauth2/token",service="myreg.azurecr.io",scope="repository:app:pull",error="insufficient_scope""#,
        r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[{"Type":"repository","Name":"billing","Action":"pull"}]}]}"#,
        "Basic MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwOmV5SmhiR2NpT2lKdWIyNWxJbjAuZXlKbGVIQWlPakY5Lg==",
        "eyJhbGciOiJub25lIn0.eyJleHAiOjEsImFjY2VzcyI6W3sidHlwZSI6InJlcG9zaXRvcnkifV19.",
        "/v2/team/app/blobs/uploads/abc?digest=sha256%3A00&scope=a%20b&service=x",
        "grant_type=refresh_token&service=r&scope=repository%3Aa%3Apull&refresh_token=eyJhbGciOiJub25lIn0.eyJleHAiOjF9.",
    ];

    #[test]
    fn parsers_survive_mutated_and_random_input() {
        let mut rng = Rng(0xdead_beef_cafe_f00d);
        let alphabet = b"\"\\=,; \t:/?&%+.-_~eyJ0aAzZ{}[]\x00\xff\xc3";
        for i in 0..20_000 {
            let seed = SEEDS[i % SEEDS.len()].as_bytes();
            let mut input = seed[..(rng.next() as usize) % (seed.len() + 1)].to_vec();
            for _ in 0..(rng.next() % 6) {
                let b = alphabet[(rng.next() as usize) % alphabet.len()];
                if input.is_empty() || rng.next().is_multiple_of(2) {
                    let at = (rng.next() as usize) % (input.len() + 1);
                    input.insert(at, b);
                } else {
                    let at = (rng.next() as usize) % input.len();
                    input[at] = b;
                }
            }
            let text = String::from_utf8_lossy(&input);
            let _ = challenge::parse(&text);
            let _ = registry_error::parse(&input, &crate::redact::Redactor::default());
            let _ = registry_error::body_line(
                &input,
                (rng.next() % 80) as usize,
                &crate::redact::Redactor::default(),
            );
            let _ = jwt::decode_claims(&text);
            let _ = credentials::describe(&text);
            let _ = credentials::describe_form_body(&input);
            let _ = path::classify("GET", &text);
        }
    }
}
