# tests/python/helpers/apsw_host.py: runs the capture checks inside apsw (its own, newer SQLite) in a process of its own; prints JSON.
# (Loading the extension into two SQLite libraries in one process crashes, so this never touches the stdlib sqlite3.)
import json
import sys
from pathlib import Path

import apsw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from codec import decode_row, same, show  # noqa: E402
from values import CASES  # noqa: E402

db_path, ext = sys.argv[1], sys.argv[2]
out = {"sqlite_version": apsw.sqlite_lib_version(), "problems": []}
c = apsw.Connection(db_path)
c.enable_load_extension(True)
c.load_extension(ext)


def q(sql, *params):
    return c.execute(sql, params).fetchall()


def one(sql, *params):
    return q(sql, *params)[0][0]


out["device"] = one("select sync_init()")
out["version"] = one("select sync_version()")
q("create table loans(id text primary key, borrower text, amount integer, rate real, doc blob)")
out["track"] = one("select sync_track('loans')")
q("insert into loans values ('L1', 'Ada', 250000, 3.5, x'00ff')")
q("update loans set amount = 300000 where id = 'L1'")
q("delete from loans where id = 'L1'")
out["session_log"] = [list(r) for r in q("select operation, record_id, version, hash is not null from sync_log")]

# values
q("create table v(id integer primary key, name text, x)")
q("select sync_track('v')")
for i, (name, value, _) in enumerate(CASES):
    q("insert into v values (?, ?, ?)", i, name, value)
out["sealed"] = one("select sync_seal()")
held = dict(q("select id, x from v"))
for rid, data in q("select record_id, change_data from sync_log where table_name = 'v' order by id"):
    i = int(rid)
    got = decode_row(data)["x"]
    if not same(held[i], CASES[i][1]):
        out["problems"].append(f"{CASES[i][0]}: table holds {show(held[i])}")
    if not same(got, held[i]):
        out["problems"].append(f"{CASES[i][0]}: logged {show(got)}, table holds {show(held[i])}")
out["verify"] = json.loads(one("select sync_verify()"))

# trusted_schema=OFF
q("pragma trusted_schema = OFF")
q("insert into loans values ('L2', 'Bob', 1, 0.1, NULL)")
out["trusted_off_captured"] = one("select count(*) from sync_log where record_id = ?", "'L2'")

# panic
try:
    q("select sync_debug_panic()")
    out["panic"] = None
except apsw.Error as e:
    out["panic"] = str(e)
out["after_panic"] = one("select 40 + 2")

# errors name the function
try:
    q("select sync_track('nope')")
    out["error"] = None
except apsw.Error as e:
    out["error"] = str(e)

# a batch from apsw applies to a second apsw database
c2 = apsw.Connection(db_path + ".2")
c2.enable_load_extension(True)
c2.load_extension(ext)
c2.execute("select sync_init()").fetchall()
c2.execute("create table loans(id text primary key, borrower text, amount integer, rate real, doc blob)").fetchall()
c2.execute("create table v(id integer primary key, name text, x)").fetchall()
c2.execute("select sync_track('loans')").fetchall()
c2.execute("select sync_track('v')").fetchall()
res = json.loads(c2.execute("select sync_apply(?)", (one("select sync_changes('{}')"),)).fetchall()[0][0])
out["applied"] = res["accepted"]
rows1 = [tuple(show(v) for v in r) for r in q("select * from v order by id")]
rows2 = [tuple(show(v) for v in r) for r in c2.execute("select * from v order by id").fetchall()]
out["second_equal"] = rows1 == rows2
print(json.dumps(out))
