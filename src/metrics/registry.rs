//! The metrics themselves, what records them, and their exposition.

use super::labels::{
    self, BuildLabels, BytesLabels, ConnectionLabels, DroppedLabels, FailureLabels, PhaseLabels,
    RegistryNames, TimedPhase,
};
use super::series::ConnectionSeries;
use crate::config::Config;
use crate::endpoint::EndpointKind;
use crate::logging::LogHandle;
use crate::observe::FailureEvent;
use crate::record::{ConnectionRecord, PhaseOutcome};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Bucket bounds of the phase histograms, in seconds: from a loopback connect (well under a
/// millisecond) to the longest default deadline a phase can hit (`timeouts.response_headers`,
/// 30 s); a phase that times out later lands in `+Inf`.
const PHASE_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Everything counted, shared by the proxy (which records) and the admin listener (which
/// encodes). All counters are atomics; label families take a read lock for a series that
/// exists, which every series but the first of its kind does.
pub struct Metrics {
    registry: Registry,
    connections: Family<ConnectionLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    bytes: Family<BytesLabels, Counter>,
    /// One histogram per [`TimedPhase`], fetched once: no lookup when observing.
    phases: [Histogram; TimedPhase::ALL.len()],
    open: Gauge,
    dropped: Arc<DroppedRecords>,
    registries: RegistryNames,
    /// Direct handles to the series of `connections` and `bytes`.
    series: ConnectionSeries,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("open", &self.open.get())
            .finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new(cfg: &Config) -> Metrics {
        let mut registry = Registry::with_prefix("regdoc");
        let connections = Family::<ConnectionLabels, Counter>::default();
        registry.register(
            "connections",
            "Client connections that ended, by how they were served (mode), the endpoint class \
             of their destination, the registry named in [[registry]] (or other) and whether \
             they failed",
            connections.clone(),
        );
        let failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "failures",
            "Failures diagnosed, by cause id, endpoint class, registry and phase; repeats that \
             the log only counted in a failure_summary are counted here one by one",
            failures.clone(),
        );
        let bytes = Family::<BytesLabels, Counter>::default();
        registry.register(
            "bytes",
            "Bytes relayed, counted when a connection ends: up is client to server, down is \
             server to client",
            bytes.clone(),
        );
        let phase_family =
            Family::<PhaseLabels, Histogram, _>::new_with_constructor(|| -> Histogram {
                Histogram::new(PHASE_BUCKETS)
            });
        let phases = TimedPhase::ALL
            .map(|p| phase_family.get_or_create_owned(&PhaseLabels { phase: p.as_str() }));
        registry.register_with_unit(
            "phase_duration",
            "Time taken by each phase of a connection (dns, connect, upstream_proxy, tls) and \
             by the server's response head of an HTTP exchange (response_headers), whatever \
             its outcome",
            Unit::Seconds,
            phase_family,
        );
        let open = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections open now",
            open.clone(),
        );
        let dropped = Arc::new(DroppedRecords::default());
        registry.register_collector(Box::new(dropped.clone()));
        registry.register(
            "build",
            "The running regdoc's version",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        let registries = RegistryNames::from_config(cfg);
        Metrics {
            registry,
            connections,
            failures,
            bytes,
            phases,
            open,
            dropped,
            series: ConnectionSeries::new(&registries),
            registries,
        }
    }

    /// Count a connection that ended, from its `connection` record: whether or not the record
    /// itself is written.
    pub fn connection_ended(&self, rec: &ConnectionRecord) {
        let names = &self.registries;
        let registry = names.index(rec.registry.as_deref());
        // Endpoint names come from `EndpointKind::as_str`, so one is always found.
        let endpoint = labels::endpoint_index(rec.endpoint).unwrap_or(EndpointKind::ALL.len() - 1);
        self.series
            .connection(
                &self.connections,
                names,
                rec.mode,
                endpoint,
                registry,
                rec.failed,
            )
            .inc();
        for (direction, n) in [rec.bytes_up, rec.bytes_down].into_iter().enumerate() {
            if n > 0 {
                self.series
                    .bytes(&self.bytes, names, direction, endpoint, registry)
                    .inc_by(n);
            }
        }
        let p = &rec.phases;
        for (phase, outcome) in [
            (TimedPhase::Dns, &p.dns),
            (TimedPhase::Connect, &p.connect),
            (TimedPhase::UpstreamProxy, &p.upstream_proxy),
            (TimedPhase::Tls, &p.tls),
        ] {
            if let Some(PhaseOutcome { ms, .. }) = outcome {
                self.phases[phase.index()].observe(ms / 1e3);
            }
        }
    }

    /// Count a failure with its diagnosed cause (`undiagnosed` when no rule matched).
    pub fn failure(&self, cause: &'static str, ev: &FailureEvent) {
        self.failures
            .get_or_create(&FailureLabels {
                cause,
                endpoint: ev.endpoint.kind.as_str(),
                registry: self.registries.label(ev.endpoint.registry.as_deref()),
                phase: ev.phase.as_str(),
            })
            .inc();
    }

    /// The server's response head took `took` to arrive.
    pub fn response_headers(&self, took: Duration) {
        self.phases[TimedPhase::ResponseHeaders.index()].observe(took.as_secs_f64());
    }

    /// A record that `log.max_records_per_second` kept out of the log.
    pub fn record_over_budget(&self) {
        self.dropped.over_budget.inc();
    }

    /// Count the log lines the sink dropped or lost too (see [`crate::logging`]): read from
    /// its counters at each scrape. The first handle given is kept.
    pub fn watch_log(&self, log: &LogHandle) {
        let _ = self.dropped.log.set(log.clone());
    }

    /// Count a connection as open until the guard is dropped.
    pub fn open_connection(&self) -> OpenConnection {
        self.open.inc();
        OpenConnection(self.open.clone())
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(4096);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The media type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// An open connection; closed when dropped.
#[derive(Debug)]
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `regdoc_log_records_dropped_total{reason}`: records and log lines that never reached the
/// log. The sink's counts live in the logging module and are read at each scrape rather than
/// copied on every loss.
#[derive(Debug, Default)]
struct DroppedRecords {
    /// `failure` and `connection` records beyond `log.max_records_per_second`.
    over_budget: Counter,
    log: OnceLock<LogHandle>,
}

impl Collector for DroppedRecords {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (behind, failed) = self
            .log
            .get()
            .map_or((0, 0), |log| (log.dropped(), log.lost()));
        let counts = [
            ("rate_limit", self.over_budget.get()),
            ("writer_behind", behind),
            ("sink_error", failed),
        ];
        let kind = ConstCounter::new(0u64).metric_type();
        let mut family = encoder.encode_descriptor(
            "log_records_dropped",
            "Log records and lines that were not written: beyond log.max_records_per_second \
             (rate_limit), while the log writer fell behind (writer_behind), or because the \
             log could not be written (sink_error).",
            None,
            kind,
        )?;
        for (reason, n) in counts {
            let labels = DroppedLabels { reason };
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::{FailureKind, Phase};
    use crate::record::Mode;

    fn metrics() -> Metrics {
        let cfg = Config::parse(
            "[[registry]]\nhost = \"myreg.azurecr.io\"\n",
            std::path::Path::new("c"),
        )
        .unwrap();
        Metrics::new(&cfg)
    }

    fn line<'a>(text: &'a str, start: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(start))
    }

    #[test]
    fn a_connection_is_counted_once_with_its_bytes_and_phases() {
        let m = metrics();
        let mut rec = ConnectionRecord::new(1, "127.0.0.1:1".parse().unwrap());
        rec.mode = Mode::Tunnel;
        rec.set_endpoint(&crate::endpoint::classify(
            "myreg.westeurope.data.azurecr.io",
            &[],
        ));
        rec.bytes_up = 10;
        rec.bytes_down = 2000;
        rec.phases.dns = Some(PhaseOutcome::new("ok", Duration::from_millis(3)));
        rec.phases.connect = Some(PhaseOutcome::new("ok", Duration::from_millis(40)));
        m.connection_ended(&rec);
        let text = m.encode().unwrap();
        assert_eq!(
            line(&text, "regdoc_connections_total{"),
            Some(
                "regdoc_connections_total{mode=\"tunnel\",endpoint=\"data_endpoint\",registry=\"myreg\",outcome=\"ok\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "regdoc_bytes_total{direction=\"down\",endpoint=\"data_endpoint\",registry=\"myreg\"} 2000"
            ),
            "{text}"
        );
        assert!(
            text.contains("regdoc_phase_duration_seconds_count{phase=\"connect\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("regdoc_phase_duration_seconds_bucket{le=\"0.005\",phase=\"dns\"} 1")
                || text
                    .contains("regdoc_phase_duration_seconds_bucket{phase=\"dns\",le=\"0.005\"} 1"),
            "{text}"
        );
        // Phases that did not run are exposed, empty, from the start.
        assert!(
            text.contains("regdoc_phase_duration_seconds_count{phase=\"response_headers\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn failures_of_unnamed_registries_fold_into_other() {
        let m = metrics();
        let ev = FailureEvent {
            endpoint: crate::endpoint::classify("nosuchreg.azurecr.io", &[]),
            ..FailureEvent::sample(
                "nosuchreg.azurecr.io",
                443,
                Phase::Dns,
                FailureKind::DnsNxDomain,
            )
        };
        m.failure("registry_name", &ev);
        m.failure("registry_name", &ev);
        let text = m.encode().unwrap();
        assert!(
            text.contains(
                "regdoc_failures_total{cause=\"registry_name\",endpoint=\"registry_rest\",registry=\"other\",phase=\"dns\"} 2"
            ),
            "{text}"
        );
        assert!(!text.contains("nosuchreg"), "{text}");
    }

    #[test]
    fn open_connections_follow_their_guards_and_drops_are_exposed() {
        let m = metrics();
        let a = m.open_connection();
        let b = m.open_connection();
        drop(a);
        m.record_over_budget();
        let text = m.encode().unwrap();
        assert!(text.contains("\nregdoc_open_connections 1\n"), "{text}");
        assert!(
            text.contains("regdoc_log_records_dropped_total{reason=\"rate_limit\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("regdoc_log_records_dropped_total{reason=\"writer_behind\"} 0"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "regdoc_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        drop(b);
        assert!(m
            .encode()
            .unwrap()
            .contains("\nregdoc_open_connections 0\n"));
    }
}
