# The command line's small promises: --db anywhere, checked --status values, one error line,
# quiet on a closed pipe, plain log files, release of a revoked device, settled conflicts closed.
import json
import re
import subprocess
import time

from conftest import BIN, free_port, pair, wait_until


def manual_conflict(devices):
    """A and B paired, notes manual, one pending conflict on A; B serving. Returns (a, b, id)."""
    a, b = devices("a"), devices("b")
    pair(a, b)
    a.track(strategy="manual")
    b.track()
    a.sql("INSERT INTO notes VALUES ('n1', 'first', 1)")
    b.serve("127.0.0.2", free_port())
    a.cli("sync", "--peer", b.url)
    a.sql("UPDATE notes SET body = 'edited on a' WHERE id = 'n1'")
    b.sql("UPDATE notes SET body = 'edited on b' WHERE id = 'n1'")
    a.cli("sync", "--peer", b.url)
    listed = a.cli("conflicts", "list").stdout
    return a, b, int(listed.split()[0].lstrip("#"))


def raw(dev, *args, **kw):
    """The binary with exactly these arguments (no --db put in front)."""
    return subprocess.run([str(BIN), *args], env=dev.env, capture_output=True, text=True, **kw)


def test_db_is_accepted_after_the_subcommand(devices):
    a, b, cid = manual_conflict(devices)
    db = str(a.db)
    r = raw(a, "conflicts", "list", "--db", db)
    assert r.returncode == 0 and f"#{cid}" in r.stdout, r.stderr
    r = raw(a, "conflicts", "show", str(cid), "--db", db)
    assert r.returncode == 0 and "edited on b" in r.stdout, r.stderr
    r = raw(a, "conflicts", "resolve", str(cid), "local", "--db", db)
    assert r.returncode == 0 and "resolved" in r.stdout, r.stderr
    r = raw(a, "peers", "list", "--db", db)
    assert r.returncode == 0, r.stderr
    # still required somewhere
    r = raw(a, "conflicts", "list")
    assert r.returncode != 0 and "--db" in r.stderr


def test_status_values_are_checked(devices):
    a = devices("a")
    r = a.cli("conflicts", "list", "--status", "pendng", check=False)
    assert r.returncode == 2 and "invalid value 'pendng'" in r.stderr, r.stderr
    assert "pending" in r.stderr and "resolved" in r.stderr and "ignored" in r.stderr
    for s in ("pending", "resolved", "ignored"):
        assert f"no {s} conflicts" in a.cli("conflicts", "list", "--status", s).stdout


def test_an_error_is_printed_once(devices):
    a = devices("a")
    for args in (("trust", "abc", "def"), ("track", "nope"), ("conflicts", "show", "7")):
        r = a.cli(*args, check=False)
        lines = [l for l in r.stderr.splitlines() if "error:" in l.lower()]
        assert r.returncode == 1 and len(lines) == 1, r.stderr
        # and its message once within the line
        msg = lines[0].split("error:", 1)[1].strip()
        half = msg.split(": ")
        assert len(half) < 2 or half[0] != half[-1], msg


def closed_pipe(dev, *args):
    """Runs the command with its stdout closed before it writes; returns (code, stderr)."""
    p = subprocess.Popen([str(BIN), args[0], "--db", str(dev.db), *args[1:]], env=dev.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()
    err = p.stderr.read().decode()
    return p.wait(timeout=60), err


def test_a_closed_pipe_ends_quietly(devices):
    a, b, cid = manual_conflict(devices)
    for args in (("conflicts", "show", str(cid)), ("conflicts", "list", "--all"), ("status",), ("devices",)):
        code, err = closed_pipe(a, *args)
        assert "panicked" not in err and "Broken pipe" not in err, (args, err)
        assert code == 0, (args, code, err)


def test_a_log_file_has_no_colour_codes(devices):
    a = devices("a")
    a.serve("127.0.0.1", free_port())
    wait_until(lambda: "serving" in a.log.read_text(), what="the serve log line")
    a.stop()
    text = a.log.read_text()
    assert "INFO" in text and "\x1b[" not in text, repr(text[:300])


def test_release_of_a_revoked_device_says_it_stays_revoked(devices):
    a, b = devices("a"), devices("b")
    pair(a, b)
    a.cli("revoke", b.id)
    a.sql("INSERT INTO sync_quarantine(device_id, origin, version, reason) VALUES (?, ?, 3, 'forked chain')", (b.id, b.id))
    out = a.cli("release", b.id).stdout
    assert "stays revoked" in out and "resumes" not in out, out
    devs = json.loads(a.cli("devices", "--json").stdout)
    me = [d for d in devs if d["device_id"] == b.id][0]
    assert not me["is_authorized"] and me["quarantined"] is None
    # a quarantined device still trusted: sync with it resumes
    c = devices("c")
    pair(a, c)
    a.sql("INSERT INTO sync_quarantine(device_id, origin, version, reason) VALUES (?, ?, 3, 'forked chain')", (c.id, c.id))
    assert "resumes" in a.cli("release", c.id).stdout


def test_settled_conflicts_list_no_open_columns(devices):
    a, b, cid = manual_conflict(devices)
    shown = json.loads(a.cli("conflicts", "show", str(cid)).stdout)
    assert shown["open_columns"] == ["body"]
    a.cli("conflicts", "resolve", str(cid), "remote")
    shown = json.loads(a.cli("conflicts", "show", str(cid)).stdout)
    assert shown["status"] == "resolved" and shown["open_columns"] == [], shown
    assert a.sql("SELECT open_columns FROM sync_conflicts WHERE id = ?", (cid,)) == [("[]",)]
    # the resolution reaches B and closes its copy there
    a.cli("sync", "--peer", b.url)
    b.stop()
    listed = json.loads(b.cli("conflicts", "list", "--all", "--json").stdout)
    assert listed and all(c["status"] != "pending" and c["open_columns"] == [] for c in listed), listed
    assert all(o == "[]" for (o,) in b.sql("SELECT open_columns FROM sync_conflicts"))
