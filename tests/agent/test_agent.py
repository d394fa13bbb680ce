# The C ABI through Python ctypes: sync with a running sidecar on loopback, identity on first
# open, pairing by code, conflicts, cancel from another thread, and the error paths (each a
# code and a message, and nothing changed).
import ctypes
import json
import os
import re
import sqlite3
import subprocess
import threading
import time

import pytest
from agent import (CANCELLED, CLOSED, DATABASE, FORBIDDEN, INVALID_ARGUMENT, KEY, UNREACHABLE, Agent, AgentError, _take,
                   lib)
from sidecar_helpers import BIN, db_hash, free_port, pair, table_rows

NOTES = "CREATE TABLE notes(id TEXT PRIMARY KEY, body TEXT, n INTEGER)"


def laptop_and_phone(devices, strategy=None):
    laptop, phone = devices("laptop"), devices("phone")
    pair(laptop, phone)
    laptop.track(strategy=strategy)
    phone.track(strategy=strategy)
    laptop.serve("127.0.0.1", free_port())
    return laptop, phone


def phone_with_a_long_sync(devices):
    """A laptop and a phone whose next sync_once pushes 60,000 changes (long enough to interrupt)."""
    laptop, phone = laptop_and_phone(devices)
    con = phone.connect()
    con.executemany("INSERT INTO notes VALUES (?, ?, ?)", ((f"n{i}", "x" * 200, i) for i in range(60_000)))
    con.commit()
    con.close()
    return laptop, phone, Agent(phone.db, phone.key_pem())


def test_sync_once_pushes_and_pulls_with_a_sidecar(devices):
    laptop, phone = laptop_and_phone(devices)
    laptop.sql("INSERT INTO notes VALUES ('l1', 'laptop', 1)")
    phone.sql("INSERT INTO notes VALUES ('p1', 'phone', 2)")  # stock sqlite3, no extension
    a = Agent(phone.db, phone.key_pem())
    report = a.sync_once(laptop.url)
    assert report["peer"] == laptop.url and report["peer_device"] == laptop.id
    assert (report["sent"], report["received"], report["conflicts"]) == (1, 1, 0), report
    assert table_rows(phone.db) == table_rows(laptop.db) == [("l1", "laptop", 1), ("p1", "phone", 2)]
    # Nothing new: nothing moves.
    assert (a.sync_once(laptop.url + "/")["sent"], a.sync_once(laptop.url)["received"]) == (0, 0)
    status = a.status()
    assert status["device_id"] == phone.id, status
    assert laptop.url in str(status), status  # the link is recorded, as the sidecar's `sync` does
    a.close()


def test_seed_bytes_and_pem_are_the_same_key_and_first_open_takes_the_key(tmp_path):
    db = tmp_path / "fresh.db"
    con = sqlite3.connect(db)
    con.executescript(NOTES)
    con.close()
    seed = bytes(range(32))
    a = Agent(db, seed)
    st = a.status()
    a.close()
    con = sqlite3.connect(db)
    pk = con.execute("SELECT public_key FROM sync_devices WHERE device_id = ?", (st["device_id"],)).fetchone()[0]
    con.close()
    assert pk and len(pk) == 64
    Agent(db, seed).close()  # the same key opens it again
    before = db_hash(db)
    with pytest.raises(AgentError) as e:
        Agent(db, bytes(32))  # another key: refused, nothing written
    assert e.value.code == KEY and pk in e.value.message
    assert db_hash(db) == before


def test_error_paths_return_a_code_and_a_message_and_change_nothing(devices, tmp_path):
    laptop, phone = laptop_and_phone(devices)
    phone.sql("INSERT INTO notes VALUES ('p1', 'phone', 2)")
    before = db_hash(phone.db)
    l = lib()
    h = ctypes.c_void_p()
    key = phone.key_pem()
    cases = [
        (lambda: l.peersync_agent_open(None, key, len(key), ctypes.byref(h)), INVALID_ARGUMENT, "db_path is NULL"),
        (lambda: l.peersync_agent_open(str(phone.db).encode(), None, 32, ctypes.byref(h)), INVALID_ARGUMENT, "key is NULL"),
        (lambda: l.peersync_agent_open(str(phone.db).encode(), key, len(key), None), INVALID_ARGUMENT, "out is NULL"),
        (lambda: l.peersync_agent_open(b"\xff\xfe.db", key, len(key), ctypes.byref(h)), INVALID_ARGUMENT, "not UTF-8"),
        (lambda: l.peersync_agent_open(str(phone.db).encode(), b"short", 5, ctypes.byref(h)), KEY, "32-byte"),
        (lambda: l.peersync_agent_open(str(phone.db).encode(), key[:-20], len(key) - 20, ctypes.byref(h)), KEY, "PEM"),
        (lambda: l.peersync_agent_open(str(phone.db).encode(), laptop.key_pem(), len(laptop.key_pem()), ctypes.byref(h)),
         KEY, "not this database's"),
        (lambda: l.peersync_agent_open(str(tmp_path / "none.db").encode(), key, len(key), ctypes.byref(h)), DATABASE,
         "does not exist"),
        (lambda: l.peersync_agent_status(None, ctypes.byref(h)), CLOSED, "closed"),
        (lambda: l.peersync_agent_status(12345, ctypes.byref(h)), CLOSED, "closed"),
    ]
    for call, code, words in cases:
        h.value = None
        assert call() == code, words
        assert words in l.peersync_last_error().decode()
        assert h.value is None
    a = Agent(phone.db, key)
    dead = f"http://127.0.0.1:{free_port()}"
    calls = [
        (lambda o: l.peersync_agent_sync_once(a.handle, b"http://127.0.0.1:1/\xff", o), INVALID_ARGUMENT, "UTF-8"),
        (lambda o: l.peersync_agent_sync_once(a.handle, b"https://127.0.0.1:1", o), INVALID_ARGUMENT, "http://"),
        (lambda o: l.peersync_agent_sync_once(a.handle, None, o), INVALID_ARGUMENT, "peer_url is NULL"),
        (lambda o: l.peersync_agent_sync_once(a.handle, laptop.url.encode(), None), INVALID_ARGUMENT, "report is NULL"),
        (lambda o: l.peersync_agent_resolve(a.handle, 42, b"local", o), INVALID_ARGUMENT, "no conflict"),
        (lambda o: l.peersync_agent_resolve(a.handle, 42, None, o), INVALID_ARGUMENT, "choice is NULL"),
        (lambda o: l.peersync_agent_pair(a.handle, b"nope", o), INVALID_ARGUMENT, "not a pairing code"),
    ]
    for call, code, words in calls:
        out = ctypes.c_void_p()
        assert call(ctypes.byref(out)) == code, words
        assert words in l.peersync_last_error().decode(), l.peersync_last_error()
        assert out.value is None
    assert db_hash(phone.db) == before, "failed calls changed nothing"
    # A peer that cannot be reached: the app's rows stay as they were, the failure is recorded
    # for status (as the sidecar's `peersync sync` records it), the laptop got nothing.
    rows = table_rows(phone.db)
    out = ctypes.c_void_p()
    assert l.peersync_agent_sync_once(a.handle, dead.encode(), ctypes.byref(out)) == UNREACHABLE
    assert "unreachable" in l.peersync_last_error().decode() and out.value is None
    assert table_rows(phone.db) == rows and table_rows(laptop.db) == []
    assert "unreachable" in json.dumps(a.status())
    a.close()
    assert l.peersync_agent_close(a.handle) == CLOSED and "closed" in l.peersync_last_error().decode()
    assert l.peersync_agent_close(None) == CLOSED
    assert l.peersync_version().decode() == laptop.cli("--version").stdout.split()[-1]


def test_cancel_from_another_thread_stops_between_pages_then_the_next_sync_finishes(devices):
    laptop, phone, a = phone_with_a_long_sync(devices)
    result = {}

    def run():
        out = ctypes.c_void_p()
        t0 = time.time()
        result["code"] = lib().peersync_agent_sync_once(a.handle, laptop.url.encode(), ctypes.byref(out))
        result["took"] = time.time() - t0
        result["message"] = lib().peersync_last_error().decode()
        if out.value:
            _take(out)

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.3)
    t0 = time.time()
    a.cancel()  # returns at once, from this thread, while the other one syncs
    assert time.time() - t0 < 0.5
    t.join(30)
    assert not t.is_alive()
    assert result["code"] == CANCELLED, result
    assert "cancelled" in result["message"]
    assert time.time() - t0 < 5, "a cancel ends the call within the grace period"
    got = len(table_rows(laptop.db))
    assert got < 60_000, f"the laptop got {got}: the sync was not cut"
    # What was applied stays; the next sync finishes the rest.
    while a.sync_once(laptop.url)["sent"]:
        pass
    assert table_rows(laptop.db) == table_rows(phone.db)
    a.close()


def test_conflicts_and_resolve_through_the_agent(devices):
    laptop, phone = laptop_and_phone(devices, strategy="manual")
    a = Agent(phone.db, phone.key_pem())
    phone.sql("INSERT INTO notes VALUES ('n1', 'first', 1)")
    a.sync_once(laptop.url)
    laptop.sql("UPDATE notes SET body = 'laptop' WHERE id = 'n1'")
    phone.sql("UPDATE notes SET body = 'phone' WHERE id = 'n1'")
    r = a.sync_once(laptop.url)
    assert r["conflicts"] == 2, r  # one made on the laptop by the push, one here by the pull
    [c] = a.conflicts()
    assert a.resolve(c["id"], "local") == {"id": c["id"], "status": "resolved"}
    assert a.conflicts() == []
    with pytest.raises(AgentError) as e:
        a.resolve(c["id"], "local")
    assert e.value.code == INVALID_ARGUMENT and "already" in e.value.message
    a.sync_once(laptop.url)
    assert table_rows(phone.db) == table_rows(laptop.db) == [("n1", "phone", 1)]
    a.close()


def test_pair_by_code_then_sync(devices, tmp_path):
    """A new phone: the app made its database and table; the agent takes the key, joins the
    laptop's `peersync pair` by code, tracks the table, and syncs with the URL pairing gave."""
    laptop = devices("laptop")
    laptop.track()
    laptop.sql("INSERT INTO notes VALUES ('l1', 'laptop', 1)")
    laptop.serve("127.0.0.1", free_port())
    inv = subprocess.Popen([str(BIN), "pair", "--db", str(laptop.db), "--listen", f"127.0.0.1:{free_port()}",
                            "--url", laptop.url], env=laptop.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    m = re.match(r"pairing code: (\S+)", inv.stdout.readline())
    assert m
    db = tmp_path / "phone.db"
    con = sqlite3.connect(db)
    con.executescript(NOTES)
    con.close()
    a = Agent(db, os.urandom(32))
    with pytest.raises(AgentError) as e:
        a.pair(m.group(1)[:-1] + ("1" if m.group(1)[-1] != "1" else "2"))  # another port: no endpoint
    assert e.value.code == 9  # PAIRING
    got = a.pair(m.group(1))
    assert got["device_id"] == laptop.id and got["peer_url"] == laptop.url and got["tracked"] == ["notes"], got
    out, err = inv.communicate(timeout=30)
    assert inv.returncode == 0, (out, err)
    con = sqlite3.connect(db)  # the app's own write, captured by the triggers pairing installed
    con.execute("INSERT INTO notes VALUES ('p1', 'phone', 2)")
    con.commit()
    con.close()
    r = a.sync_once(got["peer_url"])
    assert (r["sent"], r["received"]) == (1, 1), r
    assert table_rows(db) == table_rows(laptop.db)
    a.close()


def test_calls_from_many_threads_on_one_handle(devices):
    laptop, phone = laptop_and_phone(devices)
    a = Agent(phone.db, phone.key_pem())
    errors = []

    def work(i):
        try:
            con = sqlite3.connect(phone.db, timeout=30)
            con.execute("INSERT INTO notes VALUES (?, 't', ?)", (f"t{i}", i))
            con.commit()
            con.close()
            a.sync_once(laptop.url)
            a.status()
            a.conflicts()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    a.sync_once(laptop.url)
    assert table_rows(laptop.db) == table_rows(phone.db) and len(table_rows(laptop.db)) == 8
    a.close()


def test_sqlite3_peersync_init_as_an_auto_extension_of_the_apps_sqlite():
    """The app's own connections (here Python's sqlite3, on the SQLite this build links) get
    the sync_* functions from sqlite3_auto_extension, without loading an extension."""
    system = ctypes.CDLL("libsqlite3.so.0")
    assert system.sqlite3_auto_extension(ctypes.cast(lib().sqlite3_peersync_init, ctypes.c_void_p)) == 0
    try:
        con = sqlite3.connect(":memory:")
        assert con.execute("select sync_version()").fetchone()[0] == lib().peersync_version().decode()
        con.execute("create table t(id integer primary key, v text)")
        con.execute("select sync_init()")
        con.execute("select sync_track('t')")
        con.execute("insert into t values (1, 'x')")
        con.execute("select sync_seal()")
        assert con.execute("select count(*) from sync_log").fetchone()[0] == 1
        con.close()
    finally:
        system.sqlite3_reset_auto_extension()


def test_close_while_a_sync_runs_cancels_it_and_refuses_the_calls_waiting(devices):
    laptop, phone, a = phone_with_a_long_sync(devices)
    codes = {}

    def call(name, fn, *args):
        out = ctypes.c_void_p()
        codes[name] = fn(a.handle, *args, ctypes.byref(out))
        if out.value:
            _take(out)

    sync = threading.Thread(target=call, args=("sync", lib().peersync_agent_sync_once, laptop.url.encode()))
    sync.start()
    time.sleep(0.3)
    waiting = threading.Thread(target=call, args=("status", lib().peersync_agent_status))
    waiting.start()  # waits for the sync: calls on one handle take turns
    time.sleep(0.1)
    a.close()
    sync.join(30)
    waiting.join(30)
    assert codes == {"sync": CANCELLED, "status": CLOSED}, codes
    # The database is usable and whole: a new handle finishes the sync.
    b = Agent(phone.db, phone.key_pem())
    while b.sync_once(laptop.url)["sent"]:
        pass
    b.close()
    assert table_rows(laptop.db) == table_rows(phone.db)


def test_a_peer_that_does_not_trust_the_phone_is_forbidden(devices):
    laptop, phone = laptop_and_phone(devices)
    stranger = devices("stranger")  # never paired with the phone
    stranger.track()
    stranger.serve("127.0.0.1", free_port())
    phone.sql("INSERT INTO notes VALUES ('p1', 'phone', 2)")
    a = Agent(phone.db, phone.key_pem())
    with pytest.raises(AgentError) as e:
        a.sync_once(stranger.url)
    assert e.value.code == FORBIDDEN, e.value
    assert table_rows(stranger.db) == []
    a.close()


def test_sync_once_compacts_what_the_laptop_holds(devices):
    laptop, phone = laptop_and_phone(devices)
    con = sqlite3.connect(phone.db)
    con.execute("INSERT INTO notes VALUES ('draft', 'v0', 0)")
    for i in range(1, 60):
        con.execute("UPDATE notes SET body = ?, n = ? WHERE id = 'draft'", (f"v{i}", i))
    con.commit()
    con.close()
    a = Agent(phone.db, phone.key_pem())
    reports = [a.sync_once(laptop.url) for _ in range(2)]
    assert sum(r["compacted"] for r in reports) >= 55, reports
    assert "compaction_error" not in str(reports)
    assert a.status()["log"]["compacted"] >= 55
    assert table_rows(phone.db) == table_rows(laptop.db) == [("draft", "v59", 59)]
    a.close()
    assert "every hash and chain verifies" in phone.cli("verify").stdout
