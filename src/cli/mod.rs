//! The `regdoc` command line.

pub mod args;
pub mod print_config;
