# Crash safety: SIGKILL the receiving (and sometimes the sending) sidecar at random points while thousands of changes are applied, over many cycles; nothing corrupt, lost or duplicated.
import os
import random
import signal
import time

import faults_db
from conftest import LONG
from faults_app import bulk_write
from faults_proxy import quiet_port
from sidecar_helpers import pair, table_rows, wait_until

CYCLES = 60 if LONG else 20
CHUNK = 2000          # rows A's app inserts per cycle (plus updates and deletes)
PAGE = "100"          # changes per request and per apply transaction: many transactions per cycle
SEED = 5303


def head(dev, origin):
    return faults_db.vector(dev.db).get(origin.id, 0)


def sealed_head(dev):
    """Waits until the sidecar sealed the app's writes; returns the device's own head version."""
    wait_until(lambda: faults_db.unsealed(dev.db) == 0, timeout=60, every=0.05, what=f"{dev.name} sealed")
    return head(dev, dev)


def test_kill_9_during_apply_loses_and_duplicates_nothing(devices, reliability):
    seed = int(os.environ.get("PEERSYNC_SEED", SEED))
    rnd = random.Random(seed)
    print(f"seed {seed} (PEERSYNC_SEED), {CYCLES} cycles")
    a, b = devices("a"), devices("b")
    pair(a, b)
    a.track(), b.track()
    a_at, b_at = ("127.0.0.1", quiet_port("127.0.0.1", rnd)), ("127.0.0.2", quiet_port("127.0.0.2", rnd))
    a.url, b.url = f"http://{a_at[0]}:{a_at[1]}", f"http://{b_at[0]}:{b_at[1]}"

    def serve_a():
        a.serve(*a_at, [b.url], "--page", PAGE, interval="1")   # A pushes to B

    def serve_b():
        b.serve(*b_at, [a.url], "--page", PAGE, interval="1")   # B pulls from A (and pushes its own)

    serve_a()
    kills = {"receiver": 0, "sender": 0}
    landed = {"before": 0, "during": 0, "after": 0}
    torn = 0
    changes = 0
    for cycle in range(CYCLES):
        victim = a if cycle % 4 == 3 else b
        changes += bulk_write(a.db, f"a{cycle}", CHUNK, updates=200, deletes=100, rnd=rnd)
        changes += bulk_write(b.db, f"b{cycle}", 20, updates=5, deletes=2, rnd=rnd)
        target = sealed_head(a)
        start = head(b, a)
        serve_b()
        threshold = start + rnd.randint(1, max(1, target - start - 1))
        wait_until(lambda: head(b, a) >= threshold, timeout=60, every=0.003, what=f"B past version {threshold} of A")
        time.sleep(rnd.uniform(0, 0.015))
        victim.stop(signal.SIGKILL)
        kills["receiver" if victim is b else "sender"] += 1
        torn += faults_db.wal_torn_tail(victim.db) > 0
        got = head(b, a)
        landed["before" if got <= start else "during" if got < target else "after"] += 1
        faults_db.assert_intact(victim.db, f"cycle {cycle}: {victim.name} after SIGKILL")
        if victim is a:
            serve_a()
            # B is still receiving: kill it too, a moment later.
            time.sleep(rnd.uniform(0, 0.05))
            b.stop(signal.SIGKILL)
            kills["receiver"] += 1
            torn += faults_db.wal_torn_tail(b.db) > 0
            faults_db.assert_intact(b.db, f"cycle {cycle}: b after SIGKILL")
    serve_b()
    t0 = time.monotonic()
    wait_until(lambda: table_rows(a.db) == table_rows(b.db) and faults_db.vector(a.db) == faults_db.vector(b.db)
               and faults_db.unsealed(a.db) == faults_db.unsealed(b.db) == 0,
               timeout=120, every=0.2, what="A and B identical after the last restart")
    caught_up = round(time.monotonic() - t0, 2)
    reliability.record(
        "crash safety",
        f"A's app writes {CHUNK} inserts + 300 updates/deletes per cycle, B's 27; B's sidecar pulls (A's pushes), "
        f"{PAGE} changes per apply transaction; SIGKILL at a random point of the transfer, the receiver "
        "(3 cycles in 4) or the sender then the receiver (1 in 4); checks after every kill",
        cycles=CYCLES, seed=seed, changes=changes, kills_receiver=kills["receiver"], kills_sender=kills["sender"],
        kills_mid_transfer=landed["during"], kills_before_transfer=landed["before"],
        kills_after_transfer=landed["after"], kills_with_torn_wal=torn, caught_up_in_s=caught_up)
    for d in (a, b):
        faults_db.assert_intact(d.db, d.name)
    va, vb = faults_db.vector(a.db), faults_db.vector(b.db)
    assert va == vb and va[a.id] >= 1 and va[b.id] >= 1
    counts = [d.sql("SELECT device_id, count(*) FROM sync_log GROUP BY 1 ORDER BY 1") for d in (a, b)]
    assert counts[0] == counts[1] == sorted(va.items()), f"log counts per origin {counts} differ from the vector {va}"
    assert sum(va.values()) == changes, f"{changes} app writes, {sum(va.values())} changes in the vector"
    assert len(table_rows(b.db)) > CHUNK * CYCLES * 0.8
    assert landed["during"] >= CYCLES // 2, f"too few kills landed mid-transfer: {landed}"
    assert a.stop() == 0 and b.stop() == 0
