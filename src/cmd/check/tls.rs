//! The TLS phase: a full handshake (the check goes on to send HTTP over it) trusted as `run`
//! trusts upstreams (system roots plus `intercept.extra_roots`), with the presented chain kept
//! either way and judged by regdoc's certificate probe: who issued it, and whether it reaches a
//! public root.

use crate::config::Config;
use crate::intercept::upstream_tls::{
    add_extra_roots, handshake_error, system_roots, verifier, RootsError, UpstreamTlsError,
};
use crate::net::prefixed::Prefixed;
use crate::net::probe::Prober;
use crate::net::upstream::UpstreamProxy;
use crate::observe::CertProbe;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;

/// What the check trusts, and how it judges what it is shown.
pub struct Trust {
    /// System roots plus `intercept.extra_roots`: what decides whether the check goes on.
    verifier: Arc<WebPkiServerVerifier>,
    /// Judges a presented chain the way regdoc's certificate probe does.
    prober: Prober,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

/// A handshake that worked.
pub struct Handshake {
    pub stream: TlsStream,
    /// `TLS1.3`, `TLS1.2`.
    pub version: Option<String>,
    pub probe: CertProbe,
}

impl Trust {
    pub fn from_config(cfg: &Config) -> Result<Trust, RootsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = system_roots();
        add_extra_roots(&mut roots, &cfg.intercept.extra_roots)?;
        let verifier = verifier(roots, &provider)?;
        // The check always looks at the certificate, whatever `[probe]` says for `run`.
        let mut probing = cfg.clone();
        probing.probe.enabled = true;
        let prober = Prober::from_config(&probing)?.ok_or(RootsError::Empty)?;
        Ok(Trust {
            verifier,
            prober,
            provider,
        })
    }

    /// A full handshake (the check goes on to send HTTP), judged against the system roots plus
    /// `extra_roots`; the presented chain is kept either way to say who issued it.
    pub async fn handshake(
        &self,
        io: Prefixed<TcpStream>,
        host: &str,
        via: Option<&UpstreamProxy>,
        deadline: Duration,
    ) -> Result<Handshake, TlsFailure> {
        let name = ServerName::try_from(host.to_string()).map_err(|e| {
            TlsFailure::Handshake(UpstreamTlsError::Handshake {
                detail: format!("{host:?} is not a valid server name: {e}"),
            })
        })?;
        let capture = Arc::new(Capture {
            inner: self.verifier.clone(),
            chain: Mutex::new(Vec::new()),
        });
        let mut cfg = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| {
                TlsFailure::Handshake(UpstreamTlsError::Handshake {
                    detail: e.to_string(),
                })
            })?
            .dangerous()
            .with_custom_certificate_verifier(capture.clone())
            .with_no_client_auth();
        // One protocol the check drives phase by phase.
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
        let result = tokio::time::timeout(deadline, connector.connect(name, io)).await;
        let chain = capture
            .chain
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut probe = match via {
            Some(p) => CertProbe::new("upstream_proxy", p.display(), host, super::path::unix_now()),
            None => CertProbe::new("direct", host.to_string(), host, super::path::unix_now()),
        };
        self.prober.judge(&mut probe, &chain, host);
        match result {
            Ok(Ok(stream)) => {
                let version = stream
                    .get_ref()
                    .1
                    .protocol_version()
                    .map(|v| tls_version_name(v).to_string());
                Ok(Handshake {
                    stream,
                    version,
                    probe,
                })
            }
            // The handshake failed on the chain itself: the probe's judgement says why.
            Ok(Err(_)) if !chain.is_empty() && probe.problem.is_some() => {
                Err(TlsFailure::Refused(Box::new(probe)))
            }
            Ok(Err(e)) => Err(TlsFailure::Handshake(handshake_error(&e))),
            Err(_) => Err(TlsFailure::Handshake(UpstreamTlsError::Timeout {
                secs: deadline.as_secs(),
            })),
        }
    }
}

pub type TlsStream = tokio_rustls::client::TlsStream<Prefixed<TcpStream>>;

pub enum TlsFailure {
    /// The chain was refused; the probe says why and who issued it.
    Refused(Box<CertProbe>),
    Handshake(UpstreamTlsError),
}

fn tls_version_name(v: rustls::ProtocolVersion) -> &'static str {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLS1.3",
        rustls::ProtocolVersion::TLSv1_2 => "TLS1.2",
        _ => "TLS (older)",
    }
}

/// The trusted verifier, keeping the chain the server presented.
#[derive(Debug)]
struct Capture {
    inner: Arc<WebPkiServerVerifier>,
    chain: Mutex<Vec<CertificateDer<'static>>>,
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        *self.chain.lock().unwrap_or_else(|p| p.into_inner()) = chain;
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
