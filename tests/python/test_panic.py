# tests/python/test_panic.py: a panic inside a function is a SQL error mentioning "panic"; the host process and connection survive.
# sync_debug_panic() exists only in the test build of the extension (`make ext-test`), never in dist/.
import sqlite3
import subprocess

import pytest

from conftest import TEST_EXT, connect, one


@pytest.fixture
def db(tmp_path):
    """A fresh database with the test build of the extension loaded and sync_init() run."""
    conn = connect(tmp_path / "test.db", ext=TEST_EXT)
    conn.execute("select sync_init()")
    yield conn
    conn.close()


def test_the_release_build_has_no_debug_panic(tmp_path):
    conn = connect(tmp_path / "r.db")
    with pytest.raises(sqlite3.OperationalError, match="no such function: sync_debug_panic"):
        conn.execute("select sync_debug_panic()")
    assert one(conn, "select length(sync_version()) > 0") == 1


def test_panic_is_an_sql_error_and_connection_keeps_working(db):
    db.execute("create table t(id text primary key, v)")
    db.execute("select sync_track('t')")
    for _ in range(3):
        with pytest.raises(sqlite3.OperationalError) as e:
            db.execute("select sync_debug_panic()")
        assert "panic" in str(e.value) and str(e.value).startswith("sync_debug_panic"), str(e.value)
    db.execute("insert into t values ('a', 1)")
    assert one(db, "select sync_seal()") == 1
    assert one(db, "select 1 + 1") == 2


def test_panic_inside_a_transaction_leaves_it_usable(db):
    db.execute("create table t(id text primary key, v)")
    db.execute("select sync_track('t')")
    db.execute("begin")
    db.execute("insert into t values ('a', 1)")
    with pytest.raises(sqlite3.OperationalError):
        db.execute("select sync_debug_panic()")
    db.execute("insert into t values ('b', 2)")
    db.execute("commit")
    assert one(db, "select count(*) from t") == 2
    assert one(db, "select sync_seal()") == 2


def test_panic_in_the_sqlite3_cli_does_not_kill_it(tmp_path):
    p = subprocess.run(
        ["sqlite3", str(tmp_path / "p.db")],
        input=f".load {TEST_EXT}\nselect sync_debug_panic();\nselect 'alive';\nselect sync_debug_panic();\nselect 'still alive';\n",
        capture_output=True, text=True, timeout=60,
    )
    assert p.returncode == 1, (p.returncode, p.stderr)  # the CLI reports the error, it is not killed by a signal
    assert p.stdout.splitlines() == ["alive", "still alive"]
    assert p.stderr.count("panic") >= 2 and "sync_debug_panic" in p.stderr, p.stderr
