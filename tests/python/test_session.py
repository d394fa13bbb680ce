# tests/python/test_session.py: the user session in python; writes from clients without the extension are captured; seal, verify, status.
import json
import re

from conftest import EXT, cli, connect, decode_row, one, system_python

LOANS = "create table loans(id text primary key, borrower text, amount integer, rate real, doc blob)"


def test_user_session_and_foreign_writers(db_path):
    conn = connect(db_path)
    dev = one(conn, "select sync_init()")
    assert re.fullmatch(r"[0-9a-f]{32}", dev), dev
    assert one(conn, "select sync_init()") == dev, "sync_init is idempotent and keeps the device id"
    conn.execute(LOANS)
    assert one(conn, "select sync_track('loans')") == 0
    conn.execute("insert into loans values ('L1', 'Ada', 250000, 3.5, x'00ff')")
    conn.execute("update loans set amount = 300000 where id = 'L1'")
    conn.execute("delete from loans where id = 'L1'")
    rows = conn.execute("select operation, record_id, version, hash is not null from sync_log order by id").fetchall()
    assert [(r[0], r[1]) for r in rows] == [("INSERT", "'L1'"), ("UPDATE", "'L1'"), ("DELETE", "'L1'")]

    # A stock sqlite3 CLI that never loads the extension.
    cli(db_path, "insert into loans values ('L2', 'Bob', 1000, 1.25, x'');\n"
                 "update loans set rate = 0.1 + 0.2 where id = 'L2';\n")
    # Debian's python3 sqlite3 module, no extension.
    system_python(
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1])\n"
        "c.execute(\"insert into loans values ('L3', 'Cy', -5, NULL, x'ff00')\")\n"
        "c.execute(\"delete from loans where id = 'L2'\")\n"
        "c.commit()\n",
        db_path,
    )
    ops = conn.execute("select operation, record_id from sync_log order by id").fetchall()
    assert ops[3:] == [("INSERT", "'L2'"), ("UPDATE", "'L2'"), ("INSERT", "'L3'"), ("DELETE", "'L2'")]

    assert one(conn, "select sync_seal()") == 7
    assert one(conn, "select sync_seal()") == 0
    log = conn.execute(
        "select id, operation, record_id, change_data, device_id, version, timestamp, hash from sync_log order by id"
    ).fetchall()
    assert [r[5] for r in log] == list(range(1, 8)), "versions are 1, 2, 3... per device"
    assert all(r[4] == dev for r in log)
    assert all(re.fullmatch(r"[0-9a-f]{64}", r[7]) for r in log)
    assert all(isinstance(r[6], int) for r in log), "timestamps are integers (microseconds)"
    assert all(b[6] > a[6] for a, b in zip(log, log[1:])), "timestamps increase"
    assert len({r[7] for r in log}) == 7
    for r in log:
        assert one(conn, "select sync_hash(?)", (r[0],)) == r[7]
    assert decode_row(log[0][3]) == {"id": "L1", "borrower": "Ada", "amount": 250000, "rate": 3.5, "doc": b"\x00\xff"}
    assert decode_row(log[1][3]) == {"amount": 300000}
    assert decode_row(log[4][3]) == {"rate": 0.1 + 0.2}
    assert decode_row(log[5][3]) == {"id": "L3", "borrower": "Cy", "amount": -5, "rate": None, "doc": b"\xff\x00"}
    v = json.loads(one(conn, "select sync_verify()"))
    assert v["ok"] is True and v["checked"] == 7 and v["failed"] == [], v
    assert json.loads(one(conn, "select sync_vector()")) == {dev: 7}


def test_status_reports_device_tables_log_conflicts_peers(db):
    db.execute(LOANS)
    db.execute("select sync_track('loans', 'manual')")
    db.execute("insert into loans values ('a', 'x', 1, 1.0, NULL)")
    st = json.loads(one(db, "select sync_status()"))
    text = json.dumps(st)
    assert one(db, "select sync_init()") in text
    assert "loans" in text and "manual" in text
    assert "peers" in st and st["peers"] == []
    pending = [v for k, v in st.items() if "conflict" in k]
    assert pending == [0], st
    assert one(db, "select sync_version()") in text or "version" in st


def test_verify_detects_tampering(db):
    db.execute(LOANS)
    db.execute("select sync_track('loans')")
    for i in range(5):
        db.execute("insert into loans values (?, 'b', ?, 0.5, NULL)", (f"L{i}", i))
    assert one(db, "select sync_seal()") == 5
    assert json.loads(one(db, "select sync_verify()"))["ok"] is True

    db.execute("update sync_log set change_data = replace(change_data, '\"amount\":2', '\"amount\":9') where id = 3")
    v = json.loads(one(db, "select sync_verify()"))
    assert v["ok"] is False and v["failed"] == [3], v

    db.execute("update sync_log set change_data = replace(change_data, '\"amount\":9', '\"amount\":2') where id = 3")
    assert json.loads(one(db, "select sync_verify()"))["ok"] is True, "restoring the row makes it verify again"

    # Dropping an entry breaks the origin's hash chain.
    db.execute("delete from sync_log where id = 2")
    v = json.loads(one(db, "select sync_verify()"))
    assert v["ok"] is False, v
    assert v["failed"] or v["problems"], v


def test_verify_detects_altered_hash_or_version(db):
    db.execute(LOANS)
    db.execute("select sync_track('loans')")
    for i in range(3):
        db.execute("insert into loans values (?, 'b', ?, 0.5, NULL)", (f"L{i}", i))
    db.execute("select sync_seal()")
    db.execute("update sync_log set timestamp = timestamp + 1 where id = 2")
    v = json.loads(one(db, "select sync_verify()"))
    assert v["ok"] is False and 2 in v["failed"], v


def test_cli_session_with_extension(db_path):
    """The issue's session typed into the sqlite3 CLI (with .load), checked from python afterwards."""
    p = cli(
        db_path,
        "select sync_init();\n" + LOANS + ";\n"
        "select sync_track('loans');\n"
        "insert into loans values ('L1', 'Ada', 250000, 3.5, x'00ff');\n"
        "update loans set amount = 300000 where id = 'L1';\n"
        "delete from loans where id = 'L1';\n"
        "select operation, record_id, version, hash is not null from sync_log;\n"
        "select sync_seal();\n"
        "select sync_verify();\n",
        load=True,
    )
    lines = p.stdout.splitlines()
    assert re.fullmatch(r"[0-9a-f]{32}", lines[0])
    assert lines[1:] == [
        "0",
        "INSERT|'L1'||0",
        "UPDATE|'L1'||0",
        "DELETE|'L1'||0",
        "3",
        '{"ok":true,"checked":3,"failed":[],"problems":[]}',
    ]


def test_loaded_connection_and_plain_connection_interleave(db_path):
    """Two open connections at once: one with the extension, one without; both writers are captured."""
    a = connect(db_path)
    a.execute("select sync_init()")
    a.execute(LOANS)
    a.execute("select sync_track('loans')")
    b = connect(db_path, load=False)
    for i in range(10):
        (a if i % 2 else b).execute("insert into loans values (?, 'x', ?, NULL, NULL)", (f"k{i}", i))
    b.execute("update loans set amount = amount * 10")
    with_fn = b.execute("select count(*) from pragma_function_list where name = 'sync_seal'").fetchone()[0]
    assert with_fn == 0, "the plain connection must not see the extension's functions"
    assert one(a, "select sync_seal()") == 19  # 10 inserts + 9 updates (k0: 0*10 is no change)
    rows = a.execute("select record_id, change_data from sync_log where operation = 'UPDATE' order by id").fetchall()
    assert [decode_row(c)["amount"] for _, c in rows] == [i * 10 for i in range(1, 10)], rows
    assert json.loads(one(a, "select sync_verify()"))["ok"] is True
