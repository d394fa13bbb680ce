# Database checks after faults: integrity_check, sync_verify, whole chains (no gap, no duplicate), vectors, content hashes, torn WAL tails.
import hashlib
import json
import sqlite3
import struct
from pathlib import Path

from sidecar_helpers import load_ext

# Bookkeeping a sidecar may rewrite without receiving anything (when it last synced, what a peer
# holds): left out of content_hash, which is about data.
# (sync_peers: how this device's own syncs go, failing since when and why.)
VOLATILE = {"sync_devices", "sync_peer_vectors", "sync_peers"}
# Columns of the same kind: sync_log.is_synced flips when a peer reports holding a change.
VOLATILE_COLUMNS = {"is_synced"}


def connect(path, ext=False):
    con = sqlite3.connect(path, timeout=60)
    if ext:
        load_ext(con)
    return con


def integrity(path):
    con = connect(path)
    try:
        return "; ".join(r[0] for r in con.execute("PRAGMA integrity_check"))
    finally:
        con.close()


def verify(path):
    """`sync_verify()` through the extension (dist/peersync.so), as a dict."""
    con = connect(path, ext=True)
    try:
        return json.loads(con.execute("SELECT sync_verify()").fetchone()[0])
    finally:
        con.close()


def vector(path):
    con = connect(path)
    try:
        return dict(con.execute("SELECT device_id, version FROM sync_vector"))
    finally:
        con.close()


def unsealed(path):
    con = connect(path)
    try:
        return con.execute("SELECT count(*) FROM sync_log WHERE version IS NULL").fetchone()[0]
    finally:
        con.close()


def chain_problems(path):
    """Per origin: versions must be exactly 1..head with no duplicate, and the head must be the
    vector's entry. Returns a list of problems (empty when whole)."""
    con = connect(path)
    try:
        rows = con.execute("SELECT device_id, count(*), count(DISTINCT version), min(version), max(version) "
                           "FROM sync_log WHERE version IS NOT NULL GROUP BY device_id").fetchall()
        vec = dict(con.execute("SELECT device_id, version FROM sync_vector"))
    finally:
        con.close()
    problems = []
    for dev, n, distinct, lo, hi in rows:
        if n != distinct:
            problems.append(f"{dev}: {n - distinct} duplicated versions")
        if lo != 1 or hi != distinct:
            problems.append(f"{dev}: versions {lo}..{hi} but {distinct} distinct (a gap)")
        if vec.get(dev) != hi:
            problems.append(f"{dev}: log head {hi} but vector says {vec.get(dev)}")
    for dev in set(vec) - {r[0] for r in rows}:
        problems.append(f"{dev}: in the vector ({vec[dev]}) but not in the log")
    return problems


def assert_intact(path, what=""):
    """integrity_check ok, sync_verify clean, every chain whole. Returns sync_verify's result."""
    label = f"{what} ({path})" if what else str(path)
    ic = integrity(path)
    assert ic == "ok", f"{label}: PRAGMA integrity_check: {ic}"
    v = verify(path)
    assert v["ok"] and not v["failed"] and not v["problems"], f"{label}: sync_verify: {v}"
    problems = chain_problems(path)
    assert not problems, f"{label}: chains: {problems}"
    return v


def table_hashes(path, skip=VOLATILE):
    """{table: SHA-256 over its rows, sorted} for every table but the bookkeeping ones in `skip`
    (and without VOLATILE_COLUMNS)."""
    con = connect(path)
    try:
        out = {}
        for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"):
            if t in skip:
                continue
            cols = ", ".join(f'"{c[1]}"' for c in con.execute(f'PRAGMA table_info("{t}")') if c[1] not in VOLATILE_COLUMNS)
            # sync_state's schema_seen: the schema version the schema watcher last looked at.
            where = " WHERE key != 'schema_seen'" if t == "sync_state" else ""
            h = hashlib.sha256()
            for row in sorted(repr(r) for r in con.execute(f'SELECT {cols} FROM "{t}"{where}')):
                h.update(row.encode())
            out[t] = h.hexdigest()
        return out
    finally:
        con.close()


def content_hash(path, skip=VOLATILE):
    """One SHA-256 over table_hashes."""
    return hashlib.sha256(repr(sorted(table_hashes(path, skip).items())).encode()).hexdigest()


def changed_tables(before, after):
    """Names of the tables whose table_hashes differ (or that appeared/disappeared)."""
    return sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))


def wal_torn_tail(path):
    """Frames of the current WAL generation after its last commit frame: a write transaction was
    being committed when the process died. Read it before anything opens the database."""
    wal = Path(f"{path}-wal")
    if not wal.exists() or wal.stat().st_size < 32:
        return 0
    data = wal.read_bytes()
    magic, _, page_size, _, salt1, salt2 = struct.unpack(">IIIIII", data[:24])
    if magic not in (0x377F0682, 0x377F0683):
        return 0
    frame = 24 + page_size
    pos, n, last_commit = 32, 0, 0
    while pos + frame <= len(data):
        _, commit, s1, s2 = struct.unpack(">IIII", data[pos:pos + 16])
        if (s1, s2) != (salt1, salt2):
            break
        n += 1
        if commit:
            last_commit = n
        pos += frame
    return n - last_commit
