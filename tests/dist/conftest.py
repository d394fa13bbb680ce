"""tests/dist: the packages `make dist` built, installed fresh (tests/dist/run.sh) and used as an
app would: the wheel in a venv from Debian's python3 (this process runs in it), the npm tarball in
a temp project (PEERSYNC_NODE_PROJECT)."""
import json
import os
import pathlib
import subprocess
import sys
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = pathlib.Path(__file__).resolve().parent
VENV_BIN = pathlib.Path(sys.executable).parent


def workspace_version():
    return tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["version"]


def run(argv, check=True, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    p = subprocess.run(argv, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{argv} exited {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def py_json(*argv, **kw):
    p = run([sys.executable, *argv], **kw)
    return json.loads(p.stdout), p


@pytest.fixture(scope="session")
def node_project():
    d = os.environ.get("PEERSYNC_NODE_PROJECT")
    if not d:
        pytest.fail("PEERSYNC_NODE_PROJECT is not set: run tests/dist through tests/dist/run.sh (make test-dist)")
    return pathlib.Path(d)
