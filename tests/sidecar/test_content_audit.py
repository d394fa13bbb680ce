# The cross-device audit and truthful status, through real sidecars on loopback: a silent
# divergence is found, reported (status, /metrics, the log), narrowed to its record by
# `peersync check`, and cleared once fixed; a refused peer shows as failing, with why and since.
import json
import subprocess

from conftest import BIN, free_port, pair, table_rows, wait_until


def uncaptured_update(dev, sql):
    """A write the capture triggers do not see (they are dropped, then installed again)."""
    con = dev.connect()
    names = [n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'notes'")]
    for n in names:
        con.execute(f'DROP TRIGGER "{n}"')
    con.execute(sql)
    con.commit()
    con.close()
    dev.track("notes")


def status(dev):
    return json.loads(dev.cli("status", "--json").stdout)


def check(dev, peer, *extra):
    cmd = [str(BIN), "check", "--db", str(dev.db), "--peer", peer.url, *extra]
    return subprocess.run(cmd, env=dev.env, capture_output=True, text=True, timeout=120)


def test_a_silent_divergence_is_found_reported_narrowed_and_cleared(devices):
    a, b = devices("a"), devices("b")
    pair(a, b)
    a.track()
    b.track()
    a.sql("INSERT INTO notes VALUES ('n1', 'one', 1), ('n2', 'two', 2), ('n3', 'three', 3)")
    a.serve("127.0.0.1", free_port(), interval="1")
    b.serve("127.0.0.2", a.port, [a], "--audit-interval", "0.5", interval="1")
    wait_until(lambda: table_rows(b.db) == table_rows(a.db), what="b has a's rows")
    r = check(b, a)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "same: 1 table(s)" in r.stdout

    uncaptured_update(b, "UPDATE notes SET body = 'THREE' WHERE id = 'n3'")
    assert table_rows(b.db) != table_rows(a.db)
    assert status(b)["log"]["unsynced"] == 0, "the logs agree: nothing says the devices differ"
    found = wait_until(lambda: status(b)["divergences"], what="the audit records a divergence")
    assert [(d["peer"], d["table"]) for d in found] == [(a.id, "notes")]
    assert b.metrics()["peersync_divergences"] == 1
    assert b.metrics()[f'peersync_divergent_table{{peer="{a.id}",table="notes"}}'] == 1
    wait_until(lambda: "DIVERGENCE" in b.log.read_text(), what="an error in b's log")
    assert "ERROR" in [line for line in b.log.read_text().splitlines() if "DIVERGENCE" in line][0]
    human = b.cli("status").stdout
    assert "DIVERGED:  table notes differs from device " + a.id in human, human

    before = (table_rows(a.db), table_rows(b.db))
    r = check(b, a)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "DIVERGED: table notes: 1 record(s) differ" in r.stdout
    assert "'n3'" in r.stdout and "'n1'" not in r.stdout and "'n2'" not in r.stdout
    assert "differ" in r.stderr
    assert (table_rows(a.db), table_rows(b.db)) == before, "a check changes no rows"
    assert status(b)["divergences"][0]["records"] == ["'n3'"]
    # From the other side too.
    r = check(a, b, "--no-sync")
    assert r.returncode == 1 and "'n3'" in r.stdout, r.stdout + r.stderr

    # Settled by a write (it syncs): the next audit finds them the same and clears it.
    b.sql("UPDATE notes SET body = 'three' WHERE id = 'n3'")
    wait_until(lambda: not status(b)["divergences"], what="the divergence cleared")
    assert table_rows(a.db) == table_rows(b.db)
    assert b.metrics()["peersync_divergences"] == 0
    r = check(b, a)
    assert r.returncode == 0, r.stdout + r.stderr


def test_check_says_when_it_cannot_compare(devices):
    a, b = devices("a"), devices("b")
    pair(a, b)
    a.track()
    b.track()
    a.sql("INSERT INTO notes VALUES ('n1', 'one', 1)")
    a.serve("127.0.0.1", free_port())
    r = check(b, a, "--no-sync")  # b has not synced: different changes
    assert r.returncode == 2, r.stdout + r.stderr
    assert "cannot compare" in r.stderr and "sync first" in r.stderr
    r = subprocess.run([str(BIN), "check", "--db", str(b.db), "--peer", "http://127.0.0.1:9"], env=b.env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "unreachable" in r.stderr, r.stderr


def test_a_refused_peer_shows_as_failing_with_why_and_since_and_last_sync_does_not_move(devices):
    a, b = devices("a"), devices("b")
    pair(a, b)
    a.track()
    b.track()
    a.serve("127.0.0.1", free_port(), interval="1")
    b.serve("127.0.0.2", a.port, [a], interval="1")
    b.sql("INSERT INTO notes VALUES ('n1', 'one', 1)")
    wait_until(lambda: table_rows(a.db) == table_rows(b.db), what="a has b's row")
    link = wait_until(lambda: [l for l in status(b)["links"] if l["url"] == a.url and l["state"] == "ok"], what="an ok link")[0]
    assert link["device_id"] == a.id and link["last_success_at"] and link["failures"] == 0
    peer_a = [p for p in status(b)["peers"] if p["device_id"] == a.id][0]
    assert peer_a["lacks"] == 0

    a.cli("revoke", b.id)
    b.sql("INSERT INTO notes VALUES ('n2', 'two', 2)")
    failing = wait_until(lambda: [l for l in status(b)["links"] if l["state"] == "failing"], what="b's link fails")[0]
    assert "403" in failing["last_error"] and failing["failing_since"], failing
    last_ok = [p for p in status(b)["peers"] if p["device_id"] == a.id][0]["last_sync_at"]
    wait_until(lambda: [l for l in status(b)["links"] if l["failures"] >= 3], what="more failed attempts")
    peer_a = [p for p in status(b)["peers"] if p["device_id"] == a.id][0]
    assert peer_a["last_sync_at"] == last_ok, "a refused sync is not a sync"
    assert peer_a["lacks"] == 1 and "403" in peer_a["last_error"]
    human = b.cli("status").stdout
    assert f"link:      {a.url} FAILING since" in human and "REFUSED" in human, human
    assert "sidecar:   serving this file (pid" in human
    assert b.metrics()[f'peersync_peer_failing{{peer="{a.url}"}}'] == 1
    assert b.metrics()[f'peersync_peer_lacks_changes{{device="{a.id}"}}'] == 1
    # A second sidecar on the same file is refused, and says which one serves it.
    r = subprocess.run([str(BIN), "serve", "--db", str(b.db), "--listen", "127.0.0.3:0"], env=b.env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "already serves" in r.stderr and "pid" in r.stderr, r.stderr
    b.stop()
    assert "sidecar:   NOT RUNNING" in b.cli("status").stdout
