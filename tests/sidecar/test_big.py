# Big values (issue 17): a 40 MB blob syncs both ways with default settings; pages are cut by
# the receiver's body limit; a change larger than a peer takes fails that link clearly (named,
# in status and /metrics, with backoff) while other peers get everything; zstd bodies are
# decoded within the limit (a bomb gets 413) and plain bodies still work.
import json
import re
import time

import requests
import zstandard

from conftest import free_port, pair, signer, table_rows, wait_until
from test_auth import batch_of

FILES = "CREATE TABLE files(id TEXT PRIMARY KEY, data BLOB)"
MB = 1024 * 1024


def make(devices, *names):
    devs = [devices(n, schema=FILES) for n in names]
    pair(*devs)
    for d in devs:
        d.track("files")
    return devs


def files(d):
    return table_rows(d.db, "files")


def digest(d):
    """(id, length, hex of the first bytes) per row: compares big tables without printing them."""
    return d.sql("SELECT id, length(data), hex(substr(data, 1, 16)), hex(substr(data, -16)) FROM files ORDER BY id")


def counter(metrics, name):
    return metrics.get(name, 0.0)


def test_a_40_mb_blob_syncs_both_ways_with_default_settings(devices):
    a, b = make(devices, "a", "b")
    a.sql("INSERT INTO files VALUES ('big-a', randomblob(?))", (40 * MB,))
    a.sql("INSERT INTO files VALUES ('small-a', x'01')")
    b.sql("INSERT INTO files VALUES ('small-b', x'02')")
    pa, pb = free_port(), free_port()
    a.serve("127.0.0.1", pa, [f"http://127.0.0.2:{pb}"], interval="1")
    b.serve("127.0.0.2", pb, [f"http://127.0.0.1:{pa}"], interval="1")
    b.sql("INSERT INTO files VALUES ('big-b', randomblob(?))", (40 * MB,))
    b.sql("INSERT INTO files VALUES ('small-b2', x'03')")
    wait_until(lambda: len(digest(a)) == 5 and digest(a) == digest(b), timeout=25, what="both tables hold all 5 rows")
    assert files(a) == files(b)
    assert counter(a.metrics(), 'peersync_errors_total{kind="too_large"}') == 0


def failing_link(d, url):
    status = json.loads(d.cli("status", "--json").stdout)
    return next((l for l in status["links"] if l["url"] == url and l["state"] == "failing"), None)


def test_a_change_over_a_peers_limit_fails_that_link_clearly_and_others_get_everything(devices):
    a, b, c, d = make(devices, "a", "b", "c", "d")
    a.sql("INSERT INTO files VALUES ('before', x'01')")
    a.sql("INSERT INTO files VALUES ('big', randomblob(?))", (2 * MB,))
    a.sql("INSERT INTO files VALUES ('after', x'02')")
    b.serve("127.0.0.2", free_port(), (), "--max-body", "1000000")  # 1 MB: the 4 MB of hex cannot go
    c.serve("127.0.0.3", free_port())
    a.serve("127.0.0.1", free_port(), [b, c], interval="1")
    # C gets everything; B the change before the big one, and the link to B fails naming it.
    wait_until(lambda: digest(c) == digest(a), timeout=20, what="C holds all of A's rows")
    link = wait_until(lambda: failing_link(a, b.url), timeout=20, what="A's link to B failing")
    version = a.sql("SELECT version FROM sync_log WHERE record_id = ?", ("'big'",))[0][0]
    error = link["last_error"]
    assert f"change {a.id}:{version}" in error and "table files" in error, error
    assert f"raise --max-body on peer {b.url}" in error, error
    assert "1000000" in error, error
    assert [r[0] for r in files(b)] == ["before"]
    out = a.cli("status").stdout
    assert re.search(rf"link: +{re.escape(b.url)} FAILING .*change {a.id}:{version}", out), out
    m = a.metrics()
    assert counter(m, 'peersync_errors_total{kind="change_too_large"}') >= 1, m
    assert counter(m, f'peersync_peer_failing{{peer="{b.url}"}}') == 1, m
    assert counter(m, f'peersync_peer_failing{{peer="{c.url}"}}') == 0, m
    # No hot loop: A tries B again after a growing delay (retry-base 0.2 s, max 2 s here), a
    # hello and a pull each time, and never sends B the big change itself.
    before = counter(b.metrics(), "peersync_http_requests_total")
    time.sleep(5)
    during = counter(b.metrics(), "peersync_http_requests_total") - before - 1  # less our own /metrics
    assert during <= 25, f"B served {during} requests in 5 s"
    assert "status=413" not in b.log.read_text(), "the big change was sent to B although B's limit is known"
    assert [r[0] for r in files(b)] == ["before"]
    # Pulling it with a small limit: A's 413 names the change and whose limit to raise.
    r = d.cli("sync", "--peer", a.url, "--max-body", "1000000", check=False)
    assert r.returncode == 1, r
    assert f"change {a.id}:{version}" in r.stderr and f"raise --max-body on the pulling device {d.id}" in r.stderr, r.stderr
    assert [r[0] for r in files(d)] == ["before"]


def test_pages_are_cut_by_the_receivers_limit(devices):
    a, b = make(devices, "a", "b")
    for i in range(12):
        a.sql("INSERT INTO files VALUES (?, randomblob(?))", (f"a{i:02}", MB // 2))
        b.sql("INSERT INTO files VALUES (?, randomblob(?))", (f"b{i:02}", MB // 2))
    b.serve("127.0.0.2", free_port(), (), "--max-body", str(4 * MB))
    # A pushes to B (B's limit) and pulls from B (its own --max-body): 1 MB of hex per row.
    out = a.cli("sync", "--peer", b.url, "--max-body", str(4 * MB)).stdout
    assert "sent 12, received 12" in out, out
    assert digest(a) == digest(b) and files(a) == files(b)
    log = b.log.read_text()
    pushes = [int(n) for n in re.findall(r"push applied.*?changes=(\d+)", log)]
    assert len(pushes) >= 4 and sum(pushes) == 12, pushes
    assert max(pushes) <= 2, pushes  # each page within half of 4 MB (room for escaping)
    assert "status=413" not in log, "pages were refused as too large instead of cut to fit"
    pulls = counter(b.metrics(), 'peersync_changes_sent_total')
    assert pulls == 12


def zstd_post(d, url, body, encoding="zstd", accept=None):
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    data = zstandard.ZstdCompressor().compress(raw) if encoding == "zstd" and isinstance(body, dict) else raw
    headers = {"Content-Type": "application/json"}
    if encoding:
        headers["Content-Encoding"] = encoding
    if accept:
        headers["Accept-Encoding"] = accept
    p = requests.Request("POST", url, data=data, headers=headers).prepare()
    signer(d)(p)  # Content-Digest over the body as sent (compressed)
    return requests.Session().send(p, timeout=30)


def test_zstd_bodies_bombs_and_plain_bodies(devices):
    a, b = make(devices, "a", "b")
    a.sql("INSERT INTO files VALUES ('one', randomblob(3000))")
    b.serve("127.0.0.2", free_port(), (), "--max-body", "1000000")
    before = table_rows(b.db, "sync_log")
    # A bomb: 100 KB on the wire, 50 MB decoded: 413 before it is all decoded, nothing changes.
    bomb = zstandard.ZstdCompressor().compress(b" " * (50 * MB))
    assert len(bomb) < 1_000_000
    r = zstd_post(a, f"{b.url}/sync/push", bomb)
    assert r.status_code == 413 and "decodes to more than 1000000 bytes" in r.json()["error"], r.text
    assert table_rows(b.db, "sync_log") == before
    # An unknown coding: 415.
    r = zstd_post(a, f"{b.url}/sync/push", b"{}", encoding="br")
    assert r.status_code == 415, r.text
    # A zstd batch applies, and the reply says zstd is accepted (RFC 7694).
    batch = batch_of(a)
    r = zstd_post(a, f"{b.url}/sync/push", batch)
    assert r.status_code == 200 and r.json()["accepted"] == len(batch["changes"]), r.text
    assert r.headers.get("Accept-Encoding") == "zstd"
    assert r.json()["max_body"] == 1000000
    assert files(b) == files(a)
    # A plain batch (an older peer) still applies.
    a.sql("INSERT INTO files VALUES ('two', x'0102')")
    r = zstd_post(a, f"{b.url}/sync/push", batch_of(a, json.dumps({a.id: 1})), encoding=None)
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    assert files(b) == files(a)
    # Pull replies are zstd only when asked for.
    pull = {"since": {}, "limit": 10}
    plain = zstd_post(a, f"{b.url}/sync/pull", json.dumps(pull).encode(), encoding=None, accept="identity")
    assert plain.status_code == 200 and "Content-Encoding" not in plain.headers
    packed = zstd_post(a, f"{b.url}/sync/pull", json.dumps(pull).encode(), encoding=None, accept="zstd")
    assert packed.status_code == 200 and packed.headers.get("Content-Encoding") == "zstd"
    raw = packed.content
    if raw.startswith(b"\x28\xb5\x2f\xfd"):  # urllib3 without zstd support leaves it encoded
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    assert json.loads(raw) == plain.json()
