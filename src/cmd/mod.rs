//! Subcommands beyond `run`, as library functions `main.rs` calls: `explain` prints the cause
//! catalog, `report` summarises a log, `ca` makes the interception CA.

pub mod ca;
pub mod explain;
pub mod report;
