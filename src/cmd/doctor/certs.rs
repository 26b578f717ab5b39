//! `/etc/docker/certs.d/<host>[:port]/*.crt`: the CAs dockerd trusts for one registry, where an
//! intercepting regdoc's CA must be for each host it intercepts (dockerd reads them at every
//! connection: no restart needed).

use rustls::pki_types::CertificateDer;
use std::path::{Path, PathBuf};

pub const DIR: &str = "etc/docker/certs.d";

/// What certs.d holds for one host.
#[derive(Debug, PartialEq, Eq)]
pub enum Trust {
    /// A `*.crt` file holding the CA, named.
    Trusted(PathBuf),
    /// Directories exist, no `*.crt` in them holds the CA.
    Missing { dirs: Vec<PathBuf> },
    /// No directory for the host.
    NoDir,
    /// The file that says which CAs count cannot be used (containerd ignores a hosts.toml it
    /// cannot decode), with why.
    Unusable { file: PathBuf, reason: String },
}

/// Directory names under a per-registry directory (`host` or `host:port`): certs.d, or
/// containerd's hosts directory, which names them the same way.
pub fn hosts(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The directories of `host` under `base` (certs.d or containerd's hosts directory) that
/// exist: `host` and `host:443`, which both name the registry on port 443.
fn host_dirs(base: &Path, host: &str) -> Vec<PathBuf> {
    [host.to_string(), format!("{host}:443")]
        .into_iter()
        .map(|d| base.join(d))
        .filter(|d| d.is_dir())
        .collect()
}

/// Whether dockerd trusts `ca` for `host` (port 443: `host` or `host:443`).
pub fn trust(root: &Path, host: &str, ca: &CertificateDer<'_>) -> Trust {
    let dirs = host_dirs(&root.join(DIR), host);
    if dirs.is_empty() {
        return Trust::NoDir;
    }
    for dir in &dirs {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "crt"))
            .collect();
        files.sort();
        if let Some(f) = files.into_iter().find(|f| holds(f, ca)) {
            return Trust::Trusted(f);
        }
    }
    Trust::Missing { dirs }
}

/// Compare certificates by DER: the same CA re-encoded as PEM with other line breaks is the
/// same CA, a CA with the same subject but another key is not.
pub(super) fn holds(file: &Path, ca: &CertificateDer<'_>) -> bool {
    // A configuration may name any path: only a regular file of a certificate bundle's size is
    // read (not a FIFO, a device or /proc/kcore).
    const MAX_BYTES: u64 = 4 * 1024 * 1024;
    let regular = std::fs::metadata(file).is_ok_and(|m| m.is_file() && m.len() <= MAX_BYTES);
    if !regular {
        return false;
    }
    let Ok(bytes) = std::fs::read(file) else {
        return false;
    };
    let found = rustls_pemfile::certs(&mut bytes.as_slice())
        .flatten()
        .any(|c| c.as_ref() == ca.as_ref());
    found
}

/// Errors loading regdoc's own CA certificate.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("cannot read the interception CA {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the interception CA {path} holds no PEM certificate")]
    Empty { path: PathBuf },
}

/// The first certificate of regdoc's CA file.
pub fn load_ca(path: &Path) -> Result<CertificateDer<'static>, CaFileError> {
    let bytes = std::fs::read(path).map_err(|source| CaFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let first = rustls_pemfile::certs(&mut bytes.as_slice())
        .flatten()
        .next();
    first.ok_or_else(|| CaFileError::Empty {
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_only_with_the_same_der() {
        let dir = tempfile::tempdir().unwrap();
        let a = crate::intercept::ca::generate(&dir.path().join("a"), false).unwrap();
        let b = crate::intercept::ca::generate(&dir.path().join("b"), false).unwrap();
        let ca = load_ca(&a.cert).unwrap();
        let root = dir.path().join("root");
        let host = root.join(DIR).join("r.azurecr.io");
        std::fs::create_dir_all(&host).unwrap();
        assert_eq!(trust(&root, "x.azurecr.io", &ca), Trust::NoDir);
        std::fs::copy(&b.cert, host.join("ca.crt")).unwrap();
        assert!(matches!(
            trust(&root, "r.azurecr.io", &ca),
            Trust::Missing { .. }
        ));
        std::fs::copy(&a.cert, host.join("regdoc.crt")).unwrap();
        assert_eq!(
            trust(&root, "r.azurecr.io", &ca),
            Trust::Trusted(host.join("regdoc.crt"))
        );
        assert_eq!(hosts(&root.join(DIR)), vec!["r.azurecr.io"]);
    }
}
