# Big values end to end: one row holding a large value, pushed from A (`peersync sync`) to B
# (`peersync serve`), default settings, loopback. Prints the size, the time, the bytes on the
# wire (zstd) and the peak RSS of each side; then what a value too large to capture does.
# usage: .venv/bin/python tests/sidecar/bench_big.py [blob:MB | text:MB ...]
#        (default: blob:100 text:100 blob:400)
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from conftest import BIN, Device, free_port, pair  # noqa: E402

MB = 1024 * 1024
SCHEMA = "CREATE TABLE files(id TEXT PRIMARY KEY, data)"


def peak_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def value_sql(kind):
    # A random blob, or text of random hex digits (its own bytes; no JSON escaping).
    return "randomblob(?)" if kind == "blob" else "substr(hex(randomblob(? / 2 + 1)), 1, ?)"


def run(kind, mb):
    n = mb * MB
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        a, b = Device(tmp, "a", schema=SCHEMA), Device(tmp, "b", schema=SCHEMA)
        pair(a, b)
        a.track("files")
        b.track("files")
        con = sqlite3.connect(a.db)
        con.execute(f"INSERT INTO files VALUES ('big', {value_sql(kind)})", (n,) if kind == "blob" else (n, n))
        con.commit()
        con.close()
        a.cli("status", timeout=600)  # seals A's log, so the timing below is the transfer alone
        b.serve("127.0.0.2", free_port())
        t = time.perf_counter()
        errlog = tmp / "sync.err"
        with open(errlog, "w") as ef:
            proc = subprocess.Popen([str(BIN), "sync", "--db", str(a.db), "--peer", b.url], env=a.env,
                                    stdout=subprocess.PIPE, stderr=ef, text=True)
            out = proc.stdout.read()
            _, _, usage = os.wait4(proc.pid, 0)  # the sync process's own peak RSS
        err = errlog.read_text()
        took = time.perf_counter() - t
        sender_kb = usage.ru_maxrss
        receiver_kb = peak_kb(b.proc.pid)
        b.stop()
        ok = "sent 1," in out
        con = sqlite3.connect(b.db)
        got = con.execute("SELECT length(data) FROM files WHERE id = 'big'").fetchone()
        con.close()
        return ok and got == (n,), took, sender_kb, receiver_kb, (out + err).strip()[-300:]


def too_large_to_capture(mb=600):
    with tempfile.TemporaryDirectory() as d:
        a = Device(Path(d), "a", schema=SCHEMA)
        a.track("files")
        con = sqlite3.connect(a.db)
        try:
            con.execute("INSERT INTO files VALUES ('huge', randomblob(?))", (mb * MB,))
            con.commit()
            return "captured (unexpected)"
        except sqlite3.Error as e:
            rows = con.execute("SELECT count(*) FROM files").fetchone()[0]
            return f"refused: {e} (rows written: {rows})"
        finally:
            con.close()


def main():
    specs = sys.argv[1:] or ["blob:100", "text:100", "blob:400"]
    print(f"{'value':>10} {'MB':>6} {'ok':>4} {'seconds':>8} {'sender MB':>10} {'receiver MB':>12}")
    for spec in specs:
        kind, mb = spec.split(":")
        ok, took, s_kb, r_kb, tail = run(kind, int(mb))
        line = f"{kind:>10} {mb:>6} {'yes' if ok else 'NO':>4} {took:>8.2f} {s_kb / 1024:>10.1f} {r_kb / 1024:>12.1f}"
        print(line if ok else f"{line}  {tail}", flush=True)
    print(f"a 600 MB blob: {too_large_to_capture(600)}")


if __name__ == "__main__":
    main()
