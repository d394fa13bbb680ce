#!/usr/bin/env bash
# tests/dist/run.sh (`make test-dist`): installs what `make dist` built into fresh environments,
# as an app would, and runs tests/dist against them: the wheel into a new venv made from Debian's
# python3 (with apsw, sqlite-utils, mypy, pytest, requests-http-signature), the npm tarball into a new
# npm project (with better-sqlite3@12 and typescript); and runs the Rust example. Registries:
# PyPI and npm only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
wheel=$(ls dist/peersync-*.whl)
tarball=$(ls dist/peersync-*.tgz)
work="$root/target/dist-test"
rm -rf "$work" && mkdir -p "$work"

echo "tests/dist: the rusqlite example (core/examples/rusqlite_app.rs)"
cargo run --release -q -p peersync-core --example rusqlite_app >/dev/null

echo "tests/dist: venv with $wheel"
/usr/bin/python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check "$wheel" apsw sqlite-utils mypy pytest==8.3.4 requests requests-http-signature==2.0.0

# node:sqlite with allowExtension needs Node 22.13 or newer (Node 20 has no node:sqlite).
node_major=22 node_minor=13 source "$root/tests/node/env.sh"
echo "tests/dist: npm project with $tarball (node $(node --version); better-sqlite3 may build from source)"
mkdir -p "$work/node" && cd "$work/node"
export npm_config_jobs=max # node-gyp: compile better-sqlite3 on every core
echo '{"name": "peersync-dist-test", "private": true}' > package.json
"${npm[@]}" install --no-audit --no-fund --loglevel=error "$root/$tarball" better-sqlite3@12 typescript@5 @types/node@22 @types/better-sqlite3@7
cd "$root"
export PEERSYNC_NODE_PROJECT="$work/node" PEERSYNC_NPX="${npm[*]} exec --no --"
exec "$work/venv/bin/python" -m pytest -q "$here"
