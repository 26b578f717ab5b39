//! Micro-benchmarks of the per-failure and per-connection work: diagnosing a failure, judging
//! an intercepted exchange, and encoding the records. None of this runs per byte; these figures
//! say what one failure or one connection costs, and what counting them in `/metrics` adds.

use criterion::{criterion_group, criterion_main, Criterion};
use regdoc::config::Config;
use regdoc::diagnose::Diagnoser;
use regdoc::endpoint::classify;
use regdoc::http::challenge;
use regdoc::observe::{DnsAnswer, FailureEvent, FailureKind, HttpExchange, Phase, TlsObservation};
use regdoc::record::{failure_record, ConnectionRecord, PhaseOutcome};
use std::hint::black_box;
use std::time::Duration;

fn event(host: &str, kind: FailureKind, phase: Phase) -> FailureEvent {
    FailureEvent {
        conn_id: 42,
        client: "127.0.0.1:50000".parse().unwrap(),
        target: format!("{host}:443"),
        host: host.to_string(),
        port: 443,
        endpoint: classify(host, &[]),
        phase,
        kind,
        error: format!("connection to 20.50.2.4:443 refused ({host})"),
        dns: Some(DnsAnswer {
            cnames: vec![
                "myregistry.privatelink.azurecr.io".into(),
                "weu-acr-reg.trafficmanager.net".into(),
            ],
            addresses: vec!["20.50.2.4".parse().unwrap()],
            source: regdoc::observe::DnsSource::Dns,
            ..DnsAnswer::default()
        }),
        tls: None,
        http: None,
        upstream_proxy: None,
        elapsed_ms: 3,
        client_gave_up: false,
    }
}

fn bench(c: &mut Criterion) {
    let d = Diagnoser::new(&Config::default());
    let refused = event(
        "myregistry.azurecr.io",
        FailureKind::ConnectRefused,
        Phase::Connect,
    );
    c.bench_function("diagnose_connect_refused_rest", |b| {
        b.iter(|| black_box(d.diagnose(black_box(&refused))))
    });
    let nx = event(
        "myregistyr.azurecr.io",
        FailureKind::DnsNxDomain,
        Phase::Dns,
    );
    c.bench_function("diagnose_dns_nxdomain", |b| {
        b.iter(|| black_box(d.diagnose(black_box(&nx))))
    });

    let ex = HttpExchange {
        method: "GET".into(),
        path_class: "token".into(),
        status: 401,
        www_authenticate: challenge::parse(
            "Bearer realm=\"https://myregistry.azurecr.io/oauth2/token\",service=\"myregistry.azurecr.io\"",
        ),
        registry_errors: regdoc::http::registry_error::parse(
            br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required, visit https://aka.ms/acr/authorization for more information."}]}"#,
            &regdoc::redact::Redactor::default(),
        ),
        auth: regdoc::http::credentials::describe("Basic YWxpY2U6d3Jvbmc="),
        ..HttpExchange::default()
    };
    let ep = classify("myregistry.azurecr.io", &[]);
    let ip = "127.0.0.1".parse().unwrap();
    c.bench_function("judge_exchange_wrong_password", |b| {
        b.iter(|| {
            black_box(d.judge_exchange(ip, "myregistry.azurecr.io", 443, &ep, None, black_box(&ex)))
        })
    });

    let findings = d.diagnose(&refused);
    c.bench_function("encode_failure_record", |b| {
        b.iter(|| {
            let rec = failure_record(
                black_box(&refused),
                &findings,
                Some((502, "regdoc client_firewall: refused")),
                None,
                None,
                regdoc::config::ClientKind::Docker,
            );
            black_box(serde_json::to_string(&rec).unwrap())
        })
    });

    let mut conn = ConnectionRecord::new(42, "127.0.0.1:50000".parse().unwrap());
    conn.timestamp = "2026-11-23T19:00:00.000Z".into();
    conn.mode = regdoc::record::Mode::Tunnel;
    conn.target = Some("myregistry.westeurope.data.azurecr.io:443".into());
    conn.set_endpoint(&classify("myregistry.westeurope.data.azurecr.io", &[]));
    conn.resolved = vec!["20.50.2.4:443".into()];
    conn.phases.dns = Some(PhaseOutcome::new("ok", Duration::from_micros(830)));
    conn.phases.connect = Some(PhaseOutcome::new("ok", Duration::from_micros(1200)));
    conn.phases.tls = Some(PhaseOutcome::new("ok", Duration::from_micros(9100)));
    conn.set_tls(&TlsObservation {
        sni: Some("myregistry.westeurope.data.azurecr.io".into()),
        alpn: vec!["h2".into(), "http/1.1".into()],
        version: Some("TLS1.3".into()),
        cipher: Some("TLS13_AES_128_GCM_SHA256".into()),
        ..TlsObservation::default()
    });
    conn.bytes_down = 734_003_200;
    c.bench_function("encode_connection_record", |b| {
        b.iter(|| black_box(serde_json::to_string(black_box(&conn)).unwrap()))
    });

    // What `[admin]` adds per connection and per failure (label lookups, counters, histogram
    // observations), beside the record encoding above.
    let cfg = Config::parse(
        "[[registry]]\nhost = \"myregistry.azurecr.io\"\n",
        std::path::Path::new("bench.toml"),
    )
    .unwrap();
    let metrics = regdoc::metrics::Metrics::new(&cfg);
    c.bench_function("metrics_connection_ended", |b| {
        b.iter(|| metrics.connection_ended(black_box(&conn)))
    });
    c.bench_function("metrics_failure", |b| {
        b.iter(|| metrics.failure("client_firewall", black_box(&refused)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
