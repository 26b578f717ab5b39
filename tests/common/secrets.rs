//! Secret scans for tests: every secret a test uses is registered, and every text the run
//! produced (the log's JSON lines, captured stderr, `regdoc report` output) is scanned for each
//! of them, as sent, base64 and URL-encoded. Scan only after the records exist: close the
//! clients, wait for the records, flush the log, then call [`Secrets::assert_absent`].

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use std::sync::Mutex;

/// Secrets shorter than this are refused: a scan for them would match ordinary words.
pub const MIN_SECRET_LEN: usize = 8;

/// The secrets one test uses.
#[derive(Default)]
pub struct Secrets {
    list: Mutex<Vec<String>>,
}

impl Secrets {
    pub fn new() -> Secrets {
        Secrets::default()
    }

    /// Register `secret` and hand it back, so a test writes `let pw = s.register("…")`.
    pub fn register(&self, secret: impl Into<String>) -> String {
        let secret = secret.into();
        assert!(
            secret.len() >= MIN_SECRET_LEN,
            "test secret {secret:?} is too short to scan for"
        );
        if let Ok(mut l) = self.list.lock() {
            l.push(secret.clone());
        }
        secret
    }

    /// Every registered secret, for a scan of another kind.
    pub fn all(&self) -> Vec<String> {
        self.list.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Panic naming the secret, its encoding and where it occurs, if any registered secret is
    /// in `text` in any of its encodings. `what` names the text (`log`, `report`, `stderr`).
    pub fn assert_absent(&self, what: &str, text: &str) {
        if let Some(hit) = self.find_in(text) {
            panic!("{what} leaks a secret: {hit}");
        }
    }

    /// The first hit, described, or `None`.
    pub fn find_in(&self, text: &str) -> Option<String> {
        for secret in self.all() {
            for (encoding, form) in encodings(&secret) {
                if let Some(at) = text.find(&form) {
                    let start = text[..at]
                        .char_indices()
                        .rev()
                        .nth(80)
                        .map_or(0, |(i, _)| i);
                    let end = (at + form.len() + 80).min(text.len());
                    let end = (end..=text.len())
                        .find(|&i| text.is_char_boundary(i))
                        .unwrap_or(text.len());
                    return Some(format!(
                        "{secret:?} ({encoding}) in …{}…",
                        &text[start..end]
                    ));
                }
            }
        }
        None
    }
}

/// The forms a secret is scanned for: as sent, base64 (standard and URL-safe, padded or not)
/// and URL-encoded (upper- and lower-case hex, `+` for a space).
pub fn encodings(secret: &str) -> Vec<(&'static str, String)> {
    let b = secret.as_bytes();
    let url = percent_encode(secret);
    let mut out = vec![
        ("raw", secret.to_string()),
        ("base64", STANDARD.encode(b)),
        ("base64", STANDARD_NO_PAD.encode(b)),
        ("base64url", URL_SAFE.encode(b)),
        ("base64url", URL_SAFE_NO_PAD.encode(b)),
        ("url-encoded", url.replace("%20", "+")),
        ("url-encoded", lower_hex(&url)),
        ("url-encoded", url),
    ];
    out.dedup_by(|a, b| a.1 == b.1);
    out
}

/// Everything but RFC 3986 unreserved characters as `%XX`.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `%7E` → `%7e`, the rest untouched.
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

/// Body shapes a server (registry, token service, middlebox) may echo credentials in.
pub const ECHO_SHAPES: &[&str] = &["errors", "oauth", "details", "text", "challenge"];

/// What an echoing server sends back for `shape`, quoting `echoed` (the client's credentials as
/// the server saw them): `(status, content type, body, WWW-Authenticate)`.
pub fn echo_reply(shape: &str, echoed: &str) -> (u16, &'static str, String, Option<String>) {
    let e = json_escape(echoed);
    match shape {
        "errors" => (
            401,
            "application/json",
            format!(
                r#"{{"errors":[{{"code":"UNAUTHORIZED","message":"bad credentials {e}","detail":{{"seen":"{e}","list":["{e}"]}}}}]}}"#
            ),
            None,
        ),
        "oauth" => (
            400,
            "application/json",
            format!(r#"{{"error":"invalid_grant","error_description":"rejected {e}"}}"#),
            None,
        ),
        "details" => (
            401,
            "application/json",
            format!(r#"{{"details":"cannot use {e}"}}"#),
            None,
        ),
        "challenge" => (
            401,
            "application/json",
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#.into(),
            Some(format!(
                r#"Bearer realm="https://r.example/oauth2/token",service="r.example",error="invalid_token",error_description="token {} refused""#,
                echoed.replace('"', "")
            )),
        ),
        _ => (401, "text/plain", format!("invalid token {echoed}\n"), None),
    }
}

/// What an echoing server quotes of a request: its `Authorization` value, that value's Basic
/// `user:password` decoded, and the query and form as sent.
pub fn echoed_credentials(authorization: Option<&str>, query: &str, form: &str) -> String {
    let mut out = String::new();
    if let Some(a) = authorization {
        out.push_str(&format!("Authorization: {a} "));
        if let Some(b) = a.strip_prefix("Basic ") {
            if let Ok(d) = STANDARD.decode(b.trim()) {
                out.push_str(&format!("as {} ", String::from_utf8_lossy(&d)));
            }
        }
        if let Some(t) = a.strip_prefix("Bearer ") {
            out.push_str(&format!("token={t} "));
        }
    }
    if !query.is_empty() {
        out.push_str(&format!("query {query} "));
    }
    if !form.is_empty() {
        out.push_str(&format!("form {form}"));
    }
    out.trim().to_string()
}

fn json_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
