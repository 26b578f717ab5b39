//! containerd's hosts directory: `/etc/containerd/certs.d/<host>/hosts.toml`, whose `ca` (a
//! path or a list of paths, at the top or in a `[host."…"]` table) names the CAs containerd adds
//! to the system roots for that registry. An intercepting regdoc's CA must be among them for each
//! host it intercepts. containerd reads the file at each pull: no restart needed. The CRI plugin
//! reads the directory only when its registry `config_path` points at it; `ctr` when given
//! `--hosts-dir`.
//!
//! As containerd looks (its `hostDirectory`, `loadHostDir`): the first of `<host>` and
//! `_default` that exists; in it, `hosts.toml`, or without one the directory's `*.crt` files as
//! CAs. A file it cannot decode is ignored (containerd logs it and goes on without it), so it is
//! reported rather than trusted.

use super::certs::{holds, Trust};
use rustls::pki_types::CertificateDer;
use std::path::{Path, PathBuf};

pub const DIR: &str = "etc/containerd/certs.d";

/// containerd's configuration, where the CRI plugin's `config_path` is set.
pub const CONFIG: &str = "etc/containerd/config.toml";

/// Whether containerd trusts `ca` for `host` (a registry on port 443), looking in its default
/// hosts directory (what `ctr --hosts-dir /etc/containerd/certs.d` reads).
pub fn trust(root: &Path, host: &str, ca: &CertificateDer<'_>) -> Trust {
    trust_in(root, &[&format!("/{DIR}")], host, ca)
}

/// Whether containerd trusts `ca` for `host` when its hosts directories are `dirs`, in order
/// (the CRI plugin's `config_path`, split at `:`): the first directory holding `<host>` or
/// `_default` is the only one read, as containerd's `hostDirFromRoots` does.
pub fn trust_in(root: &Path, dirs: &[&str], host: &str, ca: &CertificateDer<'_>) -> Trust {
    let Some(dir) = dirs
        .iter()
        .map(|d| root.join(d.trim_start_matches('/')))
        .flat_map(|d| [d.join(host), d.join("_default")])
        .find(|d| d.is_dir())
    else {
        return Trust::NoDir;
    };
    let file = dir.join("hosts.toml");
    let cas = match std::fs::read_to_string(&file) {
        Ok(text) => match text.parse::<toml::Table>() {
            Ok(doc) => ca_files(&doc, root, &dir),
            Err(e) => {
                return Trust::Unusable {
                    file,
                    reason: e.message().to_string(),
                }
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => crt_files(&dir),
        Err(e) => {
            return Trust::Unusable {
                file,
                reason: e.to_string(),
            }
        }
    };
    match cas.into_iter().find(|f| holds(f, ca)) {
        Some(f) => Trust::Trusted(f),
        None => Trust::Missing { dirs: vec![dir] },
    }
}

/// The `*.crt` files of a host directory without hosts.toml, in name order.
fn crt_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "crt"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Every `ca` the file names, as paths under `root`: absolute ones are the host's, relative
/// ones are relative to the host's directory (as containerd resolves them).
fn ca_files(doc: &toml::Table, root: &Path, dir: &Path) -> Vec<PathBuf> {
    fn add<'a>(names: &mut Vec<&'a str>, v: Option<&'a toml::Value>) {
        match v {
            Some(toml::Value::String(s)) => names.push(s),
            Some(toml::Value::Array(items)) => {
                names.extend(items.iter().filter_map(|i| i.as_str()))
            }
            _ => {}
        }
    }
    let mut names: Vec<&str> = Vec::new();
    add(&mut names, doc.get("ca"));
    if let Some(hosts) = doc.get("host").and_then(|h| h.as_table()) {
        for table in hosts.values().filter_map(|t| t.as_table()) {
            add(&mut names, table.get("ca"));
        }
    }
    names
        .into_iter()
        .map(|n| match n.strip_prefix('/') {
            Some(abs) => root.join(abs),
            None => dir.join(n),
        })
        .collect()
}

/// The directories a `config_path` names, in order (containerd splits it at `:`, as Go's
/// `filepath.SplitList` does; empty entries name nothing).
pub fn config_path_dirs(path: &str) -> impl Iterator<Item = &str> {
    path.split(':').filter(|d| !d.is_empty())
}

/// What the CRI plugin's registry `config_path` is, in containerd's configuration under
/// `root`: `Ok(None)` when the file is there without it, `Err` when the file is absent or
/// unreadable (with why). containerd 1.x names the plugin `io.containerd.grpc.v1.cri`,
/// containerd 2.x `io.containerd.cri.v1.images`.
pub fn cri_config_path(root: &Path) -> Result<Option<String>, String> {
    let path = root.join(CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("/{CONFIG}: {e}"))?;
    let doc = text
        .parse::<toml::Table>()
        .map_err(|e| format!("/{CONFIG}: {}", e.message()))?;
    let plugins = doc.get("plugins").and_then(|p| p.as_table());
    Ok(["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images"]
        .iter()
        .filter_map(|name| plugins?.get(*name)?.get("registry")?.get("config_path"))
        .filter_map(|v| v.as_str())
        .find(|s| !s.is_empty())
        .map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> (CertificateDer<'static>, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["regdoc test CA".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.der().clone(), cert.pem())
    }

    #[test]
    fn a_ca_named_at_the_top_or_in_a_host_table_relative_or_absolute() {
        let (der, pem) = ca();
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(DIR).join("myreg.azurecr.io");
        std::fs::create_dir_all(&dir).unwrap();
        assert!(matches!(
            trust(root.path(), "myreg.azurecr.io", &der),
            Trust::Missing { .. }
        ));
        std::fs::write(dir.join("regdoc.crt"), &pem).unwrap();
        std::fs::write(
            dir.join("hosts.toml"),
            "server = \"https://myreg.azurecr.io\"\nca = \"regdoc.crt\"\n",
        )
        .unwrap();
        assert_eq!(
            trust(root.path(), "myreg.azurecr.io", &der),
            Trust::Trusted(dir.join("regdoc.crt"))
        );
        std::fs::write(
            dir.join("hosts.toml"),
            "[host.\"https://myreg.azurecr.io\"]\nca = [\"/etc/other.crt\", \"/etc/containerd/certs.d/myreg.azurecr.io/regdoc.crt\"]\n",
        )
        .unwrap();
        assert_eq!(
            trust(root.path(), "myreg.azurecr.io", &der),
            Trust::Trusted(dir.join("regdoc.crt"))
        );
        // Another CA in the file: not trusted; no directory at all: said apart.
        let (other, _) = ca();
        assert!(matches!(
            trust(root.path(), "myreg.azurecr.io", &other),
            Trust::Missing { .. }
        ));
        assert_eq!(trust(root.path(), "other.azurecr.io", &der), Trust::NoDir);
        // A file containerd cannot decode is named, not trusted.
        std::fs::write(dir.join("hosts.toml"), "ca = [\n").unwrap();
        assert!(matches!(
            trust(root.path(), "myreg.azurecr.io", &der),
            Trust::Unusable { .. }
        ));
        // `_default` serves every host without a directory of its own.
        let default = root.path().join(DIR).join("_default");
        std::fs::create_dir_all(&default).unwrap();
        std::fs::write(default.join("regdoc.crt"), &pem).unwrap();
        assert_eq!(
            trust(root.path(), "other.azurecr.io", &der),
            Trust::Trusted(default.join("regdoc.crt"))
        );
    }

    #[test]
    fn the_first_of_several_directories_with_the_host_or_a_default_is_the_one_read() {
        let (der, pem) = ca();
        let root = tempfile::tempdir().unwrap();
        let mine = root.path().join(DIR).join("myreg.azurecr.io");
        std::fs::create_dir_all(&mine).unwrap();
        std::fs::write(mine.join("regdoc.crt"), &pem).unwrap();
        let dirs = ["/etc/containerd/certs.d", "/etc/docker/certs.d"];
        assert_eq!(
            trust_in(root.path(), &dirs, "myreg.azurecr.io", &der),
            Trust::Trusted(mine.join("regdoc.crt"))
        );
        // An earlier directory's `_default` wins over a later one's `<host>`.
        let first = ["/srv/hosts", "/etc/containerd/certs.d"];
        assert_eq!(
            trust_in(root.path(), &first, "myreg.azurecr.io", &der),
            Trust::Trusted(mine.join("regdoc.crt"))
        );
        let default = root.path().join("srv/hosts/_default");
        std::fs::create_dir_all(&default).unwrap();
        assert_eq!(
            trust_in(root.path(), &first, "myreg.azurecr.io", &der),
            Trust::Missing {
                dirs: vec![default.clone()]
            }
        );
        assert_eq!(
            trust_in(root.path(), &["/srv/none"], "myreg.azurecr.io", &der),
            Trust::NoDir
        );
    }

    #[test]
    fn the_cri_plugin_config_path_of_containerd_1_and_2() {
        let root = tempfile::tempdir().unwrap();
        assert!(cri_config_path(root.path()).is_err());
        let conf = root.path().join(CONFIG);
        std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
        std::fs::write(&conf, "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"/etc/containerd/certs.d\"\n").unwrap();
        assert_eq!(
            cri_config_path(root.path()).unwrap().as_deref(),
            Some("/etc/containerd/certs.d")
        );
        std::fs::write(&conf, "version = 3\n[plugins.'io.containerd.cri.v1.images'.registry]\nconfig_path = '/etc/containerd/certs.d:/etc/docker/certs.d'\n").unwrap();
        assert_eq!(
            cri_config_path(root.path()).unwrap().as_deref(),
            Some("/etc/containerd/certs.d:/etc/docker/certs.d")
        );
        std::fs::write(&conf, "version = 2\n").unwrap();
        assert_eq!(cri_config_path(root.path()).unwrap(), None);
        std::fs::write(&conf, "version = [\n").unwrap();
        assert!(cri_config_path(root.path()).is_err());
    }
}
