"""The npm tarball, installed into a fresh temp project with better-sqlite3@12 (tests/dist/run.sh):
load() into better-sqlite3 and node:sqlite, the helpers, the WAL-reset warning, the TypeScript
types, and the sidecar through `npx peersync`."""
import json
import os
import tarfile

import pytest

from conftest import HERE, ROOT, check_host_report, run, workspace_version


def node(project, *argv, **kw):
    return run(["node", *argv], cwd=project, **kw)


def test_tarball_holds_the_package():
    tarballs = list((ROOT / "dist").glob("peersync-*.tgz"))
    assert [t.name for t in tarballs] == [f"peersync-{workspace_version()}.tgz"]
    with tarfile.open(tarballs[0]) as t:
        members = {m.name: m for m in t.getmembers()}
    for f in ["index.js", "index.d.ts", "bin/peersync.js", "lib/peersync.so", "lib/peersync", "package.json"]:
        assert "package/" + f in members, f
    assert members["package/lib/peersync"].mode & 0o111  # executable as packed


@pytest.mark.parametrize("host", ["better-sqlite3", "node:sqlite"])
def test_load_helpers_and_conflict(node_project, host):
    script = node_project / "host.cjs"  # in the project, where require('peersync') finds the package
    script.write_text((HERE / "helpers/node_host.cjs").read_text())
    p = node(node_project, str(script), host)
    out = json.loads(p.stdout)
    assert "node_modules/peersync/lib/peersync.so" in out["loadablePath"]
    check_host_report(out)
    v = tuple(map(int, out["status"]["sqlite_version"].split(".")))
    warning = out["status"]["sqlite_warning"]
    peersync_warnings = [w for w in out["warnings"] if w["name"] == "PeersyncWarning"]
    affected = v < (3, 51, 3) and not (v[:2] == (3, 50) and v[2] >= 7) and not (v[:2] == (3, 44) and v[2] >= 6)
    if affected:
        assert "WAL-reset" in warning
        assert peersync_warnings == [{"name": "PeersyncWarning", "code": "PEERSYNC_WAL_RESET", "message": "peersync: " + warning}] * 2
    else:
        assert warning is None and peersync_warnings == []
    if host == "node:sqlite":
        assert "allowExtension: true" in out["without_allow"]


def test_node_sqlite_host_is_affected_and_warns(node_project):
    """Node 22's own SQLite (3.50.4 in 22.20) is an affected version: the warning shows for real."""
    p = node(node_project, "-e", "const {DatabaseSync}=require('node:sqlite'); const db=new DatabaseSync(':memory:',{allowExtension:true}); require('peersync').load(db)")
    v = node(node_project, "-e", "const {DatabaseSync}=require('node:sqlite'); console.log(new DatabaseSync(':memory:').prepare('select sqlite_version() v').get().v)").stdout.strip()
    if tuple(map(int, v.split("."))) >= (3, 50, 7):
        pytest.skip(f"this Node's SQLite {v} is not affected")
    assert f"(node:" in p.stderr and f"PeersyncWarning: peersync: SQLite {v} (the library this connection uses) has the WAL-reset bug" in p.stderr


def test_typescript_types(node_project):
    tsc = node_project / "node_modules/.bin/tsc"
    if not tsc.exists():
        pytest.skip("typescript is not installed in the test project")
    src = node_project / "types_check.ts"
    src.write_text((HERE / "helpers/types_check.ts").read_text())
    run([str(tsc), "--noEmit", "--strict", "--esModuleInterop", "--module", "nodenext", "--moduleResolution", "nodenext",
         "--types", "node", str(src)], cwd=node_project)
    bad = node_project / "types_bad.ts"
    bad.write_text("import * as peersync from 'peersync';\npeersync.resolve({} as any, 1, 'theirs');\n")
    p = run([str(tsc), "--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext", "--types", "node", str(bad)],
            cwd=node_project, check=False)
    assert p.returncode != 0 and "theirs" in p.stdout


def test_npx_runs_the_sidecar(node_project, tmp_path):
    npx = os.environ.get("PEERSYNC_NPX", "npx --no --").split()
    assert run([*npx, "peersync", "--version"], cwd=node_project).stdout.strip() == f"peersync {workspace_version()}"
    env = dict(os.environ, HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"))
    db = tmp_path / "app.db"
    run([*npx, "peersync", "init", "--db", str(db), "--name", "node"], cwd=node_project, env=env)
    p = run([*npx, "peersync", "status", "--db", str(tmp_path / "none.db")], cwd=node_project, check=False)
    assert p.returncode == 1 and "does not exist" in p.stderr


def test_the_bin_wrapper_forwards_sigterm(node_project, tmp_path):
    """`peersync serve` run through the package's bin (what npx runs): SIGTERM to the wrapper
    reaches the sidecar, which finishes and stops; the wrapper exits with its status."""
    import signal
    import socket
    import subprocess
    import time
    import urllib.request

    env = dict(os.environ, HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"))
    db = tmp_path / "app.db"
    bin_ = node_project / "node_modules/.bin/peersync"
    run([str(bin_), "init", "--db", str(db), "--name", "node"], env=env)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(bin_), "serve", "--db", str(db), "--listen", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
    finally:
        if proc.poll() is None:
            proc.kill()
