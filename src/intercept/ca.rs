//! The local certificate authority that signs interception leaves.
//!
//! `regdoc ca init` makes it ([`generate`]); the proxy loads it at start ([`Ca::load`]). The key
//! never leaves this module except as the signer of leaves: no leaf carries it.
//!
//! The CA is made to be trusted narrowly and replaced often: name constraints (see
//! [`super::constraints`]) limit what it can vouch for even where it is trusted too widely, and
//! it is valid for a year, after which `ca init --force` makes the next one.

use super::constraints::{NameConstraints, PermitError};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::CertificateDer;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use time::{Duration as TimeDuration, OffsetDateTime};

/// Where `regdoc ca init` wrote the CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why the CA could not be made or loaded. Every variant names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{path}: already exists; pass --force to replace the CA (clients that trust the old CA will refuse certificates from the new one)")]
    Exists { path: PathBuf },
    #[error("{path}: cannot create: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no PEM CERTIFICATE block found")]
    NoCertificate { path: PathBuf },
    #[error("{path}: no PEM private key found")]
    NoKey { path: PathBuf },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot generate the CA: {0}")]
    Generate(#[from] rcgen::Error),
    #[error(transparent)]
    Permit(#[from] PermitError),
}

/// File names inside the CA directory.
pub const CERT_FILE: &str = "ca.crt";
pub const KEY_FILE: &str = "ca.key";

/// How long a new CA is valid. A year bounds the harm of a key copied off the host, and a
/// yearly `ca init --force` keeps re-trusting (one file per Docker host) a practised step.
pub const CA_VALIDITY_DAYS: i64 = 365;

/// Create `ca.crt` and `ca.key` in `dir`, permitting the default names
/// ([`super::constraints::DEFAULT_PERMIT`]). Refuses to replace existing files unless `force`.
pub fn generate(dir: &Path, force: bool) -> Result<CaPaths, CaError> {
    let names: Vec<String> = super::constraints::DEFAULT_PERMIT
        .iter()
        .map(|s| s.to_string())
        .collect();
    generate_permitting(dir, force, &names)
}

/// Create `ca.crt` and `ca.key` in `dir`, with name constraints permitting `permit` (see
/// [`NameConstraints::permitting`]). Refuses to replace existing files unless `force`.
///
/// The key file is created with mode 0600 at `open` time, so it is never readable by others, not
/// even for the instant between a create and a chmod.
pub fn generate_permitting(dir: &Path, force: bool, permit: &[String]) -> Result<CaPaths, CaError> {
    // Checked before anything is touched: a bad name must not cost the existing CA.
    let constraints = NameConstraints::permitting(permit)?;
    let paths = CaPaths {
        cert: dir.join(CERT_FILE),
        key: dir.join(KEY_FILE),
    };
    if !force {
        for p in [&paths.cert, &paths.key] {
            if p.exists() {
                return Err(CaError::Exists { path: p.clone() });
            }
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| CaError::Create {
        path: dir.to_path_buf(),
        source,
    })?;

    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = ca_params(&ca_name(), &constraints)?.self_signed(&key)?;

    write_new(&paths.key, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&paths.cert, cert.pem().as_bytes(), 0o644)?;
    Ok(paths)
}

fn ca_params(
    common_name: &str,
    constraints: &NameConstraints,
) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "regdoc");
    params.distinguished_name = dn;
    // pathlen 0: this CA signs leaves only, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.name_constraints = Some(constraints.to_rcgen());
    // Verifiers that check EKU along the chain (Go does) then accept its leaves for TLS servers
    // only, not for client authentication, code or mail signing.
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - TimeDuration::hours(1);
    params.not_after = now + TimeDuration::days(CA_VALIDITY_DAYS);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&random_serial()));
    Ok(params)
}

/// `regdoc local CA <host> <random>`: the host says where it came from, the random part keeps
/// two CAs made on one machine (or on twin machines) apart in trust stores.
fn ca_name() -> String {
    let host = hostname().unwrap_or_else(|| "host".to_string());
    let mut suffix = [0u8; 3];
    fill_random(&mut suffix);
    let hex: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    format!("regdoc local CA {host} {hex}")
}

fn hostname() -> Option<String> {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()?;
    let h: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .take(48)
        .collect();
    (!h.is_empty()).then_some(h)
}

/// Fill `buf` from the operating system's random source.
pub(crate) fn fill_random(buf: &mut [u8]) {
    use ring::rand::SecureRandom;
    // SystemRandom only fails when the OS has no entropy source at all; a zero suffix/serial
    // is then still a valid (if less unique) value, so there is nothing better to do.
    let _ = ring::rand::SystemRandom::new().fill(buf);
}

/// A positive 16-byte serial (RFC 5280 allows up to 20 octets; the top bit clear keeps it positive).
pub(crate) fn random_serial() -> [u8; 16] {
    let mut s = [0u8; 16];
    fill_random(&mut s);
    s[0] &= 0x7f;
    s[0] |= 0x01;
    s
}

/// Write a file that must not exist yet (a replaced one is removed first, so the mode given here
/// is the one it gets).
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CaError> {
    let err = |source| CaError::Create {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)
}

/// A loaded CA: its certificate and the key that signs leaves.
pub struct Ca {
    cert_der: CertificateDer<'static>,
    /// The CA as rcgen's issuer: its subject name and key identifier, parsed from the file so
    /// that leaves name it byte for byte.
    issuer: rcgen::Certificate,
    key: KeyPair,
    common_name: String,
    /// None: the certificate carries no name constraints (a CA made elsewhere, or by an older
    /// regdoc) and may vouch for any name.
    constraints: Option<NameConstraints>,
    not_after: i64,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Ca")
            .field("common_name", &self.common_name)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// Load a CA certificate and its private key (PEM). Checks that the certificate is a CA
    /// and that the key belongs to it.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Ca, CaError> {
        let cert_der = read_cert(cert_path)?;
        let key_der = read_key(key_path)?;
        let invalid = |path: &Path, reason: String| CaError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let key = KeyPair::try_from(&key_der)
            .map_err(|e| invalid(key_path, format!("unusable private key: {e}")))?;

        let (_, parsed) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| invalid(cert_path, format!("not an X.509 certificate: {e}")))?;
        let is_ca = parsed
            .basic_constraints()
            .ok()
            .flatten()
            .map(|bc| bc.value.ca)
            .unwrap_or(false);
        if !is_ca {
            return Err(invalid(
                cert_path,
                "certificate is not a CA (basicConstraints CA:TRUE missing)".into(),
            ));
        }
        if parsed.public_key().raw != key.public_key_der().as_slice() {
            return Err(invalid(
                key_path,
                format!("key does not belong to {}", cert_path.display()),
            ));
        }
        let common_name = parsed
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or("")
            .to_string();

        let constraints = NameConstraints::of_certificate(&parsed)
            .map_err(|reason| invalid(cert_path, reason))?;
        let not_after = parsed.validity().not_after.timestamp();

        let params = CertificateParams::from_ca_cert_der(&cert_der)
            .map_err(|e| invalid(cert_path, format!("cannot use as issuer: {e}")))?;
        // Re-signing the parsed parameters gives rcgen an issuer object; only its subject name
        // and key identifier are used when signing leaves, and both come from the file.
        let issuer = params
            .self_signed(&key)
            .map_err(|e| invalid(cert_path, format!("cannot use as issuer: {e}")))?;
        Ok(Ca {
            cert_der,
            issuer,
            key,
            common_name,
            constraints,
            not_after,
        })
    }

    /// The name constraints the certificate carries, None when it has none.
    pub fn constraints(&self) -> Option<&NameConstraints> {
        self.constraints.as_ref()
    }

    /// Whether a leaf for `host` (lower case, no trailing dot) would satisfy the CA's name
    /// constraints; a CA without constraints permits every name.
    pub fn permits(&self, host: &str) -> bool {
        self.constraints.as_ref().is_none_or(|c| c.permits(host))
    }

    /// The names the CA may vouch for, for messages.
    pub fn describe_permitted(&self) -> String {
        self.constraints
            .as_ref()
            .map(NameConstraints::describe_permitted)
            .unwrap_or_else(|| "any name (no name constraints)".into())
    }

    /// The end of the CA's validity, seconds since the Unix epoch.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// The CA certificate (DER), as clients must trust it.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA's common name, for log lines and messages.
    pub fn common_name(&self) -> &str {
        &self.common_name
    }

    /// Sign leaf parameters for `public_key`.
    pub(crate) fn sign(
        &self,
        params: CertificateParams,
        public_key: &impl rcgen::PublicKeyData,
    ) -> Result<rcgen::Certificate, rcgen::Error> {
        params.signed_by(public_key, &self.issuer, &self.key)
    }
}

fn read_cert(path: &Path) -> Result<CertificateDer<'static>, CaError> {
    let data = std::fs::read(path).map_err(|source| CaError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut rd = data.as_slice();
    let first = rustls_pemfile::certs(&mut rd).next();
    match first {
        Some(Ok(c)) => Ok(c),
        Some(Err(e)) => Err(CaError::Invalid {
            path: path.to_path_buf(),
            reason: format!("bad PEM: {e}"),
        }),
        None => Err(CaError::NoCertificate {
            path: path.to_path_buf(),
        }),
    }
}

fn read_key(path: &Path) -> Result<rustls::pki_types::PrivateKeyDer<'static>, CaError> {
    let data = std::fs::read(path).map_err(|source| CaError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    match rustls_pemfile::private_key(&mut data.as_slice()) {
        Ok(Some(k)) => Ok(k),
        Ok(None) => Err(CaError::NoKey {
            path: path.to_path_buf(),
        }),
        // The pemfile error never contains key bytes, only positions and section names.
        Err(e) => Err(CaError::Invalid {
            path: path.to_path_buf(),
            reason: format!("bad PEM: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generate_writes_a_ca_with_a_private_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let paths = generate(dir.path(), false).unwrap();
        let mode = std::fs::metadata(&paths.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let ca = Ca::load(&paths.cert, &paths.key).unwrap();
        assert!(ca.common_name().starts_with("regdoc local CA "));
        let (_, c) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
        let bc = c.basic_constraints().unwrap().unwrap().value;
        assert!(bc.ca);
        assert_eq!(bc.path_len_constraint, Some(0));
        let ku = c.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign());
        let life = c.validity().not_after.timestamp() - c.validity().not_before.timestamp();
        assert!(life <= 366 * 86_400, "{life}");
        let eku = c.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
        // The default constraints, read back at load.
        assert!(ca.permits("myreg.azurecr.io"));
        assert!(!ca.permits("www.google.com"));
        assert_eq!(ca.describe_permitted(), ".azurecr.io");
        // The Debug form must not leak the key.
        assert!(!format!("{ca:?}").contains("PRIVATE"));
    }

    #[test]
    fn refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let first = generate(dir.path(), false).unwrap();
        let before = std::fs::read(&first.cert).unwrap();
        let e = generate(dir.path(), false).unwrap_err();
        assert!(matches!(e, CaError::Exists { .. }), "{e}");
        assert!(e.to_string().contains("--force"));
        assert_eq!(std::fs::read(&first.cert).unwrap(), before);

        // A key made world-readable by hand is recreated 0600 on --force.
        std::fs::set_permissions(&first.key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let second = generate(dir.path(), true).unwrap();
        assert_ne!(std::fs::read(&second.cert).unwrap(), before);
        let mode = std::fs::metadata(&second.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_bad_permit_leaves_the_existing_ca_alone() {
        let dir = tempfile::tempdir().unwrap();
        let first = generate(dir.path(), false).unwrap();
        let before = std::fs::read(&first.cert).unwrap();
        let e = generate_permitting(dir.path(), true, &["*.com".to_string()]).unwrap_err();
        assert!(matches!(e, CaError::Permit(_)), "{e}");
        assert_eq!(std::fs::read(&first.cert).unwrap(), before);
    }

    #[test]
    fn a_ca_without_constraints_permits_every_name() {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).unwrap();
        let (c, k) = (dir.path().join("o.crt"), dir.path().join("o.key"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        let ca = Ca::load(&c, &k).unwrap();
        assert!(ca.constraints().is_none());
        assert!(ca.permits("anything.example"));
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = generate(&dir.path().join("a"), false).unwrap();
        let b = generate(&dir.path().join("b"), false).unwrap();
        let e = Ca::load(&a.cert, &b.key).unwrap_err();
        assert!(e.to_string().contains("does not belong"), "{e}");
        assert!(e.to_string().contains(&b.key.display().to_string()), "{e}");

        let missing = dir.path().join("nope.crt");
        let e = Ca::load(&missing, &a.key).unwrap_err();
        assert!(matches!(e, CaError::Read { .. }));
        assert!(e.to_string().contains("nope.crt"));

        let junk = dir.path().join("junk.crt");
        std::fs::write(&junk, "hello\n").unwrap();
        assert!(matches!(
            Ca::load(&junk, &a.key).unwrap_err(),
            CaError::NoCertificate { .. }
        ));
        // A key file given as the certificate: no CERTIFICATE block.
        assert!(matches!(
            Ca::load(&a.key, &a.key).unwrap_err(),
            CaError::NoCertificate { .. }
        ));
        assert!(matches!(
            Ca::load(&a.cert, &a.cert).unwrap_err(),
            CaError::NoKey { .. }
        ));
    }

    #[test]
    fn a_leaf_certificate_is_not_accepted_as_ca() {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let leaf = CertificateParams::new(vec!["x.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k) = (dir.path().join("l.crt"), dir.path().join("l.key"));
        std::fs::write(&c, leaf.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        let e = Ca::load(&c, &k).unwrap_err();
        assert!(e.to_string().contains("not a CA"), "{e}");
    }
}
