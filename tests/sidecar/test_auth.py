# The sidecar's request authentication (RFC 9421 + RFC 9530): every refusal case one by one,
# each answered 401/403 with nothing changed; interop with requests-http-signature; loopback monitors.
import json
import os
import sqlite3

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import db_hash, free_port, load_ext, pair, send, signed, signer, table_rows


def head_signature(dev, version, hash_):
    key = serialization.load_pem_private_key(dev.key_pem(), None)
    msg = f"peersync-head-v1\n{dev.id}\n{version}\n{hash_}".encode()
    return {"device_id": dev.id, "version": version, "hash": hash_, "signature": key.sign(msg).hex()}


def batch_of(dev, since="{}"):
    """What `dev` would push (its changes since `since`), with its head signature, via the extension."""
    con = sqlite3.connect(dev.db, timeout=30)
    load_ext(con)
    batch = json.loads(con.execute("SELECT sync_changes(?)", (since,)).fetchone()[0])
    con.close()
    own = [c for c in batch["changes"] if c["device_id"] == dev.id]
    last = max(own, key=lambda c: c["version"])
    batch["signatures"] = [head_signature(dev, last["version"], last["hash"])]
    return batch


@pytest.fixture
def pair_ab(devices):
    """A (client, not serving) with 3 notes; B serving with no peers."""
    a, b = devices("a"), devices("b")
    pair(a, b)
    a.track()
    b.track()
    for i in range(3):
        a.sql("INSERT INTO notes VALUES (?, ?, ?)", (f"a{i}", "from a", i))
    b.serve("127.0.0.2", free_port(), (), "--max-body", "100000", "--header-timeout", "1", "--body-timeout", "1",
            "--max-connections", "4")
    return a, b


def expect_refused(b, prepared, status, words, **kw):
    before = db_hash(b.db)
    code, body = send(prepared, **kw)
    assert code == status, body
    assert isinstance(body, dict) and words in body["error"], body
    assert db_hash(b.db) == before, "a refused request changed the database"


def test_interop_signed_push_is_accepted(pair_ab):
    """A request signed by requests-http-signature (ED25519, use_nonce=True) is accepted."""
    a, b = pair_ab
    code, body = send(signed("POST", f"{b.url}/sync/push", signer(a), batch_of(a)))
    assert code == 200, body
    assert body["accepted"] == 3 and body["device_id"] == b.id and body["vector"][a.id] == 3
    assert [r[0] for r in table_rows(b.db)] == ["a0", "a1", "a2"]
    # also through requests itself, on a GET that has no body
    r = requests.get(f"{b.url}/conflicts", auth=signer(a), timeout=10)
    assert r.status_code == 200 and r.json() == []
    r = requests.get(f"{b.url}/status", auth=signer(a), timeout=10)
    assert r.status_code == 200 and r.json()["device_id"] == b.id


def test_unsigned_is_401(pair_ab):
    a, b = pair_ab
    p = requests.Request("POST", f"{b.url}/sync/push", data=json.dumps(batch_of(a))).prepare()
    expect_refused(b, p, 401, "signed request")


def test_unknown_key_is_401(pair_ab):
    a, b = pair_ab
    stranger = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    expect_refused(b, signed("POST", f"{b.url}/sync/push", signer(stranger, keyid=os.urandom(16).hex()), batch_of(a)),
                   401, "unknown key id")


def test_wrong_key_for_known_id_is_401(pair_ab):
    a, b = pair_ab
    stranger = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    expect_refused(b, signed("POST", f"{b.url}/sync/push", signer(stranger, keyid=a.id), batch_of(a)), 401, "does not verify")


def test_revoked_key_is_403(pair_ab):
    a, b = pair_ab
    b.cli("revoke", a.id)
    expect_refused(b, signed("POST", f"{b.url}/sync/push", signer(a), batch_of(a)), 403, "revoked")


def test_altered_body_is_401(pair_ab):
    a, b = pair_ab
    p = signed("POST", f"{b.url}/sync/push", signer(a), batch_of(a))
    other = batch_of(a)
    other["changes"] = other["changes"][:1]
    expect_refused(b, p, 401, "Content-Digest", body=json.dumps(other).encode())


def test_altered_path_is_401(pair_ab):
    a, b = pair_ab
    p = signed("POST", f"{b.url}/sync/pull", signer(a), batch_of(a))
    expect_refused(b, p, 401, "does not verify", url=f"{b.url}/sync/push")


@pytest.mark.parametrize("offset", [-400, 400])
def test_stale_or_future_created_is_401(pair_ab, offset):
    a, b = pair_ab
    expect_refused(b, signed("POST", f"{b.url}/sync/push", signer(a, created_offset=offset), batch_of(a)), 401, "created")


def test_replayed_nonce_is_401(pair_ab):
    a, b = pair_ab
    p = signed("POST", f"{b.url}/sync/push", signer(a), batch_of(a))
    code, body = send(p)
    assert code == 200 and body["accepted"] == 3
    expect_refused(b, p, 401, "nonce already used")


def test_wrong_source_address_is_403(pair_ab):
    a, b = pair_ab
    b.trust(a, tailscale_ip="127.0.0.5")
    expect_refused(b, signed("POST", f"{b.url}/sync/push", signer(a), batch_of(a)), 403, "127.0.0.5", source="127.0.0.1")
    code, body = send(signed("POST", f"{b.url}/sync/push", signer(a), batch_of(a)), source="127.0.0.5")
    assert code == 200 and body["accepted"] == 3, body


def test_batch_from_another_device_than_the_signer_is_403(pair_ab, devices):
    a, b = pair_ab
    batch = batch_of(a)
    batch["device_id"] = b.id
    expect_refused(b, signed("POST", f"{b.url}/sync/push", signer(a), batch), 403, "signed by")


def test_hash_mismatch_is_422_naming_the_change(pair_ab):
    a, b = pair_ab
    batch = batch_of(a)
    first = batch["changes"][0]
    first["change_data"] = first["change_data"].replace("from a", "forged")
    assert "forged" in first["change_data"]
    expect_refused(b, signed("POST", f"{b.url}/sync/push", signer(a), batch), 422, f"{a.id}:{first['version']}")
    code, body = send(signed("POST", f"{b.url}/sync/push", signer(a), batch))
    assert "push again" in body["error"]


def test_oversized_body_is_413(pair_ab):
    a, b = pair_ab
    batch = batch_of(a)
    batch["padding"] = "x" * 200_000
    expect_refused(b, signed("POST", f"{b.url}/sync/push", signer(a), batch), 413, "larger than 100000 bytes")


def test_health_and_loopback_monitor_exception(pair_ab):
    a, b = pair_ab
    assert requests.get(f"{b.url}/health", timeout=5).json() == {"ok": True}
    assert requests.get(f"{b.url}/metrics", timeout=5).status_code == 200
    assert "peersync_changes_received_total" in requests.get(f"{b.url}/metrics", timeout=5).text
    assert requests.get(f"{b.url}/status", timeout=5).json()["device_id"] == b.id
    # a loopback address with a Host header that names another host: DNS rebinding, refused
    r = requests.get(f"{b.url}/status", headers={"Host": f"evil.example:{b.port}"}, timeout=5)
    assert r.status_code == 401
    # the exception is only for /metrics and /status
    assert requests.get(f"{b.url}/conflicts", timeout=5).status_code == 401
    assert requests.post(f"{b.url}/sync/pull", json={"since": {}}, timeout=5).status_code == 401
    assert requests.get(f"{b.url}/nope", timeout=5).status_code == 404
