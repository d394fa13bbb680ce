"""The wheel, installed into a fresh venv made from Debian's python3: load() into each host,
the helpers, the WAL-reset warning, the console script and `python -m peersync`, and the clear
error on a Python that cannot load extensions."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import HERE, ROOT, VENV_BIN, check_host_report, py_json, run, workspace_version

import peersync


def test_wheel_is_manylinux_and_holds_the_binaries():
    wheels = list((ROOT / "dist").glob("peersync-*.whl"))
    assert len(wheels) == 1, wheels
    assert f"peersync-{workspace_version()}-py3-none-manylinux" in wheels[0].name
    assert wheels[0].name.endswith("_x86_64.whl")
    assert os.path.isfile(peersync.loadable_path()) and peersync.loadable_path().endswith("/peersync/lib/peersync.so")
    assert os.access(peersync.binary_path(), os.X_OK)
    assert "site-packages" in peersync.loadable_path()  # the installed wheel, not the source tree


@pytest.mark.parametrize("host", ["sqlite3", "apsw", "sqlite_utils"])
def test_load_helpers_and_conflict(host):
    out, _ = py_json(str(HERE / "helpers/py_host.py"), host)
    check_host_report(out)
    sqlite_version = out["status"]["sqlite_version"]
    if host == "apsw":  # apsw bundles a current SQLite: no warning
        assert tuple(map(int, sqlite_version.split("."))) >= (3, 51, 3)
        assert out["status"]["sqlite_warning"] is None and out["warnings"] == []
    else:  # Debian's libsqlite3 3.40.1 has the WAL-reset bug
        assert sqlite_version == "3.40.1"
        warning = out["status"]["sqlite_warning"]
        assert "SQLite 3.40.1" in warning and "WAL-reset" in warning and "3.51.3" in warning
        assert out["warnings"] == [{"category": "PeersyncWarning", "message": "peersync: " + warning}] * 2


def test_warning_is_a_python_warning_with_its_category():
    load = "import sqlite3, peersync; peersync.load(sqlite3.connect(':memory:'))"
    p = run([sys.executable, "-c", load])  # shown once on stderr by Python's default filter
    assert p.stderr.count("PeersyncWarning: peersync: SQLite 3.40.1") == 1, p.stderr
    p = run([sys.executable, "-c", "import warnings, peersync; warnings.simplefilter('error', peersync.PeersyncWarning); " + load],
            check=False)  # an app can make it an error (or silence it) by its category
    assert p.returncode == 1 and "peersync.PeersyncWarning: peersync: SQLite 3.40.1" in p.stderr, p.stderr


def test_console_script_and_python_m_run_the_sidecar(tmp_path):
    version = workspace_version()
    for argv in ([str(VENV_BIN / "peersync"), "--version"], [sys.executable, "-m", "peersync", "--version"]):
        assert run(argv).stdout.strip() == f"peersync {version}"
    env = dict(os.environ, HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"))
    db = tmp_path / "app.db"
    p = run([sys.executable, "-m", "peersync", "init", "--db", str(db), "--name", "laptop"], env=env)
    assert "device id" in p.stdout.lower() or len(p.stdout) > 0
    st = run([str(VENV_BIN / "peersync"), "status", "--db", str(db)], env=env).stdout
    assert "sqlite:    3.5" in st and "free of the WAL-reset bug" in st  # the sidecar's bundled SQLite
    # an error's exit status comes through
    assert run([sys.executable, "-m", "peersync", "status", "--db", str(tmp_path / "none.db")], check=False).returncode == 1


def test_a_python_without_extension_loading_gets_a_clear_error(tmp_path):
    """pyenv's python3 here is built without --enable-loadable-sqlite-extensions."""
    pyenv = shutil.which("python3", path=os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if str(VENV_BIN) not in p))
    candidates = [p for p in [os.path.expanduser("~/.pyenv/shims/python3"), pyenv] if p and os.path.exists(p)]
    host = None
    for c in candidates:
        q = subprocess.run([c, "-c", "import sqlite3; sqlite3.connect(':memory:').enable_load_extension"], capture_output=True)
        if q.returncode != 0:
            host = c
            break
    if host is None:
        pytest.skip("no Python without extension loading on this machine")
    # the installed package, imported by that Python (it is pure Python around the binaries)
    site = os.path.dirname(os.path.dirname(peersync.__file__))
    p = run([host, "-c", "import sqlite3, peersync; peersync.load(sqlite3.connect(':memory:'))"],
            check=False, env=dict(os.environ, PYTHONPATH=site))
    assert p.returncode == 1
    assert "peersync.PeersyncError: peersync: this Python's sqlite3 module cannot load extensions" in p.stderr
    assert "--enable-loadable-sqlite-extensions" in p.stderr and "pip install apsw" in p.stderr


def test_readme_quick_start_runs(tmp_path):
    """README's quick start: `peersync init` and `track` (the installed command), then its Python block."""
    readme = (ROOT / "README.md").read_text()
    quick = readme[readme.index("## Quick start"):]
    block = quick[quick.index("```python\n") + len("```python\n"):]
    block = block[:block.index("```\n")]
    env = dict(os.environ, HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"))
    run(["sqlite3", str(tmp_path / "app.db"), "create table notes(id text primary key, body text)"])
    run([str(VENV_BIN / "peersync"), "init", "--db", "app.db", "--name", "laptop"], cwd=tmp_path, env=env)
    run([str(VENV_BIN / "peersync"), "track", "--db", "app.db", "notes"], cwd=tmp_path, env=env)
    p = run([sys.executable, "-c", block], cwd=tmp_path, env=env)
    assert p.stdout == "0\n" and "PeersyncWarning" in p.stderr


def test_types_check_with_mypy():
    """The package is typed (py.typed): mypy --strict accepts it and an app's use of it, and
    refuses a wrong use."""
    run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "-p", "peersync"])
    run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(HERE / "helpers/types_check.py")])
    p = run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "-c",
             "import peersync\nx: int = peersync.loadable_path()"], check=False)
    assert p.returncode == 1 and "Incompatible types in assignment" in p.stdout, p.stdout
