//! The files a configuration names, checked the way `run` will use them, without changing
//! anything: the CA and extra roots must be readable files; the log file must be appendable, or
//! its directory writable so that it can be created.

use super::Config;
use std::fs::{File, OpenOptions};
use std::path::Path;

/// The first file that cannot be used, as (key, reason).
pub fn check(c: &Config) -> Result<(), (String, String)> {
    let i = &c.intercept;
    for (key, path) in [("ca_cert", &i.ca_cert), ("ca_key", &i.ca_key)] {
        if let Some(p) = path {
            readable(key, p)?;
        }
    }
    for p in &i.extra_roots {
        readable("extra_roots", p)?;
    }
    if let Some(p) = &c.log.file {
        appendable(p)?;
    }
    Ok(())
}

fn readable(key: &str, p: &Path) -> Result<(), (String, String)> {
    let refuse = |why: String| (key.to_string(), format!("{key} {}: {why}", p.display()));
    let f = File::open(p).map_err(|e| refuse(e.to_string()))?;
    match f.metadata() {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(refuse("not a regular file".into())),
        Err(e) => Err(refuse(e.to_string())),
    }
}

fn appendable(p: &Path) -> Result<(), (String, String)> {
    let refuse = |why: String| {
        (
            "file".to_string(),
            format!("log.file {}: {why}", p.display()),
        )
    };
    if p.exists() {
        // Opening for append writes nothing.
        return OpenOptions::new()
            .append(true)
            .open(p)
            .map(drop)
            .map_err(|e| refuse(format!("cannot be opened for appending: {e}")));
    }
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(refuse(format!(
            "directory {} does not exist",
            dir.display()
        )));
    }
    if !writable_dir(dir) {
        return Err(refuse(format!(
            "directory {} is not writable by this user, so the file cannot be created",
            dir.display()
        )));
    }
    Ok(())
}

/// `access(2)` with W_OK|X_OK: the kernel's own answer for this process's user, which also
/// knows about read-only mounts, without creating anything.
fn writable_dir(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        Config::parse(text, Path::new("c")).unwrap()
    }

    #[test]
    fn missing_ca_and_log_directory_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.crt");
        let c = cfg(&format!(
            "[intercept]\nca_cert = {missing:?}\nca_key = {missing:?}\n"
        ));
        let (key, why) = check(&c).unwrap_err();
        assert_eq!(key, "ca_cert");
        assert!(
            why.contains("nope.crt") && why.contains("No such file"),
            "{why}"
        );

        let c = cfg(&format!("[intercept]\nextra_roots = [{:?}]\n", dir.path()));
        assert!(check(&c).unwrap_err().1.contains("not a regular file"));

        let c = cfg(&format!(
            "[log]\nfile = {:?}\n",
            dir.path().join("no/such/dir/regdoc.log")
        ));
        assert!(check(&c).unwrap_err().1.contains("does not exist"));

        let c = cfg(&format!("[log]\nfile = {:?}\n", dir.path().join("new.log")));
        assert_eq!(check(&c), Ok(()));
        assert!(
            !dir.path().join("new.log").exists(),
            "checking created the file"
        );
    }
}
