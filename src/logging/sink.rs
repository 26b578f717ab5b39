//! The writer thread: owns the output, batches writes, reopens on request and survives a
//! failing disk.

use super::layer::LogEvent;
use super::{pretty, LogError, Msg, Shared};
use crate::config::LogFormat;
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
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

/// Where lines go.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Stdout,
    File(PathBuf),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Stdout => f.write_str("standard output"),
            Target::File(p) => write!(f, "{}", p.display()),
        }
    }
}

pub(crate) struct Writer {
    target: Target,
    format: LogFormat,
    /// `None` after a failure: the next write tries to open the sink again.
    out: Option<Box<dyn Write + Send>>,
    /// `(device, inode)` of the open log file, to notice it was removed or replaced.
    identity: Option<(u64, u64)>,
    last_identity_check: Instant,
    shared: Arc<Shared>,
    /// Lines written into `out` but not yet flushed.
    unflushed: bool,
    /// Drop count already reported in a line.
    reported_drops: u64,
    last_warning: Option<Instant>,
}

type Opened = (Box<dyn Write + Send>, Option<(u64, u64)>);

fn open_target(target: &Target) -> io::Result<Opened> {
    Ok(match target {
        Target::Stdout => (
            Box::new(BufWriter::with_capacity(64 * 1024, io::stdout())),
            None,
        ),
        Target::File(path) => {
            let f: File = OpenOptions::new().create(true).append(true).open(path)?;
            let meta = f.metadata()?;
            (
                Box::new(BufWriter::with_capacity(64 * 1024, f)),
                Some((meta.dev(), meta.ino())),
            )
        }
    })
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
                        Target::Stdout => PathBuf::from("-"),
                    },
                    source,
                })
            }
        };
        Ok(Writer {
            target,
            format,
            out: Some(out),
            identity,
            last_identity_check: Instant::now(),
            shared,
            unflushed: false,
            reported_drops: 0,
            last_warning: None,
        })
    }

    /// The thread body: runs until every sender is gone.
    pub(crate) fn run(mut self, rx: Receiver<Msg>) {
        loop {
            // Block only when everything is flushed; otherwise drain what is queued and flush
            // when the queue is empty, so a burst becomes one write.
            let msg = if self.unflushed {
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
                    self.report_drops();
                    self.write_line(&line);
                }
                Msg::Record { kind, json } => {
                    self.check_identity(false);
                    self.report_drops();
                    self.write_line(&pretty::record(kind.as_deref(), &json));
                }
                Msg::Flush(ack) => {
                    self.report_drops();
                    self.flush();
                    self.check_identity(true);
                    let _ = ack.send(());
                }
                Msg::Wake => {}
            }
        }
        self.report_drops();
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

    fn ensure_open(&mut self) -> bool {
        if self.out.is_some() {
            return true;
        }
        match open_target(&self.target) {
            Ok((out, identity)) => {
                self.out = Some(out);
                self.identity = identity;
                true
            }
            Err(e) => {
                self.failed("cannot open", &e);
                false
            }
        }
    }

    fn write_line(&mut self, line: &str) {
        if !self.ensure_open() {
            return;
        }
        let Some(out) = self.out.as_mut() else { return };
        let res = out
            .write_all(line.as_bytes())
            .and_then(|()| out.write_all(b"\n"));
        match res {
            Ok(()) => {
                self.unflushed = true;
                self.shared.written.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.out = None;
                self.unflushed = false;
                self.failed("cannot write", &e);
            }
        }
    }

    fn flush(&mut self) {
        self.unflushed = false;
        let Some(out) = self.out.as_mut() else { return };
        if let Err(e) = out.flush() {
            // The buffered lines are lost; the next write opens the sink again.
            self.out = None;
            self.failed("cannot write", &e);
        }
    }

    /// If lines were dropped since the last report, write one line saying how many.
    fn report_drops(&mut self) {
        let total = self.shared.dropped.load(Ordering::Relaxed);
        if total <= self.reported_drops {
            return;
        }
        let new = total - self.reported_drops;
        self.reported_drops = total;
        let ev = LogEvent {
            level: "warn",
            target: "regdoc::logging".to_string(),
            message: "log lines dropped because the log writer fell behind".to_string(),
            fields: vec![
                ("dropped".to_string(), Value::from(new)),
                ("dropped_total".to_string(), Value::from(total)),
            ],
        };
        let line = match self.format {
            LogFormat::Json => ev.to_json_line(&super::timestamp_now()),
            LogFormat::Pretty => pretty::log(&ev),
        };
        self.write_line(&line);
    }

    /// Count a sink failure and complain on stderr, at most once per minute. Never panics:
    /// stderr may be broken too.
    fn failed(&mut self, what: &str, err: &io::Error) {
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
