# tests/python/test_errors.py: bad input gives a SQL error naming the function and the problem, and changes nothing.
import json
import sqlite3

import pytest

from conftest import connect, one, snapshot


@pytest.fixture
def setup(tmp_path):
    conn = connect(tmp_path / "e.db")
    conn.execute("select sync_init()")
    conn.executescript(
        """
        create table t(id text primary key, v);
        create table t2(id text primary key, v);
        create table nopk(a, b);
        create table rowid_unique(a integer, b text unique);
        create view vw as select * from t;
        create virtual table ft using fts5(body);
        create virtual table rt using rtree(id, x0, x1);
        create table seq(id integer primary key autoincrement, v);
        insert into seq(v) values (1);
        """
    )
    conn.execute("select sync_track('t')")
    conn.execute("insert into t values ('a', 1)")
    conn.execute("select sync_seal()")
    conn.execute("insert into t values ('b', 2)")  # left unsealed on purpose
    yield conn
    conn.close()


BAD = [
    # (function named in the error, SQL, words the message must contain)
    ("sync_track", "select sync_track('nope')", ["nope"]),
    ("sync_track", "select sync_track('nopk')", ["nopk", "primary key"]),
    ("sync_track", "select sync_track('rowid_unique')", ["primary key"]),
    ("sync_track", "select sync_track('vw')", ["view"]),
    ("sync_track", "select sync_track('ft')", ["virtual"]),
    ("sync_track", "select sync_track('rt')", ["virtual"]),
    ("sync_track", "select sync_track('sync_log')", ["sync_log"]),
    ("sync_track", "select sync_track('Sync_Log')", []),
    ("sync_track", "select sync_track('sync_devices')", ["sync_devices"]),
    ("sync_track", "select sync_track('sync_conflicts')", ["sync_conflicts"]),
    ("sync_track", "select sync_track('sync_tables')", []),
    ("sync_track", "select sync_track('sync_state')", []),
    ("sync_track", "select sync_track('sqlite_sequence')", []),
    ("sync_track", "select sync_track('sqlite_master')", []),
    ("sync_track", "select sync_track('t2', 'bogus')", ["bogus", "strategy"]),
    ("sync_track", "select sync_track('t2', '')", ["strategy"]),
    ("sync_track", "select sync_track(1)", ["text"]),
    ("sync_track", "select sync_track(NULL)", []),
    ("sync_track", "select sync_track(x'74')", []),
    ("sync_track", "select sync_track('t2', 3)", ["strategy"]),
    ("sync_untrack", "select sync_untrack('nope')", ["nope"]),
    ("sync_untrack", "select sync_untrack('t2')", ["t2"]),
    ("sync_untrack", "select sync_untrack(1)", []),
    ("sync_hash", "select sync_hash(999)", ["999"]),
    ("sync_hash", "select sync_hash(-1)", []),
    ("sync_hash", "select sync_hash(2)", ["seal"]),
    ("sync_hash", "select sync_hash('1')", ["integer"]),
    ("sync_hash", "select sync_hash(NULL)", []),
    ("sync_apply", "select sync_apply('not json')", []),
    ("sync_apply", "select sync_apply('')", []),
    ("sync_apply", "select sync_apply('{}')", []),
    ("sync_apply", "select sync_apply('[]')", []),
    ("sync_apply", "select sync_apply('{\"format\":1}')", []),
    ("sync_apply", "select sync_apply('{\"format\":99,\"device_id\":\"x\",\"changes\":[],\"has_more\":false,\"vector\":{},\"signatures\":[]}')", []),
    ("sync_apply", "select sync_apply(5)", []),
    ("sync_apply", "select sync_apply(NULL)", []),
    ("sync_changes", "select sync_changes('nope')", []),
    ("sync_changes", "select sync_changes('[1]')", []),
    ("sync_changes", "select sync_changes('{\"abc\":\"x\"}')", []),
    ("sync_changes", "select sync_changes('{}', 'x')", ["limit"]),
    ("sync_changes", "select sync_changes(NULL)", []),
    ("sync_resolve", "select sync_resolve(999, 'local')", ["999"]),
    ("sync_resolve", "select sync_resolve(999, 'remote')", ["999"]),
    ("sync_resolve", "select sync_resolve(999, 'ignore')", ["999"]),
    ("sync_resolve", "select sync_resolve(999, '{\"v\":1}')", ["999"]),
    ("sync_resolve", "select sync_resolve('x', 'local')", []),
    ("sync_resolve", "select sync_resolve(1, 'bogus')", []),
    ("sync_release", "select sync_release('not-a-device')", ["not-a-device", "32 lowercase hex"]),
    ("sync_release", "select sync_release(7)", ["text"]),
]


@pytest.mark.parametrize("fn,sql,words", BAD, ids=[b[1] for b in BAD])
def test_bad_input_is_a_clear_error_and_changes_nothing(setup, fn, sql, words):
    before = snapshot(setup)
    with pytest.raises(sqlite3.OperationalError) as e:
        setup.execute(sql).fetchall()
    msg = str(e.value)
    assert msg.startswith(fn + ":") or msg.startswith(fn + " "), f"error does not name {fn}: {msg!r}"
    for w in words:
        assert w.lower() in msg.lower(), f"{w!r} not in {msg!r}"
    assert "panic" not in msg
    assert snapshot(setup) == before, "a failed call changed the database"
    # the connection keeps working
    assert one(setup, "select count(*) from t") == 2


WRONG_COUNT = [
    "select sync_init(1)", "select sync_track()", "select sync_track('t', 'manual', 1)", "select sync_untrack()",
    "select sync_untrack('t', 1)", "select sync_hash()", "select sync_hash(1, 2)", "select sync_seal(1)",
    "select sync_verify(1)", "select sync_vector(1)", "select sync_changes()", "select sync_changes('{}', 1, 2)",
    "select sync_apply()", "select sync_apply('{}', 1)", "select sync_resolve(1)", "select sync_resolve(1, 'local', 2)",
    "select sync_status(1)", "select sync_version(1)", "select sync_release()", "select sync_release('a', 'b')",
]


@pytest.mark.parametrize("sql", WRONG_COUNT)
def test_wrong_argument_count_names_the_function(setup, sql):
    fn = sql.split()[1].split("(")[0]
    before = snapshot(setup)
    with pytest.raises(sqlite3.OperationalError) as e:
        setup.execute(sql)
    assert fn in str(e.value) and "argument" in str(e.value), str(e.value)
    assert snapshot(setup) == before


def test_functions_before_sync_init_fail_cleanly(tmp_path):
    conn = connect(tmp_path / "fresh.db")
    conn.execute("create table t(id text primary key, v)")
    before = snapshot(conn)
    for fn, sql in [
        ("sync_track", "select sync_track('t')"),
        ("sync_untrack", "select sync_untrack('t')"),
        ("sync_seal", "select sync_seal()"),
        ("sync_verify", "select sync_verify()"),
        ("sync_hash", "select sync_hash(1)"),
        ("sync_apply", "select sync_apply('{}')"),
    ]:
        with pytest.raises(sqlite3.OperationalError) as e:
            conn.execute(sql).fetchall()
        assert str(e.value).startswith(fn), str(e.value)
        assert snapshot(conn) == before, f"{sql} changed the database before sync_init"
    assert one(conn, "select sync_version()")


def test_tampered_batch_is_rejected_and_nothing_applied(tmp_path):
    a = connect(tmp_path / "a.db")
    b = connect(tmp_path / "b.db")
    for c in (a, b):
        c.execute("select sync_init()")
        c.execute("create table t(id text primary key, v)")
        c.execute("select sync_track('t')")
    a.executemany("insert into t values (?, ?)", [("x", 1), ("y", 2), ("z", 3)])
    batch = json.loads(one(a, "select sync_changes('{}')"))
    assert len(batch["changes"]) == 3
    bad = json.loads(json.dumps(batch))
    bad["changes"][1]["change_data"] = bad["changes"][1]["change_data"].replace('"v":2', '"v":20')
    before = snapshot(b)
    with pytest.raises(sqlite3.OperationalError) as e:
        b.execute("select sync_apply(?)", (json.dumps(bad),))
    assert str(e.value).startswith("sync_apply"), str(e.value)
    assert snapshot(b) == before, "nothing may be applied from a batch with a bad hash"
    res = json.loads(one(b, "select sync_apply(?)", (json.dumps(batch),)))
    assert res["accepted"] == 3
    assert b.execute("select * from t order by id").fetchall() == [("x", 1), ("y", 2), ("z", 3)]
