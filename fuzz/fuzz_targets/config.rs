//! The configuration loader (`regdoc::config::Config::parse`), on a TOML text a user writes.
//!
//! Checked: no panic; the answer is a configuration or an `Invalid` error naming a line that
//! exists in the text, with a reason; a configuration that parses passes `validate` again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regdoc::config::{Config, ConfigError};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, Path::new("regdoc.toml")) {
        Ok(c) => {
            assert!(c.validate().is_ok());
            let _ = (c.exposure(), c.connect_to_rules(), c.registry_hosts());
        }
        Err(ConfigError::Invalid { line, reason, .. }) => {
            let lines = text.split('\n').count();
            assert!(
                line >= 1 && line <= lines,
                "line {line} of a text of {lines} lines"
            );
            assert!(!reason.is_empty());
        }
        Err(other) => panic!("unexpected error kind: {other}"),
    }
});
