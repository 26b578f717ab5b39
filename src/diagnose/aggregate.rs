//! Counting repeats of the same failure so the log says "this, 240 times" instead of 240 lines.
//!
//! The first failure of a key in an interval is emitted in full; repeats within the interval are
//! only counted, and [`Aggregator::drain_due`] hands back one summary per key whose interval
//! ended with repeats. The key is cause + phase + client address + target ([`key`]), as
//! config/regdoc.toml and README promise: one client's storm of malformed connections is one
//! line and a count, and does not hide another client's first failure. A failure that tells the
//! client something else (another kind of `client_symptom`, or one regdoc knows the client read
//! where the first was only expected: Docker's login after its ping, say) is not a repeat: the
//! key also carries a digest of that ([`variant`]), which summaries do not show. Memory is bounded: beyond `capacity` keys the oldest window is closed early.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Keys tracked at once by default.
pub const DEFAULT_CAPACITY: usize = 4096;

/// What to do with one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// First of its key in the interval: write the full failure record.
    Emit,
    /// A repeat: counted for the next summary.
    Suppress,
}

/// Repeats of one key that were not written, for a `failure_summary` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub key: String,
    /// Suppressed repeats.
    pub count: u64,
    /// First and last suppressed repeat.
    pub first: SystemTime,
    pub last: SystemTime,
}

/// The fields of a key built by [`key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyParts<'a> {
    pub cause: &'a str,
    pub phase: &'a str,
    pub client: &'a str,
    pub target: &'a str,
}

impl Summary {
    /// The fields of a key built by [`key`]. The target comes last: it is the one field a
    /// client chooses (a forwarded request's host), so a `|` in it cannot shift the others.
    pub fn parts(&self) -> KeyParts<'_> {
        let mut it = self.key.splitn(5, '|');
        let cause = it.next().unwrap_or("");
        let phase = it.next().unwrap_or("");
        let client = it.next().unwrap_or("");
        let _variant = it.next();
        KeyParts {
            cause,
            phase,
            client,
            target: it.next().unwrap_or(""),
        }
    }
}

/// The aggregation key of a failure. The client is its address without the port: every
/// connection has a port of its own, and a retrying client is one client. `variant` tells
/// failures apart that the client saw differently ([`variant`]).
pub fn key(cause: &str, phase: &str, client: IpAddr, variant: u64, target: &str) -> String {
    format!("{cause}|{phase}|{client}|{variant:016x}|{target}")
}

/// A digest of what the client was shown (its symptom's message format and basis, known or
/// expected): two failures with the same cause that the client read differently are both
/// written. A retry storm is shown the same thing, so it still folds into one record and a
/// count.
pub fn variant(words: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    // Stable within a run is all it needs: keys never leave the process.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    words.hash(&mut h);
    h.finish()
}

#[derive(Debug)]
struct Window {
    start: SystemTime,
    count: u64,
    first: Option<SystemTime>,
    last: Option<SystemTime>,
}

#[derive(Debug, Default)]
struct State {
    windows: HashMap<String, Window>,
    /// Windows closed before a drain (early eviction or reopened keys).
    closed: Vec<Summary>,
    /// Summaries dropped because even `closed` was full.
    dropped: u64,
}

/// Per-key repeat counter. `Send + Sync`.
#[derive(Debug)]
pub struct Aggregator {
    interval: Duration,
    capacity: usize,
    state: Mutex<State>,
}

fn close(key: String, w: Window) -> Option<Summary> {
    match (w.count, w.first, w.last) {
        (n, Some(first), Some(last)) if n > 0 => Some(Summary {
            key,
            count: n,
            first,
            last,
        }),
        _ => None,
    }
}

impl Aggregator {
    pub fn new(interval: Duration) -> Self {
        Self::with_capacity(interval, DEFAULT_CAPACITY)
    }

    pub fn with_capacity(interval: Duration, capacity: usize) -> Self {
        Aggregator {
            interval,
            capacity: capacity.max(1),
            state: Mutex::new(State::default()),
        }
    }

    fn expired(&self, w: &Window, now: SystemTime) -> bool {
        now.duration_since(w.start).unwrap_or(Duration::ZERO) >= self.interval
    }

    fn push_closed(&self, st: &mut State, s: Summary) {
        if st.closed.len() >= self.capacity {
            st.dropped += s.count;
        } else {
            st.closed.push(s);
        }
    }

    /// Decide whether a failure with `key` is written now or counted.
    pub fn admit(&self, key: &str, now: SystemTime) -> Admit {
        if self.interval.is_zero() {
            return Admit::Emit;
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = st.windows.get_mut(key) {
            if !self.expired(w, now) {
                w.count += 1;
                w.first.get_or_insert(now);
                w.last = Some(now);
                return Admit::Suppress;
            }
            if let Some(w) = st.windows.remove(key) {
                if let Some(s) = close(key.to_string(), w) {
                    self.push_closed(&mut st, s);
                }
            }
        }
        if st.windows.len() >= self.capacity {
            // Close the oldest window early rather than grow.
            let oldest = st
                .windows
                .iter()
                .min_by_key(|(_, w)| w.start)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                if let Some(w) = st.windows.remove(&k) {
                    if let Some(s) = close(k, w) {
                        self.push_closed(&mut st, s);
                    }
                }
            }
        }
        st.windows.insert(
            key.to_string(),
            Window {
                start: now,
                count: 0,
                first: None,
                last: None,
            },
        );
        Admit::Emit
    }

    /// Close `key`'s window without a summary, as if the failure that opened it never came:
    /// for a first failure whose record could not be written after all (the records budget
    /// was spent), so that the next one of its key is written in full rather than counted as
    /// the repeat of a record nobody can read. Repeats already counted are kept.
    pub fn forget(&self, key: &str) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.windows.get(key).is_some_and(|w| w.count == 0) {
            st.windows.remove(key);
        }
    }

    /// Summaries of every interval that has ended with suppressed repeats. Call it periodically
    /// (e.g. every interval) and write one `failure_summary` record for each.
    pub fn drain_due(&self, now: SystemTime) -> Vec<Summary> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = std::mem::take(&mut st.closed);
        let due: Vec<String> = st
            .windows
            .iter()
            .filter(|(_, w)| self.expired(w, now))
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            if let Some(w) = st.windows.remove(&k) {
                out.extend(close(k, w));
            }
        }
        out.sort_by(|a, b| a.first.cmp(&b.first).then_with(|| a.key.cmp(&b.key)));
        out
    }

    /// Repeats lost because too many summaries were pending at once.
    pub fn dropped(&self) -> u64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).dropped
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .windows
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    #[test]
    fn first_is_emitted_repeats_are_counted_and_summarised() {
        let a = Aggregator::new(Duration::from_secs(60));
        let client: IpAddr = "10.1.2.3".parse().unwrap();
        let words = variant("Get \"https://myreg.azurecr.io/v2/\": EOF");
        let k = key(
            "client_firewall",
            "connect",
            client,
            words,
            "myreg.azurecr.io:443",
        );
        assert_eq!(a.admit(&k, t(0)), Admit::Emit);
        assert_eq!(a.admit(&k, t(10)), Admit::Suppress);
        assert_eq!(a.admit(&k, t(20)), Admit::Suppress);
        assert_eq!(a.admit(&k, t(59)), Admit::Suppress);
        assert!(a.drain_due(t(30)).is_empty(), "interval not over yet");
        let s = a.drain_due(t(60));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].count, 3);
        assert_eq!(s[0].first, t(10));
        assert_eq!(s[0].last, t(59));
        assert_eq!(
            s[0].parts(),
            KeyParts {
                cause: "client_firewall",
                phase: "connect",
                client: "10.1.2.3",
                target: "myreg.azurecr.io:443"
            }
        );
        assert!(a.is_empty());
        assert_eq!(a.admit(&k, t(61)), Admit::Emit);
    }

    #[test]
    fn different_keys_are_independent() {
        let a = Aggregator::new(Duration::from_secs(60));
        assert_eq!(a.admit("a|dns|x:443", t(0)), Admit::Emit);
        assert_eq!(a.admit("b|dns|x:443", t(1)), Admit::Emit);
        assert_eq!(a.admit("a|dns|y:443", t(2)), Admit::Emit);
        assert_eq!(a.admit("a|dns|x:443", t(3)), Admit::Suppress);
    }

    #[test]
    fn clients_are_counted_apart_whatever_their_port() {
        let a = Aggregator::new(Duration::from_secs(60));
        let one: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "::1".parse().unwrap();
        let k = |c| key("bad_client_request", "request", c, variant(""), ":0");
        assert_eq!(a.admit(&k(one), t(0)), Admit::Emit);
        assert_eq!(a.admit(&k(other), t(1)), Admit::Emit);
        assert_eq!(a.admit(&k(one), t(2)), Admit::Suppress);
        let s = a.drain_due(t(60));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].parts().client, "127.0.0.1");
        // An IPv6 client's colons do not split the key.
        let v6 = Summary {
            key: k(other),
            count: 1,
            first: t(0),
            last: t(0),
        };
        assert_eq!(v6.parts().client, "::1");
        assert_eq!(v6.parts().target, ":0");
    }

    #[test]
    fn other_words_for_the_client_are_not_a_repeat() {
        // Docker's login: the anonymous ping and the authenticated `GET /v2/` get the same 403
        // from the same firewall, but only the second is what the user reads.
        let a = Aggregator::new(Duration::from_secs(60));
        let client: IpAddr = "127.0.0.1".parse().unwrap();
        let k = |words: &str| {
            key(
                "public_access_rules",
                "http",
                client,
                variant(words),
                "r.azurecr.io:443",
            )
        };
        let login = "Error response from daemon: login attempt to https://r.azurecr.io/v2/ failed with status: 403 Forbidden";
        assert_eq!(a.admit(&k(""), t(0)), Admit::Emit);
        assert_eq!(a.admit(&k(login), t(1)), Admit::Emit);
        assert_eq!(a.admit(&k(login), t(2)), Admit::Suppress);
        let s = a.drain_due(t(61));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].parts().target, "r.azurecr.io:443");
        assert_eq!(s[0].parts().cause, "public_access_rules");
    }

    #[test]
    fn a_lone_failure_yields_no_summary() {
        let a = Aggregator::new(Duration::from_secs(60));
        a.admit("k", t(0));
        assert!(a.drain_due(t(120)).is_empty());
        assert!(a.is_empty());
    }

    #[test]
    fn a_late_repeat_before_drain_reopens_and_keeps_the_count() {
        let a = Aggregator::new(Duration::from_secs(60));
        a.admit("k", t(0));
        a.admit("k", t(5));
        assert_eq!(a.admit("k", t(70)), Admit::Emit);
        let s = a.drain_due(t(71));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].count, 1);
        assert_eq!(a.len(), 1, "the reopened window stays");
    }

    #[test]
    fn capacity_bounds_keys_and_closes_the_oldest() {
        let a = Aggregator::with_capacity(Duration::from_secs(60), 2);
        a.admit("k1", t(0));
        a.admit("k1", t(1));
        a.admit("k2", t(2));
        a.admit("k3", t(3));
        assert_eq!(a.len(), 2);
        let s = a.drain_due(t(4));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].key, "k1");
        assert_eq!(a.admit("k3", t(5)), Admit::Suppress);
    }

    #[test]
    fn a_forgotten_first_failure_lets_the_next_one_be_written() {
        let a = Aggregator::new(Duration::from_secs(60));
        assert_eq!(a.admit("k", t(0)), Admit::Emit);
        a.forget("k");
        assert!(a.is_empty());
        assert_eq!(a.admit("k", t(1)), Admit::Emit);
        assert_eq!(a.admit("k", t(2)), Admit::Suppress);
        // A window with repeats counted keeps them.
        a.forget("k");
        assert_eq!(a.drain_due(t(61))[0].count, 1);
    }

    #[test]
    fn zero_interval_emits_everything() {
        let a = Aggregator::new(Duration::ZERO);
        assert_eq!(a.admit("k", t(0)), Admit::Emit);
        assert_eq!(a.admit("k", t(0)), Admit::Emit);
    }
}
