# tests/reliability/hostile_cases.py: the hostile inputs, family by family: (label, body, expected status, words the error must contain).
import copy
import json
from collections import namedtuple

from hostile_batches import dumps, forge, head_signature

# One hostile input: what to send, and how it must be refused. `sql_words`: the words of the
# sync_apply error when they differ from the HTTP one; `fork`: refusing it quarantines the sender.
# The generators below yield Cases or plain tuples in the same order (see `cases`).
Case = namedtuple("Case", "label body status words sql_words fork", defaults=(None, False))

DEEP = 100_000  # nesting depth of the deep-nesting inputs

TOP = {"format": "int", "device_id": "str", "changes": "list", "has_more": "bool", "vector": "dict", "signatures": "list"}
CHANGE = {"table_name": "str", "record_id": "str", "operation": "str", "change_data": "str", "device_id": "str",
          "version": "int", "timestamp": "int", "bases": "str", "resolution": "bool", "hash": "str"}
SIGNATURE = {"device_id": "str", "version": "int", "hash": "str", "signature": "str"}
# JSON values of each type (raw JSON text, so that 1.0 stays a float)
SAMPLES = {"null": "null", "bool": "true", "int": "7", "negative": "-1", "float": "1.5", "float1": "1.0", "str": '"7"',
           "list": "[]", "list1": "[1]", "dict": "{}", "dict1": '{"a":1}'}
COMPATIBLE = {"int": {"int", "negative"}, "str": {"str"}, "bool": {"bool"}, "list": {"list"}, "dict": {"dict"}}


def valid(env, n=1):
    """A valid batch from A: n new notes, correctly chained and signed (B would accept it)."""
    return forge(env.a.id, env.b.db, [{}] * n, signer=env.a)


def _set(batch_text, path, raw):
    """`batch_text` with the value at `path` (a list of keys/indices) replaced by raw JSON `raw`."""
    marker = "\u0000MARK\u0000"
    b = json.loads(batch_text)
    node = b
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = marker
    return dumps(b).replace(json.dumps(marker), raw)


def _path(path):
    out = ""
    for k in path:
        out += f"[{k}]" if isinstance(k, int) else (f".{k}" if out else k)
    return out


def malformed_json(env):
    good = dumps(valid(env))
    bodies = {
        "empty": "", "one brace": "{", "one bracket": "[", "null": "null", "a word": "nope", "truncated": good[: len(good) // 2],
        "two objects": good + good, "trailing comma": good[:-1] + ",}", "single quotes": good.replace('"', "'"),
        "BOM then JSON": "\ufeff" + good, "NUL byte": good[:10] + "\x00" + good[10:], "1e999": "1e999",
        "a list": "[]", "a string": '"batch"', "comment": "/* hi */" + good, "NaN": '{"format":NaN}',
        "unterminated string": '{"format":1,"device_id":"abc', "control character in a string": good.replace('"notes"', '"no\ntes"', 1),
    }
    for label, body in bodies.items():
        yield label, body, 400, ["malformed batch"]
    bad_utf8 = good.encode()[:30] + b"\xff\xfe" + good.encode()[30:]
    yield "invalid UTF-8", bad_utf8, 400, ["UTF-8"], ["malformed batch"]


def wrong_types(env):
    good = dumps(valid(env))
    fields = [([k], t) for k, t in TOP.items()]
    fields += [(["changes", 0, k], t) for k, t in CHANGE.items()]
    fields += [(["signatures", 0, k], t) for k, t in SIGNATURE.items()]
    fields += [(["changes", 0], "dict"), (["signatures", 0], "dict"), (["vector", env.a.id], "int")]
    for path, t in fields:
        for name, raw in SAMPLES.items():
            if name in COMPATIBLE[t] or (t == "dict" and name == "dict1" and path == ["vector"]):
                continue
            if path == ["vector"] and name == "null":
                continue  # an absent vector is allowed; null reads as absent?  judged in missing_fields
            yield f"{_path(path)} = {raw}", _set(good, path, raw), 400, ["malformed batch", _path(path)]


def missing_fields(env):
    good = valid(env)
    for where, keys in (([], TOP), (["changes", 0], CHANGE), (["signatures", 0], SIGNATURE)):
        for k in keys:
            if where == [] and k == "vector":
                continue  # optional (the sender's vector; defaults to empty)
            b = copy.deepcopy(good)
            node = b
            for p in where:
                node = node[p]
            del node[k]
            if where == [] and k == "signatures":
                yield "no signatures", b, 403, ["carry no valid signature"]
            else:
                yield f"{_path(where + [k])} missing", b, 400, ["malformed batch", f"missing field `{k}`"]


def unknown_fields(env):
    good = valid(env)
    for where in ([], ["changes", 0], ["signatures", 0]):
        for k, v in (("extra", 1), ("Format", 1), ("device_id ", "x"), ("__proto__", {}), ("", None)):
            b = copy.deepcopy(good)
            node = b
            for p in where:
                node = node[p]
            node[k] = v
            yield f"{_path(where + [repr(k)])} added", b, 400, ["malformed batch", "unknown field"]


def deep_batches(env):
    arrays, objects = "[" * DEEP + "]" * DEEP, '{"a":' * DEEP + "1" + "}" * DEEP
    yield "100k nested arrays as the body", arrays, 400, ["malformed batch"]
    yield "100k nested objects as the body", objects, 400, ["malformed batch"]
    good = dumps(valid(env))
    for path in (["changes"], ["vector"], ["signatures"], ["changes", 0, "version"], ["vector", env.a.id]):
        yield f"100k nested arrays in {_path(path)}", _set(good, path, arrays), 400, ["malformed batch", _path(path)]
    # inside the hashed strings: correctly chained and signed, so only the nesting is judged
    for field in ("change_data", "bases"):
        for label, deep in (("arrays", arrays), ("objects", objects)):
            yield (f"{field} of 100k nested {label} (signed)", forge(env.a.id, env.b.db, [{field: deep}], signer=env.a),
                   400, [field])


HOSTILE_TABLES = [
    'notes"; DROP TABLE notes; --', "notes; DROP TABLE notes", "[notes]", "`notes`", "'notes'", '"notes"', "notes;",
    "no\u0000tes", "notes\u0000", "NOTES", "main.notes", "temp.notes", " notes", "notes ", "", "x" * 10_000, "nötes✓",
    "\u202enotes", "plain", "sqlite_master", "sqlite_schema", "sqlite_sequence", "sync_log", "sync_devices",
    "sync_vector", "sync_quarantine", "sync_stage_1", "sync_meta",
]
HOSTILE_COLUMNS = [
    'body"; DROP TABLE notes; --', "rowid", "_rowid_", "oid", "BODY", "bo\u0000dy", "[body]", "`body`", "x" * 10_000, "",
    "bödy✓", "v", "body ", "sync_log",
]


def never_a_table(t):
    """Names no table can have here (SQLite's or peersync's own, empty, with a NUL): a change
    naming one is refused. Any other table or column name not tracked here is logged and waits
    for the schema (README "Schema changes"): see test_hostile.py's held names."""
    low = t.lower()
    return (low.startswith("sqlite_") or low.startswith("sync_") or t == "" or "\u0000" in t)


def hostile_names(env):
    for t in HOSTILE_TABLES:
        if never_a_table(t):
            # (`sync_devices` entries are revocations: a change of a row is none.)
            yield (f"table {t[:40]!r}", forge(env.a.id, env.b.db, [{"table_name": t}], signer=env.a),
                   400, ["malformed revocation" if t == "sync_devices" else "can never be"])
    for col in HOSTILE_COLUMNS:
        if col == "" or "\u0000" in col:
            data = json.dumps({"id": "h1", col: "x"}, separators=(",", ":"))
            yield (f"column {col[:40]!r} in change_data", forge(env.a.id, env.b.db, [{"record_id": "'h1'", "change_data": data}],
                                                                 signer=env.a), 400, ["does not exist in table"])
    yield ("duplicate primary key column with another value",
           forge(env.a.id, env.b.db, [{"record_id": "'h1'", "change_data": '{"id":"h1","id":"h2"}'}], signer=env.a),
           400, ["disagrees with the record_id"])
    for rid in ("'h1'); DROP TABLE notes; --", "'h1", "1,2", "NULL", "x'zz'", "X'00'", "", "'h1' ", "('h1')", "'" + "a" * 10_000 + "'"):
        yield (f"record_id {rid[:40]!r}", forge(env.a.id, env.b.db, [{"record_id": rid, "change_data": '{"id":"h1"}'}], signer=env.a),
               400, ["record"])
    for op in ("insert", "DROP", "REPLACE", "INSERT;", "", "UPSERT", "INSERT\u0000"):
        yield f"operation {op!r}", forge(env.a.id, env.b.db, [{"operation": op}], signer=env.a), 400, ["unknown operation"]


def bases_columns(env):
    """bases.cols naming columns the change does not write: hostile names, and an existing
    column (sealing never makes such bases: they are malformed)."""
    for col in HOSTILE_COLUMNS + ["body"]:
        bases = json.dumps({"cols": {col: [f"{env.a.id}:1"]}}, separators=(",", ":"))
        yield (f"column {col[:40]!r} in bases only", forge(env.a.id, env.b.db, [{"record_id": "'h1'", "change_data": '{"id":"h1"}',
                                                                                   "bases": bases}], signer=env.a),
               400, ["bases"])


def change_values(env):
    """Values in change_data that are no SQLite value, or do not fit one (signed, so only they are judged)."""
    for label, raw in (("2^64", "18446744073709551616"), ("-2^63-1", "-9223372036854775809"), ("1e400", "1e400"),
                       ("true", "true"), ("a list", "[1]"), ("an object", '{"a":1}'), ("bad $blob", '{"$blob":"zz"}'),
                       ("odd $blob", '{"$blob":"0"}'), ("$real nan", '{"$real":"nan"}'), ("$blob and more", '{"$blob":"00","x":1}')):
        data = '{"id":"h1","n":' + raw + "}"
        words = ["column \"n\""]
        yield (f"n = {label}", forge(env.a.id, env.b.db, [{"record_id": "'h1'", "change_data": data}], signer=env.a), 400, words)


def huge_numbers(env):
    """Numbers beyond their field's range, or floats where integers are expected."""
    good = dumps(valid(env))
    for path in (["format"], ["changes", 0, "version"], ["changes", 0, "timestamp"], ["signatures", 0, "version"],
                 ["vector", env.a.id]):
        for raw in ("9223372036854775808", "18446744073709551616", "-9223372036854775809", "1e30", "1e400", "2.0", "1E2"):
            yield f"{_path(path)} = {raw}", _set(good, path, raw), 400, ["malformed batch", _path(path)]
    yield "format = 4294967296", _set(good, ["format"], "4294967296"), 400, ["malformed batch", "format"]
    yield "format = 2", _set(good, ["format"], "2"), 400, ["format 2 is not supported"]
    # in range for JSON, out of range for peersync (chained and signed, so only the value is judged)
    for field, value, words in (("version", 0, ["version must be >= 1"]), ("version", -1, ["version must be >= 1"]),
                                ("timestamp", -1, ["timestamp between 0 and"])):
        yield (f"{field} = {value} (signed)", forge(env.a.id, env.b.db, [{field: value}], signer=env.a), 400, words)


def claims(env):
    """Changes claiming origins they are not from: the receiver itself (a fork of its own chain:
    409, A quarantined), and a third trusted device C without C's head signature (403)."""
    a, b, c = env.a, env.b, env.c
    b_version, _ = _head(env, b.id)
    yield ("receiver's own id, a version it made", forge(b.id, b.db, [{"version": b_version}], signer=a, sender=a.id,
                                                       head=(b_version - 1, "0" * 64)), 409, ["forked chain"], None, True)
    yield ("receiver's own id, a version it never made", forge(b.id, b.db, [{}], signer=a, sender=a.id), 409, ["forked chain"], None, True)
    yield "C's id, no signature", forge(c.id, b.db, [{}], sender=a.id), 403, ["carry no valid signature"]
    yield "C's id, signed with A's key", forge(c.id, b.db, [{}], signer=a, sender=a.id), 403, ["carry no valid signature"]
    fake = forge(c.id, b.db, [{}, {}], signer=a, sender=a.id)
    fake["signatures"].append(head_signature(c, c.id, 1, "0" * 64))  # C's real key, over another change
    yield "C's id, C's signature of another hash", fake, 403, ["carry no valid signature"]
    mixed = forge(a.id, b.db, [{}], signer=a)
    mixed["changes"] += forge(c.id, b.db, [{}])["changes"]
    yield "A's signed change plus C's unsigned one", mixed, 403, ["carry no valid signature"]


def _head(env, device):
    from hostile_batches import held_head
    return held_head(env.b.db, device)


def other_senders(env):
    """A batch whose sender (device_id) is not the device that signed the request."""
    a, b, c = env.a, env.b, env.c
    base = valid(env)
    for label, sender, status, words in (("the receiver", b.id, 403, ["signed by"]), ("C (trusted)", c.id, 403, ["signed by"]),
                                         ("an unknown device", "0123456789abcdef0123456789abcdef", 403, ["signed by"]),
                                         ("A in upper case", a.id.upper(), 400, ["32 lowercase hex"]),
                                         ("empty", "", 400, ["32 lowercase hex"])):
        bt = copy.deepcopy(base)
        bt["device_id"] = sender
        yield f"sender = {label}", bt, status, words


def pull_bodies(env):
    """Hostile POST /sync/pull bodies: (label, body, status, words)."""
    a = env.a.id
    yield "empty", "", 400, ["pull body must be JSON"]
    yield "not JSON", "since=1", 400, ["pull body must be JSON"]
    yield "truncated", '{"since":{', 400, ["pull body must be JSON"]
    yield "100k nested arrays", "[" * DEEP + "]" * DEEP, 400, ["pull body must be JSON"]
    yield "since: 100k nested arrays", '{"since":' + "[" * DEEP + "]" * DEEP + "}", 400, ["pull body must be JSON"]
    yield "a list", "[]", 400, ["pull body"]
    for raw in ("[]", '"x"', "1", "true"):
        yield f"since = {raw}", '{"since":' + raw + "}", 400, ["vector"]
    for raw in ('"1"', "1.5", "-1", "null", "[1]", "9223372036854775808", "1e400"):
        yield f"since.A = {raw}", '{"since":{"' + a + '":' + raw + "}}", 400 if raw != "1e400" else 400, ["pull"]
    for raw in ("0", "-1", "1.5", '"10"', "100001", "18446744073709551616", "[]", "{}", "true"):
        yield f"limit = {raw}", '{"since":{},"limit":' + raw + "}", 400, ["limit"]
    yield "since key not a device id", '{"since":{"x\\"; DROP TABLE notes":1}}', 400, ["device"]
    yield "unknown field", '{"since":{},"limit":10,"extra":1}', 400, ["unknown field"]


def resolve_bodies(env):
    """Hostile POST /conflicts/{id}/resolve bodies for B's pending conflict."""
    yield "empty", "", 400, ["choice"]
    yield "not JSON", "choice=local", 400, ["choice"]
    yield "100k nested arrays", "[" * DEEP + "]" * DEEP, 400, ["choice"]
    yield "choice: 100k nested objects", '{"choice":' + '{"a":' * DEEP + "1" + "}" * DEEP + "}", 400, ["choice"]
    yield "missing choice", "{}", 400, ["choice"]
    for raw in ("null", "1", "true", "[]", '"LOCAL"', '"bogus"', '""', '"local "'):
        yield f"choice = {raw}", '{"choice":' + raw + "}", 400, ["choice"]
    for row, words in (('{"nope":1}', ["nope"]), ('{"body":[1]}', ["body"]), ('{"body":true}', ["body"]),
                       ('{"id":"other"}', ["id"]), ('{"body\\"; DROP TABLE notes; --":1}', ["DROP"])):
        yield f"row {row}", '{"choice":' + row + "}", 400, words
    yield "unknown field", '{"choice":"local","extra":1}', 400, ["unknown field"]


def cases(generator, env):
    """The Cases of one family, made one at a time (each forged against B's state of the moment)."""
    for c in generator(env):
        yield c if isinstance(c, Case) else Case(*c)
