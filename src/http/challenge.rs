//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1, distribution's token auth).
//!
//! The registry's challenge tells the client where to get a token (`realm`), for which service
//! and scope, and after a refused token why (`error`). A challenge that is missing, not
//! `Bearer`, or lacks `realm`/`service` is itself a diagnosis (a middlebox answered, or the
//! registry does not support token auth).

use serde::Serialize;

/// A parsed challenge. Only the first challenge of the header is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Challenge {
    /// `Bearer` or `Basic` as sent.
    pub scheme: String,
    pub realm: Option<String>,
    pub service: Option<String>,
    pub scope: Option<String>,
    /// `error` parameter (`invalid_token`, `insufficient_scope`).
    pub error: Option<String>,
    /// `error_description` parameter, when a server explains the error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

impl Challenge {
    /// Whether the scheme is `Bearer` (compared case-insensitively, as RFC 9110 says).
    pub fn is_bearer(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("bearer")
    }

    /// Whether this is a usable token-auth challenge: `Bearer` with both `realm` and `service`
    /// (what `az acr check-health` requires).
    pub fn is_token_auth(&self) -> bool {
        self.is_bearer() && self.realm.is_some() && self.service.is_some()
    }
}

/// Parse the first challenge of a `WWW-Authenticate` value. `None` if the value is empty, has
/// no scheme, or is malformed (an unterminated quoted string, a parameter without a value).
pub fn parse(header_value: &str) -> Option<Challenge> {
    let mut p = Parser {
        s: header_value.as_bytes(),
        i: 0,
    };
    // Empty list elements are allowed before the first challenge.
    p.skip(|b| b == b',' || is_ws(b));
    let scheme = p.token()?;
    let mut challenge = Challenge {
        scheme,
        ..Challenge::default()
    };
    // `1*SP` separates the scheme from its parameters; without it there are none.
    if !p.peek().is_some_and(is_ws) {
        return p.at_list_end().then_some(challenge);
    }
    loop {
        p.skip(|b| b == b',' || is_ws(b));
        if p.peek().is_none() {
            break;
        }
        let Some(name) = p.token() else {
            // Neither a parameter nor a token68 character.
            return None;
        };
        p.skip(is_ws);
        let name_end = p.i;
        if p.peek() != Some(b'=') {
            // A token with no `=` starts the next challenge (or is a token68 credential,
            // which regdoc does not keep): this challenge is complete.
            break;
        }
        p.skip(|b| b == b'=');
        let equals = p.i - name_end;
        if equals > 1 || p.at_list_end() {
            // token68 (`Negotiate abc==`): a credential-like blob, not a parameter, and the
            // only thing a challenge may carry after its scheme.
            if p.at_list_end() {
                break;
            }
            return None;
        }
        let value = if p.peek() == Some(b'"') {
            p.quoted()?
        } else {
            p.token_value()?
        };
        let slot = match name.to_ascii_lowercase().as_str() {
            "realm" => &mut challenge.realm,
            "service" => &mut challenge.service,
            "scope" => &mut challenge.scope,
            "error" => &mut challenge.error,
            "error_description" => &mut challenge.error_description,
            _ => continue,
        };
        // RFC 9110: each parameter name appears once; keep the first if a server repeats it.
        if slot.is_none() {
            *slot = Some(value);
        }
    }
    Some(challenge)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
    }

    /// At the end of the value, or at a comma (after optional whitespace).
    fn at_list_end(&mut self) -> bool {
        self.skip(is_ws);
        matches!(self.peek(), None | Some(b','))
    }

    fn token(&mut self) -> Option<String> {
        let start = self.i;
        self.skip(is_tchar);
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    /// An unquoted value. RFC 9110 allows only a token, but servers write realms like
    /// `realm=https://host/token` unquoted, so anything up to a comma or whitespace is taken.
    fn token_value(&mut self) -> Option<String> {
        let start = self.i;
        self.skip(|b| b != b',' && !is_ws(b) && b != b'"');
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    /// A quoted-string with `\` escapes; `None` if it never ends.
    fn quoted(&mut self) -> Option<String> {
        self.i += 1; // opening quote
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(String::from_utf8_lossy(&out).into_owned());
                }
                b'\\' => {
                    self.i += 1;
                    out.push(self.peek()?);
                    self.i += 1;
                }
                b => {
                    out.push(b);
                    self.i += 1;
                }
            }
        }
    }
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn acr_anonymous_challenge() {
        let c = parse(
            r#"Bearer realm="https://myreg.azurecr.io/oauth2/token",service="myreg.azurecr.io""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "Bearer");
        assert_eq!(c.realm, some("https://myreg.azurecr.io/oauth2/token"));
        assert_eq!(c.service, some("myreg.azurecr.io"));
        assert_eq!(c.scope, None);
        assert!(c.is_token_auth());
    }

    #[test]
    fn acr_scoped_challenge_with_error() {
        let c = parse(r#"Bearer realm="https://myreg.azurecr.io/oauth2/token",service="myreg.azurecr.io",scope="repository:app:pull",error="insufficient_scope""#).unwrap();
        assert_eq!(c.scope, some("repository:app:pull"));
        assert_eq!(c.error, some("insufficient_scope"));
        let c = parse(r#"Bearer realm="https://myreg.azurecr.io/oauth2/token",service="myreg.azurecr.io",scope="registry:catalog:*""#).unwrap();
        assert_eq!(c.scope, some("registry:catalog:*"));
    }

    #[test]
    fn docker_hub_challenge_with_several_scope_actions() {
        let c = parse(r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push""#).unwrap();
        assert_eq!(c.scope, some("repository:library/alpine:pull,push"));
    }

    #[test]
    fn basic_challenge() {
        let c = parse(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c.scheme, "Basic");
        assert_eq!(c.realm, some("Registry Realm"));
        assert!(!c.is_bearer());
        assert!(!c.is_token_auth());
        let c = parse("Basic").unwrap();
        assert_eq!(c.scheme, "Basic");
        assert_eq!(c.realm, None);
    }

    #[test]
    fn case_whitespace_and_escapes() {
        let c = parse(
            "  bearer   REALM = \"https://r/token\" ,  Service=reg.example ,error=\"invalid_token\", error_description=\"the \\\"token\\\" expired\\\\\"",
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert!(c.is_bearer());
        assert_eq!(c.realm, some("https://r/token"));
        assert_eq!(c.service, some("reg.example"));
        assert_eq!(c.error, some("invalid_token"));
        assert_eq!(c.error_description, some("the \"token\" expired\\"));
    }

    #[test]
    fn quoted_commas_do_not_split() {
        let c = parse(r#"Bearer scope="repository:a:pull,push",realm="x, y""#).unwrap();
        assert_eq!(c.scope, some("repository:a:pull,push"));
        assert_eq!(c.realm, some("x, y"));
    }

    #[test]
    fn only_the_first_challenge_is_kept() {
        let c = parse(r#"Bearer realm="https://a/token",service="a", Basic realm="b""#).unwrap();
        assert_eq!(c.scheme, "Bearer");
        assert_eq!(c.realm, some("https://a/token"));
        let c = parse(r#"Negotiate, Basic realm="b""#).unwrap();
        assert_eq!(c.scheme, "Negotiate");
        assert_eq!(c.realm, None);
        let c = parse(r#", , Basic realm="b""#).unwrap();
        assert_eq!(c.scheme, "Basic");
    }

    #[test]
    fn token68_is_skipped_not_kept() {
        let c = parse("Negotiate YIIGhgYJKoZIhvcSAQICAQBu==").unwrap();
        assert_eq!(
            c,
            Challenge {
                scheme: "Negotiate".into(),
                ..Challenge::default()
            }
        );
        let c = parse("Negotiate abc, Basic realm=\"x\"").unwrap();
        assert_eq!(c.realm, None);
    }

    #[test]
    fn repeated_parameter_keeps_the_first() {
        let c = parse(r#"Bearer realm="first",realm="second""#).unwrap();
        assert_eq!(c.realm, some("first"));
    }

    #[test]
    fn malformed() {
        assert_eq!(parse(""), None);
        assert_eq!(parse("   "), None);
        assert_eq!(parse("=x"), None);
        assert_eq!(parse(r#"Bearer realm="unterminated"#), None);
        assert_eq!(parse(r#"Bearer realm="ends in escape\"#), None);
        // `realm=` alone is, by the grammar, a token68.
        assert_eq!(parse(r#"Bearer realm="#).unwrap().realm, None);
        assert_eq!(parse(r#"Bearer abc== realm="x""#), None);
        assert_eq!(parse(r#"Bearer ("x")"#), None);
        assert_eq!(parse("Bearer\"x\""), None);
    }

    #[test]
    fn never_panics_on_prefixes() {
        let full = r#"Bearer realm="https://myreg.azurecr.io/oauth2/token",service="myreg.azurecr.io",scope="repository:app:pull",error="insufficient_scope""#;
        for cut in 0..=full.len() {
            let _ = parse(&full[..cut]);
        }
        let _ = parse("Bearer realm=\"\u{1F600}\\\u{e9}\"");
    }
}

/// Properties of the challenge parser: no input panics it, and what a registry quotes comes back
/// exactly, whatever the order, case and spacing of the parameters.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::proptest_support::text_input;
    use proptest::prelude::*;

    /// Challenges from the unit tests: ACR, Docker Hub, Basic, Negotiate, and odd spacing.
    const SEEDS: &[&str] = &[
        r#"Bearer realm="https://myreg.azurecr.io/oauth2/token",service="myreg.azurecr.io""#,
        r#"Bearer realm="https://myreg.azurecr.io/oauth2/token",service="myreg.azurecr.io",scope="repository:app:pull",error="insufficient_scope""#,
        r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push""#,
        r#"Basic realm="Registry Realm""#,
        "  bearer   REALM = \"https://r/token\" ,  Service=reg.example ,error=\"invalid_token\", error_description=\"the \\\"token\\\" expired\\\\\"",
        r#"Bearer realm="https://a/token",service="a", Basic realm="b""#,
        "Negotiate YIIGhgYJKoZIhvcSAQICAQBu==",
    ];

    /// `value` as an RFC 9110 quoted-string.
    fn quote(value: &str) -> String {
        let mut out = String::from("\"");
        for c in value.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        out
    }

    /// Optional whitespace, as servers write it around `=` and `,`.
    fn ows() -> impl Strategy<Value = String> {
        "[ \t]{0,3}"
    }

    /// A scheme spelt in any case.
    fn bearer() -> impl Strategy<Value = String> {
        prop::collection::vec(any::<bool>(), 6).prop_map(|upper| {
            "bearer"
                .chars()
                .zip(upper)
                .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(crate::proptest_support::cases(256))]

        #[test]
        fn never_panics(value in text_input(SEEDS)) {
            if let Some(c) = parse(&value) {
                // A scheme is a token: never empty, never whitespace or a quote.
                prop_assert!(!c.scheme.is_empty() && c.scheme.bytes().all(is_tchar));
            }
        }

        /// Quoted values come back exactly (any Unicode, quotes and backslashes included),
        /// whatever the parameters' order, the scheme's case and the spacing.
        #[test]
        fn quoted_parameters_round_trip(
            scheme in bearer(),
            realm in any::<String>(),
            service in any::<String>(),
            scope in any::<String>(),
            error in prop::option::of(any::<String>()),
            spacing in prop::collection::vec((ows(), ows(), ows()), 5),
            order in Just(vec![0usize, 1, 2, 3]).prop_shuffle(),
        ) {
            let mut params = vec![
                ("realm", Some(&realm)),
                ("service", Some(&service)),
                ("scope", Some(&scope)),
                ("error", error.as_ref()),
            ];
            params = order.iter().map(|&i| params[i]).collect();
            let mut header = format!("{scheme} ");
            for (i, (name, value)) in params.iter().enumerate() {
                let Some(value) = value else { continue };
                let (before, around, after) = &spacing[i];
                header.push_str(&format!("{before}{name}{around}={around}{}{after},", quote(value)));
            }
            let c = parse(&header);
            prop_assert!(c.is_some(), "{:?}", header);
            let c = c.unwrap();
            prop_assert!(c.is_bearer());
            prop_assert!(c.is_token_auth());
            prop_assert_eq!(c.realm.as_ref(), Some(&realm));
            prop_assert_eq!(c.service.as_ref(), Some(&service));
            prop_assert_eq!(c.scope.as_ref(), Some(&scope));
            prop_assert_eq!(c.error.as_ref(), error.as_ref());
        }

        /// Cutting a challenge anywhere never panics (the `&full[..cut]` of a byte position is
        /// taken lossily, as a header value with a cut multi-byte character would arrive).
        #[test]
        fn prefixes_never_panic(seed in prop::sample::select(SEEDS), cut in any::<prop::sample::Index>()) {
            let bytes = seed.as_bytes();
            let _ = parse(&String::from_utf8_lossy(&bytes[..cut.index(bytes.len() + 1)]));
        }
    }
}
