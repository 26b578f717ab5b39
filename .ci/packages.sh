# Debian packages the test suite needs, and their installation. Sourced by .ci/run; also usable
# by hand: `bash -c 'source .ci/packages.sh && install_packages'`.

# docker.io: dockerd 20.10 with containerd and runc; docker-registry: distribution 2.8;
# skopeo: a second registry client; squid: the corporate upstream proxy of the scenarios;
# mitmproxy: mitmdump, a TLS-inspecting upstream proxy (its own CA) for the inspection scenarios;
# apache2-utils: htpasswd; busybox-static: the static binary inside the test image;
# iproute2/iptables: the network namespace and its firewall; util-linux: unshare/mount;
# systemd: systemd-analyze for the unit file checks; jq: reading JSON logs by hand;
# prometheus: promtool (checks /metrics and the alerting rules) and a real Prometheus server
# that scrapes regdoc in tests/e2e_prometheus.rs (its service is kept stopped like the others);
# containerd: containerd 1.6 and its ctr client, the second real client of tests/e2e_containerd.rs
# (a private containerd per test; docker.io depends on it too, listed for what it is used for).
REGDOC_TEST_PACKAGES=(
    docker.io docker-registry skopeo squid mitmproxy apache2-utils busybox-static
    iproute2 iptables util-linux coreutils tar openssl ca-certificates jq systemd prometheus
    containerd
)

# Install the packages that are missing. Services are kept from starting during installation by
# a temporary /usr/sbin/policy-rc.d that exits 101 (the tests start their own instances); a
# policy-rc.d that already existed is left as it was.
install_packages() {
    local missing=()
    local p
    for p in "${REGDOC_TEST_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "all ${#REGDOC_TEST_PACKAGES[@]} packages already installed"
        return 0
    fi
    echo "installing: ${missing[*]}"
    local made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    local rc=0
    {
        apt-get -o DPkg::Lock::Timeout=600 update -q &&
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q "${missing[@]}"
    } || rc=$?
    if [ "$made_policy" = 1 ]; then
        rm -f /usr/sbin/policy-rc.d
    fi
    return "$rc"
}
