//! A global budget of records per second for what failures write.
//!
//! The aggregator folds repeats of one failure, but a client chooses most of a failure's key
//! (its address on a large network, the target it names): thousands of distinct failures a
//! second are still thousands of lines. The budget bounds them whatever their keys; what it
//! leaves out is counted, and a `log` line says how much (see
//! [`super::failures::FailureLog::report_overflow`]).
//!
//! One-second windows, not a token bucket: the bound an operator reads in the configuration is
//! the most lines any second of the log holds.

use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Window {
    start: Instant,
    used: u64,
}

/// Records allowed per second. `Send + Sync`.
#[derive(Debug)]
pub struct Budget {
    per_second: u64,
    window: Mutex<Window>,
}

impl Budget {
    pub fn new(per_second: u64, now: Instant) -> Self {
        Budget {
            per_second,
            window: Mutex::new(Window {
                start: now,
                used: 0,
            }),
        }
    }

    /// The configured records per second.
    pub fn per_second(&self) -> u64 {
        self.per_second
    }

    /// Whether one more record may be written at `now`; it is counted against the budget if so.
    pub fn take(&self, now: Instant) -> bool {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if now.saturating_duration_since(w.start) >= WINDOW {
            w.start = now;
            w.used = 0;
        }
        if w.used < self.per_second {
            w.used += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holds_at_most_the_budget_and_the_next_one_starts_afresh() {
        let t0 = Instant::now();
        let b = Budget::new(3, t0);
        let at = |ms| t0 + Duration::from_millis(ms);
        assert!(b.take(at(0)));
        assert!(b.take(at(10)));
        assert!(b.take(at(999)));
        assert!(!b.take(at(999)));
        assert!(!b.take(at(999)));
        assert!(b.take(at(1000)), "a new window");
        assert!(b.take(at(1500)));
        assert!(b.take(at(1999)));
        assert!(!b.take(at(1999)));
        // A clock that did not move on (or went back) stays in the window.
        assert!(!b.take(t0));
    }
}
