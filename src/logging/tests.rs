use super::*;
use crate::config::LogFormat;
use serde_json::{json, Value};
use std::path::Path;
use tracing_subscriber::layer::SubscriberExt;

fn file_config(path: &Path, format: LogFormat) -> LogConfig {
    LogConfig {
        format,
        file: Some(path.to_path_buf()),
        ..LogConfig::default()
    }
}

/// Run `f` with a subscriber made of the layer (filtered by `spec`), then flush.
fn with_layer(cfg: &LogConfig, spec: Option<&str>, f: impl FnOnce()) -> LogHandle {
    let (layer, handle) = build(cfg).unwrap();
    let sub = tracing_subscriber::registry().with(layer.with_filter(filter(spec).unwrap()));
    tracing::subscriber::with_default(sub, f);
    handle.flush().unwrap();
    handle
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn failure_record() -> Value {
    json!({
        "timestamp": "2026-11-23T18:00:00.123Z",
        "event": "failure",
        "conn_id": 12,
        "client": "127.0.0.1:50514",
        "target": "myreg.azurecr.io:443",
        "phase": "dns",
        "error": "name does not resolve",
        "cause": "registry_name",
        "cause_title": "Registry name wrong or registry deleted",
        "confidence": "high",
        "remedy": "Check the login server name with az acr show",
        "reply_status": 502,
        "reply_reason": "regdoc: registry_name: myreg.azurecr.io does not resolve"
    })
}

#[test]
fn records_are_written_raw_and_log_events_are_json_objects() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("regdoc.log");
    let rec = failure_record();
    let raw = serde_json::to_string(&rec).unwrap();
    with_layer(&file_config(&path, LogFormat::Json), None, || {
        crate::record::emit("failure", &rec);
        tracing::info!(
            listen = "127.0.0.1:3128",
            connections = 3u64,
            ok = true,
            "regdoc started"
        );
        tracing::debug!("below the default level");
        tracing::warn!(target: "hyper::proto", level = "x", "odd \"quoted\" message\nsecond line");
    });
    let got = lines(&path);
    assert_eq!(got.len(), 3, "{got:#?}");
    assert_eq!(got[0], raw);
    let started: Value = serde_json::from_str(&got[1]).unwrap();
    assert_eq!(started["event"], "log");
    assert_eq!(started["level"], "info");
    assert_eq!(started["target"], "regdoc::logging::tests");
    assert_eq!(started["message"], "regdoc started");
    assert_eq!(started["listen"], "127.0.0.1:3128");
    assert_eq!(started["connections"], 3);
    assert_eq!(started["ok"], true);
    let ts = started["timestamp"].as_str().unwrap();
    assert_eq!(ts.len(), "2026-11-23T18:00:00.123Z".len(), "{ts}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
    assert!(
        got[1].starts_with("{\"timestamp\":"),
        "fixed key order: {}",
        got[1]
    );
    let warn: Value = serde_json::from_str(&got[2]).unwrap();
    assert_eq!(warn["level"], "warn");
    assert_eq!(warn["target"], "hyper::proto");
    assert_eq!(warn["message"], "odd \"quoted\" message\nsecond line");
    // A field named like a line key cannot overwrite it.
    assert_eq!(warn["field_level"], "x");
}

#[test]
fn span_fields_are_carried_by_events_inside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("regdoc.log");
    with_layer(&file_config(&path, LogFormat::Json), None, || {
        let outer = tracing::info_span!("conn", conn_id = 12u64, phase = tracing::field::Empty);
        let _o = outer.enter();
        outer.record("phase", "tls");
        let inner = tracing::info_span!("inner", conn_id = 13u64);
        let _i = inner.enter();
        tracing::warn!(bytes = 5u64, "inside");
    });
    let got = lines(&path);
    assert_eq!(got.len(), 1, "{got:#?}");
    let v: Value = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(v["conn_id"], 13, "inner span wins: {}", got[0]);
    assert_eq!(v["phase"], "tls");
    assert_eq!(v["bytes"], 5);
    assert_eq!(got[0].matches("conn_id").count(), 1, "{}", got[0]);
}

#[test]
fn filter_applies_to_log_events_but_never_to_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("regdoc.log");
    let rec = json!({"event": "connection", "conn_id": 1});
    with_layer(
        &file_config(&path, LogFormat::Json),
        Some("error,regdoc::net=debug"),
        || {
            crate::record::emit("connection", &rec);
            tracing::warn!("filtered out");
            tracing::debug!(target: "regdoc::net::resolve", "kept by the directive");
            tracing::error!("kept by the default");
        },
    );
    let got = lines(&path);
    assert_eq!(got.len(), 3, "{got:#?}");
    assert_eq!(got[0], serde_json::to_string(&rec).unwrap());
    assert!(got[1].contains("kept by the directive"));
    assert!(got[2].contains("kept by the default"));
    assert!(matches!(
        filter(Some("info,[[[")),
        Err(LogError::Filter { .. })
    ));
}

#[test]
fn pretty_failure_connection_and_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("regdoc.log");
    let conn = json!({
        "timestamp": "2026-11-23T18:00:01.500Z",
        "event": "connection",
        "conn_id": 13,
        "target": "myreg.azurecr.io:443",
        "dns": {"outcome": "ok", "ms": 3},
        "connect": {"outcome": "ok", "ms": 20},
        "tls": {"outcome": "ok", "ms": 40},
        "bytes_up": 12_300_000u64,
        "bytes_down": 1_200_000_000u64,
        "duration_ms": 5100.375,
        "close_reason": "client_closed"
    });
    let stalled = json!({
        "timestamp": "2026-11-23T18:00:02.000Z",
        "conn_id": 14,
        "target": "myreg.westeurope.data.azurecr.io:443",
        "dns": {"outcome": "ok", "ms": 3},
        "connect": {"outcome": "timeout", "ms": 10000},
        "bytes_up": 0, "bytes_down": 0, "duration_ms": 10004,
        "close_reason": "connect_failed"
    });
    with_layer(&file_config(&path, LogFormat::Pretty), None, || {
        crate::record::emit("failure", &failure_record());
        crate::record::emit("connection", &conn);
        crate::record::emit("connection", &stalled);
        crate::record::emit(
            "failure_summary",
            &json!({"timestamp": "2026-11-23T18:01:00.000Z", "cause": "registry_name", "count": 7}),
        );
        tracing::warn!(conn_id = 9u64, "upstream slow");
        crate::record::emit(
            "request",
            &json!({"timestamp": "2026-11-23T18:00:03.000Z", "event": "request", "conn_id": 15,
                "target": "myreg.azurecr.io:443", "path": "/v2/app/blobs/sha256:ab",
                "location_host": "myreg.westeurope.data.azurecr.io", "duration_ms": 12.4,
                "reply_status": null, "cause": null,
                "http": {"method": "GET", "path_class": "blob", "status": 307}}),
        );
        crate::record::emit(
            "request",
            &json!({"timestamp": "2026-11-23T18:00:04.000Z", "event": "request", "conn_id": 15,
                "target": "myreg.azurecr.io:443", "path": "/v2/", "duration_ms": 30001.0,
                "reply_status": 504, "cause": "registry_error",
                "http": {"method": "GET", "path_class": "ping", "status": 0}}),
        );
    });
    let got = lines(&path);
    assert_eq!(got.len(), 7, "{got:#?}");
    assert_eq!(
        got[0],
        "18:00:00 FAIL  conn=12 myreg.azurecr.io:443 dns: name does not resolve → registry_name (high): \
         Registry name wrong or registry deleted  fix: Check the login server name with az acr show"
    );
    assert_eq!(
        got[1],
        "18:00:01 conn  conn=13 myreg.azurecr.io:443 ok 12.3 MB↑ 1.2 GB↓ 5.1s"
    );
    assert_eq!(
        got[2],
        "18:00:02 conn  conn=14 myreg.westeurope.data.azurecr.io:443 connect timeout 0 B↑ 0 B↓ 10.0s closed: connect_failed"
    );
    assert_eq!(got[3], "18:01:00 again cause=registry_name count=7");
    assert!(
        got[4].ends_with(" WARN  regdoc::logging::tests: upstream slow conn_id=9"),
        "{}",
        got[4]
    );
    assert_eq!(got[4].as_bytes()[2], b':');
    assert_eq!(
        got[5],
        "18:00:03 req   conn=15 myreg.azurecr.io:443 GET /v2/app/blobs/sha256:ab blob 307 \
         → myreg.westeurope.data.azurecr.io 12ms"
    );
    assert_eq!(
        got[6],
        "18:00:04 req   conn=15 myreg.azurecr.io:443 GET /v2/ ping 504 (regdoc) 30.0s ✗ registry_error"
    );
}

#[test]
fn pretty_shows_unparseable_records_as_they_are() {
    assert!(pretty::record(Some("failure"), "{not json").ends_with(" failure {not json"));
    assert_eq!(pretty::bytes(999), "999 B");
    assert_eq!(pretty::bytes(999_960), "1.0 MB");
    assert_eq!(pretty::seconds(187_000), "3m07s");
    assert_eq!(pretty::seconds(850), "850ms");
}

#[test]
fn reopen_after_rename_writes_to_the_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("regdoc.log");
    let rotated = dir.path().join("regdoc.log.1");
    let (layer, handle) = build(&file_config(&path, LogFormat::Json)).unwrap();
    let sub = tracing_subscriber::registry().with(layer.with_filter(filter(None).unwrap()));
    tracing::subscriber::with_default(sub, || {
        tracing::info!("before rotation");
        handle.flush().unwrap();
        // What logrotate does: rename, then signal the program.
        std::fs::rename(&path, &rotated).unwrap();
        tracing::info!("after rename, before reopen");
        handle.reopen();
        tracing::info!("after reopen");
        handle.flush().unwrap();
    });
    let old = lines(&rotated);
    let new = lines(&path);
    assert!(old[0].contains("before rotation"), "{old:#?}");
    assert!(new.last().unwrap().contains("after reopen"), "{new:#?}");
    assert!(!old.iter().any(|l| l.contains("after reopen")), "{old:#?}");
    assert_eq!(old.len() + new.len(), 3);
    assert_eq!(handle.errors(), 0);
}

#[test]
fn a_removed_log_directory_is_counted_and_survived() {
    let dir = tempfile::tempdir().unwrap();
    let sub_dir = dir.path().join("logs");
    std::fs::create_dir(&sub_dir).unwrap();
    let path = sub_dir.join("regdoc.log");
    let (layer, handle) = build(&file_config(&path, LogFormat::Json)).unwrap();
    let sub = tracing_subscriber::registry().with(layer.with_filter(filter(None).unwrap()));
    tracing::subscriber::with_default(sub, || {
        tracing::info!("first");
        handle.flush().unwrap();
        std::fs::remove_dir_all(&sub_dir).unwrap();
        handle.reopen();
        for i in 0..5 {
            tracing::info!(i, "while the directory is gone");
        }
        handle.flush().unwrap();
        assert!(handle.errors() >= 1, "{handle:?}");
        // The sink comes back by itself once the path is usable again.
        std::fs::create_dir(&sub_dir).unwrap();
        tracing::info!("back");
        handle.flush().unwrap();
    });
    // The lines written while the directory was gone are counted, and said to be lost before
    // the first line that made it.
    assert_eq!(handle.lost(), 5, "{handle:?}");
    let got = lines(&path);
    assert_eq!(got.len(), 2, "{got:#?}");
    let report: Value = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(
        report["message"],
        "log lines lost because the log could not be written"
    );
    assert_eq!(report["lost"], 5);
    assert_eq!(report["lost_total"], 5);
    assert!(got[1].contains("back"));
}

#[test]
fn an_unopenable_log_file_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("regdoc.log");
    match build(&file_config(&path, LogFormat::Json)) {
        Err(LogError::Open { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected Open error, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_full_channel_drops_lines_and_a_later_line_reports_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("regdoc.log");
    let shared = Arc::new(Shared::default());
    // Capacity one and no writer yet: the second and third lines cannot be queued.
    let (tx, rx) = mpsc::sync_channel(1);
    let layer = LogLayer::new(tx.clone(), shared.clone(), LogFormat::Json);
    let sub = tracing_subscriber::registry().with(layer.with_filter(filter(None).unwrap()));
    tracing::subscriber::with_default(sub, || {
        for i in 0..3 {
            tracing::info!(i, "burst");
        }
    });
    assert_eq!(shared.dropped.load(Ordering::Relaxed), 2);
    let writer = sink::Writer::open(
        sink::Target::File(path.clone()),
        LogFormat::Json,
        shared.clone(),
    )
    .unwrap();
    let thread = std::thread::spawn(move || writer.run(rx));
    let handle = LogHandle { tx, shared };
    handle.flush().unwrap();
    let got = lines(&path);
    assert_eq!(got.len(), 2, "{got:#?}");
    let report: Value = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(report["level"], "warn");
    assert_eq!(report["dropped"], 2);
    assert!(got[1].contains("burst") && got[1].contains("\"i\":0"));
    drop(handle);
    // The layer (inside the dropped subscriber) and the handle held the only senders.
    thread.join().unwrap();
}

#[test]
fn a_removed_log_file_is_created_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("regdoc.log");
    let (layer, handle) = build(&file_config(&path, LogFormat::Json)).unwrap();
    let sub = tracing_subscriber::registry().with(layer.with_filter(filter(None).unwrap()));
    tracing::subscriber::with_default(sub, || {
        tracing::info!("first");
        handle.flush().unwrap();
        // Removed without a SIGHUP: writes to the open handle would vanish silently.
        std::fs::remove_file(&path).unwrap();
        handle.flush().unwrap();
        tracing::info!("second");
        handle.flush().unwrap();
    });
    let got = lines(&path);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(got[0].contains("second"));
    assert_eq!(handle.errors(), 0);
}

/// CI (`CI=true`, root on Debian) must run every test below: there nothing may be skipped.
fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// The kernel's own ENOSPC: `/dev/full` takes nothing, and every line is counted as lost.
#[test]
fn lines_for_dev_full_are_counted_as_lost() {
    let full = Path::new("/dev/full");
    if !full.exists() {
        assert!(!ci(), "/dev/full is missing");
        eprintln!("skipped: no /dev/full");
        return;
    }
    let handle = with_layer(&file_config(full, LogFormat::Json), None, || {
        for i in 0..5 {
            tracing::info!(i, "into /dev/full");
        }
    });
    assert_eq!(
        (handle.written(), handle.lost(), handle.dropped()),
        (0, 5, 0),
        "{handle:?}"
    );
    assert!(handle.errors() >= 1, "{handle:?}");
}

/// Names the directory `tmpfs_fills_up` mounts its tmpfs on; set only for that run.
const TMPFS_DIR_ENV: &str = "REGDOC_TEST_TMPFS_DIR";
/// Exit status of `tmpfs_fills_up` when it may not mount (no capability), as automake's SKIP.
const NO_MOUNT: i32 = 77;
/// What libtest exits with when a test fails.
const TEST_FAILED: i32 = 101;

/// A real filesystem that fills up: a 64 KiB tmpfs, in a private mount namespace (`unshare
/// -m`, or `-r -m` without root) so that nothing is mounted on the host. The run inside is
/// [`tmpfs_fills_up`]. Skipped only without root and outside CI: as root, or under `CI=true`
/// (root on Debian), a missing capability fails.
#[test]
fn a_filled_tmpfs_keeps_whole_lines_and_the_loss_is_reported_once_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let me = std::env::current_exe().unwrap();
    let name = concat!(module_path!(), "::tmpfs_fills_up");
    let name = name.split_once("::").map_or(name, |(_, rest)| rest);
    let root = unsafe { libc::geteuid() } == 0;
    let attempts: &[&[&str]] = if root {
        // An unprivileged container may refuse a plain mount namespace but allow a user one.
        &[&["-m"], &["-r", "-m"]]
    } else {
        &[&["-r", "-m"]]
    };
    let mut why = Vec::new();
    for flags in attempts {
        let out = std::process::Command::new("unshare")
            .args(*flags)
            .args(["--propagation", "private"])
            .arg(&me)
            .args([
                name,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(TMPFS_DIR_ENV, dir.path())
            .output();
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                why.push(format!("unshare {flags:?}: {e}"));
                continue;
            }
        };
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        match out.status.code() {
            Some(0) => {
                assert!(
                    text.contains("1 passed"),
                    "the run inside did not run:\n{text}"
                );
                return;
            }
            Some(TEST_FAILED) => panic!("the run inside the mount namespace failed:\n{text}"),
            // NO_MOUNT, or unshare itself failing: no capability for this way.
            _ => why.push(format!(
                "unshare {flags:?}: {}: {}",
                out.status,
                text.trim()
            )),
        }
    }
    let why = why.join("; ");
    // Root may mount: failing to is a failure, not a reason to skip.
    assert!(
        !root,
        "cannot mount a tmpfs in a private mount namespace as root: {why}"
    );
    assert!(!ci(), "CI=true requires this test to run: {why}");
    eprintln!("skipped: cannot mount a tmpfs in a private mount namespace: {why}");
}

/// Run by the test above, inside its mount namespace: mount a 64 KiB tmpfs, fill it with the
/// log, check that it holds whole lines only and that the lost ones are counted, then free space
/// and check the one report of them.
#[test]
#[ignore = "run inside a private mount namespace by a_filled_tmpfs_keeps_whole_lines_..."]
fn tmpfs_fills_up() {
    use std::ffi::CString;
    let Some(dir) = std::env::var_os(TMPFS_DIR_ENV) else {
        eprintln!("nothing to do: {TMPFS_DIR_ENV} is set by the test that runs this one");
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let c = |s: &str| CString::new(s).unwrap();
    let target = CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // Private already (unshare --propagation private); said again so that no mount made here
    // can reach the host whatever unshare did.
    let private = unsafe {
        libc::mount(
            c("none").as_ptr(),
            c("/").as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    let mounted = private == 0
        && unsafe {
            libc::mount(
                c("tmpfs").as_ptr(),
                target.as_ptr(),
                c("tmpfs").as_ptr(),
                0,
                c("size=64k,mode=0700").as_ptr().cast(),
            )
        } == 0;
    if !mounted {
        eprintln!("mount: {}", std::io::Error::last_os_error());
        std::process::exit(NO_MOUNT);
    }

    // Half the disk taken by something else, to be freed later.
    let filler = dir.join("filler");
    std::fs::write(&filler, vec![b'.'; 32 * 1024]).unwrap();
    let path = dir.join("regdoc.log");
    let pad = "x".repeat(150);
    const SENT: u64 = 600;
    let (layer, handle) = build(&file_config(&path, LogFormat::Json)).unwrap();
    let sub = tracing_subscriber::registry().with(layer.with_filter(filter(None).unwrap()));
    let whole = |text: &str| -> Vec<Value> {
        assert!(text.ends_with('\n'), "the log ends inside a line");
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    let (written, lost) = tracing::subscriber::with_default(sub, || {
        for i in 0..SENT {
            tracing::info!(i, pad = %pad, "filling the disk");
        }
        handle.flush().unwrap();
        let got = whole(&std::fs::read_to_string(&path).unwrap());
        for (i, v) in got.iter().enumerate() {
            assert_eq!(v["i"], i, "lines in order, none missing before the loss");
        }
        let (written, lost) = (handle.written(), handle.lost());
        assert_eq!(got.len() as u64, written, "{handle:?}");
        assert!(lost > 0 && written > 0, "{handle:?}");
        assert_eq!((written + lost, handle.dropped()), (SENT, 0), "{handle:?}");

        std::fs::remove_file(&filler).unwrap();
        tracing::info!("space is back");
        handle.flush().unwrap();
        (written, lost)
    });
    let got = whole(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(got.len() as u64, written + 2, "{handle:?}");
    let report = &got[written as usize];
    assert_eq!(
        report["message"],
        "log lines lost because the log could not be written"
    );
    assert_eq!(report["lost"], lost);
    assert_eq!(report["lost_total"], lost);
    let enospc = std::io::Error::from_raw_os_error(libc::ENOSPC).to_string();
    assert!(
        report["error"]
            .as_str()
            .unwrap_or_default()
            .contains(&enospc),
        "{report}"
    );
    assert_eq!(got[written as usize + 1]["message"], "space is back");
}
