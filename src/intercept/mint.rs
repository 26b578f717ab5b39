//! Leaf certificates for intercepted hosts, minted on demand and cached.
//!
//! Names: a leaf is minted only for a name the CA's name constraints permit (the caller, the
//! interception engine, decides which name: the CONNECT host, after the server proved it).
//!
//! Keys: every leaf has its own ECDSA P-256 key, made in memory when the leaf is minted (never
//! written to disk, never the CA key, which stays out of every handshake). A key costs tens of
//! microseconds and is made once per host, because the leaf is cached; a leaf's key then says
//! nothing about any other host's.
//!
//! Cache: bounded, least-recently-used eviction, single-flight (concurrent misses for one host
//! wait for one mint, through a shared `OnceCell`; a failed mint is not cached). Leaves are
//! re-minted when half their validity has passed, so a long-running proxy never serves an
//! expired one.

use super::ca::{random_serial, Ca};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::ResolvesServerCert;
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::{Duration as TimeDuration, OffsetDateTime};
use tokio::sync::OnceCell;

/// Default bound of the cache (`intercept.cert_cache`).
pub const DEFAULT_CACHE: usize = 1024;
/// Leaf validity. Short, so a leaked leaf is useless soon; long enough that no realistic
/// session outlives it.
const LEAF_DAYS: i64 = 7;
/// Backdating of `not_before`: a client whose clock is a little behind must still accept it.
const BACKDATE: TimeDuration = TimeDuration::hours(1);
/// Re-mint after this age (about half the validity).
const REFRESH_AFTER: Duration = Duration::from_secs(3 * 86_400);

/// Why a leaf could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("{host:?} cannot be named in a certificate: {reason}")]
    BadHost { host: String, reason: String },
    #[error("{host} is outside the interception CA's name constraints (it may vouch for {permitted}); make a CA that permits it: regdoc ca init --force --permit {host}")]
    NotPermitted { host: String, permitted: String },
    #[error("cannot sign a leaf for {host}: {source}")]
    Sign { host: String, source: rcgen::Error },
    #[error("cannot generate the leaf key: {0}")]
    Key(String),
    #[error("cannot build the TLS configuration for {host}: {reason}")]
    Config { host: String, reason: String },
}

/// How a lookup was served, for the connection record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    Hit,
    /// This lookup minted the leaf.
    Minted,
    /// Another lookup was minting it; this one waited.
    Waited,
}

impl CacheUse {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheUse::Hit => "hit",
            CacheUse::Minted => "miss",
            CacheUse::Waited => "wait",
        }
    }
}

struct Minted {
    leaf: Arc<Leaf>,
    at: Instant,
}

/// A minted leaf with its server configurations, one per protocol offer. Sharing one
/// configuration per host (not one per connection) lets clients resume TLS sessions.
pub struct Leaf {
    pub key: Arc<CertifiedKey>,
    h2: Arc<ServerConfig>,
    h1: Arc<ServerConfig>,
    none: Arc<ServerConfig>,
}

impl Leaf {
    fn new(key: Arc<CertifiedKey>) -> Result<Leaf, rustls::Error> {
        Ok(Leaf {
            h2: server_config(key.clone(), vec![b"h2".to_vec()])?,
            h1: server_config(key.clone(), vec![b"http/1.1".to_vec()])?,
            none: server_config(key.clone(), Vec::new())?,
            key,
        })
    }

    /// The configuration offering `alpn`: `h2`, `http/1.1`, or nothing (empty).
    pub fn server_config(&self, alpn: &[u8]) -> Arc<ServerConfig> {
        match alpn {
            b"h2" => self.h2.clone(),
            b"http/1.1" => self.h1.clone(),
            _ => self.none.clone(),
        }
    }
}

/// A rustls server configuration presenting `key`, offering `alpn`.
pub fn server_config(
    key: Arc<CertifiedKey>,
    alpn: Vec<Vec<u8>>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(key)));
    cfg.alpn_protocols = alpn;
    Ok(Arc::new(cfg))
}

/// The leaf is chosen before the handshake (from the ClientHello), so resolution is fixed.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

struct Entry {
    cell: Arc<OnceCell<Minted>>,
    last_used: u64,
}

struct Lru {
    map: HashMap<String, Entry>,
    tick: u64,
}

/// Mints and caches leaves signed by the local CA.
pub struct LeafMinter {
    ca: Arc<Ca>,
    capacity: usize,
    cache: Mutex<Lru>,
    mints: AtomicU64,
    hits: AtomicU64,
}

impl LeafMinter {
    /// A minter holding at most `capacity` leaves (at least 1).
    pub fn new(ca: Arc<Ca>, capacity: usize) -> Result<LeafMinter, MintError> {
        Ok(LeafMinter {
            ca,
            capacity: capacity.max(1),
            cache: Mutex::new(Lru {
                map: HashMap::new(),
                tick: 0,
            }),
            mints: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        })
    }

    /// How many leaves were minted since start.
    pub fn mints(&self) -> u64 {
        self.mints.load(Ordering::Relaxed)
    }

    /// How many lookups were served from the cache.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Number of cached hosts.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        // A panic while holding this lock cannot leave the map inconsistent (each operation
        // is a single insert/remove), so a poisoned lock is still usable.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The CA leaves are signed by.
    pub fn ca(&self) -> &Ca {
        &self.ca
    }

    /// Whether a leaf for `host` may be minted: the CA's name constraints permit it.
    pub fn permits(&self, host: &str) -> bool {
        self.ca.permits(&normalize(host))
    }

    /// The leaf for `host` (a DNS name or an IP literal), minting it on a miss. Refused for a
    /// name outside the CA's name constraints.
    pub async fn get(&self, host: &str) -> Result<(Arc<Leaf>, CacheUse), MintError> {
        let host = normalize(host);
        if !self.ca.permits(&host) {
            return Err(MintError::NotPermitted {
                permitted: self.ca.describe_permitted(),
                host,
            });
        }
        let cell = {
            let mut lru = self.lock();
            lru.tick += 1;
            let tick = lru.tick;
            let fresh = |e: &Entry| {
                e.cell
                    .get()
                    .map(|m| m.at.elapsed() < REFRESH_AFTER)
                    .unwrap_or(true)
            };
            match lru.map.get_mut(&host) {
                Some(e) if fresh(e) => {
                    e.last_used = tick;
                    e.cell.clone()
                }
                _ => {
                    if !lru.map.contains_key(&host) && lru.map.len() >= self.capacity {
                        evict_oldest(&mut lru.map);
                    }
                    let cell = Arc::new(OnceCell::new());
                    lru.map.insert(
                        host.clone(),
                        Entry {
                            cell: cell.clone(),
                            last_used: tick,
                        },
                    );
                    cell
                }
            }
        };
        if let Some(m) = cell.get() {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok((m.leaf.clone(), CacheUse::Hit));
        }
        let mut minted_here = false;
        let result = cell
            .get_or_try_init(|| async {
                minted_here = true;
                self.mint(&host).map(|leaf| Minted {
                    leaf,
                    at: Instant::now(),
                })
            })
            .await;
        match result {
            Ok(m) => Ok((
                m.leaf.clone(),
                if minted_here {
                    CacheUse::Minted
                } else {
                    CacheUse::Waited
                },
            )),
            Err(e) => {
                // Do not keep an empty cell for a host that cannot be minted.
                let mut lru = self.lock();
                if lru
                    .map
                    .get(&host)
                    .map(|en| Arc::ptr_eq(&en.cell, &cell) && en.cell.get().is_none())
                    .unwrap_or(false)
                {
                    lru.map.remove(&host);
                }
                Err(e)
            }
        }
    }

    fn mint(&self, host: &str) -> Result<Arc<Leaf>, MintError> {
        let params = leaf_params(host)?;
        // Each leaf has its own key (never the CA's): a P-256 key costs tens of microseconds and
        // is made once per host, since the leaf is cached.
        let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| MintError::Key(e.to_string()))?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let signer = rustls::crypto::ring::sign::any_supported_type(&der)
            .map_err(|e| MintError::Key(e.to_string()))?;
        let cert = self
            .ca
            .sign(params, &leaf_key)
            .map_err(|source| MintError::Sign {
                host: host.to_string(),
                source,
            })?;
        self.mints.fetch_add(1, Ordering::Relaxed);
        let key = Arc::new(CertifiedKey::new(vec![cert.der().clone()], signer));
        Leaf::new(key).map(Arc::new).map_err(|e| MintError::Config {
            host: host.to_string(),
            reason: e.to_string(),
        })
    }
}

fn evict_oldest(map: &mut HashMap<String, Entry>) {
    // O(n) on a miss with a full cache; n is the cache bound (1024 by default) and misses are
    // rare once the working set of registry hosts is cached.
    if let Some(k) = map
        .iter()
        .min_by_key(|(_, e)| e.last_used)
        .map(|(k, _)| k.clone())
    {
        map.remove(&k);
    }
}

/// Lower case, no trailing dot, no IPv6 brackets.
pub(crate) fn normalize(host: &str) -> String {
    host.trim()
        .trim_end_matches('.')
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

fn leaf_params(host: &str) -> Result<CertificateParams, MintError> {
    let bad = |reason: &str| MintError::BadHost {
        host: host.to_string(),
        reason: reason.to_string(),
    };
    if host.is_empty() || host.len() > 253 {
        return Err(bad("empty or longer than 253 characters"));
    }
    let san = match host.parse::<IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => {
            if !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'*'))
            {
                return Err(bad("not a DNS name"));
            }
            SanType::DnsName(host.try_into().map_err(|_| bad("not an IA5 string"))?)
        }
    };
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![san];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, host);
    dn.push(DnType::OrganizationName, "regdoc interception");
    params.distinguished_name = dn;
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + TimeDuration::days(LEAF_DAYS);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&random_serial()));
    Ok(params)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rustls::pki_types::ServerName;

    /// A CA permitting `*.azurecr.io`, `example` (and below) and 127.0.0.1, as the tests name them.
    pub(crate) fn test_ca() -> (tempfile::TempDir, Arc<Ca>) {
        let dir = tempfile::tempdir().unwrap();
        let permit = ["*.azurecr.io", "example", "127.0.0.1"].map(String::from);
        let p = super::super::ca::generate_permitting(dir.path(), false, &permit).unwrap();
        let ca = Arc::new(Ca::load(&p.cert, &p.key).unwrap());
        (dir, ca)
    }

    /// Complete a TLS handshake in memory: a client trusting only `ca` against a server
    /// presenting `key`, for `name`.
    fn handshake(ca: &Ca, key: Arc<CertifiedKey>, name: &str) -> Result<(), rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.cert_der().clone()).unwrap();
        let client_cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let server_cfg = server_config(key, vec![b"h2".to_vec()]).unwrap();
        let mut client = rustls::ClientConnection::new(
            Arc::new(client_cfg),
            ServerName::try_from(name.to_string()).unwrap(),
        )?;
        let mut server = rustls::ServerConnection::new(server_cfg)?;
        for _ in 0..10 {
            let mut buf = Vec::new();
            client.write_tls(&mut buf).unwrap();
            server.read_tls(&mut buf.as_slice()).unwrap();
            server.process_new_packets()?;
            let mut buf = Vec::new();
            server.write_tls(&mut buf).unwrap();
            client.read_tls(&mut buf.as_slice()).unwrap();
            client.process_new_packets()?;
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
        }
        panic!("handshake did not finish");
    }

    #[tokio::test]
    async fn leaf_verifies_against_the_ca_only_for_its_name() {
        let (_d, ca) = test_ca();
        let m = LeafMinter::new(ca.clone(), 8).unwrap();
        let (leaf, used) = m.get("MyReg.azurecr.io.").await.unwrap();
        let key = leaf.key.clone();
        assert_eq!(used, CacheUse::Minted);
        handshake(&ca, key.clone(), "myreg.azurecr.io").unwrap();
        let e = handshake(&ca, key.clone(), "other.azurecr.io").unwrap_err();
        assert!(
            matches!(
                e,
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                        | rustls::CertificateError::NotValidForNameContext { .. }
                )
            ),
            "{e:?}"
        );
        // Trusting another CA: unknown issuer.
        let (_d2, other) = test_ca();
        let e = handshake(&other, key, "myreg.azurecr.io").unwrap_err();
        assert!(
            matches!(
                e,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
            ),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn leaf_fields() {
        let (_d, ca) = test_ca();
        let m = LeafMinter::new(ca.clone(), 8).unwrap();
        let key = m.get("reg.azurecr.io").await.unwrap().0.key.clone();
        let (_, c) = x509_parser::parse_x509_certificate(&key.cert[0]).unwrap();
        let eku = c.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth);
        let aki = c
            .extensions()
            .iter()
            .any(|e| e.oid == x509_parser::oid_registry::OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER);
        assert!(aki, "leaf must carry an authority key identifier");
        let (_, cac) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
        assert_eq!(c.issuer().as_raw(), cac.subject().as_raw());
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let nb = c.validity().not_before.timestamp();
        assert!(nb <= now - 3000, "not_before must be backdated");
        // The leaf key is not the CA key.
        assert_ne!(c.public_key().raw, cac.public_key().raw);

        // IP literal: IP SAN, and it verifies for the IP name.
        let ipkey = m.get("127.0.0.1").await.unwrap().0.key.clone();
        let (_, ipc) = x509_parser::parse_x509_certificate(&ipkey.cert[0]).unwrap();
        let san = format!(
            "{:?}",
            ipc.subject_alternative_name().unwrap().unwrap().value
        );
        assert!(san.contains("IPAddress"), "{san}");
        handshake(&ca, ipkey, "127.0.0.1").unwrap();

        // Serials differ between leaves.
        let k2 = m.get("other.azurecr.io").await.unwrap().0.key.clone();
        let (_, c2) = x509_parser::parse_x509_certificate(&k2.cert[0]).unwrap();
        assert_ne!(c.raw_serial(), c2.raw_serial());
        // Each leaf has its own key.
        assert_ne!(c.public_key().raw, c2.public_key().raw);
    }

    #[tokio::test]
    async fn cache_hits_misses_and_eviction() {
        let (_d, ca) = test_ca();
        let m = LeafMinter::new(ca, 2).unwrap();
        assert_eq!(m.get("a.example").await.unwrap().1, CacheUse::Minted);
        assert_eq!(m.get("A.example").await.unwrap().1, CacheUse::Hit);
        assert_eq!(m.get("b.example").await.unwrap().1, CacheUse::Minted);
        // a is more recent than b now.
        assert_eq!(m.get("a.example").await.unwrap().1, CacheUse::Hit);
        assert_eq!(m.get("c.example").await.unwrap().1, CacheUse::Minted);
        assert_eq!(m.len(), 2);
        assert_eq!(m.get("a.example").await.unwrap().1, CacheUse::Hit);
        assert_eq!(m.get("b.example").await.unwrap().1, CacheUse::Minted);
        assert_eq!((m.mints(), m.hits()), (4, 3));
    }

    #[tokio::test]
    async fn names_outside_the_constraints_are_never_minted() {
        let dir = tempfile::tempdir().unwrap();
        let p = super::super::ca::generate(dir.path(), false).unwrap();
        let m = LeafMinter::new(Arc::new(Ca::load(&p.cert, &p.key).unwrap()), 4).unwrap();
        for h in [
            "www.google.com",
            "azurecr.io",
            "evilazurecr.io",
            "127.0.0.1",
            "::1",
        ] {
            assert!(!m.permits(h), "{h}");
            let e = m.get(h).await.err().unwrap();
            assert!(matches!(e, MintError::NotPermitted { .. }), "{h}: {e}");
            assert!(e.to_string().contains("--permit"), "{e}");
        }
        assert!(m.is_empty());
        assert_eq!(m.mints(), 0);
        assert!(m.get("MyReg.AzureCR.io.").await.is_ok());
    }

    #[tokio::test]
    async fn bad_hosts_are_refused_and_not_cached() {
        let (_d, ca) = test_ca();
        let m = LeafMinter::new(ca, 4).unwrap();
        let long = format!("{}.example", "a".repeat(300));
        for h in ["", "bad host", "é.example", &long] {
            assert!(
                matches!(
                    m.get(h).await,
                    Err(MintError::BadHost { .. } | MintError::NotPermitted { .. })
                ),
                "{h}"
            );
        }
        assert!(m.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_misses_mint_once() {
        let (_d, ca) = test_ca();
        let m = Arc::new(LeafMinter::new(ca, 16).unwrap());
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let m = m.clone();
                tokio::spawn(async move { m.get("same.azurecr.io").await.unwrap() })
            })
            .collect();
        let mut first: Option<Arc<Leaf>> = None;
        for t in tasks {
            let (k, _) = t.await.unwrap();
            if let Some(f) = &first {
                assert!(Arc::ptr_eq(f, &k));
            } else {
                first = Some(k);
            }
        }
        assert_eq!(m.mints(), 1);
    }
}
