//! `regdoc ca init [--dir certs/] [--force]`: make the local CA used for interception.

use crate::intercept::ca::{self, CaError, CaPaths};
use std::path::{Path, PathBuf};

/// Arguments of `regdoc ca init`.
#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// Directory for `ca.crt` and `ca.key`.
    #[arg(long, default_value = "certs")]
    pub dir: PathBuf,
    /// Replace an existing CA (every client must then trust the new one).
    #[arg(long)]
    pub force: bool,
}

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

/// Run `regdoc ca init`: the message to print, or the error.
pub fn run_init(args: &InitArgs) -> Result<String, CaError> {
    init_ca(&args.dir, args.force).map(|p| next_steps(&p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_refuse_then_force() {
        let dir = tempfile::tempdir().unwrap();
        let args = InitArgs {
            dir: dir.path().join("certs"),
            force: false,
        };
        let msg = run_init(&args).unwrap();
        assert!(
            msg.contains("ca.crt") && msg.contains("/etc/docker/certs.d/"),
            "{msg}"
        );
        assert!(run_init(&args).unwrap_err().to_string().contains("--force"));
        run_init(&InitArgs {
            force: true,
            ..args
        })
        .unwrap();
    }
}
