# tests/reliability/test_forks.py: forged forks of a device's hash chain, sent by the origin and relayed by a third peer, at the core (sync_apply) and through sidecars: detected ("forked chain", 409), nothing applied, the sender quarantined until a person releases it.
import json

import pytest

from hostile_batches import dumps, ext_connect, forge, signed_batch, sql_apply
from hostile_peers import copy_db, devices as device_states, head, log_size, note_ids, status, sync, verify, write_notes
from sidecar_helpers import db_hash, free_port, pair, send, signed, signer


def paired(devices, serve_b=False):
    """A, B, C all paired and tracking notes; A has written a1..a3 and B holds them (A:1..3)."""
    a, b, c = devices("a"), devices("b"), devices("c")
    pair(a, b, c)
    for d in (a, b, c):
        d.track()
    write_notes(a, "a1", "a2", "a3")
    con = ext_connect(b.db)
    ok, out = sql_apply(con, dumps(signed_batch(a)))
    con.close()
    assert ok and out["accepted"] == 3, out
    if serve_b:
        b.serve("127.0.0.2", free_port())
    return a, b, c


SHAPES = {"held versions only": 2, "held versions and a new one": 3}


def forged_fork(a, b, sender=None, shape="held versions and a new one"):
    """An alternative chain for A from version 2 (B holds A:1..3): versions 2, 3 (held by B,
    with other hashes), and with the second shape 4 (new), correctly chained on A:1 and
    signed with A's key."""
    v1 = b.sql("SELECT hash FROM sync_log WHERE device_id = ? AND version = 1", (a.id,))[0][0]
    specs = [{"record_id": f"'fork{k}'", "change_data": json.dumps({"id": f"fork{k}", "body": "forged"}, separators=(",", ":"))}
             for k in range(SHAPES[shape])]
    return forge(a.id, b.db, specs, signer=a, sender=sender, head=(1, v1))


def genuine(dev, receiver, note):
    """A real new change of `dev` (a note), as its sidecar would push it to `receiver`."""
    write_notes(dev, note)
    since = json.dumps({k: v for k, v in status(receiver)["vector"].items()})
    return dumps(signed_batch(dev, since))


def quarantine_of(dev):
    con = ext_connect(dev.db)
    try:
        return json.loads(con.execute("SELECT sync_status()").fetchone()[0])["quarantined"]
    finally:
        con.close()


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("relayed", [False, True], ids=["sent by the origin", "relayed by a third peer"])
def test_core_fork(devices, reliability, relayed, shape):
    """sync_apply of a forged fork of A's chain on B (autocommit): 'forked chain', nothing
    applied, the sender quarantined (sync_status), its later batches refused ('quarantined'),
    until sync_release / peersync release; the origin itself is not blamed for a relayed fork."""
    a, b, c = paired(devices)
    sender = c if relayed else a
    fork = forged_fork(a, b, sender=sender.id, shape=shape)
    if relayed:  # a genuine change of C rides along: all or nothing
        write_notes(c, "c1")
        own = signed_batch(c)
        fork["changes"] += own["changes"]
        fork["signatures"] += own["signatures"]
    before, notes_before, log_before = db_hash(b.db), note_ids(b), log_size(b)
    con = ext_connect(b.db)
    ok, out = sql_apply(con, dumps(fork))
    assert not ok and "sync_apply" in out and "forked chain" in out, out
    assert (note_ids(b), log_size(b)) == (notes_before, log_before), "a forked batch applied something"
    [q] = quarantine_of(b)
    assert (q["device_id"], q["origin"], q["version"]) == (sender.id, a.id, 2), q
    assert "forked chain" in q["reason"] and q["detected_at"], q
    assert device_states(b)[sender.id] == "quarantined"
    assert f"QUARANTINED: {sender.id}" in b.cli("status").stdout
    # the sender's later batches: refused, nothing changed
    quarantined = db_hash(b.db)
    later = genuine(sender, b, f"{sender.name}-later")
    ok, out = sql_apply(con, later)
    assert not ok and "sync_apply" in out and "quarantined" in out, out
    assert db_hash(b.db) == quarantined
    if relayed:  # the origin of the forged changes is not blamed: its genuine changes apply
        ok, out = sql_apply(con, genuine(a, b, "a4"))
        assert ok and out["accepted"] == 1, out
        before_release = (note_ids(b), log_size(b))
        r = b.cli("release", c.id, check=False)
        assert r.returncode == 0 and "released" in r.stdout, r.stderr
        r = b.cli("release", c.id, check=False)
        assert r.returncode != 0 and "not quarantined" in r.stderr, (r.stdout, r.stderr)
        assert quarantine_of(b) == [] and (note_ids(b), log_size(b)) == before_release
    else:
        assert con.execute("SELECT sync_release(?)", (a.id,)).fetchone()[0] == 1
        assert con.execute("SELECT sync_release(?)", (a.id,)).fetchone()[0] == 0
        assert con.execute("SELECT sync_release(?)", (c.id,)).fetchone()[0] == 0
        assert quarantine_of(b) == [] and db_hash(b.db) == before, "the fork, or releasing, changed more than the quarantine"
    ok, out = sql_apply(con, later)  # released: the sender's genuine batch applies
    assert ok and out["accepted"] >= 1, out
    con.close()
    assert verify(b)["ok"]
    reliability.record("forks", f"sync_apply of a forged fork of A's chain ({shape}, signed with A's key), "
                       f"{'relayed by C with a genuine change of C' if relayed else 'sent by A'}",
                       forked_versions=2, changes_in_batch=len(fork["changes"]), applied=0,
                       quarantined=sender.name, later_batch="refused (quarantined)", after_release="applies")


def test_core_fork_inside_a_transaction(devices, reliability):
    """Inside the caller's transaction the fork is refused the same way; quarantine needs
    autocommit (the caller's rollback would undo it), so nothing at all is recorded."""
    a, b, c = paired(devices)
    before = db_hash(b.db)
    con = ext_connect(b.db)
    con.execute("BEGIN")
    ok, out = sql_apply(con, dumps(forged_fork(a, b, shape="held versions only")))
    assert not ok and "forked chain" in out, out
    assert json.loads(con.execute("SELECT sync_status()").fetchone()[0])["quarantined"] == []
    con.execute("ROLLBACK")
    for bad in ("'nope'", "NULL", "42"):
        try:
            con.execute(f"SELECT sync_release({bad})").fetchone()
            raise AssertionError(f"sync_release({bad}) did not fail")
        except Exception as e:  # sqlite3.Error
            assert "sync_release" in str(e), e
    con.close()
    assert db_hash(b.db) == before
    reliability.record("forks", "sync_apply of a forged fork inside the caller's transaction; sync_release with bad arguments",
                       applied=0, quarantined="none (not autocommit)", bad_release_args_refused=3)


def push(dev, b, batch):
    return send(signed("POST", f"{b.url}/sync/push", signer(dev), dumps(batch).encode()))


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("relayed", [False, True], ids=["pushed by the origin", "relayed by a third peer"])
def test_sidecar_fork(devices, reliability, relayed, shape):
    """POST /sync/push of a forged fork: 409 'forked chain', nothing applied, the pusher
    quarantined (403 'quarantined' afterwards, `peersync devices`/`status` show it) while
    others sync on; `peersync release` (sidecar running) lets it sync again."""
    a, b, c = paired(devices, serve_b=True)
    pusher, other = (c, a) if relayed else (a, c)
    before_notes, before_log = note_ids(b), log_size(b)
    code, reply = push(pusher, b, forged_fork(a, b, sender=pusher.id, shape=shape))
    assert code == 409 and "forked chain" in reply["error"], (code, reply)
    assert (note_ids(b), log_size(b)) == (before_notes, before_log), "a forked push applied something"
    assert device_states(b)[pusher.id] == "quarantined"
    assert [q["device_id"] for q in status(b)["quarantined"]] == [pusher.id]
    assert f"QUARANTINED: {pusher.id}" in b.cli("status").stdout
    frozen = db_hash(b.db)
    write_notes(pusher, f"{pusher.name}-later")
    ok, out = sync(pusher, b)
    assert not ok and "403" in out and "quarantined" in out, out
    code, reply = send(signed("GET", f"{b.url}/conflicts", signer(pusher)))
    assert code == 403 and "quarantined" in reply["error"], (code, reply)
    assert db_hash(b.db) == frozen, "a quarantined peer's requests changed the database"
    write_notes(other, f"{other.name}-meanwhile")
    ok, out = sync(other, b)  # everyone else, the forged chain's origin included, syncs on
    assert ok, out
    assert f"{other.name}-meanwhile" in note_ids(b)
    r = b.cli("release", pusher.id, check=False)
    assert r.returncode == 0, r.stderr
    ok, out = sync(pusher, b)  # the fork is gone (only the test forged it): sync works again
    assert ok, out
    assert f"{pusher.name}-later" in note_ids(b) and status(b)["quarantined"] == []
    assert verify(b)["ok"] and not any(i.startswith("fork") for i in note_ids(b))
    reliability.record("forks", f"POST /sync/push of a forged fork of A's chain ({shape}, signed with A's key) "
                       f"{'by C, a third peer' if relayed else 'by A itself'}; sidecar B running",
                       status=409, applied=0, pusher_later="403 quarantined", others="sync on",
                       after_release="sync works")


@pytest.mark.parametrize("written", [0, 1, 2, 3])
def test_restored_backup(devices, reliability, tmp_path, written):
    """A is restored from a backup taken at A:1 after B got A:1..3, then writes `written` new
    changes and syncs with B. Either way the two histories of A disagree: with 0, B sends back
    changes A (as restored) never made; with 1..3, A's new changes reuse versions B holds. The
    sync must say 'forked chain', a quarantine must hold it (on A or B) until a person decides,
    and nothing of either branch crosses over (README: a restored device is set up as a new one)."""
    a, b = devices("a"), devices("b")
    pair(a, b)
    a.track()
    b.track()
    b.serve("127.0.0.2", free_port())
    write_notes(a, "a1")
    assert sync(a, b)[0]
    copy_db(a.db, tmp_path / "backup.db")
    write_notes(a, "a2", "a3")
    assert sync(a, b)[0] and head(b, a)[0] == 3
    copy_db(tmp_path / "backup.db", a.db)
    new = [f"r{i}" for i in range(written)]
    write_notes(a, *new)
    ok, out = sync(a, b)
    quarantines = {"A": status(a)["quarantined"], "B": status(b)["quarantined"]}
    figures = dict(new_changes_after_restore=written, sync_ok=ok, quarantined_on=[k for k, v in quarantines.items() if v] or "none",
                   b_holds=sorted(note_ids(b)), a_holds=sorted(note_ids(a)))
    reliability.record("forks", f"A restored from a backup (A:1) after B got A:1..3; A writes {written} change(s), then syncs with B",
                       **figures)
    assert not ok and "forked chain" in out and any(quarantines.values()), \
        f"the fork of A's chain was not detected: sync {'succeeded' if ok else 'failed'}: {out.strip()[-400:]} {figures}"
    assert note_ids(b) == {"a1", "a2", "a3"} and note_ids(a) == {"a1", *new}, figures
    if written == 0:  # found in the pull: B sends changes that claim to be A's own, so A quarantines B
        assert [q["device_id"] for q in quarantines["A"]] == [b.id] and device_states(a)[b.id] == "quarantined", quarantines
    else:  # found at once: A's head hash at a version B holds differs from B's, so B quarantines A
        assert [q["device_id"] for q in quarantines["B"]] == [a.id] and device_states(b)[a.id] == "quarantined", quarantines
    ok, out = sync(a, b)
    assert not ok and "quarantined" in out, out
    assert note_ids(b) == {"a1", "a2", "a3"} and note_ids(a) == {"a1", *new}, "a quarantined sync moved data"
