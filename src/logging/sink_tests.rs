//! The writer against outputs that fail as a full disk does: a write takes what fits, then the
//! next one fails with ENOSPC (what write(2) does on a filesystem that fills).

use super::*;
use crate::logging::LogHandle;
use std::sync::{mpsc, Mutex};

/// A disk with room for `room` bytes, shared by every output opened on it, as a file reopened
/// on a full filesystem is.
struct Disk {
    data: Vec<u8>,
    room: usize,
    /// A file can be cut back; a pipe (standard output) cannot.
    can_cut: bool,
}

struct FakeOutput(Arc<Mutex<Disk>>);

fn disk(d: &Arc<Mutex<Disk>>) -> std::sync::MutexGuard<'_, Disk> {
    d.lock().unwrap_or_else(|p| p.into_inner())
}

impl Output for FakeOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut d = disk(&self.0);
        let free = d.room.saturating_sub(d.data.len());
        if free == 0 && !buf.is_empty() {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let n = free.min(buf.len());
        d.data.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn unwrite(&mut self, tail: u64) -> io::Result<()> {
        let mut d = disk(&self.0);
        if !d.can_cut {
            return Err(io::ErrorKind::Unsupported.into());
        }
        let len = d.data.len().saturating_sub(tail as usize);
        d.data.truncate(len);
        Ok(())
    }

    fn ends_mid_line(&mut self) -> Option<bool> {
        let d = disk(&self.0);
        d.can_cut
            .then(|| d.data.last().is_some_and(|&b| b != b'\n'))
    }
}

fn fake_disk(room: usize, can_cut: bool) -> Arc<Mutex<Disk>> {
    Arc::new(Mutex::new(Disk {
        data: Vec::new(),
        room,
        can_cut,
    }))
}

fn fake_writer(d: &Arc<Mutex<Disk>>) -> (Writer, Arc<Shared>) {
    let d = d.clone();
    let open: Arc<OpenFn> =
        Arc::new(move || Ok(Box::new(FakeOutput(d.clone())) as Box<dyn Output>));
    let shared = Arc::new(Shared::default());
    let mut w = Writer::open(Target::Fake(open), LogFormat::Json, shared.clone())
        .unwrap_or_else(|e| panic!("open: {e}"));
    // As if a complaint had just gone out: a sweep of hundreds of writers would otherwise
    // fill the test's stderr.
    w.last_warning = Some(Instant::now());
    (w, shared)
}

/// Every test line is this long, newline included.
const LINE: usize = 100;

fn line(i: usize) -> String {
    let head = format!("{{\"event\":\"test\",\"i\":{i},\"pad\":\"");
    let pad = "x".repeat(LINE - 1 - head.len() - 2);
    format!("{head}{pad}\"}}")
}

fn lines(range: std::ops::Range<usize>) -> String {
    range.map(|i| format!("{}\n", line(i))).collect()
}

/// What the disk holds, as text (the tests write only ASCII).
fn held(d: &Arc<Mutex<Disk>>) -> String {
    String::from_utf8_lossy(&disk(d).data).into_owned()
}

/// The disk's content as lines, each checked to be one JSON object.
fn json_lines(data: &[u8]) -> Vec<Value> {
    assert!(
        data.is_empty() || data.ends_with(b"\n"),
        "ends inside a line"
    );
    data.split_inclusive(|&b| b == b'\n')
        .map(|l| {
            serde_json::from_slice(l).unwrap_or_else(|e| {
                panic!("not one JSON line ({e}): {}", String::from_utf8_lossy(l))
            })
        })
        .collect()
}

fn counts(shared: &Shared) -> (u64, u64) {
    (
        shared.written.load(Ordering::Relaxed),
        shared.lost.load(Ordering::Relaxed),
    )
}

fn assert_loss_report(v: &Value, lost: u64) {
    assert_eq!(v["event"], "log", "{v}");
    assert_eq!(v["level"], "warn", "{v}");
    assert_eq!(v["target"], "regdoc::logging", "{v}");
    assert_eq!(
        v["message"], "log lines lost because the log could not be written",
        "{v}"
    );
    assert_eq!(v["lost"], lost, "{v}");
    assert_eq!(v["lost_total"], lost, "{v}");
    let error = v["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&io::Error::from_raw_os_error(libc::ENOSPC).to_string()),
        "{v}"
    );
}

/// Every size of disk from empty to roomy, so that the disk fills at every byte of a line (and
/// of the loss report): the disk only ever holds whole lines, in order; what did not fit is
/// counted; the first batch that fits once space returns opens with one report of it.
#[test]
fn a_full_disk_gets_whole_lines_only_and_the_loss_is_reported_once_space_returns() {
    const SENT: usize = 6;
    for room in 0..(SENT + 1) * LINE {
        let d = fake_disk(room, true);
        let (mut w, shared) = fake_writer(&d);
        for i in 0..SENT {
            w.write_line(&line(i));
        }
        w.flush();
        let fit = (room / LINE).min(SENT);
        assert_eq!(held(&d), lines(0..fit), "room {room}");
        assert_eq!(counts(&shared), (fit as u64, (SENT - fit) as u64));

        // Still full: a further batch, and a flush with nothing to write (its report does not
        // fit either), leave the disk as it was.
        w.write_line(&line(SENT));
        w.flush();
        w.flush();
        let lost = (SENT + 1 - fit) as u64;
        assert_eq!(held(&d), lines(0..fit), "room {room}");
        assert_eq!(counts(&shared), (fit as u64, lost));
        assert!(shared.errors.load(Ordering::Relaxed) >= 2, "room {room}");

        // Space returns.
        disk(&d).room = usize::MAX;
        w.write_line(&line(100));
        w.flush();
        w.write_line(&line(101));
        w.flush();
        let got = json_lines(&disk(&d).data);
        assert_eq!(got.len(), fit + 3, "room {room}: {got:#?}");
        for (i, v) in got[..fit].iter().enumerate() {
            assert_eq!(v["i"], i, "room {room}");
        }
        assert_loss_report(&got[fit], lost);
        assert_eq!(got[fit + 1]["i"], 100);
        assert_eq!(got[fit + 2]["i"], 101);
        assert_eq!(counts(&shared), (fit as u64 + 2, lost));
    }
}

/// Space that returns a little at a time: a report that does not fit whole is not written, and
/// the one that finally fits counts every loss since the last one that did.
#[test]
fn a_loss_report_that_does_not_fit_is_cut_back_and_counted_later() {
    let d = fake_disk(2 * LINE, true);
    let (mut w, shared) = fake_writer(&d);
    for i in 0..4 {
        w.write_line(&line(i));
    }
    w.flush();
    // Room for one line more, not for the report in front of it: both wait.
    disk(&d).room = 3 * LINE;
    w.write_line(&line(4));
    w.flush();
    assert_eq!(held(&d), lines(0..2));
    assert_eq!(counts(&shared), (2, 3));
    disk(&d).room = usize::MAX;
    w.write_line(&line(5));
    w.flush();
    let got = json_lines(&disk(&d).data);
    assert_eq!(got.len(), 4, "{got:#?}");
    assert_loss_report(&got[2], 3);
    assert_eq!(got[3]["i"], 5);
}

/// An output that cannot be cut back (standard output): the cut line stays, but it is ended
/// before anything else is written, so every other line is whole and none is glued to it.
#[test]
fn a_cut_that_cannot_be_taken_back_is_ended_before_the_next_line() {
    const SENT: usize = 4;
    for room in 0..=(SENT + 1) * LINE {
        let d = fake_disk(room, false);
        let (mut w, shared) = fake_writer(&d);
        for i in 0..SENT {
            w.write_line(&line(i));
        }
        w.flush();
        let fit = (room / LINE).min(SENT);
        let cut = room.min(SENT * LINE) - fit * LINE;
        disk(&d).room = usize::MAX;
        w.write_line(&line(100));
        w.flush();
        let data = disk(&d).data.clone();
        let mut expected = lines(0..fit);
        if cut > 0 {
            expected.push_str(&lines(fit..fit + 1)[..cut]);
            expected.push('\n');
        }
        let whole = expected.len();
        assert_eq!(
            String::from_utf8_lossy(&data[..whole]),
            expected,
            "room {room}"
        );
        let got = json_lines(&data[whole..]);
        assert_eq!(
            got.len(),
            usize::from(fit < SENT) + 1,
            "room {room}: {got:#?}"
        );
        if fit < SENT {
            assert_loss_report(&got[0], (SENT - fit) as u64);
        }
        assert_eq!(got.last().map(|v| v["i"].clone()), Some(Value::from(100)));
        assert_eq!(counts(&shared), (fit as u64 + 1, (SENT - fit) as u64));
    }
}

/// A log that an earlier run left inside a line (killed mid-write) is ended on open, so the
/// first new line is not glued to the fragment.
#[test]
fn a_log_left_inside_a_line_is_ended_on_open() {
    let d = fake_disk(usize::MAX, true);
    disk(&d).data = b"{\"event\":\"connec".to_vec();
    let (mut w, _) = fake_writer(&d);
    w.write_line(&line(0));
    w.flush();
    assert_eq!(held(&d), format!("{{\"event\":\"connec\n{}", lines(0..1)));
}

/// The thread as the proxy runs it: senders never wait, a flush request answers while the
/// disk is full, and the report comes with the first line after space returns.
#[test]
fn the_writer_thread_counts_what_a_full_disk_lost_and_says_so_once_space_returns() {
    let d = fake_disk(2 * LINE + LINE / 2, true);
    let (w, shared) = fake_writer(&d);
    let (tx, rx) = mpsc::sync_channel(64);
    let thread = std::thread::spawn(move || w.run(rx));
    let handle = LogHandle {
        tx: tx.clone(),
        shared: shared.clone(),
    };
    for i in 0..5 {
        tx.try_send(Msg::Line(line(i)))
            .unwrap_or_else(|_| panic!("queue"));
    }
    handle.flush().unwrap_or_else(|e| panic!("flush: {e}"));
    assert_eq!((handle.written(), handle.lost()), (2, 3));
    assert!(handle.errors() >= 1);
    assert_eq!(held(&d), lines(0..2));

    disk(&d).room = usize::MAX;
    tx.try_send(Msg::Line(line(5)))
        .unwrap_or_else(|_| panic!("queue"));
    handle.flush().unwrap_or_else(|e| panic!("flush: {e}"));
    tx.try_send(Msg::Line(line(6)))
        .unwrap_or_else(|_| panic!("queue"));
    drop(tx);
    drop(handle);
    thread
        .join()
        .unwrap_or_else(|_| panic!("writer thread panicked"));
    let got = json_lines(&disk(&d).data);
    assert_eq!(got.len(), 5, "{got:#?}");
    assert_loss_report(&got[2], 3);
    assert_eq!(got[3]["i"], 5);
    assert_eq!(got[4]["i"], 6);
    assert_eq!(counts(&shared), (4, 3));
}
