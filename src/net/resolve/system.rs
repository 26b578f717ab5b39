//! The system files behind name resolution, re-read when they change.
//!
//! Go checks them at most every five seconds and re-reads a file whose modification time or
//! size changed; regdoc does the same, so an operator who fixes a pinned `/etc/hosts` line
//! does not have to restart it.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How often a file is looked at again (Go: five seconds).
pub const RECHECK: Duration = Duration::from_secs(5);

/// Where the system files are. The default is the real system; tests point elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemPaths {
    pub hosts: PathBuf,
    pub nsswitch: PathBuf,
    pub resolv_conf: PathBuf,
    /// The host name, whose domain is the search list when resolv.conf gives none.
    pub hostname: PathBuf,
}

impl Default for SystemPaths {
    fn default() -> Self {
        SystemPaths {
            hosts: "/etc/hosts".into(),
            nsswitch: "/etc/nsswitch.conf".into(),
            resolv_conf: "/etc/resolv.conf".into(),
            hostname: "/proc/sys/kernel/hostname".into(),
        }
    }
}

/// What identifies a version of a file without reading it. An editor that writes a new file
/// and renames it over the old one changes the inode even when size and time look the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    mtime: Option<SystemTime>,
    len: u64,
    dev: u64,
    ino: u64,
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            mtime: m.modified().ok(),
            len: m.len(),
            dev: m.dev(),
            ino: m.ino(),
        }
    }
}

/// The stamp of `path` now; `None` when it cannot be read.
fn stamp(path: &Path) -> Option<Stamp> {
    std::fs::metadata(path).ok().map(|m| Stamp::of(&m))
}

/// The text of `path` and the stamp of exactly what was read; `None` when it cannot be read
/// (Go treats an unreadable file as a missing one).
pub fn read(path: &Path) -> (Option<String>, Option<Stamp>) {
    let Ok(mut f) = std::fs::File::open(path) else {
        return (None, None);
    };
    let st = f.metadata().ok().map(|m| Stamp::of(&m));
    let mut bytes = Vec::new();
    if let Err(e) = f.read_to_end(&mut bytes) {
        tracing::warn!("cannot read {}: {e}", path.display());
        return (None, st);
    }
    (Some(String::from_utf8_lossy(&bytes).into_owned()), st)
}

/// Whether a file last looked at `checked` should be looked at again `now`.
pub fn due(checked: Instant, now: Instant) -> bool {
    now.saturating_duration_since(checked) >= RECHECK
}

/// Turns a file's text (`None`: unreadable) into its value.
type Parse<T> = Box<dyn Fn(Option<&str>) -> T + Send + Sync>;

/// One system file and its parsed value.
pub struct Watched<T> {
    path: PathBuf,
    parse: Parse<T>,
    stamp: Option<Stamp>,
    checked: Instant,
    value: Arc<T>,
}

impl<T> Watched<T> {
    /// Read and parse `path` now. `parse` gets `None` when the file cannot be read.
    pub fn load(
        path: PathBuf,
        parse: impl Fn(Option<&str>) -> T + Send + Sync + 'static,
        now: Instant,
    ) -> Watched<T> {
        let (text, stamp) = read(&path);
        let value = Arc::new(parse(text.as_deref()));
        Watched {
            path,
            parse: Box::new(parse),
            stamp,
            checked: now,
            value,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn value(&self) -> Arc<T> {
        self.value.clone()
    }

    /// The value at `now`: the file is looked at again when [`RECHECK`] has passed since the
    /// last look, and parsed again when its stamp changed. True when the value changed.
    pub fn refresh(&mut self, now: Instant) -> bool {
        if !due(self.checked, now) {
            return false;
        }
        self.checked = now;
        if stamp(&self.path) == self.stamp {
            return false;
        }
        let (text, stamp) = read(&self.path);
        self.stamp = stamp;
        self.value = Arc::new((self.parse)(text.as_deref()));
        tracing::info!("re-read {} (changed)", self.path.display());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str, mtime: SystemTime) {
        std::fs::write(path, text).unwrap();
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(mtime).unwrap();
    }

    #[test]
    fn rechecked_only_after_the_interval() {
        let t0 = Instant::now();
        assert!(!due(t0, t0));
        assert!(!due(t0, t0 + RECHECK - Duration::from_millis(1)));
        assert!(due(t0, t0 + RECHECK));
        // A clock that seems to go back is not a reason to look.
        assert!(!due(t0 + RECHECK, t0));
    }

    #[test]
    fn a_changed_file_is_read_again_after_the_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        let t1 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        write(&path, "one", t1);
        let t0 = Instant::now();
        let mut w = Watched::load(path.clone(), |t| t.map(str::to_string), t0);
        assert_eq!(*w.value(), Some("one".to_string()));

        // Same length, later time.
        write(&path, "two", t1 + Duration::from_secs(1));
        assert!(!w.refresh(t0 + Duration::from_secs(1)), "too early");
        assert_eq!(*w.value(), Some("one".to_string()));
        assert!(w.refresh(t0 + RECHECK));
        assert_eq!(*w.value(), Some("two".to_string()));

        // Same time, other length.
        write(&path, "three", t1 + Duration::from_secs(1));
        assert!(w.refresh(t0 + 2 * RECHECK));
        assert_eq!(*w.value(), Some("three".to_string()));

        // Unchanged: not parsed again.
        assert!(!w.refresh(t0 + 3 * RECHECK));

        // Removed, then back.
        std::fs::remove_file(&path).unwrap();
        assert!(w.refresh(t0 + 4 * RECHECK));
        assert_eq!(*w.value(), None);
        write(&path, "four", t1);
        assert!(w.refresh(t0 + 5 * RECHECK));
        assert_eq!(*w.value(), Some("four".to_string()));
    }

    #[test]
    fn a_missing_file_parses_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let w = Watched::load(dir.path().join("absent"), |t| t.is_none(), Instant::now());
        assert!(*w.value());
    }
}
