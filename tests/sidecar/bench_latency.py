# Write-to-peer latency: a committed write on device A, made by a connection that never loaded
# the extension (stock sqlite3), reaches device B's database through two running sidecars on
# loopback. Reports the median and p90 over N writes, and the CPU an idle sidecar uses.
# usage: .venv/bin/python tests/sidecar/bench_latency.py [N] [-- extra serve args]
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from conftest import Device, free_port, pair  # noqa: E402


def cpu_seconds(pid):
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def main(n=60, extra=()):
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        a, b = Device(tmp, "a"), Device(tmp, "b")
        pair(a, b)
        a.track()
        b.track()
        pa, pb = free_port(), free_port()
        b_url = f"http://127.0.0.2:{pb}"
        a.serve("127.0.0.1", pa, [b_url], *extra, interval="300")
        b.serve("127.0.0.2", pb, [a.url], *extra, interval="300")
        writer = sqlite3.connect(a.db, isolation_level=None, timeout=30)
        writer.execute("PRAGMA busy_timeout = 5000")
        reader = sqlite3.connect(b.db, isolation_level=None, timeout=30)
        time.sleep(1.0)
        took = []
        for i in range(n):
            key = f"lat{i}"
            t = time.perf_counter()
            writer.execute("INSERT INTO notes VALUES (?, 'x', ?)", (key, i))
            while True:
                if reader.execute("SELECT 1 FROM notes WHERE id = ?", (key,)).fetchone():
                    took.append(time.perf_counter() - t)
                    break
                if time.perf_counter() - t > 10:
                    raise SystemExit(f"write {i} did not arrive within 10 s")
                time.sleep(0.001)
            time.sleep(0.15)
        # Idle: nothing written for 10 s.
        time.sleep(1.0)
        before = cpu_seconds(a.proc.pid), cpu_seconds(b.proc.pid)
        t = time.perf_counter()
        time.sleep(10)
        span = time.perf_counter() - t
        idle = [(cpu_seconds(p.proc.pid) - c0) / span * 100 for p, c0 in zip((a, b), before)]
        a.stop()
        b.stop()
        took.sort()
        med, p90 = statistics.median(took), took[int(len(took) * 0.9) - 1]
        print(f"write to peer latency over {n} writes (stock sqlite3 writer, two sidecars, loopback):")
        print(f"  median {med * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms, max {took[-1] * 1000:.0f} ms")
        print(f"  idle sidecar CPU: {idle[0]:.2f}% and {idle[1]:.2f}% of a core")


if __name__ == "__main__":
    args = sys.argv[1:]
    extra = args[args.index("--") + 1:] if "--" in args else []
    args = args[: args.index("--")] if "--" in args else args
    main(int(args[0]) if args else 60, extra)
