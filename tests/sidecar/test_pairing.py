# Pairing by a one-time code (`peersync pair`) and peers kept as data (`peersync peers ...`):
# real processes on loopback addresses, no `trust`, no `--peer`, no restarts.
import json
import os
import re
import subprocess
import time

from conftest import BIN, Device, free_port, table_rows, wait_until

NOTES = "CREATE TABLE notes(id TEXT PRIMARY KEY, body TEXT, n INTEGER)"


def status(dev):
    return json.loads(dev.cli("status", "--json").stdout)


def trusted(dev):
    return {d["device_id"] for d in json.loads(dev.cli("devices", "--json").stdout) if d["is_authorized"] and not d["is_self"]}


def peers(dev):
    return json.loads(dev.cli("peers", "list", "--json").stdout)


class Invite:
    """`peersync pair` showing a code on `dev`, in the background."""

    def __init__(self, dev, listen, url, *extra):
        self.proc = subprocess.Popen([str(BIN), "pair", "--db", str(dev.db), "--listen", listen, "--url", url, *extra],
                                     env=dev.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"pairing code: (\S+)", line)
        assert m, f"no code shown: {line!r} {self.proc.stderr.read() if self.proc.poll() is not None else ''}"
        self.code = m.group(1)

    def wait(self, timeout=30):
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err


def join(dev, code, *extra, check=True):
    return dev.cli("pair", code, *extra, check=check)


def test_two_devices_pair_and_sync_without_trust_peer_flags_or_restart(devices):
    a, b = devices("a", schema=NOTES), devices("b", schema=None)
    a.track(strategy="manual")
    a.sql("INSERT INTO notes VALUES ('n1', 'from a', 1)")
    port = free_port()
    a.serve("127.0.0.1", port)  # running before pairing, with no --peer
    inv = Invite(a, f"127.0.0.1:{free_port()}", a.url)
    assert re.fullmatch(r"[a-z2-9]{4}-[a-z2-9]{4}@127\.0\.0\.1:\d+", inv.code)
    b_url = f"http://127.0.0.2:{port}"
    r = join(b, inv.code, "--url", b_url, "--schema")
    assert "created table notes" in r.stdout and "tracking notes" in r.stdout, r.stdout
    code, out, err = inv.wait()
    assert code == 0 and f"paired with {b.id} (b)" in out, (out, err)
    # Each trusts the other and has it as a configured peer, from pairing.
    assert trusted(a) == {b.id} and trusted(b) == {a.id}
    assert [(p["url"], p["device_id"], p["source"]) for p in peers(a)] == [(b_url, b.id, "pair")]
    assert [(p["url"], p["device_id"], p["source"]) for p in peers(b)] == [(a.url, a.id, "pair")]
    # --schema made the table as a defines it, and b tracks it.
    assert b.sql("SELECT sql FROM sqlite_master WHERE name = 'notes'") == [(NOTES,)]
    assert b.sql("SELECT name FROM sync_tables WHERE active") == [("notes",)]
    b.serve("127.0.0.2", port)  # no --peer either
    b.sql("INSERT INTO notes VALUES ('n2', 'from b', 2)")
    wait_until(lambda: len(table_rows(a.db)) == 2 and table_rows(a.db) == table_rows(b.db), what="a and b converge")
    # a's running sidecar syncs with b by itself (it was started before b was its peer).
    wait_until(lambda: [l for l in status(a)["links"] if l["url"] == b_url and l["state"] == "ok" and l["configured"]],
               what="a's sidecar syncs with b")
    # The strategy a set arrived with the first sync.
    wait_until(lambda: [t for t in status(b)["tables"] if t["table"] == "notes" and t["strategy"] == "manual"],
               what="b has a's strategy")


def test_a_third_device_pairs_once_and_syncs_with_both(devices):
    a, b, c = devices("a", schema=NOTES), devices("b", schema=NOTES), devices("c", schema=NOTES)
    a.track(), b.track(), c.track()
    port = free_port()
    a.serve("127.0.0.1", port)
    b_url, c_url = f"http://127.0.0.2:{port}", f"http://127.0.0.3:{port}"
    inv = Invite(a, f"127.0.0.1:{free_port()}", a.url)
    join(b, inv.code, "--url", b_url)
    assert inv.wait()[0] == 0
    b.serve("127.0.0.2", port)
    # c pairs with a only: it learns a's peers (b), and a introduces c to b when they sync.
    inv = Invite(a, f"127.0.0.1:{free_port()}", a.url)
    join(c, inv.code, "--url", c_url)
    assert inv.wait()[0] == 0
    assert {p["url"] for p in peers(c)} == {a.url, b_url}
    c.serve("127.0.0.3", port)
    for i, d in enumerate((a, b, c)):
        d.sql("INSERT INTO notes VALUES (?, ?, ?)", (f"r{i}", d.name, i))
    wait_until(lambda: trusted(b) == {a.id, c.id} and trusted(c) == {a.id, b.id}, what="introductions")
    wait_until(lambda: all(len(table_rows(d.db)) == 3 for d in (a, b, c))
               and table_rows(a.db) == table_rows(b.db) == table_rows(c.db), what="three devices converge")
    wait_until(lambda: [l for l in status(c)["links"] if l["url"] == b_url and l["state"] == "ok"], what="c syncs with b")


def test_a_wrong_code_fails_and_the_code_dies_after_the_limit(devices):
    a, b = devices("a"), devices("b")
    inv = Invite(a, f"127.0.0.1:{free_port()}", "http://127.0.0.1:9", "--attempts", "2")
    secret, addr = inv.code.split("@")
    wrong = ("2222-2222" if secret != "2222-2222" else "3333-3333") + "@" + addr
    for _ in range(2):
        r = join(b, wrong, check=False)
        assert r.returncode != 0 and "wrong pairing code" in r.stderr, r.stderr
    code, out, err = inv.wait()
    assert code != 0 and "too many failed attempts" in err, err
    r = join(b, inv.code, check=False)
    assert r.returncode != 0
    assert trusted(a) == set() and trusted(b) == set() and peers(a) == [] and peers(b) == []


def test_an_expired_code_fails(devices):
    a, b = devices("a"), devices("b")
    inv = Invite(a, f"127.0.0.1:{free_port()}", "http://127.0.0.1:9", "--expires", "1")
    time.sleep(1.5)
    r = join(b, inv.code, check=False)
    assert r.returncode != 0
    code, out, err = inv.wait()
    assert code != 0 and "expired" in err, err
    assert trusted(a) == set() and trusted(b) == set()


def test_a_used_code_cannot_be_replayed(devices):
    a, b, c = devices("a"), devices("b"), devices("c")
    inv = Invite(a, f"127.0.0.1:{free_port()}", "http://127.0.0.1:9")
    join(b, inv.code)
    assert inv.wait()[0] == 0
    r = join(c, inv.code, check=False)
    # The code's endpoint is gone with its use (the protocol-level replays are unit tests in cli/pair.rs).
    assert r.returncode != 0 and "cannot reach the pairing endpoint" in r.stderr, (r.stdout, r.stderr)
    assert trusted(a) == {b.id} and trusted(c) == set()


def test_without_schema_the_joiner_is_told_which_tables_to_create(devices):
    a, b = devices("a", schema=NOTES + "; CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT)"), devices("b", schema=NOTES)
    a.track("notes"), a.track("tags", strategy="local_wins")
    inv = Invite(a, f"127.0.0.1:{free_port()}", "http://127.0.0.1:9")
    out = join(b, inv.code).stdout
    assert inv.wait()[0] == 0
    assert "tracking notes" in out and "do not exist here: tags" in out, out
    assert b.sql("SELECT name FROM sync_tables WHERE active") == [("notes",)]
    assert b.sql("SELECT count(*) FROM sqlite_master WHERE name = 'tags'") == [(0,)]


def test_a_running_sidecar_follows_peers_added_and_removed(devices):
    a, b = devices("a"), devices("b")
    a.trust(b), b.trust(a)
    a.track(), b.track()
    port = free_port()
    a.serve("127.0.0.1", port)
    b.serve("127.0.0.2", port)  # b never syncs with a by itself: only a's loop can move a's rows
    a.sql("INSERT INTO notes VALUES ('before', 'x', 1)")
    time.sleep(1)
    assert table_rows(b.db) == []
    a.cli("peers", "add", b.url + "/")
    assert [p["url"] for p in peers(a)] == [b.url]
    wait_until(lambda: len(table_rows(b.db)) == 1, timeout=20, what="a's sidecar syncs with the added peer")
    a.cli("peers", "remove", b.url)
    assert peers(a) == []
    wait_until(lambda: "peer removed" in a.log.read_text(), timeout=10, what="a drops the loop")
    a.sql("INSERT INTO notes VALUES ('after', 'x', 2)")
    time.sleep(4)
    assert len(table_rows(b.db)) == 1
    assert a.cli("peers", "remove", b.url, check=False).returncode != 0


TAILSCALE_STATUS = {
    "Version": "1.76.6-t0f0b4b4b4",
    "BackendState": "Running",
    "Self": {"ID": "nSELF", "HostName": "laptop", "DNSName": "laptop.tail1234.ts.net.",
             "TailscaleIPs": ["100.101.1.1", "fd7a:115c:a1e0::1"], "Online": True, "OS": "linux"},
    "Peer": {
        "nodekey:aaa": {"ID": "n1", "HostName": "phone", "DNSName": "phone.tail1234.ts.net.",
                        "TailscaleIPs": ["100.101.1.2", "fd7a:115c:a1e0::2"], "Online": True, "OS": "android"},
        "nodekey:bbb": {"ID": "n2", "HostName": "DESKTOP-7Q", "DNSName": "desk.tail1234.ts.net.",
                        "TailscaleIPs": ["100.101.1.3", "fd7a:115c:a1e0::3"], "Online": False, "OS": "windows"},
        "nodekey:ccc": {"ID": "n3", "HostName": "tv", "DNSName": "tv.tail1234.ts.net.",
                        "TailscaleIPs": ["100.101.1.4"], "Online": True, "OS": "linux"},
    },
    "MagicDNSSuffix": "tail1234.ts.net",
}


def test_peers_discover_matches_tailnet_peers_to_trusted_devices(devices, tmp_path):
    laptop, phone, desk, tv = devices("laptop"), devices("phone"), devices("desk"), devices("tv")
    laptop.trust(phone)  # matched by host name
    laptop.cli("trust", desk.id, desk.public_key, "--name", "desk", "--tailscale-ip", "100.101.1.3")  # by recorded IP
    # tv is on the tailnet but not trusted: not offered.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "status.json").write_text(json.dumps(TAILSCALE_STATUS))
    script = bindir / "tailscale"
    script.write_text(f'#!/bin/sh\n[ "$1 $2" = "status --json" ] || exit 2\ncat "{bindir / "status.json"}"\n')
    script.chmod(0o755)
    laptop.env = dict(laptop.env, PATH=f"{bindir}:{os.environ['PATH']}")
    out = laptop.cli("peers", "discover", "--port", "8443").stdout
    assert f"http://100.101.1.2:8443 {phone.id} (phone, online)" in out, out
    assert f"http://100.101.1.3:8443 {desk.id} (desk, offline)" in out, out
    assert "100.101.1.4" not in out and peers(laptop) == []
    laptop.cli("peers", "discover", "--add", "--port", "8443")
    assert {(p["url"], p["device_id"], p["source"]) for p in peers(laptop)} == {
        ("http://100.101.1.2:8443", phone.id, "discover"), ("http://100.101.1.3:8443", desk.id, "discover")}
    laptop.env["PATH"] = "/nonexistent"
    r = laptop.cli("peers", "discover", check=False)
    assert r.returncode != 0 and "tailscale" in r.stderr


def test_a_code_must_name_a_reachable_address(devices):
    a = devices("a")
    r = a.cli("pair", "--listen", f"0.0.0.0:{free_port()}", check=False)
    assert r.returncode != 0 and "reaches" in r.stderr, r.stderr
