# The command line: --help for every command, init/id/trust output, key file permissions,
# errors that say what to do, one-shot `peersync sync`, conflicts list/show/resolve.
import os
import subprocess

import pytest

from conftest import BIN, free_port, pair, table_rows

COMMANDS = ["init", "id", "trust", "revoke", "devices", "track", "serve", "sync", "status", "conflicts", "verify"]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_has_help(cmd):
    r = subprocess.run([str(BIN), cmd, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "Usage: peersync " + cmd in r.stdout and "--db" in r.stdout, r.stdout + r.stderr


def test_top_level_help_lists_commands():
    out = subprocess.run([str(BIN), "--help"], capture_output=True, text=True).stdout
    for cmd in COMMANDS:
        assert f"  {cmd}" in out


def test_init_prints_pairing_and_makes_an_owner_only_key(devices):
    a = devices("a")
    assert len(a.id) == 32 and len(a.public_key) == 64
    assert oct(a.key_file.stat().st_mode & 0o777) == "0o600"
    assert oct(a.key_file.parent.stat().st_mode & 0o777) == "0o700"
    assert a.key_file.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    out = a.cli("id").stdout
    assert a.id in out and a.public_key in out and f"peersync trust --db a.db {a.id} {a.public_key} --name a" in out
    # init again is idempotent: same identity, same key
    out = a.cli("init", "--name", "a").stdout
    assert a.id in out and a.public_key in out


def test_key_readable_by_others_is_refused(devices):
    a, b = devices("a"), devices("b")
    pair(a, b)
    os.chmod(a.key_file, 0o644)
    r = a.cli("sync", "--peer", "http://127.0.0.2:9", check=False)
    assert r.returncode == 1 and "accessible by group or others" in r.stderr and f"chmod 600 {a.key_file}" in r.stderr
    r = a.cli("serve", "--listen", f"127.0.0.1:{free_port()}", check=False)
    assert r.returncode == 1 and "refusing to use it" in r.stderr


def test_missing_database_and_unreachable_peer_say_what_to_do(devices, tmp_path):
    r = subprocess.run([str(BIN), "status", "--db", str(tmp_path / "nope.db")], capture_output=True, text=True)
    assert r.returncode == 1 and "does not exist" in r.stderr and "peersync init" in r.stderr
    a = devices("a")
    r = a.cli("sync", "--peer", f"http://127.0.0.2:{free_port()}", check=False)
    assert r.returncode == 1 and "unreachable" in r.stderr and "Connection refused" in r.stderr
    r = a.cli("sync", "--peer", "https://example.invalid", check=False)
    assert r.returncode == 1 and "only http://" in r.stderr
    r = a.cli("trust", "abc", "def", check=False)
    assert r.returncode == 1 and "32 lowercase hex" in r.stderr


def test_one_shot_sync_and_a_manual_conflict(devices):
    a, b = devices("a"), devices("b")
    pair(a, b)
    a.track(strategy="manual")
    b.track()  # takes up a's setting (one strategy per table across devices)
    a.sql("INSERT INTO notes VALUES ('n1', 'first', 1)")
    b.serve("127.0.0.2", free_port())
    out = a.cli("sync", "--peer", b.url).stdout
    assert "sent 2, received 0" in out  # the setting, then the insert
    assert table_rows(b.db) == [("n1", "first", 1)]
    # concurrent edits of the same column: a manual conflict on A when it pulls B's edit
    a.sql("UPDATE notes SET body = 'edited on a' WHERE id = 'n1'")
    b.sql("UPDATE notes SET body = 'edited on b' WHERE id = 'n1'")
    out = a.cli("sync", "--peer", b.url).stdout
    assert "conflicts" in out
    listed = a.cli("conflicts", "list").stdout
    assert "pending" in listed and "notes['n1']" in listed, listed
    cid = listed.split()[0].lstrip("#")
    shown = a.cli("conflicts", "show", cid).stdout
    assert "edited on a" in shown and "edited on b" in shown
    assert "resolved" in a.cli("conflicts", "resolve", cid, "remote").stdout
    assert table_rows(a.db) == [("n1", "edited on b", 1)]
    a.cli("sync", "--peer", b.url)
    assert table_rows(b.db) == table_rows(a.db)
    assert "no pending conflicts" in a.cli("conflicts").stdout
    assert "ok:" in a.cli("verify").stdout and "ok:" in b.cli("verify").stdout
    status = a.cli("status").stdout
    assert a.id in status and "notes (manual)" in status and "0 pending" in status
    devs = a.cli("devices").stdout
    assert b.id in devs and "trusted" in devs


def test_conflicts_over_http(devices):
    import requests
    from conftest import signer
    a, b = devices("a"), devices("b")
    pair(a, b)
    a.track(strategy="manual")
    b.track(strategy="manual")
    b.sql("INSERT INTO notes VALUES ('n1', 'base', 1)")
    b.serve("127.0.0.2", free_port())
    a.cli("sync", "--peer", b.url)
    a.sql("UPDATE notes SET body = 'a' WHERE id = 'n1'")
    b.sql("UPDATE notes SET body = 'b' WHERE id = 'n1'")
    a.cli("sync", "--peer", b.url)  # B now holds a pending conflict (A's edit vs its own)
    r = requests.get(f"{b.url}/conflicts?status=pending", auth=signer(a), timeout=10)
    assert r.status_code == 200 and len(r.json()) == 1, r.text
    cid = r.json()[0]["id"]
    r = requests.get(f"{b.url}/conflicts/{cid}", auth=signer(a), timeout=10)
    assert r.json()["status"] == "pending" and r.json()["columns"] == ["body"]
    assert requests.get(f"{b.url}/conflicts/99999", auth=signer(a), timeout=10).status_code == 404
    r = requests.post(f"{b.url}/conflicts/{cid}/resolve", json={"choice": "sideways"}, auth=signer(a), timeout=10)
    assert r.status_code == 400 and "choice" in r.json()["error"]
    r = requests.post(f"{b.url}/conflicts/{cid}/resolve", json={"choice": {"body": "merged"}}, auth=signer(a), timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "resolved", r.text
    assert table_rows(b.db) == [("n1", "merged", 1)]
    r = requests.post(f"{b.url}/conflicts/{cid}/resolve", json={"choice": "local"}, auth=signer(a), timeout=10)
    assert r.status_code == 400 and "already resolved" in r.json()["error"]


def test_track_prints_the_strategy_the_table_really_has(devices):
    # One strategy per table across devices: `track` without --strategy keeps (and prints)
    # the one another device set; an explicit one is set everywhere.
    a, b = devices("a"), devices("b")
    pair(a, b)
    out = a.cli("track", "notes").stdout
    assert "tracking notes (strategy timestamp_wins, the default (no device has set one))" in out, out
    out = b.cli("track", "notes", "--strategy", "manual").stdout
    assert "tracking notes (strategy manual, set by this device at " in out, out
    b.serve("127.0.0.2", free_port())
    a.cli("sync", "--peer", b.url)
    out = a.cli("track", "notes").stdout
    assert f"tracking notes (strategy manual, set by device {b.id} (b) at " in out, out
    assert "notes (manual)" in a.cli("status").stdout
    out = a.cli("track", "notes", "--strategy", "remote_wins").stdout
    assert "(strategy remote_wins, set by this device at " in out, out
    a.cli("sync", "--peer", b.url)
    out = b.cli("status").stdout
    assert "notes (remote_wins)" in out, out
