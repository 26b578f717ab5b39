#!/usr/bin/env bash
# Peer benchmark: regdoc against a direct connection, Squid, tinyproxy and mitmproxy, on loopback,
# in one run. Prints markdown tables and writes them to target/bench-results.md.
#
#   bash benches/peers.sh            # everything (installs peers from Debian, builds release)
#
# Knobs (environment):
#   BYTES=1073741824   bytes per transfer          RUNS=3          transfers per figure (median)
#   SETUP_SECS=5       seconds per setup figure    IDLE_COUNT=9900 idle tunnels held
#   PEERS="squid tinyproxy mitmproxy"             IDLE_PEERS="squid tinyproxy"
#   SKIP_INSTALL=1     do not apt-get              OUT=target/bench-results.md
#   RAW_OUT=FILE       also write every figure as key=value lines (for scripts)
#   SECTIONS="throughput https setup idle"         (a subset reruns only those figures)
#   ORDER="direct regdoc regdoc-metrics regdoc-nolog squid tinyproxy mitmproxy"
#                      the order in which each throughput and set-up figure visits the proxies
#                      (benches/metrics-cost.sh alternates it between rounds)
#
# Everything listens on 127.0.0.1; every client run is bounded by `timeout`. Processes started
# here are stopped by their pid on exit.
set -euo pipefail

BYTES=${BYTES:-1073741824}
RUNS=${RUNS:-3}
SETUP_SECS=${SETUP_SECS:-5}
IDLE_COUNT=${IDLE_COUNT:-9900}
PEERS=${PEERS-"squid tinyproxy mitmproxy"}
IDLE_PEERS=${IDLE_PEERS-"squid tinyproxy"}
SECTIONS=${SECTIONS:-"throughput https setup idle"}
ORDER=${ORDER:-"direct regdoc regdoc-metrics regdoc-nolog squid tinyproxy mitmproxy"}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$ROOT/target/bench-results.md}
GIB=1073741824

log() { printf '[peers] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ------------------------------------------------------------------------------------------------
# Install the peers without letting their services start (policy-rc.d exiting 101 forbids it).

install_peers() {
    # Only the peers this run uses (PEERS, and IDLE_PEERS when the idle figure is taken).
    local need=() used=" $PEERS "
    want idle && used+="$IDLE_PEERS "
    [[ $used != *" squid "* ]] || command -v squid >/dev/null || [ -x /usr/sbin/squid ] || need+=(squid)
    [[ $used != *" tinyproxy "* ]] || command -v tinyproxy >/dev/null || need+=(tinyproxy)
    [[ $used != *" mitmproxy "* ]] || command -v mitmdump >/dev/null || need+=(mitmproxy)
    [ ${#need[@]} -eq 0 ] && return 0
    [ "${SKIP_INSTALL:-0}" = 1 ] && die "missing ${need[*]} and SKIP_INSTALL=1"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    local policy=/usr/sbin/policy-rc.d backup=""
    if [ -e "$policy" ]; then backup=$(mktemp); $sudo cp -p "$policy" "$backup"; fi
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    log "installing ${need[*]} (services kept stopped)"
    local rc=0
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null || rc=$?
    if [ -n "$backup" ]; then $sudo cp -p "$backup" "$policy"; rm -f "$backup"; else $sudo rm -f "$policy"; fi
    [ $rc = 0 ] || die "apt-get install ${need[*]} failed"
}

# ------------------------------------------------------------------------------------------------
# Processes

TMP=$(mktemp -d /tmp/regdoc-bench.XXXXXX)
chmod 755 "$TMP"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    [ "${KEEP_TMP:-0}" = 1 ] || rm -rf "$TMP"
}
trap cleanup EXIT

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A port nobody listens on, from a per-run random base below the kernel's ephemeral range (a
# port in that range can be held by a client connection in TIME_WAIT, and bind would fail).
# The next free port is kept in a file: `port=$(pick_port)` runs in a subshell, where a variable
# increment would be lost and every proxy would be handed the same port.
EPHEMERAL_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
PORT_SPAN=$(( EPHEMERAL_LOW > 12000 ? EPHEMERAL_LOW - 12000 : 1000 ))
PORT_FILE=$TMP/next-port
echo $((10000 + RANDOM % PORT_SPAN)) >"$PORT_FILE"
pick_port() {
    local p
    p=$(cat "$PORT_FILE")
    while port_open "$p"; do p=$((p + 1)); done
    echo $((p + 1)) >"$PORT_FILE"
    echo "$p"
}

wait_port() { # port seconds [pid: give up as soon as it exits]
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        port_open "$1" && return 0
        [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null && return 1
        sleep 0.1
    done
    return 1
}

# CPU ticks of a process (utime + stime, plus reaped children) and its live direct children
# (helpers, workers), so a helper that exits between two readings is not lost.
cpu_ticks() {
    local pid=$1 f line rest sum=0
    local -a v
    # Processes come and go while we look: an unreadable entry is skipped, never fatal.
    for f in /proc/[0-9]*/stat; do
        IFS= read -r line 2>/dev/null <"$f" || continue
        rest=${line##*) } # after "pid (comm) ": state ppid ... utime(12) stime(13) cutime cstime
        read -r -a v <<<"$rest"
        if [ "$f" = "/proc/$pid/stat" ]; then
            sum=$((sum + v[11] + v[12] + v[13] + v[14]))
        elif [ "${v[1]}" = "$pid" ]; then
            sum=$((sum + v[11] + v[12]))
        fi
    done
    echo "$sum"
}
HZ=$(getconf CLK_TCK)

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

kv() { # "k=v k2=v2" key
    tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2; exit }'
}

# ------------------------------------------------------------------------------------------------
# Build

build() {
    cd "$ROOT"
    log "building regdoc and the load generator (release)"
    cargo build --release --bin regdoc >&2
    LOADGEN=$(cargo build --release --bench loadgen --message-format=json 2>/dev/null \
        | grep -o '"executable":"[^"]*"' | sed 's/"executable":"//; s/"$//' | grep loadgen | tail -1)
    [ -x "${LOADGEN:-}" ] || die "could not build the load generator"
    REGDOC=$ROOT/target/release/regdoc
}

lg() { timeout 900 "$LOADGEN" "$@"; }

# ------------------------------------------------------------------------------------------------
# Proxies. Each start_* sets ADDR[name] and PID[name], or leaves them unset when it cannot start.

declare -A ADDR PID
started() { [ -n "${ADDR[$1]:-}" ]; }

launch() { # name port wait_seconds command...
    local name=$1 port=$2 wait=$3
    shift 3
    "$@" >"$TMP/$name.out" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    if wait_port "$port" "$wait" "$pid" && kill -0 "$pid" 2>/dev/null; then
        ADDR[$name]=127.0.0.1:$port
        PID[$name]=$pid
        log "$name listening on 127.0.0.1:$port (pid $pid)"
    else
        log "$name did not start; its output:"
        tail -n 20 "$TMP/$name.out" >&2 || true
        kill "$pid" 2>/dev/null || true
    fi
}

start_squid() {
    local port dir=$TMP/squid
    port=$(pick_port)
    mkdir -p "$dir"
    chmod 777 "$dir"
    cat >"$dir/squid.conf" <<EOF
http_port 127.0.0.1:$port
acl bench_src src 127.0.0.1/32
acl bench_ports port $PLAIN $TLS
acl CONNECT method CONNECT
http_access deny CONNECT !bench_ports
http_access allow bench_src
http_access deny all
cache deny all
cache_mem 8 MB
access_log stdio:$dir/access.log
cache_log $dir/cache.log
pid_filename $dir/squid.pid
coredump_dir $dir
shutdown_lifetime 0 seconds
max_filedescriptors 20000
hosts_file /etc/hosts
pinger_enable off
EOF
    launch squid "$port" 30 "$(command -v squid || echo /usr/sbin/squid)" -N -f "$dir/squid.conf"
}

start_tinyproxy() {
    local port dir=$TMP/tinyproxy
    port=$(pick_port)
    mkdir -p "$dir"
    chmod 777 "$dir"
    cat >"$dir/tinyproxy.conf" <<EOF
User nobody
Group nogroup
Port $port
Listen 127.0.0.1
Timeout 600
MaxClients 20000
Allow 127.0.0.1
ConnectPort $PLAIN
ConnectPort $TLS
LogFile "$dir/tinyproxy.log"
LogLevel Info
PidFile "$dir/tinyproxy.pid"
DisableViaHeader Yes
EOF
    launch tinyproxy "$port" 20 tinyproxy -d -c "$dir/tinyproxy.conf"
}

start_mitmproxy() { # name extra-args...
    local name=$1 port
    shift
    port=$(pick_port)
    mkdir -p "$TMP/mitm"
    launch "$name" "$port" 60 mitmdump --mode regular --listen-host 127.0.0.1 --listen-port "$port" \
        --set confdir="$TMP/mitm" "$@"
}

# regdoc config; $2 = "on"/"off" per-connection records, $3 = "intercept", "copy" (zero_copy =
# false), "metrics" (the admin listener on, so every connection is counted) or empty.
start_regdoc() {
    local name=$1 conn=$2 mode=${3:-} port cfg=$TMP/$1.toml
    port=$(pick_port)
    local connections=true zero_copy=true
    [ "$conn" = off ] && connections=false
    [ "$mode" = copy ] && zero_copy=false
    cat >"$cfg" <<EOF
listen = "127.0.0.1:$port"
allowed_ports = [443, 80, $PLAIN, $TLS]
# The origin is on loopback, which denied_destinations refuses by default.
allowed_destinations = ["127.0.0.1"]
max_connections = 12000
# Every load comes from one client address (127.0.0.1).
max_connections_per_client = 12000
zero_copy = $zero_copy

[log]
file = "$TMP/$name.log"
connections = $connections

[dns]
overrides = { "localhost" = ["127.0.0.1"] }
EOF
    if [ "$mode" = intercept ]; then
        # regdoc's own CA (`ca init --dir` writes ca.crt and ca.key); the load generator's when
        # this build has no `ca init`.
        # The CA may vouch only for the names it is given (X.509 name constraints): the sink is
        # `localhost`.
        if "$REGDOC" ca init --dir "$TMP/regdoc-ca" --permit localhost >/dev/null 2>&1 \
            && [ -s "$TMP/regdoc-ca/ca.crt" ] && [ -s "$TMP/regdoc-ca/ca.key" ]; then
            cp "$TMP/regdoc-ca/ca.crt" "$TMP/regdoc-ca.pem"
            cp "$TMP/regdoc-ca/ca.key" "$TMP/regdoc-ca.key"
        else
            lg gen-ca --cert "$TMP/regdoc-ca.pem" --key "$TMP/regdoc-ca.key"
        fi
        cat >>"$cfg" <<EOF

[intercept]
ca_cert = "$TMP/regdoc-ca.pem"
ca_key = "$TMP/regdoc-ca.key"
hosts = ["localhost"]
extra_roots = ["$SINK_CA"]
EOF
    fi
    if [ "$mode" = metrics ]; then
        cat >>"$cfg" <<EOF

[admin]
listen = "127.0.0.1:$(pick_port)"
EOF
    fi
    launch "$name" "$port" 20 "$REGDOC" run --config "$cfg"
}

# The yardstick of passthrough: the load generator's bare relay, which moves bytes socket → pipe
# → socket with splice(2) through regdoc's own pipe code and looks at nothing (its pipe is the
# size regdoc asks for).
start_relay() {
    local port
    port=$(pick_port)
    launch relay "$port" 10 "$LOADGEN" relay --listen "127.0.0.1:$port" --mode splice \
        --buf 1048576 --max-seconds 3600
}

# ------------------------------------------------------------------------------------------------
# Measurements. Results land in R[key]; "n/a" when a figure could not be taken.

declare -A R
get() { echo "${R[$1]:-n/a}"; }

# Proxy CPU around a client run: sets R[$key.cpu] in CPU seconds.
with_cpu() { # key name command...
    local key=$1 name=$2
    shift 2
    local before=0 after out
    # For the direct path, the origin's CPU: what one side of a copy costs on this machine.
    [ "$name" = direct ] && name=sink
    before=$(cpu_ticks "${PID[$name]}")
    if ! out=$("$@" 2>"$TMP/client.err"); then
        log "$key failed: $(tail -n 3 "$TMP/client.err")"
        return 1
    fi
    after=$(cpu_ticks "${PID[$name]}")
    R[$key.cpu]=$(awk -v a="$after" -v b="$before" -v hz="$HZ" 'BEGIN { printf "%.2f", (a - b) / hz }')
    R[$key.raw]=$out
    return 0
}

route() { [ "$1" = direct ] && echo direct || echo "${ADDR[$1]}"; }

run_throughput() { # name
    local n=$1 k=tp.$1
    [ "$n" = direct ] || started "$n" || return 0
    log "throughput: $n"
    with_cpu "$k" "$n" lg throughput --proxy "$(route "$n")" --target "127.0.0.1:$PLAIN" \
        --bytes "$BYTES" --runs "$RUNS" || return 0
    R[$k]=$(kv "${R[$k.raw]}" mib_s)
    R[$k.runs]=$(kv "${R[$k.raw]}" runs)
    R[$k.cpu_gib]=$(awk -v c="${R[$k.cpu]}" -v b="$BYTES" -v r="$RUNS" -v g=$GIB \
        'BEGIN { printf "%.2f", c / (b * r / g) }')
    R[$k.client_gib]=$(awk -v c="$(kv "${R[$k.raw]}" self_cpu_s)" -v b="$BYTES" -v r="$RUNS" -v g=$GIB \
        'BEGIN { if (c ~ /^[0-9.]+$/) printf "%.2f", c / (b * r / g); else print "n/a" }')
    return 0
}

run_https() { # label name ca
    local label=$1 n=$2 ca=$3 k=https.$1
    [ "$n" = direct ] || started "$n" || return 0
    log "https download: $label"
    with_cpu "$k" "$n" lg https-download --proxy "$(route "$n")" --target "localhost:$TLS" \
        --bytes "$BYTES" --runs "$RUNS" --ca "$ca" || return 0
    R[$k]=$(kv "${R[$k.raw]}" mib_s)
    R[$k.runs]=$(kv "${R[$k.raw]}" runs)
    [ -n "${R[$k.cpu]:-}" ] && R[$k.cpu_gib]=$(awk -v c="${R[$k.cpu]}" -v b="$BYTES" -v r="$RUNS" -v g=$GIB \
        'BEGIN { printf "%.2f", c / (b * r / g) }')
    return 0
}

run_setup() { # name concurrency
    local n=$1 c=$2 k=setup.$1.$2
    [ "$n" = direct ] || started "$n" || return 0
    log "connect setup: $n, $c concurrent"
    with_cpu "$k" "$n" lg setup --proxy "$(route "$n")" --target "127.0.0.1:$PLAIN" \
        --concurrency "$c" --duration "$SETUP_SECS" || return 0
    local raw=${R[$k.raw]}
    R[$k.rate]=$(kv "$raw" tunnels_per_s)
    R[$k.p50]=$(kv "$raw" p50_us)
    R[$k.p99]=$(kv "$raw" p99_us)
    R[$k.mean]=$(kv "$raw" mean_us)
    R[$k.errors]=$(kv "$raw" errors)
    R[$k.client_us]=$(awk -v c="$(kv "$raw" self_cpu_s)" -v n="$(kv "$raw" count)" \
        'BEGIN { if (n > 0 && c ~ /^[0-9.]+$/) printf "%.0f", c * 1e6 / n; else print "n/a" }')
    [ -n "${R[$k.cpu]:-}" ] && R[$k.cpu_us]=$(awk -v c="${R[$k.cpu]}" -v n="$(kv "$raw" count)" \
        'BEGIN { if (n > 0) printf "%.0f", c * 1e6 / n; else print "n/a" }')
    return 0
}

run_idle() { # name
    local n=$1 k=idle.$1
    started "$n" || return 0
    log "idle tunnels: $n, $IDLE_COUNT tunnels"
    local pid=${PID[$n]} before after out=$TMP/idle-$n.out
    sleep 1
    before=$(rss_kib "$pid")
    "$LOADGEN" idle --proxy "${ADDR[$n]}" --target "127.0.0.1:$PLAIN" --count "$IDLE_COUNT" \
        --hold 360 >"$out" 2>"$TMP/idle-$n.err" &
    local lpid=$!
    PIDS+=("$lpid")
    local i
    # A thread-per-connection proxy under load may need minutes to accept them all.
    for ((i = 0; i < 3000; i++)); do
        grep -q '^ready=' "$out" 2>/dev/null && break
        kill -0 "$lpid" 2>/dev/null || break
        sleep 0.1
    done
    if grep -q '^ready=' "$out"; then
        sleep 2 # let the proxy settle (lazy buffers, allocator)
        after=$(rss_kib "$pid")
        local line ready
        line=$(head -n 1 "$out")
        ready=$(kv "$line" ready)
        R[$k.ready]=$ready
        R[$k.errors]=$(kv "$line" errors)
        R[$k.before]=$before
        R[$k.after]=$after
        R[$k]=$(awk -v a="$after" -v b="$before" -v n="$ready" \
            'BEGIN { if (n > 0) printf "%.2f", (a - b) / n; else print "n/a" }')
    else
        log "idle $n failed: $(tail -n 3 "$TMP/idle-$n.err")"
    fi
    kill "$lpid" 2>/dev/null || true
    wait "$lpid" 2>/dev/null || true
    sleep 2 # the proxy closes its side
    return 0
}

# ------------------------------------------------------------------------------------------------
# Report

ratio() { # a b -> a/b with 2 decimals, or n/a
    awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f×", a / b; else print "n/a" }'
}
minus() { # a b -> a-b with 1 decimal, or n/a
    awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/) printf "%.1f", a - b; else print "n/a" }'
}
# Added latency: below zero only when the direct run had outliers of its own (a tail that the
# proxied run did not show); saying "< 0" keeps the table from suggesting a proxy saves time.
added() { # proxy direct
    local d
    d=$(minus "$1" "$2")
    case $d in -*) echo "< 0 (direct's tail was longer)" ;; *) echo "$d" ;; esac
}
check() { # value op target -> "met"/"missed"/"n/a"
    awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
        if (v !~ /^-?[0-9.]+$/) { print "n/a"; exit }
        ok = (op == ">=") ? (v + 0 >= t + 0) : (v + 0 <= t + 0)
        print ok ? "met" : "**missed**" }'
}

machine() {
    local cpu mem load
    cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
    mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    echo "- Machine: $(nproc) CPUs (${cpu:-unknown model}), $mem RAM, Linux $(uname -r)"
    echo "- Load average at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- regdoc $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), $(rustc --version)"
    echo "- Squid $( (squid -v 2>/dev/null || /usr/sbin/squid -v) | head -n 1 | awk '{ print $4 }'), tinyproxy $(tinyproxy -v 2>&1 | awk '{ print $2 }'), mitmproxy $(mitmdump --version 2>/dev/null | awk '/^Mitmproxy/ { print $2 }')"
    echo "- Transfers: $((BYTES / 1048576)) MiB, median of $RUNS; setup figures over ${SETUP_SECS} s each; idle: $IDLE_COUNT tunnels"
}

report() {
    local d=${R[tp.direct]:-} rd=${R[tp.regdoc]:-} n
    echo "## Results ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo
    machine
    echo
    echo "### a. CONNECT tunnel throughput ($((BYTES / 1048576)) MiB, loopback)"
    echo
    echo "| path | MiB/s (median) | runs | × direct | proxy CPU s/GiB | regdoc ÷ this |"
    echo "|---|---:|---|---:|---:|---:|"
    for n in direct regdoc regdoc-metrics regdoc-nolog squid tinyproxy mitmproxy; do
        [ -n "${R[tp.$n]:-}" ] || { [ "$n" = direct ] || started "$n"; } || continue
        echo "| $n | $(get tp.$n) | $(get tp.$n.runs) | $(ratio "$(get tp.$n)" "$d") | $(get tp.$n.cpu_gib) | $(ratio "$rd" "$(get tp.$n)") |"
    done
    echo
    echo "CPU of the direct row is the origin's (writing). In the direct run the origin spent $(get tp.direct.cpu_gib) and the client" \
        "$(get tp.direct.client_gib) CPU-s/GiB (reading): a proxy that copies through user space does one read and one write of" \
        "every byte, so their sum, $(awk -v a="$(get tp.direct.cpu_gib)" -v b="$(get tp.direct.client_gib)" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/) printf "%.2f", a + b; else print "n/a" }') s/GiB, is about its floor on this machine."
    echo
    echo "### b. HTTPS download ($((BYTES / 1048576)) MiB): passthrough and interception"
    echo
    local hd=${R[https.direct]:-} hr=${R[https.regdoc-intercept]:-} hp=${R[https.regdoc-passthrough]:-}
    echo "| path | MiB/s (median) | runs | × direct HTTPS | proxy CPU s/GiB | regdoc passthrough ÷ this | regdoc interception ÷ this |"
    echo "|---|---:|---|---:|---:|---:|---:|"
    for n in direct relay-splice regdoc-passthrough regdoc-passthrough-copy squid-passthrough regdoc-intercept mitmproxy-intercept; do
        [ -n "${R[https.$n]:-}" ] || continue
        echo "| $n | $(get https.$n) | $(get https.$n.runs) | $(ratio "$(get https.$n)" "$hd") | $(get https.$n.cpu_gib) | $(ratio "$hp" "$(get https.$n)") | $(ratio "$hr" "$(get https.$n)") |"
    done
    echo
    echo "relay-splice is the load generator's bare splice(2) relay (looks at nothing); regdoc-passthrough" \
        "follows the TLS handshake and the server's record framing (stall detection);" \
        "regdoc-passthrough-copy is the same with zero_copy = false (both copy the server's side of a TLS" \
        "tunnel, which regdoc reads to follow its records; only the upload side differs, so the two rows" \
        "show the run's noise)."
    echo
    echo "### c. CONNECT set-up (open tunnel, 1-byte request, first byte back, close)"
    echo
    echo "| path | clients | tunnels/s | TTFB p50 µs | p99 µs | mean µs | added p50 µs | added p99 µs | added mean µs | proxy CPU µs/tunnel | errors | regdoc ÷ this (tunnels/s) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    local c
    for c in 1 64; do
        for n in direct regdoc regdoc-metrics regdoc-nolog squid tinyproxy mitmproxy; do
            [ -n "${R[setup.$n.$c.rate]:-}" ] || continue
            echo "| $n | $c | $(get setup.$n.$c.rate) | $(get setup.$n.$c.p50) | $(get setup.$n.$c.p99) | $(get setup.$n.$c.mean) | $(added "$(get setup.$n.$c.p50)" "$(get setup.direct.$c.p50)") | $(added "$(get setup.$n.$c.p99)" "$(get setup.direct.$c.p99)") | $(added "$(get setup.$n.$c.mean)" "$(get setup.direct.$c.mean)") | $(get setup.$n.$c.cpu_us) | $(get setup.$n.$c.errors) | $(ratio "$(get setup.regdoc.$c.rate)" "$(get setup.$n.$c.rate)") |"
        done
    done
    echo
    echo "CPU of the direct rows is the origin's. The load generator itself spent $(get setup.direct.64.client_us) CPU µs per tunnel" \
        "in the direct run at 64 clients, on one core: it cannot open more than about" \
        "$(awk -v u="$(get setup.direct.64.client_us)" 'BEGIN { if (u > 0) printf "%.0f", 1e6 / u; else print "n/a" }') tunnels/s, whatever the proxy."
    echo
    echo "### d. Memory: idle tunnels"
    echo
    echo "| proxy | tunnels held | errors | RSS before KiB | RSS with tunnels KiB | KiB per tunnel | regdoc ÷ this (lower is better) |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for n in regdoc $IDLE_PEERS; do
        [ -n "${R[idle.$n]:-}" ] || continue
        echo "| $n | $(get idle.$n.ready) | $(get idle.$n.errors) | $(get idle.$n.before) | $(get idle.$n.after) | $(get idle.$n) | $(ratio "$(get idle.regdoc)" "$(get idle.$n)") |"
    done
    echo
    echo "### e. regdoc against its targets"
    echo
    local tp_ratio https_ratio vs_mitm added1 added64
    tp_ratio=$(awk -v a="$rd" -v b="$d" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "n/a" }')
    https_ratio=$(awk -v a="$hr" -v b="$hd" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "n/a" }')
    vs_mitm=$(awk -v a="$hr" -v b="${R[https.mitmproxy-intercept]:-}" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "n/a" }')
    added1=$(minus "$(get setup.regdoc.1.p50)" "$(get setup.direct.1.p50)")
    added64=$(minus "$(get setup.regdoc.64.p50)" "$(get setup.direct.64.p50)")
    echo "| target | measured | verdict |"
    echo "|---|---:|---|"
    echo "| passthrough ≥ 0.9× direct | $tp_ratio× | $(check "$tp_ratio" '>=' 0.9) |"
    echo "| passthrough ≤ 0.3 CPU-s/GiB | $(get tp.regdoc.cpu_gib) | $(check "$(get tp.regdoc.cpu_gib)" '<=' 0.3) |"
    local pt_direct pt_relay
    pt_direct=$(awk -v a="$hp" -v b="$hd" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "n/a" }')
    pt_relay=$(awk -v a="$hp" -v b="${R[https.relay-splice]:-}" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "n/a" }')
    echo "| HTTPS passthrough ≥ 0.9× direct HTTPS | $pt_direct× | $(check "$pt_direct" '>=' 0.9) |"
    echo "| HTTPS passthrough ≥ 0.9× bare splice relay | $pt_relay× | $(check "$pt_relay" '>=' 0.9) |"
    echo "| interception ≥ 0.5× direct HTTPS | $https_ratio× | $(check "$https_ratio" '>=' 0.5) |"
    echo "| interception ≥ 2.5× mitmproxy streaming | $vs_mitm× | $(check "$vs_mitm" '>=' 2.5) |"
    echo "| set-up ≤ 50 µs added p50 at c=1 | $added1 µs | $(check "$added1" '<=' 50) |"
    echo "| set-up ≤ 2 ms added p50 at c=64 | $added64 µs | $(check "$added64" '<=' 2000) |"
    echo "| ≥ 20,000 tunnels/s at c=64 | $(get setup.regdoc.64.rate) | $(check "$(get setup.regdoc.64.rate)" '>=' 20000) |"
    echo "| ≤ 10 KiB RSS per idle tunnel | $(get idle.regdoc) KiB | $(check "$(get idle.regdoc)" '<=' 10) |"
    echo
    echo "Logging cost (regdoc, per-connection records on vs off): throughput $(get tp.regdoc) vs $(get tp.regdoc-nolog) MiB/s," \
        "CPU $(get tp.regdoc.cpu_gib) vs $(get tp.regdoc-nolog.cpu_gib) s/GiB; set-up at 64 clients $(get setup.regdoc.64.rate) vs" \
        "$(get setup.regdoc-nolog.64.rate) tunnels/s, $(get setup.regdoc.64.cpu_us) vs $(get setup.regdoc-nolog.64.cpu_us) CPU µs/tunnel."
    echo
    echo "Metrics cost (regdoc, [admin] listen on vs off, records on in both): throughput $(get tp.regdoc-metrics) vs $(get tp.regdoc) MiB/s" \
        "($(ratio "$(get tp.regdoc-metrics)" "$(get tp.regdoc)")); set-up at 64 clients $(get setup.regdoc-metrics.64.rate) vs $(get setup.regdoc.64.rate)" \
        "tunnels/s ($(ratio "$(get setup.regdoc-metrics.64.rate)" "$(get setup.regdoc.64.rate)")), $(get setup.regdoc-metrics.64.cpu_us) vs" \
        "$(get setup.regdoc.64.cpu_us) CPU µs/tunnel."
}

# ------------------------------------------------------------------------------------------------

want() { [[ " $SECTIONS " == *" $1 "* ]]; }

main() {
    LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
    install_peers
    build
    # Each idle tunnel costs the proxy two descriptors; 9,900 tunnels need ~19,800.
    local hard
    hard=$(ulimit -Hn)
    if [ "$hard" = unlimited ] || [ "$hard" -ge 20000 ]; then ulimit -Sn 20000; else ulimit -Sn "$hard"; fi
    if [ "$(ulimit -Sn)" -lt $((IDLE_COUNT * 2 + 100)) ]; then
        IDLE_COUNT=$((($(ulimit -Sn) - 100) / 2))
        log "fd limit $(ulimit -Sn): holding only $IDLE_COUNT idle tunnels"
    fi

    "$LOADGEN" sink --ready-file "$TMP/sink.ready" --ca-out "$TMP/sink-ca.pem" --max-seconds 3600 \
        2>"$TMP/sink.err" &
    PIDS+=($!)
    PID[sink]=$!
    local i
    for ((i = 0; i < 100; i++)); do [ -s "$TMP/sink.ready" ] && break; sleep 0.1; done
    [ -s "$TMP/sink.ready" ] || die "the sink did not start: $(cat "$TMP/sink.err")"
    PLAIN=$(awk -F= '$1 == "plain" { print $2 }' "$TMP/sink.ready")
    TLS=$(awk -F= '$1 == "tls" { print $2 }' "$TMP/sink.ready")
    SINK_CA=$TMP/sink-ca.pem
    log "sink: plain 127.0.0.1:$PLAIN, tls 127.0.0.1:$TLS"

    start_regdoc regdoc on
    start_regdoc regdoc-nolog off
    start_regdoc regdoc-metrics on metrics
    start_regdoc regdoc-intercept on intercept
    want https && start_regdoc regdoc-copy on copy
    want https && start_relay
    local p
    for p in $PEERS; do
        case $p in
            squid) start_squid ;;
            tinyproxy) start_tinyproxy ;;
            mitmproxy)
                start_mitmproxy mitmproxy --ignore-hosts '.*'
                start_mitmproxy mitmproxy-intercept --set stream_large_bodies=1m --set ssl_insecure=true
                ;;
            *) log "unknown peer $p" ;;
        esac
    done

    local n c
    if want throughput; then
        for n in $ORDER; do run_throughput "$n"; done
    fi
    if want https; then
        run_https direct direct "$SINK_CA"
        # Passthrough, in one run: the bare relay, regdoc (zero_copy on and off) and Squid.
        run_https relay-splice relay "$SINK_CA"
        run_https regdoc-passthrough regdoc "$SINK_CA"
        run_https regdoc-passthrough-copy regdoc-copy "$SINK_CA"
        run_https squid-passthrough squid "$SINK_CA"
        if started regdoc-intercept; then
            run_https regdoc-intercept regdoc-intercept "$TMP/regdoc-ca.pem"
        fi
        if started mitmproxy-intercept && [ -f "$TMP/mitm/mitmproxy-ca-cert.pem" ]; then
            run_https mitmproxy-intercept mitmproxy-intercept "$TMP/mitm/mitmproxy-ca-cert.pem"
        fi
    fi
    if want setup; then
        for c in 1 64; do
            for n in $ORDER; do run_setup "$n" "$c"; done
        done
    fi
    if want idle; then
        for n in regdoc $IDLE_PEERS; do run_idle "$n"; done
    fi

    mkdir -p "$(dirname "$OUT")"
    report | tee "$OUT"
    log "written to $OUT"
    if [ -n "${RAW_OUT:-}" ]; then
        local k
        for k in "${!R[@]}"; do
            [[ $k == *.raw ]] || printf '%s=%s\n' "$k" "${R[$k]}"
        done | sort >"$RAW_OUT"
    fi
}

main "$@"
