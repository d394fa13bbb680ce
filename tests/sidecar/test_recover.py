# A device restored from an old backup: `peersync recover` takes back its own changes the peers
# still hold, keeps what it wrote since the restore under a new identity, and the peers end its
# quarantine without a person releasing it; every device converges. Real processes, loopback.
import json
import os
import re
import sqlite3

from conftest import free_port, pair, send, signed, signer, table_rows


def backup(dev, to):
    """An online backup of dev's database (SQLite's backup API), as a backup tool makes it."""
    src, dst = sqlite3.connect(dev.db), sqlite3.connect(to)
    src.backup(dst)
    src.close()
    dst.close()


def restore(dev, frm):
    for suffix in ("-wal", "-shm"):
        if os.path.exists(f"{dev.db}{suffix}"):
            os.remove(f"{dev.db}{suffix}")
    src, dst = sqlite3.connect(frm), sqlite3.connect(dev.db)
    src.backup(dst)
    src.close()
    dst.close()


def quarantined(dev):
    return json.loads(dev.cli("status", "--json").stdout)["quarantined"]


def test_a_restored_device_recovers_and_every_device_converges(devices, tmp_path):
    a, b, c = devices("a"), devices("b"), devices("c")
    pair(a, b, c)
    for d in (a, b, c):
        d.track()
    a.sql("INSERT INTO notes VALUES ('n1', 'before the backup', 1)")
    b.serve("127.0.0.2", free_port())
    c.serve("127.0.0.3", free_port())
    a.cli("sync", "--peer", b.url)
    a.cli("sync", "--peer", c.url)
    backup(a, tmp_path / "a-backup.db")
    # After the backup, then the laptop is lost: only b got this.
    a.sql("INSERT INTO notes VALUES ('n2', 'after the backup', 2)")
    a.cli("sync", "--peer", b.url)
    restore(a, tmp_path / "a-backup.db")
    old_id, old_pem = a.id, a.key_pem()
    # The restored laptop writes, and its first sync is caught as a fork.
    a.sql("INSERT INTO notes VALUES ('n3', 'written after the restore', 3)")
    r = a.cli("sync", "--peer", b.url, check=False)
    assert r.returncode != 0 and "forked chain" in r.stderr, r.stderr
    assert [q["device_id"] for q in quarantined(b)] == [old_id]
    assert "peersync recover" in r.stderr, r.stderr

    # Not while a sidecar serves the database.
    r = c.cli("recover", "--peer", b.url, check=False)
    assert r.returncode == 1 and "a sidecar serves this database now" in r.stderr, r.stderr

    out = a.cli("recover", "--peer", b.url, "--peer", c.url)
    m = re.search(r"this database is now device ([0-9a-f]{32})", out.stdout)
    assert m, out.stdout
    a.id = m.group(1)
    assert a.id != old_id
    assert "moved:      1 change(s)" in out.stdout and "kept:       versions 1 to 1" in out.stdout, out.stdout
    assert "asking " in out.stderr, "progress shows"
    # The peers: quarantine over, the old identity recovered, the new one trusted.
    assert quarantined(b) == [] and quarantined(c) == []
    devs = {d["device_id"]: d for d in json.loads(b.cli("devices", "--json").stdout)}
    assert devs[old_id]["succeeded_by"] == a.id and devs[a.id]["is_authorized"]
    assert "goes on as device " + a.id in b.cli("devices").stdout
    assert f"{old_id} a            recovered" in b.cli("status").stdout
    # The old key signs nothing any more.
    req = signed("POST", f"{b.url}/sync/pull", signer(old_pem, keyid=old_id), {"since": {}, "limit": 10})
    status, body = send(req)
    assert status == 403 and "goes on as device" in body["error"], (status, body)

    # The restored device syncs under its new identity; everyone converges.
    a.cli("sync", "--peer", b.url)
    a.cli("sync", "--peer", c.url)
    c.stop()
    c.cli("sync", "--peer", b.url)
    # A device that was not restored is refused, and keeps its identity.
    r = c.cli("recover", "--peer", b.url, check=False)
    assert r.returncode == 1 and "does not look restored" in r.stderr, r.stderr
    assert c.id in c.cli("id").stdout
    b.stop()
    want = [("n1", "before the backup", 1), ("n2", "after the backup", 2), ("n3", "written after the restore", 3)]
    for d in (a, b, c):
        assert table_rows(d.db) == want, (d.name, table_rows(d.db))
        assert d.cli("verify").returncode == 0
        assert quarantined(d) == []
    # Recovering again is refused: nothing says this device is restored now.
    b.serve("127.0.0.2", free_port())
    r = a.cli("recover", "--peer", b.url, check=False)
    assert r.returncode == 1 and "does not look restored" in r.stderr, r.stderr


def test_recover_with_no_reachable_peer_changes_nothing(devices):
    a = devices("a")
    a.track()
    a.sql("INSERT INTO notes VALUES ('n1', 'x', 1)")
    r = a.cli("recover", check=False)
    assert r.returncode == 1 and "no peer to ask" in r.stderr, r.stderr
    r = a.cli("recover", "--peer", f"http://127.0.0.1:{free_port()}", check=False)
    assert r.returncode == 1 and "no peer could be reached" in r.stderr, r.stderr
    assert a.id in a.cli("id").stdout
    assert a.cli("verify").returncode == 0


def test_the_recover_route_refuses_what_is_not_the_callers_and_changes_nothing(devices):
    a, b, c = devices("a"), devices("b"), devices("c")
    pair(a, b, c)
    b.serve("127.0.0.2", free_port())
    before = b.cli("devices", "--json").stdout
    auth = signer(a)
    # A succession of another device (c), signed in a's request: refused.
    forged = {"from": c.id, "to": "0" * 31 + "1", "public_key": a.public_key, "name": "x", "signature": "00" * 64}
    status, body = send(signed("POST", f"{b.url}/sync/recover", auth, {"succession": forged}))
    assert status == 403 and "a device hands over only its own" in body["error"], (status, body)
    # a's own succession with a signature that is not a's: refused (the batch check's words).
    own = dict(forged, **{"from": a.id})
    status, body = send(signed("POST", f"{b.url}/sync/recover", signer(a), {"succession": own}))
    assert status == 403 and "not signed by the key" in body["error"], (status, body)
    # Malformed bodies, too many probes.
    status, body = send(signed("POST", f"{b.url}/sync/recover", signer(a), {"probe": "x"}))
    assert status == 400, (status, body)
    status, body = send(signed("POST", f"{b.url}/sync/recover", signer(a), {"probe": list(range(65))}))
    assert status == 400 and "at most 64" in body["error"], (status, body)
    # A probe answers only for the caller's own chain.
    status, body = send(signed("POST", f"{b.url}/sync/recover", signer(a), {"probe": [1]}))
    assert status == 200 and body["probe"]["origin"] == a.id and body["device_id"] == b.id, body
    # A revoked device may not ask.
    b.stop()
    b.cli("revoke", c.id)
    b.serve("127.0.0.2", free_port())
    status, body = send(signed("POST", f"{b.url}/sync/recover", signer(c), {"probe": [1]}))
    assert status == 403 and "revoked" in body["error"], (status, body)
    devs = {d["device_id"]: d for d in json.loads(b.cli("devices", "--json").stdout)}
    assert all(d["succeeded_by"] is None for d in devs.values())
    assert len(devs) == len(json.loads(before))
