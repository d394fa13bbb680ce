# tests/python/test_values.py: every SQLite value round-trips exactly through change_data and sync_apply, whoever writes it.
import json
import math
import struct

import pytest

from conftest import HELPERS, SYSTEM_PYTHON, cli, connect, copy_via_sync, decode_row, loads, one, same, show, table_rows
from values import CASES, sql_expr

SCHEMA = [
    "create table v(id integer primary key, name text, x)",
    "create table u(id integer primary key, name text, x)",
]


def make_db(path):
    conn = connect(path)
    conn.execute("select sync_init()")
    for s in SCHEMA:
        conn.execute(s)
    conn.execute("select sync_track('v')")
    conn.execute("select sync_track('u')")
    return conn


def write_python(conn, path):
    for i, (name, value, _) in enumerate(CASES):
        conn.execute("insert into v(id, name, x) values (?, ?, ?)", (i, name, value))
        conn.execute("insert into u(id, name, x) values (?, ?, 'placeholder')", (i, name))
        conn.execute("update u set x = ? where id = ?", (value, i))


def write_cli(conn, path):
    lines = []
    for i, case in enumerate(CASES):
        name, expr = case[0], sql_expr(case)
        lines.append(f"insert into v(id, name, x) values ({i}, '{name}', {expr});")
        lines.append(f"insert into u(id, name, x) values ({i}, '{name}', 'placeholder');")
        lines.append(f"update u set x = {expr} where id = {i};")
    cli(path, "\n".join(lines) + "\n")  # stock sqlite3 3.40.1, never loads the extension


def write_system_python(conn, path):
    import subprocess

    subprocess.run([SYSTEM_PYTHON, str(HELPERS / "write_values.py"), str(path)], check=True, timeout=60)


WRITERS = {"python+ext": write_python, "sqlite3-cli": write_cli, "python-no-ext": write_system_python}


def logged_values(conn, table, op):
    """{record_id: value of x} from the sealed log rows of `table` with operation `op`."""
    out = {}
    for rid, data in conn.execute(
        "select record_id, change_data from sync_log where table_name = ? and operation = ? order by id", (table, op)
    ):
        row = decode_row(data)
        assert "x" in row, (rid, data)
        out[int(rid)] = row["x"]
    return out


@pytest.mark.parametrize("writer", list(WRITERS))
def test_values_round_trip(tmp_path, writer):
    conn = make_db(tmp_path / "a.db")
    WRITERS[writer](conn, tmp_path / "a.db")
    n = len(CASES)
    assert one(conn, "select sync_seal()") == 3 * n
    table = dict(conn.execute("select id, x from v"))
    inserted = logged_values(conn, "v", "INSERT")
    updated = logged_values(conn, "u", "UPDATE")
    problems = []
    for i, (name, value, _) in enumerate(CASES):
        held = table[i]
        if not same(held, value):
            problems.append(f"{name}: table holds {show(held)}, written {show(value)}")
        if not same(inserted[i], held):
            problems.append(f"{name}: INSERT logged {show(inserted[i])}, table holds {show(held)}")
        if not same(updated[i], held):
            problems.append(f"{name}: UPDATE logged {show(updated[i])}, table holds {show(held)}")
    assert not problems, "\n".join(problems)
    # The typeof() SQLite reports agrees with the decoded type.
    for i, t in conn.execute("select id, typeof(x) from v"):
        assert {"null": type(None), "integer": int, "real": float, "text": str, "blob": bytes}[t] is type(table[i])

    second = make_db(tmp_path / "b.db")
    assert copy_via_sync(conn, second) == 3 * n
    for t in ("v", "u"):
        assert table_rows(second, t) == table_rows(conn, t), t
    assert one(second, "select count(*) from sync_log where device_id = sync_init()") == 0
    assert json.loads(one(second, "select sync_verify()"))["ok"] is True


def test_real_encoding_is_shortest_round_trip_text(db):
    """Reals are written as the shortest text that reads back to the same bits, always with '.' or an exponent."""
    db.execute("create table r(id integer primary key, x)")
    db.execute("select sync_track('r')")
    reals = [0.1, 0.1 + 0.2, 5e-324, 1e308, -0.0, 3.0, 1 / 3, 2.0**-1074 * 3, 123456789.0, 1e16, 1e-7, -1.5]
    for i, x in enumerate(reals):
        db.execute("insert into r values (?, ?)", (i, x))
    db.execute("select sync_seal()")
    for i, data in db.execute("select record_id, change_data from sync_log order by id"):
        text = data[data.index('"x":') + 4 : -1]
        x = reals[int(i)]
        assert any(c in text for c in ".eE"), text
        assert struct.pack(">d", float(text)) == struct.pack(">d", x), (text, x)
        digits = lambda s: len(s.lower().split("e")[0].replace("-", "").replace(".", "").strip("0"))  # noqa: E731
        assert digits(text) <= digits(repr(x)), f"{text} is longer than the shortest {repr(x)}"


def test_nan_is_stored_as_null_and_logged_as_null(db):
    db.execute("create table n(id integer primary key, x, r real)")
    db.execute("select sync_track('n')")
    db.execute("insert into n values (1, ?, ?)", (math.nan, math.nan))
    db.execute("select sync_seal()")
    assert db.execute("select typeof(x), typeof(r) from n").fetchone() == ("null", "null")
    assert decode_row(one(db, "select change_data from sync_log")) == {"id": 1, "x": None, "r": None}


def test_real_column_affinity_log_holds_what_table_holds(db):
    """In a REAL column SQLite may store -0.0 as 0.0 and 1 as 1.0: the log must hold what the table holds."""
    db.execute("create table t(id integer primary key, r real, i integer, s text, n numeric)")
    db.execute("select sync_track('t')")
    rows = [(1, -0.0, 1.0, 5, "1e3"), (2, 1, "7", 0.5, -0.0), (3, "0.25", 2.5, b"\x00", "x"), (4, 2**63 - 1, 0.1, "", 12.0)]
    db.executemany("insert into t values (?, ?, ?, ?, ?)", rows)
    db.execute("select sync_seal()")
    held = {r[0]: r for r in db.execute("select id, r, i, s, n from t")}
    for rid, data in db.execute("select record_id, change_data from sync_log order by id"):
        got = decode_row(data)
        want = dict(zip(["id", "r", "i", "s", "n"], held[int(rid)]))
        for k in want:
            assert same(got[k], want[k]), (rid, k, show(got[k]), show(want[k]))


def test_change_data_is_valid_json_with_no_nan_or_infinity_tokens(db):
    db.execute("create table t(id integer primary key, x)")
    db.execute("select sync_track('t')")
    db.executemany("insert into t values (?, ?)", [(1, math.inf), (2, -math.inf), (3, math.nan), (4, 1e308 * 10)])
    db.execute("select sync_seal()")
    for (data,) in db.execute("select change_data from sync_log"):
        json.loads(data, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c} in {data}"))
        loads(data)
