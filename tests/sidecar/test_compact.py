# Bounded history with real processes: `peersync compact` and serve's background compaction
# remove what every trusted device holds, and a device that lacks compacted changes joins from
# a peer's snapshot (fetched in chunks over signed HTTP) and then syncs incrementally.
import json
import signal
import sqlite3
import subprocess
import time

from conftest import BIN, free_port, pair, signed, signer, send, table_rows, wait_until


def status(dev):
    return json.loads(dev.cli("status", "--json").stdout)


def edit_many(dev, n):
    con = dev.connect()
    con.execute("INSERT INTO notes VALUES ('busy', 'v0', 0)")
    for i in range(1, n + 1):
        con.execute("UPDATE notes SET body = ?, n = ? WHERE id = 'busy'", (f"v{i}", i))
    con.commit()
    con.close()


def test_compaction_and_a_new_device_joining_by_snapshot(devices):
    a, b = devices("a"), devices("b")
    pair(a, b)
    for d in (a, b):
        d.track()
    # An untracked table of b's: it never leaves b, in a snapshot or otherwise.
    b.sql("CREATE TABLE secrets(x)")
    b.sql("INSERT INTO secrets VALUES ('private to b')")
    edit_many(a, 3000)
    a.sql("INSERT INTO notes VALUES ('other', 'kept', 7)")
    b.serve("127.0.0.2", free_port(), (), "--compact-interval", "1")
    a.cli("sync", "--peer", b.url)
    before = status(a)["log"]["entries"]
    assert before > 3000

    out = a.cli("compact").stdout
    assert "compacted: " in out and f"of {before} changes removed" in out, out
    after = status(a)
    assert after["log"]["entries"] <= 5, after["log"]
    assert after["log"]["compacted"] >= 2990
    assert "changes compacted away" in a.cli("status").stdout
    assert "every hash and chain verifies" in a.cli("verify").stdout
    # Nothing left to do the second time.
    assert "nothing to compact" in a.cli("compact").stdout

    # b compacts by itself in the background, and says so in /metrics and the log.
    wait_until(lambda: b.metrics().get("peersync_log_compacted", 0) >= 2990, what="b's background compaction")
    assert b.metrics()["peersync_compacted_total"] >= 2990
    assert "compacted the log" in b.log.read_text()

    # A new device, paired with both, that wrote something before it first syncs.
    c = devices("c")
    pair(a, b, c)
    c.track()
    c.sql("INSERT INTO notes VALUES ('from c', 'written before joining', 1)")
    r = c.cli("sync", "--peer", b.url)
    assert "synced with" in r.stdout, r.stdout
    assert "joining from its snapshot" in r.stderr and "joined from the peer's snapshot" in r.stderr, r.stderr
    assert table_rows(c.db) == table_rows(b.db)
    assert ("from c", "written before joining", 1) in table_rows(b.db)
    assert ("busy", "v3000", 3000) in table_rows(c.db)
    assert "every hash and chain verifies" in c.cli("verify").stdout
    assert status(c)["log"]["anchors"], "c's chains go on from the anchors it took"
    # The snapshot b took holds the tracked rows and sync state, nothing else of b's.
    snaps = list(b.db.parent.glob("b.db.snapshots/*.db"))
    assert len(snaps) == 1, snaps
    con = sqlite3.connect(snaps[0])
    names = {n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    con.close()
    assert "secrets" not in names and not any("secrets" in n for n in names), names
    assert "took a snapshot" in b.log.read_text()
    assert not list(c.db.parent.glob("c.db.bootstrap-*")), "the download is removed once applied"

    # From here on, incremental sync, every way.
    c.sql("UPDATE notes SET body = 'c edits busy' WHERE id = 'busy'")
    c.cli("sync", "--peer", b.url)
    a.cli("sync", "--peer", b.url)
    assert table_rows(a.db) == table_rows(b.db) == table_rows(c.db)
    assert ("busy", "c edits busy", 3000) in table_rows(a.db)
    b.stop()


def test_snapshot_routes_refuse_bad_input_and_strangers(devices):
    a, b, stranger = devices("a"), devices("b"), devices("stranger")
    pair(a, b)
    b.track()
    b.serve("127.0.0.2", free_port())
    me = signer(a)
    for body, want in [
        ({"resume": "../../etc/passwd"}, "32 lowercase hex"),
        ({"bogus": 1}, "unknown field"),
    ]:
        status_code, reply = send(signed("POST", f"{b.url}/sync/snapshot", me, body))
        assert status_code == 400 and want in reply["error"], (status_code, reply)
    for body, want, code in [
        ({"id": "0" * 32, "offset": 0}, "no snapshot", 404),
        ({"id": "x" * 32, "offset": 0}, "32 lowercase hex", 400),
        ({"id": "0" * 32}, "offset", 400),
    ]:
        status_code, reply = send(signed("POST", f"{b.url}/sync/snapshot/chunk", me, body))
        assert status_code == code and want in reply["error"], (status_code, reply)
    # A real one, fetched past its end.
    status_code, info = send(signed("POST", f"{b.url}/sync/snapshot", me, {}))
    assert status_code == 200 and info["size"] > 0 and len(info["sha256"]) == 64, info
    status_code, reply = send(signed("POST", f"{b.url}/sync/snapshot/chunk", me, {"id": info["id"], "offset": info["size"] + 1}))
    assert status_code == 400 and "past its end" in reply["error"], reply
    # Resuming a kept snapshot answers for it, not a new one.
    status_code, again = send(signed("POST", f"{b.url}/sync/snapshot", me, {"resume": info["id"]}))
    assert status_code == 200 and again["id"] == info["id"]
    # However often asked, at most two snapshots are kept on disk.
    for _ in range(3):
        assert send(signed("POST", f"{b.url}/sync/snapshot", me, {}))[0] == 200
    assert len(list(b.db.parent.glob("b.db.snapshots/*.db"))) == 2
    assert len(list(b.db.parent.glob("b.db.snapshots/*.json"))) == 2
    # A device b does not trust gets nothing.
    status_code, reply = send(signed("POST", f"{b.url}/sync/snapshot", signer(stranger), {}))
    assert status_code in (401, 403), (status_code, reply)
    b.stop()


def test_a_cut_snapshot_download_resumes(devices):
    a, x, b = devices("a"), devices("x"), devices("b")
    pair(a, x)
    a.track()
    x.track()
    con = a.connect()
    con.executemany("INSERT INTO notes VALUES (?, ?, ?)", ((f"r{i:06}", "z" * 200, i) for i in range(120000)))
    con.commit()
    con.close()
    x.serve("127.0.0.3", free_port())
    a.cli("sync", "--peer", x.url)
    x.stop()
    a.cli("compact")
    pair(a, b)
    b.track()
    a.serve("127.0.0.2", free_port())
    # The first attempt is frozen as soon as part of the snapshot has arrived, then killed.
    proc = subprocess.Popen([str(BIN), "sync", "--db", str(b.db), "--peer", a.url], env=b.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part = None
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        found = list(b.db.parent.glob("b.db.bootstrap-*.part"))
        if found and found[0].stat().st_size > 0:
            proc.send_signal(signal.SIGSTOP)
            part = found[0]
            break
        time.sleep(0.001)
    assert part is not None, "the download was caught under way"
    size = part.stat().st_size
    proc.kill()
    proc.wait()
    total = json.loads((a.db.parent / "a.db.snapshots" / (part.name.split("bootstrap-")[1][:-5] + ".json")).read_text())["size"]
    assert 0 < size < total, (size, total)
    assert table_rows(b.db) == [], "nothing applied by the cut attempt"
    # The next sync resumes the same snapshot from where it was cut.
    r = b.cli("sync", "--peer", a.url)
    assert "resuming the snapshot download where it was cut" in r.stderr, r.stderr
    assert a.log.read_text().count("took a snapshot") == 1
    assert len(table_rows(b.db)) == 120000 and table_rows(b.db) == table_rows(a.db)
    assert not list(b.db.parent.glob("b.db.bootstrap-*"))
    assert "every hash and chain verifies" in b.cli("verify").stdout
    a.stop()


def test_a_device_compacts_for_devices_it_only_hears_of_through_a_peer(devices):
    # a — b — c: a and c each sync with b only. b's answer to a's hello says what c holds.
    a, b, c = devices("a"), devices("b"), devices("c")
    pair(a, b, c)
    for d in (a, b, c):
        d.track()
    edit_many(a, 200)
    b.serve("127.0.0.2", free_port())
    a.cli("sync", "--peer", b.url)
    c.cli("sync", "--peer", b.url)
    assert "nothing to compact" in a.cli("compact").stdout, "a does not know yet what c holds"
    # c's next sync tells b what c holds now; a's next sync, what b knows.
    c.cli("sync", "--peer", b.url)
    a.cli("sync", "--peer", b.url)
    out = a.cli("compact").stdout
    assert "compacted: " in out, out
    assert status(a)["log"]["compacted"] >= 190
    a.sql("UPDATE notes SET body = 'after' WHERE id = 'busy'")
    a.cli("sync", "--peer", b.url)
    c.cli("sync", "--peer", b.url)
    assert table_rows(a.db) == table_rows(b.db) == table_rows(c.db)
    b.stop()


def test_compaction_killed_midway_leaves_a_log_that_verifies_and_goes_on(devices):
    a, x = devices("a"), devices("x")
    pair(a, x)
    a.track()
    x.track()
    edit_many(a, 150000)
    x.serve("127.0.0.3", free_port(), (), "--origin-burst-mib", "4096", "--origin-mib-per-hour", "4096")
    a.cli("sync", "--peer", x.url)
    rows = table_rows(a.db)
    before = status(a)["log"]["entries"]
    # The sidecar compacts in the background; it is killed (-9) while at it, three times.
    done, midway = 0, 0
    for attempt in range(3):
        a.serve("127.0.0.2", free_port(), (), "--compact-interval", "1", log_name=f"a{attempt}.log")
        wait_until(lambda: status(a)["log"]["compacted"] > done, every=0.02, what="compaction under way")
        a.stop(signal.SIGKILL)
        done = status(a)["log"]["compacted"]
        midway += done < before - 10
        assert "every hash and chain verifies" in a.cli("verify").stdout
        assert table_rows(a.db) == rows
    assert midway, "a kill landed while compaction was under way"
    a.cli("compact")
    after = status(a)
    assert after["log"]["entries"] < before - 140000 and after["log"]["compacted"] == before - after["log"]["entries"]
    assert "every hash and chain verifies" in a.cli("verify").stdout
    assert table_rows(a.db) == rows
    x.stop()


def test_pushing_to_a_device_behind_the_anchors_is_reported_and_does_not_stop_the_pull(devices):
    a, x, c = devices("a"), devices("x"), devices("c")
    pair(a, x)
    a.track()
    x.track()
    edit_many(a, 100)
    x.serve("127.0.0.3", free_port())
    a.cli("sync", "--peer", x.url)
    a.cli("compact")
    pair(a, c)
    c.track()
    c.sql("INSERT INTO notes VALUES ('from c', 'c wrote this', 1)")
    c.serve("127.0.0.4", free_port())
    # a pushes to c, which lacks what a compacted: reported, and c's own change still comes.
    r = a.cli("sync", "--peer", c.url, check=False)
    assert r.returncode == 1 and "lacks changes compacted here" in r.stderr, r.stderr
    assert ("from c", "c wrote this", 1) in table_rows(a.db)
    link = [l for l in status(a)["links"] if l["url"] == c.url][0]
    assert link["state"] == "failing" and "snapshot" in link["last_error"], link
    c.stop()
    # c joins from a's snapshot when it syncs with a.
    a.serve("127.0.0.2", free_port())
    c.cli("sync", "--peer", a.url)
    assert table_rows(a.db) == table_rows(c.db)
    a.stop()
    x.stop()


def test_a_failing_background_compaction_shows_in_status_metrics_and_the_log(devices):
    a, x = devices("a"), devices("x")
    pair(a, x)
    a.track()
    x.track()
    edit_many(a, 50)
    x.serve("127.0.0.3", free_port())
    a.cli("sync", "--peer", x.url)
    a.sql("CREATE TRIGGER refuse BEFORE DELETE ON sync_log BEGIN SELECT RAISE(ABORT, 'no deletes today'); END")
    a.serve("127.0.0.2", free_port(), (), "--compact-interval", "1")
    wait_until(lambda: a.metrics().get("peersync_compaction_failing") == 1, what="the failure in /metrics")
    assert "COMPACTION FAILING since" in a.cli("status").stdout and "no deletes today" in a.cli("status").stdout
    assert "compaction failed" in a.log.read_text() and a.metrics()['peersync_errors_total{kind="compaction"}'] >= 1
    # Syncing goes on meanwhile.
    a.sql("INSERT INTO notes VALUES ('during', 'still syncs', 1)")
    a.cli("sync", "--peer", x.url)
    assert ("during", "still syncs", 1) in table_rows(x.db)
    a.sql("DROP TRIGGER refuse")
    wait_until(lambda: a.metrics().get("peersync_compaction_failing") == 0, what="the next pass to succeed")
    assert status(a)["log"]["compaction_error"] is None and status(a)["log"]["compacted"] >= 40
    a.stop()
    x.stop()
