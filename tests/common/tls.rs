//! A test client's TLS configuration, as a registry client would hold it: one CA trusted (the
//! one under test, regdoc's or a fixture's), ring as the provider, rustls's default versions.

use std::sync::Arc;

/// A client configuration trusting `trust` alone and offering `alpn`.
pub fn client_config(
    alpn: Vec<Vec<u8>>,
    trust: &rustls::pki_types::CertificateDer<'static>,
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust.clone()).unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = alpn;
    cfg
}
