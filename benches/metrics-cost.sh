#!/usr/bin/env bash
# What counting metrics costs: regdoc with the admin listener on (every connection and failure
# counted, README "Metrics") against the same build with it off, records on in both. Each round
# is one run of benches/peers.sh in which both are started side by side and measured back to
# back (throughput of one 1 GiB transfer, median of RUNS; tunnels/s and CPU per tunnel over
# SETUP_SECS at 1 and 64 clients). Rounds alternate which of the two goes first, so that neither
# always meets the machine in the same state. Prints each round's figures and ratios
# (metrics on / off), then the median of each ratio.
#
# Rates on a shared 2-core machine move by several percent from one run to the next, more than
# the cost in question. So the script also counts what does not move: the instructions regdoc
# executes per tunnel under `valgrind --tool=callgrind` (the same binary and input give the same
# count whatever else runs), metrics off and on, each as the difference between a short and a
# long run of tunnels set up one after another (so start-up and shutdown cancel out).
#
#   bash benches/metrics-cost.sh          # ROUNDS=6 RUNS=3 BYTES=1 GiB SETUP_SECS=5
#   SECTIONS=instructions bash benches/metrics-cost.sh     # only the instruction counts
#
# Everything stays on 127.0.0.1 (benches/peers.sh); about 4 minutes per round on 2 cores, and
# a few minutes for the instruction counts (valgrind, from Debian's package).
set -euo pipefail
SECTIONS=${SECTIONS:-"rates instructions"}

ROUNDS=${ROUNDS:-6}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TMP=$(mktemp -d /tmp/regdoc-metrics-cost.XXXXXX)
trap '[ "${KEEP_TMP:-0}" = 1 ] || rm -rf "$TMP"' EXIT

val() { # file key
    awk -F= -v k="$2" '$1 == k { print $2 }' "$1"
}
ratio() { # a b -> a/b with 3 decimals, or n/a
    awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.3f", a / b; else print "n/a" }'
}
median() { # numbers on stdin
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

want() { [[ " $SECTIONS " == *" $1 "* ]]; }
kv() { # "k=v k2=v2" key
    tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2; exit }'
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The instructions regdoc (release build) executes per tunnel: each mode runs twice under
# callgrind, SHORT and LONG tunnels (CONNECT, one byte, close) one after another against the
# load generator's sink; (instructions_long - instructions_short) / (LONG - SHORT).
instructions() {
    command -v valgrind >/dev/null || { echo "valgrind is not installed: no instruction counts" >&2; return 0; }
    local short=${SHORT:-2000} long=${LONG:-6000}
    cd "$ROOT"
    cargo build --release --bin regdoc >&2
    local loadgen regdoc=$ROOT/target/release/regdoc
    loadgen=$(cargo build --release --bench loadgen --message-format=json 2>/dev/null \
        | grep -o '"executable":"[^"]*"' | sed 's/"executable":"//; s/"$//' | grep loadgen | tail -1)
    [ -x "${loadgen:-}" ] || { echo "could not build the load generator" >&2; return 1; }
    timeout 600 "$loadgen" sink --ready-file "$TMP/sink.ready" --ca-out "$TMP/sink-ca.pem" \
        --max-seconds 600 2>"$TMP/sink.err" &
    local sink=$! i
    for ((i = 0; i < 100; i++)); do [ -s "$TMP/sink.ready" ] && break; sleep 0.1; done
    local plain
    plain=$(awk -F= '$1 == "plain" { print $2 }' "$TMP/sink.ready")
    [ -n "$plain" ] || { echo "the sink did not start" >&2; kill "$sink"; return 1; }
    local port=$((20000 + RANDOM % 10000))
    declare -A ins count
    local mode n cfg pid out
    for mode in off on; do
        for n in "$short" "$long"; do
            while port_open "$port" || port_open $((port + 1000)); do port=$((port + 1)); done
            cfg=$TMP/cg-$mode.toml
            {
                printf 'listen = "127.0.0.1:%d"\n' "$port"
                printf 'allowed_ports = [%d]\n' "$plain"
                printf 'allowed_destinations = ["127.0.0.1"]\n'
                [ "$mode" = on ] && printf '[admin]\nlisten = "127.0.0.1:%d"\n' $((port + 1000))
                printf '[log]\nfile = "%s"\nconnections = true\n' "$TMP/cg-$mode-$n.log"
            } >"$cfg"
            timeout 300 valgrind --tool=callgrind --callgrind-out-file="$TMP/cg-$mode-$n.out" \
                "$regdoc" run --config "$cfg" >"$TMP/cg-$mode-$n.err" 2>&1 &
            pid=$!
            for ((i = 0; i < 600; i++)); do port_open "$port" && break; sleep 0.1; done
            out=$(timeout 120 "$loadgen" setup --proxy "127.0.0.1:$port" --target "127.0.0.1:$plain" \
                --concurrency 1 --warmup 0 --duration 120 --tunnels "$n")
            kill -TERM "$pid"
            wait "$pid" || true
            count[$mode.$n]=$(kv "$out" count)
            ins[$mode.$n]=$(awk '/^(summary|totals):/ { print $2; exit }' "$TMP/cg-$mode-$n.out")
            port=$((port + 1))
        done
    done
    kill "$sink" 2>/dev/null || true
    per_tunnel() { # mode
        awk -v a="${ins[$1.$long]}" -v b="${ins[$1.$short]}" -v n="${count[$1.$long]}" \
            -v m="${count[$1.$short]}" 'BEGIN { if (n > m) printf "%.0f", (a - b) / (n - m); else print "n/a" }'
    }
    local per_off per_on
    per_off=$(per_tunnel off)
    per_on=$(per_tunnel on)
    printf '\nInstructions per tunnel (callgrind; %s minus %s tunnels, one at a time): metrics off %s (%s - %s tunnels done), on %s (%s - %s); on / off %s\n' \
        "$long" "$short" "$per_off" "${count[off.$long]}" "${count[off.$short]}" \
        "$per_on" "${count[on.$long]}" "${count[on.$short]}" "$(ratio "$per_on" "$per_off")"
}

rates() {
    local i order raw tp_on tp_off rate_on rate_off cpu_on cpu_off r_tp r_rate r_cpu
    printf '| round | first | throughput MiB/s on / off | ratio | tunnels/s at 64 on / off | ratio | CPU µs/tunnel on / off | ratio |\n'
    printf '|---|---|---|---|---|---|---|---|\n'
    for ((i = 1; i <= ROUNDS; i++)); do
        if ((i % 2)); then
            order="regdoc regdoc-metrics"
        else
            order="regdoc-metrics regdoc"
        fi
        raw=$TMP/round$i.txt
        ORDER=$order PEERS="" IDLE_PEERS="" SECTIONS="throughput setup" SKIP_INSTALL=1 \
            OUT=$TMP/round$i.md RAW_OUT=$raw bash "$ROOT/benches/peers.sh" >/dev/null 2>"$TMP/round$i.err" \
            || { echo "round $i failed:" >&2; tail -20 "$TMP/round$i.err" >&2; exit 1; }
        tp_on=$(val "$raw" tp.regdoc-metrics) tp_off=$(val "$raw" tp.regdoc)
        rate_on=$(val "$raw" setup.regdoc-metrics.64.rate) rate_off=$(val "$raw" setup.regdoc.64.rate)
        cpu_on=$(val "$raw" setup.regdoc-metrics.64.cpu_us) cpu_off=$(val "$raw" setup.regdoc.64.cpu_us)
        r_tp=$(ratio "$tp_on" "$tp_off") r_rate=$(ratio "$rate_on" "$rate_off") r_cpu=$(ratio "$cpu_on" "$cpu_off")
        echo "$r_tp" >>"$TMP/tp"
        echo "$r_rate" >>"$TMP/rate"
        echo "$r_cpu" >>"$TMP/cpu"
        printf '| %d | %s | %s / %s | %s | %s / %s | %s | %s / %s | %s |\n' "$i" "${order%% *}" \
            "$tp_on" "$tp_off" "$r_tp" "$rate_on" "$rate_off" "$r_rate" "$cpu_on" "$cpu_off" "$r_cpu"
    done
    printf '\nMedian of %d rounds, metrics on / off: throughput %s, tunnels/s at 64 clients %s, CPU per tunnel %s (load at the end: %s)\n' \
        "$ROUNDS" "$(grep -v n/a "$TMP/tp" | median)" "$(grep -v n/a "$TMP/rate" | median)" \
        "$(grep -v n/a "$TMP/cpu" | median)" "$(cut -d' ' -f1-3 /proc/loadavg)"
}

if want rates; then rates; fi
if want instructions; then instructions; fi
