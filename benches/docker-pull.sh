#!/usr/bin/env bash
# Time `docker pull` of an image with one large layer with no proxy, through Squid and through
# regdoc, in one run (the e2e harness's real daemon, registry, token server and data endpoint).
#
#   bash benches/docker-pull.sh            # 3 rounds, 256 MiB layer
#   PULL_RUNS=5 PULL_LAYER_MIB=512 bash benches/docker-pull.sh
#
# Needs root (network namespace, dockerd) and the packages .ci/packages.sh installs
# (SKIP_INSTALL=1 skips that step). Prints a markdown table and writes it to PULL_OUT
# (default target/bench-docker-pull.md). regdoc runs as a release build.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=../.ci/packages.sh
source .ci/packages.sh
if [ "${SKIP_INSTALL:-}" != 1 ]; then
    install_packages
fi

export PULL_RUNS=${PULL_RUNS:-3}
export PULL_LAYER_MIB=${PULL_LAYER_MIB:-256}
export PULL_OUT=${PULL_OUT:-$PWD/target/bench-docker-pull.md}
# A missing program fails the measurement instead of skipping it.
export CI=true
echo "[docker-pull] load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo test --release --locked --test e2e_docker -- --ignored --exact docker_pull_timing --nocapture
echo "[docker-pull] load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "[docker-pull] table written to $PULL_OUT"
