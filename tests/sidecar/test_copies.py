# A copied database file: init and serve refuse it until `init --new-identity` gives it a device
# of its own (data kept); then it pairs and converges, and the original keeps its identity.
import json
import shutil

from conftest import Device, free_port, pair, table_rows


def copy_of(orig, name):
    """`orig`'s database copied to <name>.db, same machine (same key folder), CLI bound to it."""
    c = object.__new__(Device)
    c.name, c.dir, c.env, c.proc = name, orig.dir, orig.env, None
    c.db = orig.dir / f"{name}.db"
    shutil.copy(orig.db, c.db)
    return c


def fields(out):
    f = dict(line.split(":", 1) for line in out.splitlines() if line.startswith(("device id:", "public key:", "key file:")))
    return f["device id"].strip(), f["public key"].strip()


def test_a_copy_gets_an_identity_of_its_own_and_converges(devices):
    a, b = devices("a"), devices("b")
    pair(a, b)
    a.track()
    b.track()
    a.sql("INSERT INTO notes VALUES ('n1', 'from a', 1)")
    b.serve("127.0.0.2", free_port())
    a.cli("sync", "--peer", b.url)
    b.stop()
    c = copy_of(a, "c")
    # refused: init and serve, with the way out
    for args in (("init", "--name", "c"), ("serve", "--listen", f"127.0.0.3:{free_port()}")):
        r = c.cli(*args, check=False)
        assert r.returncode == 1 and "is a copy of the database" in r.stderr and "--new-identity" in r.stderr, r.stderr
        assert str(a.db) in r.stderr
    # the original itself is not a copy
    assert a.id in a.cli("init", "--name", "a").stdout
    out = c.cli("init", "--name", "c", "--new-identity").stdout
    c.id, c.public_key = fields(out)
    assert c.id != a.id and c.public_key != a.public_key and "pair it" in out, out
    assert table_rows(c.db) == [("n1", "from a", 1)]
    # the original's id is another trusted device on the copy, under its own name
    devs = {d["device_id"]: d for d in json.loads(c.cli("devices", "--json").stdout)}
    assert devs[c.id]["is_self"] and devs[c.id]["device_name"] == "c"
    assert not devs[a.id]["is_self"] and devs[a.id]["is_authorized"] and devs[a.id]["public_key"] == a.public_key
    assert c.cli("verify").returncode == 0
    # now init on the copy is fine, and the original still is
    assert c.id in c.cli("init", "--name", "c").stdout
    assert a.id in a.cli("init", "--name", "a").stdout
    # pair the new device with the others; everyone writes; all converge
    a.trust(c)
    b.trust(c)
    c.trust(b)
    a.sql("INSERT INTO notes VALUES ('n2', 'a again', 2)")
    b.sql("INSERT INTO notes VALUES ('n3', 'from b', 3)")
    c.sql("INSERT INTO notes VALUES ('n4', 'from c', 4)")
    c.sql("UPDATE notes SET n = 10 WHERE id = 'n1'")
    a.serve("127.0.0.1", free_port())
    b.serve("127.0.0.2", free_port())
    for _ in range(2):
        c.cli("sync", "--peer", a.url)
        c.cli("sync", "--peer", b.url)
    c.serve("127.0.0.3", free_port())
    b.stop()
    b.cli("sync", "--peer", a.url)
    b.cli("sync", "--peer", c.url)
    b.serve("127.0.0.2", free_port())
    want = [("n1", "from a", 10), ("n2", "a again", 2), ("n3", "from b", 3), ("n4", "from c", 4)]
    for d in (a, b, c):
        d.stop()
    for d in (a, b, c):
        assert table_rows(d.db) == want, (d.name, table_rows(d.db))
    # content compared through the sidecars: the same
    b.serve("127.0.0.2", free_port())
    for d in (a, c):
        r = d.cli("check", "--peer", b.url, check=False)
        assert r.returncode == 0, (d.name, r.stdout, r.stderr)
    b.stop()
    # the original's identity was not renamed anywhere; the copy is its own device everywhere
    for d in (a, b, c):
        devs = {x["device_id"]: x for x in json.loads(d.cli("devices", "--json").stdout)}
        assert devs[a.id]["device_name"] == "a" and devs[a.id]["public_key"] == a.public_key, (d.name, devs)
        assert devs[c.id]["device_name"] == "c" and devs[c.id]["public_key"] == c.public_key, (d.name, devs)
        assert devs[a.id]["is_authorized"] and devs[c.id]["is_authorized"]
        assert d.cli("verify").returncode == 0


def test_a_moved_file_is_no_copy_and_another_instance_is(devices):
    a = devices("a")
    a.track()
    a.sql("INSERT INTO notes VALUES ('n1', 'x', 1)")
    # moved: the recorded file is gone, the instance the same
    moved = copy_of(a, "moved")
    a.db.unlink()
    assert a.id in moved.cli("init", "--name", "a").stdout
    record = json.loads(a.key_file.with_suffix(".json").read_text())
    assert record["db"] == str(moved.db.resolve())
    # a file carrying another instance than the key folder's record is refused, also at the recorded path
    other = copy_of(moved, "other")
    moved.db.unlink()
    other.sql("UPDATE sync_state SET value = 'feedfeedfeedfeedfeedfeedfeedfeed' WHERE key = 'instance'")
    r = other.cli("init", "--name", "a", check=False)
    assert r.returncode == 1 and "--new-identity" in r.stderr, r.stderr
    r = other.cli("sync", "--peer", f"http://127.0.0.1:{free_port()}", check=False)
    assert r.returncode == 1 and "--new-identity" in r.stderr, r.stderr
    out = other.cli("init", "--name", "o", "--new-identity").stdout
    assert fields(out)[0] != a.id
    assert other.cli("status").returncode == 0
