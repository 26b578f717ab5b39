//! The one writer of `failure` records: every failure, on every path (refusals, forwarding,
//! tunnels, interception), passes the same aggregator, so a failure that retries or a storm of
//! bad connections repeat is written once in full and then counted in a `failure_summary`.
//!
//! The `connection` records of failed connections are written here too: a connection refused
//! with a failure that was only counted is one of the repeats that count stands for, and its
//! own record is not written either (one client's storm is one failure, one connection record
//! and a count, not two lines per connection).
//!
//! Both kinds are held to `log.max_records_per_second` ([`super::budget`]): beyond it they are
//! counted, and [`FailureLog::report_overflow`] says how many in a `log` line. Healthy
//! connections and `request` records are not: they grow with the work regdoc does, failures
//! with whatever anyone sends it.

use crate::config::LogConfig;
use crate::diagnose::aggregate::{key, variant, Admit, Aggregator};
use crate::diagnose::symptom::Reply;
use crate::diagnose::{Diagnoser, Finding};
use crate::metrics::Metrics;
use crate::observe::FailureEvent;
use crate::record::budget::Budget;
use crate::record::ConnectionRecord;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Whether a failure's record was written in full or only counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logged {
    /// Written in full (the first of its key in the interval).
    Full,
    /// Counted: for a `failure_summary` record (a repeat), or in the `log` line of the records
    /// budget (beyond `log.max_records_per_second`).
    Counted,
}

/// Records left out since the last [`FailureLog::report_overflow`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Overflow {
    /// `failure` records beyond the budget (their connections' records are folded in them).
    pub failures: u64,
    /// `connection` records of failed connections beyond the budget.
    pub connections: u64,
    /// Repeats counted for `failure_summary` records meanwhile (not the budget's doing).
    pub summarised: u64,
}

/// Writes failure records through one aggregator. Shared by the proxy and every intercepted
/// tunnel.
pub struct FailureLog {
    diagnoser: Arc<Diagnoser>,
    aggregator: Aggregator,
    interval: Duration,
    /// `log.connections`: healthy connections get a record too.
    healthy_connections: bool,
    budget: Budget,
    over_failures: AtomicU64,
    over_connections: AtomicU64,
    summarised: AtomicU64,
    /// When the counters were last reported.
    reported: Mutex<Instant>,
    /// Counts every failure and connection, written or not (`[admin]`).
    metrics: Option<Arc<Metrics>>,
}

/// A failure log that goes away (replaced on a reload, or at exit) first writes what it still
/// holds: the summaries of repeats it counted and what the records budget left out.
impl Drop for FailureLog {
    fn drop(&mut self) {
        self.write_all_summaries();
        self.report_overflow();
    }
}

impl FailureLog {
    pub fn new(diagnoser: Arc<Diagnoser>, log: &LogConfig) -> Self {
        let now = Instant::now();
        FailureLog {
            diagnoser,
            aggregator: Aggregator::new(log.aggregate_interval),
            interval: log.aggregate_interval,
            healthy_connections: log.connections,
            budget: Budget::new(log.max_records_per_second as u64, now),
            over_failures: AtomicU64::new(0),
            over_connections: AtomicU64::new(0),
            summarised: AtomicU64::new(0),
            reported: Mutex::new(now),
            metrics: None,
        }
    }

    /// Count what passes through here in `metrics` too. This is the one place every failure
    /// and every ended connection passes, so the counts cannot miss a path.
    pub fn with_metrics(mut self, metrics: Option<Arc<Metrics>>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.as_ref()
    }

    pub fn diagnoser(&self) -> &Arc<Diagnoser> {
        &self.diagnoser
    }

    /// Write the record of an already diagnosed `ev`, unless it repeats one written within
    /// the aggregation interval or the records budget of this second is spent (then it is only
    /// counted). `reply` is regdoc's own answer to the client, `shown` that answer as the
    /// client reads it (see `record::write_failure`).
    pub fn write(
        &self,
        ev: &FailureEvent,
        findings: &[Finding],
        reply: Option<(u16, &str)>,
        shown: Option<Reply<'_>>,
    ) -> Logged {
        self.write_at(
            ev,
            findings,
            reply,
            shown,
            (SystemTime::now(), Instant::now()),
        )
    }

    fn write_at(
        &self,
        ev: &FailureEvent,
        findings: &[Finding],
        reply: Option<(u16, &str)>,
        shown: Option<Reply<'_>>,
        (now, instant): (SystemTime, Instant),
    ) -> Logged {
        let cause = findings
            .first()
            .map(|f| f.cause.id)
            .unwrap_or("undiagnosed");
        if let Some(m) = &self.metrics {
            m.failure(cause, ev);
        }
        // What the client was shown is part of what makes a repeat (see `aggregate::variant`),
        // so it is rendered before the aggregator is asked: the message format and whether
        // regdoc knows the client read it, not the words themselves, which carry what each
        // request asked for and would split a storm of bad requests into one record each.
        let situation = self.diagnoser.situation(ev);
        let symptom = crate::diagnose::client_symptom(ev, shown, &situation);
        let words = symptom
            .as_ref()
            .map_or(String::new(), |s| format!("{}/{:?}", s.format, s.basis));
        let key = key(
            cause,
            ev.phase.as_str(),
            ev.client.ip(),
            variant(&words),
            &ev.target,
        );
        if self.aggregator.admit(&key, now) == Admit::Suppress {
            self.summarised.fetch_add(1, Ordering::Relaxed);
            return Logged::Counted;
        }
        if !self.budget.take(instant) {
            self.aggregator.forget(&key);
            self.over_failures.fetch_add(1, Ordering::Relaxed);
            self.count_over_budget();
            return Logged::Counted;
        }
        let client = crate::diagnose::symptom::client_of(ev, &situation);
        super::write_failure(ev, findings, reply, symptom, situation.operation, client);
        Logged::Full
    }

    /// Write the `connection` record of a connection that has ended. `refusal` is how the
    /// failure it was refused with (before any upstream was reached) was logged: a refusal
    /// that was only counted folds its connection record into that count.
    pub fn connection(&self, rec: &ConnectionRecord, refusal: Option<Logged>) {
        if let Some(m) = &self.metrics {
            m.connection_ended(rec);
        }
        if refusal == Some(Logged::Counted) {
            return;
        }
        if !rec.failed {
            if self.healthy_connections {
                super::emit("connection", rec);
            }
            return;
        }
        if self.budget.take(Instant::now()) {
            super::emit("connection", rec);
        } else {
            self.over_connections.fetch_add(1, Ordering::Relaxed);
            self.count_over_budget();
        }
    }

    fn count_over_budget(&self) {
        if let Some(m) = &self.metrics {
            m.record_over_budget();
        }
    }

    /// The records left out since the last call (and the repeats summarised meanwhile);
    /// `None` when the budget left nothing out.
    pub fn take_overflow(&self) -> Option<Overflow> {
        let o = Overflow {
            failures: self.over_failures.swap(0, Ordering::Relaxed),
            connections: self.over_connections.swap(0, Ordering::Relaxed),
            summarised: self.summarised.swap(0, Ordering::Relaxed),
        };
        (o.failures + o.connections > 0).then_some(o)
    }

    /// Say in a `log` line what the records budget left out since the last report, if
    /// anything. Called every second, and once more at exit: the line is itself bounded.
    pub fn report_overflow(&self) {
        let since = {
            let mut last = self.reported.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            std::mem::replace(&mut *last, now).elapsed()
        };
        let Some(o) = self.take_overflow() else {
            return;
        };
        let limit = self.budget.per_second();
        tracing::warn!(
            suppressed_failures = o.failures,
            suppressed_connections = o.connections,
            summarised = o.summarised,
            max_records_per_second = limit,
            "log.max_records_per_second ({limit}) reached: {} failure and {} connection records were not written in the last {:.1} s; {} repeated failures were counted for failure_summary records",
            o.failures,
            o.connections,
            since.as_secs_f64(),
            o.summarised,
        );
    }

    /// Write a `failure_summary` record for every key whose interval ended by `now` with
    /// repeats.
    pub fn write_due_summaries(&self, now: SystemTime) {
        super::emit_summaries(&self.aggregator.drain_due(now), self.interval);
    }

    /// Write the summaries of every key, ended or not: at exit, so that nothing counted is
    /// lost.
    pub fn write_all_summaries(&self) {
        let far = SystemTime::now() + self.interval.saturating_mul(2);
        self.write_due_summaries(far);
    }

    /// The aggregation interval (`log.aggregate_interval`); zero when every failure is written.
    pub fn interval(&self) -> Duration {
        self.interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::observe::{FailureKind, Phase};

    fn event(client: &str, target: &str) -> FailureEvent {
        FailureEvent {
            client: client.parse().unwrap(),
            target: target.into(),
            error: "request head is not a valid proxy request".into(),
            ..FailureEvent::sample("", 0, Phase::Request, FailureKind::MalformedRequest)
        }
    }

    fn log() -> FailureLog {
        let cfg = Config::default();
        FailureLog::new(Arc::new(Diagnoser::new(&cfg)), &cfg.log)
    }

    #[test]
    fn beyond_the_budget_failures_are_counted_and_their_key_stays_open() {
        let cfg = Config::default();
        let log = LogConfig {
            max_records_per_second: 2,
            ..cfg.log.clone()
        };
        let f = FailureLog::new(Arc::new(Diagnoser::new(&cfg)), &log);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let i0 = Instant::now();
        let write = |client: &str, second: u64| {
            let ev = event(client, ":0");
            let findings = f.diagnoser.diagnose(&ev);
            let at = Duration::from_secs(second);
            f.write_at(&ev, &findings, None, None, (t0 + at, i0 + at))
        };
        assert_eq!(write("10.0.0.1:1", 0), Logged::Full);
        assert_eq!(write("10.0.0.2:1", 0), Logged::Full);
        assert_eq!(write("10.0.0.3:1", 0), Logged::Counted);
        assert_eq!(write("10.0.0.1:2", 0), Logged::Counted, "a repeat");
        assert_eq!(
            f.take_overflow(),
            Some(Overflow {
                failures: 1,
                connections: 0,
                summarised: 1
            })
        );
        assert_eq!(f.take_overflow(), None);
        // The failure the budget left out was no record anyone can read: the next one of its
        // key, in the next second, is written in full rather than counted as its repeat.
        assert_eq!(write("10.0.0.3:2", 1), Logged::Full);
    }

    /// Aggregation and the budget only save log lines: metrics count every failure and every
    /// connection, and the records the budget left out.
    #[test]
    fn metrics_count_what_the_log_only_summarised_or_left_out() {
        let cfg = Config::default();
        let log = LogConfig {
            max_records_per_second: 1,
            ..cfg.log.clone()
        };
        let metrics = Arc::new(Metrics::new(&cfg));
        let f = FailureLog::new(Arc::new(Diagnoser::new(&cfg)), &log)
            .with_metrics(Some(metrics.clone()));
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let i0 = Instant::now();
        for client in ["10.0.0.1:1", "10.0.0.1:2", "10.0.0.1:3"] {
            let ev = event(client, ":0");
            let findings = f.diagnoser.diagnose(&ev);
            f.write_at(&ev, &findings, None, None, (t0, i0));
        }
        let mut rec = ConnectionRecord::new(1, "10.0.0.1:1".parse().unwrap());
        rec.failed = true;
        // The second second's budget (one record) is spent by the first connection.
        f.connection(&rec, None);
        f.connection(&rec, None);
        let text = metrics.encode().unwrap();
        let failures: f64 = text
            .lines()
            .filter(|l| l.starts_with("regdoc_failures_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert_eq!(failures, 3.0, "{text}");
        assert!(
            text.contains(
                "regdoc_connections_total{mode=\"refused\",endpoint=\"other\",registry=\"other\",outcome=\"failed\"} 2"
            ),
            "{text}"
        );
        let dropped = text
            .lines()
            .find(|l| l.starts_with("regdoc_log_records_dropped_total{reason=\"rate_limit\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
        assert!(dropped >= Some(1.0), "{text}");
    }

    #[test]
    fn repeats_of_one_client_are_counted_and_other_clients_written() {
        let f = log();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let write = |client: &str, at: u64| {
            let ev = event(client, ":0");
            let findings = f.diagnoser.diagnose(&ev);
            f.write_at(
                &ev,
                &findings,
                None,
                None,
                (t0 + Duration::from_secs(at), Instant::now()),
            )
        };
        assert_eq!(write("127.0.0.3:1000", 0), Logged::Full);
        // Another port of the same client is the same client.
        assert_eq!(write("127.0.0.3:1001", 1), Logged::Counted);
        assert_eq!(write("127.0.0.4:1000", 2), Logged::Full);
        assert_eq!(write("[::1]:1000", 3), Logged::Full);
        assert_eq!(write("[::1]:1002", 4), Logged::Counted);
        let due = f.aggregator.drain_due(t0 + Duration::from_secs(3600));
        let clients: Vec<(&str, u64)> = due.iter().map(|s| (s.parts().client, s.count)).collect();
        assert_eq!(clients, vec![("127.0.0.3", 1), ("::1", 1)]);
    }
}
