//! The Debian package's description in Cargo.toml (`[package.metadata.deb]`), checked without
//! cargo-deb: every file it ships exists, and the unit it ships starts the binary where the
//! package puts it. Building, installing and checking the package itself is `.ci/package.sh`
//! (root, dpkg, cargo-deb), which CI runs after the tests.

use std::path::Path;

fn repo_file(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn deb_metadata() -> toml::Table {
    let manifest: toml::Table = std::fs::read_to_string(repo_file("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    manifest["package"]["metadata"]["deb"]
        .as_table()
        .expect("[package.metadata.deb]")
        .clone()
}

/// (source, destination) of each asset.
fn assets(deb: &toml::Table) -> Vec<(String, String)> {
    deb["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_array().unwrap();
            (
                a[0].as_str().unwrap().to_string(),
                a[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn every_file_the_package_ships_exists() {
    let deb = deb_metadata();
    for (src, _) in assets(&deb) {
        if src == "target/release/regdoc" {
            continue; // built by cargo deb
        }
        assert!(repo_file(&src).is_file(), "asset {src} does not exist");
    }
    // The unit comes from `systemd-units`: <unit-scripts>/regdoc.service.
    let units = deb["systemd-units"].as_table().unwrap();
    let dir = units["unit-scripts"].as_str().unwrap();
    assert!(
        repo_file(dir).join("regdoc.service").is_file(),
        "no {dir}/regdoc.service"
    );
    // Enabled at installation, not started (README "From the Debian package").
    assert_eq!(units["enable"].as_bool(), Some(true));
    assert_eq!(units["start"].as_bool(), Some(false));
}

#[test]
fn the_packaged_unit_starts_the_packaged_binary_with_the_packaged_config() {
    let deb = deb_metadata();
    let assets = assets(&deb);
    let dest = |src: &str| {
        assets
            .iter()
            .find(|(s, _)| s == src)
            .unwrap_or_else(|| panic!("{src} is not in the package"))
            .1
            .clone()
    };
    // A destination ending in / is a directory: the file keeps its name.
    let bin = format!("/{}regdoc", dest("target/release/regdoc"));
    assert_eq!(bin, "/usr/bin/regdoc");
    let conf = format!("/{}", dest("config/regdoc.toml"));
    let unit = std::fs::read_to_string(repo_file("config/regdoc.service")).unwrap();
    let exec = format!("\nExecStart={bin} run --config {conf}\n");
    assert!(unit.contains(&exec), "config/regdoc.service lacks {exec:?}");
    // The Docker drop-in is an example in the documentation.
    assert!(dest("config/docker-http-proxy.conf").starts_with("usr/share/doc/regdoc/"));
}
