//! The records regdoc writes: one `connection` record when a connection ends, one `failure`
//! record the moment a failure happens. Built from observations and findings, emitted through
//! tracing on the `regdoc::record` target, never on the per-byte path.

use serde::Serialize;

/// tracing target of record events; the log layer writes their `json` field as one line.
pub const TARGET: &str = "regdoc::record";

/// Emit a record: `kind` is `connection`, `failure` or `failure_summary`; `value` serialises to
/// a JSON object.
pub fn emit<T: Serialize>(kind: &'static str, value: &T) {
    match serde_json::to_string(value) {
        Ok(json) => tracing::info!(target: TARGET, kind, json = json.as_str()),
        Err(e) => tracing::error!("cannot encode {kind} record: {e}"),
    }
}
