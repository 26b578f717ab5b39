//! regdoc resolves a name as Docker's Go resolver would on the same host: the hosts file and
//! DNS in nsswitch order, DNS with the search list of resolv.conf. The system files are
//! temporary files here and every query goes to the loopback test DNS server.

mod common;

use common::dns::{TestDns, Zone};
use regdoc::config::Config;
use regdoc::net::resolve::{ResolveError, Resolver, SystemPaths};
use regdoc::observe::DnsSource;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

const HOSTS: &str = "\
127.0.0.1 localhost
# pinned by hand for the private endpoint
10.9.8.7 both.example pinned.corp.example
fd00::9 both.example
10.9.8.8 onlyhosts.example
";

fn zone() -> Zone {
    Zone::new()
        .a("both.example", [192, 0, 2, 1])
        .a("myregistry.corp.example", [192, 0, 2, 2])
        .a("dotted.example.corp.example", [192, 0, 2, 3])
        .a("dotted.example", [192, 0, 2, 4])
}

/// System files in `dir` with this nsswitch `hosts:` line and resolv.conf; the resolver asks
/// only `server` (its nameserver lines cannot name a port, so `[dns] nameservers` does).
fn resolver(dir: &Path, server: &TestDns, hosts_line: &str, resolv: &str) -> Resolver {
    let paths = SystemPaths {
        hosts: dir.join("hosts"),
        nsswitch: dir.join("nsswitch.conf"),
        resolv_conf: dir.join("resolv.conf"),
        hostname: dir.join("hostname"),
    };
    std::fs::write(&paths.hosts, HOSTS).unwrap();
    std::fs::write(&paths.nsswitch, format!("passwd: files\n{hosts_line}\n")).unwrap();
    std::fs::write(&paths.resolv_conf, resolv).unwrap();
    std::fs::write(&paths.hostname, "vm\n").unwrap();
    let mut cfg = Config::default();
    cfg.dns.nameservers = vec![server.local_addr().to_string()];
    cfg.timeouts.dns = Duration::from_secs(3);
    Resolver::with_system(&cfg, paths).unwrap()
}

/// Names the server was asked about, in order, once each (A and AAAA are two questions).
fn asked(server: &TestDns) -> Vec<String> {
    let mut names = server.queries();
    names.dedup();
    names
}

fn ips(v: &[&str]) -> Vec<IpAddr> {
    v.iter().map(|a| a.parse().unwrap()).collect()
}

#[tokio::test]
async fn hosts_file_wins_when_files_come_first() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestDns::start("127.0.0.1:0".parse().unwrap(), zone());
    let r = resolver(
        dir.path(),
        &server,
        "hosts: files dns",
        "search corp.example\n",
    );

    let got = r.resolve("both.example", 443).await.unwrap();
    assert_eq!(got.answer.addresses, ips(&["10.9.8.7", "fd00::9"]));
    assert_eq!(got.answer.source, DnsSource::HostsFile);
    let origin = got.answer.hosts_file.clone().unwrap();
    assert_eq!(origin.lines, vec![3, 4]);
    assert_eq!(origin.path, dir.path().join("hosts").display().to_string());
    assert_eq!(got.addrs[0], "10.9.8.7:443".parse().unwrap());
    assert!(!server.was_asked("both.example"), "{:?}", server.queries());

    // What the failure and connection records write.
    let v = serde_json::to_value(&got.answer).unwrap();
    assert_eq!(v["source"], "hosts_file");
    assert_eq!(v["hosts_file"]["lines"], serde_json::json!([3, 4]));
    assert_eq!(v["addresses"], serde_json::json!(["10.9.8.7", "fd00::9"]));
    assert!(v.get("name").is_none(), "{v}");

    // The hosts file is matched as asked (case and trailing dot aside), never with the search
    // list: `pinned` is not `pinned.corp.example`, and DNS has neither.
    let got = r.resolve("Both.Example.", 443).await.unwrap();
    assert_eq!(got.answer.source, DnsSource::HostsFile);
    let e = r.resolve("pinned", 443).await.unwrap_err();
    assert_eq!(
        e,
        ResolveError::NxDomain {
            host: "pinned".into()
        }
    );
    assert_eq!(
        asked(&server),
        vec!["pinned.corp.example".to_string(), "pinned".to_string()]
    );
}

#[tokio::test]
async fn dns_wins_with_dns_before_files_and_files_answer_what_dns_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestDns::start("127.0.0.1:0".parse().unwrap(), zone());
    let r = resolver(
        dir.path(),
        &server,
        "hosts: dns [NOTFOUND=return] files myhostname",
        "search corp.example\n",
    );

    let got = r.resolve("both.example", 443).await.unwrap();
    assert_eq!(got.answer.addresses, ips(&["192.0.2.1"]));
    assert_eq!(got.answer.source, DnsSource::Dns);
    assert_eq!(got.answer.hosts_file, None);
    assert_eq!(serde_json::to_value(&got.answer).unwrap()["source"], "dns");

    // NXDOMAIN from DNS (as asked and with the suffix), then the hosts file answers.
    let got = r.resolve("onlyhosts.example", 443).await.unwrap();
    assert_eq!(got.answer.addresses, ips(&["10.9.8.8"]));
    assert_eq!(got.answer.source, DnsSource::HostsFile);
    assert!(server.was_asked("onlyhosts.example"));
    assert!(server.was_asked("onlyhosts.example.corp.example"));
}

#[tokio::test]
async fn search_list_and_ndots_as_go_applies_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestDns::start("127.0.0.1:0".parse().unwrap(), zone());
    let r = resolver(
        dir.path(),
        &server,
        "hosts: files dns",
        "nameserver 192.0.2.53\nsearch corp.example\n",
    );

    // A bare name is found with the search domain, and the record says so.
    let got = r.resolve("myregistry", 443).await.unwrap();
    assert_eq!(got.answer.addresses, ips(&["192.0.2.2"]));
    assert_eq!(got.answer.source, DnsSource::Dns);
    assert_eq!(got.answer.name.as_deref(), Some("myregistry.corp.example"));
    let v = serde_json::to_value(&got.answer).unwrap();
    assert_eq!(v["name"], "myregistry.corp.example");
    assert_eq!(asked(&server), vec!["myregistry.corp.example".to_string()]);

    // ndots 1 (Go's default): a dotted name is tried as it is first.
    server.clear_log();
    let got = r.resolve("dotted.example", 443).await.unwrap();
    assert_eq!(got.answer.addresses, ips(&["192.0.2.4"]));
    assert_eq!(got.answer.name, None);
    assert_eq!(asked(&server), vec!["dotted.example".to_string()]);

    // A rooted name is tried only as it is.
    server.clear_log();
    let e = r.resolve("myregistry.", 443).await.unwrap_err();
    assert!(
        matches!(e, ResolveError::NxDomain { ref host } if host == "myregistry"),
        "{e}"
    );
    assert_eq!(asked(&server), vec!["myregistry".to_string()]);

    // Absent everywhere: NXDOMAIN for the name asked, after every candidate.
    server.clear_log();
    let e = r.resolve("nowhere.azurecr.io", 443).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "nowhere.azurecr.io does not exist (NXDOMAIN)"
    );
    assert_eq!(
        asked(&server),
        vec![
            "nowhere.azurecr.io".to_string(),
            "nowhere.azurecr.io.corp.example".to_string()
        ]
    );
}

#[tokio::test]
async fn ndots_from_resolv_conf_puts_the_suffixes_first() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestDns::start("127.0.0.1:0".parse().unwrap(), zone());
    let r = resolver(
        dir.path(),
        &server,
        "hosts: files dns",
        "search corp.example\noptions ndots:2\n",
    );
    // One dot is fewer than two: the suffixed name goes first, and answers.
    let got = r.resolve("dotted.example", 443).await.unwrap();
    assert_eq!(got.answer.addresses, ips(&["192.0.2.3"]));
    assert_eq!(
        got.answer.name.as_deref(),
        Some("dotted.example.corp.example")
    );
    assert_eq!(
        asked(&server),
        vec!["dotted.example.corp.example".to_string()]
    );
}

#[tokio::test]
async fn files_only_never_asks_dns_and_overrides_come_first() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestDns::start("127.0.0.1:0".parse().unwrap(), zone());
    let r = resolver(dir.path(), &server, "hosts: files", "");
    let e = r
        .resolve("both.example.corp.example", 443)
        .await
        .unwrap_err();
    assert!(matches!(e, ResolveError::NxDomain { .. }), "{e}");
    let got = r.resolve("onlyhosts.example", 443).await.unwrap();
    assert_eq!(got.answer.source, DnsSource::HostsFile);
    assert!(server.queries().is_empty(), "{:?}", server.queries());

    // `[dns] overrides` are consulted before the hosts file.
    let paths = SystemPaths {
        hosts: dir.path().join("hosts"),
        nsswitch: dir.path().join("nsswitch.conf"),
        resolv_conf: dir.path().join("resolv.conf"),
        hostname: dir.path().join("hostname"),
    };
    let mut cfg = Config::default();
    cfg.dns.nameservers = vec![server.local_addr().to_string()];
    cfg.dns
        .overrides
        .insert("onlyhosts.example".into(), ips(&["10.0.0.1"]));
    let r = Resolver::with_system(&cfg, paths).unwrap();
    let got = r.resolve("onlyhosts.example", 443).await.unwrap();
    assert_eq!(got.answer.source, DnsSource::Override);
    assert_eq!(got.answer.addresses, ips(&["10.0.0.1"]));
}
