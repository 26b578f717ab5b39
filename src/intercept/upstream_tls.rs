//! TLS from regdoc to the real server of an intercepted connection.
//!
//! Trust: the system roots plus `intercept.extra_roots`. A certificate that fails verification
//! is an observation, not a reason to carry on: the failure is typed ([`CertProblem`]) with the
//! presented certificate's issuer and names, and the connection to the server is not used.

use crate::observe::CertProblem;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionMemoryCache, Resumption, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Why the upstream trust store could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RootsError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("no trusted roots: the system store is empty and no intercept.extra_roots are set")]
    Empty,
    #[error("cannot build the certificate verifier: {0}")]
    Verifier(String),
}

/// A failed upstream TLS handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamTlsError {
    /// The server's certificate was refused.
    Certificate {
        problem: CertProblem,
        detail: String,
    },
    /// The server answered with a TLS alert.
    Alert { description: String },
    /// The server closed the connection during the handshake.
    Closed { detail: String },
    /// The server, or a device on the path, reset the connection during the handshake (a
    /// firewall filtering by SNI does this in answer to the ClientHello).
    Reset { detail: String },
    /// The server's bytes are not TLS.
    NotTls { detail: String },
    /// The server did not finish the handshake in time.
    Timeout { secs: u64 },
    /// Anything else (a name that cannot be used, a local configuration problem).
    Handshake { detail: String },
}

impl std::fmt::Display for UpstreamTlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamTlsError::Certificate { problem, detail } => {
                write!(f, "upstream certificate refused ({problem:?}): {detail}")
            }
            UpstreamTlsError::Alert { description } => {
                write!(
                    f,
                    "the server refused the TLS handshake with alert {description}"
                )
            }
            UpstreamTlsError::Closed { detail } => {
                write!(
                    f,
                    "the server closed the connection during the TLS handshake ({detail})"
                )
            }
            UpstreamTlsError::Reset { detail } => {
                write!(
                    f,
                    "the connection was reset (TCP RST) during the TLS handshake ({detail})"
                )
            }
            UpstreamTlsError::NotTls { detail } => {
                write!(f, "the server did not answer with TLS ({detail})")
            }
            UpstreamTlsError::Timeout { secs } => {
                write!(
                    f,
                    "the server did not finish the TLS handshake within {secs} s"
                )
            }
            UpstreamTlsError::Handshake { detail } => {
                write!(f, "upstream TLS handshake failed: {detail}")
            }
        }
    }
}

/// The server side of an intercepted connection, buffered both ways. rustls asks its transport
/// for about one TLS record (16 KiB) per read and hands it one record per write; unbuffered,
/// a layer download costs a system call per record on each side. Buffers take whatever the
/// socket holds in one call, and send a flush's worth of records in one call (hyper and
/// tokio-rustls flush after every write they mean to be sent).
pub type UpstreamIo = tokio::io::BufStream<TcpStream>;

/// Read and write buffer sizes of a buffered TLS transport (upstream and client side).
pub const TLS_IO_BUFFER: usize = 256 * 1024;

/// Connector for upstream TLS, shared by all intercepted connections.
pub struct UpstreamTls {
    verifier: Arc<WebPkiServerVerifier>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    resumption: Arc<ClientSessionMemoryCache>,
}

impl UpstreamTls {
    /// Trust the system roots plus the PEM files in `extra_roots`.
    pub fn new(extra_roots: &[PathBuf]) -> Result<UpstreamTls, RootsError> {
        let mut roots = system_roots();
        add_extra_roots(&mut roots, extra_roots)?;
        Self::with_roots(roots)
    }

    /// Trust exactly `roots`.
    pub fn with_roots(roots: RootCertStore) -> Result<UpstreamTls, RootsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = verifier(roots, &provider)?;
        Ok(UpstreamTls {
            verifier,
            provider,
            resumption: Arc::new(ClientSessionMemoryCache::new(256)),
        })
    }

    /// Handshake with the server over `tcp` (read through a buffer, see [`UpstreamIo`]), naming `host` in SNI and offering `alpn`.
    pub async fn connect(
        &self,
        tcp: TcpStream,
        host: &str,
        alpn: Vec<Vec<u8>>,
    ) -> Result<TlsStream<UpstreamIo>, UpstreamTlsError> {
        let name =
            ServerName::try_from(host.to_string()).map_err(|e| UpstreamTlsError::Handshake {
                detail: format!("{host:?} is not a valid server name: {e}"),
            })?;
        let seen = Arc::new(Mutex::new(None));
        let verifier = Arc::new(Observing {
            inner: self.verifier.clone(),
            rejected: seen.clone(),
        });
        let mut cfg = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| UpstreamTlsError::Handshake {
                detail: e.to_string(),
            })?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        cfg.alpn_protocols = alpn;
        cfg.resumption = Resumption::store(self.resumption.clone());
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
        let io = tokio::io::BufStream::with_capacity(TLS_IO_BUFFER, TLS_IO_BUFFER, tcp);
        match connector.connect(name, io).await {
            Ok(s) => Ok(s),
            Err(e) => {
                let rejection = seen.lock().unwrap_or_else(|p| p.into_inner()).take();
                Err(match rejection {
                    Some(r) => UpstreamTlsError::Certificate {
                        problem: r.problem,
                        detail: r.detail,
                    },
                    None => handshake_error(&e),
                })
            }
        }
    }
}

/// The system's trusted roots. Unreadable entries are skipped: one broken file in
/// /etc/ssl/certs must not disable interception or the probe.
pub fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    roots
}

/// Add the CA certificates of the PEM files `paths` (`intercept.extra_roots`) to `roots`.
pub fn add_extra_roots(roots: &mut RootCertStore, paths: &[PathBuf]) -> Result<(), RootsError> {
    for p in paths {
        for c in read_pem_certs(p)? {
            roots.add(c).map_err(|e| RootsError::Invalid {
                path: p.clone(),
                reason: format!("unusable CA certificate: {e}"),
            })?;
        }
    }
    Ok(())
}

/// The WebPKI verifier over `roots` (at least one).
pub fn verifier(
    roots: RootCertStore,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, RootsError> {
    if roots.is_empty() {
        return Err(RootsError::Empty);
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| RootsError::Verifier(e.to_string()))
}

/// Verify a presented chain (leaf first) for `name` at `now` with `verifier`: `None` when it is
/// valid, else the problem as [`classify`] names it.
pub fn judge_chain(
    verifier: &WebPkiServerVerifier,
    chain: &[CertificateDer<'static>],
    name: &ServerName<'_>,
    now: UnixTime,
) -> Option<(CertProblem, String)> {
    let (leaf, intermediates) = chain.split_first()?;
    verifier
        .verify_server_cert(leaf, intermediates, name, &[], now)
        .err()
        .map(|e| classify(&e))
}

/// Handshake with a server over `io` only as far as its certificate chain, and stop there: the
/// chain is returned unjudged (leaf first), and nothing is ever sent inside the session. For
/// regdoc's own look at a server's certificate; the caller judges the chain with
/// [`judge_chain`].
pub async fn read_chain<IO>(
    io: IO,
    host: &str,
) -> Result<Vec<CertificateDer<'static>>, UpstreamTlsError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let name = ServerName::try_from(host.to_string()).map_err(|e| UpstreamTlsError::Handshake {
        detail: format!("{host:?} is not a valid server name: {e}"),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let seen = Arc::new(Mutex::new(None));
    let capture = Arc::new(Capturing {
        schemes: provider
            .signature_verification_algorithms
            .supported_schemes(),
        chain: seen.clone(),
    });
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| UpstreamTlsError::Handshake {
            detail: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(capture)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let e = match connector.connect(name, io).await {
        // The capturing verifier refuses every chain, so a finished handshake cannot happen.
        Ok(_) => UpstreamTlsError::Handshake {
            detail: "handshake finished without a certificate".into(),
        },
        Err(e) => handshake_error(&e),
    };
    let chain = seen.lock().unwrap_or_else(|p| p.into_inner()).take();
    chain.ok_or(e)
}

/// Keeps the chain a server presented and refuses it, which ends the handshake right there.
#[derive(Debug)]
struct Capturing {
    schemes: Vec<SignatureScheme>,
    chain: Arc<Mutex<Option<Vec<CertificateDer<'static>>>>>,
}

impl ServerCertVerifier for Capturing {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        *self.chain.lock().unwrap_or_else(|p| p.into_inner()) = Some(chain);
        Err(rustls::Error::General(
            "certificate read; probe ends here".into(),
        ))
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General(
            "probe ends at the certificate".into(),
        ))
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General(
            "probe ends at the certificate".into(),
        ))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

/// Type a handshake failure that is not a certificate refusal.
pub fn handshake_error(e: &std::io::Error) -> UpstreamTlsError {
    use std::io::ErrorKind;
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return match tls {
            rustls::Error::AlertReceived(a) => UpstreamTlsError::Alert {
                description: format!("{a:?}"),
            },
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                UpstreamTlsError::NotTls {
                    detail: tls.to_string(),
                }
            }
            other => UpstreamTlsError::Handshake {
                detail: other.to_string(),
            },
        };
    }
    match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => UpstreamTlsError::Reset {
            detail: e.to_string(),
        },
        ErrorKind::UnexpectedEof => UpstreamTlsError::Closed {
            detail: e.to_string(),
        },
        ErrorKind::InvalidData => UpstreamTlsError::NotTls {
            detail: e.to_string(),
        },
        _ => UpstreamTlsError::Handshake {
            detail: e.to_string(),
        },
    }
}

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, RootsError> {
    let data = std::fs::read(path).map_err(|source| RootsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut data.as_slice()).collect();
    let certs = certs.map_err(|e| RootsError::Invalid {
        path: path.to_path_buf(),
        reason: format!("bad PEM: {e}"),
    })?;
    if certs.is_empty() {
        return Err(RootsError::Invalid {
            path: path.to_path_buf(),
            reason: "no PEM CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

struct Rejection {
    problem: CertProblem,
    detail: String,
}

/// WebPKI verification that remembers why it refused, with the issuer of what was presented:
/// an unknown issuer named e.g. "Contoso Inspection CA" is a TLS-inspecting middlebox.
#[derive(Debug)]
struct Observing {
    inner: Arc<WebPkiServerVerifier>,
    rejected: Arc<Mutex<Option<Rejection>>>,
}

impl std::fmt::Debug for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.problem, self.detail)
    }
}

impl ServerCertVerifier for Observing {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let r = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        if let Err(e) = &r {
            let (problem, why) = classify(e);
            let detail = format!("{why}; {}", describe_cert(end_entity));
            *self.rejected.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(Rejection { problem, detail });
        }
        r
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

/// Map a rustls verification error to the problem regdoc reports.
pub fn classify(e: &rustls::Error) -> (CertProblem, String) {
    match e {
        rustls::Error::InvalidCertificate(ce) => match ce {
            CertificateError::UnknownIssuer => (
                CertProblem::UnknownIssuer,
                "issued by a CA that is not trusted (often a TLS-inspecting proxy or firewall)"
                    .into(),
            ),
            CertificateError::NotValidForName => (
                CertProblem::NameMismatch,
                "certificate does not name this host".into(),
            ),
            CertificateError::NotValidForNameContext { expected, .. } => (
                CertProblem::NameMismatch,
                format!("certificate does not name {}", expected.to_str()),
            ),
            CertificateError::Expired => (CertProblem::Expired, "certificate expired".into()),
            CertificateError::ExpiredContext { time, not_after } => (
                CertProblem::Expired,
                format!(
                    "certificate expired {} s ago",
                    time.as_secs().saturating_sub(not_after.as_secs())
                ),
            ),
            CertificateError::NotValidYet => (
                CertProblem::NotYetValid,
                "certificate not valid yet (check this machine's clock)".into(),
            ),
            CertificateError::NotValidYetContext { time, not_before } => (
                CertProblem::NotYetValid,
                format!(
                    "certificate valid only in {} s (check this machine's clock)",
                    not_before.as_secs().saturating_sub(time.as_secs())
                ),
            ),
            other => (
                CertProblem::Other,
                format!("certificate refused: {other:?}"),
            ),
        },
        other => (CertProblem::Other, other.to_string()),
    }
}

/// The public facts of a certificate, field by field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertNames {
    pub issuer: Option<String>,
    pub subject: Option<String>,
    /// Subject alternative names, at most 8.
    pub names: Vec<String>,
    /// Validity, Unix seconds.
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
}

/// Issuer, subject, names and validity of a certificate; all `None` when it does not parse.
pub fn describe_names(der: &[u8]) -> CertNames {
    let Ok((_, c)) = x509_parser::parse_x509_certificate(der) else {
        return CertNames::default();
    };
    let names = c
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|s| {
            s.value
                .general_names
                .iter()
                .take(8)
                .map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => d.to_string(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    CertNames {
        issuer: Some(c.issuer().to_string()),
        subject: Some(c.subject().to_string()),
        names,
        not_before: Some(c.validity().not_before.timestamp()),
        not_after: Some(c.validity().not_after.timestamp()),
    }
}

/// Issuer, subject and names of a certificate, for the failure record. Public facts only.
pub fn describe_cert(der: &[u8]) -> String {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, c)) => {
            let names = c
                .subject_alternative_name()
                .ok()
                .flatten()
                .map(|s| {
                    s.value
                        .general_names
                        .iter()
                        .take(8)
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let mut s = format!("issuer \"{}\", subject \"{}\"", c.issuer(), c.subject());
            if !names.is_empty() {
                s.push_str(&format!(", names [{names}]"));
            }
            s
        }
        Err(_) => "presented certificate is not parsable".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_maps_the_common_failures() {
        let c = |ce| classify(&rustls::Error::InvalidCertificate(ce)).0;
        assert_eq!(
            c(CertificateError::UnknownIssuer),
            CertProblem::UnknownIssuer
        );
        assert_eq!(
            c(CertificateError::NotValidForName),
            CertProblem::NameMismatch
        );
        assert_eq!(c(CertificateError::Expired), CertProblem::Expired);
        assert_eq!(c(CertificateError::NotValidYet), CertProblem::NotYetValid);
        assert_eq!(c(CertificateError::BadSignature), CertProblem::Other);
        assert_eq!(classify(&rustls::Error::DecryptError).0, CertProblem::Other);
    }

    #[test]
    fn handshake_errors_are_typed() {
        let io = |k, inner: rustls::Error| std::io::Error::new(k, inner);
        assert!(matches!(
            handshake_error(&io(
                std::io::ErrorKind::InvalidData,
                rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure)
            )),
            UpstreamTlsError::Alert { .. }
        ));
        assert!(matches!(
            handshake_error(&io(
                std::io::ErrorKind::InvalidData,
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)
            )),
            UpstreamTlsError::NotTls { .. }
        ));
        assert!(matches!(
            handshake_error(&std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
            UpstreamTlsError::Closed { .. }
        ));
        assert!(matches!(
            handshake_error(&std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
            UpstreamTlsError::Reset { .. }
        ));
    }

    #[test]
    fn describe_names_issuer() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["reg.azurecr.io".to_string()]).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "Contoso Inspection CA");
        let cert = p.self_signed(&key).unwrap();
        let d = describe_cert(cert.der());
        assert!(d.contains("Contoso Inspection CA"), "{d}");
        assert!(d.contains("reg.azurecr.io"), "{d}");
        assert_eq!(
            describe_cert(b"junk"),
            "presented certificate is not parsable"
        );
    }

    #[test]
    fn extra_roots_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("empty.pem");
        std::fs::write(&f, "").unwrap();
        let e = UpstreamTls::new(std::slice::from_ref(&f)).err().unwrap();
        assert!(e.to_string().contains("empty.pem"), "{e}");
        assert!(matches!(
            UpstreamTls::with_roots(RootCertStore::empty())
                .err()
                .unwrap(),
            RootsError::Empty
        ));
    }
}
