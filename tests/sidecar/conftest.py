# Helpers for the sidecar's multi-process tests: devices (databases + keys), sidecar processes, signed requests, db hashes.
import hashlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
import requests
import requests_http_signature as rhs

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("PEERSYNC_BIN", ROOT / "dist" / "peersync"))
EXT = ROOT / "dist" / "peersync"
SYSTEM_PYTHON = "/usr/bin/python3"
HELPERS = Path(__file__).parent / "helpers"

if not BIN.exists():
    raise RuntimeError(f"{BIN} is missing: run `make build` first")


def free_port():
    """A TCP port free on 127.0.0.1 (used on the other loopback addresses too)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Device:
    """A database with peersync initialised, its key file, and the CLI bound to it."""

    def __init__(self, tmp: Path, name: str, schema="CREATE TABLE notes(id TEXT PRIMARY KEY, body TEXT, n INTEGER)"):
        self.name = name
        self.dir = tmp
        self.db = tmp / f"{name}.db"
        self.env = dict(os.environ, XDG_CONFIG_HOME=str(tmp / "config"), PEERSYNC_LOG="info")
        self.env.pop("PEERSYNC_DB", None)
        if schema:
            con = sqlite3.connect(self.db)
            con.executescript(schema)
            con.close()
        out = self.cli("init", "--name", name).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if line.startswith(("device id:", "public key:", "key file:")))
        self.id = fields["device id"].strip()
        self.public_key = fields["public key"].strip()
        self.key_file = Path(fields["key file"].strip())
        self.proc = None

    def cli(self, *args, check=True, timeout=120):
        cmd = [str(BIN), args[0], "--db", str(self.db), *args[1:]]
        r = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def trust(self, other, tailscale_ip=None):
        args = ["trust", other.id, other.public_key, "--name", other.name]
        if tailscale_ip:
            args += ["--tailscale-ip", tailscale_ip]
        self.cli(*args)

    def track(self, table="notes", strategy=None):
        self.cli("track", table, *(["--strategy", strategy] if strategy else []))

    def key_pem(self):
        return self.key_file.read_bytes()

    def connect(self):
        con = sqlite3.connect(self.db, timeout=30)
        return con

    def sql(self, query, params=()):
        con = self.connect()
        try:
            rows = con.execute(query, params).fetchall()
            con.commit()
            return rows
        finally:
            con.close()

    # -- sidecar process --
    def serve(self, host, port, peers=(), *extra, interval="300", log_name=None):
        self.host, self.port = host, port
        self.url = f"http://{host}:{port}"
        args = [str(BIN), "serve", "--db", str(self.db), "--listen", f"{host}:{port}", "--interval", str(interval),
                "--retry-base", "0.2", "--retry-max", "2"]
        for p in peers:
            args += ["--peer", p.url if isinstance(p, Device) else p]
        args += list(extra)
        self.log = self.dir / (log_name or f"{self.name}.log")
        self.proc = subprocess.Popen(args, env=self.env, stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"))
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"sidecar {self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                if requests.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.05)
        raise AssertionError(f"sidecar {self.name} did not start: {self.log.read_text()[-2000:]}")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"sidecar {self.name} did not stop on {sig}")
        code = self.proc.returncode if self.proc else None
        self.proc = None
        return code

    def metrics(self):
        text = requests.get(f"{self.url}/metrics", timeout=5).text
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out


@pytest.fixture
def devices(tmp_path):
    made = []

    def make(name, **kw):
        d = Device(tmp_path, name, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        if d.proc and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def pair(*devs):
    for a in devs:
        for b in devs:
            if a is not b:
                a.trust(b)


def db_hash(path):
    """SHA-256 over every table's rows (sorted), app tables and sync tables alike."""
    con = sqlite3.connect(path, timeout=30)
    h = hashlib.sha256()
    for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"):
        h.update(t.encode())
        for row in sorted(repr(r) for r in con.execute(f'SELECT * FROM "{t}"')):
            h.update(row.encode())
    con.close()
    return h.hexdigest()


def table_rows(path, table="notes"):
    con = sqlite3.connect(path, timeout=30)
    rows = con.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall()
    con.close()
    return rows


def signer(dev_or_pem, keyid=None, created_offset=0):
    """A requests-http-signature auth (ED25519, nonce), optionally with a shifted `created`."""
    pem = dev_or_pem.key_pem() if isinstance(dev_or_pem, Device) else dev_or_pem
    keyid = keyid or dev_or_pem.id

    class Shifted(rhs.HTTPSignatureAuth):
        def get_created(self, request):
            import datetime
            created = datetime.datetime.now() + datetime.timedelta(seconds=created_offset)
            self.add_date(request, timestamp=int(created.timestamp()))
            return created

    return Shifted(signature_algorithm=rhs.algorithms.ED25519, key=pem, key_id=keyid, use_nonce=True)


def signed(method, url, auth, body=None):
    """A prepared request signed by `auth` (body: dict -> JSON, or bytes)."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    req = requests.Request(method, url, data=body, headers={"Content-Type": "application/json"} if body else {})
    p = req.prepare()
    auth(p)
    return p


def send(prepared, source=None, url=None, body=None, timeout=30):
    """Sends a prepared request over a fresh connection, optionally from a given local address
    and with its URL path or body replaced after signing. Returns (status, parsed JSON or text)."""
    u = urllib.parse.urlsplit(url or prepared.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout, source_address=(source, 0) if source else None)
    data = prepared.body if body is None else body
    headers = dict(prepared.headers)
    if data is not None:
        headers["Content-Length"] = str(len(data))
    conn.request(prepared.method, u.path + (f"?{u.query}" if u.query else ""), body=data, headers=headers)
    r = conn.getresponse()
    raw = r.read()
    conn.close()
    try:
        return r.status, json.loads(raw)
    except ValueError:
        return r.status, raw.decode(errors="replace")


def wait_until(pred, timeout=60, every=0.25, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def load_ext(con):
    con.enable_load_extension(True)
    con.load_extension(str(EXT))
