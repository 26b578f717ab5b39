//! The running daemon (`dockerd`, `containerd`) as `/proc` shows it: its pid, its environment and
//! when it started.

use super::daemon_json::Proxies;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The running daemon.
#[derive(Debug)]
pub struct Daemon {
    pub pid: u32,
    /// Other processes of the same program seen (rootless or test daemons), by pid.
    pub others: Vec<u32>,
    /// Its environment, or why it could not be read (not root: readable by its owner only).
    pub environ: Result<BTreeMap<String, String>, String>,
    /// When it started, if `/proc` says.
    pub started: Option<SystemTime>,
    /// Its `--http-proxy`, `--https-proxy`, `--no-proxy` flags (Engine 23+).
    pub flags: Proxies,
}

/// Find the `program` process (`dockerd`) under `root/proc`; None when none runs. With `only`,
/// that pid and no other, when it runs `program`.
pub fn find(root: &Path, program: &str, only: Option<u32>) -> Option<Daemon> {
    let proc_dir = root.join("proc");
    let mut pids: Vec<u32> = std::fs::read_dir(&proc_dir)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| only.is_none_or(|o| o == *pid))
        .filter(|pid| {
            std::fs::read_to_string(proc_dir.join(pid.to_string()).join("comm"))
                .map(|c| c.trim_end() == program)
                .unwrap_or(false)
        })
        .collect();
    pids.sort_unstable();
    // The system daemon is the one systemd started (parent 1); otherwise the oldest pid.
    let pos = pids
        .iter()
        .position(|pid| stat(&proc_dir.join(pid.to_string())).map(|s| s.ppid) == Some(1))
        .unwrap_or(0);
    if pids.is_empty() {
        return None;
    }
    let pid = pids.remove(pos);
    let dir = proc_dir.join(pid.to_string());
    Some(Daemon {
        pid,
        others: pids,
        environ: environ(&dir.join("environ"), &format!("/proc/{pid}/environ")),
        started: started(root, &dir),
        flags: std::fs::read(dir.join("cmdline"))
            .map(|c| proxy_flags(&c))
            .unwrap_or_default(),
    })
}

/// `shown`: the file as the host names it, for the reason.
fn environ(path: &PathBuf, shown: &str) -> Result<BTreeMap<String, String>, String> {
    let bytes = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            format!("{shown}: {e} (run as root to read it)")
        } else {
            format!("{shown}: {e}")
        }
    })?;
    Ok(bytes
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect())
}

/// The proxy flags of a NUL-separated command line, `--flag=value` or `--flag value`.
fn proxy_flags(cmdline: &[u8]) -> Proxies {
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let mut p = Proxies::default();
    let mut i = 0;
    while i < args.len() {
        let (flag, inline) = match args[i].split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (args[i].as_str(), None),
        };
        let slot = match flag {
            "--http-proxy" => &mut p.http,
            "--https-proxy" => &mut p.https,
            "--no-proxy" => &mut p.no_proxy,
            _ => {
                i += 1;
                continue;
            }
        };
        let value = match inline {
            Some(v) => v,
            None => {
                i += 1;
                args.get(i).cloned().unwrap_or_default()
            }
        };
        if !value.is_empty() {
            *slot = Some(value);
        }
        i += 1;
    }
    p
}

struct Stat {
    ppid: u32,
    /// Clock ticks after boot.
    starttime: u64,
}

/// `/proc/<pid>/stat`: fields after the `(comm)`, which may itself hold spaces and parentheses.
fn stat(dir: &Path) -> Option<Stat> {
    let text = std::fs::read_to_string(dir.join("stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): ppid is field 4, starttime field 22 (proc(5)).
    Some(Stat {
        ppid: fields.get(1)?.parse().ok()?,
        starttime: fields.get(19)?.parse().ok()?,
    })
}

/// Start time: boot time (`btime` of `/proc/stat`) plus the process's starttime ticks; else
/// the mtime of `/proc/<pid>`, which the kernel sets when the directory is first looked at
/// (an upper bound, good enough to say a file is newer than the daemon only when it is).
fn started(root: &Path, dir: &Path) -> Option<SystemTime> {
    let from_stat = || -> Option<SystemTime> {
        let text = std::fs::read_to_string(root.join("proc/stat")).ok()?;
        let btime: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        let ticks = stat(dir)?.starttime;
        let hz = clock_ticks();
        let after_boot =
            Duration::from_secs(ticks / hz) + Duration::from_millis(ticks % hz * 1000 / hz);
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(btime) + after_boot)
    };
    from_stat().or_else(|| std::fs::metadata(dir).and_then(|m| m.modified()).ok())
}

/// Clock ticks per second (USER_HZ), as `starttime` counts them.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|h| *h > 0).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_comm_with_spaces() {
        let dir = tempfile::tempdir().unwrap();
        let mut line = String::from("42 (do ck) erd) S 1 42 42 0 -1 4194560");
        for _ in 0..12 {
            line.push_str(" 0");
        }
        line.push_str(" 12345 0 0\n");
        std::fs::write(dir.path().join("stat"), line).unwrap();
        let s = stat(dir.path()).unwrap();
        assert_eq!(s.ppid, 1);
        assert_eq!(s.starttime, 12345);
    }

    #[test]
    fn proxy_flags_both_forms() {
        let p = proxy_flags(b"/usr/bin/dockerd\0-H\0fd://\0--https-proxy=https://127.0.0.1:3128\0--no-proxy\0.azurecr.io\0");
        assert_eq!(p.https.as_deref(), Some("https://127.0.0.1:3128"));
        assert_eq!(p.no_proxy.as_deref(), Some(".azurecr.io"));
        assert_eq!(p.http, None);
        assert_eq!(proxy_flags(b"dockerd\0--no-proxy"), Proxies::default());
    }

    #[test]
    fn no_proc_no_daemon() {
        let dir = tempfile::tempdir().unwrap();
        assert!(find(dir.path(), "dockerd", None).is_none());
    }
}
