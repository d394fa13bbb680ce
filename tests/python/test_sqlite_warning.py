# tests/python/test_sqlite_warning.py: sync_sqlite_warning() and sync_status()'s sqlite_version / sqlite_warning name the WAL-reset bug of the host's SQLite (3.40.1 here: affected; apsw's: not).
import json
import subprocess
import sys

import pytest

from conftest import EXT, cli, connect, one


def test_debian_sqlite_3_40_1_is_affected(db):
    warning = one(db, "select sync_sqlite_warning()")
    assert warning.startswith("SQLite 3.40.1 (the library this connection uses) has the WAL-reset bug")
    assert "3.51.3" in warning and "3.50.7" in warning and "3.44.6" in warning and "sidecar" in warning
    status = json.loads(one(db, "select sync_status()"))
    assert status["sqlite_version"] == "3.40.1" and status["sqlite_warning"] == warning


def test_sqlite3_cli_sees_it_too(db_path):
    p = cli(db_path, "select sync_sqlite_warning() like 'SQLite 3.40.1 %WAL-reset%';", load=True)
    assert p.stdout.strip() == "1"


def test_needs_no_sync_init(tmp_path):
    conn = connect(tmp_path / "fresh.db")
    assert "WAL-reset" in one(conn, "select sync_sqlite_warning()")


def test_apsw_current_sqlite_is_not_affected(tmp_path):
    pytest.importorskip("apsw", reason="apsw is in tests/requirements.txt")
    code = (
        "import apsw, json, sys; c = apsw.Connection(sys.argv[1]); c.enable_load_extension(True); "
        "c.load_extension(sys.argv[2]); c.execute('select sync_init()').fetchall(); "
        "print(json.dumps([c.execute('select sync_sqlite_warning()').fetchall()[0][0], "
        "json.loads(c.execute('select sync_status()').fetchall()[0][0])['sqlite_warning'], apsw.sqlite_lib_version()]))"
    )
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a.db"), str(EXT)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    warning, in_status, version = json.loads(p.stdout)
    assert tuple(map(int, version.split("."))) >= (3, 51, 3)
    assert warning is None and in_status is None
