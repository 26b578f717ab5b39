//! Subcommands beyond `run`, as library functions `main.rs` calls: `explain` prints the cause
//! catalog, `report` summarises a log.

pub mod explain;
pub mod report;
