# tests/python/conftest.py: shared helpers and fixtures for the Python tests (paths, loading the extension, value codec).
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXT = ROOT / "dist" / "peersync"  # load_extension adds the .so
SO = ROOT / "dist" / "peersync.so"
# The test build (`make ext-test`): the same functions plus sync_debug_panic(), which panics.
TEST_EXT = ROOT / "target" / "test-ext" / "peersync"
HELPERS = Path(__file__).resolve().parent / "helpers"
SQLITE3_CLI = "sqlite3"
# Debian's python3: its sqlite3 module is SQLite 3.40.1 and can load extensions.
SYSTEM_PYTHON = "/usr/bin/python3"


def pytest_sessionstart(session):
    if not SO.exists():
        pytest.exit(f"{SO} is missing: run `make ext` first", returncode=2)


def connect(path, load=True, ext=EXT):
    """A stdlib sqlite3 connection in autocommit mode, with the extension `ext` loaded if `load`."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    if load:
        conn.enable_load_extension(True)
        conn.load_extension(str(ext))
        conn.enable_load_extension(False)
    return conn


@pytest.fixture
def db(tmp_path):
    """A fresh database with the extension loaded and sync_init() run."""
    conn = connect(tmp_path / "test.db")
    conn.execute("select sync_init()")
    yield conn
    conn.close()


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "test.db"


def one(conn, sql, params=()):
    return conn.execute(sql, params).fetchone()[0]


def cli(db_path, sql, *, load=False, check=True, cmd=None, timeout=60):
    """Runs `sql` through the real sqlite3 CLI (stock unless load=True); returns the CompletedProcess."""
    script = (f".load {EXT}\n" if load else "") + sql
    args = [SQLITE3_CLI]
    if cmd:
        args += ["-cmd", cmd]
    args.append(str(db_path))
    p = subprocess.run(args, input=script, capture_output=True, text=True, timeout=timeout)
    if check and (p.returncode != 0 or p.stderr):
        raise AssertionError(f"sqlite3 CLI failed ({p.returncode}): {p.stderr}\n--- script:\n{script}")
    return p


def system_python(code, *args, check=True, timeout=60):
    """Runs `code` with Debian's /usr/bin/python3 (stdlib sqlite3, no extension unless the code loads it)."""
    p = subprocess.run([SYSTEM_PYTHON, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"/usr/bin/python3 failed ({p.returncode}): {p.stderr}")
    return p


from codec import decode, decode_row, loads, same, show  # noqa: E402,F401  (re-exported for the tests)


def table_rows(conn, table):
    """All rows of `table` as (typeof..., value...) tuples, sorted, for exact comparison."""
    cols = [r[1] for r in conn.execute(f"select * from pragma_table_info({quote_lit(table)})")]
    sel = ", ".join(f"typeof({quote_ident(c)}), {quote_ident(c)}" for c in cols)
    rows = conn.execute(f"select {sel} from {quote_ident(table)}").fetchall()
    return sorted(
        tuple(show(v) if i % 2 else v for i, v in enumerate(r)) for r in rows
    )


def quote_ident(name):
    return '"' + name.replace('"', '""') + '"'


def quote_lit(s):
    return "'" + s.replace("'", "''") + "'"


def snapshot(conn):
    """Everything a failed call must leave as it was: the schema, the sync tables, the user tables."""
    snap = {"master": conn.execute("select type, name, tbl_name, sql from sqlite_master order by 1, 2").fetchall()}
    for (name,) in conn.execute("select name from sqlite_master where type = 'table' order by name").fetchall():
        snap[name] = sorted(conn.execute(f"select * from {quote_ident(name)}").fetchall(), key=repr)
    return snap


def copy_via_sync(src, dst):
    """Applies everything `src` holds to `dst` with sync_changes/sync_apply, paging on has_more."""
    since = one(dst, "select sync_vector()")
    total = 0
    for _ in range(1000):
        batch = one(src, "select sync_changes(?)", (since,))
        res = json.loads(one(dst, "select sync_apply(?)", (batch,)))
        total += res["accepted"]
        assert res["conflicts"] == [], res
        if not json.loads(batch)["has_more"]:
            return total
        since = one(dst, "select sync_vector()")
    raise AssertionError("sync_changes kept saying has_more")
