//! Subcommands beyond `run` and `check-config`, as library functions [`crate::cli`] calls:
//! `explain` prints the cause catalog, `report` summarises a log, `ca` makes the interception CA,
//! `doctor` checks the Docker daemon's setup on this host, `check` probes a registry the way
//! `run` would reach it.

pub mod ca;
pub mod check;
pub mod doctor;
pub mod explain;
pub mod outcome;
pub mod report;
