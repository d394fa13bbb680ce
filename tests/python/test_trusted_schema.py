# tests/python/test_trusted_schema.py: with PRAGMA trusted_schema=OFF every client's writes succeed and are captured exactly.
import json

from conftest import cli, connect, decode_row, one, same, system_python

ROWS = [("a", 0.1 + 0.2, "it's", b"\x00\xff", 2**63 - 1), ("b", 5e-324, "漢字🎉", b"", -(2**63))]


def setup(path):
    conn = connect(path)
    conn.execute("pragma trusted_schema = OFF")
    assert one(conn, "pragma trusted_schema") == 0
    conn.execute("select sync_init()")
    conn.execute("create table t(id text primary key, r real, s text, b blob, i integer, u unique)")
    assert one(conn, "select sync_track('t')") == 0
    return conn


def test_loaded_connection_with_trusted_schema_off(db_path):
    conn = setup(db_path)
    conn.executemany("insert into t(id, r, s, b, i) values (?, ?, ?, ?, ?)", ROWS)
    conn.execute("update t set r = 1e308, u = 'x' where id = 'a'")
    conn.execute("insert or replace into t(id, u) values ('c', 'x')")  # removes 'a' through the UNIQUE column
    conn.execute("delete from t where id = 'b'")
    assert one(conn, "select sync_seal()") == 6
    log = conn.execute("select operation, record_id, change_data from sync_log order by id").fetchall()
    assert [(o, r) for o, r, _ in log] == [
        ("INSERT", "'a'"), ("INSERT", "'b'"), ("UPDATE", "'a'"), ("DELETE", "'a'"), ("INSERT", "'c'"), ("DELETE", "'b'")
    ]
    first = decode_row(log[0][2])
    assert all(same(first[k], v) for k, v in zip(["id", "r", "s", "b", "i"], ROWS[0]))
    assert decode_row(log[2][2]) == {"r": 1e308, "u": "x"}
    assert json.loads(one(conn, "select sync_verify()"))["ok"] is True


def test_plain_clients_with_trusted_schema_off(db_path):
    conn = setup(db_path)
    cli(db_path, "insert into t(id, r, s, b, i) values ('c', 0.1 + 0.2, 'cli', x'01', 9223372036854775807);\n"
                 "update t set s = 'cli2' where id = 'c';\n", cmd="PRAGMA trusted_schema=OFF")
    p = cli(db_path, "pragma trusted_schema;\n", cmd="PRAGMA trusted_schema=OFF")
    assert p.stdout.strip() == "0"
    system_python(
        "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.execute('pragma trusted_schema=OFF')\n"
        "assert c.execute('pragma trusted_schema').fetchone()[0] == 0\n"
        "c.execute(\"insert into t(id, r, s) values ('d', 5e-324, 'py')\")\n"
        "c.execute(\"delete from t where id = 'c'\")\nc.commit()\n",
        db_path,
    )
    assert one(conn, "select sync_seal()") == 4
    log = conn.execute("select operation, record_id, change_data from sync_log order by id").fetchall()
    assert [(o, r) for o, r, _ in log] == [("INSERT", "'c'"), ("UPDATE", "'c'"), ("INSERT", "'d'"), ("DELETE", "'c'")]
    assert decode_row(log[0][2]) == {"id": "c", "r": 0.1 + 0.2, "s": "cli", "b": b"\x01", "i": 2**63 - 1, "u": None}
    assert decode_row(log[2][2])["r"] == 5e-324


def test_sealing_and_export_work_with_trusted_schema_off(tmp_path):
    a = setup(tmp_path / "a.db")
    b = setup(tmp_path / "b.db")
    a.executemany("insert into t(id, r, s, b, i) values (?, ?, ?, ?, ?)", ROWS)
    batch = one(a, "select sync_changes('{}')")
    res = json.loads(one(b, "select sync_apply(?)", (batch,)))
    assert res["accepted"] == 2
    assert b.execute("select * from t order by id").fetchall() == a.execute("select * from t order by id").fetchall()
