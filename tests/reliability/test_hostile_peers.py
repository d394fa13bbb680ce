# tests/reliability/test_hostile_peers.py: a trusted device's key in an attacker's hands, against real sidecars on loopback: aliased record ids, unsigned changes under unknown origins, resolutions that override strategies, clock poisoning, replays, exhaustion, and the smaller holes. Each attack is refused (status and message), leaves every database and chain as it was, and the other peers keep syncing.
import json
import os
import shutil
import socket
import sqlite3
import time
import urllib.parse

import http.client
import subprocess

import pytest
import requests
import requests_http_signature as rhs

from hostile_batches import dumps, forge, head_signature, held_head, rechain
from hostile_peers import status, sync
from sidecar_helpers import BIN, free_port, pair, send, signed, signer, wait_until

MAX_TIMESTAMP = 253_402_300_799_999_999


def trio(devices, strategy=None, a_extra=()):
    """A (the victim) and C (an honest device) serve on 127.0.0.1 and 127.0.0.3 and sync with each
    other every second. M is a trusted device whose key the attacker holds: A and C have paired
    with it, and it runs no sidecar of its own (the attacker sends what it likes)."""
    a, c, m = devices("a"), devices("c"), devices("m")
    pair(a, c, m)
    for d in (a, c, m):
        d.track(strategy=strategy)
    port = free_port()
    a.url, c.url = f"http://127.0.0.1:{port}", f"http://127.0.0.3:{port}"
    a.serve("127.0.0.1", port, [c.url], *a_extra, interval="1")
    c.serve("127.0.0.3", port, [a.url], interval="1")
    return a, c, m


def write(dev, note_id, body="x", n=1):
    con = dev.connect()
    con.execute("PRAGMA busy_timeout = 10000")
    con.execute("INSERT OR REPLACE INTO notes VALUES (?, ?, ?)", (note_id, body, n))
    con.commit()
    con.close()


def notes(dev):
    return dev.sql("SELECT id, body, n FROM notes ORDER BY id")


def state(dev):
    """What an attack must not change: the app's rows and every origin's chain."""
    return notes(dev), dev.sql("SELECT device_id, version, hash FROM sync_log WHERE version IS NOT NULL ORDER BY device_id, version")


def still_syncing(a, c, tag):
    """Both honest devices still exchange changes, both ways."""
    write(c, f"c-{tag}")
    write(a, f"a-{tag}")
    wait_until(lambda: {f"c-{tag}", f"a-{tag}"} <= {r[0] for r in notes(a)} & {r[0] for r in notes(c)}, 30,
               what=f"A and C exchanging changes after the attack ({tag})")


def err(reply):
    """The error message of a JSON error reply (or the reply as text)."""
    return reply.get("error", "") if isinstance(reply, dict) else str(reply)


def push(m, target, batch, auth=None):
    return send(signed("POST", f"{target.url}/sync/push", auth or signer(m), dumps(batch).encode()))


def own_change(m, target, specs):
    """A batch of M's own changes (INSERTs into notes, each spec overriding fields), continuing
    M's chain as `target` holds it, signed by M."""
    return forge(m.id, target.db, specs, signer=m, sender=m.id)


def test_record_ids_and_values_the_receiver_would_store_otherwise_are_refused(devices, reliability):
    a, c, m = trio(devices)
    write(a, "4242", "mine", 1)
    wait_until(lambda: ("4242", "mine", 1) in notes(c), 30, what="A's row at C")
    before = state(a)
    attempts = {
        "integer record id for a TEXT key": ({"record_id": "4242", "change_data": '{"id":4242,"body":"evil","n":1}'},
                                             'record_id gives column "id" the value 4242'),
        "text for an INTEGER column": ({"record_id": "'k'", "change_data": '{"id":"k","body":"b","n":"5"}'},
                                       'change_data gives column "n" the value \'5\''),
        "a real for an INTEGER column": ({"record_id": "'k'", "change_data": '{"id":"k","body":"b","n":5.0}'},
                                         'change_data gives column "n" the value 5.0'),
    }
    for what, (spec, words) in attempts.items():
        code, reply = push(m, a, own_change(m, a, [spec]))
        assert code == 400 and words in err(reply) and f"change {m.id}:1" in err(reply), (what, code, reply)
        assert state(a) == before, f"{what}: A changed"
    still_syncing(a, c, "alias")
    assert ("4242", "mine", 1) in notes(a) and ("4242", "mine", 1) in notes(c)
    reliability.record("hostile peers", "a trusted device names a TEXT key by the integer 4242, or gives typed columns other types",
                       attempts=len(attempts), refused_with_400=len(attempts), databases_unchanged="yes")


def test_an_unknown_origin_s_changes_wait_and_a_forged_first_change_cannot_fork_it(devices, reliability):
    a, c, m = trio(devices)
    k = devices("k")  # a real device, paired with nobody yet
    k.track()
    before = state(a)
    # M plants K:1, signed with M's own key under K's name: A has no key for K, so it waits.
    forged = forge(k.id, a.db, [{"record_id": "'planted'", "change_data": '{"id":"planted","body":"forged","n":1}'}],
                   signer=m, sender=m.id)
    code, reply = push(m, a, forged)
    assert code == 200 and reply["accepted"] == 0 and reply["deferred"] == 1, reply
    assert reply["held"][0]["device_id"] == k.id and reply["held"][0]["reason"] == "unknown_origin", reply
    assert state(a) == before
    waiting = status(a)["waiting"]
    assert waiting and waiting[0]["origin"] == k.id and waiting[0]["offered_by"] == m.id, waiting
    # The genuine K:1 arrives later through C, which pairs with K and introduces it to A.
    pair(c, k)
    write(k, "genuine", "from k")
    ok, out = sync(k, c)
    assert ok, out
    wait_until(lambda: ("genuine", "from k", 1) in notes(a), 30, what="K's genuine change at A, through C")
    assert ("planted", "forged", 1) not in notes(a)
    devs = {d["device_id"]: d for d in json.loads(a.cli("devices", "--json").stdout)}
    assert not any(d["quarantined"] for d in devs.values()), devs
    assert devs[k.id]["introduced_by"] == c.id and devs[k.id]["is_authorized"], devs[k.id]
    assert status(a)["waiting"] == []
    still_syncing(a, c, "origin")
    reliability.record("hostile peers", "a trusted device plants a forged first change of a device the receiver does not know yet",
                       applied="0 (held: unknown origin)", genuine_change_later="applied, nobody quarantined",
                       learned_key="by C's introduction")


@pytest.mark.parametrize("strategy", ["local_wins", "manual"])
def test_a_resolution_naming_nothing_it_supersedes_follows_the_table_s_strategy(devices, reliability, strategy):
    a, c, m = trio(devices, strategy=strategy)
    write(a, "r", "mine", 1)
    wait_until(lambda: ("r", "mine", 1) in notes(c), 30, what="A's row at C")
    # M's plain change (so A holds something of M's to name), then a 'resolution' of 'r' that
    # names only that change, stamped a minute ahead.
    batch = own_change(m, a, [{}, {}])
    first, res = batch["changes"]
    res.update({"record_id": "'r'", "operation": "UPDATE", "change_data": '{"body":"theirs"}', "resolution": True,
                "bases": json.dumps({"cols": {"body": [f"{m.id}:{first['version']}"]}}),
                "timestamp": res["timestamp"] + 60_000_000})
    rechain(batch["changes"], {m.id: held_head(a.db, m.id)[1]})
    batch["signatures"] = [head_signature(m, m.id, res["version"], res["hash"])]
    code, reply = push(m, a, batch)
    assert code == 200 and reply["accepted"] == 2, reply
    assert ("r", "mine", 1) in notes(a), f"{strategy}: the foreign 'resolution' overrode A's value"
    pending = json.loads(a.cli("conflicts", "list", "--json").stdout)
    if strategy == "manual":
        assert len(pending) == 1 and pending[0]["status"] == "pending", pending
    else:
        assert not pending and reply["resolutions"] == 1, (pending, reply)
    still_syncing(a, c, "resolution")
    reliability.record("hostile peers", f"a change flagged as a resolution, naming none of the writers it would supersede ({strategy} table)",
                       outcome="A's value kept, " + ("a pending conflict" if strategy == "manual" else "a resolution written"))


def test_a_change_stamped_far_ahead_waits_and_the_clock_does_not_jump(devices, reliability):
    a, c, m = trio(devices)
    before = state(a)
    batch = own_change(m, a, [{"timestamp": MAX_TIMESTAMP - 1}])
    code, reply = push(m, a, batch)
    assert code == 200 and reply["accepted"] == 0 and reply["held"][0]["reason"] == "clock_ahead", reply
    assert state(a) == before
    assert status(a)["waiting"][0]["reason"] == "clock_ahead"
    write(a, "after")
    wait_until(lambda: a.sql("SELECT count(*) FROM sync_log WHERE record_id = ? AND version IS NOT NULL", ("'after'",))[0][0], 10,
               what="A's write sealed")
    (ts,), = a.sql("SELECT timestamp FROM sync_log WHERE record_id = ?", ("'after'",))
    assert ts < (time.time() + 86_400) * 1_000_000, f"A's clock jumped to {ts}"
    still_syncing(a, c, "clock")
    reliability.record("hostile peers", "a change stamped in the year 9999", applied="0 (held: clock ahead)",
                       later_local_writes="stamped at the wall clock")


def with_host(prepared, host):
    prepared.headers["Host"] = host
    return prepared


def test_signatures_are_bound_to_the_receiver_and_survive_its_restart(devices, reliability):
    a, c, m = trio(devices)
    pull = {"since": {}, "limit": 1}
    c_host = urllib.parse.urlsplit(c.url).netloc
    # Signed for C, sent to A.
    code, reply = send(with_host(signed("POST", f"{c.url}/sync/pull", signer(m), pull), c_host), url=f"{a.url}/sync/pull")
    assert code == 401 and "not this server" in err(reply), (code, reply)
    # Signed for a name A does not have.
    code, reply = send(with_host(signed("POST", "http://evil.example:1/sync/pull", signer(m), pull), "evil.example:1"), url=f"{a.url}/sync/pull")
    assert code == 401 and "not this server" in err(reply), (code, reply)
    # Signed with A's own key.
    code, reply = send(signed("POST", f"{a.url}/sync/pull", signer(a), pull))
    assert code == 401 and "own key" in err(reply), (code, reply)
    # A genuine request, replayed after A restarts.
    p = signed("POST", f"{a.url}/sync/pull", signer(m), pull)
    assert send(p)[0] == 200
    a.stop()
    a.serve("127.0.0.1", urllib.parse.urlsplit(a.url).port, [c.url], interval="1")
    code, reply = send(p)
    assert code == 401 and "nonce already used" in err(reply), (code, reply)
    still_syncing(a, c, "replay")
    reliability.record("hostile peers", "requests signed for another server, for a made-up host, with the receiver's own key, and replayed after a restart",
                       refused="4 of 4 (401)")


def test_silent_connections_cannot_hold_a_trusted_peer_off(devices, reliability):
    a, c, m = trio(devices)
    port = urllib.parse.urlsplit(a.url).port
    socks = []
    for i in range(600):
        s = socket.socket()
        s.bind((f"127.0.1.{10 + i % 200}", 0))
        try:
            s.connect(("127.0.0.1", port))
            socks.append(s)
        except OSError:
            s.close()
    try:
        time.sleep(0.5)
        t = time.time()
        code, _ = send(signed("GET", f"{a.url}/conflicts", signer(c)))
        took = time.time() - t
        assert code == 200 and took < 1.0, (code, took)
        ok, out = sync(m, a)
        assert ok, out
    finally:
        for s in socks:
            s.close()
    still_syncing(a, c, "slots")
    reliability.record("hostile peers", "600 silent connections from 200 loopback addresses, then a trusted peer's request",
                       silent_connections=len(socks), trusted_request_ms=round(took * 1000), served="yes")


class LongNonce(rhs.HTTPSignatureAuth):
    def get_nonce(self, request):
        return "n" * 40_000


def test_oversized_nonces_and_open_queries_and_doubled_digests_are_refused(devices, reliability):
    a, c, m = trio(devices)
    auth = LongNonce(signature_algorithm=rhs.algorithms.ED25519, key=m.key_pem(), key_id=m.id, use_nonce=True)
    code, reply = send(signed("GET", f"{a.url}/conflicts", auth))
    assert code == 401 and "longer than 128 bytes" in err(reply), (code, reply)
    # Method and path only: the query (and the host) would be open.
    only_path = rhs.HTTPSignatureAuth(signature_algorithm=rhs.algorithms.ED25519, key=m.key_pem(), key_id=m.id,
                                      use_nonce=True, covered_component_ids=("@method", "@path"))
    code, reply = send(signed("GET", f"{a.url}/conflicts?status=pending", only_path))
    assert code == 401 and "must cover" in err(reply), (code, reply)
    # Two Content-Digest headers.
    p = signed("POST", f"{a.url}/sync/pull", signer(m), {"since": {}})
    conn = http.client.HTTPConnection("127.0.0.1", urllib.parse.urlsplit(a.url).port, timeout=10)
    conn.putrequest("POST", "/sync/pull", skip_accept_encoding=True)
    for k, v in p.headers.items():
        conn.putheader(k, v)
    conn.putheader("Content-Digest", "sha-256=:AAAA:")
    conn.endheaders(p.body)
    r = conn.getresponse()
    body = r.read().decode()
    assert r.status == 401 and "one Content-Digest" in body, (r.status, body)
    # A 100 KB header.
    s = socket.create_connection(("127.0.0.1", urllib.parse.urlsplit(a.url).port), timeout=10)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
    head = s.recv(200)
    s.close()
    assert head == b"" or b" 431 " in head.split(b"\r\n")[0], head
    assert send(signed("GET", f"{a.url}/conflicts", signer(m)))[0] == 200, "A still serves"
    still_syncing(a, c, "edge")
    reliability.record("hostile peers", "a 40 KB nonce, a signature over method and path only, two Content-Digest headers, a 100 KB header",
                       refused="4 of 4")


def test_a_device_over_its_quota_waits_and_the_others_go_on(devices, reliability):
    a, c, m = trio(devices, a_extra=("--origin-burst-mib", "1", "--origin-mib-per-hour", "1"))
    body = "z" * 50_000
    sent = 0
    held = None
    for round_ in range(3):
        batch = own_change(m, a, [{"record_id": f"'big{round_}-{i}'",
                                    "change_data": json.dumps({"id": f"big{round_}-{i}", "body": body, "n": i})}
                                   for i in range(20)])
        code, reply = push(m, a, batch)
        assert code == 200, reply
        sent += len(batch["changes"])
        held = held or next((h for h in reply.get("held", []) if h["reason"] == "quota"), None)
    assert held and held["device_id"] == m.id, held
    got = a.sql("SELECT count(*) FROM sync_log WHERE device_id = ?", (m.id,))[0][0]
    assert got < sent and got * 50_000 < 1.5 * 2**20, (got, sent)
    assert any(w["reason"] == "quota" for w in status(a)["waiting"])
    metrics = requests.get(f"{a.url}/metrics", timeout=5).text
    assert 'reason="quota"' in metrics, metrics[-500:]
    still_syncing(a, c, "quota")
    reliability.record("hostile peers", "a trusted device pushes 3 MB of changes to a receiver with a 1 MiB per-device quota",
                       changes_sent=sent, applied=got, others="kept syncing", shown_in="status, /metrics")


def test_address_pinning_can_be_lifted_and_key_files_are_guarded(devices, tmp_path, reliability):
    a, c, m = trio(devices)
    a.cli("trust", m.id, m.public_key, "--tailscale-ip", "127.0.0.9")
    code, reply = send(signed("GET", f"{a.url}/conflicts", signer(m)))
    assert code == 403 and "must connect from its address" in err(reply), (code, reply)
    a.cli("trust", m.id, m.public_key, "--no-tailscale-ip")
    assert send(signed("GET", f"{a.url}/conflicts", signer(m)))[0] == 200
    # A key in a folder others can write, and a key another user owns, are refused.
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    key = open_dir / "m.pem"
    shutil.copy(m.key_file, key)
    os.chmod(key, 0o600)
    r = m.cli("sync", "--peer", a.url, "--key", str(key), check=False)
    assert r.returncode != 0 and "could be swapped" in r.stderr, r.stderr
    os.chmod(open_dir, 0o700)
    os.chown(key, 65534, 65534)
    r = m.cli("sync", "--peer", a.url, "--key", str(key), check=False)
    assert r.returncode != 0 and "belongs to another user" in r.stderr, r.stderr
    # init never takes over an existing key file by itself.
    fresh = tmp_path / "fresh.db"
    sqlite3.connect(fresh).close()
    r = subprocess.run([str(BIN), "init", "--db", str(fresh), "--name", "x", "--key", str(m.key_file)],
                       capture_output=True, text=True, env=m.env)
    assert r.returncode != 0 and "--adopt-key" in r.stderr, r.stderr
    still_syncing(a, c, "keys")
    reliability.record("hostile peers", "a pinned address cleared; key files in an open folder or another user's; init over an existing key",
                       refused="3 of 3", cleared_pin="yes")
