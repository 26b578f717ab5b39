//! Registry error bodies: `{"errors":[{"code":..,"message":..,"detail":..}]}` (distribution,
//! ACR), and plain-text bodies reduced to one loggable line.

use crate::redact::Redactor;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Entries kept from one body; a registry never sends more than a handful.
const MAX_ERRORS: usize = 16;
/// Characters kept of a message.
const MAX_MESSAGE_CHARS: usize = 1024;
/// Bytes of a `detail` value kept (serialised); larger details are dropped.
const MAX_DETAIL_BYTES: usize = 2048;

/// One entry of a registry `errors` array.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegistryError {
    /// `UNAUTHORIZED`, `DENIED`, `NAME_UNKNOWN`, `TOOMANYREQUESTS`, … as sent.
    pub code: String,
    #[serde(default)]
    pub message: String,
    /// ACR puts the refused access here: `[{"Type":"repository","Name":"app","Action":"pull"}]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
    /// Which body shape the entry was read from: registry clients read only `errors[]` and
    /// `details` as errors.
    #[serde(skip)]
    pub shape: BodyShape,
    /// The entry had a non-null `detail`, kept or not (a large one is dropped above). Clients
    /// print the code alone for an entry with neither detail nor a message of its own.
    #[serde(skip)]
    pub has_detail: bool,
}

/// The shape of an error body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyShape {
    /// `{"errors": [{"code", "message", "detail"}]}`, the registry API's.
    #[default]
    Errors,
    /// `{"error": …, "error_description": …}`, OAuth 2's: clients report the status instead.
    OAuth,
    /// `{"details": "…"}`, an older shape (ACR's token service answers with it); `code` is empty
    /// and clients name the error by the status.
    Details,
}

/// Parse a registry error body. Also accepts the OAuth 2 error shape
/// (`{"error":"invalid_grant","error_description":"…"}`) some token servers use, as one entry
/// with `code` = `error`, and `{"details": "…"}`. Anything else (invalid JSON, another shape)
/// gives an empty vector. Every string kept has passed `redactor`: servers and middleboxes
/// echo the client's credentials in error bodies.
pub fn parse(body: &[u8], redactor: &Redactor) -> Vec<RegistryError> {
    let mut errors = parse_raw(body);
    for e in &mut errors {
        // Cut after redaction: a secret cut in two is no longer recognisable.
        e.code = cap_chars(&redactor.clean(&e.code), 64);
        e.message = cap_chars(&redactor.clean(&e.message), MAX_MESSAGE_CHARS);
        if let Some(d) = &mut e.detail {
            redactor.clean_json(d);
        }
    }
    errors
}

fn parse_raw(body: &[u8]) -> Vec<RegistryError> {
    let Ok(value) = serde_json::from_slice::<Value>(trim_bom(body)) else {
        return Vec::new();
    };
    if let Some(errors) = value.get("errors").and_then(Value::as_array) {
        return errors.iter().filter_map(entry).take(MAX_ERRORS).collect();
    }
    if let Some(code) = value.get("error").and_then(Value::as_str) {
        let message = value
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return vec![RegistryError {
            code: code.to_string(),
            message: message.to_string(),
            detail: None,
            shape: BodyShape::OAuth,
            has_detail: false,
        }];
    }
    if let Some(details) = value
        .get("details")
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty())
    {
        return vec![RegistryError {
            code: String::new(),
            message: details.to_string(),
            detail: None,
            shape: BodyShape::Details,
            has_detail: false,
        }];
    }
    Vec::new()
}

fn entry(v: &Value) -> Option<RegistryError> {
    let code = v.get("code")?.as_str()?;
    let message = v.get("message").and_then(Value::as_str).unwrap_or_default();
    let has_detail = v.get("detail").is_some_and(|d| !d.is_null());
    let detail = v
        .get("detail")
        .filter(|d| !d.is_null())
        .filter(|d| d.to_string().len() <= MAX_DETAIL_BYTES)
        .cloned();
    Some(RegistryError {
        code: code.to_string(),
        message: message.to_string(),
        detail,
        shape: BodyShape::Errors,
        has_detail,
    })
}

fn trim_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body)
}

fn cap_chars(s: &str, cap: usize) -> String {
    s.chars().take(cap).collect()
}

/// A plain-text body (`Application not registered with AAD.`) as one line: passed through
/// `redactor` (so neither this exchange's credentials nor anything shaped like a secret stays),
/// whitespace runs (newlines included) become one space, control characters are dropped, the
/// result is trimmed and cut to `cap` characters (ending in `…` when cut). `None` for an empty
/// or binary body.
pub fn body_line(body: &[u8], cap: usize, redactor: &Redactor) -> Option<String> {
    if cap == 0 {
        return None;
    }
    let text = String::from_utf8_lossy(trim_bom(body));
    let total = text.chars().count();
    let garbage = text
        .chars()
        .filter(|&c| c == '\u{fffd}' || (c.is_control() && !c.is_whitespace()))
        .count();
    // Compressed or binary bodies decode to mostly junk: nothing useful to show.
    if total == 0 || garbage * 10 > total {
        return None;
    }
    // Redacted before it is cut: a cut secret is no longer recognisable.
    // Control characters inside a word go (`\x1b[31m` is noise, not a word break).
    let text: String = text
        .chars()
        .filter(|&c| c != '\u{fffd}' && (c.is_whitespace() || !c.is_control()))
        .collect();
    let text = redactor.clean(&text);
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return None;
    }
    if line.chars().count() <= cap {
        return Some(line);
    }
    let mut cut: String = line.chars().take(cap.saturating_sub(1)).collect();
    cut.push('…');
    Some(cut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(super) fn parse(body: &[u8]) -> Vec<RegistryError> {
        super::parse(body, &Redactor::default())
    }

    pub(super) fn body_line(body: &[u8], cap: usize) -> Option<String> {
        super::body_line(body, cap, &Redactor::default())
    }

    // Bodies as the reference notes record them.
    pub(super) const FIREWALL: &str = r#"{"errors":[{"code":"DENIED","message":"client with IP \u0027172.214.169.102\u0027 is not allowed access. Refer https://aka.ms/acr/firewall to grant access."}]}"#;
    pub(super) const UNAUTHORIZED_REPO: &str = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required, visit https://aka.ms/acr/authorization for more information.","detail":[{"Type":"repository","Name":"billing","Action":"pull"}]}]}"#;
    pub(super) const UNAUTHORIZED_PING: &str = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required, visit https://aka.ms/acr/authorization for more information."}]}"#;
    pub(super) const CATALOG: &str = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[{"Type":"registry","Name":"catalog","Action":"*"}]}]}"#;

    #[test]
    fn acr_firewall_denial() {
        let errs = parse(FIREWALL.as_bytes());
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].code, "DENIED");
        assert_eq!(
            errs[0].message,
            "client with IP '172.214.169.102' is not allowed access. Refer https://aka.ms/acr/firewall to grant access."
        );
        assert_eq!(errs[0].detail, None);
    }

    #[test]
    fn acr_unauthorized_with_detail() {
        let errs = parse(UNAUTHORIZED_REPO.as_bytes());
        assert_eq!(errs[0].code, "UNAUTHORIZED");
        assert_eq!(
            errs[0].detail,
            Some(json!([{"Type":"repository","Name":"billing","Action":"pull"}]))
        );
        let errs = parse(UNAUTHORIZED_PING.as_bytes());
        assert!(errs[0]
            .message
            .starts_with("authentication required, visit"));
        let errs = parse(CATALOG.as_bytes());
        assert_eq!(errs[0].detail.as_ref().unwrap()[0]["Name"], "catalog");
    }

    #[test]
    fn distribution_codes_and_several_entries() {
        let body = br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry","detail":{"name":"app"}},{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"},{"code":"TOOMANYREQUESTS","message":"too many requests"}]}"#;
        let errs = parse(body);
        let codes: Vec<&str> = errs.iter().map(|e| e.code.as_str()).collect();
        assert_eq!(
            codes,
            ["NAME_UNKNOWN", "MANIFEST_UNKNOWN", "TOOMANYREQUESTS"]
        );
        assert_eq!(errs[1].message, "manifest unknown");
    }

    #[test]
    fn oauth_error_shape() {
        let errs =
            parse(br#"{"error":"invalid_grant","error_description":"refresh token expired"}"#);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].code, "invalid_grant");
        assert_eq!(errs[0].message, "refresh token expired");
        assert_eq!(errs[0].shape, BodyShape::OAuth);
    }

    #[test]
    fn details_shape() {
        let errs = parse(br#"{"details":"Application not registered with AAD."}"#);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].message, "Application not registered with AAD.");
        assert_eq!(errs[0].shape, BodyShape::Details);
        assert!(parse(br#"{"details":""}"#).is_empty());
    }

    #[test]
    fn lenient_about_odd_entries() {
        // Entries without a string code are skipped; a BOM is fine; null detail is dropped.
        let body = "\u{feff}{\"errors\":[{\"message\":\"no code\"},{\"code\":5},{\"code\":\"DENIED\",\"detail\":null}]}";
        let errs = parse(body.as_bytes());
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].code, "DENIED");
        assert_eq!(errs[0].message, "");
        assert_eq!(errs[0].detail, None);
    }

    #[test]
    fn limits() {
        let many = format!(
            "{{\"errors\":[{}]}}",
            vec![r#"{"code":"X","message":"m"}"#; 100].join(",")
        );
        assert_eq!(parse(many.as_bytes()).len(), MAX_ERRORS);
        let long = format!(
            r#"{{"errors":[{{"code":"X","message":"{}","detail":"{}"}}]}}"#,
            "m".repeat(5000),
            "d".repeat(5000)
        );
        let errs = parse(long.as_bytes());
        assert_eq!(errs[0].message.len(), MAX_MESSAGE_CHARS);
        assert_eq!(errs[0].detail, None);
    }

    #[test]
    fn not_registry_errors() {
        for body in [
            &b""[..],
            b"Application not registered with AAD.",
            b"<html><body>403 Forbidden</body></html>",
            b"{\"errors\":",
            b"{\"errors\":{}}",
            b"[1,2]",
            b"\xff\xfe\x00",
        ] {
            assert!(parse(body).is_empty(), "{body:?}");
        }
    }

    #[test]
    fn body_line_of_plain_text() {
        assert_eq!(
            body_line(b"Application not registered with AAD.", 200).as_deref(),
            Some("Application not registered with AAD.")
        );
        assert_eq!(
            body_line(b"\r\n  Application not registered\r\n with AAD.\n\n", 200).as_deref(),
            Some("Application not registered with AAD.")
        );
        assert_eq!(
            body_line(
                b"aad access token with sp failed client id must be guid",
                200
            )
            .as_deref(),
            Some("aad access token with sp failed client id must be guid")
        );
        assert_eq!(
            body_line(b"Application not registered with AAD.", 12).as_deref(),
            Some("Application…")
        );
        assert_eq!(body_line(b"abc", 3).as_deref(), Some("abc"));
        assert_eq!(
            body_line(b"\x1b[31mupstream registry unavailable\x1b[0m\x07", 50).as_deref(),
            Some("[31mupstream registry unavailable[0m")
        );
        // Mostly control bytes: treated as binary.
        assert_eq!(body_line(b"\x1b[31mred\x1b[0m\x07", 50), None);
        assert_eq!(
            body_line("caf\u{e9} \u{2014} ok".as_bytes(), 50).as_deref(),
            Some("café — ok")
        );
    }

    #[test]
    fn body_line_rejects_empty_and_binary() {
        assert_eq!(body_line(b"", 100), None);
        assert_eq!(body_line(b" \r\n\t ", 100), None);
        assert_eq!(body_line(b"abc", 0), None);
        // A gzip header and some deflate bytes.
        assert_eq!(
            body_line(
                b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xcb\x48\xcd\xc9\xc9\x07\x00",
                100
            ),
            None
        );
    }

    #[test]
    fn body_line_hides_tokens() {
        let jwt = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE3MDAwMDAwMDB9.c2lnbmF0dXJl";
        let body = format!("{{\"access_token\":\"{jwt}\"}}");
        let line = body_line(body.as_bytes(), 500).unwrap();
        assert!(!line.contains(jwt));
        assert!(!line.contains("c2lnbmF0dXJl"));
        assert_eq!(line, r#"{"access_token":"[redacted]"}"#);
        let line = body_line(format!("token {jwt} expired").as_bytes(), 500).unwrap();
        assert_eq!(line, "token [redacted] expired");
        // Glued to dots: the end of a sentence, a path (found by
        // properties::embedded_tokens_never_reach_the_line).
        let line = body_line(format!("invalid token: {jwt}.").as_bytes(), 500).unwrap();
        assert_eq!(line, "invalid token: [redacted]");
        let line = body_line(format!("see a.{jwt}.b").as_bytes(), 500).unwrap();
        assert_eq!(line, "see [redacted]");
        // Four segments with none of them JSON stay as they are.
        assert_eq!(
            body_line(b"v1.2.3.4 released", 500).as_deref(),
            Some("v1.2.3.4 released")
        );
    }
}

/// Properties of the error-body readers: no body panics them, what they keep is bounded, and the
/// one-line rendering of a body is always safe to log.
#[cfg(test)]
mod properties {
    use super::tests::{self, body_line, parse};
    use super::{RegistryError, MAX_DETAIL_BYTES, MAX_ERRORS, MAX_MESSAGE_CHARS};
    use crate::proptest_support::{mutated, text_input};
    use proptest::prelude::*;
    use serde_json::json;

    const SEEDS: &[&str] = &[
        tests::FIREWALL,
        tests::UNAUTHORIZED_REPO,
        tests::UNAUTHORIZED_PING,
        tests::CATALOG,
        r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry","detail":{"name":"app"}},{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
        r#"{"error":"invalid_grant","error_description":"refresh token expired"}"#,
        "\u{feff}{\"errors\":[{\"message\":\"no code\"},{\"code\":5},{\"code\":\"DENIED\",\"detail\":null}]}",
        "Application not registered with AAD.",
        "token eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE3MDAwMDAwMDB9.c2lnbmF0dXJl expired",
    ];

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512),
            text_input(SEEDS).prop_map(String::into_bytes),
            mutated(SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect()),
        ]
    }

    /// What [`parse`] keeps stays within its limits.
    fn assert_bounded(errors: &[RegistryError]) -> Result<(), TestCaseError> {
        prop_assert!(errors.len() <= MAX_ERRORS);
        for e in errors {
            prop_assert!(e.code.chars().count() <= 64);
            prop_assert!(e.message.chars().count() <= MAX_MESSAGE_CHARS);
            if let Some(d) = &e.detail {
                prop_assert!(d.to_string().len() <= MAX_DETAIL_BYTES);
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(crate::proptest_support::cases(256))]

        #[test]
        fn parse_is_bounded_on_any_body(body in body()) {
            assert_bounded(&parse(&body))?;
        }

        /// The line shown for a body: at most `cap` characters, no control characters, no
        /// U+FFFD, no surrounding or doubled whitespace, and never a JWT.
        #[test]
        fn body_line_is_loggable(body in body(), cap in 0usize..120) {
            let Some(line) = body_line(&body, cap) else { return Ok(()) };
            prop_assert!(!line.is_empty());
            prop_assert!(line.chars().count() <= cap);
            prop_assert!(line.chars().all(|c| !c.is_control() && c != '\u{fffd}'), "{:?}", line);
            prop_assert_eq!(line.split_whitespace().collect::<Vec<_>>().join(" "), line.clone());
            prop_assert!(!line.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))).any(crate::http::jwt::looks_like_jwt), "{:?}", line);
        }

        /// Codes and messages of any text come back redacted, then cut to their limits.
        #[test]
        fn entries_round_trip(entries in prop::collection::vec((any::<String>(), any::<String>()), 0..20)) {
            let body = json!({
                "errors": entries.iter().map(|(code, message)| json!({"code": code, "message": message})).collect::<Vec<_>>()
            });
            let errors = parse(body.to_string().as_bytes());
            prop_assert_eq!(errors.len(), entries.len().min(MAX_ERRORS));
            for (e, (code, message)) in errors.iter().zip(&entries) {
                let clean = |s: &str| crate::redact::Redactor::default().clean(s);
                prop_assert_eq!(&e.code, &super::cap_chars(&clean(code), 64));
                prop_assert_eq!(&e.message, &super::cap_chars(&clean(message), MAX_MESSAGE_CHARS));
            }
        }

        /// A token inside a body never reaches the line, wherever it sits: in JSON, after a
        /// colon, at the end of a sentence, between dots of a path.
        #[test]
        fn embedded_tokens_never_reach_the_line(
            before in "(\\PC{0,40}[ \t\n\"'=:,;(\\[{<>./])?",
            after in "([ \t\n\"'=:,;)\\]}<>./!?]\\PC{0,40})?",
            exp in any::<i64>(),
            signature in "[A-Za-z0-9_-]{0,64}",
        ) {
            let token = crate::http::jwt::test_token(&json!({"exp": exp}));
            let (head_payload, _) = token.rsplit_once('.').unwrap();
            let token = format!("{head_payload}.{signature}");
            let payload = head_payload.split('.').nth(1).unwrap();
            let body = format!("{before}{token}{after}");
            if let Some(line) = body_line(body.as_bytes(), 10_000) {
                prop_assert!(!line.contains(payload), "token leaked: {:?} -> {:?}", body, line);
            }
        }

        /// Deeply nested JSON is refused by serde_json's recursion limit, not by a stack
        /// overflow, wherever the nesting is.
        #[test]
        fn deep_nesting_is_harmless(depth in 0usize..20_000, in_detail in any::<bool>()) {
            let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let body = if in_detail {
                format!(r#"{{"errors":[{{"code":"X","detail":{nested}}}]}}"#)
            } else {
                format!(r#"{{"errors":{nested}}}"#)
            };
            assert_bounded(&parse(body.as_bytes()))?;
            let _ = body_line(body.as_bytes(), 100);
        }
    }
}
