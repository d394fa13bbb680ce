# tests/python/test_track.py: sync_track on existing rows, idempotence, ALTER TABLE, key types, key changes, no-op updates, untrack, REPLACE.
import json

import pytest

from conftest import cli, connect, copy_via_sync, decode_row, one, system_python, table_rows


def log(conn, where="1"):
    return conn.execute(f"select operation, record_id, change_data from sync_log where {where} order by id").fetchall()


def test_existing_rows_are_logged_once(db):
    db.execute("create table t(id text primary key, v)")
    db.executemany("insert into t values (?, ?)", [(f"r{i}", i) for i in range(250)])
    assert one(db, "select sync_track('t')") == 250
    assert one(db, "select sync_track('t')") == 0
    assert one(db, "select sync_track('t')") == 0
    assert db.execute("select count(*), count(distinct record_id) from sync_log").fetchone() == (250, 250)
    assert one(db, "select count(*) from sync_log where version is null") == 0
    rows = {rid: decode_row(d) for _, rid, d in log(db)}
    assert rows["'r7'"] == {"id": "r7", "v": 7}
    assert one(db, "select count(*) from sqlite_master where type = 'trigger' and tbl_name = 't'") > 0
    # The triggers are plain SQL: they call no function of the extension.
    names = {r[0] for r in db.execute("select name from pragma_function_list where name like 'sync\\_%' escape '\\'")}
    for (sql,) in db.execute("select sql from sqlite_master where type = 'trigger'"):
        for fn in names:
            assert fn + "(" not in sql, f"trigger calls {fn}: {sql}"


def test_rows_added_while_untracked_are_logged_when_tracked_again(db):
    db.execute("create table t(id text primary key, v)")
    db.execute("select sync_track('t')")
    db.execute("insert into t values ('a', 1)")
    assert one(db, "select sync_untrack('t')") is not None
    db.execute("insert into t values ('b', 2)")
    assert one(db, "select count(*) from sync_log where record_id = '''b'''") == 0
    assert one(db, "select sync_track('t')") == 1
    assert [r[:2] for r in log(db)] == [("INSERT", "'a'"), ("INSERT", "'b'")]


def test_alter_table_add_column_then_retrack(db_path):
    db = connect(db_path)
    db.execute("select sync_init()")
    db.execute("create table t(id text primary key, a)")
    db.execute("insert into t values ('x', 1)")
    assert one(db, "select sync_track('t')") == 1
    db.execute("alter table t add column b text default 'dflt'")
    assert one(db, "select sync_track('t')") == 0, "rows already logged are not logged again"
    db.execute("update t set b = 'set' where id = 'x'")
    # a writer without the extension uses the new column too
    cli(db_path, "insert into t values ('y', 2, 'from cli');\nupdate t set b = 'cli2', a = 3 where id = 'y';\n")
    assert one(db, "select sync_seal()") == 3
    rows = log(db, "id > 1")
    assert [(o, r) for o, r, _ in rows] == [("UPDATE", "'x'"), ("INSERT", "'y'"), ("UPDATE", "'y'")]
    assert decode_row(rows[0][2]) == {"b": "set"}
    assert decode_row(rows[1][2]) == {"id": "y", "a": 2, "b": "from cli"}
    assert decode_row(rows[2][2]) == {"a": 3, "b": "cli2"}


def test_alter_without_retrack_keeps_writes_working(db_path):
    """Until sync_track is re-run the new column may not be captured, but writes must never fail."""
    db = connect(db_path)
    db.execute("select sync_init()")
    db.execute("create table t(id text primary key, a)")
    db.execute("select sync_track('t')")
    db.execute("alter table t add column b")
    db.execute("insert into t values ('x', 1, 2)")
    db.execute("update t set b = 3")
    cli(db_path, "insert into t values ('y', 1, 2);\n")
    assert one(db, "select count(*) from t") == 2
    assert one(db, "select sync_track('t')") >= 0
    db.execute("update t set b = 4 where id = 'x'")
    db.execute("select sync_seal()")
    assert decode_row(log(db)[-1][2]) == {"b": 4}


KEYS = [
    ("integer", "create table k(id integer primary key, v)", [(1, "a"), (-(2**63), "min"), (2**63 - 1, "max")],
     ["1", "-9223372036854775808", "9223372036854775807"]),
    ("real", "create table k(id real primary key, v)", [(1.5, "a"), (0.1 + 0.2, "b"), (2.0, "c")],
     ["1.5", "0.30000000000000004", "2.0"]),
    ("blob", "create table k(id blob primary key, v)", [(b"\x00\xff", "a"), (b"", "b"), (b"'", "c")],
     ["X'00FF'", "X''", "X'27'"]),
    ("text", "create table k(id text primary key, v)", [("a,b", 1), ("it's", 2), ("", 3), ("🎉", 4)],
     ["'a,b'", "'it''s'", "''", "'🎉'"]),
    ("composite", "create table k(t text, n int, v, primary key(t, n))", [("x", 1, "a"), ("x,1", 2, "b"), ("x", 10, "c")],
     ["'x',1", "'x,1',2", "'x',10"]),
    ("composite-reordered", "create table k(t text, n int, v, primary key(n, t)) without rowid",
     [("x", 1, "a"), ("y'", 2, "b")], ["1,'x'", "2,'y'''"]),
]


@pytest.mark.parametrize("kind,ddl,rows,rids", KEYS, ids=[k[0] for k in KEYS])
def test_primary_key_types(tmp_path, kind, ddl, rows, rids):
    a = connect(tmp_path / "a.db")
    a.execute("select sync_init()")
    a.execute(ddl)
    a.execute("select sync_track('k')")
    marks = ", ".join("?" * len(rows[0]))
    a.executemany(f"insert into k values ({marks})", rows)
    a.execute("update k set v = 'changed'")
    a.execute("select sync_seal()")
    ins = log(a, "operation = 'INSERT'")
    assert [r for _, r, _ in ins] == rids
    upd = log(a, "operation = 'UPDATE'")
    assert sorted(r for _, r, _ in upd) == sorted(rids)
    assert all(decode_row(d) == {"v": "changed"} for _, _, d in upd)
    # delete the first row by its key
    info = a.execute("select cid, name from pragma_table_info('k') where pk > 0").fetchall()
    a.execute("delete from k where " + " and ".join(f"{n} = ?" for _, n in info), [rows[0][c] for c, _ in info])
    a.execute("select sync_seal()")
    assert log(a)[-1][:2] == ("DELETE", rids[0])
    b = connect(tmp_path / "b.db")
    b.execute("select sync_init()")
    b.execute(ddl)
    b.execute("select sync_track('k')")
    copy_via_sync(a, b)
    assert table_rows(b, "k") == table_rows(a, "k")
    assert one(b, "select count(*) from k") == len(rows) - 1


def test_update_of_primary_key_is_delete_plus_insert(db):
    db.execute("create table t(a text, b int, v, primary key(a, b))")
    db.execute("select sync_track('t')")
    db.execute("insert into t values ('x', 1, 'val')")
    db.execute("update t set b = 2, v = 'val2' where a = 'x'")
    db.execute("update t set a = 'y' where b = 2")
    db.execute("select sync_seal()")
    rows = log(db)
    assert [(o, r) for o, r, _ in rows] == [
        ("INSERT", "'x',1"), ("DELETE", "'x',1"), ("INSERT", "'x',2"), ("DELETE", "'x',2"), ("INSERT", "'y',2")
    ]
    assert decode_row(rows[2][2]) == {"a": "x", "b": 2, "v": "val2"}
    assert decode_row(rows[4][2]) == {"a": "y", "b": 2, "v": "val2"}


def test_write_after_primary_key_change_is_sealed(db):
    """Core bug: an UPDATE that changes the key also logs an UPDATE row that sealing drops; at the log's tail its
    id is reused by the next write, which is then never sealed or exported."""
    db.execute("create table t(id text primary key, v)")
    db.execute("select sync_track('t')")
    db.execute("insert into t values ('a', 1)")
    db.execute("update t set id = 'b'")
    db.execute("select sync_seal()")
    db.execute("insert into t values ('c', 3)")
    assert one(db, "select sync_seal()") == 1
    assert one(db, "select count(*) from sync_log where version is null") == 0
    batch = json.loads(one(db, "select sync_changes('{}')"))
    assert [(c["operation"], c["record_id"]) for c in batch["changes"]] == [
        ("INSERT", "'a'"), ("DELETE", "'a'"), ("INSERT", "'b'"), ("INSERT", "'c'")
    ]


def test_noop_update_logs_nothing_after_sealing(db):
    db.execute("create table t(id text primary key, v, w)")
    db.execute("select sync_track('t')")
    db.execute("insert into t values ('a', 1, 'x'), ('b', 2.5, x'00')")
    db.execute("select sync_seal()")
    before = log(db)
    db.execute("update t set v = v, w = w")
    db.execute("update t set v = 1 where id = 'a'")
    system_python("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"update t set w = x'00' where id='b'\"); c.commit()", db.execute("pragma database_list").fetchone()[2])
    assert one(db, "select sync_seal()") == 0
    assert log(db) == before
    assert one(db, "select count(*) from sync_log where version is null") == 0


def test_write_after_dropped_noop_update_is_sealed(db):
    """Core bug: sealing deletes the no-op row at the log's tail, the next row reuses its id and is never sealed."""
    db.execute("create table t(id text primary key, v)")
    db.execute("select sync_track('t')")
    db.execute("insert into t values ('a', 1)")
    db.execute("update t set v = 1")
    assert one(db, "select sync_seal()") == 1
    db.execute("insert into t values ('b', 2)")
    assert one(db, "select sync_seal()") == 1
    assert one(db, "select count(*) from sync_log where version is null") == 0
    batch = json.loads(one(db, "select sync_changes('{}')"))
    assert [c["record_id"] for c in batch["changes"]] == ["'a'", "'b'"]


def test_insert_or_replace_through_unique_index(db):
    db.execute("create table u(id text primary key, email text unique, name text)")
    db.execute("select sync_track('u')")
    db.execute("insert into u values ('u1', 'a@x', 'Ann'), ('u2', 'b@x', 'Ben')")
    db.execute("select sync_seal()")
    db.execute("insert or replace into u values ('u3', 'a@x', 'Ann3')")
    assert one(db, "select count(*) from sync_log where operation = 'REPLACE'") == 1
    db.execute("select sync_seal()")
    assert [(o, r) for o, r, _ in log(db, "id > 2")] == [("DELETE", "'u1'"), ("INSERT", "'u3'")]
    assert one(db, "select count(*) from sync_log where operation = 'REPLACE'") == 0


def test_insert_or_replace_from_a_connection_without_the_extension(db_path):
    db = connect(db_path)
    db.execute("select sync_init()")
    db.execute("create table u(id text primary key, email text unique, name text)")
    db.execute("select sync_track('u')")
    db.execute("insert into u values ('u1', 'a@x', 'Ann'), ('u2', 'b@x', 'Ben')")
    system_python(
        "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]);"
        "c.execute(\"insert or replace into u values ('u3', 'b@x', 'Ben3')\"); c.commit()", db_path)
    db.execute("select sync_seal()")
    assert [(o, r) for o, r, _ in log(db)] == [("INSERT", "'u1'"), ("INSERT", "'u2'"), ("DELETE", "'u2'"), ("INSERT", "'u3'")]


def test_insert_or_ignore_leaves_no_delete(db):
    db.execute("create table u(id text primary key, email text unique)")
    db.execute("select sync_track('u')")
    db.execute("insert into u values ('u1', 'a@x')")
    db.execute("insert or ignore into u values ('u2', 'a@x')")
    db.execute("insert or ignore into u values ('u1', 'z@x')")
    db.execute("select sync_seal()")
    assert [(o, r) for o, r, _ in log(db)] == [("INSERT", "'u1'")]
    db.execute("insert into u values ('u3', 'c@x')")
    db.execute("select sync_seal()")
    assert [(o, r) for o, r, _ in log(db)] == [("INSERT", "'u1'"), ("INSERT", "'u3'")]
    assert one(db, "select count(*) from sync_log where version is null") == 0, \
        "a write after an ignored INSERT must be sealed (core bug: log id reuse)"
    assert decode_row(log(db)[-1][2]) == {"id": "u3", "email": "c@x"}


def test_strategy_is_stored(db):
    db.execute("create table t(id text primary key, v)")
    for s in ["manual", "local_wins", "remote_wins", "timestamp_wins", "manual"]:
        assert one(db, "select sync_track('t', ?)", (s,)) == 0
        st = json.loads(one(db, "select sync_status()"))
        assert s in json.dumps(st), st
    assert one(db, "select strategy from sync_tables where name = 't'") == "manual"
    db.execute("select sync_track('t')")
    assert one(db, "select strategy from sync_tables where name = 't'") == "manual", "re-tracking keeps the strategy"
