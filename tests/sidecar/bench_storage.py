# Storage: what sync metadata costs per row, before and after every device acknowledged it
# (compaction), against plain SQLite in the same run. The table: N rows of a 4-column
# table with sequential text keys, inserted, then each updated once. And one row edited N
# times. Sizes are of the database file after VACUUM (free pages dropped), in bytes.
# usage: .venv/bin/python tests/sidecar/bench_storage.py [N]   (default 100000)
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from conftest import Device, free_port, pair  # noqa: E402

SCHEMA = "CREATE TABLE t(id TEXT PRIMARY KEY, a TEXT, b INTEGER, c REAL)"


def writes(con, n):
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", ((f"key{i:07}", f"value {i}", i, i / 3) for i in range(n)))
    con.commit()
    con.executemany("UPDATE t SET a = ? WHERE id = ?", ((f"changed {i}", f"key{i:07}") for i in range(n)))
    con.commit()


def edits(con, n):
    con.execute("INSERT INTO t VALUES ('one', 'v', 0, 0)")
    con.executemany("UPDATE t SET b = ? WHERE id = 'one'", ((i,) for i in range(1, n + 1)))
    con.commit()


def size(path):
    con = sqlite3.connect(path, timeout=30)
    con.execute("VACUUM")
    con.close()
    return Path(path).stat().st_size


def acknowledged(tmp, a):
    """Has a trusted device take everything a holds, then compacts a."""
    x = Device(tmp, f"x-{a.name}", schema=SCHEMA)
    pair(a, x)
    x.track("t")
    x.serve("127.0.0.3", free_port(), (), "--origin-burst-mib", "100000", "--origin-mib-per-hour", "100000")
    a.cli("sync", "--peer", x.url, timeout=3600)
    x.stop()
    a.cli("compact", timeout=3600)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print(f"{'workload':<34} {'plain':>10} {'peersync':>10} {'metadata per row':>17} {'acknowledged':>13} {'per row':>8}")
        for name, work, rows in [
            (f"{n:,} rows inserted, updated once", writes, n),
            (f"one row edited {n:,} times", edits, 1),
        ]:
            plain = tmp / f"plain-{work.__name__}.db"
            con = sqlite3.connect(plain)
            con.execute(SCHEMA)
            work(con, n)
            con.close()
            a = Device(tmp, f"a-{work.__name__}", schema=SCHEMA)
            a.track("t")
            con = a.connect()
            work(con, n)
            con.close()
            a.cli("status")  # seals
            base, before = size(plain), size(a.db)
            acknowledged(tmp, a)
            after = size(a.db)
            print(f"{name:<34} {base:>10,} {before:>10,} {(before - base) / rows:>15,.0f} B {after:>13,} {(after - base) / rows:>6,.0f} B",
                  flush=True)


if __name__ == "__main__":
    main()
