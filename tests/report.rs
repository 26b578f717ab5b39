//! `regdoc report` on fixture logs shaped exactly like the records regdoc writes.

use regdoc::cmd::report::{report, Report};
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

fn fixture(name: &str) -> Report {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/logs")
        .join(name);
    report(BufReader::new(File::open(path).unwrap()))
}

fn cause<'a>(r: &'a Report, id: &str) -> &'a regdoc::cmd::report::CauseReport {
    r.causes.iter().find(|c| c.cause == id).unwrap()
}

fn pairs(v: &[(String, u64)]) -> Vec<(&str, u64)> {
    v.iter().map(|(s, n)| (s.as_str(), *n)).collect()
}

#[test]
fn mixed_log_counts_records_and_skips_bad_lines() {
    let r = fixture("mixed.jsonl");
    assert_eq!(r.lines, 16);
    assert_eq!(r.bad_lines, 3, "cut JSON, pretty line, JSON array");
    assert_eq!(r.failure_records, 7);
    assert_eq!(r.summary_records, 3);
    assert_eq!(r.connection_records, 2);
    assert_eq!(r.other_records, 1);
    assert_eq!(r.failures, 7 + 11 + 4);
    assert_eq!(r.first_seen.as_deref(), Some("2026-11-23T18:00:01.480Z"));
    assert_eq!(
        r.last_seen.as_deref(),
        Some("2026-11-23T18:06:30.000+00:00")
    );
}

#[test]
fn mixed_log_groups_by_cause_most_frequent_first() {
    let r = fixture("mixed.jsonl");
    let order: Vec<(&str, u64)> = r
        .causes
        .iter()
        .map(|c| (c.cause.as_str(), c.count))
        .collect();
    assert_eq!(
        order,
        vec![
            ("data_endpoint_firewall", 13),
            ("registry_name", 5),
            ("invalid_credentials", 1),
            ("proxy_scheme_mismatch", 1),
            ("public_access_rules", 1),
            ("undiagnosed", 1),
        ]
    );
}

#[test]
fn data_endpoint_cause_names_regions_registries_and_remedy() {
    let r = fixture("mixed.jsonl");
    let c = cause(&r, "data_endpoint_firewall");
    assert_eq!(c.first_seen.as_deref(), Some("2026-11-23T18:00:01.480Z"));
    assert_eq!(c.last_seen.as_deref(), Some("2026-11-23T18:02:30.000Z"));
    assert_eq!(
        pairs(&c.regions),
        vec![("westeurope", 12), ("northeurope", 1)]
    );
    assert_eq!(pairs(&c.registries), vec![("contosoacr", 13)]);
    assert_eq!(pairs(&c.endpoints), vec![("data_endpoint", 13)]);
    // Summaries carry no client: only the two failure records count here.
    assert_eq!(pairs(&c.clients), vec![("10.0.0.7", 1), ("127.0.0.1", 1)]);
    assert_eq!(pairs(&c.phases), vec![("connect", 12), ("tls", 1)]);
    assert!(c.remedy[0].contains("<name>.<region>.data.azurecr.io"));
    assert!(c
        .doc
        .as_deref()
        .unwrap()
        .ends_with("#enable-dedicated-data-endpoints"));
    assert!(c
        .client_symptom
        .as_deref()
        .unwrap()
        .starts_with("Error response from daemon: Get"));
}

#[test]
fn summary_span_not_its_write_time_bounds_the_cause() {
    let r = fixture("mixed.jsonl");
    let c = cause(&r, "registry_name");
    assert_eq!(c.first_seen.as_deref(), Some("2026-11-23T18:03:05.250Z"));
    assert_eq!(c.last_seen.as_deref(), Some("2026-11-23T18:03:40.000Z"));
    assert_eq!(pairs(&c.targets), vec![("contosoacr.azurcr.io:443", 5)]);
}

#[test]
fn undiagnosed_failures_are_kept_and_ipv6_clients_lose_their_port() {
    let r = fixture("mixed.jsonl");
    let c = cause(&r, "undiagnosed");
    assert_eq!(pairs(&c.clients), vec![("::1", 1)]);
    assert!(c.remedy.is_empty());
}

#[test]
fn text_rendering_shows_causes_counts_and_fixes() {
    let text = fixture("mixed.jsonl").render_text();
    assert!(text.contains("22 failures"), "{text}");
    assert!(text.contains("skipped 3 unreadable lines"));
    assert!(text.contains("    13 x data_endpoint_firewall: The registry's data endpoint is not allowed through the firewall"));
    assert!(text.contains("regions: westeurope (12), northeurope (1)"));
    assert!(text.contains("fix:\n      1. Allow <name>.<region>.data.azurecr.io"));
    let dep = text.find("data_endpoint_firewall:").unwrap();
    let name = text.find("registry_name:").unwrap();
    assert!(dep < name, "most frequent first");
}

#[test]
fn json_rendering_carries_the_same_facts() {
    let r = fixture("mixed.jsonl");
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["failures"], 22);
    assert_eq!(v["causes"][0]["cause"], "data_endpoint_firewall");
    assert_eq!(v["causes"][0]["regions"][0][0], "westeurope");
    assert_eq!(v["causes"][0]["regions"][0][1], 12);
}

#[test]
fn healthy_log_has_no_failures() {
    let r = fixture("healthy.jsonl");
    assert_eq!(r.connection_records, 6);
    assert_eq!(r.failures, 0);
    assert_eq!(r.bad_lines, 0);
    assert!(r.causes.is_empty());
    assert!(r.render_text().contains("no failures"));
}

#[test]
fn empty_input_is_an_empty_report() {
    let r = report(&b""[..]);
    assert_eq!(r.lines, 0);
    assert!(r.causes.is_empty());
}

/// A log from an older regdoc (or edited by hand) that holds secrets: `report` shows the
/// network-derived values (targets, client words) only after the one redaction step.
#[test]
fn report_redacts_what_an_older_log_leaked() {
    let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDB9.SigNaTuRe-Old-0123456789";
    let line = serde_json::json!({
        "timestamp": "2026-11-23T18:00:01.480Z",
        "event": "failure",
        "cause": "invalid_credentials",
        "target": "user:Old-Pw-24680@reg.example:443",
        "client": "127.0.0.1:50000",
        "client_symptom": format!("Get \"https://reg.example/v2/token?password=Old-Pw-13579\": unauthorized: token {jwt}"),
    });
    let r = report(std::io::BufReader::new(format!("{line}\n").as_bytes()));
    let out = format!("{}{}", r.render_text(), serde_json::to_string(&r).unwrap());
    for secret in ["Old-Pw-24680", "Old-Pw-13579", "SigNaTuRe-Old", "eyJ"] {
        assert!(!out.contains(secret), "{secret} in {out}");
    }
    assert!(out.contains("reg.example:443"), "{out}");
}
