//! The readable form: one line per record for a person watching a terminal.
//!
//! `18:00:00 FAIL  conn=12 myreg.azurecr.io:443 dns: name does not resolve → registry_name (high): …  fix: …`
//! `18:00:01 conn  conn=13 myreg.azurecr.io:443 ok 12.3 MB↑ 1.2 GB↓ 5.1s`
//! `18:00:01 req   conn=13 myreg.azurecr.io:443 GET /v2/app/blobs/sha256:… blob 307 → myreg.westeurope.data.azurecr.io 12ms`
//!
//! Times are UTC, like the JSON timestamps they come from.

use super::layer::LogEvent;
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// Phases a connection record reports as `{outcome, ms}` objects, in connection order.
const PHASES: [&str; 4] = ["dns", "connect", "upstream_proxy", "tls"];

/// Close reasons that are the ordinary end of a connection and not worth a word.
const NORMAL_CLOSE: [&str; 5] = ["client_closed", "server_closed", "closed", "eof", "done"];

/// Format a record given as its JSON text. Unparseable JSON is shown as it is.
pub(crate) fn record(kind: Option<&str>, json: &str) -> String {
    let obj = match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(m)) => m,
        _ => return format!("{} {:<5} {json}", clock_now(), kind.unwrap_or("rec")),
    };
    let kind = kind
        .or_else(|| obj.get("event").and_then(Value::as_str))
        .unwrap_or("rec");
    let time = clock_of(&obj);
    match kind {
        "failure" => failure(&time, &obj),
        "connection" => connection(&time, &obj),
        "request" => request(&time, &obj),
        "failure_summary" => generic(&time, "again", &obj),
        other => generic(&time, other, &obj),
    }
}

/// Format a diagnostic event.
pub(crate) fn log(ev: &LogEvent) -> String {
    let mut out = format!(
        "{} {:<5} {}: {}",
        clock_now(),
        ev.level.to_ascii_uppercase(),
        ev.target,
        ev.message
    );
    for (k, v) in &ev.fields {
        let _ = write!(out, " {k}={}", scalar(v));
    }
    out
}

fn failure(time: &str, o: &Map<String, Value>) -> String {
    let mut out = format!("{time} FAIL ");
    push_conn(&mut out, o);
    let phase = text(o, "phase").unwrap_or_else(|| "?".into());
    let error = text(o, "error").unwrap_or_default();
    let _ = write!(out, " {phase}: {error}");
    if let Some(cause) = text(o, "cause") {
        let _ = write!(out, " → {cause}");
        if let Some(c) = text(o, "confidence") {
            let _ = write!(out, " ({c})");
        }
        if let Some(title) = text(o, "cause_title") {
            let _ = write!(out, ": {title}");
        }
    }
    if let Some(remedy) = text(o, "remedy") {
        let _ = write!(out, "  fix: {remedy}");
    }
    out
}

fn connection(time: &str, o: &Map<String, Value>) -> String {
    let mut out = format!("{time} conn ");
    push_conn(&mut out, o);
    // The first phase that did not end `ok` is the outcome; all ok (or none known) is `ok`.
    let phases = o.get("phases").and_then(Value::as_object).unwrap_or(o);
    let bad = PHASES.iter().find_map(|p| {
        let outcome = phases.get(*p)?.get("outcome")?.as_str()?;
        (outcome != "ok" && outcome != "skipped").then(|| format!("{p} {outcome}"))
    });
    let _ = write!(out, " {}", bad.as_deref().unwrap_or("ok"));
    if let Some(up) = o.get("bytes_up").and_then(Value::as_u64) {
        let _ = write!(out, " {}↑", bytes(up));
    }
    if let Some(down) = o.get("bytes_down").and_then(Value::as_u64) {
        let _ = write!(out, " {}↓", bytes(down));
    }
    // Records write durations as fractional milliseconds.
    if let Some(ms) = o.get("duration_ms").and_then(Value::as_f64) {
        let _ = write!(out, " {}", seconds(ms.max(0.0).round() as u64));
    }
    if let Some(reason) = text(o, "close_reason") {
        if !NORMAL_CLOSE.contains(&reason.as_str()) {
            let _ = write!(out, " closed: {reason}");
        }
    }
    out
}

/// One exchange: method, path, class, the status (the server's, or regdoc's own marked as
/// such), the redirect's host, the time, and the cause when it was a failure.
fn request(time: &str, o: &Map<String, Value>) -> String {
    let mut out = format!("{time} req  ");
    push_conn(&mut out, o);
    let http = o.get("http").and_then(Value::as_object);
    let field = |k: &str| http.and_then(|h| text(h, k));
    let method = field("method").unwrap_or_else(|| "?".into());
    let path = text(o, "path").unwrap_or_default();
    let _ = write!(out, " {method} {path}");
    if let Some(class) = field("path_class") {
        let _ = write!(out, " {class}");
    }
    let server = http.and_then(|h| h.get("status")).and_then(Value::as_u64);
    match (o.get("reply_status").and_then(Value::as_u64), server) {
        (Some(own), _) => {
            let _ = write!(out, " {own} (regdoc)");
        }
        (None, Some(s)) => {
            let _ = write!(out, " {s}");
        }
        (None, None) => {}
    }
    if let Some(to) = text(o, "location_host") {
        let _ = write!(out, " → {to}");
    }
    if let Some(ms) = o.get("duration_ms").and_then(Value::as_f64) {
        let _ = write!(out, " {}", seconds(ms.round() as u64));
    }
    if let Some(cause) = text(o, "cause") {
        let _ = write!(out, " ✗ {cause}");
    }
    out
}

/// Records without a dedicated form: every field but the time and kind as `key=value`.
fn generic(time: &str, label: &str, o: &Map<String, Value>) -> String {
    let mut out = format!("{time} {label:<5}");
    for (k, v) in o {
        if k == "timestamp" || k == "event" {
            continue;
        }
        let _ = write!(out, " {k}={}", scalar(v));
    }
    out
}

fn push_conn(out: &mut String, o: &Map<String, Value>) {
    if let Some(id) = o.get("conn_id") {
        let _ = write!(out, " conn={}", scalar(id));
    }
    if let Some(t) = text(o, "target") {
        let _ = write!(out, " {t}");
    }
}

fn text(o: &Map<String, Value>, key: &str) -> Option<String> {
    match o.get(key)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Strings bare, everything else as JSON.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `HH:MM:SS` from an RFC 3339 `timestamp` field, or the current time.
fn clock_of(o: &Map<String, Value>) -> String {
    o.get("timestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.split_once('T'))
        .and_then(|(_, rest)| rest.get(..8))
        .filter(|c| {
            c.as_bytes()
                .iter()
                .all(|b| b.is_ascii_digit() || *b == b':')
        })
        .map(str::to_string)
        .unwrap_or_else(clock_now)
}

fn clock_now() -> String {
    const FMT: &[time::format_description::FormatItem<'static>] =
        time::macros::format_description!("[hour]:[minute]:[second]");
    time::OffsetDateTime::now_utc()
        .format(FMT)
        .unwrap_or_else(|_| "--:--:--".into())
}

/// Decimal units, one decimal: `950 B`, `12.3 MB`, `1.2 GB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 999.95 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// `850ms` below a second, `5.1s` below a minute, `3m07s` beyond.
pub(crate) fn seconds(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}
