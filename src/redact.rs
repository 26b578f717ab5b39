//! The one redaction step every network string passes before it reaches a record, a reply
//! phrase or `regdoc report`.
//!
//! Two kinds of removal, in this order:
//! 1. by value: the credentials regdoc saw on the exchange (an `Authorization` value, the Basic
//!    `user:password` and password, a bearer token, the secret fields of a token form or query),
//!    in each encoding a server is likely to echo them in (as sent, base64, URL-encoded);
//! 2. by shape: anything JWT-shaped, long token-alphabet runs, `key=value` pairs whose key names
//!    a secret (with or without a path or URL before the key), URL userinfo, and the word after
//!    `Basic`/`Bearer` when it looks like a credential.
//!
//! A [`Redactor`] holds the values of one exchange; [`redact`] is the same step with no values,
//! for text that belongs to no exchange. Neither caps the length: callers cap for their field.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use http::header::HeaderMap;

/// What replaces a secret.
pub const MASK: &str = "[redacted]";

/// Shorter values are not removed by value: a three-letter password would cut every word it
/// occurs in. Shapes still apply to them.
pub const MIN_SECRET_CHARS: usize = 4;

/// Values kept per exchange; a hostile form cannot make redaction quadratic.
const MAX_VALUES: usize = 64;

/// Query and form keys whose value is a credential.
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "token",
    "refresh_token",
    "access_token",
    "id_token",
    "assertion",
    "client_assertion",
    "sig",
    "signature",
    "code",
    "apikey",
    "api_key",
];

/// Whether a query, form or `key=value` key names a secret (case-insensitive).
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.contains(&key.as_str())
        || ["_token", "-token", "_secret", "_password", "-signature"]
            .iter()
            .any(|suffix| key.ends_with(suffix))
}

/// The credentials of one exchange, to be removed by value from what its server says.
///
/// Its `Debug` shows only how many values it holds: the values are secrets.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Every encoded form of every value, longest first (so a value inside another's encoding
    /// never leaves part of the longer one behind).
    values: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("values", &self.values.len())
            .finish()
    }
}

impl Redactor {
    /// The credentials a request carries in its head: `Authorization`, `Proxy-Authorization`,
    /// and the secret-named fields of its query.
    pub fn for_request(uri: &http::Uri, headers: &HeaderMap) -> Redactor {
        let mut r = Redactor::default();
        for name in [
            http::header::AUTHORIZATION,
            http::header::PROXY_AUTHORIZATION,
        ] {
            for value in headers.get_all(name) {
                if let Ok(v) = value.to_str() {
                    r.add_authorization(v);
                }
            }
        }
        if let Some(query) = uri.query() {
            r.add_form(query.as_bytes());
        }
        r
    }

    /// An `Authorization` value: the whole value, its credential, and for Basic the decoded
    /// `user:password` and the password.
    pub fn add_authorization(&mut self, value: &str) {
        let value = value.trim();
        self.add_secret(value);
        let Some((scheme, credential)) = value.split_once([' ', '\t']) else {
            return;
        };
        let credential = credential.trim();
        self.add_secret(credential);
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = crate::http::credentials::B64.decode(credential);
            if let Some(text) = decoded.ok().and_then(|b| String::from_utf8(b).ok()) {
                self.add_secret(&text);
                if let Some((_, password)) = text.split_once(':') {
                    self.add_secret(password);
                }
            }
        }
    }

    /// A form or query (`grant_type=password&password=…&refresh_token=…`): the values of its
    /// secret-named fields.
    pub fn add_form(&mut self, form: &[u8]) {
        let text = String::from_utf8_lossy(form);
        for (key, value) in crate::http::path::query_pairs(text.trim()) {
            if is_secret_key(&key) {
                self.add_secret(&value);
            }
        }
    }

    /// One secret value, in every encoding it is removed in.
    pub fn add_secret(&mut self, secret: &str) {
        if secret.chars().count() < MIN_SECRET_CHARS || self.values.len() >= MAX_VALUES {
            return;
        }
        for form in encodings(secret) {
            if !self.values.contains(&form) {
                self.values.push(form);
            }
        }
        self.values
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    }

    /// `text` without this exchange's credentials and without anything shaped like a secret.
    /// Control characters become spaces; the length is not capped.
    pub fn clean(&self, text: &str) -> String {
        let mut text = text.to_string();
        for value in &self.values {
            if text.contains(value.as_str()) {
                text = text.replace(value.as_str(), MASK);
            }
        }
        redact_shapes(&text)
    }

    /// Every string of a JSON value (a registry error's `detail`), cleaned in place.
    pub fn clean_json(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(s) => *s = self.clean(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.clean_json(v)),
            Value::Object(map) => {
                // Keys are rarely secrets, but a hostile server chooses them too.
                let entries = std::mem::take(map);
                for (k, mut v) in entries {
                    self.clean_json(&mut v);
                    map.insert(self.clean(&k), v);
                }
            }
            _ => {}
        }
    }
}

/// Network text that belongs to no exchange (errors, reply reasons, names): the shapes only.
pub fn redact(text: &str) -> String {
    redact_shapes(text)
}

/// The forms a secret is removed in, and the forms a test scans a log for: as sent, standard
/// and URL-safe base64 (padded and not), and percent-encoded (upper- and lower-case hex, and
/// `+` for a space as forms write it).
pub fn encodings(secret: &str) -> Vec<String> {
    let bytes = secret.as_bytes();
    let mut out = vec![
        secret.to_string(),
        STANDARD.encode(bytes),
        STANDARD_NO_PAD.encode(bytes),
        URL_SAFE.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
    ];
    let upper = percent_encode(secret);
    out.push(upper.replace("%20", "+"));
    out.push(lower_hex(&upper));
    out.push(upper);
    out.retain(|f| f.chars().count() >= MIN_SECRET_CHARS);
    out.sort();
    out.dedup();
    out
}

/// Everything but RFC 3986 unreserved characters as `%XX`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut left = 0;
    for c in encoded.chars() {
        if c == '%' {
            left = 2;
            out.push(c);
        } else if left > 0 {
            left -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A request target as a record or a reply may show it: no userinfo, no query, no fragment.
/// `user:pw@host:443` → `[redacted]@host:443`; `http://u:p@h/x?token=t` → `http://[redacted]@h/x?[redacted]`.
pub fn request_target(target: &str) -> String {
    let (target, had_query) = match target.find(['?', '#']) {
        Some(at) => (&target[..at], true),
        None => (target, false),
    };
    let (scheme, rest) = split_scheme(target);
    let authority_end = if scheme.is_empty() && !rest.starts_with('/') {
        rest.len()
    } else if scheme.is_empty() {
        0
    } else {
        rest.find('/').unwrap_or(rest.len())
    };
    let mut out = String::from(scheme);
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            out.push_str(MASK);
            out.push_str(&rest[at..]);
        }
        None => out.push_str(rest),
    }
    if had_query {
        out.push('?');
        out.push_str(MASK);
    }
    redact_shapes(&out)
}

/// Characters that end a word: whitespace and the punctuation secrets sit between in prose,
/// JSON, headers and query strings.
fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '"' | '\'' | ',' | ';' | '&' | '(' | ')' | '<' | '>' | '{' | '}' | '`'
        )
}

fn redact_shapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let mut state = WordState::default();
    for ch in text.chars() {
        if ch.is_control() || is_separator(ch) {
            state.flush(&mut word, &mut out);
            out.push(if ch.is_control() { ' ' } else { ch });
            if ch.is_whitespace() || ch.is_control() {
                state.after_space();
            }
        } else {
            word.push(ch);
        }
    }
    state.flush(&mut word, &mut out);
    out
}

/// What the previous words say about the next one.
#[derive(Default)]
struct WordState {
    /// The last word was `password=` (its value is quoted or after a space): mask the next.
    mask_next: bool,
    /// The last word was an authorization scheme: the next may be its credential.
    after_scheme: bool,
    /// A whitespace was seen since the scheme word (`Basic xyz`, not `Basic"xyz`).
    spaced: bool,
}

impl WordState {
    fn after_space(&mut self) {
        self.spaced = true;
    }

    fn flush(&mut self, word: &mut String, out: &mut String) {
        if word.is_empty() {
            return;
        }
        let scheme_credential = self.after_scheme && self.spaced && looks_like_credential(word);
        if std::mem::take(&mut self.mask_next) || scheme_credential {
            out.push_str(MASK);
        } else {
            // Each shape removes its part; what is left is judged as a whole again (a JWT
            // behind a userinfo, a token glued to a `sig=`).
            let mut kept = without_userinfo(word).unwrap_or_else(|| word.clone());
            if let Some((pair_kept, value_follows)) = secret_pair(&kept) {
                self.mask_next = value_follows;
                kept = pair_kept;
            }
            if looks_secret(&kept) {
                kept = MASK.to_string();
            }
            out.push_str(&kept);
        }
        self.after_scheme =
            word.eq_ignore_ascii_case("basic") || word.eq_ignore_ascii_case("bearer");
        self.spaced = false;
        word.clear();
    }
}

/// `scheme://` and the rest, when the word starts with a URL scheme (RFC 3986: a letter, then
/// letters, digits, `+`, `-`, `.`); else no scheme. A `://` further on (a redirect URL in a
/// query, a path) is not the scheme of a userinfo before it.
fn split_scheme(word: &str) -> (&str, &str) {
    match word.find("://") {
        Some(at)
            if word[..at].starts_with(|c: char| c.is_ascii_alphabetic())
                && word[..at]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            (&word[..at + 3], &word[at + 3..])
        }
        _ => ("", word),
    }
}

/// `/path?password=value` → `/path?[redacted]`: the pair goes, what is before its key stays.
/// The flag says the value follows as the next word (`password="…"`, `password= …`). `None`
/// when no key names a secret.
fn secret_pair(word: &str) -> Option<(String, bool)> {
    let (key, value) = word.split_once('=')?;
    // The key is the identifier right before `=`: `/path?password`, `https://h/t?a=b&token`.
    let start = key
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-')))
        .map_or(0, |(i, c)| i + c.len_utf8());
    if !is_secret_key(&key[start..]) {
        return None;
    }
    Some((format!("{}{MASK}", &key[..start]), value.is_empty()))
}

/// `scheme://user:pw@host/…` → `scheme://[redacted]@host/…`; `user:pw@host:port` likewise.
/// An e-mail address (no `:` before the `@`) is left alone.
fn without_userinfo(word: &str) -> Option<String> {
    let (scheme, rest) = split_scheme(word);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    if scheme.is_empty() && !rest[..at].contains(':') {
        return None;
    }
    Some(format!("{scheme}{MASK}{}", &rest[at..]))
}

/// The word after `Basic`/`Bearer`: token68 characters and some sign of being random (a digit
/// or base64 punctuation, or both cases in a long word), so `Basic authentication failed` stays.
fn looks_like_credential(word: &str) -> bool {
    let token68 = word
        .trim_end_matches('=')
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/'));
    // `Bearer realm=…` starts a challenge's parameters, not a credential.
    let auth_param = word.ends_with('=')
        && word[..word.len() - 1]
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_');
    let random = word
        .chars()
        .any(|c| c.is_ascii_digit() || matches!(c, '+' | '/' | '='))
        || (word.len() >= 16
            && word.chars().any(|c| c.is_ascii_uppercase())
            && word.chars().any(|c| c.is_ascii_lowercase()));
    word.len() >= 8 && token68 && !auth_param && random
}

fn looks_secret(word: &str) -> bool {
    // A JWT's header is base64 of `{"`: "eyJ" wherever it starts inside the word.
    if word.contains("eyJ") && word.len() > 16 {
        return true;
    }
    if contains_jwt(word) {
        return true;
    }
    // Long runs of token alphabet, wherever they sit in the word (escape codes and punctuation
    // around them do not make them safe). In a URL the slashes are the path's, not base64's:
    // its host and segments are judged one by one (a token realm stays readable), and its
    // query's secrets went with their keys already.
    let url = word.contains("://");
    let in_run = |c: char| {
        c.is_ascii_alphanumeric()
            || matches!(c, '+' | '=' | '-' | '_' | '.' | '%')
            || (c == '/' && !url)
    };
    word.split(|c: char| !in_run(c)).any(|run| {
        let uniform = run.chars().all(|c| run.starts_with(c));
        // Pure hex runs are digests and request ids, which the evidence needs.
        let hex = run.chars().all(|c| c.is_ascii_hexdigit());
        // Random text has digits, both cases or base64 punctuation; a long lower-case word
        // such as `container-registry-firewall-access-rules` in a documentation link has not.
        let random = run
            .chars()
            .any(|c| c.is_ascii_digit() || matches!(c, '+' | '/' | '='))
            || (run.chars().any(|c| c.is_ascii_uppercase())
                && run.chars().any(|c| c.is_ascii_lowercase()));
        run.len() >= 32
            && !uniform
            && !hex
            && random
            && !looks_like_host(run)
            && !looks_like_media_type(run)
    })
}

/// `application/vnd.docker.distribution.manifest.v2+json` is long, has a digit, a `/` and a
/// `+`, but it is a media type the evidence must keep (an `Accept` list, a registry's "unsupported
/// manifest media type"): a registered top-level type, then a lower-case subtype in the vendor
/// tree (`vnd.`, where every long registry type lives). A lower-case base32 secret would need
/// that very prefix to pass.
fn looks_like_media_type(run: &str) -> bool {
    const TOP_LEVEL: &[&str] = &[
        "application",
        "audio",
        "font",
        "image",
        "message",
        "model",
        "multipart",
        "text",
        "video",
    ];
    let Some((top, sub)) = run.split_once('/') else {
        return false;
    };
    TOP_LEVEL.contains(&top)
        && sub.starts_with("vnd.")
        && sub.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '+' | '-' | '_')
        })
}

/// Whether a word holds a JWT, glued to dots or not (`...sig.` at the end of a sentence,
/// `x.<jwt>` in a path): every run of three dot-separated segments is tried.
fn contains_jwt(word: &str) -> bool {
    word.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .any(|piece| {
            let dots: Vec<usize> = piece.match_indices('.').map(|(i, _)| i).collect();
            (0..dots.len().saturating_sub(1)).any(|k| {
                let start = if k == 0 { 0 } else { dots[k - 1] + 1 };
                let end = dots.get(k + 2).copied().unwrap_or(piece.len());
                crate::http::jwt::looks_like_jwt(&piece[start..end])
            })
        })
}

/// `weuacct0123456789.blob.core.windows.net` is long and alphanumeric, but a host to name, not
/// a secret: dotted labels ending in an alphabetic top-level label.
fn looks_like_host(word: &str) -> bool {
    let word = word.trim_end_matches('.');
    let labels: Vec<&str> = word.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty())
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const JWT: &str =
        "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE3MDAwMDAwMDB9.c2lnbmF0dXJlLXNpZ25hdHVyZQ";

    fn with_auth(value: &str) -> Redactor {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(value).unwrap(),
        );
        Redactor::for_request(&"/v2/".parse().unwrap(), &h)
    }

    fn assert_gone(out: &str, secret: &str) {
        for form in encodings(secret) {
            assert!(!out.contains(&form), "{form} (of {secret}) in {out}");
        }
    }

    #[test]
    fn basic_credentials_echoed_in_any_encoding() {
        let b64 = STANDARD.encode("alice:Pa55-word~x");
        let r = with_auth(&format!("Basic {b64}"));
        for echo in [
            format!("bad credentials Basic {b64} for alice"),
            "user alice:Pa55-word~x refused".to_string(),
            "password Pa55-word~x is wrong".to_string(),
            format!("password {} is wrong", percent_encode("Pa55-word~x")),
            format!("password {} is wrong", STANDARD.encode("Pa55-word~x")),
        ] {
            let out = r.clean(&echo);
            assert_gone(&out, "Pa55-word~x");
            assert_gone(&out, &b64);
            assert!(out.contains(MASK), "{out}");
        }
        // The user name is an identity, not a secret.
        assert!(r.clean("user alice refused").contains("alice"));
    }

    #[test]
    fn media_types_are_evidence_not_secrets() {
        let accept = "application/vnd.docker.distribution.manifest.v2+json, \
                      application/vnd.oci.image.index.v1+json, */*";
        assert_eq!(redact(accept), accept);
        let said = "unsupported manifest media type: application/vnd.oci.image.manifest.v1+json";
        assert_eq!(redact(said), said);
        // A token with a slash is still one: mixed case, and no registered top-level type.
        let token = "application/Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg+x";
        assert_eq!(redact(token), MASK);
        assert_eq!(
            redact("xyzzy/zm9vyMfyymf6cxv4mti+zndu2nzg5mgfiy2rlzg"),
            MASK
        );
        // Lower-case random text under a real top-level type, outside the vendor tree.
        assert_eq!(
            redact("text/mfrggzdfmztwq2lknnwg23tpobyxe43uov3ho6dz"),
            MASK
        );
    }

    #[test]
    fn bearer_and_opaque_tokens() {
        let r = with_auth("Bearer opaque-TOKEN-value-42");
        let out = r.clean("invalid token opaque-TOKEN-value-42 (expired)");
        assert_eq!(out, "invalid token [redacted] (expired)");
        let r = with_auth(&format!("Bearer {JWT}"));
        let out = r.clean(&format!("token {JWT} rejected"));
        assert_eq!(out, "token [redacted] rejected");
        // A JWT nobody registered is still removed by its shape, signature included.
        let out = redact(&format!("got {JWT}."));
        assert!(
            !out.contains("eyJ") && !out.contains("c2lnbmF0dXJl"),
            "{out}"
        );
    }

    #[test]
    fn form_secrets_and_query_secrets_are_registered() {
        let mut r = Redactor::default();
        r.add_form(
            b"grant_type=password&username=bob&password=Xy8Q%7Es3cr3t&refresh_token=rt-0123",
        );
        let out = r.clean("bad grant: Xy8Q~s3cr3t / rt-0123 / Xy8Q%7es3cr3t");
        assert_gone(&out, "Xy8Q~s3cr3t");
        assert_gone(&out, "rt-0123");
        let q: http::Uri = "/token?service=r&access_token=query-tok-99"
            .parse()
            .unwrap();
        let r = Redactor::for_request(&q, &HeaderMap::new());
        assert!(!r.clean("echo query-tok-99").contains("query-tok-99"));
    }

    #[test]
    fn secret_keys_with_and_without_a_path() {
        let out = redact(
            "error_description: password=hunter2&refresh_token=rt-abc&scope=x in /path?password=x and https://h/t?a=b&client_secret=cs-1",
        );
        for s in ["hunter2", "rt-abc", "password=x", "cs-1"] {
            assert!(!out.contains(s), "{s} in {out}");
        }
        assert!(
            out.contains("scope=x") && out.contains("/path?[redacted]"),
            "{out}"
        );
        assert_eq!(redact("Token=abc"), MASK);
        assert_eq!(redact("SIG=abc&sv=2019"), "[redacted]&sv=2019");
        // A value after a quote or a space.
        assert_eq!(
            redact(r#"password="two words""#),
            r#"[redacted]"[redacted] words""#
        );
        assert_eq!(redact("code: 500, error=x"), "code: 500, error=x");
    }

    #[test]
    fn userinfo_in_urls_and_targets() {
        assert_eq!(
            redact("see ftp://u:pw-1@files.example/x"),
            "see ftp://[redacted]@files.example/x"
        );
        assert_eq!(
            redact("CONNECT user:pw@host:443"),
            "CONNECT [redacted]@host:443"
        );
        assert_eq!(
            redact("mail someone@contoso.com"),
            "mail someone@contoso.com"
        );
        assert_eq!(
            request_target("user:pw@reg.example:443"),
            "[redacted]@reg.example:443"
        );
        assert_eq!(
            request_target("ftp://u:pw@h.example/x?token=t#f"),
            "ftp://[redacted]@h.example/x?[redacted]"
        );
        assert_eq!(
            request_target("/v2/token?password=p"),
            "/v2/token?[redacted]"
        );
        assert_eq!(request_target("reg.example:443"), "reg.example:443");
        assert_eq!(request_target("/v2/a@b/blobs"), "/v2/a@b/blobs");
    }

    /// A `://` later in the word (a redirect URL in a query, a path) is not the scheme of the
    /// userinfo's URL: the userinfo still goes (found by fuzz/fuzz_targets/redact.rs, as a
    /// second pass of `redact` that removed more than the first).
    #[test]
    fn userinfo_before_a_later_scheme_separator() {
        assert_eq!(
            redact("alice:s3cret@proxy.corp:8080/?next=https://example.com"),
            "[redacted]@proxy.corp:8080/?next=https://example.com"
        );
        assert_eq!(
            request_target("alice:s3cret@reg.example/a://b"),
            "[redacted]@reg.example/a://b"
        );
        assert_eq!(
            redact("see https://u:pw@h.example/r?to=ftp://x"),
            "see https://[redacted]@h.example/r?to=ftp://x"
        );
        let fuzzed = "eyrefreshuser:pw@_token=exch!=://\0\0w@\u{fffd}Q";
        let once = redact(fuzzed);
        assert_eq!(redact(&once), once);
        assert!(!once.contains("user:pw"), "{once}");
    }

    #[test]
    fn scheme_credentials_but_not_prose() {
        assert_eq!(redact("Basic YWxpY2U6cHc="), "Basic [redacted]");
        assert_eq!(
            redact("Authorization: Bearer abc123def456"),
            "Authorization: Bearer [redacted]"
        );
        assert_eq!(
            redact("Basic authentication failed"),
            "Basic authentication failed"
        );
        let challenge = r#"Bearer realm="https://r.example/token",service="r.example""#;
        assert_eq!(redact(challenge), challenge);
    }

    #[test]
    fn urls_stay_readable_but_not_tokens_in_them() {
        let realm = "https://regdoce2eauth.azurecr.io/oauth2/token";
        assert_eq!(redact(realm), realm);
        let long = "https://myregistry.westeurope.data.azurecr.io/docker/registry/v2/blobs/sha256";
        assert_eq!(redact(long), long);
        let with_jwt = format!("https://r.example/x/{JWT}");
        assert_gone(&redact(&with_jwt), JWT);
        let with_token = "https://r.example/x/Zk9vQmFyQmF6cXV1eDEyMzQ1Njc4OTBhYmNkZWY9QQ";
        assert_gone(
            &redact(with_token),
            "Zk9vQmFyQmF6cXV1eDEyMzQ1Njc4OTBhYmNkZWY9QQ",
        );
    }

    #[test]
    fn benign_registry_messages_survive() {
        for m in [
            "client with IP '203.0.113.7' is not allowed access. Refer https://aka.ms/acr/firewall to grant access.",
            "authentication required, visit https://aka.ms/acr/authorization for more information.",
            "Application not registered with AAD.",
            "repository name not known to registry",
            "sha256:6fa3b1c2d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d",
            "weumyregistry0123456789abcdef.blob.core.windows.net",
            "refresh token expired",
        ] {
            assert_eq!(redact(m), m);
            assert_eq!(with_auth("Basic YWxpY2U6cHc=").clean(m), m);
        }
    }

    #[test]
    fn idempotent_and_json_detail() {
        let once = redact("x?password=p&sig=s Basic YWxpY2U6cHc= ftp://a:b@h/");
        assert_eq!(redact(&once), once);
        let r = with_auth("Bearer opaque-TOKEN-value-42");
        let mut v = serde_json::json!([{"Type": "repository", "Name": "app", "echo": "opaque-TOKEN-value-42", "opaque-TOKEN-value-42": 1}]);
        r.clean_json(&mut v);
        assert!(!v.to_string().contains("opaque-TOKEN"), "{v}");
        assert_eq!(v[0]["Name"], "app");
    }

    #[test]
    fn short_values_and_debug() {
        let mut r = Redactor::default();
        r.add_secret("pw");
        assert_eq!(r.clean("pw is short"), "pw is short");
        r.add_secret("longer-secret");
        assert!(!format!("{r:?}").contains("longer-secret"));
    }
}

/// The property the README promises: whatever surrounds it, a registered secret (as sent,
/// base64 or URL-encoded) never survives [`Redactor::clean`].
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn secret() -> impl Strategy<Value = String> {
        // No brackets and at least 8 characters: the mask itself cannot be (or make) one.
        "[A-Za-z0-9~._:/+=!@$%-]{8,32}"
            .prop_filter("not part of the mask", |s| !MASK.contains(s.as_str()))
    }

    proptest! {
        #![proptest_config(crate::proptest_support::cases(512))]

        #[test]
        fn registered_secrets_never_survive(
            secret in secret(),
            before in "\\PC{0,40}",
            after in "\\PC{0,40}",
            encoding in 0usize..8,
            how in 0usize..3,
        ) {
            let mut r = Redactor::default();
            match how {
                0 => r.add_secret(&secret),
                1 => r.add_authorization(&format!("Basic {}", STANDARD.encode(format!("user:{secret}")))),
                _ => r.add_form(format!("password={}", percent_encode(&secret)).as_bytes()),
            }
            let forms = encodings(&secret);
            let echoed = &forms[encoding % forms.len()];
            let out = r.clean(&format!("{before}{echoed}{after}"));
            for form in [secret.clone(), STANDARD.encode(&secret), percent_encode(&secret)] {
                prop_assert!(!out.contains(&form), "{} in {:?}", form, out);
            }
        }
    }
}
