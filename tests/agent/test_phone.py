# The phone, as a process: the app writes through the stock sqlite3 module (no extension; the
# triggers were installed by `sync_track` beforehand), the agent syncs once every ~1 s as a
# client only (it never listens), the laptop's sidecar serves; the agent process is killed
# with SIGKILL mid-sync twice; at the end both databases hold the same rows.
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from agent import Agent
from sidecar_helpers import HELPERS, SYSTEM_PYTHON, free_port, pair, table_rows

HERE = Path(__file__).resolve().parent


def listening_sockets(pid):
    """The TCP sockets process `pid` holds that are listening."""
    listen = set()
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        if os.path.exists(f):
            for line in open(f).read().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A":
                    listen.add(cols[9])
    mine = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            mine.add(target[8:-1])
    return mine & listen


def phone_loop(phone, url, interval, rounds=None):
    args = [sys.executable, str(HERE / "phone_sync.py"), str(phone.db), str(phone.key_file), url, str(interval)]
    if rounds:
        args.append(str(rounds))
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_mid_sync(proc, after=0.4):
    """Waits for a sync to start in `proc`, lets it run `after` seconds, then SIGKILLs it."""
    line = proc.stdout.readline()
    assert line.startswith("start"), line + proc.stderr.read()
    time.sleep(after)
    assert listening_sockets(proc.pid) == set(), "the agent listens"
    assert proc.poll() is None, "the sync ended before the kill: " + proc.stdout.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_phone_app_writes_agent_syncs_gets_killed_and_converges(devices):
    laptop, phone = devices("laptop"), devices("phone")
    pair(laptop, phone)
    laptop.track()
    phone.track()  # the triggers; from here the app uses plain sqlite3 only
    laptop.serve("127.0.0.1", free_port())
    con = phone.connect()
    con.executemany("INSERT INTO notes VALUES (?, ?, ?)", ((f"b{i}", "y" * 300, i) for i in range(40_000)))
    con.commit()
    con.close()
    writers = [
        subprocess.Popen([SYSTEM_PYTHON, str(HELPERS / "writer.py"), str(d.db), str(seed), "1200", "6"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for d, seed in ((phone, 1), (laptop, 2))
    ]
    # Killed in the first, large sync, then again in a later one.
    kill_mid_sync(phone_loop(phone, laptop.url, 1))
    got = laptop.sql("SELECT count(*) FROM notes WHERE id LIKE 'b%'")[0][0]
    assert got < 40_000, f"the first sync had finished ({got} rows) before the kill"
    loop = phone_loop(phone, laptop.url, 1)
    for _ in range(2):
        assert loop.stdout.readline().startswith("start")
        assert loop.stdout.readline().startswith("{")  # a finished sync: its report
    kill_mid_sync(loop, after=0.05)
    loop = phone_loop(phone, laptop.url, 1.5)
    for w in writers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, out + err
    loop.send_signal(signal.SIGKILL)
    loop.wait()
    out = loop.stdout.read()
    assert out.count("{") >= 1, out + loop.stderr.read()
    # The writers stopped: the last syncs, in-process, until nothing moves.
    a = Agent(phone.db, phone.key_pem())
    for _ in range(10):
        r = a.sync_once(laptop.url)
        if r["sent"] == 0 and r["received"] == 0:
            break
    a.close()
    assert r["sent"] == 0 and r["received"] == 0, r
    rows = table_rows(phone.db)
    assert rows == table_rows(laptop.db)
    assert len(rows) > 40_000
    assert laptop.cli("verify").returncode == 0
