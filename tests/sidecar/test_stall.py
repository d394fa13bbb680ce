# A refused change never stalls the rest, and a revocation travels (peersync issue 17): real
# sidecars on loopback. The laptop revokes the tablet; the phone, which has not heard of it yet,
# takes a tablet row and edits it, then writes elsewhere. The phone's changes all reach the
# laptop, nobody spins, status and /metrics say what the laptop refuses and why, and the phone
# learns the revocation at its next sync.
import json
import os
import time

from conftest import free_port, pair, wait_until

SCHEMA = "CREATE TABLE notes(id TEXT PRIMARY KEY, body TEXT, n INTEGER); CREATE TABLE todos(id TEXT PRIMARY KEY, what TEXT)"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(dev):
    """User + system CPU time the sidecar process has used so far."""
    fields = open(f"/proc/{dev.proc.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def status(dev):
    return json.loads(dev.cli("status", "--json").stdout)


def authorized(dev, other):
    return dev.sql("SELECT is_authorized FROM sync_devices WHERE device_id = ?", (other.id,))[0][0] == 1


def test_a_change_built_on_a_refused_one_never_stalls_the_rest(devices):
    laptop, phone, tablet = (devices(n, schema=SCHEMA) for n in ("laptop", "phone", "tablet"))
    pair(laptop, phone, tablet)
    for d in (laptop, phone, tablet):
        d.track("notes")
        d.track("todos")
    laptop.cli("revoke", tablet.id)
    port = free_port()
    laptop.url, phone.url, tablet.url = (f"http://127.0.0.{i}:{port}" for i in (1, 2, 3))

    # The phone takes a tablet row (it has not synced with the laptop since), and edits it.
    tablet.sql("INSERT INTO notes VALUES ('tab', 'from the tablet', 1)")
    tablet.serve("127.0.0.3", port)
    phone.cli("sync", "--peer", tablet.url)
    tablet.stop()
    assert phone.sql("SELECT body FROM notes WHERE id = 'tab'") == [("from the tablet",)]
    phone.sql("UPDATE notes SET body = 'edited on the phone' WHERE id = 'tab'")
    phone.sql("INSERT INTO todos VALUES ('t1', 'unrelated')")

    laptop.serve("127.0.0.1", port)
    phone.serve("127.0.0.2", port, [laptop.url], interval="2")
    # Every phone change reaches the laptop: the edit built on the refused tablet change, and
    # the unrelated one.
    wait_until(lambda: laptop.sql("SELECT what FROM todos") == [("unrelated",)], timeout=30,
               what="the phone's unrelated change at the laptop")
    assert laptop.sql("SELECT body FROM notes WHERE id = 'tab'") in ([], [("edited on the phone",)])
    # The phone learns the revocation from the laptop, signed by it.
    wait_until(lambda: not authorized(phone, tablet), timeout=30, what="the revocation at the phone")
    # A later phone change flows too.
    phone.sql("INSERT INTO todos VALUES ('t2', 'later')")
    wait_until(lambda: len(laptop.sql("SELECT * FROM todos")) == 2, timeout=30, what="a later phone change")

    # Nobody spins: over a quiet 5 s, both sidecars use under 10% of a CPU, the laptop's log
    # barely grows.
    time.sleep(2)
    cpu = (cpu_seconds(laptop), cpu_seconds(phone))
    size = laptop.log.stat().st_size
    time.sleep(5)
    used = (cpu_seconds(laptop) - cpu[0], cpu_seconds(phone) - cpu[1])
    assert max(used) < 0.5, f"CPU seconds over 5 s (laptop, phone): {used}"
    grown = laptop.log.stat().st_size - size
    assert grown < 4096, f"the laptop's log grew {grown} bytes in 5 quiet seconds"

    # What the laptop refuses, and why, is in the phone's status and /metrics.
    def refused_listed():
        links = [link for link in status(phone)["links"] if link["url"] == laptop.url]
        return links and any(h["device_id"] == tablet.id and h["reason"] == "revoked" for h in links[0]["held_there"])
    wait_until(refused_listed, timeout=30, what="the refusal in the phone's sync_status")
    text = phone.cli("status").stdout
    assert f"revoked device {tablet.id}" in text, text
    key = f'peersync_peer_held_origins{{peer="{laptop.url}",origin="{tablet.id}",reason="revoked"}}'
    assert phone.metrics().get(key) == 1, phone.metrics()
    for d in (laptop, phone):
        assert d.stop() == 0


def test_pulling_pages_full_of_refused_changes_never_stalls_the_rest(devices):
    # The laptop revoked the tablet; the phone holds 12 tablet changes, then its own. The
    # laptop pulls from the phone in pages of 5: pages of refused tablet changes are skipped,
    # and the phone's changes come.
    laptop, phone, tablet = (devices(n, schema=SCHEMA) for n in ("laptop", "phone", "tablet"))
    pair(laptop, phone, tablet)
    for d in (laptop, phone, tablet):
        d.track("notes")
        d.track("todos")
    laptop.cli("revoke", tablet.id)
    port = free_port()
    phone.url, tablet.url = f"http://127.0.0.2:{port}", f"http://127.0.0.3:{port}"
    for i in range(12):
        tablet.sql("INSERT INTO notes VALUES (?, 'tablet', ?)", (f"t{i}", i))
    tablet.serve("127.0.0.3", port)
    phone.cli("sync", "--peer", tablet.url)
    tablet.stop()
    phone.sql("INSERT INTO todos VALUES ('p1', 'from the phone')")
    phone.serve("127.0.0.2", port)
    out = laptop.cli("sync", "--peer", phone.url, "--page", "5", check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert laptop.sql("SELECT what FROM todos") == [("from the phone",)]
    assert laptop.sql("SELECT count(*) FROM notes") == [(0,)]
    assert phone.stop() == 0
