//! The effective settings `regdoc check-config` prints.

use crate::config::{Config, LogFormat};
use crate::net::upstream::UpstreamProxy;
use crate::policy::destination::DestRule;
use crate::policy::relay::Exposure;
use std::fmt::Write as _;

/// The effective settings, one per line, with secrets reduced to whether they are set.
pub fn summary(cfg: &Config) -> String {
    let list = |v: &[String]| {
        if v.is_empty() {
            "(none)".to_string()
        } else {
            v.join(", ")
        }
    };
    let t = &cfg.timeouts;
    let mut s = String::new();
    let _ = writeln!(s, "listen            {}", cfg.listen);
    let clients: Vec<String> = cfg.allowed_clients.iter().map(|c| c.to_string()).collect();
    let _ = writeln!(s, "allowed_clients   {}", list(&clients));
    if let Exposure::OpenRelay(_) = cfg.exposure() {
        let _ = writeln!(
            s,
            "exposure          OPEN PROXY: anyone reaching {} may use it (i_know_this_is_an_open_proxy = true)",
            cfg.listen
        );
    }
    let ports: Vec<String> = cfg.allowed_ports.iter().map(|p| p.to_string()).collect();
    let _ = writeln!(s, "allowed_ports     {}", list(&ports));
    let rules = |v: &[DestRule]| list(&v.iter().map(|r| r.to_string()).collect::<Vec<_>>());
    let _ = writeln!(
        s,
        "destinations      denied {} and regdoc's own listen address; allowed {}",
        rules(&cfg.denied_destinations),
        rules(&cfg.allowed_destinations)
    );
    let _ = writeln!(
        s,
        "max_connections   {} ({} per client address)",
        cfg.max_connections, cfg.max_connections_per_client
    );
    let _ = writeln!(s, "max_head_bytes    {}", cfg.max_head_bytes);
    let _ = writeln!(s, "buffer_bytes      {}", cfg.buffer_bytes);
    let _ = writeln!(
        s,
        "zero_copy         {}",
        if cfg.zero_copy && cfg!(target_os = "linux") {
            "on (splice after 1 MiB per direction)"
        } else if cfg.zero_copy {
            "on, but this system has no splice: copying"
        } else {
            "off (copy through regdoc)"
        }
    );
    let _ = writeln!(
        s,
        "timeouts          request_head={:?} dns={:?} connect={:?} upstream_proxy={:?} tls={:?} \
         response_headers={:?} idle={:?} keep_alive={:?} stall={:?} shutdown_grace={:?}",
        t.request_head,
        t.dns,
        t.connect,
        t.upstream_proxy,
        t.tls,
        t.response_headers,
        t.idle,
        t.keep_alive,
        t.stall,
        t.shutdown_grace
    );
    let ns = if cfg.dns.nameservers.is_empty() {
        "system (/etc/resolv.conf)".to_string()
    } else {
        cfg.dns.nameservers.join(", ")
    };
    let _ = writeln!(s, "dns.nameservers   {ns}");
    let overrides: Vec<String> = cfg.dns.overrides.keys().cloned().collect();
    let _ = writeln!(s, "dns.overrides     {}", list(&overrides));
    let _ = writeln!(s, "dns.connect_to    {}", list(&cfg.dns.connect_to));
    let upstream = match cfg.upstream.proxy.as_deref() {
        None => "none (direct)".to_string(),
        Some(u) => match UpstreamProxy::parse(u) {
            Ok(p) => format!(
                "{}{}",
                p.display(),
                if p.authorization().is_some() {
                    " (with credentials)"
                } else {
                    ""
                }
            ),
            Err(e) => format!("invalid: {e}"),
        },
    };
    let _ = writeln!(s, "upstream.proxy    {upstream}");
    let _ = writeln!(s, "upstream.no_proxy {}", list(&cfg.upstream.no_proxy));
    let auth = match &cfg.auth {
        Some(a) => format!("basic, user {:?} (password set)", a.username),
        None => "none".to_string(),
    };
    let _ = writeln!(s, "auth              {auth}");
    let _ = writeln!(
        s,
        "log               format={} file={} connections={} requests={} aggregate_interval={:?} \
         max_records_per_second={}",
        match cfg.log.format {
            LogFormat::Json => "json",
            LogFormat::Pretty => "pretty",
        },
        cfg.log
            .file
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "stdout".into()),
        cfg.log.connections,
        cfg.log.requests,
        cfg.log.aggregate_interval,
        cfg.log.max_records_per_second
    );
    let intercept = match (&cfg.intercept.ca_cert, &cfg.intercept.ca_key) {
        (Some(c), Some(_)) => format!(
            "on, CA {} hosts [{}] passthrough [{}]",
            c.display(),
            cfg.intercept.hosts.join(", "),
            cfg.intercept.passthrough.join(", ")
        ),
        _ => "off (passthrough only)".to_string(),
    };
    let _ = writeln!(s, "intercept         {intercept}");
    let admin = match cfg.admin.listen {
        Some(a) => format!("{a} (/metrics, /healthz)"),
        None => "off (no metrics are counted)".to_string(),
    };
    let _ = writeln!(s, "admin.listen      {admin}");
    let d = &cfg.diagnosis;
    let _ =
        writeln!(
        s,
        "diagnosis         context_window={:?} token_lifetime={:?} max_clock_skew={:?} client={}",
        d.context_window, d.token_lifetime, d.max_clock_skew, d.client.name()
    );
    for r in &cfg.registries {
        let cidrs: Vec<String> = r.expected_cidrs.iter().map(|c| c.to_string()).collect();
        let _ = writeln!(
            s,
            "registry          {} private_endpoint={} expected_cidrs=[{}] regions=[{}]",
            r.host,
            r.private_endpoint,
            cidrs.join(", "),
            r.regions.join(", ")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_the_admin_listener() {
        let off = summary(&Config::default());
        assert!(off.contains("admin.listen      off"), "{off}");
        let text = "[admin]\nlisten = \"127.0.0.1:9325\"\n";
        let cfg = Config::parse(text, std::path::Path::new("t.toml")).unwrap();
        let on = summary(&cfg);
        assert!(
            on.contains("admin.listen      127.0.0.1:9325 (/metrics"),
            "{on}"
        );
    }

    #[test]
    fn summary_never_shows_secrets() {
        let text = "[upstream]\nproxy = \"http://alice:s3cret-pw@proxy.corp.example:8080\"\n\
                    [auth]\nusername = \"docker\"\npassword = \"hunter2-pw\"\n";
        let cfg = Config::parse(text, std::path::Path::new("t.toml")).unwrap();
        let s = summary(&cfg);
        assert!(
            s.contains("proxy.corp.example:8080 (with credentials)"),
            "{s}"
        );
        assert!(s.contains("password set"), "{s}");
        assert!(
            !s.contains("s3cret") && !s.contains("hunter2") && !s.contains("alice"),
            "{s}"
        );
    }
}
