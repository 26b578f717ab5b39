//! The tracing layer: turns events into lines and hands them to the writer without waiting.

use super::{pretty, Msg, Shared};
use crate::config::LogFormat;
use serde_json::Value;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Field names the log line itself uses; an event field with one of these names is written as
/// `field_<name>` so it cannot overwrite them.
const RESERVED: [&str; 5] = ["timestamp", "event", "level", "target", "message"];

/// The layer [`super::init`] installs. Records (target [`crate::record::TARGET`]) are written as
/// their `json` field; every other event becomes an `event: "log"` line.
pub struct LogLayer {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
    format: LogFormat,
}

impl LogLayer {
    pub(crate) fn new(tx: SyncSender<Msg>, shared: Arc<Shared>, format: LogFormat) -> Self {
        LogLayer { tx, shared, format }
    }

    fn send(&self, msg: Msg) {
        // try_send: the proxy must never wait for the disk. A lost line is counted and the count
        // is written later by the writer.
        if self.tx.try_send(msg).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A diagnostic event reduced to what a line needs.
pub(crate) struct LogEvent {
    pub(crate) level: &'static str,
    pub(crate) target: String,
    pub(crate) message: String,
    pub(crate) fields: Vec<(String, Value)>,
}

impl LogEvent {
    /// One JSON object, keys in a fixed order so people can read it too.
    pub(crate) fn to_json_line(&self, timestamp: &str) -> String {
        let mut out = String::with_capacity(128 + self.message.len());
        out.push_str("{\"timestamp\":");
        push_json_str(&mut out, timestamp);
        out.push_str(",\"event\":\"log\",\"level\":");
        push_json_str(&mut out, self.level);
        out.push_str(",\"target\":");
        push_json_str(&mut out, &self.target);
        out.push_str(",\"message\":");
        push_json_str(&mut out, &self.message);
        for (k, v) in &self.fields {
            out.push(',');
            push_json_str(&mut out, k);
            out.push(':');
            let _ = write!(out, "{v}");
        }
        out.push('}');
        out
    }
}

fn push_json_str(out: &mut String, s: &str) {
    // Serialising a &str into JSON cannot fail; the fallback keeps the line valid regardless.
    match serde_json::to_string(s) {
        Ok(q) => out.push_str(&q),
        Err(_) => out.push_str("\"\""),
    }
}

fn level_name(level: &tracing::Level) -> &'static str {
    match *level {
        tracing::Level::ERROR => "error",
        tracing::Level::WARN => "warn",
        tracing::Level::INFO => "info",
        tracing::Level::DEBUG => "debug",
        tracing::Level::TRACE => "trace",
    }
}

/// Fields of a span, kept in its extensions so events inside it carry them (e.g. `conn_id`).
struct SpanFields(Vec<(String, Value)>);

/// Collects an event's or span's fields as JSON values.
#[derive(Default)]
struct FieldVisitor {
    message: Option<String>,
    fields: Vec<(String, Value)>,
}

impl FieldVisitor {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if name == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
            return;
        }
        let key = if RESERVED.contains(&name) {
            format!("field_{name}")
        } else {
            name.to_string()
        };
        self.set(key, value);
    }

    /// A later value (the event over its span, an inner span over an outer one, `on_record` over
    /// `new_span`) replaces an earlier one, so no key appears twice in a line.
    fn set(&mut self, key: String, value: Value) {
        if let Some(slot) = self.fields.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else {
            self.fields.push((key, value));
        }
    }
}

impl Visit for FieldVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        // NaN and infinities are not JSON numbers.
        let v = serde_json::Number::from_f64(value)
            .map(Value::Number)
            .unwrap_or_else(|| Value::from(value.to_string()));
        self.put(field, v);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

/// Picks `kind` and `json` out of a record event.
#[derive(Default)]
struct RecordVisitor {
    kind: Option<String>,
    json: Option<String>,
}

impl Visit for RecordVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "kind" => self.kind = Some(value.to_string()),
            "json" => self.json = Some(value.to_string()),
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // `json = %s` arrives here as Display-through-Debug; `json = s` arrives as a str.
        match field.name() {
            "kind" => self.kind = Some(format!("{value:?}")),
            "json" => self.json = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

impl<S> tracing_subscriber::Layer<S> for LogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut v = FieldVisitor::default();
        attrs.record(&mut v);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(v.fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        let mut v = FieldVisitor {
            message: None,
            fields: ext.remove::<SpanFields>().map(|f| f.0).unwrap_or_default(),
        };
        values.record(&mut v);
        ext.insert(SpanFields(v.fields));
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if meta.target() == crate::record::TARGET {
            let mut r = RecordVisitor::default();
            event.record(&mut r);
            if let Some(json) = r.json {
                self.send(match self.format {
                    LogFormat::Json => Msg::Line(json),
                    LogFormat::Pretty => Msg::Record { kind: r.kind, json },
                });
                return;
            }
            // A record without `json` is a programming slip; it still gets logged below.
        }
        let mut v = FieldVisitor::default();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(f) = span.extensions().get::<SpanFields>() {
                    for (k, val) in &f.0 {
                        v.set(k.clone(), val.clone());
                    }
                }
            }
        }
        event.record(&mut v);
        let ev = LogEvent {
            level: level_name(meta.level()),
            target: meta.target().to_string(),
            message: v.message.unwrap_or_default(),
            fields: v.fields,
        };
        let line = match self.format {
            LogFormat::Json => ev.to_json_line(&super::timestamp_now()),
            LogFormat::Pretty => pretty::log(&ev),
        };
        self.send(Msg::Line(line));
    }
}
