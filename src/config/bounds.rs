//! The documented bounds of every numeric setting, as data.
//!
//! A value outside them is refused at load rather than discovered at run time: a zero deadline
//! fails every connection, a connection limit beyond what a semaphore holds panics after
//! systemd was told the proxy is ready. README's configuration table and config/regdoc.toml
//! state the same bounds; a test holds the three together.

use super::{Config, PROBE_INTERVAL_RANGE, PROBE_TIMEOUT_RANGE};
use std::time::Duration;

/// A duration setting and its inclusive range.
pub struct DurationBound {
    /// The setting as the README names it (`timeouts.connect`).
    pub key: &'static str,
    pub get: fn(&Config) -> Duration,
    pub min: Duration,
    pub max: Duration,
}

/// A count setting (bytes, connections, entries) and its inclusive range. `get` is `None` when
/// the setting is unset and a built-in value applies.
pub struct CountBound {
    pub key: &'static str,
    pub get: fn(&Config) -> Option<usize>,
    pub min: usize,
    pub max: usize,
}

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);
const M: Duration = Duration::from_secs(60);
const H: Duration = Duration::from_secs(3600);
const D: Duration = Duration::from_secs(24 * 3600);

/// Deadlines must leave a connection time to happen (100 ms at least) and must still end
/// within what a person waiting on `docker pull` would call an answer. Zero is allowed where
/// it has a meaning: `shutdown_grace` (close at once) and `aggregate_interval` (never merge).
pub static DURATIONS: &[DurationBound] = &[
    DurationBound {
        key: "timeouts.request_head",
        get: |c| c.timeouts.request_head,
        min: MS.saturating_mul(100),
        max: H,
    },
    DurationBound {
        key: "timeouts.dns",
        get: |c| c.timeouts.dns,
        min: MS.saturating_mul(100),
        max: M.saturating_mul(5),
    },
    DurationBound {
        key: "timeouts.connect",
        get: |c| c.timeouts.connect,
        min: MS.saturating_mul(100),
        max: M.saturating_mul(5),
    },
    DurationBound {
        key: "timeouts.upstream_proxy",
        get: |c| c.timeouts.upstream_proxy,
        min: MS.saturating_mul(100),
        max: M.saturating_mul(5),
    },
    DurationBound {
        key: "timeouts.tls",
        get: |c| c.timeouts.tls,
        min: MS.saturating_mul(100),
        max: M.saturating_mul(5),
    },
    DurationBound {
        key: "timeouts.response_headers",
        get: |c| c.timeouts.response_headers,
        min: MS.saturating_mul(100),
        max: H,
    },
    DurationBound {
        key: "timeouts.idle",
        get: |c| c.timeouts.idle,
        min: MS.saturating_mul(100),
        max: D,
    },
    DurationBound {
        key: "timeouts.keep_alive",
        get: |c| c.timeouts.keep_alive,
        min: MS.saturating_mul(100),
        max: H,
    },
    DurationBound {
        key: "timeouts.stall",
        get: |c| c.timeouts.stall,
        min: S,
        max: D,
    },
    DurationBound {
        key: "timeouts.shutdown_grace",
        get: |c| c.timeouts.shutdown_grace,
        min: Duration::ZERO,
        max: H,
    },
    DurationBound {
        key: "log.aggregate_interval",
        get: |c| c.log.aggregate_interval,
        min: Duration::ZERO,
        max: D,
    },
    DurationBound {
        key: "probe.timeout",
        get: |c| c.probe.timeout,
        min: *PROBE_TIMEOUT_RANGE.start(),
        max: *PROBE_TIMEOUT_RANGE.end(),
    },
    DurationBound {
        key: "probe.interval",
        get: |c| c.probe.interval,
        min: *PROBE_INTERVAL_RANGE.start(),
        max: *PROBE_INTERVAL_RANGE.end(),
    },
    DurationBound {
        key: "diagnosis.context_window",
        get: |c| c.diagnosis.context_window,
        min: S,
        max: D.saturating_mul(7),
    },
    DurationBound {
        key: "diagnosis.token_lifetime",
        get: |c| c.diagnosis.token_lifetime,
        min: M,
        max: D.saturating_mul(30),
    },
    DurationBound {
        key: "diagnosis.max_clock_skew",
        get: |c| c.diagnosis.max_clock_skew,
        min: S,
        max: D,
    },
];

/// Each tunnel holds two descriptors, so a million connections is already beyond any
/// descriptor limit; a request head of a megabyte is no proxy request.
pub static COUNTS: &[CountBound] = &[
    CountBound {
        key: "max_connections",
        get: |c| Some(c.max_connections),
        min: 1,
        max: 1_000_000,
    },
    CountBound {
        key: "max_connections_per_client",
        get: |c| Some(c.max_connections_per_client),
        min: 1,
        max: 1_000_000,
    },
    CountBound {
        key: "max_head_bytes",
        get: |c| Some(c.max_head_bytes),
        min: 1024,
        max: 1024 * 1024,
    },
    CountBound {
        key: "buffer_bytes",
        get: |c| Some(c.buffer_bytes),
        min: 4096,
        max: 4 * 1024 * 1024,
    },
    // Ten lines a second still show what is failing; a million is more than any log shipper
    // takes.
    CountBound {
        key: "log.max_records_per_second",
        get: |c| Some(c.log.max_records_per_second),
        min: 10,
        max: 1_000_000,
    },
    CountBound {
        key: "intercept.cert_cache",
        get: |c| c.intercept.cert_cache,
        min: 1,
        max: 1_000_000,
    },
];

/// `"100ms"`, `"5m"`, `"24h"`: the largest unit that states the duration exactly, in the
/// syntax the configuration accepts.
pub fn show(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0s".to_string(),
        _ if ms.is_multiple_of(3_600_000) => format!("{}h", ms / 3_600_000),
        _ if ms.is_multiple_of(60_000) => format!("{}m", ms / 60_000),
        _ if ms.is_multiple_of(1000) => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
}

/// The key as it appears in its section of the file, for the line of the error.
fn leaf(key: &str) -> String {
    key.rsplit('.').next().unwrap_or(key).to_string()
}

/// Every bound of `c`; the first one broken, as (key, reason).
pub fn check(c: &Config) -> Result<(), (String, String)> {
    for b in DURATIONS {
        let v = (b.get)(c);
        if v < b.min || v > b.max {
            return Err((
                leaf(b.key),
                format!(
                    "{} must be between {} and {} (got {})",
                    b.key,
                    show(b.min),
                    show(b.max),
                    show(v)
                ),
            ));
        }
    }
    for b in COUNTS {
        let Some(v) = (b.get)(c) else { continue };
        if v < b.min || v > b.max {
            return Err((
                leaf(b.key),
                format!(
                    "{} must be between {} and {} (got {v})",
                    b.key, b.min, b.max
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn err(text: &str) -> String {
        Config::parse(text, Path::new("c")).unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_within_every_bound() {
        assert_eq!(check(&Config::default()), Ok(()));
    }

    #[test]
    fn every_duration_refuses_beyond_its_bounds_with_its_line() {
        for b in DURATIONS {
            let (section, key) = b.key.split_once('.').unwrap();
            let over = b.max + MS;
            let text = format!("# bounds\n[{section}]\n{key} = \"{}\"\n", show(over));
            let e = err(&text);
            assert!(
                e.starts_with("c:3: ") && e.contains(b.key) && e.contains(&show(b.max)),
                "{e}"
            );
            if !b.min.is_zero() {
                let e = err(&format!("[{section}]\n{key} = \"0s\"\n"));
                assert!(e.starts_with("c:2: ") && e.contains("got 0s"), "{e}");
            }
        }
    }

    #[test]
    fn counts_refuse_zero_and_huge_values() {
        let e = err("max_connections = 3000000000000000000\n");
        assert!(
            e.starts_with("c:1: ") && e.contains("between 1 and 1000000"),
            "{e}"
        );
        let e = err("# x\nmax_connections = 0\n");
        assert!(e.starts_with("c:2: "), "{e}");
        // 1e12 is a float in TOML: refused by type, still with its line.
        let e = err("\nmax_head_bytes = 1e12\n");
        assert!(e.starts_with("c:2: "), "{e}");
        let e = err("max_head_bytes = 1000000000000\n");
        assert!(
            e.contains("max_head_bytes must be between 1024 and 1048576"),
            "{e}"
        );
        let e = err("[intercept]\ncert_cache = 0\n");
        assert!(
            e.starts_with("c:2: ") && e.contains("intercept.cert_cache"),
            "{e}"
        );
    }

    #[test]
    fn show_uses_the_configuration_syntax() {
        for d in [
            Duration::ZERO,
            MS.saturating_mul(100),
            S.saturating_mul(90),
            M.saturating_mul(5),
            D.saturating_mul(30),
        ] {
            assert_eq!(crate::config::parse_duration(&show(d)), Ok(d));
        }
        assert_eq!(show(MS.saturating_mul(1500)), "1500ms");
    }
}
