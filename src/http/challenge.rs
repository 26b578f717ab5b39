//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1, distribution's token auth).

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
}
