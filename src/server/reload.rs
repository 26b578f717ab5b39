//! What a configuration reload (SIGHUP) can change in a running proxy, and what it cannot.
//!
//! A reload builds new proxy state for connections accepted from then on; open connections
//! keep theirs. Settings that belong to the listening socket, the accept loop or the log
//! writer were fixed at start, so a change to them is named as needing a restart instead of
//! being half-applied.

use crate::config::Config;

/// The keys whose new value a reload does not apply, in the order the file lists them.
pub fn needs_restart(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut check = |changed: bool, key: &'static str| {
        if changed {
            keys.push(key);
        }
    };
    check(running.listen != new.listen, "listen");
    check(
        running.max_connections != new.max_connections,
        "max_connections",
    );
    check(
        running.max_connections_per_client != new.max_connections_per_client,
        "max_connections_per_client",
    );
    check(
        running.timeouts.shutdown_grace != new.timeouts.shutdown_grace,
        "timeouts.shutdown_grace",
    );
    check(running.log.file != new.log.file, "log.file");
    check(running.log.format != new.log.format, "log.format");
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn policy_changes_apply_and_socket_changes_are_named() {
        let running = Config::default();
        let mut new = running.clone();
        new.allowed_ports.push(5000);
        new.timeouts.connect = Duration::from_secs(3);
        assert!(needs_restart(&running, &new).is_empty());

        new.listen = "127.0.0.1:4000".parse().unwrap();
        new.max_connections += 1;
        new.log.file = Some("/var/log/regdoc/other.jsonl".into());
        assert_eq!(
            needs_restart(&running, &new),
            ["listen", "max_connections", "log.file"]
        );
    }
}
