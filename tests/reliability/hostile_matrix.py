# tests/reliability/hostile_matrix.py: the hostile-input environment (A, B serving, C; a pending conflict on B) and the judges that send one hostile input and check status, message and an unchanged database.
import json
import sqlite3

from hostile_batches import RICH_SCHEMA, dumps, ext_connect, signed_batch, sql_apply, write_changes
from sidecar_helpers import db_hash, free_port, pair, send, signed, signer

SCHEMA = RICH_SCHEMA + "; CREATE TABLE plain(id TEXT PRIMARY KEY, v TEXT)"


class Env:
    """A, B and C, all paired; B serves (short header/body timeouts) and holds A's first
    changes, one change of its own, and a pending conflict (id `conflict`) on notes (manual)."""

    def __init__(self, devices, *serve_args):
        self.a, self.b, self.c = (devices(n, schema=SCHEMA) for n in ("a", "b", "c"))
        pair(self.a, self.b, self.c)
        self.a.track()
        self.c.track()
        self.b.track("notes", "manual")
        write_changes(self.a, inserts=3, updates=1, deletes=0)
        self.a.sql("INSERT INTO notes(id, body) VALUES ('shared', 'from a')")
        self.b.sql("INSERT INTO notes(id, body) VALUES ('shared', 'from b')")
        con = ext_connect(self.b.db)
        ok, out = sql_apply(con, dumps(signed_batch(self.a)))
        con.close()
        assert ok and out["accepted"] == 5 and len(out["conflicts"]) == 1, out
        self.conflict = out["conflicts"][0]["id"]
        # --max-body 64 MiB (below the 1 GiB default), so the huge-body cases stay quick.
        self.b.serve("127.0.0.2", free_port(), (), "--header-timeout", "2", "--body-timeout", "2",
                     "--max-body", str(64 << 20), *serve_args)

    def url(self, path):
        return f"{self.b.url}{path}"

    def request(self, method, path, body=None, dev=None):
        """A request signed by `dev` (default A) over `body` (bytes, str or None)."""
        if isinstance(body, str):
            body = body.encode()
        return send(signed(method, self.url(path), signer(dev or self.a), body))

    def quarantined(self):
        con = sqlite3.connect(self.b.db, timeout=30)
        try:
            return [r[0] for r in con.execute("SELECT device_id FROM sync_quarantine")]
        finally:
            con.close()


class Family:
    """One row of the matrix: inputs tried, how many were refused as expected, and what was not."""

    def __init__(self, name):
        self.name, self.tried, self.rejected, self.failures = name, 0, 0, []

    def judge(self, label, problems):
        self.tried += 1
        if problems:
            self.failures.append(f"{label}: " + "; ".join(problems))
        else:
            self.rejected += 1

    def record(self, reliability, what, **extra):
        reliability.record("hostile input", what, inputs_tried=self.tried, rejected=self.rejected,
                           not_rejected_as_expected=len(self.failures), **extra)

    def check(self, note=""):
        assert not self.failures, f"{self.name}: {len(self.failures)} of {self.tried} inputs not refused as expected:\n" + \
            "\n".join(f[:600] for f in self.failures) + (f"\n{note}" if note else "")


def _words_missing(message, words):
    return [w for w in words if w not in message]


def http_problems(env, method, path, body, status, words, dev=None, after=None):
    """Sends one signed request; the problems with its reply and the database (empty: as
    expected). `after()` runs before the database is compared and returns more problems."""
    before = db_hash(env.b.db)
    code, reply = env.request(method, path, body, dev)
    problems = []
    error = reply.get("error", "") if isinstance(reply, dict) else str(reply)
    if code != status or _words_missing(error, words):
        problems.append(f"HTTP {method} {path}: expected {status} with {words}, got {code} {str(reply)[:300]}")
    if after:
        problems += after()
    if db_hash(env.b.db) != before:
        problems.append(f"HTTP {method} {path} changed the database")
    return problems


def sql_problems(env, text, words, fork=False):
    """sync_apply(text) through the extension on B's database: the problems (empty: an error
    naming sync_apply with `words`, nothing changed; with `fork`, A quarantined, then released)."""
    before = db_hash(env.b.db)
    con = ext_connect(env.b.db)
    try:
        ok, out = sql_apply(con, text)
        problems = []
        if ok:
            problems.append(f"sync_apply accepted it: {json.dumps(out)[:300]}")
        elif "sync_apply" not in out or _words_missing(out, words):
            problems.append(f"sync_apply: expected an error naming sync_apply with {words}, got {out[:300]}")
        if fork:
            if env.quarantined() != [env.a.id]:
                problems.append(f"sync_apply: the sender is not quarantined ({env.quarantined()})")
            if con.execute("SELECT sync_release(?)", (env.a.id,)).fetchone()[0] != 1:
                problems.append("sync_release did not release the sender")
    finally:
        con.close()
    if db_hash(env.b.db) != before:
        problems.append("sync_apply changed the database" + (" (after sync_release)" if fork else ""))
    return problems


def quarantine_problems(env):
    """After a fork pushed by A: A is quarantined, its next request gets 403 'quarantined'; then
    `peersync release` lifts it."""
    problems = []
    if env.quarantined() != [env.a.id]:
        problems.append(f"HTTP: the sender is not quarantined ({env.quarantined()})")
    code, reply = env.request("GET", "/conflicts")
    if code != 403 or "quarantined" not in str(reply):
        problems.append(f"HTTP: a quarantined sender's next request got {code} {str(reply)[:200]}")
    r = env.b.cli("release", env.a.id, check=False)
    if r.returncode != 0 or env.quarantined():
        problems.append(f"peersync release failed: {r.stdout} {r.stderr}")
    return problems


def judge_batch(env, family, case, sql=True):
    """A hostile batch (hostile_cases.Case; body: dict, str or bytes), pushed over HTTP signed
    by A, then applied with sync_apply: both refused as expected, nothing changed."""
    text = dumps(case.body) if isinstance(case.body, dict) else case.body
    problems = http_problems(env, "POST", "/sync/push", text, case.status, case.words,
                             after=(lambda: quarantine_problems(env)) if case.fork else None)
    if sql:
        problems += sql_problems(env, text, case.words if case.sql_words is None else case.sql_words, case.fork)
    if env.quarantined():  # an unexpected fork: release, so that the next inputs are judged on their own
        problems.append(f"left {env.quarantined()} quarantined")
        env.b.cli("release", env.a.id, check=False)
    family.judge(case.label, problems)
