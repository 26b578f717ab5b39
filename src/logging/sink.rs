//! The writer thread: owns the output, batches writes, reopens on request and survives a
//! failing disk.
//!
//! The sink gets whole lines or nothing. A batch that does not fit (a full disk) is cut back to
//! its last whole line, the lines that did not make it are counted as lost, and the next batch
//! that reaches the sink opens with one `log` line saying how many were lost (and dropped, when
//! the writer fell behind). Standard output cannot be cut back: there a cut line is ended with
//! a newline before the next one, so that the fragment stands alone and no two lines are glued.

use super::layer::LogEvent;
use super::{pretty, LogError, Msg, Shared};
use crate::config::LogFormat;
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// At most one complaint about a failing sink per this interval on stderr.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// How long the writer waits after the first line of a burst before writing. A line reaches
/// the log at most this late; `tail -f` readers do not notice.
const COALESCE: Duration = Duration::from_millis(10);

/// How often an idle writer checks that the log path still names the file it writes to.
const IDENTITY_CHECK_EVERY: Duration = Duration::from_secs(1);

/// A batch is written once it holds this much, so that memory stays bounded in a burst.
const BATCH_BYTES: usize = 64 * 1024;

/// Where lines go.
#[derive(Clone)]
pub(crate) enum Target {
    Stdout,
    File(PathBuf),
    /// An output made by the test, opened afresh after each failure as a file would be.
    #[cfg(test)]
    Fake(Arc<OpenFn>),
}

/// Opens a test's [`Output`] (one that fails as a full disk does).
#[cfg(test)]
pub(crate) type OpenFn = dyn Fn() -> io::Result<Box<dyn Output>> + Send + Sync;

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Stdout => f.write_str("standard output"),
            Target::File(p) => write!(f, "{}", p.display()),
            #[cfg(test)]
            Target::Fake(_) => f.write_str("test output"),
        }
    }
}

/// Where a batch of lines goes. The writer needs more than [`Write`]: after a failed write it
/// cuts a partial line back off, so that the next line does not start inside it.
pub(crate) trait Output: Send {
    /// Write some of `buf`, as [`Write::write`].
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;
    fn flush(&mut self) -> io::Result<()>;
    /// Remove the last `tail` bytes written (the start of a line that did not fit). An output
    /// that cannot (a pipe, a terminal) fails.
    fn unwrite(&mut self, tail: u64) -> io::Result<()>;
    /// Does what is already there end inside a line (a crash, or a cut that could not be taken
    /// back)? `None` when the output cannot tell.
    fn ends_mid_line(&mut self) -> Option<bool>;
}

impl Output for File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Write::write(self, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Nothing is buffered here: the batch is the buffer.
        Ok(())
    }

    fn unwrite(&mut self, tail: u64) -> io::Result<()> {
        // The file is opened for appending and this thread is its only writer, so its end is
        // where the partial line ends.
        let len = self.metadata()?.len();
        self.set_len(len.saturating_sub(tail))
    }

    fn ends_mid_line(&mut self) -> Option<bool> {
        use std::os::unix::fs::FileExt;
        let len = self.metadata().ok()?.len();
        if len == 0 {
            return Some(false);
        }
        let mut last = [0u8; 1];
        // Fails on a file opened without read access (see `open_file`): then nobody knows.
        match self.read_at(&mut last, len - 1) {
            Ok(1) => Some(last[0] != b'\n'),
            _ => None,
        }
    }
}

/// Standard output, written through std's handle so that lines do not interleave with other
/// writers of it. Cannot be cut back.
struct StdoutOutput;

impl Output for StdoutOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stdout().lock().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().lock().flush()
    }

    fn unwrite(&mut self, _tail: u64) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    fn ends_mid_line(&mut self) -> Option<bool> {
        None
    }
}

/// Lines that never reached the sink, by why. Each kind is reported in a `log` line of its own
/// (count since the last report and total) at the head of the next batch the sink takes.
#[derive(Debug, Clone, Copy)]
enum Loss {
    /// The channel was full: the writer fell behind.
    Dropped,
    /// The sink refused them (disk full, directory removed).
    Lost,
}

impl Loss {
    const ALL: [Loss; 2] = [Loss::Dropped, Loss::Lost];

    fn total(self, shared: &Shared) -> u64 {
        match self {
            Loss::Dropped => shared.dropped.load(Ordering::Relaxed),
            Loss::Lost => shared.lost.load(Ordering::Relaxed),
        }
    }

    /// The report's message and the names of its two counts.
    fn words(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Loss::Dropped => (
                "log lines dropped because the log writer fell behind",
                "dropped",
                "dropped_total",
            ),
            Loss::Lost => (
                "log lines lost because the log could not be written",
                "lost",
                "lost_total",
            ),
        }
    }
}

pub(crate) struct Writer {
    target: Target,
    format: LogFormat,
    /// `None` after a failure: the next write tries to open the sink again.
    out: Option<Box<dyn Output>>,
    /// `(device, inode)` of the open log file, to notice it was removed or replaced.
    identity: Option<(u64, u64)>,
    last_identity_check: Instant,
    shared: Arc<Shared>,
    /// Whole lines not yet written: a batch is written at once, and whole or cut back.
    pending: Vec<u8>,
    /// Where each line in `pending` ends, to tell how many a failed write took whole.
    line_ends: Vec<usize>,
    /// Per [`Loss`], the total already reported in a line that reached the sink.
    reported: [u64; 2],
    /// Why lines were last lost, for the report.
    last_error: Option<String>,
    /// A line was cut short in an output that could not take it back: the next batch must
    /// start on a line of its own.
    torn: bool,
    last_warning: Option<Instant>,
}

type Opened = (Box<dyn Output>, Option<(u64, u64)>);

fn open_target(target: &Target) -> io::Result<Opened> {
    Ok(match target {
        Target::Stdout => (Box::new(StdoutOutput), None),
        Target::File(path) => {
            let f = open_file(path)?;
            let meta = f.metadata()?;
            (Box::new(f), Some((meta.dev(), meta.ino())))
        }
        #[cfg(test)]
        Target::Fake(open) => (open()?, None),
    })
}

/// Open the log for appending, and for reading when allowed: reading its last byte tells
/// whether an earlier run left a line unfinished (see [`Output::ends_mid_line`]). A file that
/// may be appended to but not read is still used, without that check.
fn open_file(path: &Path) -> io::Result<File> {
    let mut append = OpenOptions::new();
    append.create(true).append(true);
    match append.clone().read(true).open(path) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => append.open(path),
        opened => opened,
    }
}

impl Writer {
    /// Open the sink once, so a wrong path is an error at start-up.
    pub(crate) fn open(
        target: Target,
        format: LogFormat,
        shared: Arc<Shared>,
    ) -> Result<Writer, LogError> {
        let (out, identity) = match open_target(&target) {
            Ok(opened) => opened,
            Err(source) => {
                return Err(LogError::Open {
                    path: match &target {
                        Target::File(p) => p.clone(),
                        _ => PathBuf::from("-"),
                    },
                    source,
                })
            }
        };
        let mut w = Writer {
            target,
            format,
            out: None,
            identity,
            last_identity_check: Instant::now(),
            shared,
            pending: Vec::new(),
            line_ends: Vec::new(),
            reported: [0; 2],
            last_error: None,
            torn: false,
            last_warning: None,
        };
        if let Err(e) = w.adopt(out) {
            // The first batch opens the sink again and repairs it then.
            w.failed("cannot write", &e);
        }
        Ok(w)
    }

    /// The thread body: runs until every sender is gone.
    pub(crate) fn run(mut self, rx: Receiver<Msg>) {
        loop {
            // Block only when everything is written; otherwise drain what is queued and write
            // when the queue is empty, so a burst becomes one write.
            let msg = if !self.pending.is_empty() {
                match rx.try_recv() {
                    Ok(m) => m,
                    Err(TryRecvError::Empty) => {
                        self.flush();
                        self.check_identity(false);
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(m) => {
                        // Let a burst gather before writing it: while this thread sleeps,
                        // senders queue without waking it, so a busy proxy pays one wake-up and
                        // one write per interval instead of a thread switch per line. A flush
                        // request is served at once.
                        if matches!(m, Msg::Line(_) | Msg::Record { .. }) {
                            std::thread::sleep(COALESCE);
                        }
                        m
                    }
                    Err(_) => break,
                }
            };
            self.check_reopen();
            match msg {
                Msg::Line(line) => {
                    self.check_identity(false);
                    self.write_line(&line);
                }
                Msg::Record { kind, json } => {
                    self.check_identity(false);
                    self.write_line(&pretty::record(kind.as_deref(), &json));
                }
                Msg::Flush(ack) => {
                    self.flush();
                    self.check_identity(true);
                    let _ = ack.send(());
                }
                Msg::Wake => {}
            }
        }
        self.flush();
    }

    fn check_reopen(&mut self) {
        if self.shared.reopen.swap(false, Ordering::SeqCst) {
            if let Target::File(_) = self.target {
                self.flush();
                // Drop the old handle (the renamed file) and open the path afresh.
                self.out = None;
                self.ensure_open();
            }
        }
    }

    /// If the log path no longer names the open file (removed, or renamed without a SIGHUP),
    /// drop the handle so the next write creates the file afresh. Lines written to a removed
    /// file would otherwise vanish without any error. Rate-limited unless `now`.
    fn check_identity(&mut self, now: bool) {
        let Target::File(path) = &self.target else {
            return;
        };
        if self.out.is_none() || (!now && self.last_identity_check.elapsed() < IDENTITY_CHECK_EVERY)
        {
            return;
        }
        self.last_identity_check = Instant::now();
        let current = std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
        if current != self.identity {
            self.flush();
            self.out = None;
            self.identity = None;
        }
    }

    /// Start writing to a freshly opened output. A line left unfinished in it (by a crash, or
    /// by a cut this writer could not take back) is ended first, so that the next line starts
    /// on a line of its own; if even that fails, the output is not used.
    fn adopt(&mut self, mut out: Box<dyn Output>) -> io::Result<()> {
        if out.ends_mid_line().unwrap_or(self.torn) {
            if let (_, Some(e)) = write_all(out.as_mut(), b"\n") {
                return Err(e);
            }
        }
        self.torn = false;
        self.out = Some(out);
        Ok(())
    }

    fn ensure_open(&mut self) -> bool {
        if self.out.is_some() {
            return true;
        }
        let (out, identity) = match open_target(&self.target) {
            Ok(opened) => opened,
            Err(e) => {
                self.failed("cannot open", &e);
                return false;
            }
        };
        self.identity = identity;
        if let Err(e) = self.adopt(out) {
            self.failed("cannot write", &e);
            return false;
        }
        true
    }

    /// Queue a line for the next batch.
    fn write_line(&mut self, line: &str) {
        self.pending.extend_from_slice(line.as_bytes());
        self.pending.push(b'\n');
        self.line_ends.push(self.pending.len());
        if self.pending.len() >= BATCH_BYTES {
            self.flush();
        }
    }

    /// Write the batch, headed by the reports of lines lost so far. The sink gets whole lines
    /// only: when a write fails part-way (a full disk), the partial line is cut back off and
    /// the lines that did not make it are counted as lost, for a later report.
    fn flush(&mut self) {
        let (reports, report_ends, reported) = self.loss_reports();
        if self.pending.is_empty() && reports.is_empty() {
            return;
        }
        let lines = self.line_ends.len();
        let mut batch = std::mem::take(&mut self.pending);
        let mut ends = std::mem::take(&mut self.line_ends);
        if !reports.is_empty() {
            // Rare (only after a loss): shifting the batch is cheaper than a second write.
            let shift = reports.len();
            batch.splice(0..0, reports);
            ends = report_ends
                .into_iter()
                .chain(ends.into_iter().map(|e| e + shift))
                .collect();
        }
        let heads = ends.len() - lines;
        let (done, err) = if !self.ensure_open() {
            (0, None)
        } else if let Some(out) = self.out.as_mut() {
            let (n, err) = write_all(out.as_mut(), &batch);
            let done = ends.partition_point(|&e| e <= n);
            let whole = done.checked_sub(1).map_or(0, |i| ends[i]);
            if err.is_some() && n > whole && out.unwrite((n - whole) as u64).is_err() {
                // The partial line stays: `adopt` ends it when the sink is opened again.
                self.torn = true;
            }
            (done, err)
        } else {
            (0, None)
        };
        for (i, total) in reported.into_iter().take(done.min(heads)) {
            self.reported[i] = total;
        }
        let written = done.saturating_sub(heads);
        self.shared
            .written
            .fetch_add(written as u64, Ordering::Relaxed);
        let lost = (lines - written) as u64;
        if lost > 0 {
            self.shared.lost.fetch_add(lost, Ordering::Relaxed);
        }
        if let Some(e) = err {
            // The next batch opens the sink again.
            self.out = None;
            self.failed("cannot write", &e);
        }
        // Keep the allocation for the next batch unless a burst grew it.
        batch.clear();
        if batch.capacity() <= 2 * BATCH_BYTES {
            self.pending = batch;
        }
        ends.clear();
        self.line_ends = ends;
    }

    /// One `log` line per kind of loss not yet reported: the lines, where each ends, and what
    /// each reports.
    fn loss_reports(&self) -> (Vec<u8>, Vec<usize>, Vec<(usize, u64)>) {
        let mut text = Vec::new();
        let mut ends = Vec::new();
        let mut reported = Vec::new();
        for (i, loss) in Loss::ALL.into_iter().enumerate() {
            let total = loss.total(&self.shared);
            if total <= self.reported[i] {
                continue;
            }
            let new = total - self.reported[i];
            let (message, count, count_total) = loss.words();
            let mut fields = vec![
                (count.to_string(), Value::from(new)),
                (count_total.to_string(), Value::from(total)),
            ];
            if let (Loss::Lost, Some(e)) = (loss, &self.last_error) {
                fields.push(("error".to_string(), Value::from(e.as_str())));
            }
            let ev = LogEvent {
                level: "warn",
                target: "regdoc::logging".to_string(),
                message: message.to_string(),
                fields,
            };
            let line = match self.format {
                LogFormat::Json => ev.to_json_line(&super::timestamp_now()),
                LogFormat::Pretty => pretty::log(&ev),
            };
            text.extend_from_slice(line.as_bytes());
            text.push(b'\n');
            ends.push(text.len());
            reported.push((i, total));
        }
        (text, ends, reported)
    }

    /// Count a sink failure and complain on stderr, at most once per minute. Never panics:
    /// stderr may be broken too.
    fn failed(&mut self, what: &str, err: &io::Error) {
        self.last_error = Some(err.to_string());
        let n = self.shared.errors.fetch_add(1, Ordering::Relaxed) + 1;
        let now = Instant::now();
        if self
            .last_warning
            .is_some_and(|t| now.duration_since(t) < WARN_EVERY)
        {
            return;
        }
        self.last_warning = Some(now);
        let _ = writeln!(
            io::stderr(),
            "regdoc: log sink {}: {what}: {err} ({n} sink errors so far; lines are lost until it works again)",
            self.target
        );
    }
}

/// Write all of `buf`; how much was written, and the error that stopped it if any.
fn write_all(out: &mut dyn Output, buf: &[u8]) -> (usize, Option<io::Error>) {
    let mut n = 0;
    while n < buf.len() {
        match out.write(&buf[n..]) {
            Ok(0) => return (n, Some(io::ErrorKind::WriteZero.into())),
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (n, Some(e)),
        }
    }
    (n, out.flush().err())
}

#[cfg(test)]
#[path = "sink_tests.rs"]
mod tests;
