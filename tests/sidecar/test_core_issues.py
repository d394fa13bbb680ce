# Core behaviour the sidecar depends on, shown through the extension alone (both were core bugs
# found by the sidecar's tests and fixed in core 44bb298). A failing test here is a bug in core/.
import json
import sqlite3

from conftest import load_ext


def open_dev(path):
    con = sqlite3.connect(path, isolation_level=None)
    load_ext(con)
    con.execute("CREATE TABLE notes(id TEXT PRIMARY KEY, body TEXT)")
    dev = con.execute("SELECT sync_init()").fetchone()[0]
    con.execute("SELECT sync_track('notes')")
    return con, dev


def test_is_synced_reaches_changes_that_arrive_after_their_peer_reported_them(tmp_path):
    """A peer's vector can run ahead of what this database holds (a batch's `vector` is the
    sender's whole vector, also on a page with has_more; the sidecar's hello reports it before
    pushing). `is_synced` must still be set on those changes once they arrive. Today core's
    note_vector advances its '' floor past the versions held, and the later ones stay unsynced."""
    a, a_id = open_dev(tmp_path / "a.db")
    b, b_id = open_dev(tmp_path / "b.db")
    # a authorizes b without a key (so b's batches need no head signature here)
    a.execute("INSERT INTO sync_devices(device_id, public_key, is_authorized) VALUES (?, NULL, 1)", (b_id,))
    b.execute("INSERT INTO notes VALUES ('n1', 'one')")
    b.execute("INSERT INTO notes VALUES ('n2', 'two')")
    page1 = b.execute("SELECT sync_changes('{}', 1)").fetchone()[0]
    assert json.loads(page1)["has_more"] and json.loads(page1)["vector"][b_id] == 2
    a.execute("SELECT sync_apply(?)", (page1,))
    vec = a.execute("SELECT sync_vector()").fetchone()[0]
    rest = b.execute("SELECT sync_changes(?)", (vec,)).fetchone()[0]
    a.execute("SELECT sync_apply(?)", (rest,))
    rows = a.execute("SELECT version, is_synced FROM sync_log WHERE device_id = ? ORDER BY version", (b_id,)).fetchall()
    assert rows == [(1, 1), (2, 1)], f"b's changes on a (version, is_synced): {rows}"


def test_concurrent_seals_never_drop_sealed_changes(tmp_path):
    """The sidecar seals from several connections at once (a push being applied, a page being
    read, the app writing). core's seal() reads `sealed_upto` before its BEGIN IMMEDIATE and
    uses it inside: a seal that waited for another one re-walks rows that are already sealed,
    finds their stage rows gone and deletes them, while sync_vector keeps the higher head.
    Seen in the three-peer test as a device whose own log stops at version 117 while its
    vector says 123 (its peers can never catch up). Fix: read sealed_upto inside the transaction."""
    import threading

    path = tmp_path / "a.db"
    con, dev = open_dev(path)
    con.execute("PRAGMA journal_mode=WAL")
    stop = threading.Event()
    errors = []

    def sealer():
        c = sqlite3.connect(path, timeout=30, isolation_level=None)
        load_ext(c)
        while not stop.is_set():
            try:
                c.execute("SELECT sync_seal()").fetchone()
            except sqlite3.Error as e:
                errors.append(str(e))

    threads = [threading.Thread(target=sealer) for _ in range(3)]
    for t in threads:
        t.start()
    w = sqlite3.connect(path, timeout=30, isolation_level=None)
    for i in range(600):
        w.execute("INSERT OR REPLACE INTO notes VALUES (?, ?)", (f"k{i % 50}", f"v{i}"))
    stop.set()
    for t in threads:
        t.join()
    con.execute("SELECT sync_seal()")
    head = json.loads(con.execute("SELECT sync_vector()").fetchone()[0]).get(dev, 0)
    count, top = con.execute("SELECT count(*), max(version) FROM sync_log WHERE device_id = ?", (dev,)).fetchone()
    assert not errors, errors[:3]
    assert (count, top) == (head, head), f"own log has {count} changes up to version {top}, but the vector says {head}"
