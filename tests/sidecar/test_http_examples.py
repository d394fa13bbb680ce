"""README's "HTTP API from code" snippets (examples/http/), run against a live sidecar: resolving a
conflict from Python (requests-http-signature) and from Node, each signed with the calling
device's own key; and requests-http-signature without use_nonce=True gets a 401 naming the nonce."""
import json
import subprocess
import sys

import requests
import requests_http_signature as rhs

from conftest import ROOT, free_port, pair, table_rows

EXAMPLES = ROOT / "examples" / "http"


def conflicted(devices):
    """B serves and holds two pending conflicts between A's edits and its own; A is paired with it."""
    a, b = devices("a"), devices("b")
    pair(a, b)
    a.track(strategy="manual")
    b.track(strategy="manual")
    b.sql("INSERT INTO notes VALUES ('n1', 'base', 1), ('n2', 'base', 2)")
    b.serve("127.0.0.2", free_port())
    a.cli("sync", "--peer", b.url)
    a.sql("UPDATE notes SET body = 'a'")
    b.sql("UPDATE notes SET body = 'b'")
    a.cli("sync", "--peer", b.url)
    ids = {cid: rid for cid, rid in b.sql("SELECT id, record_id FROM sync_conflicts WHERE status = 'pending'")}
    assert sorted(ids.values()) == ["'n1'", "'n2'"]
    return a, b, {rid: cid for cid, rid in ids.items()}


def node(*argv):
    cmd = 'source tests/node/env.sh >/dev/null && exec node "$@"'
    return subprocess.run(["bash", "-c", cmd, "node", *argv], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_readme_shows_the_examples_as_they_are():
    readme = (ROOT / "README.md").read_text()
    for f in ["resolve_conflict.py", "resolve_conflict.mjs"]:
        assert (EXAMPLES / f).read_text() in readme, f"README does not show examples/http/{f} as it is"


def test_resolve_from_python_and_from_node(devices):
    a, b, ids = conflicted(devices)
    p = subprocess.run([sys.executable, str(EXAMPLES / "resolve_conflict.py"), b.url, a.id, str(a.key_file),
                        str(ids["'n1'"]), "remote"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["status"] == "resolved"
    p = node(str(EXAMPLES / "resolve_conflict.mjs"), b.url, a.id, str(a.key_file), str(ids["'n2'"]), '{"body": "merged"}')
    assert p.returncode == 0, p.stderr
    answer = json.loads(p.stdout)
    assert answer["status"] == "resolved" and answer["id"] == ids["'n2'"]
    assert table_rows(b.db) == [("n1", "a", 1), ("n2", "merged", 2)]
    # the Node signer's nonce is fresh each time: the same request again is a new one, refused
    # only because the conflict is settled
    p = node(str(EXAMPLES / "resolve_conflict.mjs"), b.url, a.id, str(a.key_file), str(ids["'n2'"]), "local")
    assert p.returncode == 1 and "400: " in p.stderr and "already resolved" in p.stderr


def test_requests_http_signature_without_nonce_is_401_naming_the_nonce(devices):
    a, b, ids = conflicted(devices)
    auth = rhs.HTTPSignatureAuth(signature_algorithm=rhs.algorithms.ED25519, key=a.key_pem(), key_id=a.id)
    cid = ids["'n1'"]
    r = requests.post(f"{b.url}/conflicts/{cid}/resolve", json={"choice": "remote"}, auth=auth, timeout=10)
    assert r.status_code == 401 and "nonce" in r.json()["error"], r.text
    assert b.sql("SELECT count(*) FROM sync_conflicts WHERE status = 'pending'") == [(2,)]
