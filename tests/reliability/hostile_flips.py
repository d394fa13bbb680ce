# tests/reliability/hostile_flips.py: single-byte flips of a signed batch: which field each byte belongs to, flipping, and applying flips in a rolled-back savepoint.
import hashlib
import json
import sqlite3


# The batch's envelope: what the sender says about itself (its id, its vector, its head hashes,
# what its chains build on). No origin signs these; the sidecar's request signature (RFC 9421
# with Content-Digest) covers them in transit. Applying a batch with one of them altered may
# succeed, but must apply exactly what the genuine batch applies.
ADVISORY_MAPS = ("vector", "heads", "prevs")
ADVISORY = {"device_id"} | {f"{m} ({part})" for m in ADVISORY_MAPS for part in ("key", "value")}


def field_spans(batch):
    """Serializes `batch` as compact JSON (exactly like hostile_batches.dumps) and labels every
    byte with the field it belongs to: 'changes[].version', 'signatures[].signature',
    'vector (key)', 'json syntax' (braces, commas, colons, key names)... Returns (bytes, labels)."""
    out = bytearray()
    labels = []

    def put(text, label):
        b = text.encode()
        out.extend(b)
        labels.extend([label] * len(b))

    def walk(v, path):
        if isinstance(v, dict):
            put("{", "json syntax")
            for k, (key, val) in enumerate(v.items()):
                if k:
                    put(",", "json syntax")
                sub = f"{path}.{key}" if path else key
                if path in ADVISORY_MAPS:
                    put(json.dumps(key, ensure_ascii=False), f"{path} (key)")
                    put(":", "json syntax")
                    put(json.dumps(val, ensure_ascii=False), f"{path} (value)")
                    continue
                put(json.dumps(key, ensure_ascii=False), "json syntax")
                put(":", "json syntax")
                walk(val, sub)
            put("}", "json syntax")
        elif isinstance(v, list):
            put("[", "json syntax")
            for k, item in enumerate(v):
                if k:
                    put(",", "json syntax")
                walk(item, f"{path}[]")
            put("]", "json syntax")
        else:
            put(json.dumps(v, ensure_ascii=False), path)

    walk(batch, "")
    expected = json.dumps(batch, separators=(",", ":"), ensure_ascii=False).encode()
    assert bytes(out) == expected, "field_spans does not serialize like the sidecar"
    return bytes(out), labels


def flip(text: bytes, rng, printable=False):
    """`text` with one byte replaced: (flipped bytes, position, old byte, new byte). The new byte
    is any other value (0..255), or with `printable` any other printable ASCII character."""
    pos = rng.randrange(len(text))
    old = text[pos]
    choices = range(0x20, 0x7F) if printable else range(256)
    new = rng.choice([c for c in choices if c != old])
    f = bytearray(text)
    f[pos] = new
    return bytes(f), pos, old, new


def fingerprint(con):
    """SHA-256 of every table's rows, read through `con` (so it sees its open transaction)."""
    h = hashlib.sha256()
    for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name").fetchall():
        h.update(t.encode())
        for row in sorted(repr(r) for r in con.execute(f'SELECT * FROM "{t}"')):
            h.update(row.encode())
    return h.hexdigest()


# What a batch puts into a database, leaving out the bookkeeping of who holds what
# (sync_peer_vectors, sync_log.is_synced), which the batch's advisory vector feeds.
CONTENT = [
    "SELECT * FROM notes", "SELECT * FROM sync_meta", "SELECT * FROM sync_vector", "SELECT * FROM sync_signatures",
    "SELECT * FROM sync_conflicts", "SELECT * FROM sync_quarantine",
    "SELECT id, table_name, record_id, operation, change_data, device_id, version, timestamp, hash, bases, resolution FROM sync_log",
]


def content(con):
    """SHA-256 of what applying a batch wrote (the notes table and the sync state, not the
    bookkeeping of peers' vectors)."""
    h = hashlib.sha256()
    for q in CONTENT:
        for row in sorted(repr(r) for r in con.execute(q)):
            h.update(row.encode())
    return h.hexdigest()


def try_in_savepoint(con, data: bytes, pristine):
    """Applies `data` (passed as TEXT even when it is not valid UTF-8) inside a savepoint that
    is rolled back. Returns (outcome, detail, content): ('rejected', error, None), ('rejected,
    but changed the database', error, None), or ('accepted', result JSON, content(con))."""
    con.execute("SAVEPOINT flip")
    try:
        try:
            out = con.execute("SELECT sync_apply(CAST(? AS TEXT))", (data,)).fetchone()[0]
        except sqlite3.Error as e:
            msg = str(e)
            if fingerprint(con) != pristine:
                return "rejected, but changed the database", msg, None
            return "rejected", msg, None
        return "accepted", out, content(con)
    finally:
        con.execute("ROLLBACK TO flip")
        con.execute("RELEASE flip")
