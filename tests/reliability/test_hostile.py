# tests/reliability/test_hostile.py: the hostile input matrix against a real sidecar (and sync_apply in the extension): each input refused with the right status and message, the database unchanged.
import json
import sqlite3
import threading
import time

import pytest
import requests

import hostile_cases as hc
from hostile_batches import dumps, forge, sql_apply, ext_connect
from hostile_http import Dribbler, signed_head, stream_body
from hostile_matrix import Env, Family, http_problems, judge_batch
from sidecar_helpers import db_hash, table_rows

BATCH_FAMILIES = {
    "malformed JSON": hc.malformed_json,
    "wrong types for every field": hc.wrong_types,
    "missing fields": hc.missing_fields,
    "unknown fields": hc.unknown_fields,
    "deep nesting (100k levels)": hc.deep_batches,
    "hostile table, column, record_id and operation names (signed)": hc.hostile_names,
    "bases naming columns the change does not write (signed)": hc.bases_columns,
    "values that are no SQLite value (signed)": hc.change_values,
    "numbers beyond i64/u32, floats for integers": hc.huge_numbers,
    "changes claiming the receiver's or a third trusted device's id": hc.claims,
}


@pytest.fixture
def env(devices):
    return Env(devices)


@pytest.mark.parametrize("family", list(BATCH_FAMILIES))
def test_batch_family(env, reliability, family):
    """Every input of the family, pushed by a trusted peer (signed) and given to sync_apply."""
    fam = Family(family)
    for case in hc.cases(BATCH_FAMILIES[family], env):
        judge_batch(env, fam, case)
    assert requests.get(f"{env.b.url}/health", timeout=5).status_code == 200
    fam.record(reliability, f"POST /sync/push (signed by a trusted peer) and sync_apply: {family}")
    fam.check()


def test_hostile_names_not_tracked_here_wait_for_the_schema(env, reliability):
    """A signed change naming a table or column not tracked here, whatever the name holds, is
    logged and waits for the schema (README "Schema changes"): 200, the schema and the tracked
    table unchanged, the change listed under sync_status().schema_waiting."""
    fam = Family("held names")
    cases = [(f"table {t[:40]!r}", {"table_name": t}, "unknown_table")
             for t in hc.HOSTILE_TABLES if not hc.never_a_table(t) and t != "notes"]
    cases += [(f"column {c[:40]!r}", {"change_data": json.dumps({"id": "held", c: "x"}, separators=(",", ":")),
                                      "record_id": "'held'"}, "unknown_column")
              for c in hc.HOSTILE_COLUMNS if c != "" and "\u0000" not in c and c != "body"]
    for label, spec, reason in cases:
        schema, notes = table_rows(env.b.db, "sqlite_master"), table_rows(env.b.db, "notes")
        code, reply = env.request("POST", "/sync/push", dumps(forge(env.a.id, env.b.db, [spec], signer=env.a)), None)
        problems = [] if code == 200 and reply.get("schema_waiting") == 1 else [f"push: {code} {str(reply)[:300]}"]
        if table_rows(env.b.db, "sqlite_master") != schema or table_rows(env.b.db, "notes") != notes:
            problems.append("the schema or the tracked table changed")
        con = sqlite3.connect(env.b.db)
        last = con.execute("SELECT reason FROM sync_schema_waiting ORDER BY log_id DESC LIMIT 1").fetchone()
        con.close()
        if last is None or last[0] not in (reason, "behind"):
            problems.append(f"not waiting for the schema as {reason}: {last}")
        fam.judge(label, problems)
    fam.record(reliability, "POST /sync/push: hostile table and column names not tracked here are held for the schema, never run as SQL")
    fam.check()


def test_sender_is_not_the_signer(env, reliability):
    """A batch that says it comes from another device than the one that signed the request."""
    fam = Family("sender")
    for case in hc.cases(hc.other_senders, env):
        judge_batch(env, fam, case, sql=False)
    fam.record(reliability, "POST /sync/push whose batch names another sender than the request's signer")
    fam.check()


@pytest.mark.parametrize("endpoint", ["pull", "resolve"])
def test_request_bodies(env, reliability, endpoint):
    """Hostile bodies for POST /sync/pull and POST /conflicts/{id}/resolve (B's pending conflict)."""
    fam = Family(endpoint)
    path, gen = {"pull": ("/sync/pull", hc.pull_bodies),
                 "resolve": (f"/conflicts/{env.conflict}/resolve", hc.resolve_bodies)}[endpoint]
    for case in hc.cases(gen, env):
        problems = http_problems(env, "POST", path, case.body, case.status, case.words)
        status = table_rows(env.b.db, "sync_conflicts")[0]
        if "pending" not in status:
            problems.append(f"the conflict is no longer pending: {status}")
            env.b.sql("UPDATE sync_conflicts SET status = 'pending'")  # so the next inputs are judged on their own
        fam.judge(case.label, problems)
    fam.record(reliability, f"POST {path}: malformed JSON, wrong types, deep nesting, huge numbers, unknown fields")
    fam.check()


def test_conflict_paths(env, reliability):
    """Hostile paths and queries on the conflicts endpoints."""
    fam = Family("conflict paths")
    for method, path, status, words in (
            ("GET", "/conflicts?status=bogus", 400, ["status must be"]),
            ("GET", "/conflicts?status=pending%27%20OR%201=1", 400, ["status must be"]),
            ("GET", "/conflicts/abc", 404, ["ids are integers"]),
            ("GET", "/conflicts/99999999999999999999", 404, ["ids are integers"]),
            ("GET", "/conflicts/1e3", 404, ["ids are integers"]),
            ("GET", "/conflicts/-1", 404, ["no conflict"]),
            ("GET", "/conflicts/0", 404, ["no conflict"]),
            ("GET", "/conflicts/9223372036854775807", 404, ["no conflict"]),
            ("POST", "/conflicts/9223372036854775807/resolve", 404, ["no conflict"]),
            ("POST", "/conflicts/1%3B%20DROP%20TABLE%20notes/resolve", 404, ["ids are integers"]),
            ("GET", f"/conflicts/{env.conflict}/resolve", 405, ["takes POST"]),
            ("DELETE", "/conflicts", 405, ["takes GET"]),
            ("GET", "/" + "a" * 10_000, 404, ["no such endpoint"])):
        body = '{"choice":"local"}' if method == "POST" else None
        fam.judge(f"{method} {path[:60]}", http_problems(env, method, path, body, status, words))
    fam.record(reliability, "conflicts endpoints: bad ids (text, beyond i64, negative), bad status filter, wrong methods")
    fam.check()


def test_replayed_requests(env, reliability):
    """The same signed request sent twice: the second is 401 and changes nothing."""
    from sidecar_helpers import send, signed, signer
    fam = Family("replay")
    batch = forge(env.a.id, env.b.db, [{}, {}], signer=env.a)
    for label, method, path, body, first in (
            ("push", "POST", "/sync/push", dumps(batch), 200),
            ("pull", "POST", "/sync/pull", '{"since":{}}', 200),
            ("conflicts", "GET", "/conflicts", None, 200),
            ("resolve (refused the first time)", "POST", f"/conflicts/{env.conflict}/resolve", '{"choice":"bogus"}', 400)):
        p = signed(method, env.url(path), signer(env.a), body.encode() if body else None)
        code, reply = send(p)
        problems = [] if code == first else [f"first: {code} {str(reply)[:200]}"]
        before = db_hash(env.b.db)
        code, reply = send(p)
        if code != 401 or "nonce already used" not in str(reply):
            problems.append(f"replay: {code} {str(reply)[:200]}")
        if db_hash(env.b.db) != before:
            problems.append("the replay changed the database")
        fam.judge(label, problems)
    fam.record(reliability, "replayed signed requests (push, pull, GET /conflicts, resolve)")
    fam.check()


def test_far_future_timestamp_is_refused(env, reliability):
    """A change stamped i64::MAX (correctly chained and signed by a trusted peer) would pin every
    receiver's hybrid logical clock at its maximum: later writes could no longer be ordered after
    it. It must be refused (400, naming the timestamp), nothing changed."""
    fam = Family("far future")
    for ts in (2**63 - 1, 2**63 - 2, 2**62):
        case = hc.Case(f"timestamp {ts}", forge(env.a.id, env.b.db, [{"timestamp": ts}], signer=env.a), 400, ["timestamp"])
        judge_batch(env, fam, case)
    fam.record(reliability, "signed changes stamped in the far future (2^62 .. 2^63-1 µs)")
    # if accepted, show what it does to the receiver's clock (on a copy of B's database)
    fam.check(clock_after_far_future(env) if fam.failures else "")


def clock_after_far_future(env):
    copy = env.b.dir / "b-copy.db"
    con = sqlite3.connect(env.b.db, timeout=30)
    con.execute("VACUUM INTO ?", (str(copy),))
    con.close()
    con = ext_connect(copy)
    ok, out = sql_apply(con, dumps(forge(env.a.id, env.b.db, [{"timestamp": 2**63 - 1}], signer=env.a)))
    con.execute("INSERT INTO notes(id, body) VALUES ('after', 'x')")
    con.execute("SELECT sync_seal()")
    ts = con.execute("SELECT timestamp FROM sync_log WHERE record_id = '''after'''").fetchone()
    con.close()
    copy.unlink(missing_ok=True)
    return (f"consequence (on a copy): the far-future change was {'accepted' if ok else 'refused'}; "
            f"B's next local write is stamped {ts[0] if ts else None} (= the far-future change's, not after it)")


def test_unreachable_version_is_only_deferred(env, reliability):
    """A change of A at version 2^63-1 (B holds A up to a few): deferred, nothing applied."""
    fam = Family("unreachable version")
    before = (table_rows(env.b.db), table_rows(env.b.db, "sync_log"))
    for v in (2**63 - 1, 10**12):
        code, reply = env.request("POST", "/sync/push", dumps(forge(env.a.id, env.b.db, [{"version": v}], signer=env.a)))
        ok = code == 200 and reply["accepted"] == 0 and reply["deferred"] == 1
        fam.judge(f"version {v}", [] if ok and (table_rows(env.b.db), table_rows(env.b.db, "sync_log")) == before
                  else [f"{code} {str(reply)[:200]}"])
    fam.record(reliability, "signed changes at versions far past the head held (2^63-1, 10^12): deferred, nothing applied")
    fam.check()


def test_huge_bodies(env, reliability):
    """100 MB bodies: 413 before the server has read them all (B's --max-body is 64 MiB here),
    401 unsigned; the server stays up and serves others meanwhile."""
    b = env.b
    before = db_hash(b.db)
    total = 100 * 1024 * 1024
    results = {}
    url = env.url("/sync/push")
    body_digest_of = b"x" * 10  # the signature covers a small body: the size is judged first
    for label, head, chunked, status, words in (
            ("declared 100 MB, signed", signed_head(env.a, url, "POST", body_digest_of, content_length=total), False, 413, "larger than"),
            ("chunked 100 MB, signed", signed_head(env.a, url, "POST", body_digest_of, chunked=True), True, 413, "larger than"),
            ("declared 100 MB, unsigned", f"POST /sync/push HTTP/1.1\r\nHost: {b.host}:{b.port}\r\nContent-Length: {total}\r\n\r\n".encode(),
             False, 401, "signed request")):
        status, text, sent, seconds = stream_body(b.host, b.port, head, total, chunked=chunked)
        health = requests.get(f"{b.url}/health", timeout=5).status_code
        results[label] = (status, sent, round(seconds, 2), health, words in text)
    assert db_hash(b.db) == before
    fam = Family("huge bodies")
    for label, (status, sent, seconds, health, has_words) in results.items():
        want = 401 if "unsigned" in label else 413
        fam.judge(label, [] if status == want and has_words and sent < total and health == 200 and seconds < 20
                  else [f"status {status}, sent {sent} of {total} bytes in {seconds} s, health {health}, message ok {has_words}"])
    mb = {k: round(v[1] / 2**20, 1) for k, v in results.items()}
    fam.record(reliability, "100 MB request bodies (declared, chunked, unsigned) to POST /sync/push; --max-body 64 MiB",
               MiB_sent_before_413_declared=mb["declared 100 MB, signed"], MiB_sent_before_413_chunked=mb["chunked 100 MB, signed"],
               MiB_sent_before_401_unsigned=mb["declared 100 MB, unsigned"], server_up_after_each="yes" if all(
                   v[3] == 200 for v in results.values()) else "no")
    fam.check()


def test_slowloris(env, reliability):
    """Clients that dribble their headers or body one byte at a time (B: --header-timeout 2,
    --body-timeout 2): each is cut off in bounded time although bytes keep coming, and other
    clients are served meanwhile; nothing changes."""
    b = env.b
    before = db_hash(b.db)
    body = dumps(forge(env.a.id, b.db, [{}], signer=env.a)).encode()
    headers = f"GET /health HTTP/1.1\r\nHost: {b.host}:{b.port}\r\nX-Padding: {'a' * 500}\r\n\r\n".encode()
    outcomes = {}
    lock = threading.Lock()

    def run(name, dribbler):
        r = dribbler.run()
        with lock:
            outcomes[name] = r

    threads = []
    for i in range(10):
        threads.append(threading.Thread(target=run, args=(f"headers {i}", Dribbler(b.host, b.port, headers, every=0.1)), daemon=True))
        head = signed_head(env.a, env.url("/sync/push"), "POST", body)
        threads.append(threading.Thread(target=run, args=(f"body {i}", Dribbler(b.host, b.port, body, every=0.1, prefix=head)),
                                        daemon=True))
    for t in threads:
        t.start()
    time.sleep(0.5)
    served = []  # other clients, meanwhile
    while any(t.is_alive() for t in threads) and len(served) < 40:
        start = time.time()
        code = requests.get(f"{b.url}/health", timeout=5).status_code
        served.append((code, time.time() - start))
        time.sleep(0.1)
    for t in threads:
        t.join(20)
    fam = Family("slowloris")
    for name, (cut, sent, reply) in sorted(outcomes.items()):
        problems = []
        if cut is None or cut > 5:
            problems.append(f"not cut off in 5 s (cut after {cut}, {sent} bytes sent)")
        if name.startswith("body") and "408" not in reply.split("\r\n")[0]:
            problems.append(f"no 408 reply: {reply[:200]!r}")
        fam.judge(name, problems)
    slowest = max(s for _, s in served) if served else None
    fam.judge("others served meanwhile", [] if served and all(c == 200 for c, _ in served) and slowest < 2
              else [f"served: {served}"])
    fam.judge("database unchanged", [] if db_hash(b.db) == before else ["changed"])
    cuts = [o[0] for o in outcomes.values() if o[0] is not None]
    fam.record(reliability, "10 clients dribbling headers and 10 dribbling a signed push body, 1 byte / 0.1 s, at once",
               cut_off_after_s=f"{min(cuts):.1f}-{max(cuts):.1f}" if cuts else "never",
               other_requests_served=len(served), slowest_other_s=round(slowest, 2) if slowest else None)
    fam.check()
