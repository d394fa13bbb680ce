# tests/python/test_clock_and_hash.py: hybrid logical clock (stamps pass received ones, survive a wall clock behind) and README's hash encoding.
import hashlib
import json
import shutil
import subprocess

import pytest

from conftest import EXT, cli, connect, one


def faketime_cli(db_path, sql, offset):
    if not shutil.which("faketime"):
        pytest.skip("faketime is not installed (tests/apt-packages.txt lists it)")
    p = subprocess.run(["faketime", "-f", offset, "sqlite3", str(db_path)], input=f".load {EXT}\n{sql}",
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and not p.stderr, p.stderr
    return p.stdout


SCHEMA = "create table t(id text primary key, v)"


def test_stamps_exceed_received_timestamps_when_wall_clock_is_behind(tmp_path):
    ahead = tmp_path / "ahead.db"
    out = faketime_cli(ahead, f"select sync_init();\n{SCHEMA};\nselect sync_track('t');\n"
                              "insert into t values ('x', 'from the future');\nselect sync_seal();\n"
                              "select timestamp from sync_log;\n", "+2h")
    ts_ahead = int(out.split()[-1])
    b = connect(tmp_path / "b.db")
    b.execute("select sync_init()")
    b.execute(SCHEMA)
    b.execute("select sync_track('t')")
    wall_b = one(b, "select cast((julianday('now') - 2440587.5) * 86400000000.0 as integer)")
    assert ts_ahead > wall_b + 3600 * 10**6, "faketime did not move the other device's clock ahead"
    a = connect(ahead)
    res = json.loads(one(b, "select sync_apply(?)", (one(a, "select sync_changes('{}')"),)))
    assert res["accepted"] == 1
    # a write through the extension's connection
    b.execute("update t set v = 'edited after seeing it' where id = 'x'")
    # and one from a client that never loaded the extension (its trigger reads B's wall clock)
    cli(tmp_path / "b.db", "insert into t values ('y', 'plain client');\n")
    assert one(b, "select sync_seal()") == 2
    mine = b.execute("select timestamp from sync_log where device_id = sync_init() order by id").fetchall()
    assert [m[0] > ts_ahead for m in mine] == [True, True], (mine, ts_ahead)
    # the edit made after seeing the other's wins there too (timestamp_wins)
    res = json.loads(one(a, "select sync_apply(?)", (one(b, "select sync_changes(?)", (one(a, "select sync_vector()"),)),)))
    assert res["accepted"] == 2
    assert a.execute("select * from t order by id").fetchall() == [("x", "edited after seeing it"), ("y", "plain client")]


def test_own_stamps_keep_increasing_when_the_wall_clock_goes_back(tmp_path):
    path = tmp_path / "c.db"
    faketime_cli(path, f"select sync_init();\n{SCHEMA};\nselect sync_track('t');\n"
                       "insert into t values ('a', 1);\nselect sync_seal();\n", "+1d")
    cli(path, "insert into t values ('b', 2);\nupdate t set v = 3 where id = 'a';\n")  # stock CLI, today
    c = connect(path)
    assert one(c, "select sync_seal()") == 2
    ts = [r[0] for r in c.execute("select timestamp from sync_log order by id")]
    assert ts[0] < ts[1] < ts[2], ts


# ---- README "Formats / Hash": SHA-256 over netstrings `<len>:<bytes>,` of: "peersync-v1", table_name,
# record_id, operation, change_data, device_id, version, timestamp, bases, resolution (1/0), previous hash
# of the same origin ("" for version 1). Implemented here independently of the engine.
def netstring(s):
    b = s.encode()
    return str(len(b)).encode() + b":" + b + b","


def readme_hash(row, prev):
    fields = ["peersync-v1", row["table_name"], row["record_id"], row["operation"], row["change_data"],
              row["device_id"], str(row["version"]), str(row["timestamp"]), row["bases"],
              "1" if row["resolution"] else "0", prev]
    return hashlib.sha256(b"".join(netstring(f) for f in fields)).hexdigest()


def test_hashes_follow_the_documented_encoding(tmp_path):
    a = connect(tmp_path / "a.db")
    a.execute("select sync_init()")
    a.execute("create table \"t 'x'\"(id text primary key, v, w)")
    a.execute("select sync_track('t ''x''')")
    a.executemany("insert into \"t 'x'\" values (?, ?, ?)", [("k1", 1, "漢字"), ("k'2", 0.1 + 0.2, b"\x00")])
    a.execute("update \"t 'x'\" set v = 5 where id = 'k1'")
    a.execute("delete from \"t 'x'\" where id = 'k''2'")
    a.execute("select sync_seal()")
    # a second origin's changes, relayed into a
    b = connect(tmp_path / "b.db")
    b.execute("select sync_init()")
    b.execute("create table \"t 'x'\"(id text primary key, v, w)")
    b.execute("select sync_track('t ''x''')")
    b.execute("insert into \"t 'x'\" values ('b1', 'from b', NULL)")
    b.execute("update \"t 'x'\" set w = 'w' where id = 'b1'")
    a.execute("select sync_apply(?)", (one(b, "select sync_changes('{}')"),))
    cur = a.execute("select * from sync_log order by device_id, version")
    rows = [dict(zip([d[0] for d in cur.description], r)) for r in cur.fetchall()]
    assert len(rows) == 6 and len({r["device_id"] for r in rows}) == 2
    prev = {}
    for r in rows:
        want = readme_hash(r, prev.get(r["device_id"], ""))
        assert r["hash"] == want, f"log row {r['id']} ({r['operation']} {r['record_id']}) does not hash as README documents"
        assert one(a, "select sync_hash(?)", (r["id"],)) == want
        prev[r["device_id"]] = r["hash"]
