#!/usr/bin/env bash
# Runs every fuzz target for N seconds each (default 600), one at a time, and writes fuzz/results.json.
#
#   fuzz/run.sh [SECONDS] [TARGET...]       e.g. fuzz/run.sh 60 literals batch_apply
#
# Environment: FUZZ_SANITIZER (default none: 5x faster here, the code is safe Rust and SQLite
# allocates a lot; "address" for ASan), FUZZ_RESULTS
# (default fuzz/results.json). One libFuzzer process at a time (2 cores: no -jobs/-workers).
# A crash does not stop the run: the input goes to fuzz/artifacts/<target>/, is counted, and
# fuzzing of that target resumes for the rest of its time (at most 20 restarts).
set -euo pipefail
FUZZ_DIR="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$FUZZ_DIR")"
cd "$ROOT"

SECS="${1:-${FUZZ_SECONDS:-600}}"
shift || true
ALL_TARGETS=(batch_apply batch_mutate httpsig_verify httpsig_mutate literals)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi
SANITIZER="${FUZZ_SANITIZER:-none}"
RESULTS="${FUZZ_RESULTS:-$FUZZ_DIR/results.json}"

# cargo-fuzz needs nightly; fall back to stable with RUSTC_BOOTSTRAP=1.
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 2
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    CARGO=(cargo +nightly)
else
    export RUSTC_BOOTSTRAP=1
    CARGO=(cargo)
fi
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
BIN_DIR="$FUZZ_DIR/target/$TRIPLE/release"

echo "== building fuzz targets (sanitizer: $SANITIZER)"
for t in "${TARGETS[@]}"; do "${CARGO[@]}" fuzz build -O -a -s "$SANITIZER" "$t"; done

mkdir -p "$FUZZ_DIR/logs"
ROWS=()
for t in "${TARGETS[@]}"; do
    corpus="$FUZZ_DIR/corpus/$t"
    artifacts="$FUZZ_DIR/artifacts/$t"
    seeds="$FUZZ_DIR/seeds/$t"
    log="$FUZZ_DIR/logs/$t.log"
    mkdir -p "$corpus" "$artifacts" "$seeds"
    : >"$log"
    dict=()
    [ -f "$FUZZ_DIR/dicts/$t.dict" ] && dict=("-dict=$FUZZ_DIR/dicts/$t.dict")
    before="$(find "$artifacts" -type f | wc -l)"
    start="$(date +%s)"
    execs=0
    restarts=0
    echo "== $t: ${SECS}s"
    while :; do
        left=$(( SECS - ($(date +%s) - start) ))
        [ "$left" -gt 0 ] || break
        seg="$FUZZ_DIR/logs/$t.segment"
        set +e
        "$BIN_DIR/$t" -max_total_time="$left" -print_final_stats=1 -timeout=30 -rss_limit_mb=4096 \
            -artifact_prefix="$artifacts/" "${dict[@]}" "$corpus" "$seeds" >"$seg" 2>&1
        rc=$?
        set -e
        cat "$seg" >>"$log"
        n="$(sed -n 's/^stat::number_of_executed_units: *//p' "$seg" | tail -1)"
        [ -n "$n" ] || n="$(grep -oE '^#[0-9]+' "$seg" | tail -1 | tr -d '#')"
        execs=$(( execs + ${n:-0} ))
        [ "$rc" -eq 0 ] && break
        restarts=$(( restarts + 1 ))
        echo "   $t stopped (exit $rc): $(grep -m1 -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$seg" || true)"
        [ "$restarts" -lt 20 ] || break
    done
    elapsed=$(( $(date +%s) - start ))
    crashes=$(( $(find "$artifacts" -type f | wc -l) - before ))
    corp="$(grep -oE 'corp: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)"
    cov="$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)"
    ft="$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)"
    echo "   $t: ${elapsed}s, $execs executions, $crashes crashes, corpus $corp, cov $cov, ft $ft"
    ROWS+=("$t $elapsed $execs $crashes ${corp:-0} ${cov:-0} ${ft:-0}")
done

# results.json: one object per target, as tests/reliability/report.py reads it (targets not run
# this time keep their last row).
printf '%s\n' "${ROWS[@]}" | python3 -c '
import json, os, sys
path, order = sys.argv[1], sys.argv[2].split()
rows = {}
if os.path.exists(path):
    rows = {r["target"]: r for r in json.load(open(path))}
for line in sys.stdin:
    t, secs, execs, crashes, corpus, cov, ft = line.split()
    rows[t] = {"target": t, "seconds": int(secs), "executions": int(execs), "crashes": int(crashes),
               "corpus": int(corpus), "coverage_edges": int(cov), "features": int(ft)}
out = [rows[t] for t in order if t in rows] + [r for t, r in rows.items() if t not in order]
with open(path, "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
' "$RESULTS" "${ALL_TARGETS[*]}"
echo "== wrote $RESULTS"
cat "$RESULTS"
