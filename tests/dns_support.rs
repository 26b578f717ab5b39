//! The loopback test DNS server answers real resolvers as a DNS server would.

mod common;

use common::dns::{TestDns, Zone};
use hickory_resolver::config::{NameServerConfig, Protocol, ResolverConfig, ResolverOpts};
use hickory_resolver::error::ResolveErrorKind;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioAsyncResolver;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// A resolver that asks only `server` (no system configuration, no hosts file, no cache).
fn resolver(server: &TestDns, protocol: Protocol) -> TokioAsyncResolver {
    let config = ResolverConfig::from_parts(
        None,
        vec![],
        vec![NameServerConfig::new(server.local_addr(), protocol)],
    );
    let mut opts = ResolverOpts::default();
    opts.cache_size = 0;
    opts.use_hosts_file = false;
    opts.attempts = 1;
    opts.timeout = Duration::from_secs(2);
    TokioAsyncResolver::tokio(config, opts)
}

fn private_link_zone() -> Zone {
    Zone::new()
        .cname("myreg.azurecr.io", "myreg.privatelink.azurecr.io")
        .a("myreg.privatelink.azurecr.io", [10, 1, 2, 3])
        .a("plain.example", [192, 0, 2, 10])
        .a("plain.example", [192, 0, 2, 11])
        .aaaa("plain.example", "2001:db8::10".parse::<Ipv6Addr>().unwrap())
        .nodata("v6only.example")
        .servfail("broken.example")
}

#[tokio::test]
async fn a_and_aaaa_records() {
    let server = TestDns::start("127.0.0.1:0".parse().unwrap(), private_link_zone());
    let r = resolver(&server, Protocol::Udp);
    let ips: Vec<IpAddr> = r
        .lookup_ip("plain.example.")
        .await
        .unwrap()
        .iter()
        .collect();
    assert!(
        ips.contains(&IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))),
        "{ips:?}"
    );
    assert!(
        ips.contains(&IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11))),
        "{ips:?}"
    );
    let v6: Vec<IpAddr> = r
        .lookup("plain.example.", RecordType::AAAA)
        .await
        .unwrap()
        .iter()
        .filter_map(|d| d.ip_addr())
        .collect();
    assert_eq!(v6, vec!["2001:db8::10".parse::<IpAddr>().unwrap()]);
    assert!(server.was_asked("plain.example"));
    assert!(server.questions().iter().all(|q| !q.tcp));
}

#[tokio::test]
async fn cname_chain_to_a_private_endpoint() {
    let server = TestDns::start("127.0.0.1:0".parse().unwrap(), private_link_zone());
    let r = resolver(&server, Protocol::Udp);
    let lookup = r.lookup("myreg.azurecr.io.", RecordType::A).await.unwrap();
    let records: Vec<_> = lookup.record_iter().collect();
    let cname = records
        .iter()
        .find_map(|rec| match rec.data() {
            Some(RData::CNAME(c)) => Some(c.0.to_ascii()),
            _ => None,
        })
        .expect("CNAME in the answer");
    assert_eq!(cname, "myreg.privatelink.azurecr.io.");
    let a: Vec<_> = lookup
        .iter()
        .filter_map(|d| match d {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    assert_eq!(a, vec![Ipv4Addr::new(10, 1, 2, 3)]);
    // The server answered the chain itself: only the original name was asked.
    assert_eq!(server.queries(), vec!["myreg.azurecr.io".to_string()]);
    assert!(!server.was_asked("myreg.privatelink.azurecr.io"));
}

#[tokio::test]
async fn nxdomain_nodata_and_servfail() {
    let server = TestDns::start("127.0.0.1:0".parse().unwrap(), private_link_zone());
    let r = resolver(&server, Protocol::Udp);
    let code = |e: hickory_resolver::error::ResolveError| match e.kind() {
        ResolveErrorKind::NoRecordsFound { response_code, .. } => Some(*response_code),
        _ => None,
    };

    let e = r
        .lookup("typo.azurecr.io.", RecordType::A)
        .await
        .unwrap_err();
    assert_eq!(code(e), Some(ResponseCode::NXDomain));

    let e = r
        .lookup("v6only.example.", RecordType::A)
        .await
        .unwrap_err();
    assert_eq!(code(e), Some(ResponseCode::NoError));

    let e = r
        .lookup("broken.example.", RecordType::A)
        .await
        .unwrap_err();
    assert_ne!(code(e), Some(ResponseCode::NoError));
    assert!(server.was_asked("broken.example"));
}

#[tokio::test]
async fn tcp_and_truncation_fallback() {
    let server = TestDns::start("127.0.0.1:0".parse().unwrap(), private_link_zone());
    let r = resolver(&server, Protocol::Tcp);
    let ips: Vec<IpAddr> = r
        .lookup("plain.example.", RecordType::A)
        .await
        .unwrap()
        .iter()
        .filter_map(|d| d.ip_addr())
        .collect();
    assert_eq!(ips.len(), 2);
    assert!(server.questions().iter().all(|q| q.tcp));

    // A truncated UDP answer sends the resolver to TCP on the same port.
    let server = TestDns::start(
        "127.0.0.1:0".parse().unwrap(),
        private_link_zone().truncate_udp(),
    );
    let mut config = ResolverConfig::new();
    config.add_name_server(NameServerConfig::new(server.local_addr(), Protocol::Udp));
    config.add_name_server(NameServerConfig::new(server.local_addr(), Protocol::Tcp));
    let mut opts = ResolverOpts::default();
    opts.cache_size = 0;
    opts.use_hosts_file = false;
    opts.attempts = 1;
    let r = TokioAsyncResolver::tokio(config, opts);
    let lookup = r.lookup("plain.example.", RecordType::A).await.unwrap();
    assert_eq!(lookup.iter().count(), 2);
    let qs = server.questions();
    assert!(
        qs.iter().any(|q| !q.tcp) && qs.iter().any(|q| q.tcp),
        "{qs:?}"
    );
}

#[tokio::test]
async fn zone_can_change_while_running_and_the_log_can_be_cleared() {
    let server = TestDns::start("127.0.0.1:0".parse().unwrap(), Zone::new());
    let r = resolver(&server, Protocol::Udp);
    assert!(r.lookup("late.example.", RecordType::A).await.is_err());
    server.set_zone(Zone::new().a("late.example", [192, 0, 2, 99]));
    server.clear_log();
    let lookup = r.lookup("late.example.", RecordType::A).await.unwrap();
    assert_eq!(
        lookup.iter().next().and_then(|d| d.ip_addr()),
        Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99)))
    );
    assert_eq!(server.queries(), vec!["late.example".to_string()]);
}

#[tokio::test]
async fn a_silent_name_times_out() {
    let server = TestDns::start(
        "127.0.0.1:0".parse().unwrap(),
        Zone::new().silent("slow.example"),
    );
    let config = ResolverConfig::from_parts(
        None,
        vec![],
        vec![NameServerConfig::new(server.local_addr(), Protocol::Udp)],
    );
    let mut opts = ResolverOpts::default();
    opts.cache_size = 0;
    opts.use_hosts_file = false;
    opts.attempts = 1;
    opts.timeout = Duration::from_millis(300);
    let r = TokioAsyncResolver::tokio(config, opts);
    let e = r.lookup("slow.example.", RecordType::A).await.unwrap_err();
    assert!(matches!(e.kind(), ResolveErrorKind::Timeout), "{e:?}");
    assert!(server.was_asked("slow.example"));
}
