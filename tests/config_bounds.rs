//! `regdoc check-config` and `regdoc run` refuse the same configurations, with `file:line:
//! reason` and exit 2, before anything listens: an open relay, settings outside their bounds,
//! empty credentials, files that are not there.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_regdoc");

fn regdoc(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("REGDOC_CONFIG")
        .env_remove("REGDOC_LOG")
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("regdoc.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Both commands refuse `text` with exit 2 and `path:line: ` followed by `needle`. `run`
/// never gets as far as listening: its `listen` is left to the text.
fn refused(text: &str, line: usize, needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), text);
    let path = p.to_str().unwrap();
    for args in [vec!["check-config", path], vec!["run", "--config", path]] {
        let o = regdoc(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        let want = format!("regdoc: {path}:{line}: ");
        assert!(
            err.starts_with(&want) && err.contains(needle),
            "{args:?}: want {want}…{needle}, got {err}"
        );
    }
}

#[test]
fn an_open_relay_is_refused() {
    refused(
        "# open\nlisten = \"0.0.0.0:3128\"\nallowed_clients = [\"0.0.0.0/0\"]\n",
        2,
        "open proxy",
    );
    refused(
        "listen = \"[::]:3128\"\nallowed_clients = [\"::/0\"]\n",
        1,
        "i_know_this_is_an_open_proxy",
    );
}

#[test]
fn an_acknowledged_open_relay_passes_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "listen = \"0.0.0.0:3128\"\nallowed_clients = [\"0.0.0.0/0\"]\n\
         i_know_this_is_an_open_proxy = true\n",
    );
    let o = regdoc(&["check-config", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("OPEN PROXY"), "{out}");

    // Narrowed clients or authentication make the same listener fine.
    for extra in [
        "allowed_clients = [\"172.17.0.0/16\"]\n",
        "allowed_clients = [\"0.0.0.0/0\"]\n[auth]\nusername = \"docker\"\npassword = \"pw\"\n",
    ] {
        let p = write(dir.path(), &format!("listen = \"0.0.0.0:3128\"\n{extra}"));
        let o = regdoc(&["check-config", p.to_str().unwrap()]);
        assert!(o.status.success(), "{extra}: {}", stderr(&o));
        assert!(!String::from_utf8_lossy(&o.stdout).contains("OPEN PROXY"));
    }
}

#[test]
fn a_listen_flag_cannot_open_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "allowed_clients = [\"0.0.0.0/0\"]\n");
    let o = regdoc(&[
        "run",
        "--config",
        p.to_str().unwrap(),
        "--listen",
        "0.0.0.0:0",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("regdoc: --listen: ") && stderr(&o).contains("open proxy"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn out_of_range_numbers_are_refused() {
    refused(
        "max_connections = 3000000000000000000\n",
        1,
        "max_connections must be between 1 and 1000000",
    );
    refused(
        "listen = \"127.0.0.1:0\"\nmax_head_bytes = 1000000000000\n",
        2,
        "max_head_bytes must be between 1024 and 1048576",
    );
    refused("[intercept]\ncert_cache = 0\n", 2, "intercept.cert_cache");
    refused(
        "# x\nmax_connections_per_client = 0\n",
        2,
        "max_connections_per_client must be between 1 and 1000000",
    );
    refused(
        "[log]\nmax_records_per_second = 0\n",
        2,
        "log.max_records_per_second must be between 10 and 1000000",
    );
    refused("allowed_ports = [443, 0]\n", 1, "port 0");
}

#[test]
fn zero_durations_are_refused() {
    for (section, key) in [
        ("timeouts", "connect"),
        ("timeouts", "dns"),
        ("timeouts", "request_head"),
        ("timeouts", "idle"),
        ("diagnosis", "max_clock_skew"),
    ] {
        refused(
            &format!("[{section}]\n{key} = \"0s\"\n"),
            2,
            &format!("{section}.{key} must be between"),
        );
    }
}

#[test]
fn empty_credentials_are_refused() {
    refused(
        "[auth]\nusername = \"\"\npassword = \"pw\"\n",
        2,
        "auth.username",
    );
    refused(
        "[auth]\nusername = \"docker\"\npassword = \"\"\n",
        3,
        "auth.password",
    );
}

#[test]
fn files_the_configuration_names_must_be_there() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("ca.crt");
    refused(
        &format!("[intercept]\nca_cert = {missing:?}\nca_key = {missing:?}\n"),
        2,
        "ca.crt",
    );
    refused(
        &format!(
            "[intercept]\nextra_roots = [{:?}]\n",
            dir.path().join("corp-root.pem")
        ),
        2,
        "corp-root.pem",
    );
    refused(
        &format!(
            "[log]\nfile = {:?}\n",
            dir.path().join("nowhere/regdoc.log")
        ),
        2,
        "does not exist",
    );
}

#[test]
fn an_unreadable_ca_is_refused_by_check_config_as_by_run() {
    let dir = tempfile::tempdir().unwrap();
    // Present and readable, but not a certificate: only loading it tells.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let p = write(
        dir.path(),
        &format!("[intercept]\nca_cert = {junk:?}\nca_key = {junk:?}\n"),
    );
    for args in [
        vec!["check-config", p.to_str().unwrap()],
        vec!["run", "--config", p.to_str().unwrap()],
    ] {
        let o = regdoc(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("junk.pem"), "{args:?}: {}", stderr(&o));
    }
}

/// README's configuration table states each bound the code enforces.
#[test]
fn the_readme_states_every_bound() {
    use regdoc::config::bounds::{show, COUNTS, DURATIONS};
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let row = |key: &str| {
        readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{key}`")))
            .unwrap_or_else(|| panic!("no README row for {key}"))
            .to_string()
    };
    for b in DURATIONS {
        let r = row(b.key);
        let want = format!("{} to {}", show(b.min), show(b.max));
        assert!(r.contains(&want), "{}: want {want:?} in {r}", b.key);
    }
    for b in COUNTS {
        let r = row(b.key);
        let want = format!("{} to {}", b.min, b.max);
        assert!(r.contains(&want), "{}: want {want:?} in {r}", b.key);
    }
}
