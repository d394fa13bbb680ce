# tests/python/test_schema_features.py: capture and replay with schema features apps use (FK cascades, STRICT, generated columns, upserts, NOCASE unique).
import json

import pytest

from conftest import connect, copy_via_sync, decode_row, one, table_rows

FK_SCHEMA = [
    "create table parent(id text primary key, name text)",
    "create table child(id text primary key, pid text references parent(id) on delete cascade on update cascade, v)",
]


def pair(tmp_path, schema, tables, fk=False):
    dbs = []
    for name in ("a.db", "b.db"):
        c = connect(tmp_path / name)
        if fk:
            c.execute("pragma foreign_keys = on")
        c.execute("select sync_init()")
        for s in schema:
            c.execute(s)
        for t in tables:
            c.execute("select sync_track(?)", (t,))
        dbs.append(c)
    return dbs


def ops(conn):
    return [(t, o, r) for t, o, r in conn.execute("select table_name, operation, record_id from sync_log order by id")]


def test_cascade_deletes_are_captured_and_replayed(tmp_path):
    a, b = pair(tmp_path, FK_SCHEMA, ["parent", "child"], fk=True)
    a.execute("insert into parent values ('p1', 'P')")
    a.executemany("insert into child values (?, 'p1', ?)", [("c1", 1), ("c2", 2)])
    a.execute("delete from parent where id = 'p1'")
    a.execute("select sync_seal()")
    assert ops(a)[-3:] == [("child", "DELETE", "'c1'"), ("child", "DELETE", "'c2'"), ("parent", "DELETE", "'p1'")]
    copy_via_sync(a, b)
    for t in ("parent", "child"):
        assert table_rows(b, t) == table_rows(a, t) == []


@pytest.mark.parametrize("fk", [False, True], ids=["foreign_keys=OFF", "foreign_keys=ON"])
def test_on_update_cascade_replays_to_an_identical_table(tmp_path, fk):
    """The origin logs the cascaded child UPDATE before the parent's key change (DELETE old + INSERT new).
    Replayed in that order with foreign_keys=ON the child update violates the FK, and the parent DELETE
    then cascades on the receiver: the child row is lost there. Tables must end identical."""
    a, b = pair(tmp_path, FK_SCHEMA, ["parent", "child"], fk=fk)
    a.execute("pragma foreign_keys = on")  # the origin's app uses FKs; the cascade happens there
    a.execute("insert into parent values ('p2', 'Q')")
    a.execute("insert into child values ('c3', 'p2', 3)")
    a.execute("update parent set id = 'p9' where id = 'p2'")
    a.execute("select sync_seal()")
    assert ("child", "UPDATE", "'c3'") in ops(a)
    batch = one(a, "select sync_changes('{}')")
    res = json.loads(one(b, "select sync_apply(?)", (batch,)))
    assert res["conflicts"] == [], res
    for t in ("parent", "child"):
        assert table_rows(b, t) == table_rows(a, t), t


def test_sql_apply_with_foreign_keys_on_makes_a_violation_a_constraint_conflict(tmp_path):
    """sync_apply from SQL on a connection that enforces foreign keys: the child whose parent is
    missing becomes a pending `constraint` conflict and the rest of the batch applies. (The
    commit's deferred foreign-key check fails as plain SQLITE_CONSTRAINT in SQLite 3.40, the
    host here, and as SQLITE_CONSTRAINT_FOREIGNKEY in newer ones.)"""
    a, b = pair(tmp_path, FK_SCHEMA, ["parent", "child"], fk=True)
    a.execute("pragma foreign_keys = off")  # the origin does not enforce them
    a.execute("insert into child values ('c1', 'nope', 1)")
    a.execute("insert into parent values ('p1', 'P')")
    a.execute("insert into child values ('c2', 'p1', 2)")
    batch = one(a, "select sync_changes('{}')")
    res = json.loads(one(b, "select sync_apply(?)", (batch,)))
    assert res["accepted"] == 3, res
    assert [(c["table_name"], c["record_id"]) for c in res["conflicts"]] == [("child", "'c1'")], res
    assert b.execute("select * from child").fetchall() == [("c2", "p1", 2)]
    assert b.execute("select * from parent").fetchall() == [("p1", "P")]
    assert b.execute("select kind, status from sync_conflicts").fetchall() == [("constraint", "pending")]
    assert b.execute("select count(*) from pragma_foreign_key_check").fetchone()[0] == 0


def test_digest_agrees_across_devices_and_sees_a_write_the_log_missed(tmp_path):
    """sync_digest() from Debian's sqlite3 module: equal on two devices with the same rows (the
    vector it names is the database's), different once one holds a row the logs do not know."""
    a, b = pair(tmp_path, FK_SCHEMA, ["parent", "child"])
    a.execute("insert into parent values ('p1', 'P'), ('p2', x'01')")
    a.execute("insert into child values ('c1', 'p1', 1.5)")
    copy_via_sync(a, b)
    da, db = (json.loads(one(c, "select sync_digest()")) for c in (a, b))
    assert da == db, (da, db)
    assert da["vector"] == json.loads(one(a, "select sync_vector()"))
    assert {t: d["rows"] for t, d in da["tables"].items()} == {"child": 1, "parent": 2}
    b.execute("select sync_untrack('child')")
    b.execute("update child set v = 2 where id = 'c1'")
    b.execute("select sync_track('child')")
    db = json.loads(one(b, "select sync_digest()"))
    assert db["vector"] == da["vector"] and db["tables"]["parent"] == da["tables"]["parent"]
    assert db["tables"]["child"]["digest"] != da["tables"]["child"]["digest"]


def test_strict_table(tmp_path):
    schema = ["create table s(id text primary key, n integer, r real, t text, b blob, a any) strict"]
    a, b = pair(tmp_path, schema, ["s"])
    a.executemany("insert into s values (?, ?, ?, ?, ?, ?)",
                  [("s1", 2**63 - 1, 0.1 + 0.2, "🎉", b"\x00", 1.5), ("s2", None, 5e-324, "", b"", "txt"), ("s3", -1, -0.0, "x", None, b"\x01")])
    a.execute("update s set a = 7 where id = 's1'")
    a.execute("select sync_seal()")
    assert decode_row(one(a, "select change_data from sync_log where operation = 'UPDATE'")) == {"a": 7}
    copy_via_sync(a, b)
    assert table_rows(b, "s") == table_rows(a, "s")


def test_generated_columns_are_not_synced_but_recomputed(tmp_path):
    schema = ["create table g(id text primary key, x int, y int generated always as (x * 2) virtual, "
              "z text generated always as ('z' || x) stored)"]
    a, b = pair(tmp_path, schema, ["g"])
    a.execute("insert into g(id, x) values ('g1', 3), ('g2', 5)")
    a.execute("update g set x = 4 where id = 'g1'")
    a.execute("select sync_seal()")
    datas = [decode_row(d) for (d,) in a.execute("select change_data from sync_log order by id")]
    assert datas == [{"id": "g1", "x": 3}, {"id": "g2", "x": 5}, {"x": 4}]
    copy_via_sync(a, b)
    assert b.execute("select id, x, y, z from g order by id").fetchall() == [("g1", 4, 8, "z4"), ("g2", 5, 10, "z5")]


def test_upserts_and_nocase_unique(tmp_path):
    schema = ["create table nc(id text primary key, email text unique collate nocase, n int default 0)"]
    a, b = pair(tmp_path, schema, ["nc"])
    a.execute("insert into nc(id, email) values ('n1', 'a@x')")
    a.execute("insert or replace into nc(id, email) values ('n2', 'A@X')")  # removes n1 (NOCASE)
    a.execute("insert into nc(id, email) values ('n3', 'b@x') on conflict(id) do update set email = excluded.email")
    a.execute("insert into nc(id, email) values ('n3', 'c@x') on conflict(id) do update set email = excluded.email, n = n + 1")
    a.execute("insert into nc(id, email) values ('n4', 'C@X') on conflict(email) do update set n = n + 10")
    a.execute("insert into nc(id, email) values ('n5', 'e@x') on conflict do nothing")
    a.execute("insert into nc(id, email) values ('n6', 'E@X') on conflict do nothing")
    a.execute("select sync_seal()")
    assert ops(a) == [
        ("nc", "INSERT", "'n1'"), ("nc", "DELETE", "'n1'"), ("nc", "INSERT", "'n2'"), ("nc", "INSERT", "'n3'"),
        ("nc", "UPDATE", "'n3'"), ("nc", "UPDATE", "'n3'"), ("nc", "INSERT", "'n5'"),
    ]
    assert one(a, "select count(*) from sync_log where version is null") == 0
    copy_via_sync(a, b)
    assert table_rows(b, "nc") == table_rows(a, "nc")


def test_rolled_back_writes_leave_nothing(db):
    db.execute("create table t(id text primary key, v)")
    db.execute("select sync_track('t')")
    db.execute("begin")
    db.execute("insert into t values ('a', 1)")
    db.execute("select sync_seal()")  # sealing inside the app's transaction
    db.execute("rollback")
    db.execute("begin")
    db.execute("insert into t values ('b', 1)")
    db.execute("savepoint s1")
    db.execute("insert into t values ('c', 1)")
    db.execute("rollback to s1")
    db.execute("commit")
    assert one(db, "select sync_seal()") == 1
    assert db.execute("select record_id, version from sync_log").fetchall() == [("'b'", 1)]
    assert json.loads(one(db, "select sync_verify()"))["ok"] is True


def test_one_statement_many_rows(tmp_path):
    a, b = pair(tmp_path, ["create table t(id integer primary key, v)"], ["t"])
    a.execute("with recursive n(i) as (select 1 union all select i + 1 from n where i < 3000) insert into t select i, i from n")
    a.execute("update t set v = v * 2 where id % 2 = 0")
    a.execute("delete from t where id % 3 = 0")
    assert one(a, "select sync_seal()") == 3000 + 1500 + 1000
    versions = [v for (v,) in a.execute("select version from sync_log order by id")]
    assert versions == list(range(1, 5501))
    copy_via_sync(a, b)
    assert table_rows(b, "t") == table_rows(a, "t")
    assert one(b, "select count(*) from t") == 2000
