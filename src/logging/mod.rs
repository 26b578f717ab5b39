//! The log sink: a tracing layer that writes records as JSON lines (or a readable form for
//! people on a terminal) to standard output or to a file that is reopened on SIGHUP.
//!
//! The proxy never waits for the log. Lines go through a bounded channel to one writer thread;
//! when the channel is full a line is dropped and counted, and the count is reported in a later
//! line. A failing sink (disk full, directory removed) is counted and retried, never fatal: it
//! gets whole lines or none, and the lines it lost are counted and reported the same way.

mod layer;
mod pretty;
mod sink;

pub use layer::LogLayer;

use crate::config::LogConfig;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Environment variable holding an EnvFilter-style filter (`info`, `warn,regdoc=debug`) for
/// diagnostic events. Records are never filtered by it.
pub const FILTER_ENV: &str = "REGDOC_LOG";

/// Lines that may wait for the writer before new ones are dropped. Large enough to absorb a
/// burst of failures (each a few hundred bytes), small enough to bound memory to a few MB.
const CHANNEL_LINES: usize = 8192;

/// How long [`LogHandle::flush`] waits for the writer before giving up.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log file could not be opened at start-up (later failures are counted, not fatal).
    #[error("cannot open log file {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The `REGDOC_LOG` filter does not parse.
    #[error("{FILTER_ENV}={spec:?}: {reason}")]
    Filter { spec: String, reason: String },
    /// A global tracing subscriber was already installed.
    #[error("cannot install the log subscriber: {0}")]
    Install(String),
    /// The writer thread could not be started.
    #[error("cannot start the log writer thread: {0}")]
    Thread(std::io::Error),
    /// The writer did not confirm a flush in time (it is stuck on a blocked sink).
    #[error("log writer did not flush within {0:?}")]
    FlushTimeout(Duration),
    /// The writer thread is gone; nothing more can be written.
    #[error("log writer thread has stopped")]
    WriterGone,
}

/// Counters and requests shared by the layer, the writer and the handle.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Lines dropped because the channel was full (or the writer gone).
    pub(crate) dropped: AtomicU64,
    /// Lines the sink refused (disk full, directory removed): never partly written.
    pub(crate) lost: AtomicU64,
    /// Failed opens and writes of the sink.
    pub(crate) errors: AtomicU64,
    /// Lines written to the sink.
    pub(crate) written: AtomicU64,
    /// Set by [`LogHandle::reopen`]; the writer reopens the file before its next write.
    pub(crate) reopen: AtomicBool,
}

/// What the layer and the handle send to the writer thread.
pub(crate) enum Msg {
    /// A finished line.
    Line(String),
    /// A record's JSON, formatted by the writer (pretty form) so the proxy does not parse it.
    Record { kind: Option<String>, json: String },
    /// Write out everything buffered (headed by any loss report), then answer.
    Flush(SyncSender<()>),
    /// Nothing to write; look at the reopen request.
    Wake,
}

/// Control of the running sink: reopen the file, flush, read the counters. Cheap to clone.
/// Dropping a handle flushes (bounded wait).
#[derive(Clone)]
pub struct LogHandle {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LogHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogHandle")
            .field("written", &self.written())
            .field("dropped", &self.dropped())
            .field("lost", &self.lost())
            .field("errors", &self.errors())
            .finish()
    }
}

impl LogHandle {
    /// Ask the writer to reopen the log file (after logrotate renamed it). Never blocks: it takes
    /// effect before the next line is written. A no-op for standard output.
    pub fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::SeqCst);
        // A full channel means the writer is busy and will see the flag soon anyway.
        let _ = self.tx.try_send(Msg::Wake);
    }

    /// Wait until every line sent so far is written and flushed, at most two seconds.
    pub fn flush(&self) -> Result<(), LogError> {
        let deadline = Instant::now() + FLUSH_WAIT;
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        let mut msg = Msg::Flush(ack_tx);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return Err(LogError::WriterGone),
                Err(TrySendError::Full(m)) => {
                    if Instant::now() >= deadline {
                        return Err(LogError::FlushTimeout(FLUSH_WAIT));
                    }
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match ack_rx.recv_timeout(left) {
            Ok(()) => Ok(()),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(LogError::FlushTimeout(FLUSH_WAIT)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(LogError::WriterGone),
        }
    }

    /// Lines dropped so far because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Lines lost so far because the sink could not take them (disk full, directory removed).
    pub fn lost(&self) -> u64 {
        self.shared.lost.load(Ordering::Relaxed)
    }

    /// Sink failures (open or write) so far.
    pub fn errors(&self) -> u64 {
        self.shared.errors.load(Ordering::Relaxed)
    }

    /// Lines written to the sink so far.
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }
}

impl Drop for LogHandle {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// The filter for diagnostic (non-record) events: `spec` in EnvFilter syntax, `info` when
/// absent. Records on [`crate::record::TARGET`] always pass.
pub fn filter(spec: Option<&str>) -> Result<EnvFilter, LogError> {
    let spec = spec
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("info");
    let bad = |reason: String| LogError::Filter {
        spec: spec.to_string(),
        reason,
    };
    let always = format!("{}=trace", crate::record::TARGET)
        .parse()
        .map_err(|e| bad(format!("{e}")))?;
    EnvFilter::builder()
        .parse(spec)
        .map(|f| f.add_directive(always))
        .map_err(|e| bad(e.to_string()))
}

/// Build the layer and its handle without installing anything (tests and embedding). Opens the
/// log file now, so a wrong path is refused at start-up rather than discovered later.
pub fn build(cfg: &LogConfig) -> Result<(LogLayer, LogHandle), LogError> {
    let shared = Arc::new(Shared::default());
    let target = match &cfg.file {
        Some(path) => sink::Target::File(path.clone()),
        None => sink::Target::Stdout,
    };
    let writer = sink::Writer::open(target, cfg.format, shared.clone())?;
    let (tx, rx) = mpsc::sync_channel(CHANNEL_LINES);
    std::thread::Builder::new()
        .name("regdoc-log".into())
        .spawn(move || writer.run(rx))
        .map_err(LogError::Thread)?;
    let layer = LogLayer::new(tx.clone(), shared.clone(), cfg.format);
    Ok((layer, LogHandle { tx, shared }))
}

/// Install the global subscriber: the record layer, filtered by `REGDOC_LOG` (default `info`)
/// for everything but records.
pub fn init(cfg: &LogConfig) -> Result<LogHandle, LogError> {
    let spec = std::env::var(FILTER_ENV).ok();
    let filter = filter(spec.as_deref())?;
    let (layer, handle) = build(cfg)?;
    tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init()
        .map_err(|e| LogError::Install(e.to_string()))?;
    Ok(handle)
}

/// `2026-11-23T18:00:00.123Z` for the current time.
pub(crate) fn timestamp_now() -> String {
    const FMT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(FMT)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00.000Z"))
}

#[cfg(test)]
mod tests;
