# Joining by snapshot: a new device syncs with a peer whose history was compacted, so it joins
# from the peer's snapshot over signed HTTP (take, fetch in chunks, check, bootstrap) and then
# pulls incrementally. Time of the new device's whole `peersync sync`, against a plain bulk
# insert of the same rows in the same run; the snapshot's size; peak memory of both processes.
# `history` is how many times each row was rewritten before compaction (10: 10x the changes,
# the same live rows). Best of 2 runs per size.
# usage: .venv/bin/python tests/sidecar/bench_join.py [ROWS[xHISTORY] ...]
#        (default: 10000 100000 1000000 100000x10)
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_e2e import bulk_insert_seconds, peak_kb, rows  # noqa: E402
from conftest import BIN, Device, free_port, pair  # noqa: E402


def run(n, history):
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        a, x = Device(tmp, "a"), Device(tmp, "x")
        pair(a, x)
        a.track()
        x.track()
        con = sqlite3.connect(a.db)
        con.executemany("INSERT INTO notes VALUES (?, ?, ?)", rows(n))
        for h in range(1, history):
            con.execute("UPDATE notes SET body = ?", (f"rewrite {h} " + "y" * 30,))
        con.commit()
        con.close()
        x.serve("127.0.0.3", free_port())
        a.cli("sync", "--peer", x.url, timeout=3600)
        x.stop()
        a.cli("compact", timeout=3600)
        b = Device(tmp, "b")
        pair(a, b)
        b.track()
        a.serve("127.0.0.2", free_port())
        t = time.perf_counter()
        proc = subprocess.Popen([str(BIN), "sync", "--db", str(b.db), "--peer", a.url], env=b.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate()
        _, _, usage = os.wait4(proc.pid, 0) if proc.returncode is None else (0, 0, None)
        took = time.perf_counter() - t
        assert proc.returncode == 0 and "joined from the peer's snapshot" in err, (out, err[-2000:])
        receiver_kb = usage.ru_maxrss if usage else peak_children_kb()
        sender_kb = peak_kb(a.proc.pid)
        snap = max((p.stat().st_size for p in tmp.glob("a.db.snapshots/*.db")), default=0)
        a.stop()
        con = sqlite3.connect(b.db)
        got = con.execute("SELECT count(*) FROM notes").fetchone()[0]
        con.close()
        assert got == n, (got, n)
        base = bulk_insert_seconds(tmp, n)
        return took, base, snap, sender_kb, receiver_kb


def peak_children_kb():
    import resource
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def main():
    sizes = sys.argv[1:] or ["10000", "100000", "1000000", "100000x10"]
    print(f"{'rows':>8} {'history':>8} {'join s':>7} {'bulk s':>7} {'ratio':>6} {'snapshot MB':>12} {'sender MB':>10} {'receiver MB':>12}")
    for spec in sizes:
        n, _, h = spec.partition("x")
        n, h = int(n), int(h or 1)
        runs = [run(n, h) for _ in range(2)]
        took, base = min(r[0] for r in runs), min(r[1] for r in runs)
        snap = max(r[2] for r in runs)
        s_kb, r_kb = max(r[3] for r in runs), max(r[4] for r in runs)
        print(f"{n:>8} {h:>8} {took:>7.2f} {base:>7.3f} {took / base:>6.1f} {snap / 1e6:>12.1f} {s_kb / 1024:>10.1f} {r_kb / 1024:>12.1f}",
              flush=True)


if __name__ == "__main__":
    main()
