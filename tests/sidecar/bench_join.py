# Joining by snapshot: a new device syncs with a peer whose history was compacted, so it joins
# from the peer's snapshot over signed HTTP (take, fetch in chunks, check, bootstrap) and then
# pulls incrementally. Time of the new device's whole `peersync sync`, against a plain bulk
# insert of the same rows in the same run; the snapshot's size; peak memory of both processes;
# the longest compaction transaction (how long an app write may wait for it).
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
        # x takes the whole history at once (its write quota would hold part of it back).
        x.serve("127.0.0.3", free_port(), (), "--origin-burst-mib", "100000", "--origin-mib-per-hour", "100000")
        a.cli("sync", "--peer", x.url, timeout=3600)
        x.stop()
        out = a.cli("compact", timeout=3600).stdout
        longest_ms = float(out.split("the longest ")[1].split(" ms")[0])
        b = Device(tmp, "b")
        pair(a, b)
        b.track()
        a.serve("127.0.0.2", free_port())
        t = time.perf_counter()
        with open(tmp / "out", "w") as out, open(tmp / "err", "w") as err:
            proc = subprocess.Popen([str(BIN), "sync", "--db", str(b.db), "--peer", a.url], env=b.env,
                                    stdout=out, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)
        took = time.perf_counter() - t
        err = (tmp / "err").read_text()
        assert status == 0 and "joined from the peer's snapshot" in err, err[-2000:]
        receiver_kb = usage.ru_maxrss
        sender_kb = peak_kb(a.proc.pid)
        snap = max((p.stat().st_size for p in tmp.glob("a.db.snapshots/*.db")), default=0)
        a.stop()
        con = sqlite3.connect(b.db)
        got = con.execute("SELECT count(*) FROM notes").fetchone()[0]
        con.close()
        assert got == n, (got, n)
        base = bulk_insert_seconds(tmp, n)
        return took, base, snap, sender_kb, receiver_kb, longest_ms


def main():
    sizes = sys.argv[1:] or ["10000", "100000", "1000000", "100000x10"]
    print(f"{'rows':>8} {'history':>8} {'join s':>7} {'bulk s':>7} {'ratio':>6} {'snapshot MB':>12} {'sender MB':>10} {'receiver MB':>12} {'compact step ms':>16}")
    for spec in sizes:
        n, _, h = spec.partition("x")
        n, h = int(n), int(h or 1)
        runs = [run(n, h) for _ in range(2)]
        took, base = min(r[0] for r in runs), min(r[1] for r in runs)
        snap = max(r[2] for r in runs)
        s_kb, r_kb = max(r[3] for r in runs), max(r[4] for r in runs)
        step_ms = max(r[5] for r in runs)
        print(f"{n:>8} {h:>8} {took:>7.2f} {base:>7.3f} {took / base:>6.1f} {snap / 1e6:>12.1f} {s_kb / 1024:>10.1f} {r_kb / 1024:>12.1f} {step_ms:>16.1f}",
              flush=True)


if __name__ == "__main__":
    main()
