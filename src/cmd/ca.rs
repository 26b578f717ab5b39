//! `regdoc ca init [--dir DIR] [--force] [--permit NAME]...`: make the local CA used for
//! interception; and the CA part of `regdoc check-config`.

use crate::config::Config;
use crate::intercept::ca::{self, Ca, CaError, CaPaths, CA_VALIDITY_DAYS};
use crate::intercept::constraints::DEFAULT_PERMIT;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where `ca init` writes without `--dir`: `certs/` under the working directory (its README and
/// .gitignore keep keys out of version control).
pub const DEFAULT_DIR: &str = "certs";

/// Create `ca.crt` and `ca.key` (ECDSA P-256, CA with path length 0, a year, key file 0600) in
/// `dir`, with name constraints permitting `permit` ([`DEFAULT_PERMIT`] when empty); refuses to
/// replace existing files unless `force`.
pub fn init_ca(dir: &Path, force: bool, permit: &[String]) -> Result<CaPaths, CaError> {
    if permit.is_empty() {
        ca::generate(dir, force)
    } else {
        ca::generate_permitting(dir, force, permit)
    }
}

/// What to tell the operator after `init_ca`: where the files are, what the CA may vouch for,
/// and how to put it to use (or in place of the previous one).
pub fn next_steps(paths: &CaPaths) -> String {
    let cert = absolute(&paths.cert);
    let key = absolute(&paths.key);
    let about = match Ca::load(&paths.cert, &paths.key) {
        Ok(ca) => format!(
            "it may vouch only for: {} (X.509 name constraints)\nit expires {}: run `regdoc ca init --force` before then and trust the new one\n",
            ca.describe_permitted(),
            crate::diagnose::text::unix_to_rfc3339(ca.not_after())
        ),
        Err(_) => String::new(),
    };
    format!(
        "wrote {cert} and {key} (keep the key private: mode 0600)\n\
         {about}\
         \n\
         1. Tell regdoc to use it (regdoc.toml), then restart regdoc:\n\
         \x20  [intercept]\n\
         \x20  ca_cert = \"{cert}\"\n\
         \x20  ca_key = \"{key}\"\n\
         \n\
         2. Make each Docker host trust it for the registries regdoc intercepts (and only those),\n\
         \x20  replacing the previous CA if there was one:\n\
         \x20  mkdir -p /etc/docker/certs.d/<registry>.azurecr.io\n\
         \x20  cp {cert} /etc/docker/certs.d/<registry>.azurecr.io/ca.crt\n\
         \x20  (dockerd reads certs.d at each connection: no restart needed)\n\
         \x20  containerd (CRI, nerdctl): /etc/containerd/certs.d/<registry>.azurecr.io/hosts.toml with\n\
         \x20  server = \"https://<registry>.azurecr.io\" and ca = \"{cert}\" at the top, then an empty [host] table\n\
         \x20  (containerd 1.6 needs one; a CA inside [host.\"...\"] leaves a CA-less retry of the server)\n"
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
pub fn init(dir: Option<&Path>, force: bool, permit: &[String]) -> ExitCode {
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
    match init_ca(&dir, force, permit) {
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

/// The CA part of `check-config`: facts to print, and problems that make the configuration
/// unusable for interception.
#[derive(Debug, Default)]
pub struct CaCheck {
    pub lines: Vec<String>,
    pub problems: Vec<String>,
}

/// The host patterns regdoc will intercept with `cfg`: `intercept.hosts`, or by default the
/// Azure login servers and the `[[registry]]` hosts.
pub fn intercepted_patterns(cfg: &Config) -> Vec<String> {
    if !cfg.intercept.hosts.is_empty() {
        return cfg.intercept.hosts.clone();
    }
    let mut all: Vec<String> = DEFAULT_PERMIT.iter().map(|s| s.to_string()).collect();
    all.extend(cfg.registry_hosts());
    all
}

/// Load the configured CA and compare its name constraints and validity with what `cfg` will
/// intercept. None when no CA is configured.
pub fn check(cfg: &Config) -> Option<CaCheck> {
    let (cert, key) = (
        cfg.intercept.ca_cert.as_ref()?,
        cfg.intercept.ca_key.as_ref()?,
    );
    let mut out = CaCheck::default();
    let ca = match Ca::load(cert, key) {
        Ok(ca) => ca,
        Err(e) => {
            out.problems.push(format!("interception CA: {e}"));
            return Some(out);
        }
    };
    out.lines.push(format!(
        "intercept CA      {:?} permits {}, expires {}",
        ca.common_name(),
        ca.describe_permitted(),
        crate::diagnose::text::unix_to_rfc3339(ca.not_after())
    ));
    if ca.constraints().is_none() {
        out.lines.push(
            "warning: the interception CA carries no name constraints: wherever it is trusted it can vouch for any name; `regdoc ca init --force --permit <host>` makes one that cannot"
                .into(),
        );
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let left_days = (ca.not_after() - now) / 86_400;
    if left_days < 0 {
        out.problems.push(
            "interception CA: expired; run `regdoc ca init --force` and trust the new CA".into(),
        );
    } else if left_days > CA_VALIDITY_DAYS + 1 {
        out.lines.push(format!(
            "warning: the interception CA is valid for {left_days} more days; regdoc's own are valid for {CA_VALIDITY_DAYS}"
        ));
    }
    if let Some(c) = ca.constraints() {
        let outside: Vec<String> = intercepted_patterns(cfg)
            .into_iter()
            .filter(|p| !c.permits_pattern(p))
            .collect();
        if !outside.is_empty() {
            let permits: String = outside.iter().map(|p| format!(" --permit {p}")).collect();
            out.problems.push(format!(
                "interception CA {}: its name constraints permit {}, not {}: regdoc refuses to mint certificates for them; make a CA that permits them (`regdoc ca init --force{permits}`) or stop intercepting them (intercept.hosts, intercept.passthrough)",
                cert.display(),
                c.describe_permitted(),
                outside.join(", "),
            ));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_refuse_then_force() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("certs");
        let paths = init_ca(&d, false, &[]).unwrap();
        let msg = next_steps(&paths);
        assert!(
            msg.contains("ca.crt") && msg.contains("/etc/docker/certs.d/"),
            "{msg}"
        );
        assert!(msg.contains("may vouch only for: .azurecr.io"), "{msg}");
        assert!(init_ca(&d, false, &[])
            .unwrap_err()
            .to_string()
            .contains("--force"));
        assert_eq!(init(Some(&d), false, &[]), ExitCode::FAILURE);
        assert_eq!(init(Some(&d), true, &[]), ExitCode::SUCCESS);
    }

    fn config(dir: &Path, permit: &[&str], extra: &str) -> Config {
        let permit: Vec<String> = permit.iter().map(|s| s.to_string()).collect();
        let p = init_ca(dir, true, &permit).unwrap();
        let text = format!(
            "[intercept]\nca_cert = {:?}\nca_key = {:?}\n{extra}",
            p.cert, p.key
        );
        Config::parse(&text, Path::new("t.toml")).unwrap()
    }

    #[test]
    fn check_reports_hosts_outside_the_constraints() {
        let dir = tempfile::tempdir().unwrap();
        let ok = check(&config(dir.path(), &[], "")).unwrap();
        assert!(ok.problems.is_empty(), "{:?}", ok.problems);
        assert!(
            ok.lines[0].contains("permits .azurecr.io"),
            "{:?}",
            ok.lines
        );

        let bad = check(&config(
            dir.path(),
            &[],
            "hosts = [\"*.azurecr.io\", \"registry.internal\"]\n",
        ))
        .unwrap();
        assert_eq!(bad.problems.len(), 1);
        assert!(
            bad.problems[0].contains("not registry.internal"),
            "{:?}",
            bad.problems
        );
        assert!(bad.problems[0].contains("--permit registry.internal"));

        let fixed = check(&config(
            dir.path(),
            &["*.azurecr.io", "registry.internal"],
            "hosts = [\"*.azurecr.io\", \"registry.internal\"]\n",
        ))
        .unwrap();
        assert!(fixed.problems.is_empty(), "{:?}", fixed.problems);

        // The default policy intercepts the `[[registry]]` hosts too.
        let reg = check(&config(
            dir.path(),
            &[],
            "[[registry]]\nhost = \"registry.internal\"\n",
        ))
        .unwrap();
        assert_eq!(reg.problems.len(), 1, "{:?}", reg.problems);

        assert!(check(&Config::default()).is_none());
    }
}
