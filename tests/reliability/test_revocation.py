# tests/reliability/test_revocation.py: a device revoked on B (sidecar running) is refused at once, the revocation reaches A at its next sync (so C's later changes reach neither), and B never re-admits it by itself.
import json
import time

from conftest import LONG
from hostile_batches import dumps, forge
from hostile_peers import devices as device_states, mesh, note_ids, relay_batch, sync, vector, write_notes
from sidecar_helpers import send, signed, signer, wait_until

WATCH = 15 if LONG else 3  # seconds (sync rounds at 1 s) during which something must NOT happen


def request_from(dev, peer, path="/conflicts"):
    return send(signed("GET", f"{peer.url}{path}", signer(dev)))


def c_rows_on(dev, c):
    return dev.sql("SELECT count(*) FROM sync_log WHERE device_id = ?", (c.id,))[0][0]


def test_revoked_device_is_refused_at_once_and_for_good(devices, reliability):
    a, b, c = mesh(devices)
    problems = []
    started = time.time()
    write_notes(a, "a1")
    write_notes(b, "b1")
    write_notes(c, "c1")
    wait_until(lambda: note_ids(a) == note_ids(b) == note_ids(c) == {"a1", "b1", "c1"}, 30, what="convergence")
    converged_in = round(time.time() - started, 1)
    c_on_b = c_rows_on(b, c)

    # revoked while B's sidecar runs: C's very next request is refused
    b.cli("revoke", c.id)
    t = time.time()
    code, reply = request_from(c, b)
    refusal_ms = round((time.time() - t) * 1000, 1)
    if code != 403 or "revoked" not in str(reply):
        problems.append(f"C's first request after the revocation: {code} {reply}")
    ok, out = sync(c, b)
    if ok or "403" not in out or "revoked" not in out:
        problems.append(f"C's one-shot sync with B after the revocation: {out.strip()[-300:]}")

    # The revocation travels: A (which syncs with B) takes it up at its next sync, signed by B;
    # C's later changes then reach neither A nor B. (Before revocations travelled, A went on
    # taking C's changes and relaying them to B, which refused them: core tests and
    # tests/sidecar/test_stall.py cover a relay that has not heard of a revocation yet.)
    wait_until(lambda: a.sql("SELECT is_authorized, revoked_by FROM sync_devices WHERE device_id = ?", (c.id,)) == [(0, b.id)],
               30, what="B's revocation of C at A")
    write_notes(c, "c2", "c3")
    write_notes(a, "a2")
    wait_until(lambda: "a2" in note_ids(b), 30, what="A's change at B")
    time.sleep(WATCH)
    if {"c2", "c3"} & (note_ids(b) | note_ids(a)) or c_rows_on(b, c) != c_on_b or c_rows_on(a, c) != c_on_b:
        problems.append(f"C's later changes reached B or A: {sorted(note_ids(b))} {sorted(note_ids(a))}")
    ok, out = sync(c, a)
    if ok or "403" not in out or "revoked" not in out:
        problems.append(f"C's one-shot sync with A after the revocation reached A: {out.strip()[-300:]}")
    relayed_refused = None
    ok, out = sync(a, b)
    if not ok:
        problems.append(f"A's one-shot sync with B fails after the revocation: {out.strip()[-300:]}")

    # B never re-admits C by itself: A pushes C's device row, syncs go on, B restarts
    row = json.dumps({"device_id": c.id, "device_name": "c", "public_key": c.public_key, "is_authorized": 1}, separators=(",", ":"))
    forged_row = forge(a.id, b.db, [{"table_name": "sync_devices", "record_id": f"'{c.id}'", "change_data": row}], signer=a)
    code, reply = send(signed("POST", f"{b.url}/sync/push", signer(a), dumps(forged_row).encode()))
    if code != 400 or "malformed revocation" not in str(reply):
        problems.append(f"A's push of C's device row (authorized): {code} {str(reply)[:300]}")
    b.stop()
    b.serve(b.host, b.port, [a, c], interval="1", log_name="b-restarted.log")
    write_notes(c, "c4")
    write_notes(a, "a3")
    wait_until(lambda: "a3" in note_ids(b), 30, what="syncs after B's restart")
    time.sleep(WATCH)
    code, reply = request_from(c, b)
    if code != 403 or "revoked" not in str(reply):
        problems.append(f"C's request after B's restart: {code} {reply}")
    if {"c2", "c3", "c4"} & (note_ids(b) | note_ids(a)) or c_rows_on(b, c) != c_on_b:
        problems.append(f"C's changes reached B after its restart: {sorted(note_ids(b))}")
    state = device_states(b).get(c.id)
    if state != "revoked":
        problems.append(f"`peersync devices` on B shows C as {state}")
    if b.sql("SELECT is_authorized FROM sync_devices WHERE device_id = ?", (c.id,)) != [(0,)]:
        problems.append("C's row on B is authorized again")
    reliability.record(
        "revocation", "A, B, C paired, sidecars syncing every second; C revoked on B while B runs; C keeps writing; "
        "A relays; A pushes C's device row; B restarts",
        converged_in_s=converged_in, refused_after_revoke_ms=refusal_ms, c_changes_after_revoke=3,
        c_changes_reaching_b=len({"c2", "c3", "c4"} & note_ids(b)), relayed_push_refused=relayed_refused,
        watch_s=2 * WATCH, b_restarts=1, problems=len(problems))
    assert not problems, "\n".join(problems)


def test_revoking_device_sends_nothing_more_to_the_revoked_one(devices, reliability):
    """After B revokes C, B's sidecar (still configured with --peer C) must not keep sending
    B's new changes to C. A is stopped so that nothing reaches C through A."""
    a, b, c = mesh(devices)
    write_notes(b, "b1")
    wait_until(lambda: "b1" in note_ids(c) and "b1" in note_ids(a), 30, what="convergence")
    b.cli("revoke", c.id)
    a.stop()
    write_notes(b, "b2")
    time.sleep(WATCH + 1)
    leaked = sorted({"b2"} & note_ids(c))
    reliability.record("revocation", "B revokes C (B still lists C as a peer; A stopped); B writes; does C get it?",
                       watch_s=WATCH + 1, b_changes_after_revoke=1, reached_c=len(leaked))
    assert not leaked, f"B kept sending its new changes to C after revoking it: C holds {leaked}"
