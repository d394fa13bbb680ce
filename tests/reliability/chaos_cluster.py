# Chaos tests' cluster: n sidecars on 127.0.0.1..n linked through fault proxies (ring or star), the app's writer with its log of acknowledged writes, and the fault scheduler.
import collections
import json
import random
import re
import signal
import sqlite3
import threading
import time

import faults_db
from faults_proxy import MODES, ProxyHub, quiet_port
from sidecar_helpers import pair, table_rows

FAULT_MODES = [m for m in MODES if m != "up"]


def topology_links(kind, n):
    """Undirected links (a, b) of a ring or of a star around device 0."""
    if kind == "ring":
        return [(i, (i + 1) % n) for i in range(n)]
    if kind == "star":
        return [(0, i) for i in range(1, n)]
    raise ValueError(kind)


class Cluster:
    """Devices d0..d{n-1} (all trusting each other, table `notes` tracked), device i serving on
    127.0.0.{i+1}; each direction of each link goes through its own proxy on 127.0.1.k, whose
    URL is the --peer the sidecar syncs with."""

    def __init__(self, make_device, n, topology, seed, sidecar_args=(), interval="1"):
        self.rnd = random.Random(seed)
        self.devs = [make_device(f"d{i}") for i in range(n)]
        pair(*self.devs)
        for d in self.devs:
            d.track()
        self.hosts = [f"127.0.0.{i + 1}" for i in range(n)]
        self.ports = [quiet_port(h, self.rnd) for h in self.hosts]
        self.hub = ProxyHub(seed)
        self.links = {}
        self.peers = {i: [] for i in range(n)}
        # Peers reach each sidecar through proxies: the names its signed requests carry.
        self.names = {i: [] for i in range(n)}
        k = 0
        for a, b in topology_links(topology, n):
            proxies = []
            for src, dst in ((a, b), (b, a)):
                k += 1
                p = self.hub.proxy(f"127.0.1.{k}", (self.hosts[dst], self.ports[dst]),
                                   source_host=self.hosts[src], name=f"d{src}->d{dst}")
                self.peers[src].append(p.url)
                self.names[dst].append(p.url.split("/")[2])
                proxies.append(p)
            self.links[(a, b)] = proxies
        # A stalled link must not hold a sync for the default 120 s once it heals.
        self.args = ["--request-timeout", "10", *sidecar_args]
        self.interval = interval

    def start(self, i):
        names = [arg for name in self.names[i] for arg in ("--authority", name)]
        self.devs[i].serve(self.hosts[i], self.ports[i], self.peers[i], *self.args, *names, interval=self.interval)

    def running(self, i):
        p = self.devs[i].proc
        return p is not None and p.poll() is None

    def kill(self, i):
        self.devs[i].stop(signal.SIGKILL)

    def cut(self, link, mode):
        for p in self.links[link]:
            p.set_mode(mode)

    def restore(self, link):
        for p in self.links[link]:
            p.set_mode("up")

    def close(self):
        for d in self.devs:
            if d.proc and d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()
        self.hub.close()

    def alarms(self):
        """Log lines no fault of the network or a kill should cause: panics, errors, refused
        changes (422 hash, 409 fork, 403), internal errors."""
        bad = ("panicked", " ERROR ", "status=422", "status=409", "status=403", "status=500", "quarantine")
        out = []
        for d in self.devs:
            if getattr(d, "log", None) and d.log.exists():
                for line in d.log.read_text(errors="replace").splitlines():
                    plain = re.sub(r"\x1b\[[0-9;]*m", "", line)
                    if any(b in plain for b in bad):
                        out.append(f"{d.name}: {plain[:300]}")
        return out

    def log_tails(self, lines=25):
        out = []
        for d in self.devs:
            text = d.log.read_text(errors="replace").splitlines() if getattr(d, "log", None) and d.log.exists() else []
            out.append(f"--- {d.name} ({d.id}) log tail ---\n" + "\n".join(text[-lines:]))
        return "\n".join(out)


Write = collections.namedtuple("Write", "device op key seq at")


class AppWriter(threading.Thread):
    """The apps: one connection per device (Python's sqlite3, no extension loaded), `rate` writes
    a second in all, each on a random device. A share of the writes inserts a write-once key
    (`o<seq>`, never touched again); the rest insert-or-replace, update or delete one of
    `shared` keys (`k<j>`). Every write stores a unique value (body `v<seq>`, n = seq) in every
    column, so each column's winner is the same write. Only committed writes that changed a row
    are logged in `acks` (an UPDATE or DELETE of a row absent there changes nothing)."""

    def __init__(self, devs, rate, seed, shared=20, once_share=0.3):
        super().__init__(name="chaos-app-writer", daemon=True)
        self.devs, self.rate, self.shared, self.once_share = devs, rate, shared, once_share
        self.rnd = random.Random(seed)
        self.acks = []
        self.failures = []
        self.halt = threading.Event()

    def run(self):
        conns = [sqlite3.connect(d.db, timeout=30, isolation_level=None) for d in self.devs]
        seq, next_at = 0, time.monotonic()
        try:
            while not self.halt.is_set():
                seq += 1
                i = self.rnd.randrange(len(conns))
                op, key = self._pick(seq)
                try:
                    changed = self._write(conns[i], op, key, seq)
                    if changed:
                        self.acks.append(Write(i, op, key, seq, time.time()))
                except sqlite3.Error as e:
                    self.failures.append(f"d{i} {op} {key}: {e}")
                next_at += 1 / self.rate
                self.halt.wait(max(0.0, next_at - time.monotonic()))
        finally:
            for c in conns:
                c.close()

    def _pick(self, seq):
        if self.rnd.random() < self.once_share:
            return "insert", f"o{seq}"
        r = self.rnd.random()
        op = "insert" if r < 0.45 else "update" if r < 0.8 else "delete"
        return op, f"k{self.rnd.randrange(self.shared)}"

    @staticmethod
    def _write(con, op, key, seq):
        if op == "insert" and key.startswith("o"):
            cur = con.execute("INSERT INTO notes(id, body, n) VALUES (?, ?, ?)", (key, f"v{seq}", seq))
        elif op == "insert":
            cur = con.execute("INSERT OR REPLACE INTO notes(id, body, n) VALUES (?, ?, ?)", (key, f"v{seq}", seq))
        elif op == "update":
            cur = con.execute("UPDATE notes SET body = ?, n = ? WHERE id = ?", (f"v{seq}", seq, key))
        else:
            cur = con.execute("DELETE FROM notes WHERE id = ?", (key,))
        return cur.rowcount > 0

    def stop(self):
        self.halt.set()
        self.join(timeout=30)
        assert not self.is_alive(), "the app writer did not stop"


class Chaos:
    """Every 0.3-2 s, either SIGKILLs a running sidecar (at most `max_down` down at once; it is
    restarted 0.5-5 s later) or cuts a link (both directions, one of the proxy fault modes;
    restored 1-8 s later)."""

    def __init__(self, cluster, seed, max_down=2):
        self.c = cluster
        self.rnd = random.Random(seed)
        self.max_down = max_down
        self.down = {}       # device index -> when to restart
        self.cut_links = {}  # link -> when to restore
        self.kills = 0
        self.restarts = 0
        self.modes = collections.Counter()

    def run(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._due(time.monotonic())
            if self.rnd.random() < 0.5:
                self._kill()
            else:
                self._cut()
            time.sleep(min(self.rnd.uniform(0.3, 2.0), max(0.0, end - time.monotonic())))

    @property
    def link_cuts(self):
        return sum(self.modes.values())

    def _due(self, now):
        for i, at in list(self.down.items()):
            if at <= now:
                self.c.start(i)
                self.restarts += 1
                del self.down[i]
        for link, at in list(self.cut_links.items()):
            if at <= now:
                self.c.restore(link)
                del self.cut_links[link]

    def _kill(self):
        up = [i for i in range(len(self.c.devs)) if i not in self.down]
        if len(self.down) >= self.max_down or not up:
            return
        i = self.rnd.choice(up)
        self.c.kill(i)
        self.kills += 1
        self.down[i] = time.monotonic() + self.rnd.uniform(0.5, 5.0)

    def _cut(self):
        whole = [l for l in self.c.links if l not in self.cut_links]
        if not whole:
            return
        link = self.rnd.choice(whole)
        mode = self.rnd.choice(FAULT_MODES)
        self.c.cut(link, mode)
        self.modes[mode] += 1
        self.cut_links[link] = time.monotonic() + self.rnd.uniform(1.0, 8.0)

    def heal(self):
        """Every link restored, every sidecar running."""
        for link in list(self.cut_links):
            self.c.restore(link)
        self.cut_links.clear()
        self.c.hub.restore_all()
        for i in sorted(self.down):
            self.c.start(i)
            self.restarts += 1
        self.down.clear()
        assert all(self.c.running(i) for i in range(len(self.c.devs))), "a sidecar is not running after healing"


# -- convergence and the acknowledged writes --

def snapshot(devs):
    return [(table_rows(d.db), faults_db.vector(d.db), faults_db.unsealed(d.db)) for d in devs]


def converged(devs, origins):
    """Identical tracked tables and sync_vector on every device, nothing unsealed, and the vector
    holds every origin that wrote."""
    snap = snapshot(devs)
    rows0, vec0, _ = snap[0]
    return (all(r == rows0 and v == vec0 and u == 0 for r, v, u in snap)
            and origins <= set(vec0))


def wait_converged(devs, origins, timeout):
    """Seconds until converged (polled every 0.25 s), or None after `timeout`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if converged(devs, origins):
            return round(time.monotonic() - t0, 2)
        time.sleep(0.25)
    return None


def logged_writes(path):
    """The app writes this database holds in its sync_log (resolutions left out), as a Counter of
    (operation, key, seq or None for a DELETE)."""
    con = sqlite3.connect(path, timeout=60)
    try:
        rows = con.execute("SELECT operation, record_id, change_data FROM sync_log "
                           "WHERE table_name = 'notes' AND NOT ifnull(resolution, 0)").fetchall()
    finally:
        con.close()
    out = collections.Counter()
    for op, rid, data in rows:
        key = rid.strip("'")
        seq = json.loads(data)["n"] if op != "DELETE" else None
        out[(op, key, seq)] += 1
    return out


def acked_writes(acks):
    out = collections.Counter()
    for w in acks:
        op = {"insert": "INSERT", "update": "UPDATE", "delete": "DELETE"}[w.op]
        out[(op, w.key, w.seq if op != "DELETE" else None)] += 1
    return out


def check_acknowledged(devs, acks):
    """Every acknowledged write is in every device's log exactly once (nothing else is), every
    write-once key holds its value everywhere, and every shared key holds the value of some
    acknowledged write to it (or is absent after an acknowledged delete)."""
    want = acked_writes(acks)
    for d in devs:
        got = logged_writes(d.db)
        missing, extra = want - got, got - want
        assert not missing and not extra, (
            f"{d.name}: acknowledged writes missing from its log: {sorted(missing.items())[:10]} "
            f"({sum(missing.values())}); logged but never acknowledged: {sorted(extra.items())[:10]} ({sum(extra.values())})")
    values = collections.defaultdict(set)
    deleted = set()
    for w in acks:
        if w.op == "delete":
            deleted.add(w.key)
        else:
            values[w.key].add(w.seq)
    for d in devs:
        rows = {r[0]: r[1:] for r in table_rows(d.db)}
        for key, seqs in values.items():
            if key.startswith("o"):
                (seq,) = seqs
                assert rows.get(key) == (f"v{seq}", seq), f"{d.name}: write-once {key} holds {rows.get(key)}, not v{seq}"
            elif key in rows:
                body, n = rows[key]
                assert n in seqs and body == f"v{n}", f"{d.name}: {key} holds {rows[key]}, no acknowledged write wrote it"
            else:
                assert key in deleted, f"{d.name}: {key} is gone but no app deleted it"
        stray = set(rows) - set(values)
        assert not stray, f"{d.name}: rows no app wrote: {sorted(stray)[:10]}"
