//! The remedy a record gives, for the client that failed.
//!
//! The catalog's remedies are written for a Docker host: `systemctl restart docker`,
//! `/etc/docker/certs.d`, `docker logout`. On a containerd node (a Kubernetes node, `ctr`) those
//! steps do not exist, and an operator reading the record needs containerd's: its own systemd
//! drop-in, its hosts directory, credentials from the caller. The replacements are data, keyed by
//! the exact catalog line they stand for, so a reworded catalog line without its replacement
//! fails a unit test instead of silently giving Docker's step to a containerd node.

use super::catalog::Cause;
use crate::config::ClientKind;

/// Catalog remedy lines that name a Docker-only step, and what containerd needs instead (none:
/// the step has no containerd counterpart).
static CONTAINERD: &[(&str, &[&str])] = &[
    (
        "Behind an HTTPS proxy, configure both the Docker client and the Docker daemon for the proxy, and restart the daemon after changing its proxy settings.",
        &["Behind an HTTPS proxy, give containerd's pulls the proxy: the CRI plugin's in containerd's systemd drop-in (/etc/systemd/system/containerd.service.d/http-proxy.conf), applied with `systemctl daemon-reload && systemctl restart containerd` (running containers keep running); `ctr` pulls in its own process, with the HTTPS_PROXY of the shell that runs it."],
    ),
    (
        "If the daemon bypasses the proxy through NO_PROXY, list the data endpoint hosts there as well as the REST host.",
        &["If containerd's pulls bypass the proxy through NO_PROXY (containerd's systemd drop-in for the CRI plugin, the shell's for `ctr`), list the data endpoint hosts there as well as the REST host."],
    ),
    (
        "Both the Docker CLI and the daemon must be running; the client must be version 18.03 or later (`docker version`).",
        &["containerd must be running (`systemctl status containerd`); on Kubernetes the kubelet pulls through it."],
    ),
    (
        "Set the daemon's proxy in a systemd drop-in (Environment=\"HTTPS_PROXY=http://<proxy>:3128\") or in daemon.json \"proxies\" (Engine 23.0+), then `systemctl daemon-reload && systemctl restart docker`; check with `systemctl show --property=Environment docker`.",
        &["Set containerd's proxy in a systemd drop-in (Environment=\"HTTPS_PROXY=http://<proxy>:3128\", as config/containerd-http-proxy.conf), then `systemctl daemon-reload && systemctl restart containerd`; check with `systemctl show --property=Environment containerd` or `regdoc doctor containerd`. `ctr` pulls in its own process: export HTTPS_PROXY in the shell that runs it."],
    ),
    (
        "Configure the Docker client's proxy too (~/.docker/config.json \"proxies\") when builds or containers need it.",
        &[],
    ),
    (
        "On RHEL/Fedora docker builds, `--signature-verification=false` may be needed when pulls fail with `unauthorized: authentication required`.",
        &[],
    ),
    (
        "Change it where the daemon reads it (systemd drop-in, daemon.json \"proxies\" or dockerd --https-proxy), then `systemctl daemon-reload && systemctl restart docker`.",
        &["Change it where the pull takes it: containerd's systemd drop-in for the CRI plugin, then `systemctl daemon-reload && systemctl restart containerd`; for `ctr`, the HTTPS_PROXY of the shell that runs it."],
    ),
    (
        "Remove from the daemon's NO_PROXY every entry that covers the registry, its data endpoints or blob storage (`.azurecr.io`, `azurecr.io`, `.windows.net`, `*.blob.core.windows.net`, `*`); keep `localhost,127.0.0.1` and internal hosts.",
        &["Remove from the NO_PROXY of containerd's pulls (its systemd drop-in for the CRI plugin, the shell's for `ctr`) every entry that covers the registry, its data endpoints or blob storage (`.azurecr.io`, `azurecr.io`, `.windows.net`, `*.blob.core.windows.net`, `*`); keep `localhost,127.0.0.1`, the cluster's service and pod ranges and internal hosts."],
    ),
    (
        "Change it where the daemon reads it (systemd drop-in, daemon.json \"proxies\" \"no-proxy\"), then `systemctl daemon-reload && systemctl restart docker`.",
        &["Change it in containerd's systemd drop-in, then `systemctl daemon-reload && systemctl restart containerd`."],
    ),
    (
        "Use the full login server in lower case: `docker login <name>.azurecr.io`, and the same prefix in image references.",
        &["Use the full login server in lower case in image references (`<name>.azurecr.io/<repository>:<tag>`) and as the server of the credentials (an imagePullSecret's registry, the host `ctr --user` is used for)."],
    ),
    (
        "Stale stored credentials also break anonymous pull: `docker logout <name>.azurecr.io` first.",
        &["Wrong credentials also break anonymous pull: for a repository meant to be anonymous, pull without them (no imagePullSecret for this registry, no `ctr --user`)."],
    ),
    (
        "Role changes can take up to about 10 minutes: `docker logout`, wait, then log in again.",
        &["Role changes can take up to about 10 minutes; containerd asks for a new token on each pull, so retry after that."],
    ),
    (
        "A corporate proxy or firewall that inspects TLS must exempt <name>.azurecr.io and the data endpoints, or its CA must be trusted by the Docker daemon.",
        &["A corporate proxy or firewall that inspects TLS must exempt <name>.azurecr.io and the data endpoints, or its CA must be trusted by containerd."],
    ),
    (
        "To trust an inspecting CA per registry, place it at /etc/docker/certs.d/<host>/ca.crt (it is added to the system roots).",
        &["To trust an inspecting CA per registry, name it as `ca` in /etc/containerd/certs.d/<host>/hosts.toml (it is added to the system roots; the CRI plugin reads that directory when its registry config_path points there, `ctr` when given `--hosts-dir /etc/containerd/certs.d`)."],
    ),
    (
        "Install or update the CA bundle on the Docker host (`ca-certificates` on Debian and Ubuntu, `ca-certificates` plus `update-ca-trust` on RHEL), then restart the Docker daemon so it reloads the roots.",
        &["Install or update the CA bundle on the node (`ca-certificates` on Debian and Ubuntu, `ca-certificates` plus `update-ca-trust` on RHEL), then restart containerd so it reloads the roots (`ctr` reads them at each run)."],
    ),
    (
        "A ca.crt under /etc/docker/certs.d/<host>/ is added to the system roots; remove a stale or wrong one there if the host's bundle is fine.",
        &["A `ca` named in /etc/containerd/certs.d/<host>/hosts.toml is added to the system roots; remove a stale or wrong one there if the node's bundle is fine."],
    ),
    (
        "Copy regdoc's CA certificate to /etc/docker/certs.d/<host>/ca.crt for every intercepted registry host (no daemon restart needed).",
        &["Name regdoc's CA certificate as `ca` in /etc/containerd/certs.d/<host>/hosts.toml for every intercepted registry host (the README's hosts.toml form; read at each pull, no restart needed: by the CRI plugin when its config_path names that directory, by `ctr` with `--hosts-dir /etc/containerd/certs.d`); `regdoc doctor containerd` checks both."],
    ),
    (
        "Lower the daemon's max-concurrent-downloads / max-concurrent-uploads, reduce the number of layers, or spread pulls over time.",
        &["Lower the CRI plugin's max_concurrent_downloads in containerd's config.toml, reduce the number of layers, or spread pulls over time (stagger node scale-outs and rollouts)."],
    ),
    (
        "Proxy authentication: put the user and password in the daemon's proxy URL (http://user:pass@host:3128) and restart the daemon.",
        &["Proxy authentication: put the user and password in the proxy URL of containerd's pulls (http://user:pass@host:3128: its systemd drop-in for the CRI plugin, then restart containerd; the shell's HTTPS_PROXY for `ctr`)."],
    ),
];

/// The steps of `cause` for `client`, in the catalog's order.
pub fn for_client(cause: &Cause, client: ClientKind) -> Vec<&'static str> {
    match client {
        ClientKind::Docker => cause.remedy.to_vec(),
        ClientKind::Containerd => cause
            .remedy
            .iter()
            .flat_map(
                |line| match CONTAINERD.iter().find(|(docker, _)| docker == line) {
                    Some((_, instead)) => instead.to_vec(),
                    None => vec![*line],
                },
            )
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::catalog;

    /// Words only a Docker host has.
    fn docker_only(line: &str) -> bool {
        let l = line.to_ascii_lowercase();
        ["docker", "daemon.json", "the daemon"]
            .iter()
            .any(|w| l.contains(w))
    }

    #[test]
    fn every_replacement_stands_for_a_catalog_line() {
        for (docker, _) in CONTAINERD {
            assert!(
                catalog::CAUSES.iter().any(|c| c.remedy.contains(docker)),
                "no cause has the remedy line {docker:?}: reworded in the catalog?"
            );
        }
    }

    #[test]
    fn a_containerd_node_is_never_told_a_docker_step() {
        for c in catalog::CAUSES {
            for line in for_client(c, ClientKind::Containerd) {
                assert!(!docker_only(line), "{}: {line}", c.id);
            }
        }
    }

    #[test]
    fn docker_keeps_the_catalog_and_containerd_keeps_what_is_common() {
        let c = &catalog::CLIENT_FIREWALL;
        assert_eq!(for_client(c, ClientKind::Docker), c.remedy.to_vec());
        let containerd = for_client(c, ClientKind::Containerd);
        assert_eq!(containerd.len(), c.remedy.len());
        assert_eq!(containerd[0], c.remedy[0]);
        assert!(containerd
            .iter()
            .any(|l| l.contains("systemctl restart containerd")));
        // Steps with no containerd counterpart go.
        let d = &catalog::DOCKER_CONFIG;
        assert!(for_client(d, ClientKind::Containerd).len() < d.remedy.len());
    }
}
