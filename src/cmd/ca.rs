//! `regdoc ca init [--dir DIR] [--force]`: make the local CA used for interception.

use crate::intercept::ca::{self, CaError, CaPaths};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where `ca init` writes without `--dir`: `certs/` under the working directory (its README and
/// .gitignore keep keys out of version control).
pub const DEFAULT_DIR: &str = "certs";

/// Create `ca.crt` and `ca.key` (ECDSA P-256, CA with path length 0, 10 years, key file 0600)
/// in `dir`; refuses to replace existing files unless `force`.
pub fn init_ca(dir: &Path, force: bool) -> Result<CaPaths, CaError> {
    ca::generate(dir, force)
}

/// What to tell the operator after `init_ca`: where the files are and how to use them.
pub fn next_steps(paths: &CaPaths) -> String {
    let cert = absolute(&paths.cert);
    let key = absolute(&paths.key);
    format!(
        "wrote {cert} and {key} (keep the key private: mode 0600)\n\
         \n\
         1. Tell regdoc to use it (regdoc.toml):\n\
         \x20  [intercept]\n\
         \x20  ca_cert = \"{cert}\"\n\
         \x20  ca_key = \"{key}\"\n\
         \n\
         2. Make each Docker host trust it for the registries regdoc intercepts:\n\
         \x20  mkdir -p /etc/docker/certs.d/<registry>.azurecr.io\n\
         \x20  cp {cert} /etc/docker/certs.d/<registry>.azurecr.io/ca.crt\n\
         \x20  (Docker adds these files to the system roots for that host only; no restart needed)\n"
    )
}

fn absolute(p: &Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

/// `regdoc ca init`: create the CA in `dir` (default [`DEFAULT_DIR`]), print the next steps on
/// standard output, or the error on standard error (exit status 1).
pub fn init(dir: Option<&Path>, force: bool) -> ExitCode {
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
    match init_ca(&dir, force) {
        Ok(paths) => {
            print!("{}", next_steps(&paths));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("regdoc ca init: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_refuse_then_force() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("certs");
        let paths = init_ca(&d, false).unwrap();
        let msg = next_steps(&paths);
        assert!(
            msg.contains("ca.crt") && msg.contains("/etc/docker/certs.d/"),
            "{msg}"
        );
        assert!(init_ca(&d, false)
            .unwrap_err()
            .to_string()
            .contains("--force"));
        assert_eq!(init(Some(&d), false), ExitCode::FAILURE);
        assert_eq!(init(Some(&d), true), ExitCode::SUCCESS);
    }
}
