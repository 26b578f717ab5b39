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
    check(running.admin.listen != new.admin.listen, "admin.listen");
    // The metrics keep their counters across a reload, and with them the registry names
    // their labels were made for.
    check(
        running.admin.listen.is_some() && running.registry_hosts() != new.registry_hosts(),
        "registry (the names in metrics labels)",
    );
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::Shared;
    use std::sync::Arc;
    use std::time::Duration;

    /// What outlives a reload: connection ids go on, kept-alive connections stay sheddable,
    /// and the counters Prometheus scrapes stay the same ones (they must never go back).
    #[tokio::test]
    async fn a_reload_keeps_ids_idle_connections_and_metrics() {
        let mut cfg = Config::default();
        cfg.admin.listen = Some("127.0.0.1:9325".parse().unwrap());
        let running = Shared::new(cfg.clone()).expect("state");
        let first = running.next_conn_id();
        let mut new = cfg;
        new.allowed_ports.push(5000);
        let next = running.reloaded(new).expect("reloaded state");
        assert!(next.next_conn_id() > first);
        assert!(Arc::ptr_eq(&running.idle, &next.idle));
        let (a, b) = (running.metrics.as_ref(), next.metrics.as_ref());
        assert!(Arc::ptr_eq(a.expect("metrics"), b.expect("metrics")));
        assert_eq!(next.config.allowed_ports.last(), Some(&5000));
    }

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
