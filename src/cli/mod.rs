//! The `regdoc` command line.

pub mod args;
