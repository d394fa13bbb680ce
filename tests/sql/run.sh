#!/usr/bin/env bash
# tests/sql/run.sh: runs each tests/sql/*.sql through the real sqlite3 CLI and diffs it against its .expected file.
#
# Each test runs in a fresh temporary directory holding `dist` (a link to the built extension,
# so `.load ./dist/peersync` works), `test-ext` (the test build, which also has
# sync_debug_panic: `make ext-test`), `t` (a link to this folder, for helper scripts) and the
# database `test.db`, opened as `sqlite3 test.db < NAME.sql`. stdout and stderr are merged
# (line-buffered, so errors land where they happen). Device ids, hashes and timestamps are
# replaced by <DEVICE>, <HASH> and <TS> before the comparison, so expected output never holds them.
#
# Usage: tests/sql/run.sh [NAME ...]   (NAME without .sql; default: all)
#        UPDATE_EXPECTED=1 tests/sql/run.sh NAME   writes NAME.expected from the actual output
#                                                  (review the diff before committing it!)
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
SQLITE3=${SQLITE3:-sqlite3}

if [ ! -f "$root/dist/peersync.so" ]; then
  echo "tests/sql: $root/dist/peersync.so is missing; run 'make ext' first" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
if ! command -v "$SQLITE3" >/dev/null; then
  echo "tests/sql: no sqlite3 CLI ($SQLITE3)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
echo "tests/sql: $("$SQLITE3" --version | cut -d' ' -f1) CLI, extension $root/dist/peersync.so"

normalise() {
  sed -E \
    -e 's/\b[0-9a-f]{64}\b/<HASH>/g' \
    -e 's/\b[0-9a-f]{32}\b/<DEVICE>/g' \
    -e 's/\b1[0-9]{15}\b/<TS>/g'
}

if [ $# -gt 0 ]; then
  tests=()
  for n in "$@"; do tests+=("$here/${n%.sql}.sql"); done
else
  tests=("$here"/*.sql)
fi

passed=0
failed=0
failed_names=()
for f in "${tests[@]}"; do
  name=$(basename "$f" .sql)
  expected="$here/$name.expected"
  work=$(mktemp -d "${TMPDIR:-/tmp}/peersync-sql-$name.XXXXXX")
  ln -s "$root/dist" "$work/dist"
  ln -s "$root/target/test-ext" "$work/test-ext"
  ln -s "$here" "$work/t"
  (cd "$work" && stdbuf -oL -eL "$SQLITE3" test.db <"$f" >"$work/raw" 2>&1)
  rc=$?
  normalise <"$work/raw" >"$work/actual"
  ok=1
  if [ $rc -gt 128 ]; then
    echo "FAIL $name: sqlite3 died with signal $((rc - 128)) (the host must never crash)"
    ok=0
  fi
  if [ -n "${UPDATE_EXPECTED:-}" ]; then
    cp "$work/actual" "$expected"
    echo "wrote $expected"
  elif [ ! -f "$expected" ]; then
    echo "FAIL $name: no $name.expected"
    ok=0
  elif ! diff -u --label "$name.expected" --label "$name (actual)" "$expected" "$work/actual" >"$work/diff"; then
    echo "FAIL $name: output differs from $name.expected"
    sed 's/^/    /' "$work/diff" | head -n 80
    ok=0
  fi
  if [ $ok = 1 ]; then
    echo "ok   $name"
    passed=$((passed + 1))
    rm -rf "$work"
  else
    echo "     (kept $work)"
    failed=$((failed + 1))
    failed_names+=("$name")
  fi
done

echo "sql: $passed passed, $failed failed"
if [ $failed -gt 0 ]; then
  echo "failed: ${failed_names[*]}"
  exit 1
fi
