//! regdoc as a child process of a test: killed if the test fails half-way, signalled, its log
//! file polled for a line, its exit awaited. Every wait is bounded.

use std::io::BufRead;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// A running `regdoc run`, killed if the test fails half-way.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn signal(child: &Child, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid touches no memory of ours.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

/// Poll the log at `path` until a line contains `needle`; bounded in time. On timeout the
/// assertion shows the whole log.
pub fn wait_for_line(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(f) = std::fs::File::open(path) {
            let found = std::io::BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .find(|l| l.contains(needle));
            if let Some(l) = found {
                return l;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no line with {needle:?} in {}:\n{}",
            path.display(),
            std::fs::read_to_string(path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "regdoc did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}
