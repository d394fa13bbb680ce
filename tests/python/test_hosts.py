# tests/python/test_hosts.py: the extension loads in the 3.40.1 CLI, Debian's python3, apsw (newer SQLite); an older host gets a clean error.
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from conftest import EXT, HELPERS, SYSTEM_PYTHON, cli, one

FLOOR = "3.34.1"


def test_sqlite3_cli_3_40_1_loads(tmp_path):
    p = cli(tmp_path / "c.db", "select sqlite_version();\nselect sync_version();\nselect length(sync_init());\n", load=True)
    lines = p.stdout.splitlines()
    assert lines[0] == "3.40.1", f"expected Debian 12's sqlite3 3.40.1 CLI, got {lines[0]}"
    assert lines[1] and lines[2] == "32"


def test_debian_python_sqlite3_loads(tmp_path):
    code = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1])\n"
        "c.enable_load_extension(True)\n"
        "c.load_extension(sys.argv[2])\n"
        "print(sqlite3.sqlite_version, c.execute('select sync_version()').fetchone()[0], len(c.execute('select sync_init()').fetchone()[0]))\n"
    )
    p = subprocess.run([SYSTEM_PYTHON, "-c", code, str(tmp_path / "p.db"), str(EXT)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    version, _, n = p.stdout.split()
    assert version == "3.40.1" and n == "32"
    # the test process itself is that python (the venv is made from it)
    assert sqlite3.sqlite_version == "3.40.1"


def test_apsw_newer_sqlite_in_its_own_process(tmp_path):
    pytest.importorskip("apsw", reason="apsw is in tests/requirements.txt; install it with `make test-python`")
    p = subprocess.run(
        [sys.executable, str(HELPERS / "apsw_host.py"), str(tmp_path / "apsw.db"), str(EXT)],
        capture_output=True, text=True, timeout=120,
    )
    assert p.returncode == 0, f"apsw host exited {p.returncode}: {p.stderr}"
    out = json.loads(p.stdout)
    major, minor, _ = (int(x) for x in out["sqlite_version"].split("."))
    assert (major, minor) > (3, 40), f"apsw should bundle a newer SQLite than 3.40, has {out['sqlite_version']}"
    assert len(out["device"]) == 32
    assert out["track"] == 0
    assert out["session_log"] == [["INSERT", "'L1'", None, 0], ["UPDATE", "'L1'", None, 0], ["DELETE", "'L1'", None, 0]]
    assert out["problems"] == [], "\n".join(out["problems"])
    assert out["verify"]["ok"] is True
    assert out["trusted_off_captured"] == 1
    assert out["panic"] and "panic" in out["panic"] and "sync_debug_panic" in out["panic"]
    assert out["after_panic"] == 42
    assert out["error"] and "sync_track" in out["error"] and "nope" in out["error"]
    assert out["applied"] > 0 and out["second_equal"] is True


# ---- a host older than the floor: SQLite 3.31.1, built from the amalgamation that the npm package
# sqlite3@5.0.0 ships (deps/sqlite-autoconf-3310100.tar.gz, with its shell.c). Built once and cached.
OLD_NPM_PACKAGE = "sqlite3@5.0.0"
OLD_VERSION = "3.31.1"


def old_sqlite_cli():
    cache = Path(os.environ.get("PEERSYNC_TEST_CACHE", Path.home() / ".cache" / "peersync-tests"))
    exe = cache / f"sqlite3-{OLD_VERSION}"
    if exe.exists():
        return exe
    for tool in ("npm", "gcc"):
        if not shutil.which(tool):
            pytest.skip(f"cannot build an old SQLite host: `{tool}` is not installed")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        p = subprocess.run(["npm", "pack", OLD_NPM_PACKAGE, "--pack-destination", tmp, "--silent"],
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            pytest.skip(f"cannot download {OLD_NPM_PACKAGE} from npm for an old SQLite host: {p.stderr.strip()[:300]}")
        pkg = next(Path(tmp).glob("*.tgz"))
        with tarfile.open(pkg) as t:
            member = next(m for m in t.getmembers() if "sqlite-autoconf-" in m.name and m.name.endswith(".tar.gz"))
            t.extract(member, tmp)  # trusted registry content; 3.11.2 has no extraction filter
        with tarfile.open(Path(tmp) / member.name) as t:
            t.extractall(tmp)
        src = next(Path(tmp).glob("sqlite-autoconf-*"))
        out = exe.with_suffix(".tmp")
        p = subprocess.run(
            ["gcc", "-O1", "-DSQLITE_THREADSAFE=0", "-o", str(out), "shell.c", "sqlite3.c", "-ldl", "-lm"],
            cwd=src, capture_output=True, text=True, timeout=600,
        )
        assert p.returncode == 0, f"building SQLite {OLD_VERSION} failed: {p.stderr[-2000:]}"
        out.rename(exe)
    return exe


def test_host_older_than_floor_gets_a_clear_load_error(tmp_path):
    exe = old_sqlite_cli()
    v = subprocess.run([str(exe), "-version"], capture_output=True, text=True, timeout=30)
    assert v.stdout.startswith(OLD_VERSION), v.stdout
    p = subprocess.run(
        [str(exe), str(tmp_path / "old.db")],
        input=f".load {EXT}\nselect 'host still alive', sqlite_version();\nselect sync_version();\n",
        capture_output=True, text=True, timeout=60,
    )
    assert p.returncode >= 0, f"the old host was killed by signal {-p.returncode} (must be a clean load error)"
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert p.stdout.splitlines() == [f"host still alive|{OLD_VERSION}"], p.stdout
    assert FLOOR in p.stderr and OLD_VERSION in p.stderr, p.stderr
    assert "peersync" in p.stderr, p.stderr
    # the extension's functions were not registered
    assert "no such function: sync_version" in p.stderr, p.stderr
