#!/usr/bin/env bash
# The Debian package (issue 15, part 4): build it with `cargo deb`, install it with `dpkg -i`, and
# check what it installed: the binary, the unit (`systemd-analyze verify`), the conffile, the
# examples, the copyright file, the maintainer scripts' work (unit enabled, not started), and
# `regdoc --version` from /usr/bin. .ci/run runs it after the tests; by hand, as root:
#
#   sudo bash .ci/package.sh
#
# The package is removed again (`dpkg --purge`, which checks the removal scripts too) when this
# script installed it: a regdoc package that was there before is left installed, upgraded to
# this build. Fails (exit 1) on the first check that does not hold.
set -euo pipefail

cd "$(dirname "$0")/.."

# cargo-deb from crates.io, pinned; built once (a few minutes), then reused.
CARGO_DEB_VERSION=3.8.0

step() { printf '\n==> %s\n' "$*"; }
fail() {
    echo "package check FAILED: $*" >&2
    exit 1
}
ok() { echo "ok: $*"; }

if [ "$(id -u)" != 0 ]; then
    fail "dpkg -i needs root: run it as 'sudo bash .ci/package.sh'"
fi

step "cargo-deb ${CARGO_DEB_VERSION}"
if [ "$(cargo deb --version 2>/dev/null || true)" != "cargo-deb ${CARGO_DEB_VERSION}" ]; then
    cargo install cargo-deb --version "${CARGO_DEB_VERSION}" --locked
fi
cargo deb --version

step "cargo deb (release build, stripped binary, .deb)"
# cargo deb prints the paths of what it wrote: the package, and its debug symbols (.ddeb).
deb=$(cargo deb --locked | grep "\.deb$" | tail -n 1)
[ -f "$deb" ] || fail "cargo deb did not print the path of a package (got '$deb')"
echo "$deb"
dpkg-deb --info "$deb"
dpkg-deb --contents "$deb"

# The unit's place in the package (cargo-deb's choice: /lib or /usr/lib, both work on Debian).
unit=$(dpkg-deb --contents "$deb" | awk '{print $6}' | sed -n 's|^\./\(.*/systemd/system/regdoc\.service\)$|/\1|p')
[ -n "$unit" ] || fail "no systemd/system/regdoc.service in the package"

step "dpkg -i"
if dpkg-query -W -f='${Status}' regdoc 2>/dev/null | grep -q "install ok installed"; then
    fresh=0
    echo "regdoc $(dpkg-query -W -f='${Version}' regdoc) is installed already: upgrading it, and keeping it"
else
    fresh=1
fi
dpkg -i "$deb"
if [ -d /run/systemd/system ]; then
    echo "systemd runs here: the maintainer scripts reloaded it"
else
    echo "no running systemd here (/run/systemd/system is absent): the maintainer scripts must not have tried to reload or start anything"
fi

step "checks of the installed package"
version=$(dpkg-query -W -f='${Version}' regdoc)

# The binary: in /usr/bin, stripped: no symbol table, no DWARF (the release profile keeps line
# tables, debug = 1; cargo deb moves them to the -dbgsym .ddeb). .debug_gdb_scripts is not
# debug information but a loaded section naming Rust's pretty-printers for gdb.
[ -x /usr/bin/regdoc ] || fail "/usr/bin/regdoc is missing or not executable"
if readelf -S --wide /usr/bin/regdoc | grep -E '\.symtab|\.debug_(info|line|str|abbrev|ranges|loc)'; then
    fail "/usr/bin/regdoc is not stripped (sections above)"
fi
ok "/usr/bin/regdoc, stripped ($(stat -c %s /usr/bin/regdoc) bytes)"

out=$(/usr/bin/regdoc --version)
[ "$out" = "regdoc ${version%-*}" ] || fail "/usr/bin/regdoc --version printed '$out', expected 'regdoc ${version%-*}' (package version $version)"
ok "/usr/bin/regdoc --version: $out"

# The unit: the repository's own, verbatim, pointing at /usr/bin/regdoc.
[ -f "$unit" ] || fail "$unit is missing"
cmp "$unit" config/regdoc.service || fail "$unit differs from config/regdoc.service"
grep -qx 'ExecStart=/usr/bin/regdoc run --config /etc/regdoc/regdoc.toml' "$unit" ||
    fail "$unit does not start /usr/bin/regdoc with /etc/regdoc/regdoc.toml"
ok "$unit (config/regdoc.service)"

# systemd-analyze verify exits 0 on unknown keys and bad values but names the unit in a line on
# stderr: any such line fails, as in tests/cli.rs systemd_unit_verifies. It also checks that
# ExecStart= names an executable that exists: the installed /usr/bin/regdoc.
verify_err=$(systemd-analyze verify "$unit" 2>&1 >/dev/null) || fail "systemd-analyze verify $unit: $verify_err"
if grep -F 'regdoc.service' <<<"$verify_err"; then
    fail "systemd-analyze verify $unit complained (lines above)"
fi
ok "systemd-analyze verify $unit"

# The configuration: a conffile, valid as shipped.
conffiles=$(dpkg-query -W -f='${Conffiles}' regdoc)
echo "Conffiles:$conffiles"
grep -q '^ /etc/regdoc/regdoc.toml ' <<<"$conffiles" || fail "/etc/regdoc/regdoc.toml is not a conffile"
if [ "$fresh" = 1 ]; then
    cmp /etc/regdoc/regdoc.toml config/regdoc.toml || fail "/etc/regdoc/regdoc.toml differs from config/regdoc.toml"
fi
/usr/bin/regdoc check-config /etc/regdoc/regdoc.toml >/dev/null ||
    fail "regdoc check-config /etc/regdoc/regdoc.toml refused the shipped file"
ok "/etc/regdoc/regdoc.toml, a conffile that check-config accepts"

# Documentation and examples.
doc=/usr/share/doc/regdoc
for f in examples/docker-http-proxy.conf examples/daemon.json examples/prometheus-alerts.yml examples/containerd-http-proxy.conf examples/regdoc-daemonset.yaml; do
    cmp "$doc/$f" "config/$(basename "$f")" || fail "$doc/$f is missing or differs from config/"
done
cmp "$doc/README.md" README.md || fail "$doc/README.md is missing or differs"
grep -q '^License: MIT OR Apache-2.0' "$doc/copyright" || fail "$doc/copyright lacks the license"
ok "$doc: README.md, copyright, examples/{docker-http-proxy.conf,daemon.json,prometheus-alerts.yml,containerd-http-proxy.conf,regdoc-daemonset.yaml}"

# What the maintainer scripts did: the unit is enabled (the WantedBy= link exists, made by
# deb-systemd-helper whether or not systemd runs) and nothing started regdoc.
# (deb-systemd-helper links to /lib/systemd/system/, the same directory on a merged-/usr system.)
wants=/etc/systemd/system/multi-user.target.wants/regdoc.service
[ "$(realpath -e "$wants" 2>/dev/null || true)" = "$(realpath -e "$unit")" ] ||
    fail "$wants does not link to $unit: the unit is not enabled"
ok "enabled: $wants -> $(readlink "$wants")"
for exe in /proc/[0-9]*/exe; do
    if [ "$(readlink "$exe" 2>/dev/null || true)" = /usr/bin/regdoc ]; then
        pid=${exe#/proc/}
        pid=${pid%/exe}
        if [ "$fresh" = 1 ]; then
            fail "a /usr/bin/regdoc process (pid $pid) runs: the installation started it"
        fi
    fi
done
if [ -d /run/systemd/system ]; then
    [ "$(systemctl is-enabled regdoc || true)" = enabled ] || fail "systemctl is-enabled regdoc: not enabled"
    if [ "$fresh" = 1 ]; then
        [ "$(systemctl is-active regdoc || true)" = inactive ] || fail "systemctl is-active regdoc: not inactive"
    fi
fi
ok "not started"

if [ "$fresh" = 1 ]; then
    step "dpkg --purge regdoc (this script installed it)"
    dpkg --purge regdoc
    for f in /usr/bin/regdoc "$unit" /etc/regdoc/regdoc.toml "$doc"; do
        [ ! -e "$f" ] || fail "$f is still there after dpkg --purge"
    done
    [ ! -L "$wants" ] || fail "$wants is still there after dpkg --purge: the unit is still enabled"
    ok "purged: binary, unit, conffile, documentation and the enable link are gone"
fi

step "package check passed: $deb"
