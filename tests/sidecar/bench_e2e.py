# End-to-end sync benchmark: N changes from A to B over HTTP on loopback (signed requests, signed
# batches, verification), changes/s, ratio to a plain bulk insert of the same rows, and the peak
# memory of both sidecar processes at two sizes (flat = batches stream, they are not held whole).
# Each size runs 3 times: best time and best bulk time, highest peak memory.
# usage: .venv/bin/python tests/sidecar/bench_e2e.py [N ...]   (default: 25000 100000)
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from conftest import BIN, Device, free_port, pair  # noqa: E402


def rows(n):
    return ((f"r{i:07}", "x" * 40, i) for i in range(n))


def bulk_insert_seconds(tmp, n):
    con = sqlite3.connect(tmp / "bulk.db")
    con.execute("CREATE TABLE notes(id TEXT PRIMARY KEY, body TEXT, n INTEGER)")
    t = time.perf_counter()
    con.executemany("INSERT INTO notes VALUES (?, ?, ?)", rows(n))
    con.commit()
    took = time.perf_counter() - t
    con.close()
    return took


def peak_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run(n):
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        a, b = Device(tmp, "a"), Device(tmp, "b")
        pair(a, b)
        con = sqlite3.connect(a.db)
        con.executemany("INSERT INTO notes VALUES (?, ?, ?)", rows(n))
        con.commit()
        con.close()
        a.track()
        b.track()
        a.cli("status")  # seals A's log, so the timing below is the transfer alone
        b.serve("127.0.0.2", free_port())
        t = time.perf_counter()
        proc = subprocess.Popen([str(BIN), "sync", "--db", str(a.db), "--peer", b.url], env=a.env,
                                stdout=subprocess.PIPE, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        took = time.perf_counter() - t
        sender_kb = usage.ru_maxrss
        receiver_kb = peak_kb(b.proc.pid)
        b.stop()
        assert f"sent {n}," in out, out
        base = bulk_insert_seconds(tmp, n)
        return took, base, sender_kb, receiver_kb


def main():
    sizes = [int(x) for x in sys.argv[1:]] or [25000, 100000]
    print(f"{'changes':>8} {'seconds':>8} {'changes/s':>10} {'bulk s':>7} {'ratio':>6} {'sender MB':>10} {'receiver MB':>12}")
    for n in sizes:
        # Best of 3 for the sync and for the bulk insert alike (this machine's timings vary).
        runs = [run(n) for _ in range(3)]
        took, base = min(r[0] for r in runs), min(r[1] for r in runs)
        s_kb, r_kb = max(r[2] for r in runs), max(r[3] for r in runs)
        print(f"{n:>8} {took:>8.2f} {n / took:>10.0f} {base:>7.3f} {took / base:>6.1f} {s_kb / 1024:>10.1f} {r_kb / 1024:>12.1f}")


if __name__ == "__main__":
    main()
