//! The environment systemd gives a daemon's unit (`docker.service`, `containerd.service`)
//! through its drop-ins: `Environment=` and `EnvironmentFile=` in `<unit>.d/*.conf`, read as
//! systemd reads them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where drop-in directories live, most important first: a file in `/etc` masks one of the
/// same name in `/run`, which masks one in `/usr/lib` (systemd.unit(5), "drop-in").
pub const UNIT_DIRS: &[&str] = &[
    "etc/systemd/system",
    "run/systemd/system",
    "usr/lib/systemd/system",
];

/// The drop-in directories of `unit` (`docker.service`), most important first.
pub fn dropin_dirs(unit: &str) -> Vec<String> {
    UNIT_DIRS.iter().map(|d| format!("{d}/{unit}.d")).collect()
}

/// One variable as the drop-ins set it, with the file that set it last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub value: String,
    pub file: PathBuf,
}

/// What the drop-ins say: the files read (for their mtimes) and the resulting environment.
#[derive(Debug, Default)]
pub struct DropIns {
    /// Drop-ins and environment files that were read, in the order systemd applies them.
    pub files: Vec<PathBuf>,
    pub env: BTreeMap<String, Setting>,
    /// Files that could not be read, with why: reported, never fatal.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// Read the drop-ins of `unit` (`docker.service`) under `root`.
pub fn read(root: &Path, unit: &str) -> DropIns {
    let mut out = DropIns::default();
    // Drop-ins apply in file-name order across all directories, the first directory winning
    // for a name present in several.
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in dropin_dirs(unit) {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".conf") {
                by_name.entry(name).or_insert_with(|| e.path());
            }
        }
    }
    // Environment files override Environment= whatever the order (systemd.exec(5)), so they
    // are applied after every drop-in's Environment= lines.
    let mut env_files: Vec<(PathBuf, bool)> = Vec::new();
    for path in by_name.into_values() {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                out.unreadable.push((path, e.to_string()));
                continue;
            }
        };
        for (key, value) in service_lines(&text) {
            match key.as_str() {
                "Environment" if value.trim().is_empty() => out.env.clear(),
                "Environment" => {
                    for word in split_words(&value) {
                        if let Some((k, v)) = word.split_once('=') {
                            let s = Setting {
                                value: v.to_string(),
                                file: path.clone(),
                            };
                            out.env.insert(k.to_string(), s);
                        }
                    }
                }
                "EnvironmentFile" if value.trim().is_empty() => env_files.clear(),
                "EnvironmentFile" => {
                    let v = value.trim();
                    let (optional, file) = match v.strip_prefix('-') {
                        Some(f) => (true, f),
                        None => (false, v),
                    };
                    let file = root.join(file.trim_start_matches('/'));
                    env_files.push((file, optional));
                }
                _ => {}
            }
        }
        out.files.push(path);
    }
    for (file, optional) in env_files {
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                for (k, v) in env_file(&text) {
                    let s = Setting {
                        value: v,
                        file: file.clone(),
                    };
                    out.env.insert(k, s);
                }
                out.files.push(file);
            }
            // A missing optional file is what `-` is for; a missing required one stops
            // the unit from starting, which the operator must hear about.
            Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => out.unreadable.push((file, e.to_string())),
        }
    }
    out
}

/// `Key=value` assignments of the `[Service]` section, continuation lines joined.
fn service_lines(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut in_service = false;
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if pending.is_empty() && (line.starts_with('#') || line.starts_with(';')) {
            continue;
        }
        // A trailing backslash continues the assignment on the next line.
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let full = std::mem::take(&mut pending);
        let full = full.trim();
        if full.starts_with('[') {
            in_service = full == "[Service]";
            continue;
        }
        if !in_service {
            continue;
        }
        if let Some((k, v)) = full.split_once('=') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// Split an `Environment=` value into words as systemd does: whitespace separates, double or
/// single quotes group, a backslash escapes the next character.
pub fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// `KEY=value` lines of an environment file; `#`/`;` comments, optional quotes around values.
fn env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = split_words(v).join(" ");
            Some((k.trim().to_string(), v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_quoted_and_multiple() {
        assert_eq!(
            split_words(r#""HTTPS_PROXY=http://a:1" NO_PROXY=localhost 'X=a b' Y=c\ d"#),
            vec![
                "HTTPS_PROXY=http://a:1",
                "NO_PROXY=localhost",
                "X=a b",
                "Y=c d"
            ]
        );
        assert_eq!(split_words("  "), Vec::<String>::new());
    }

    #[test]
    fn dropins_in_name_order_etc_masks_usr_lib_and_files_override() {
        let root = tempfile::tempdir().unwrap();
        let dirs = dropin_dirs("docker.service");
        let etc = root.path().join(&dirs[0]);
        let usr = root.path().join(&dirs[2]);
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::create_dir_all(&usr).unwrap();
        std::fs::write(
            usr.join("10-proxy.conf"),
            "[Service]\nEnvironment=HTTPS_PROXY=http://masked:1\n",
        )
        .unwrap();
        std::fs::write(
            etc.join("10-proxy.conf"),
            "# comment\n[Unit]\nEnvironment=IGNORED=1\n[Service]\n\
             Environment=\"HTTPS_PROXY=http://a:1\" \\\n  \"NO_PROXY=localhost\"\n\
             EnvironmentFile=-/etc/default/docker-missing\nEnvironmentFile=/etc/default/docker\n",
        )
        .unwrap();
        std::fs::write(
            usr.join("20-more.conf"),
            "[Service]\nEnvironment=HTTP_PROXY=http://b:2 NO_PROXY=overridden\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.path().join("etc/default")).unwrap();
        std::fs::write(
            root.path().join("etc/default/docker"),
            "# env\nNO_PROXY=\"from-file\"\n",
        )
        .unwrap();
        let d = read(root.path(), "docker.service");
        assert_eq!(d.env["HTTPS_PROXY"].value, "http://a:1");
        assert_eq!(d.env["HTTP_PROXY"].value, "http://b:2");
        assert_eq!(d.env["NO_PROXY"].value, "from-file");
        assert!(!d.env.contains_key("IGNORED"));
        assert_eq!(d.files.len(), 3, "{:?}", d.files);
        assert!(d.unreadable.is_empty(), "{:?}", d.unreadable);
    }

    #[test]
    fn empty_environment_resets() {
        let l = service_lines("[Service]\nEnvironment=A=1\nEnvironment=\n");
        assert_eq!(l.len(), 2);
        assert_eq!(l[1], ("Environment".into(), String::new()));
    }
}
