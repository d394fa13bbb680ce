# Disk full: the receiver's database on a small tmpfs filled up; sync fails cleanly (507, sidecar up, database intact, sender keeps its data and retries) and succeeds once space is back.
import os
import re
import shutil
import subprocess
import time

import pytest
import requests

import faults_db
from faults_app import bulk_write
from faults_proxy import quiet_port
from sidecar_helpers import pair, table_rows, wait_until

SIZE_MB = 48
# Bytes left free once the filler is in: "none", not one page of changes fits; "part": some
# pages fit, then the disk fills in the middle of the sync.
LEFT = {"none": 48 * 1024, "part": 2 * 2**20}
BIG = 20000            # rows A's app writes while B's disk is full


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m,mode=0700", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a {SIZE_MB} MiB tmpfs for the disk-full test ({r.stderr.strip() or r.returncode}); "
                    "it needs root (CI runs as root)")
    state = {"mnt": mnt, "procs": []}
    try:
        yield state
    finally:
        for d in state["procs"]:   # nothing may hold files there when unmounting
            if d.proc and d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=True)


def fill(path, leave):
    """A filler file taking all the free space of path's file system but `leave` bytes."""
    st = os.statvfs(path.parent)
    size = st.f_bavail * st.f_frsize - leave
    with open(path, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, size)
    return size


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def metric(dev, name):
    try:
        return dev.metrics().get(name, 0)
    except requests.RequestException:
        return 0


@pytest.mark.parametrize("room", ["none", "part"])
def test_disk_full_fails_cleanly_and_recovers(devices, reliability, small_disk, room):
    mnt = small_disk["mnt"]
    a, b = devices("a"), devices("b")
    shutil.move(b.db, mnt / "b.db")        # B's database (and its WAL) on the small disk; its log is not
    b.db = mnt / "b.db"
    small_disk["procs"] += [a, b]
    pair(a, b)
    a.track(), b.track()
    a_at, b_at = ("127.0.0.1", quiet_port("127.0.0.1")), ("127.0.0.2", quiet_port("127.0.0.2"))
    a.url, b.url = f"http://{a_at[0]}:{a_at[1]}", f"http://{b_at[0]}:{b_at[1]}"
    a.serve(*a_at, [b.url], interval="1")   # A pushes to B
    b.serve(*b_at, [a.url], interval="1")   # B pulls from A
    bulk_write(a.db, "before", 200)
    bulk_write(b.db, "b", 20)
    same = lambda: table_rows(a.db) == table_rows(b.db) and faults_db.vector(a.db) == faults_db.vector(b.db)
    wait_until(same, timeout=30, what="A and B in sync before the disk fills")

    # Fill B's disk: WAL checkpointed and truncated first, so any write needs new space.
    con = faults_db.connect(b.db)
    busy = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    con.close()
    assert busy == 0, "could not checkpoint B's WAL"
    filler = fill(mnt / "filler", LEFT[room])
    b_before = faults_db.table_hashes(b.db)
    b_rows = table_rows(b.db)
    b_had = faults_db.vector(b.db)[a.id]

    written = bulk_write(a.db, "big", BIG)
    a_rows = table_rows(a.db)
    a_log = a.sql("SELECT count(*) FROM sync_log")[0][0]
    key = f'peersync_peer_consecutive_failures{{peer="{b.url}"}}'
    wait_until(lambda: metric(a, key) >= 3, timeout=60, what="A failing to sync with B at least 3 times")
    wait_until(lambda: metric(b, 'peersync_errors_total{kind="disk_full"}') >= 2, timeout=30,
               what="B counting disk-full errors")
    time.sleep(2)                          # a few more attempts: B must stay up and unchanged
    replies = re.findall(r"answered (\d{3}): ([^\n]*?)(?:\s+retry_in_ms|$)",
                         re.sub(r"\x1b\[[0-9;]*m", "", a.log.read_text()), re.M)
    b_log = re.sub(r"\x1b\[[0-9;]*m", "", b.log.read_text())
    b_up = b.proc.poll() is None and requests.get(f"{b.url}/health", timeout=5).status_code == 200
    b_after = faults_db.table_hashes(b.db)
    b_got = faults_db.vector(b.db)[a.id] - b_had
    b_rows_full = dict((r[0], r) for r in table_rows(b.db))
    b_integrity = faults_db.integrity(b.db)
    b_verify = faults_db.verify(b.db)
    a_failures = metric(a, key)
    b_disk_errors = metric(b, 'peersync_errors_total{kind="disk_full"}')

    os.remove(mnt / "filler")
    t0 = time.monotonic()
    wait_until(same, timeout=60, every=0.2, what="A and B in sync once space is back")
    recovered = round(time.monotonic() - t0, 2)
    reliability.record(
        "disk full",
        f"B's database on a {SIZE_MB} MiB tmpfs filled to {LEFT[room] // 1024} KiB free "
        f"({'no room for one page' if room == 'none' else 'room for part of the sync'}); A's app writes {BIG} rows; "
        "A pushes and B pulls while the disk is full, then the filler is removed",
        changes=written, applied_before_full=b_got, filler_mb=round(filler / 2**20, 1), sender_failed_attempts=int(a_failures),
        receiver_disk_full_errors=int(b_disk_errors),
        statuses=" ".join(sorted({s for s, _ in replies})) or "none", recovered_in_s=recovered)

    assert b_up, f"B's sidecar did not stay up on a full disk:\n{b_log[-3000:]}"
    assert b_integrity == "ok", b_integrity
    assert b_verify["ok"] and not b_verify["failed"] and not b_verify["problems"], b_verify
    if room == "none":
        assert b_after == b_before, f"B's database changed while its disk was full: {faults_db.changed_tables(b_before, b_after)}"
    else:
        # Whole pages only: what B holds is a prefix of A's chain (the chains check below) with A's values.
        assert 0 < b_got < written, f"B applied {b_got} of {written} changes: the disk did not fill mid-sync"
        a_by_id = {r[0]: r for r in a_rows}
        assert all(a_by_id.get(k) == r for k, r in b_rows_full.items()), "B holds rows A does not"
    assert not faults_db.chain_problems(b.db), faults_db.chain_problems(b.db)
    assert replies, f"A logged no reply of B's:\n{a.log.read_text()[-3000:]}"
    full = [(s, m) for s, m in replies if "full" in m]
    assert full and all(s == "507" for s, _ in full), f"B's answers on a full disk: {sorted(set(replies))[:10]}"
    assert all("free some space" in m.lower() for _, m in full), f"the 507 does not say what to do: {full[:3]}"
    assert all(s in ("507", "503") for s, _ in replies), f"unexpected answers of B: {sorted(set(replies))[:10]}"
    assert "disk is full" in b_log or "disk full" in b_log, f"B's log does not say its disk is full:\n{b_log[-3000:]}"
    assert "panicked" not in b_log
    assert len(a_rows) == 200 + 20 + BIG and len(b_rows) == 220
    assert recovered <= 30, f"took {recovered} s to sync once space was back"
    assert table_rows(b.db) == a_rows
    assert a.sql("SELECT count(*) FROM sync_log")[0][0] == a_log, "A's log changed"
    for d in (a, b):
        faults_db.assert_intact(d.db, d.name)
    assert free_bytes(mnt) > 0
    assert a.stop() == 0 and b.stop() == 0
