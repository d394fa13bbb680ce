#!/usr/bin/env bash
# `make demo`: two devices (127.0.0.1 and 127.0.0.2) pair, write with the sqlite3 CLI, make a conflicting edit, sync and end identical.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/dist/peersync
[ -x "$BIN" ] || { echo "dist/peersync is missing: run 'make build' first" >&2; exit 1; }
command -v sqlite3 >/dev/null || { echo "the sqlite3 command is missing: apt-get install sqlite3" >&2; exit 1; }

DIR=$ROOT/demo
rm -rf "$DIR" && mkdir -p "$DIR"
cd "$DIR"
export XDG_CONFIG_HOME=$DIR/config   # the demo's key files stay in ./demo/config/peersync/
PORT=${DEMO_PORT:-$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
LAPTOP=http://127.0.0.1:$PORT
PHONE=http://127.0.0.2:$PORT

declare -A PIDS=()
stop() { # stop NAME: SIGTERM, then wait for the sidecar to finish its batch and exit
  local pid=${PIDS[$1]:-}
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; unset "PIDS[$1]"; fi
}
cleanup() { for n in "${!PIDS[@]}"; do stop "$n"; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

bold=$'\033[1m'; dim=$'\033[2m'; off=$'\033[0m'
[ -t 1 ] || { bold=; dim=; off=; }
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$off"; }
run() { printf '%s$ %s%s\n' "$dim" "$*" "$off"; "$@"; }
peersync() { "$BIN" "$@"; }
field() { awk -v k="$1" -F': *' '$1 == k { print $2 }'; }
wait_for() { # wait_for SECONDS WHAT CMD...: retry CMD until it succeeds
  local t=$1 what=$2; shift 2
  for _ in $(seq $((t * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out waiting for $what; logs are in $DIR/*.log" >&2; exit 1
}
same_notes() { [ "$(sqlite3 laptop.db 'SELECT * FROM notes ORDER BY id')" = "$(sqlite3 phone.db 'SELECT * FROM notes ORDER BY id')" ]; }
serve() { # serve NAME LISTEN PEER
  "$BIN" serve --db "$1.db" --listen "$2" --peer "$3" --interval 5 2>>"$1.log" &
  PIDS[$1]=$!
  wait_for 10 "the $1 sidecar" curl -sf "http://$2/health"
  printf '%s$ peersync serve --db %s.db --listen %s --peer %s &   (pid %s, log demo/%s.log)%s\n' "$dim" "$1" "$2" "$3" "${PIDS[$1]}" "$1" "$off"
}

step "1. Two devices, each with its own copy of the app's database"
for d in laptop phone; do
  run sqlite3 $d.db "CREATE TABLE notes(id TEXT PRIMARY KEY, title TEXT, body TEXT)"
done

step "2. Each device gets an identity (device id + ed25519 key pair)"
run peersync init --db laptop.db --name laptop | tee laptop.id
run peersync init --db phone.db --name phone | tee phone.id
LAPTOP_ID=$(field "device id" <laptop.id); LAPTOP_KEY=$(field "public key" <laptop.id)
PHONE_ID=$(field "device id" <phone.id); PHONE_KEY=$(field "public key" <phone.id)

step "3. Pair them: each side trusts the other's id and public key"
run peersync trust --db laptop.db "$PHONE_ID" "$PHONE_KEY" --name phone
run peersync trust --db phone.db "$LAPTOP_ID" "$LAPTOP_KEY" --name laptop

step "4. Track the notes table on both (plain SQL triggers: any SQLite client's writes are captured)"
run peersync track --db laptop.db notes
run peersync track --db phone.db notes

step "5. Start a sidecar per device: laptop on 127.0.0.1, phone on 127.0.0.2"
serve laptop 127.0.0.1:$PORT "$PHONE"
serve phone 127.0.0.2:$PORT "$LAPTOP"

step "6. Write on both with the stock sqlite3 CLI (no extension loaded)"
echo "(.timeout: wait for the sidecar's write transaction, if one is running, instead of failing)"
run sqlite3 -cmd ".timeout 5000" laptop.db "INSERT INTO notes VALUES ('n1', 'groceries', 'milk'), ('n2', 'todo', 'call mum')"
run sqlite3 -cmd ".timeout 5000" phone.db "INSERT INTO notes VALUES ('n3', 'idea', 'peer to peer sync')"
wait_for 20 "the writes to sync" same_notes
echo "Both devices now hold:"
run sqlite3 -box phone.db "SELECT * FROM notes ORDER BY id"

step "7. The phone goes offline; both edit the same note"
stop phone
echo "phone sidecar stopped"
run sqlite3 -cmd ".timeout 5000" laptop.db "UPDATE notes SET body = 'milk, eggs' WHERE id = 'n1'"
sleep 0.05
run sqlite3 -cmd ".timeout 5000" phone.db "UPDATE notes SET body = 'milk, bread' WHERE id = 'n1'"

step "8. The phone comes back; the sidecars sync"
serve phone 127.0.0.2:$PORT "$LAPTOP"
wait_for 30 "the conflicting edits to sync" same_notes
wait_for 10 "the conflict to be recorded" bash -c "[ \"\$(sqlite3 laptop.db 'SELECT count(*) FROM sync_conflicts')\" -gt 0 ]"

step "9. The conflict and how it was resolved (timestamp_wins: the later edit wins, the other is kept)"
for d in laptop phone; do
  echo "$d:"
  run sqlite3 -box $d.db "SELECT id, record_id, kind, columns, local_data, remote_data, status, resolution FROM sync_conflicts"
done

all_synced() { for d in laptop phone; do [ "$(sqlite3 $d.db 'SELECT count(*) FROM sync_log WHERE is_synced = 0')" = 0 ] || return 1; done; }
wait_for 20 "each side to learn that the other holds everything" all_synced
# The laptop's sidecar met the phone offline in step 7 and retries after a backoff.
links_ok() { for d in laptop phone; do [ "$(sqlite3 $d.db 'SELECT count(*) FROM sync_peers WHERE failing_since IS NOT NULL')" = 0 ] || return 1; done; }
wait_for 20 "each sidecar's link to the other to be back" links_ok

step "10. Both databases are identical"
run sqlite3 -box laptop.db "SELECT * FROM notes ORDER BY id"
run sqlite3 -box phone.db "SELECT * FROM notes ORDER BY id"
L=$(sqlite3 laptop.db "SELECT * FROM notes ORDER BY id" | sha256sum | cut -c1-16)
P=$(sqlite3 phone.db "SELECT * FROM notes ORDER BY id" | sha256sum | cut -c1-16)
echo "notes digest: laptop $L, phone $P"
[ "$L" = "$P" ] || { echo "the databases differ!" >&2; exit 1; }
run peersync status --db laptop.db
run peersync verify --db phone.db

step "11. History is bounded: what both devices hold, and nothing needs, leaves the log"
for draft in "first draft" "second draft" "final text"; do
  run sqlite3 -cmd ".timeout 5000" laptop.db "UPDATE notes SET body = '$draft' WHERE id = 'n1'"
done
wait_for 20 "the phone to hold the edits" all_synced
run peersync compact --db laptop.db
run peersync verify --db laptop.db

step "Done: the sidecars are stopped; files are in ./demo"
