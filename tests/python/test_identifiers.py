# tests/python/test_identifiers.py: hostile table and column names are tracked, captured from any client and replayed exactly.
import json

import pytest

from conftest import cli, connect, copy_via_sync, decode_row, one, quote_ident, quote_lit, system_python, table_rows

NAMES = [
    ("spaces", "my table", ["the id", "a value", "b  two"]),
    ("double quotes", 'tab"le', ['i"d', '"v"', 'x""y']),
    ("single quotes", "it's", ["o'brien", "'v'", "x''y"]),
    ("brackets", "[t]", ["[id]", "]v[", "`w`"]),
    ("unicode", "日本語 🎉", ["キー", "émoji 🎉", "e\u0301"]),
    ("keywords", "select", ["from", "where", "group"]),
    ("keywords2", "table", ["primary", "key", "order"]),
    ("punctuation", "a.b;--c", ["c.d", "-- x", ";drop table t;"]),
    ("sync-like", "sync_logs", ["sync_log", "NEW", "OLD"]),
    ("mixed case", "MiXeD", ["Id", "VALUE", "value2"]),
    ("comma", "a,b", ["k,1", "v,2", "w"]),
]


def ddl(table, cols, composite=False):
    c = ", ".join(f"{quote_ident(x)} text" for x in cols)
    pk = f"{quote_ident(cols[0])}, {quote_ident(cols[1])}" if composite else quote_ident(cols[0])
    return f"create table {quote_ident(table)}({c}, primary key({pk}))"


@pytest.mark.parametrize("composite", [False, True], ids=["single-key", "composite-key"])
@pytest.mark.parametrize("label,table,cols", NAMES, ids=[n[0] for n in NAMES])
def test_hostile_names(tmp_path, label, table, cols, composite):
    a = connect(tmp_path / "a.db")
    a.execute("select sync_init()")
    a.execute(ddl(table, cols, composite))
    q = quote_ident(table)
    qc = [quote_ident(c) for c in cols]
    a.execute(f"insert into {q} values ('k1', 'v1', 'w1')")
    assert one(a, "select sync_track(?)", (table,)) == 1
    a.execute(f"insert into {q} values ('k''2', 'v\"2', 'w2')")
    a.execute(f"update {q} set {qc[2]} = 'W2' where {qc[0]} = 'k''2'")
    a.execute(f"update {q} set {qc[1]} = 'V1' where {qc[0]} = 'k1'")  # a key column when composite
    # writers without the extension
    cli(tmp_path / "a.db", f"insert into {q} values ('k3', 'v3', 'w3');\ndelete from {q} where {qc[0]} = 'k3';\n")
    system_python(
        "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\n"
        f"c.execute({repr(f'insert into {q} values (?, ?, ?)')}, ('k4', 'v4', None))\nc.commit()\n",
        tmp_path / "a.db",
    )
    a.execute("select sync_seal()")
    assert one(a, "select count(*) from sync_log where version is null") == 0
    log = a.execute("select table_name, operation, record_id, change_data from sync_log order by id").fetchall()
    assert {r[0] for r in log} == {table}, "table_name is the declared name"
    first = decode_row(log[0][3])
    assert first == dict(zip(cols, ["k1", "v1", "w1"]))
    ops = [(r[1], r[2]) for r in log]
    k1 = "'k1','v1'" if composite else "'k1'"
    k1b = "'k1','V1'" if composite else "'k1'"
    k2 = "'k''2','v\"2'" if composite else "'k''2'"
    k3 = "'k3','v3'" if composite else "'k3'"
    k4 = "'k4','v4'" if composite else "'k4'"
    want = [("INSERT", k1), ("INSERT", k2), ("UPDATE", k2)]
    want += [("DELETE", k1), ("INSERT", k1b)] if composite else [("UPDATE", k1)]
    want += [("INSERT", k3), ("DELETE", k3), ("INSERT", k4)]
    assert ops == want
    assert decode_row(log[2][3]) == {cols[2]: "W2"}
    assert json.loads(one(a, "select sync_verify()"))["ok"] is True

    b = connect(tmp_path / "b.db")
    b.execute("select sync_init()")
    b.execute(ddl(table, cols, composite))
    b.execute("select sync_track(?)", (table,))
    copy_via_sync(a, b)
    assert table_rows(b, table) == table_rows(a, table)
    assert one(b, f"select count(*) from {q}") == 3


def test_untrack_and_retrack_hostile_name(db):
    t = 'we"ird \'name\' [x]'
    db.execute(ddl(t, ["i d", "v", "w"]))
    db.execute("select sync_track(?)", (t,))
    n = one(db, "select count(*) from sqlite_master where type = 'trigger' and tbl_name = ?", (t,))
    assert n > 0
    db.execute("select sync_untrack(?)", (t,))
    assert one(db, "select count(*) from sqlite_master where type = 'trigger' and tbl_name = ?", (t,)) == 0
    db.execute(f"insert into {quote_ident(t)} values ('a', 'b', 'c')")
    assert one(db, "select count(*) from sync_log") == 0
    assert one(db, "select sync_track(?)", (t,)) == 1
    assert one(db, "select count(*) from sqlite_master where type = 'trigger' and tbl_name = ?", (t,)) == n


def test_tracking_a_table_named_like_a_quote_literal(db):
    """A name that would break naive string building in the triggers: '||(select 1)||'."""
    t = "x'||(select 1)||'"
    db.execute(ddl(t, ["a')--", "b", "c"]))
    db.execute("select sync_track(?)", (t,))
    db.execute(f"insert into {quote_ident(t)} values ('1', '2', '3')")
    db.execute("select sync_seal()")
    assert one(db, "select table_name from sync_log") == t
    assert decode_row(one(db, "select change_data from sync_log")) == {"a')--": "1", "b": "2", "c": "3"}
    assert quote_lit(t)  # helper sanity
