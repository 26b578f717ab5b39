//! Micro-benchmarks of the observation parsers, on inputs a real registry session produces.
//!
//! The ClientHello and ServerHello are written by rustls in memory (no sockets), the rest are the
//! header, path and token shapes ACR sends.

use std::hint::black_box;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion};
use rustls::crypto::ring;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

use regdoc::endpoint;
use regdoc::http::{challenge, credentials, jwt, path};
use regdoc::tls::{client_hello, server_hello};

/// The client's and the server's first flights of a TLS 1.3 handshake with ALPN.
fn capture_flights() -> (Vec<u8>, Vec<u8>) {
    let host = "myregistry.azurecr.io";
    let certified = rcgen::generate_simple_self_signed(vec![host.to_string()]).unwrap();
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let provider = Arc::new(ring::default_provider());

    let mut roots = RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let mut cc = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cc.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut sc = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    sc.alpn_protocols = vec![b"h2".to_vec()];

    let mut client =
        ClientConnection::new(Arc::new(cc), ServerName::try_from(host).unwrap()).unwrap();
    let mut hello = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut hello).unwrap();
    }
    let mut server = ServerConnection::new(Arc::new(sc)).unwrap();
    let mut rd = &hello[..];
    while !rd.is_empty() {
        server.read_tls(&mut rd).unwrap();
    }
    server.process_new_packets().unwrap();
    let mut answer = Vec::new();
    while server.wants_write() {
        server.write_tls(&mut answer).unwrap();
    }
    (hello, answer)
}

fn access_token() -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT","kid":"ABCD:EFGH"}"#);
    let payload = URL_SAFE_NO_PAD.encode(
        serde_json::json!({
            "jti": "b3f1c2d4-0000-4000-8000-000000000001",
            "sub": "user@contoso.com",
            "nbf": 1_700_000_000,
            "exp": 1_700_004_500,
            "iat": 1_700_000_000,
            "iss": "Azure Container Registry",
            "aud": "myregistry.azurecr.io",
            "version": "1.0",
            "grant_type": "access_token",
            "access": [{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}]
        })
        .to_string(),
    );
    let signature = URL_SAFE_NO_PAD.encode([0x5au8; 256]);
    format!("{header}.{payload}.{signature}")
}

fn bench(c: &mut Criterion) {
    let (hello, answer) = capture_flights();
    assert!(client_hello::parse(&hello).is_ok());
    assert!(server_hello::parse(&answer).is_ok());

    c.bench_function("client_hello_parse", |b| {
        b.iter(|| client_hello::parse(black_box(&hello)))
    });
    c.bench_function("client_hello_looks_like_tls", |b| {
        b.iter(|| client_hello::looks_like_tls(black_box(&hello[..8])))
    });
    c.bench_function("server_hello_parse", |b| {
        b.iter(|| server_hello::parse(black_box(&answer)))
    });

    let configured = vec!["registry.internal.example".to_string()];
    c.bench_function("endpoint_classify_data", |b| {
        b.iter(|| {
            endpoint::classify(
                black_box("MyRegistry.WestEurope.data.azurecr.io."),
                &configured,
            )
        })
    });
    c.bench_function("endpoint_classify_other", |b| {
        b.iter(|| endpoint::classify(black_box("registry-1.docker.io"), &configured))
    });

    let header = r#"Bearer realm="https://myregistry.azurecr.io/oauth2/token",service="myregistry.azurecr.io",scope="repository:team/app:pull,push",error="insufficient_scope""#;
    c.bench_function("challenge_parse", |b| {
        b.iter(|| challenge::parse(black_box(header)))
    });

    let token = access_token();
    c.bench_function("jwt_decode_claims", |b| {
        b.iter(|| jwt::decode_claims(black_box(&token)))
    });
    let bearer = format!("Bearer {token}");
    c.bench_function("credentials_describe_bearer", |b| {
        b.iter(|| credentials::describe(black_box(&bearer)))
    });

    c.bench_function("path_classify_manifest", |b| {
        b.iter(|| {
            path::classify(
                black_box("HEAD"),
                black_box("/v2/team/app/manifests/v1.2.3"),
            )
        })
    });
    c.bench_function("path_classify_token", |b| {
        b.iter(|| {
            path::classify(
                black_box("GET"),
                black_box("/oauth2/token?account=00000000-0000-0000-0000-000000000000&client_id=docker&offline_token=true&scope=repository%3Ateam%2Fapp%3Apull&service=myregistry.azurecr.io"),
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
