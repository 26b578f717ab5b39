//! The one writer of `failure` records: every failure, on every path (refusals, forwarding,
//! tunnels, interception), passes the same aggregator, so a failure that retries or a storm of
//! bad connections repeat is written once in full and then counted in a `failure_summary`.
//!
//! The `connection` records of failed connections are written here too: a connection refused
//! with a failure that was only counted is one of the repeats that count stands for, and its
//! own record is not written either (one client's storm is one failure, one connection record
//! and a count, not two lines per connection).

use crate::config::LogConfig;
use crate::diagnose::aggregate::{key, Admit, Aggregator};
use crate::diagnose::symptom::Reply;
use crate::diagnose::{Diagnoser, Finding};
use crate::observe::FailureEvent;
use crate::record::ConnectionRecord;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Whether a failure's record was written in full or only counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logged {
    /// Written in full (the first of its key in the interval).
    Full,
    /// Counted for a `failure_summary` record.
    Counted,
}

/// Writes failure records through one aggregator. Shared by the proxy and every intercepted
/// tunnel.
pub struct FailureLog {
    diagnoser: Arc<Diagnoser>,
    aggregator: Aggregator,
    interval: Duration,
    /// `log.connections`: healthy connections get a record too.
    healthy_connections: bool,
}

impl FailureLog {
    pub fn new(diagnoser: Arc<Diagnoser>, log: &LogConfig) -> Self {
        FailureLog {
            diagnoser,
            aggregator: Aggregator::new(log.aggregate_interval),
            interval: log.aggregate_interval,
            healthy_connections: log.connections,
        }
    }

    pub fn diagnoser(&self) -> &Arc<Diagnoser> {
        &self.diagnoser
    }

    /// Write the record of an already diagnosed `ev`, unless it repeats one written within
    /// the aggregation interval (then it is only counted). `reply` is regdoc's own answer to
    /// the client, `shown` that answer as the client reads it (see [`super::write_failure`]).
    pub fn write(
        &self,
        ev: &FailureEvent,
        findings: &[Finding],
        reply: Option<(u16, &str)>,
        shown: Option<Reply<'_>>,
    ) -> Logged {
        self.write_at(ev, findings, reply, shown, SystemTime::now())
    }

    fn write_at(
        &self,
        ev: &FailureEvent,
        findings: &[Finding],
        reply: Option<(u16, &str)>,
        shown: Option<Reply<'_>>,
        now: SystemTime,
    ) -> Logged {
        let cause = findings
            .first()
            .map(|f| f.cause.id)
            .unwrap_or("undiagnosed");
        let key = key(cause, ev.phase.as_str(), ev.client.ip(), &ev.target);
        if self.aggregator.admit(&key, now) == Admit::Suppress {
            return Logged::Counted;
        }
        super::write_failure(&self.diagnoser, ev, findings, reply, shown);
        Logged::Full
    }

    /// Write the `connection` record of a connection that has ended. `refusal` is how the
    /// failure it was refused with (before any upstream was reached) was logged: a refusal
    /// that was only counted folds its connection record into that count.
    pub fn connection(&self, rec: &ConnectionRecord, refusal: Option<Logged>) {
        if refusal == Some(Logged::Counted) {
            return;
        }
        if rec.failed || self.healthy_connections {
            super::emit("connection", rec);
        }
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
            conn_id: 1,
            client: client.parse().unwrap(),
            target: target.into(),
            host: String::new(),
            port: 0,
            endpoint: Default::default(),
            phase: Phase::Request,
            kind: FailureKind::MalformedRequest,
            error: "request head is not a valid proxy request".into(),
            dns: None,
            tls: None,
            http: None,
            upstream_proxy: None,
            elapsed_ms: 0,
        }
    }

    fn log() -> FailureLog {
        let cfg = Config::default();
        FailureLog::new(Arc::new(Diagnoser::new(&cfg)), &cfg.log)
    }

    #[test]
    fn repeats_of_one_client_are_counted_and_other_clients_written() {
        let f = log();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let write = |client: &str, at: u64| {
            let ev = event(client, ":0");
            let findings = f.diagnoser.diagnose(&ev);
            f.write_at(&ev, &findings, None, None, t0 + Duration::from_secs(at))
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
