# Real sidecars on loopback addresses syncing real databases: random concurrent writes by an app
# (/usr/bin/python3), two and three peers (A<->B<->C), a peer killed mid-sync, a peer down for a while.
import signal
import sqlite3
import subprocess
import time

import pytest

from conftest import HELPERS, SYSTEM_PYTHON, free_port, load_ext, pair, table_rows, wait_until


def vector(dev):
    con = sqlite3.connect(dev.db, timeout=30)
    v = con.execute("SELECT device_id, version FROM sync_vector ORDER BY 1").fetchall()
    con.close()
    return v


def log_count(dev):
    return dev.sql("SELECT count(*) FROM sync_log")[0][0]


def converged(devs):
    rows = [table_rows(d.db) for d in devs]
    vecs = [vector(d) for d in devs]
    return all(r == rows[0] for r in rows) and all(v == vecs[0] for v in vecs) and len(vecs[0]) > 0


def writers(devs, count=250, pause_ms=6):
    return [subprocess.Popen([SYSTEM_PYTHON, str(HELPERS / "writer.py"), str(d.db), str(i + 1), str(count), str(pause_ms)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i, d in enumerate(devs)]


def finish(procs):
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, f"the app's writes failed while syncing:\n{out}\n{err}"


def verify_ok(dev):
    con = sqlite3.connect(dev.db, timeout=30)
    load_ext(con)
    import json
    v = json.loads(con.execute("SELECT sync_verify()").fetchone()[0])
    con.close()
    assert v["ok"], v


def test_two_peers_converge_under_concurrent_writes(devices):
    a, b = devices("a"), devices("b")
    pair(a, b)
    a.track(), b.track()
    port = free_port()
    a.url, b.url = f"http://127.0.0.1:{port}", f"http://127.0.0.2:{port}"
    a.serve("127.0.0.1", port, [b.url])
    b.serve("127.0.0.2", port, [a.url])
    finish(writers([a, b]))
    wait_until(lambda: converged([a, b]), timeout=60, what="A and B identical")
    assert len(table_rows(a.db)) > 50
    for d in (a, b):
        verify_ok(d)
        assert d.sql("SELECT count(*) FROM sync_conflicts WHERE status = 'pending'")[0][0] == 0
    m = a.metrics()
    assert m["peersync_changes_sent_total"] > 0 and m["peersync_changes_received_total"] > 0
    assert a.stop() == 0 and b.stop() == 0


def test_three_peers_in_a_line_converge(devices):
    """A<->B<->C with no A<->C link: B relays, with the origins' head signatures (all trust all)."""
    a, b, c = devices("a"), devices("b"), devices("c")
    pair(a, b, c)
    for d in (a, b, c):
        d.track()
    port = free_port()
    a.url, b.url, c.url = (f"http://127.0.0.{i}:{port}" for i in (1, 2, 3))
    a.serve("127.0.0.1", port, [b.url])
    b.serve("127.0.0.2", port, [a.url, c.url])
    c.serve("127.0.0.3", port, [b.url])
    finish(writers([a, b, c], count=200))
    wait_until(lambda: converged([a, b, c]), timeout=90, what="A, B and C identical")
    for d in (a, b, c):
        verify_ok(d)
    log_a = log_count(a)
    assert log_count(b) == log_a and log_count(c) == log_a, "a change was lost or duplicated"


def test_relay_learns_the_origin_by_introduction_and_forwards_its_signatures(devices):
    """A-B-C-D in a line; each trusts its neighbours, and A and D also trust each other (keys
    only, no link). C was never paired with A: it learns A's key from a neighbour's introduction
    (B or D), so it applies A's changes only under A's signature, and passes them on."""
    a, b, c, d = (devices(n) for n in "abcd")
    for x, y in ((a, b), (b, c), (c, d), (a, d)):
        pair(x, y)
    for x in (a, b, c, d):
        x.track()
    port = free_port()
    a.url, b.url, c.url, d.url = (f"http://127.0.0.{i}:{port}" for i in (1, 2, 3, 4))
    a.serve("127.0.0.1", port, [b.url])
    b.serve("127.0.0.2", port, [a.url, c.url])
    c.serve("127.0.0.3", port, [b.url, d.url])
    d.serve("127.0.0.4", port, [c.url])
    finish(writers([a, d], count=60))
    wait_until(lambda: converged([a, b, c, d]), timeout=90, what="A, B, C and D identical")
    (by,), = c.sql("SELECT introduced_by FROM sync_devices WHERE device_id = ?", (a.id,))
    assert by in (b.id, d.id), "a neighbour that trusts A introduced it to C"
    assert c.sql("SELECT count(*) FROM sync_signatures WHERE device_id = ?", (a.id,))[0][0] > 0
    for x in (a, b, c, d):
        verify_ok(x)


def fill(dev, n):
    con = sqlite3.connect(dev.db, timeout=30)
    con.executemany("INSERT INTO notes VALUES (?, ?, ?)", ((f"r{i:06}", "x" * 40, i) for i in range(n)))
    con.commit()
    con.close()


@pytest.mark.parametrize("victim", ["receiver", "puller"])
def test_peer_killed_mid_sync_converges_after_restart(devices, victim):
    """A holds 20000 changes. B gets them by A pushing (victim=receiver: B is killed while being
    pushed to) or by pulling them itself (victim=puller). SIGKILL B mid-way, restart it: B ends
    with everything, nothing duplicated, every chain verifies."""
    a, b = devices("a"), devices("b")
    pair(a, b)
    fill(a, 20000)
    a.track(), b.track()
    port = free_port()
    a.url, b.url = f"http://127.0.0.1:{port}", f"http://127.0.0.2:{port}"
    if victim == "receiver":
        b.serve("127.0.0.2", port, [])
        a.serve("127.0.0.1", port, [b.url], "--page", "300")
        b_args = []
    else:
        a.serve("127.0.0.1", port, [])
        b_args = [a.url]
        b.serve("127.0.0.2", port, b_args, "--page", "300")
    got = wait_until(lambda: (n := log_count(b)) > 1000 and n, timeout=60, every=0.02, what="B mid-sync")
    b.stop(signal.SIGKILL)
    assert got < 20000, "the sync finished before the kill; nothing was tested"
    after_kill = log_count(b)
    b.serve("127.0.0.2", port, b_args, "--page", "300")
    wait_until(lambda: converged([a, b]), timeout=90, what="B caught up after the restart")
    assert after_kill < 20000 and log_count(b) == log_count(a) == 20000
    assert len(table_rows(b.db)) == 20000
    verify_ok(b)


def test_peer_down_for_a_while_is_retried_and_caught_up(devices):
    a, b = devices("a"), devices("b")
    pair(a, b)
    a.track(), b.track()
    port = free_port()
    a.url, b.url = f"http://127.0.0.1:{port}", f"http://127.0.0.2:{port}"
    a.serve("127.0.0.1", port, [b.url])
    for i in range(50):
        a.sql("INSERT INTO notes VALUES (?, 'while b is down', ?)", (f"d{i}", i))
    key = f'peersync_peer_consecutive_failures{{peer="{b.url}"}}'
    wait_until(lambda: a.metrics().get(key, 0) >= 3, timeout=30, what="A retrying B")
    assert a.metrics().get('peersync_errors_total{kind="unreachable"}', 0) >= 3
    time.sleep(1)
    b.serve("127.0.0.2", port, [])
    wait_until(lambda: converged([a, b]), timeout=30, what="B caught up")
    wait_until(lambda: a.metrics().get(key) == 0, timeout=10, what="A's failure count reset")
    status = a.cli("status").stdout
    assert "0 not yet on every peer" in status, status


def test_sigterm_mid_sync_finishes_the_page_and_loses_nothing(devices):
    a, b = devices("a"), devices("b")
    pair(a, b)
    fill(a, 20000)
    a.track(), b.track()
    port = free_port()
    a.url, b.url = f"http://127.0.0.1:{port}", f"http://127.0.0.2:{port}"
    b.serve("127.0.0.2", port, [])
    a.serve("127.0.0.1", port, [b.url], "--page", "300")
    wait_until(lambda: log_count(b) > 1000, timeout=60, every=0.02, what="B mid-sync")
    start = time.time()
    assert a.stop(signal.SIGTERM, timeout=20) == 0
    assert time.time() - start < 10
    partial = log_count(b)
    a.serve("127.0.0.1", port, [b.url], "--page", "300")
    wait_until(lambda: converged([a, b]), timeout=90, what="B caught up")
    assert partial <= 20000 and log_count(b) == 20000
    verify_ok(b)
