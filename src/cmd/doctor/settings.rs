//! The daemon's effective proxy settings: which value of each variable it uses, and where that
//! value came from. daemon.json's `proxies` beats the environment (dockerd overrides the
//! variable at start); the running process's environment beats the drop-ins (they only apply
//! at the next restart); the drop-ins are what is left when the process cannot be read.

use super::daemon_json::Proxies;
use super::systemd::DropIns;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A running daemon: its program (`dockerd`, `containerd`) and pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pid {
    pub program: &'static str,
    pub pid: u32,
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// dockerd's command line (`--https-proxy`).
    Flag(Pid),
    DaemonJson(PathBuf),
    Process(Pid),
    DropIn(PathBuf),
}

impl Origin {
    /// For reports, with paths as the host names them (`root` taken off).
    pub fn describe(&self, root: &std::path::Path) -> String {
        match self {
            Origin::DaemonJson(p) | Origin::DropIn(p) => host_path(root, p),
            Origin::Process(p) => format!("environment of {} pid {}", p.program, p.pid),
            Origin::Flag(p) => format!("command line of {} pid {}", p.program, p.pid),
        }
    }
}

/// `p` as the host names it: under `--root DIR` a fixture's `DIR/etc/x` is the host's `/etc/x`.
pub fn host_path(root: &std::path::Path, p: &std::path::Path) -> String {
    match p.strip_prefix(root) {
        Ok(rel) => format!("/{}", rel.display()),
        Err(_) => p.display().to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    /// The variable's name as found (`HTTPS_PROXY`, `https_proxy`, `https-proxy`).
    pub name: String,
    pub value: String,
    pub origin: Origin,
}

/// The three settings the daemon's HTTP client reads.
#[derive(Debug, Default)]
pub struct Effective {
    pub https: Option<Value>,
    pub http: Option<Value>,
    pub no_proxy: Option<Value>,
}

/// Go's lookup: the upper-case name first, then the lower-case one; empty counts as unset.
fn lookup<'a, V>(
    env: &'a BTreeMap<String, V>,
    upper: &str,
    get: impl Fn(&V) -> &str,
) -> Option<(&'a str, &'a V)> {
    [upper.to_string(), upper.to_ascii_lowercase()]
        .into_iter()
        .find_map(|n| env.get_key_value(&n).filter(|(_, v)| !get(v).is_empty()))
        .map(|(k, v)| (k.as_str(), v))
}

/// `overrides`: dockerd's own settings, which replace the environment variable of the same role
/// (its `--https-proxy` style flags, daemon.json `proxies`; dockerd refuses to start when both
/// set one), first found wins.
pub fn effective(
    overrides: &[(Origin, &Proxies)],
    process: Option<(Pid, &BTreeMap<String, String>)>,
    dropins: &DropIns,
) -> Effective {
    let one = |upper: &str, role: fn(&Proxies) -> Option<&String>, key: &str| -> Option<Value> {
        if let Some((origin, v)) = overrides.iter().find_map(|(o, p)| role(p).map(|v| (o, v))) {
            let name = match origin {
                Origin::Flag(_) => format!("--{key}"),
                _ => key.to_string(),
            };
            return Some(Value {
                name,
                value: v.clone(),
                origin: origin.clone(),
            });
        }
        if let Some((pid, env)) = process {
            return lookup(env, upper, |v| v.as_str()).map(|(k, v)| Value {
                name: k.to_string(),
                value: v.clone(),
                origin: Origin::Process(pid),
            });
        }
        lookup(&dropins.env, upper, |s| s.value.as_str()).map(|(k, s)| Value {
            name: k.to_string(),
            value: s.value.clone(),
            origin: Origin::DropIn(s.file.clone()),
        })
    };
    Effective {
        https: one("HTTPS_PROXY", |p| p.https.as_ref(), "https-proxy"),
        http: one("HTTP_PROXY", |p| p.http.as_ref(), "http-proxy"),
        no_proxy: one("NO_PROXY", |p| p.no_proxy.as_ref(), "no-proxy"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKERD_7: Pid = Pid {
        program: "dockerd",
        pid: 7,
    };
    use crate::cmd::doctor::systemd::Setting;

    #[test]
    fn json_beats_process_beats_dropins_upper_case_first() {
        let mut d = DropIns::default();
        let s = |v: &str| Setting {
            value: v.into(),
            file: PathBuf::from("/d.conf"),
        };
        d.env.insert("https_proxy".into(), s("http://lower:1"));
        d.env.insert("HTTPS_PROXY".into(), s("http://upper:1"));
        d.env.insert("NO_PROXY".into(), s("localhost"));
        let e = effective(&[], None, &d);
        assert_eq!(e.https.as_ref().unwrap().value, "http://upper:1");
        assert_eq!(e.https.unwrap().origin, Origin::DropIn("/d.conf".into()));

        let env: BTreeMap<String, String> =
            [("https_proxy".to_string(), "http://proc:1".to_string())].into();
        let e = effective(&[], Some((DOCKERD_7, &env)), &d);
        assert_eq!(e.https.unwrap().origin, Origin::Process(DOCKERD_7));
        // The process is the truth while it runs: no NO_PROXY there means none.
        assert!(e.no_proxy.is_none());

        let json = Proxies {
            https: Some("https://json:1".into()),
            ..Proxies::default()
        };
        let path = PathBuf::from("/etc/docker/daemon.json");
        let e = effective(
            &[(Origin::DaemonJson(path.clone()), &json)],
            Some((DOCKERD_7, &env)),
            &d,
        );
        assert_eq!(e.https.as_ref().unwrap().name, "https-proxy");
        assert_eq!(e.https.unwrap().origin, Origin::DaemonJson(path.clone()));

        // A flag on dockerd's command line, named as written there.
        let flags = Proxies {
            https: Some("http://flag:1".into()),
            ..Proxies::default()
        };
        let e = effective(
            &[
                (Origin::Flag(DOCKERD_7), &flags),
                (Origin::DaemonJson(path), &json),
            ],
            Some((DOCKERD_7, &env)),
            &d,
        );
        assert_eq!(e.https.as_ref().unwrap().name, "--https-proxy");
        assert_eq!(e.https.unwrap().origin, Origin::Flag(DOCKERD_7));
    }
}
