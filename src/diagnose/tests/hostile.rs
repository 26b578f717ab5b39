//! Hostile input: generated events and exchanges never panic, and evidence stays bounded,
//! printable and free of tokens.

use super::*;
use crate::observe::{CertProblem, EarlyClose, HostsOrigin};

/// A small deterministic generator: no dependency, same cases on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
    fn text(&mut self) -> String {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl";
        let pieces = [
            "",
            "client with IP '203.0.113.9' is not allowed access",
            "\r\n\u{0}\u{1b}[31m",
            "Application not registered with AAD.",
            jwt,
            "é€😀",
            "sig=AAAABBBBCCCC",
            "admin user is disabled",
            "x",
            "    ",
        ];
        let mut s = String::new();
        for _ in 0..(self.next() % 4) {
            let p = *self.pick::<&str>(&pieces);
            s.push_str(p);
        }
        if self.next().is_multiple_of(10) {
            s.push_str(&"A".repeat(20_000));
        }
        s
    }
    fn opt_i64(&mut self) -> Option<i64> {
        *self.pick(&[
            None,
            Some(i64::MIN),
            Some(i64::MAX),
            Some(0),
            Some(NOW as i64 - 10),
            Some(NOW as i64 + 10_000),
        ])
    }
}

#[test]
fn hostile_inputs_never_panic_and_evidence_stays_bounded() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let d = diagnoser(vec![private_registry(REG)]);
    let hosts = [
        REG,
        DATA,
        "weuacct0123.blob.core.windows.net",
        "example.com",
        "10.0.0.1",
        "",
        "MY-REG.azurecr.io",
        "é.azurecr.io",
    ];
    let jwt_marker = "eyJhbGci";
    for i in 0..3000u64 {
        let host = *rng.pick(&hosts);
        let kind = match i % 25 {
            0 => FailureKind::MalformedRequest,
            1 => FailureKind::HeadTooLarge { limit: 1 },
            2 => FailureKind::RequestTimeout,
            3 => FailureKind::TlsInsteadOfHttp,
            4 => FailureKind::ClientNotAllowed,
            5 => FailureKind::PortNotAllowed { port: 0 },
            6 => FailureKind::ProxyAuthRequired { provided: true },
            7 => FailureKind::DnsNxDomain,
            8 => FailureKind::DnsNoAddresses,
            9 => FailureKind::DnsTimeout,
            10 => FailureKind::DnsError,
            11 => FailureKind::ConnectRefused,
            12 => FailureKind::ConnectTimeout,
            13 => FailureKind::ConnectUnreachable,
            14 => FailureKind::UpstreamProxyStatus {
                status: (rng.next() % 1000) as u16,
                reason: rng.text(),
            },
            15 => FailureKind::UpstreamProxyClosed,
            16 => FailureKind::TlsServerSilent,
            17 => FailureKind::TlsAlert {
                level: rng.text(),
                description: rng.text(),
            },
            18 => FailureKind::TlsNotTls,
            19 => FailureKind::TlsUpstreamCertificate {
                problem: *rng.pick(&[
                    CertProblem::UnknownIssuer,
                    CertProblem::Expired,
                    CertProblem::NameMismatch,
                    CertProblem::Other,
                ]),
                detail: rng.text(),
            },
            20 => FailureKind::TlsClientRejected { detail: rng.text() },
            21 => FailureKind::ResponseHeadersTimeout,
            22 => FailureKind::TransferStalled {
                idle_secs: u64::MAX,
                bytes_before: u64::MAX,
            },
            23 => FailureKind::UpstreamClosedBeforeHeaders {
                how: *rng.pick(&[EarlyClose::Closed, EarlyClose::Reset, EarlyClose::Error]),
            },
            _ => FailureKind::HttpStatus {
                status: (rng.next() % 1000) as u16,
            },
        };
        let mut ev = event(host, kind);
        ev.error = rng.text();
        if rng.next().is_multiple_of(2) {
            let source = *rng.pick(&[
                DnsSource::Dns,
                DnsSource::HostsFile,
                DnsSource::Override,
                DnsSource::Literal,
                DnsSource::ConnectTo,
            ]);
            ev.dns = Some(DnsAnswer {
                cnames: (0..rng.next() % 20).map(|_| rng.text()).collect(),
                addresses: (0..rng.next() % 3)
                    .map(|_| *rng.pick(&["10.1.2.3", "20.1.2.3", "::1", "fd00::5", "127.0.0.1"]))
                    .map(|a| a.parse().unwrap())
                    .collect(),
                source,
                name: rng.next().is_multiple_of(3).then(|| rng.text()),
                hosts_file: (source == DnsSource::HostsFile).then(|| HostsOrigin {
                    path: rng.text(),
                    lines: (0..rng.next() % 4).map(|_| rng.next() as usize).collect(),
                }),
            });
        }
        let claims = Claims {
            exp: rng.opt_i64(),
            nbf: rng.opt_i64(),
            iat: rng.opt_i64(),
            access: Some(vec![Access {
                kind: rng.text(),
                name: rng.text(),
                actions: vec![rng.text()],
            }]),
            grant_type: Some(rng.pick(&["refresh_token", "access_token", ""]).to_string()),
            ..Claims::default()
        };
        let ex = HttpExchange {
            method: rng
                .pick(&["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "", "BREW"])
                .to_string(),
            path_class: rng
                .pick(&[
                    "ping", "token", "exchange", "manifest", "blob", "upload", "catalog", "tags",
                    "other",
                ])
                .to_string(),
            repository: Some(rng.text()),
            reference: Some(rng.text()),
            status: (rng.next() % 1000) as u16,
            www_authenticate: rng.next().is_multiple_of(2).then(|| Challenge {
                scheme: rng.text(),
                error: Some(rng.text()),
                ..Challenge::default()
            }),
            registry_errors: vec![acr_error(&rng.text(), &rng.text())],
            body_text: Some(rng.text()),
            location: Some(format!("https://{}/x?sig={}", rng.text(), rng.text())),
            auth: rng.next().is_multiple_of(2).then(|| CredentialFacts {
                scheme: rng.pick(&["basic", "bearer", ""]).to_string(),
                username_kind: Some(*rng.pick(&[
                    UsernameKind::NullGuidToken,
                    UsernameKind::ServicePrincipal,
                    UsernameKind::Other,
                ])),
                claims: Some(claims.clone()),
                empty_secret: rng.next().is_multiple_of(2),
                malformed: rng.next().is_multiple_of(2),
            }),
            issued_token: Some(claims),
            user_agent: Some(rng.text()),
            date_skew_secs: rng.opt_i64(),
            requested_scopes: vec![rng.text()],
            ..HttpExchange::default()
        };
        if rng.next().is_multiple_of(2) {
            ev.http = Some(ex.clone());
        }
        let mut all = d.diagnose_at(&ev, later(i));
        all.extend(d.judge_exchange_at(
            client(),
            host,
            443,
            &classify(host, &[]),
            None,
            &ex,
            later(i),
        ));
        for f in &all {
            let s = sym(&ev, Some(&rng.text()));
            assert!(!s.contains(jwt_marker), "{s}");
            for e in &f.evidence {
                let chars = e.chars().count();
                assert!(chars <= 2 * text::MAX_EVIDENCE_CHARS, "{chars} chars");
                assert!(!e.chars().any(char::is_control), "{e:?}");
                assert!(!e.contains(jwt_marker), "{e}");
            }
        }
    }
}
