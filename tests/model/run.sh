#!/usr/bin/env bash
# tests/model/run.sh: runs the project's executable model of the merge rules (../shared/model,
# beside the project) with the reading DESIGN.md's amendment asks for and this engine
# implements: "resolutions supersede only what their bases name" (`res_priv=both`: a
# resolution is settled by the rules only against another resolution; against an ordinary
# write it did not see, it is an ordinary conflict under the table's strategy). A resolution
# saw a writer its bases name, or an earlier change of an origin they name (a device that
# holds X:v holds every X:u before it). The patch adds that flag to a copy of the model and
# relaxes the two end-phase checks it changes (a resolution may meet a third concurrent edit,
# so a `manual` table can get a new pending conflict while users resolve; the other checks,
# tables identical and equal to the winning writes, stay).
# Usage: tests/model/run.sh [-n SCENARIOS]   (default 20000 per configuration)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
model="$here/../../../shared/model"
[ -f "$model/model.py" ] || { echo "tests/model: no model at $model" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$model"/*.py "$work/"
(cd "$work" && patch -s -p1 < "$here/res_priv.patch")
n=20000
[ "${1:-}" = "-n" ] && n=$2
for profile in default contention; do
  (cd "$work" && python3 run.py -n "$n" --profile "$profile" --flag res_priv=both)
done
