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


def relay_batch(relayer, since):
    """What `relayer`'s sidecar would push to the holder of vector `since`: its changes (its own
    and relayed ones) with its own head signature and the stored signatures of the other origins."""
    from hostile_batches import export, head_signature
    batch = export(relayer, json.dumps(since))
    last = {}
    for ch in batch["changes"]:
        last[ch["device_id"]] = ch
    sigs = []
    for origin, ch in sorted(last.items()):
        if origin == relayer.id:
            sigs.append(head_signature(relayer, origin, ch["version"], ch["hash"]))
        else:
            row = relayer.sql("SELECT hash, signature FROM sync_signatures WHERE device_id = ? AND version = ?",
                              (origin, ch["version"]))
            if row and row[0][0] == ch["hash"]:
                sigs.append({"device_id": origin, "version": ch["version"], "hash": row[0][0], "signature": row[0][1]})
    batch["signatures"] = sigs
    return batch


def vector(dev):
    return status(dev)["vector"]


def mesh(make, interval="1"):
    """A, B and C on 127.0.0.1/2/3, all paired, tracking notes, each sidecar syncing with the
    other two every `interval` seconds (and soon after local writes)."""
    from sidecar_helpers import free_port, pair
    devs = [make(n) for n in ("a", "b", "c")]
    pair(*devs)
    for d, host in zip(devs, ("127.0.0.1", "127.0.0.2", "127.0.0.3")):
        d.track()
        d.host, d.port = host, free_port()
        d.url = f"http://{host}:{d.port}"
    for d in devs:
        d.serve(d.host, d.port, [p for p in devs if p is not d], interval=interval)
    return devs
