# Pushes in flight together: a push that builds on an earlier one still being received waits for
# it, so both apply whole; and a long push leaves the receiver's WAL copied back into the database.
import http.client
import json
import sqlite3
import struct
import threading
import time
import urllib.parse

from conftest import free_port, load_ext, pair, send, signed, signer, table_rows, wait_until
from test_auth import head_signature


def page(dev, since, limit):
    """A signed batch of `dev`'s changes after vector `since`, at most `limit` of them."""
    con = sqlite3.connect(dev.db, timeout=30)
    load_ext(con)
    batch = json.loads(con.execute("SELECT sync_changes(?, ?)", (json.dumps(since), limit)).fetchone()[0])
    con.close()
    last = batch["changes"][-1]
    batch["signatures"] = [head_signature(dev, last["version"], last["hash"])]
    return batch


def paired_with_notes(devices, n, body="from a"):
    """Devices a and b, paired and tracking `notes`; a holds `n` notes."""
    a, b = devices("a"), devices("b")
    pair(a, b)
    a.track()
    b.track()
    con = a.connect()
    con.executemany("INSERT INTO notes VALUES (?, ?, ?)", [(f"n{i:06}", body, i) for i in range(n)])
    con.commit()
    con.close()
    return a, b


def test_a_push_waits_for_the_earlier_push_it_builds_on(devices):
    a, b = paired_with_notes(devices, 200)
    first, second = page(a, {}, 100), page(a, {a.id: 100}, 100)
    assert [c["version"] for c in second["changes"]][:1] == [101]
    b.serve("127.0.0.2", free_port(), ())

    # The first push: headers and half its body, the rest held back.
    p1 = signed("POST", f"{b.url}/sync/push", signer(a), first)
    u = urllib.parse.urlsplit(p1.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.putrequest("POST", u.path)
    for k, v in p1.headers.items():
        conn.putheader(k, v)
    conn.putheader("Content-Length", str(len(p1.body)))
    conn.endheaders()
    half = len(p1.body) // 2
    conn.send(p1.body[:half])
    time.sleep(0.3)

    # The second push, whole, meanwhile: it builds on the first, so it must wait for it.
    second_reply = {}
    t = threading.Thread(target=lambda: second_reply.update(r=send(signed("POST", f"{b.url}/sync/push", signer(a), second))))
    t.start()
    time.sleep(1.0)
    assert t.is_alive(), f"the second push did not wait for the first: {second_reply}"
    assert b.sql("SELECT count(*) FROM notes")[0][0] == 0

    conn.send(p1.body[half:])
    r = conn.getresponse()
    code1, body1 = r.status, json.loads(r.read())
    conn.close()
    t.join(30)
    code2, body2 = second_reply["r"]
    assert (code1, body1["accepted"], body1["deferred"]) == (200, 100, 0), body1
    assert (code2, body2["accepted"], body2["deferred"]) == (200, 100, 0), body2
    assert body2["vector"][a.id] == 200
    assert table_rows(b.db) == table_rows(a.db)


def test_a_push_that_builds_on_nothing_in_flight_does_not_wait(devices):
    """With no earlier push in flight, a push that does not continue what the receiver holds
    applies at once, deferring what it cannot take (as it always did)."""
    a, b = paired_with_notes(devices, 20)
    later = page(a, {a.id: 10}, 10)
    b.serve("127.0.0.2", free_port(), ())
    started = time.time()
    code, body = send(signed("POST", f"{b.url}/sync/push", signer(a), later))
    assert code == 200, body
    assert (body["accepted"], body["deferred"]) == (0, 10), body
    assert time.time() - started < 5
    assert b.sql("SELECT count(*) FROM notes")[0][0] == 0


def wal_backfilled(db):
    """(frames in the WAL, frames copied back into the database), from the WAL index (-shm)."""
    with open(f"{db}-shm", "rb") as f:
        head = f.read(136)
    mx_frame = struct.unpack_from("=I", head, 16)[0]
    n_backfill = struct.unpack_from("=I", head, 96)[0]
    return mx_frame, n_backfill


def test_a_long_push_leaves_the_wal_copied_back(devices):
    """A sync of 20,000 changes writes thousands of pages, far more than SQLite's 1000-page
    checkpoint threshold; the receiver checkpoints (beside its writes) while it keeps running."""
    a, b = paired_with_notes(devices, 20000, body="x" * 200)
    b.serve("127.0.0.2", free_port(), ())
    out = a.cli("sync", "--peer", b.url).stdout
    assert "sent 20000," in out, out
    assert b.sql("SELECT count(*) FROM notes")[0][0] == 20000

    def copied_back():
        # Without checkpoints the WAL would hold every page written (thousands); with them,
        # at most the threshold's worth waits to be copied back.
        frames, done = wal_backfilled(b.db)
        return frames - done < 1000 and (frames, done)

    wait_until(copied_back, timeout=20, what="the receiver's WAL to be checkpointed")
    assert table_rows(b.db) == table_rows(a.db)
