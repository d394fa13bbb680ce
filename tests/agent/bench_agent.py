# make bench: time and peak memory of one peersync_agent_sync_once (the phone's library, ctypes)
# pushing 0, 1,000 and 100,000 changes to a laptop's sidecar on loopback. Each sync runs in a
# fresh process, so its peak RSS is its own; "RSS added" is the peak less the RSS before the call.
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def child(db, key_file, url):
    from agent import Agent

    a = Agent(db, Path(key_file).read_bytes())
    before = current_rss_kb()
    t0 = time.perf_counter()
    report = a.sync_once(url)
    took = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    a.close()
    print(json.dumps({"took": took, "peak_kb": peak, "before_kb": before, "sent": report["sent"]}))


def current_rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main():
    import importlib.util

    spec = importlib.util.spec_from_file_location("sidecar_helpers", HERE.parent / "sidecar" / "conftest.py")
    h = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(h)
    rows = []
    for n in (0, 1_000, 100_000):
        with tempfile.TemporaryDirectory() as tmp:
            laptop, phone = h.Device(Path(tmp), "laptop"), h.Device(Path(tmp), "phone")
            h.pair(laptop, phone)
            laptop.track()
            phone.track()
            con = phone.connect()
            con.executemany("INSERT INTO notes VALUES (?, ?, ?)", ((f"n{i}", f"body {i} " + "x" * 80, i) for i in range(n)))
            con.commit()
            con.close()
            laptop.serve("127.0.0.1", h.free_port())
            try:
                out = subprocess.run([sys.executable, __file__, "--child", str(phone.db), str(phone.key_file), laptop.url],
                                     capture_output=True, text=True, timeout=600)
                assert out.returncode == 0, out.stderr
                r = json.loads(out.stdout)
                assert r["sent"] == n, r
                rows.append((n, r))
            finally:
                laptop.stop()
    print("peersync-agent: one sync_once pushing N changes to a sidecar on loopback (ctypes, fresh process each)")
    print(f"{'changes':>10} {'time':>10} {'per change':>12} {'peak RSS':>10} {'RSS added':>10}")
    for n, r in rows:
        per = f"{r['took'] / n * 1e6:.1f} us" if n else "-"
        print(f"{n:>10} {r['took'] * 1000:>8.0f} ms {per:>12} {r['peak_kb'] / 1024:>7.1f} MB "
              f"{(r['peak_kb'] - r['before_kb']) / 1024:>7.1f} MB")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
    else:
        main()
