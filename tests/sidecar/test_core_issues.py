# Core behaviour the sidecar depends on, shown through the extension alone. A failing test here
# is a bug in core/ (reported to the lead), not in the sidecar.
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
