#!/usr/bin/env bash
# Build the fuzz targets and run each for SECONDS (default 60), one at a time.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Every target starts from its committed seeds (fuzz/corpus/TARGET, read only) plus what earlier
# runs on this machine found (fuzz/work/TARGET, not committed). A crash, a failed assertion, a
# timeout (10 s for one input) or running out of memory fails the run; the input is written to
# fuzz/artifacts/TARGET/ (replay it with `fuzz/target/*/release/TARGET FILE`). Prints, per
# target: executions, coverage (libFuzzer's `cov` and `ft` counters), and crashes.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). cargo-fuzz passes nightly flags to
# rustc; on a stable toolchain RUSTC_BOOTSTRAP=1 lets it.
set -euo pipefail

fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$fuzz_dir")"
cd "$repo"

seconds="${1:-60}"
shift || true
case "$seconds" in
    ''|*[!0-9]*) echo "usage: fuzz/run.sh [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac

all_targets=(
    proxy_head
    tls_client_hello
    tls_server_hello
    tls_client_answer
    www_authenticate
    registry_error
    jwt
    token_reply
    path
    redact
    config
    report
    rfc3339
)
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=("${all_targets[@]}")
fi

# Extra libFuzzer flags per target: dictionaries of the format's tokens, and room for a whole
# TLS record (16 KiB) where a parser's bounds are at that size.
flags_for() {
    case "$1" in
        proxy_head) echo "-dict=$fuzz_dir/dict/http.dict" ;;
        tls_client_hello|tls_server_hello) echo "-dict=$fuzz_dir/dict/tls.dict -max_len=20000" ;;
        tls_client_answer) echo "-dict=$fuzz_dir/dict/tls.dict" ;;
        www_authenticate|path|redact|token_reply) echo "-dict=$fuzz_dir/dict/http.dict" ;;
        registry_error|jwt|report) echo "-dict=$fuzz_dir/dict/json.dict" ;;
        config) echo "-dict=$fuzz_dir/dict/toml.dict" ;;
        *) echo "" ;;
    esac
}

logs="$fuzz_dir/work/logs"
mkdir -p "$logs"

export RUSTC_BOOTSTRAP=1
echo "==> building the fuzz targets"
build_start=$(date +%s)
# One target is built alone; several, all of them (one cargo run shares the dependencies).
only=()
if [ "${#targets[@]}" -eq 1 ]; then
    only=("${targets[0]}")
fi
# The committed fuzz/Cargo.lock is used as it is (cargo fuzz has no --locked of its own).
if ! cargo fetch --locked --manifest-path "$fuzz_dir/Cargo.toml" >"$logs/fetch.log" 2>&1; then
    cat "$logs/fetch.log" >&2
    echo "fuzz/Cargo.lock is not up to date with fuzz/Cargo.toml" >&2
    exit 1
fi
# -a: debug assertions and overflow checks, as in the test suite.
if ! cargo fuzz build -a --fuzz-dir "$fuzz_dir" "${only[@]}" >"$logs/build.log" 2>&1; then
    grep -v '^ *Compiling ' "$logs/build.log" | tail -60 >&2
    echo "building the fuzz targets failed" >&2
    exit 1
fi
echo "==> built in $(( $(date +%s) - build_start )) s"

bin_dir="$(dirname "$(ls -d "$fuzz_dir"/target/*/release/"${targets[0]}")")"

failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "$fuzz_dir/work/$t" "$fuzz_dir/corpus/$t" "$fuzz_dir/artifacts/$t"
    stamp="$logs/$t.start"
    touch "$stamp"
    before=$(find "$fuzz_dir/artifacts/$t" -type f | wc -l)
    echo "==> $t: ${seconds} s"
    start=$(date +%s)
    set +e
    # shellcheck disable=SC2046 # the flags are words
    "$bin_dir/$t" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$fuzz_dir/artifacts/$t/" $(flags_for "$t") \
        "$fuzz_dir/work/$t" "$fuzz_dir/corpus/$t" >"$logs/$t.log" 2>&1
    rc=$?
    set -e
    took=$(( $(date +%s) - start ))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -1 || true)
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$logs/$t.log" | tail -1 || true)
    crashes=$(( $(find "$fuzz_dir/artifacts/$t" -type f | wc -l) - before ))
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes=1 # a failure that left no input (it should not happen): still a failure
    fi
    line=$(printf '%-18s %6s s  runs %-10s %-22s crashes %s' "$t" "$took" "${runs:-?}" "${cov:-cov: ?}" "$crashes")
    summary+=("$line")
    echo "    $line"
    if [ "$crashes" -ne 0 ]; then
        failed+=("$t")
        grep -m1 -B2 -A25 -E 'panicked|ERROR: libFuzzer|ERROR: AddressSanitizer|SUMMARY' "$logs/$t.log" || tail -40 "$logs/$t.log"
        echo "    inputs: $(find "$fuzz_dir/artifacts/$t" -type f -newer "$stamp" | head -5 | tr '\n' ' ')"
    fi
done

echo
echo "==> fuzzing summary (${seconds} s per target; logs in fuzz/work/logs)"
printf '    %s\n' "${summary[@]}"
echo "fuzz: $(( ${#targets[@]} - ${#failed[@]} )) passed, ${#failed[@]} failed"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
