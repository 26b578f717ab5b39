//! How the registry client inside the Docker daemon (docker/distribution's `registry/client`)
//! turns an error reply into an error message, and Go's own texts for statuses and TLS alerts.
//!
//! The client reads a 4xx as follows: a Bearer challenge's `error` parameter becomes the first
//! error (`insufficient_scope` → `denied`, `invalid_token` → `unauthorized`), followed by the
//! body's `errors[]`; a body without them is a parse error, except that a 401 then reads as
//! `unauthorized: authentication required`. One error prints as `code: message`, several as
//! `errors:` and one per line. An entry without a detail whose message is empty or the code's
//! default prints as the code alone. Any other status is `received unexpected HTTP status:`
//! and the status line.

use crate::diagnose::text::redact;
use crate::http::registry_error::{BodyShape, RegistryError};
use crate::observe::HttpExchange;

/// One error as the client holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The client's code (`DENIED`; codes it does not know read as `UNKNOWN`).
    pub code: &'static str,
    pub text: String,
    /// A bare code (no detail, the default message): the pull's translations do not apply to
    /// it, and it prints as the code alone.
    pub bare: bool,
}

/// The client's error for one reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    /// The errors, challenge first; empty for a status the client has no reader for.
    pub errors: Vec<Entry>,
    /// `received unexpected HTTP status: …` for those.
    pub status_line: Option<String>,
    /// Whether regdoc saw everything the text is made of. A body regdoc reduced (a plain-text
    /// body, a JSON parse error whose wording is Go's) makes the text an expectation only.
    pub exact: bool,
}

impl ClientError {
    /// The whole error: one error as it is, several as `errors:` and one per line.
    pub fn all(&self) -> String {
        if let Some(s) = &self.status_line {
            return s.clone();
        }
        match self.errors.as_slice() {
            [one] => one.text.clone(),
            many => {
                let mut s = String::from("errors:");
                for e in many {
                    s.push('\n');
                    s.push_str(&e.text);
                }
                s
            }
        }
    }

    /// The first error only: what a pull, and a push of a layer, keep of several.
    pub fn first(&self) -> String {
        match (&self.status_line, self.errors.first()) {
            (Some(s), _) => s.clone(),
            (None, Some(e)) => e.text.clone(),
            (None, None) => String::new(),
        }
    }

    /// The first error when it is a full registry error (not a bare code).
    pub fn first_full(&self) -> Option<&Entry> {
        self.errors.first().filter(|e| !e.bare)
    }
}

/// Codes the client knows, with their default messages; any other code reads as `UNKNOWN`.
const CODES: &[(&str, &str)] = &[
    ("UNKNOWN", "unknown error"),
    ("UNSUPPORTED", "The operation is unsupported."),
    ("UNAUTHORIZED", "authentication required"),
    ("DENIED", "requested access to the resource is denied"),
    ("UNAVAILABLE", "service unavailable"),
    ("TOOMANYREQUESTS", "too many requests"),
    (
        "DIGEST_INVALID",
        "provided digest did not match uploaded content",
    ),
    (
        "SIZE_INVALID",
        "provided length did not match content length",
    ),
    ("NAME_INVALID", "invalid repository name"),
    ("TAG_INVALID", "manifest tag did not match URI"),
    ("NAME_UNKNOWN", "repository name not known to registry"),
    ("MANIFEST_UNKNOWN", "manifest unknown"),
    ("MANIFEST_INVALID", "manifest invalid"),
    (
        "MANIFEST_UNVERIFIED",
        "manifest failed signature verification",
    ),
    ("MANIFEST_BLOB_UNKNOWN", "blob unknown to registry"),
    ("BLOB_UNKNOWN", "blob unknown to registry"),
    ("BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry"),
    ("BLOB_UPLOAD_INVALID", "blob upload invalid"),
    (
        "PAGINATION_NUMBER_INVALID",
        "invalid number of results requested",
    ),
    ("RANGE_INVALID", "invalid content range"),
];

/// The client's code for a code as sent (unknown codes read as `UNKNOWN`).
fn known(code: &str) -> (&'static str, &'static str) {
    CODES
        .iter()
        .find(|(c, _)| *c == code)
        .copied()
        .unwrap_or(CODES[0])
}

/// `DENIED` → `denied`, `NAME_UNKNOWN` → `name unknown`.
fn code_text(code: &str) -> String {
    code.replace('_', " ").to_ascii_lowercase()
}

fn entry(e: &RegistryError) -> Entry {
    let (code, default) = known(&e.code);
    let bare = !e.has_detail && (e.message.is_empty() || e.message == default);
    let text = if bare {
        code_text(code)
    } else {
        format!("{}: {}", code_text(code), redact(&e.message))
    };
    Entry { code, text, bare }
}

fn full(code: &'static str, text: String) -> Entry {
    Entry {
        code,
        text,
        bare: false,
    }
}

/// Go's `http.StatusText`, for the statuses registries and proxies send.
pub fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Request Entity Too Large",
        414 => "Request URI Too Long",
        416 => "Requested Range Not Satisfiable",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// The client's error for an error reply (status ≥ 400).
pub fn client_error(ex: &HttpExchange) -> ClientError {
    if !(400..500).contains(&ex.status) {
        let line = format!(
            "received unexpected HTTP status: {} {}",
            ex.status,
            status_text(ex.status)
        );
        return ClientError {
            errors: Vec::new(),
            status_line: Some(line.trim_end().to_string()),
            // The status line's text is the server's; registries send the canonical one.
            exact: true,
        };
    }
    let mut errors: Vec<Entry> = Vec::new();
    if let Some(c) = ex.www_authenticate.as_ref().filter(|c| c.is_bearer()) {
        let code = match c.error.as_deref() {
            Some("invalid_token") => Some("UNAUTHORIZED"),
            Some("insufficient_scope") => Some("DENIED"),
            _ => None,
        };
        if let Some(code) = code {
            let message = c
                .error_description
                .as_deref()
                .filter(|d| !d.is_empty())
                .unwrap_or(known(code).1);
            // A challenge's error is always a full error (never the code alone).
            errors.push(full(
                code,
                format!("{}: {}", code_text(code), redact(message)),
            ));
        }
    }
    let details = ex
        .registry_errors
        .iter()
        .find(|e| e.shape == BodyShape::Details);
    let body: Vec<&RegistryError> = ex
        .registry_errors
        .iter()
        .filter(|e| e.shape == BodyShape::Errors)
        .collect();
    let mut exact = true;
    if let Some(d) = details {
        // The older `details` shape: the status names the error (403 as `denied` since
        // distribution 2.8.2, which Debian's dockerd is built with).
        let code = match ex.status {
            401 => "UNAUTHORIZED",
            403 => "DENIED",
            429 => "TOOMANYREQUESTS",
            _ => "UNKNOWN",
        };
        errors.push(full(
            code,
            format!("{}: {}", code_text(code), redact(&d.message)),
        ));
    } else if !body.is_empty() {
        errors.extend(body.iter().map(|e| entry(e)));
    } else if errors.is_empty() && ex.status == 401 {
        // No registry errors in the body: a 401 reads as the default unauthorized error.
        errors.push(full(
            "UNAUTHORIZED",
            "unauthorized: authentication required".into(),
        ));
    } else {
        // Go's JSON parse error and the quoted body: regdoc keeps neither verbatim.
        exact = false;
        let what = ex.body_text.as_deref().map(redact).unwrap_or_default();
        errors.push(full(
            "UNKNOWN",
            format!(
                "error parsing HTTP {} response body: no error details found in HTTP response body: {what:?}",
                ex.status
            ),
        ));
    }
    ClientError {
        errors,
        status_line: None,
        exact,
    }
}

/// Go's text for a TLS alert the server sent (`remote error: tls: <this>`).
pub fn alert_text(description: &str) -> String {
    let t = match description {
        "close_notify" => "close notify",
        "unexpected_message" => "unexpected message",
        "bad_record_mac" => "bad record MAC",
        "decryption_failed" => "decryption failed",
        "record_overflow" => "record overflow",
        "decompression_failure" => "decompression failure",
        "handshake_failure" => "handshake failure",
        "bad_certificate" => "bad certificate",
        "unsupported_certificate" => "unsupported certificate",
        "certificate_revoked" => "revoked certificate",
        "certificate_expired" => "expired certificate",
        "certificate_unknown" => "unknown certificate",
        "illegal_parameter" => "illegal parameter",
        "unknown_ca" => "unknown certificate authority",
        "access_denied" => "access denied",
        "decode_error" => "error decoding message",
        "decrypt_error" => "error decrypting message",
        "export_restriction" => "export restriction",
        "protocol_version" => "protocol version not supported",
        "insufficient_security" => "insufficient security level",
        "internal_error" => "internal error",
        "inappropriate_fallback" => "inappropriate fallback",
        "user_canceled" => "user canceled",
        "no_renegotiation" => "no renegotiation",
        "missing_extension" => "missing extension",
        "unsupported_extension" => "unsupported extension",
        "certificate_unobtainable" => "certificate unobtainable",
        "unrecognized_name" => "unrecognized name",
        "bad_certificate_status_response" => "bad certificate status response",
        "bad_certificate_hash_value" => "bad certificate hash value",
        "unknown_psk_identity" => "unknown PSK identity",
        "certificate_required" => "certificate required",
        "no_application_protocol" => "no application protocol",
        other => return format!("alert({})", redact(other)),
    };
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::challenge::Challenge;

    fn err(code: &str, message: &str, detail: bool) -> RegistryError {
        RegistryError {
            code: code.into(),
            message: message.into(),
            detail: None,
            shape: BodyShape::Errors,
            has_detail: detail,
        }
    }

    fn reply(status: u16, errors: Vec<RegistryError>) -> HttpExchange {
        HttpExchange {
            status,
            registry_errors: errors,
            ..Default::default()
        }
    }

    #[test]
    fn one_error_is_code_colon_message() {
        let ex = reply(
            401,
            vec![err(
                "UNAUTHORIZED",
                "authentication required, visit https://aka.ms/acr/authorization for more information.",
                false,
            )],
        );
        assert_eq!(
            client_error(&ex).all(),
            "unauthorized: authentication required, visit https://aka.ms/acr/authorization for more information."
        );
    }

    #[test]
    fn default_message_without_detail_is_the_code_alone() {
        let ex = reply(
            429,
            vec![err("TOOMANYREQUESTS", "too many requests", false)],
        );
        assert_eq!(client_error(&ex).all(), "toomanyrequests");
        assert!(client_error(&ex).first_full().is_none());
        let ex = reply(404, vec![err("MANIFEST_UNKNOWN", "manifest unknown", true)]);
        assert_eq!(
            client_error(&ex).all(),
            "manifest unknown: manifest unknown"
        );
    }

    #[test]
    fn unknown_codes_read_as_unknown() {
        let ex = reply(403, vec![err("WEIRD_CODE", "no", false)]);
        let e = client_error(&ex);
        assert_eq!(e.all(), "unknown: no");
        assert_eq!(e.errors[0].code, "UNKNOWN");
    }

    #[test]
    fn insufficient_scope_comes_first_then_the_body() {
        let mut ex = reply(
            401,
            vec![err("UNAUTHORIZED", "authentication required", true)],
        );
        ex.www_authenticate = Some(Challenge {
            scheme: "Bearer".into(),
            realm: Some("https://auth/token".into()),
            service: Some("r".into()),
            scope: Some("repository:a:pull,push".into()),
            error: Some("insufficient_scope".into()),
            error_description: None,
        });
        let e = client_error(&ex);
        assert_eq!(
            e.all(),
            "errors:\ndenied: requested access to the resource is denied\nunauthorized: authentication required"
        );
        assert_eq!(
            e.first(),
            "denied: requested access to the resource is denied"
        );
        assert_eq!(e.first_full().map(|e| e.code), Some("DENIED"));
    }

    #[test]
    fn a_401_without_registry_errors_is_unauthorized() {
        let mut ex = reply(401, vec![]);
        ex.body_text = Some("Unauthorized".into());
        assert_eq!(
            client_error(&ex).all(),
            "unauthorized: authentication required"
        );
        // The OAuth shape is not a registry error to the client.
        let mut o = err("invalid_grant", "bad password", false);
        o.shape = BodyShape::OAuth;
        let ex = reply(401, vec![o]);
        assert_eq!(
            client_error(&ex).all(),
            "unauthorized: authentication required"
        );
    }

    #[test]
    fn the_details_shape_is_named_by_the_status() {
        let mut d = err("", "Application not registered with AAD.", false);
        d.shape = BodyShape::Details;
        let ex = reply(401, vec![d]);
        assert_eq!(
            client_error(&ex).all(),
            "unauthorized: Application not registered with AAD."
        );
    }

    #[test]
    fn server_errors_are_the_status_line() {
        let ex = reply(503, vec![]);
        assert_eq!(
            client_error(&ex).all(),
            "received unexpected HTTP status: 503 Service Unavailable"
        );
    }

    #[test]
    fn other_bodies_are_only_expected() {
        let mut ex = reply(403, vec![]);
        ex.body_text = Some("Forbidden by policy".into());
        assert!(!client_error(&ex).exact);
    }

    #[test]
    fn alerts_in_go_words() {
        assert_eq!(alert_text("handshake_failure"), "handshake failure");
        assert_eq!(alert_text("unknown_ca"), "unknown certificate authority");
        assert_eq!(
            alert_text("protocol_version"),
            "protocol version not supported"
        );
    }
}
