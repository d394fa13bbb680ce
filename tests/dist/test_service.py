"""`peersync service print|install` through the installed console script: a systemd user unit that
`systemd-analyze verify` accepts and whose command really serves, a launchd plist, absolute paths,
installed only into the test's own HOME / XDG_CONFIG_HOME (nothing is enabled or started)."""
import os
import plistlib
import shlex
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import VENV_BIN, run

import peersync


@pytest.fixture
def home(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"))
    env.pop("PEERSYNC_DB", None)
    (tmp_path / "my data").mkdir()
    run([str(VENV_BIN / "peersync"), "init", "--db", str(tmp_path / "my data/notes.db"), "--name", "laptop"], env=env)
    return tmp_path, env


def peersync_cli(home, *args, check=True):
    tmp, env = home
    return run([str(VENV_BIN / "peersync"), *args], cwd=tmp, env=env, check=check)


def exec_start(unit):
    line = next(l for l in unit.splitlines() if l.startswith("ExecStart="))
    return shlex.split(line[len("ExecStart="):].replace("%%", "%"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_print_shows_the_unit_and_writes_nothing(home):
    tmp, _ = home
    unit = peersync_cli(home, "service", "print", "--db", "my data/notes.db", "--manager", "systemd", "--", "--interval", "60").stdout
    key = next((tmp / "config/peersync").glob("*.pem"))
    assert exec_start(unit) == [os.path.realpath(peersync.binary_path()), "serve", "--db", str(tmp / "my data/notes.db"),
                                "--key", str(key), "--listen", "127.0.0.1:8080", "--interval", "60"]
    assert "[Install]\nWantedBy=default.target" in unit and "Restart=on-failure" in unit
    assert not (tmp / "config/systemd").exists()


def test_install_writes_a_unit_that_verifies_and_serves(home):
    tmp, env = home
    port = free_port()
    p = peersync_cli(home, "service", "install", "--db", "my data/notes.db", "--manager", "systemd", "--listen", f"127.0.0.1:{port}")
    unit_file = tmp / "config/systemd/user/peersync-notes.service"
    assert p.stdout.startswith(f"wrote {unit_file} ")
    assert "systemctl --user enable --now peersync-notes.service" in p.stdout and "loginctl enable-linger" in p.stdout
    unit = unit_file.read_text()
    printed = peersync_cli(home, "service", "print", "--db", str(tmp / "my data/notes.db"), "--manager", "systemd",
                           "--listen", f"127.0.0.1:{port}").stdout
    assert unit == printed
    if shutil.which("systemd-analyze"):
        v = run(["systemd-analyze", "verify", str(unit_file)], check=False, env=env)
        assert v.returncode == 0, v.stderr
    # the unit's command line, as systemd splits it, serves the database
    proc = subprocess.Popen(exec_start(unit), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, proc.stderr.read().decode()
                time.sleep(0.1)
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


def test_launchd_agent(home):
    tmp, _ = home
    p = peersync_cli(home, "service", "install", "--db", "my data/notes.db", "--manager", "launchd", "--name", "notes-sync")
    plist_file = tmp / "Library/LaunchAgents/org.peersync.notes-sync.plist"
    assert "launchctl bootstrap gui/$(id -u) " + str(plist_file) in p.stdout
    agent = plistlib.loads(plist_file.read_bytes())
    assert agent["Label"] == "org.peersync.notes-sync"
    assert agent["ProgramArguments"][:4] == [os.path.realpath(peersync.binary_path()), "serve", "--db", str(tmp / "my data/notes.db")]
    assert agent["RunAtLoad"] is True and agent["KeepAlive"] == {"SuccessfulExit": False}
    assert agent["StandardErrorPath"] == str(tmp / "Library/Logs/notes-sync.log")


def test_refusals(home):
    tmp, _ = home
    p = peersync_cli(home, "service", "print", "--db", "missing.db", check=False)
    assert p.returncode == 1 and "does not exist" in p.stderr
    run(["sqlite3", str(tmp / "plain.db"), "create table t(x)"])
    p = peersync_cli(home, "service", "print", "--db", "plain.db", check=False)
    assert p.returncode == 1 and "run `peersync init --db" in p.stderr
    p = peersync_cli(home, "service", "print", "--db", "my data/notes.db", "--name", "../evil", check=False)
    assert p.returncode == 1 and "service name" in p.stderr
    p = peersync_cli(home, "service", "print", "--db", "my data/notes.db", "--key", "nokey.pem", check=False)
    assert p.returncode == 1 and "nokey.pem does not exist" in p.stderr
