# tests/python/codec.py: the change_data value encoding (decode, exact comparison); no sqlite3 import, so apsw helpers can use it.
import json
import math
import struct


# ---- the change_data value encoding (DESIGN.md / README): ints are JSON ints, reals always have
# '.' or an exponent, text is a string, blobs {"$blob": hex}, infinities {"$real": "inf"/"-inf"}.

class _Real:
    def __init__(self, text):
        self.text = text


def _bad_constant(name):
    raise ValueError(f"non-standard JSON constant {name} in change_data")


def loads(text):
    """Parses peersync JSON keeping ints and reals apart (reals must have '.' or an exponent)."""
    return json.loads(text, parse_float=_Real, parse_int=int, parse_constant=_bad_constant)


def decode(j):
    """One JSON-encoded value -> the Python value sqlite3 would return (None/int/float/str/bytes)."""
    if j is None or isinstance(j, str):
        return j
    if isinstance(j, bool):
        raise AssertionError(f"booleans are not SQLite values: {j!r}")
    if isinstance(j, int):
        assert -(2**63) <= j < 2**63, j
        return j
    if isinstance(j, _Real):
        assert any(c in j.text for c in ".eE"), j.text
        return float(j.text)
    if isinstance(j, dict) and list(j) == ["$blob"]:
        h = j["$blob"]
        assert h == h.lower(), f"blob hex must be lowercase: {h}"
        return bytes.fromhex(h)
    if isinstance(j, dict) and list(j) == ["$real"]:
        return {"inf": math.inf, "-inf": -math.inf}[j["$real"]]
    raise AssertionError(f"not a peersync value encoding: {j!r}")


def decode_row(change_data):
    return {k: decode(v) for k, v in loads(change_data).items()}


def same(a, b):
    """Same SQLite type and the same value; reals compared bit for bit (so -0.0 != 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack(">d", a) == struct.pack(">d", b)
    return a == b


def show(v):
    return f"{type(v).__name__}:{struct.pack('>d', v).hex() if isinstance(v, float) else repr(v)}"
