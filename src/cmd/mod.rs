//! Subcommands beyond `run`.

pub mod ca;
