//! Prometheus metrics, for fleets that alert on counts rather than read logs host by host.
//!
//! Off unless `[admin] listen` is set: then [`Metrics`] is built with the proxy state and an
//! admin listener ([`admin`]) serves `/metrics` (Prometheus text exposition) and `/healthz`.
//!
//! Everything is counted where a record is already written, never on the per-byte path: a
//! connection once when its `connection` record is handed to [`FailureLog`], a failure once
//! when it reaches the aggregator (repeats included: aggregation only saves log lines), a
//! response head when its `request` record is made. Label values come from closed sets (modes,
//! endpoint classes, cause ids, phases) or from `[[registry]]`; any other registry name is
//! `other`, so a scan of made-up hosts cannot grow the series.
//!
//! [`FailureLog`]: crate::record::failures::FailureLog

pub mod admin;
mod labels;
mod registry;
mod series;

pub use admin::AdminError;
pub use labels::TimedPhase;
pub use registry::{Metrics, OpenConnection};
