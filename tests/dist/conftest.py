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


def check_host_report(out):
    """What every host's helper reports (tests/dist/helpers/*_host.*): one version everywhere,
    extension loading off again after load(), and the conflict settled through the helpers."""
    version = workspace_version()
    assert out["version"] == out["sync_version"] == out["status"]["version"] == version
    # extension loading is off again after load(); apsw says "not authorized" too
    assert "not authorized" in out["load_extension_after"]
    c = out["conflicts"]
    assert [(x["table_name"], x["record_id"], x["kind"], x["status"]) for x in c] == [("notes", "'n1'", "update", "pending")]
    assert c[0]["columns"] == ["body"] and c[0]["local_data"] == {"body": "from b"} and c[0]["remote_data"] == {"body": "from a"}
    assert out["resolved"] == "resolved"
    assert out["body_after"] == "from a" and out["pending_after"] == 0 and out["all_after"] == ["resolved"]


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
