# tests/reliability/hostile_peers.py: multi-device helpers for the fork and revocation tests: one-shot CLI syncs, status/devices from the CLI, notes, backups and restores of a database.
import json
import sqlite3

from hostile_batches import ext_connect, held_head


def sync(dev, peer):
    """`peersync sync --peer <peer's URL>` from `dev`: (ok, stdout + stderr)."""
    r = dev.cli("sync", "--peer", peer.url, check=False, timeout=60)
    return r.returncode == 0, r.stdout + r.stderr


def status(dev):
    return json.loads(dev.cli("status", "--json").stdout)


def devices(dev):
    """`peersync devices` (text): {device id: state}."""
    out = {}
    for line in dev.cli("devices").stdout.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3:
            out[parts[0]] = parts[2]
    return out


def write_notes(dev, *ids):
    con = dev.connect()
    con.execute("PRAGMA busy_timeout = 10000")
    for i in ids:
        con.execute("INSERT INTO notes(id, body) VALUES (?, ?)", (i, f"{i} from {dev.name}"))
    con.commit()
    con.close()


def note_ids(dev):
    return {r[0] for r in dev.sql("SELECT id FROM notes")}


def log_size(dev):
    return dev.sql("SELECT count(*) FROM sync_log")[0][0]


def head(dev, origin):
    """(version, hash) of `origin`'s chain as `dev` holds it."""
    return held_head(dev.db, origin.id)


def copy_db(src_path, dst_path):
    """A consistent copy of a database (SQLite's backup API), overwriting `dst_path`."""
    src = sqlite3.connect(src_path, timeout=30)
    dst = sqlite3.connect(dst_path, timeout=30)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def verify(dev):
    con = ext_connect(dev.db)
    try:
        return json.loads(con.execute("SELECT sync_verify()").fetchone()[0])
    finally:
        con.close()
