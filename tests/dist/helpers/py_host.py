"""Runs in the fresh venv with the installed wheel: loads peersync into one host (argv[1]:
sqlite3, apsw or sqlite_utils), makes a conflict between two databases and settles it through the
package's helpers; prints what it saw as JSON. One host per process: one .so loaded into two
SQLite libraries in one process is unsafe (FACTS)."""
import json
import sys
import tempfile
import warnings

import peersync

host = sys.argv[1]
out = {"version": peersync.__version__, "loadable_path": peersync.loadable_path()}
tmp = tempfile.mkdtemp()


def connect(name):
    path = f"{tmp}/{name}.db"
    if host == "sqlite3":
        import sqlite3

        conn = sqlite3.connect(path, isolation_level=None)
    elif host == "apsw":
        import apsw

        conn = apsw.Connection(path)
    else:
        import sqlite3

        import sqlite_utils

        conn = sqlite_utils.Database(sqlite3.connect(path, isolation_level=None))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        peersync.load(conn)
    out.setdefault("warnings", []).extend(
        {"category": w.category.__name__, "message": str(w.message)} for w in seen
    )
    return conn


def raw(conn):
    return conn.conn if host == "sqlite_utils" else conn


def one(conn, sql, params=()):
    return raw(conn).execute(sql, params).fetchone()[0]


a, b = connect("a"), connect("b")
out["sync_version"] = one(a, "select sync_version()")
# load() enables extension loading only for its call
try:
    one(a, "select load_extension(?)", (peersync.loadable_path(),))
    out["load_extension_after"] = "allowed"
except Exception as e:
    out["load_extension_after"] = str(e)
for conn in (a, b):
    one(conn, "select sync_init()")
    raw(conn).execute("create table notes(id text primary key, body text)")
if host == "sqlite_utils":
    a["notes"].insert({"id": "n1", "body": "first"})  # the app writes through sqlite-utils
else:
    raw(a).execute("insert into notes values ('n1', 'first')")
one(a, "select sync_track('notes', 'manual')")
one(b, "select sync_track('notes')")


def send(src, dst):
    batch = one(src, "select sync_changes(?)", (one(dst, "select sync_vector()"),))
    return json.loads(one(dst, "select sync_apply(?)", (batch,)))


send(a, b)
raw(a).execute("update notes set body = 'from a' where id = 'n1'")
raw(b).execute("update notes set body = 'from b' where id = 'n1'")
send(a, b)
st = peersync.status(b)
out["status"] = {k: st[k] for k in ("version", "sqlite_version", "sqlite_warning", "conflicts_pending")}
pending = peersync.conflicts(b)
out["conflicts"] = [{k: c[k] for k in ("table_name", "record_id", "kind", "columns", "local_data", "remote_data", "status")} for c in pending]
out["resolved"] = peersync.resolve(b, pending[0]["id"], "remote")
out["body_after"] = one(b, "select body from notes where id = 'n1'")
out["pending_after"] = len(peersync.conflicts(b))
out["all_after"] = [c["status"] for c in peersync.conflicts(b, None)]
print(json.dumps(out))
