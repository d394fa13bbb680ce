# tests/reliability/hostile_batches.py: builds batches for the hostile tests (canonical hashes, re-chained and re-signed forgeries) and applies them through the extension.
import hashlib
import json
import sqlite3

from cryptography.hazmat.primitives import serialization

from sidecar_helpers import Device, db_hash, load_ext


def _netstring(b: bytes) -> bytes:
    return str(len(b)).encode() + b":" + b + b","


def change_hash(c: dict, prev_hash: str) -> str:
    """The README's canonical hash of a change (netstrings, SHA-256), chained to `prev_hash`."""
    fields = ["peersync-v1", c["table_name"], c["record_id"], c["operation"], c["change_data"], c["device_id"],
              str(c["version"]), str(c["timestamp"]), c["bases"], "1" if c["resolution"] else "0", prev_hash]
    return hashlib.sha256(b"".join(_netstring(str(f).encode()) for f in fields)).hexdigest()


def rechain(changes, prev=None):
    """Recomputes every change's hash in order, per origin, from `prev` ({origin: hash of the
    version before the first one here}, default: the chain starts here). Mutates and returns."""
    prev = dict(prev or {})
    for c in changes:
        c["hash"] = change_hash(c, prev.get(c["device_id"], ""))
        prev[c["device_id"]] = c["hash"]
    return changes


def _key(pem_or_dev):
    pem = pem_or_dev.key_pem() if isinstance(pem_or_dev, Device) else pem_or_dev
    return serialization.load_pem_private_key(pem, None)


def head_signature(pem_or_dev, device_id, version, hash_):
    """The origin's ed25519 signature over `peersync-head-v1\\n<device>\\n<version>\\n<hash>`."""
    msg = f"peersync-head-v1\n{device_id}\n{version}\n{hash_}".encode()
    return {"device_id": device_id, "version": version, "hash": hash_, "signature": _key(pem_or_dev).sign(msg).hex()}


def sign_heads(batch, *signers):
    """Replaces the batch's signatures by a head signature of each signer (a Device, signing
    as itself) over the last of its changes in the batch. Mutates and returns the batch."""
    batch["signatures"] = []
    for dev in signers:
        own = [c for c in batch["changes"] if c["device_id"] == dev.id]
        if own:
            last = own[-1]
            batch["signatures"].append(head_signature(dev, dev.id, last["version"], last["hash"]))
    return batch


def ext_connect(path):
    """A connection to `path` (Debian's sqlite3 module) with dist/peersync.so loaded."""
    con = sqlite3.connect(path, timeout=30, isolation_level=None)
    load_ext(con)
    return con


def export(dev, since="{}", limit=1000):
    """`sync_changes(since)` of `dev`'s database, as a dict (unsigned)."""
    con = ext_connect(dev.db)
    try:
        return json.loads(con.execute("SELECT sync_changes(?, ?)", (since, limit)).fetchone()[0])
    finally:
        con.close()


def signed_batch(dev, since="{}", limit=1000):
    """What `dev`'s sidecar would push: its changes since `since`, with its head signature."""
    return sign_heads(export(dev, since, limit), dev)


def dumps(batch):
    """Compact JSON, as the sidecar sends it."""
    return json.dumps(batch, separators=(",", ":"), ensure_ascii=False)


def sql_apply(con, text):
    """`select sync_apply(?)` on `con`: (True, result dict) or (False, error message). Bytes
    are passed as TEXT (even if they are not valid UTF-8)."""
    query = "SELECT sync_apply(CAST(? AS TEXT))" if isinstance(text, bytes) else "SELECT sync_apply(?)"
    try:
        return True, json.loads(con.execute(query, (text,)).fetchone()[0])
    except sqlite3.Error as e:
        return False, str(e)


def expect_sql_refused(db_path, text, words, con=None):
    """Applies `text` through the extension on `db_path`; asserts an error that names sync_apply
    and contains `words` (a string or a tuple of alternatives) and an unchanged database.
    Returns the error message."""
    before = db_hash(db_path)
    own = con is None
    con = con or ext_connect(db_path)
    try:
        ok, out = sql_apply(con, text)
    finally:
        if own:
            con.close()
    assert not ok, f"sync_apply accepted a hostile batch: {out}"
    assert "sync_apply" in out, f"the error does not name sync_apply: {out}"
    alts = (words,) if isinstance(words, str) else words
    assert any(w in out for w in alts), f"expected one of {alts!r} in: {out}"
    assert db_hash(db_path) == before, f"a refused sync_apply changed the database ({out})"
    return out


RICH_SCHEMA = "CREATE TABLE notes(id TEXT PRIMARY KEY, body TEXT, n INTEGER, r REAL, b BLOB)"


def write_changes(dev, inserts=30, updates=15, deletes=5, prefix=None):
    """`inserts` + `updates` + `deletes` changes on `dev`'s notes (RICH_SCHEMA): text with
    quotes and non-ASCII, 64-bit integers, reals, blobs and NULLs. Returns the number made."""
    prefix = prefix or dev.name
    con = dev.connect()
    for i in range(inserts):
        con.execute("INSERT INTO notes VALUES (?, ?, ?, ?, ?)",
                    (f"{prefix}{i}", f"note {i} \"quoted\" é ✓", (-1) ** i * 2 ** (i * 2 % 63), i / 7, bytes([i, 255 - i])))
    for i in range(updates):
        con.execute("UPDATE notes SET body = ?, n = NULL WHERE id = ?", (f"edited {i}", f"{prefix}{i}"))
    for i in range(deletes):
        con.execute("DELETE FROM notes WHERE id = ?", (f"{prefix}{inserts - 1 - i}",))
    con.commit()
    con.close()
    return inserts + updates + deletes


def held_head(db_path, device_id):
    """(version, hash) of `device_id`'s chain as the database at `db_path` holds it ((0, "") if none)."""
    con = sqlite3.connect(db_path, timeout=30)
    try:
        row = con.execute("SELECT version, hash FROM sync_vector WHERE device_id = ?", (device_id,)).fetchone()
        return (row[0], row[1]) if row else (0, "")
    finally:
        con.close()


def now_us():
    import time
    return int(time.time() * 1_000_000)


def forge(origin_id, receiver_db, specs, signer=None, sender=None, head=None):
    """A batch of changes claiming origin `origin_id`, continuing its chain as `receiver_db`
    holds it (or from `head` = (version, hash)): one change per spec (a dict overriding the
    fields of an INSERT into notes), versions and hashes chained correctly, and a head
    signature by `signer` (a Device; it signs as `origin_id`, whatever its own id) if given.
    The batch's sender is `sender` (default: the origin)."""
    version, prev = head if head is not None else held_head(receiver_db, origin_id)
    changes = []
    for k, spec in enumerate(specs):
        n = version + 1 + k
        c = {"table_name": "notes", "record_id": f"'forged{n}'", "operation": "INSERT",
             "change_data": json.dumps({"id": f"forged{n}", "body": "forged"}, separators=(",", ":")),
             "device_id": origin_id, "version": n, "timestamp": now_us() + k, "bases": "{}",
             "resolution": False, "hash": ""}
        c.update(spec)
        changes.append(c)
    rechain(changes, {origin_id: prev})
    batch = {"format": 1, "device_id": sender or origin_id, "changes": changes, "has_more": False,
             "vector": {}, "signatures": []}
    if signer is not None and changes:
        last = changes[-1]
        batch["signatures"] = [head_signature(signer, origin_id, last["version"], last["hash"])]
    return batch
