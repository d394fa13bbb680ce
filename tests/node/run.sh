#!/usr/bin/env bash
# tests/node/run.sh: installs better-sqlite3@12 into tests/node when missing, then runs the node:test suite against dist/peersync.so.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$here"
if [ ! -f "$root/dist/peersync.so" ]; then
  echo "tests/node: $root/dist/peersync.so is missing; run 'make ext' first" >&2
  exit 1
fi
# better-sqlite3@12 needs Node 20 or newer and npm (tests/node/env.sh finds or fetches one).
source "$here/env.sh"
if ! node -e "require('better-sqlite3')" >/dev/null 2>&1; then
  echo "tests/node: installing better-sqlite3@12 (builds from source, about a minute)"
  "${npm[@]}" install --no-audit --no-fund --no-package-lock --loglevel=error
fi
node -e "const D=require('better-sqlite3'); const v=new D(':memory:').prepare('select sqlite_version() v').get().v; console.log('tests/node: node ' + process.version + ', better-sqlite3 ' + require('better-sqlite3/package.json').version + ', SQLite ' + v)"
exec node --test "$here"/*.test.mjs
