# tests/reliability/test_flips.py: single-byte flips in random positions of a signed 50-change batch: over HTTP every one is refused; at the core every flip of signed content is rejected and a flip of the advisory envelope applies nothing different.
import collections
import json
import os
import random
import time

import pytest

from conftest import LONG
from hostile_batches import RICH_SCHEMA, dumps, ext_connect, signed_batch, write_changes
from hostile_flips import ADVISORY, field_spans, fingerprint, flip, try_in_savepoint
from sidecar_helpers import db_hash, free_port, pair, send, signed, signer

SEED = int(os.environ.get("PEERSYNC_SEED", "5150"))
CORE_FLIPS = 10_000  # fast enough (a few seconds per 10,000) for the short run too
HTTP_FLIPS = 10_000


@pytest.fixture
def a_and_b(devices):
    """A with 50 changes (its signed batch), and B, which trusts A, holding none of them."""
    a, b = devices("a", schema=RICH_SCHEMA), devices("b", schema=RICH_SCHEMA)
    pair(a, b)
    a.track()
    b.track()
    assert write_changes(a) == 50
    batch = signed_batch(a)
    assert len(batch["changes"]) == 50 and len(batch["signatures"]) == 1
    return a, b, batch


def by_field(tried, rejected):
    return ", ".join(f"{f} {rejected[f]}/{n}" for f, n in sorted(tried.items()))


@pytest.mark.parametrize("values", ["any byte", "printable ASCII"])
def test_core_rejects_every_flip(a_and_b, reliability, values):
    """sync_apply (the extension, one connection, each attempt in a rolled-back savepoint) on a
    receiver that trusts A: each flipped batch must fail with an error naming sync_apply and
    leave the database as it was."""
    a, b, batch = a_and_b
    text, labels = field_spans(batch)
    before = db_hash(b.db)
    con = ext_connect(b.db)
    pristine = fingerprint(con)
    outcome, out, control = try_in_savepoint(con, text, pristine)
    assert outcome == "accepted" and json.loads(out)["accepted"] == 50, (outcome, out)  # the control applies
    seed = f"{SEED}-{values}"
    print(f"flip seed: {seed!r} (PEERSYNC_SEED={SEED})")
    rng = random.Random(seed)
    tried, rejected, reasons = collections.Counter(), collections.Counter(), collections.Counter()
    accepted, changed, unnamed, harmless = [], [], [], 0
    started = time.time()
    for _ in range(CORE_FLIPS):
        data, pos, old, new = flip(text, rng, printable=values == "printable ASCII")
        field = labels[pos]
        tried[field] += 1
        outcome, detail, got = try_in_savepoint(con, data, pristine)
        where = f"byte {pos} ({field}) {old:#04x}->{new:#04x} {text[max(0, pos - 12):pos + 12]!r}"
        if outcome == "accepted":
            if field in ADVISORY and got == control:
                harmless += 1
                continue
            r = json.loads(detail)
            accepted.append(f"{where}: accepted {r['accepted']}, deferred {r['deferred']}, refused {r['refused']}")
            continue
        if outcome != "rejected":
            changed.append(f"{where}: {detail}")
        if "sync_apply" not in detail:
            unnamed.append(f"{where}: {detail}")
        rejected[field] += 1
        reasons[detail.split(":")[1].strip()[:40] if ":" in detail else detail[:40]] += 1
    seconds = round(time.time() - started, 1)
    con.close()
    assert db_hash(b.db) == before, "the flips changed the receiver's database"
    n_acc = len(accepted)
    envelope = sum(n for f, n in tried.items() if f in ADVISORY)
    reliability.record(
        "byte flips",
        f"sync_apply of a signed 50-change batch ({len(text)} bytes) with one byte flipped ({values}), "
        "receiver trusts the origin; each attempt in a rolled-back savepoint. Flips of signed content must be "
        "rejected; flips of the advisory envelope (sender id, vector, heads, prevs: covered by the request "
        "signature in transit) may apply, but only exactly what the genuine batch applies",
        seed=seed, positions_tried=CORE_FLIPS, signed_content_flips=CORE_FLIPS - envelope,
        signed_content_rejected=CORE_FLIPS - envelope - n_acc, envelope_flips=envelope,
        envelope_applied_identically=harmless, accepted_with_a_different_result=n_acc,
        changed_db_while_rejecting=len(changed), seconds=seconds, by_field=by_field(tried, rejected))
    assert not changed, "rejected flips that changed the database:\n" + "\n".join(changed[:20])
    assert not unnamed, "errors that do not name sync_apply:\n" + "\n".join(unnamed[:20])
    assert not accepted, (f"{n_acc} of {CORE_FLIPS} flips were accepted (by field: {by_field(tried, rejected)}):\n"
                          + "\n".join(accepted[:60]))


def test_core_rejects_flips_outside_the_changes(a_and_b, reliability):
    """Every byte of what the changes' hash chain does not cover (the batch's format, sender,
    has_more, vector, heads, prevs and signatures) and the first change's version, each replaced
    by several printable characters (every hex digit and 6 others; all 94 when LONG): rejected,
    nothing changed; or, for the advisory fields only, applied exactly as the genuine batch."""
    a, b, batch = a_and_b
    text, labels = field_spans(batch)
    first_version = text.index(b'"version":1,') + len(b'"version":')
    positions = [p for p, f in enumerate(labels) if not f.startswith("changes[]") and f != "json syntax"]
    positions.append(first_version)
    labels = list(labels)
    labels[first_version] = "changes[0].version"
    rng = random.Random(f"{SEED}-envelope")
    con = ext_connect(b.db)
    pristine = fingerprint(con)
    control = try_in_savepoint(con, text, pristine)[2]
    tried, rejected, accepted, changed = collections.Counter(), collections.Counter(), [], []
    harmless = collections.Counter()
    for pos in positions:
        values = [c for c in range(0x20, 0x7F) if c != text[pos]]
        hexdigits = [c for c in b"0123456789abcdef" if c != text[pos]]
        others = [c for c in values if c not in hexdigits]
        for new in values if LONG else hexdigits + rng.sample(others, 6):
            data = text[:pos] + bytes([new]) + text[pos + 1:]
            tried[labels[pos]] += 1
            outcome, detail, got = try_in_savepoint(con, data, pristine)
            if outcome == "accepted" and labels[pos] in ADVISORY and got == control:
                harmless[labels[pos]] += 1
            elif outcome == "accepted":
                r = json.loads(detail)
                accepted.append((labels[pos], f"byte {pos} ({labels[pos]}) {text[pos]:#04x}->{new:#04x} "
                                 f"{data[max(0, pos - 12):pos + 12]!r}: accepted {r['accepted']}, deferred {r['deferred']}"))
            else:
                rejected[labels[pos]] += 1
                if outcome != "rejected":
                    changed.append(f"byte {pos}: {detail}")
    con.close()
    n = sum(tried.values())
    reliability.record(
        "byte flips", "sync_apply with each byte of the batch's envelope (format, sender, has_more, vector, heads, "
        "prevs, signatures) and of the first change's version replaced by printable characters; advisory fields "
        "(sender, vector, heads, prevs) may apply, but only exactly what the genuine batch applies",
        positions=len(positions), inputs_tried=n, rejected=sum(rejected.values()),
        advisory_applied_identically=sum(harmless.values()), accepted_with_a_different_result=len(accepted),
        by_field=by_field(tried, rejected))
    assert not changed, "rejected flips that changed the database:\n" + "\n".join(changed[:20])
    samples = collections.defaultdict(list)
    for field, line in accepted:
        samples[field].append(line)
    assert not accepted, (f"{len(accepted)} of {n} flips were accepted (by field: {by_field(tried, rejected)}); samples:\n"
                          + "\n".join(line for lines in samples.values() for line in lines[:4]))


def test_http_rejects_every_flip(a_and_b, reliability):
    """POST /sync/push of a flipped body under a fresh, valid signature of the original body:
    401 (Content-Digest), nothing changed; the original body is then accepted."""
    a, b, batch = a_and_b
    text = dumps(batch).encode()
    b.serve("127.0.0.2", free_port())
    url = f"{b.url}/sync/push"
    before = db_hash(b.db)
    rng = random.Random(f"{SEED}-http")
    print(f"flip seed: {SEED}-http")
    refused, wrong = 0, []
    started = time.time()
    for _ in range(HTTP_FLIPS):
        data, pos, old, new = flip(text, rng)
        code, body = send(signed("POST", url, signer(a), text), body=data)
        if code == 401 and isinstance(body, dict) and "Content-Digest" in body.get("error", ""):
            refused += 1
        else:
            wrong.append(f"byte {pos} {old:#04x}->{new:#04x}: {code} {body}")
    seconds = round(time.time() - started, 1)
    after = db_hash(b.db)
    code, body = send(signed("POST", url, signer(a), text))
    assert code == 200 and body["accepted"] == 50, (code, body)
    reliability.record(
        "byte flips", f"POST /sync/push of a flipped 50-change batch ({len(text)} bytes) under a valid signature of the original",
        seed=f"{SEED}-http", requests=HTTP_FLIPS, rejected_401_digest=refused, seconds=seconds)
    assert not wrong, f"{len(wrong)} flipped pushes were not refused with 401 Content-Digest:\n" + "\n".join(wrong[:20])
    assert after == before, "refused pushes changed the database"
