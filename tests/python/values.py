# tests/python/values.py: the SQLite values every writer must round-trip exactly (python value + SQL expression for CLI writers).
import math

# (name, value as python's sqlite3 returns it, SQL expression producing it; None = same as value)
CASES = [
    ("null", None, "NULL"),
    ("zero", 0, "0"),
    ("minus_one", -1, "-1"),
    ("int_max", 2**63 - 1, "9223372036854775807"),
    ("int_min", -(2**63), "-9223372036854775808"),
    ("int_big", 1 << 53 | 1, "9007199254740993"),
    ("tenth", 0.1, "0.1"),
    ("tenth_plus_fifth", 0.1 + 0.2, "0.1 + 0.2"),
    ("denormal_min", 5e-324, "5e-324"),
    ("big", 1e308, "1e308"),
    ("max_double", 1.7976931348623157e308, "1.7976931348623157e308"),
    ("neg_zero", -0.0, "-0.0"),
    ("three", 3.0, "3.0"),
    ("neg_small", -2.5e-10, "-2.5e-10"),
    ("third", 1 / 3, "1.0 / 3"),
    ("inf", math.inf, "9e999"),
    ("neg_inf", -math.inf, "-9e999"),
    ("empty_text", "", "''"),
    ("emoji", "🎉👩\u200d👩\u200d👧 flag 🇯🇵", None),
    ("cjk", "漢字かなカナ한국어", None),
    ("combining", "e\u0301 a\u0308 \u0915\u094d\u0937", None),
    ("rtl", "שלום مرحبا", None),
    ("quotes", "it's \"double\" `back` \\ \\\\ \\n \\u0000", None),
    ("controls", "line1\nline2\ttab\rcr\x01\x1f\x7f", None),
    ("nul_inside", "a\x00b", "char(97, 0, 98)"),
    ("json_like", '{"$blob":"00"}', None),
    ("text_null", "null", None),
    ("text_number", "12", None),
    ("empty_blob", b"", "x''"),
    ("binary_blob", bytes(range(256)), None),
    ("blob_utf8", "🎉".encode(), None),
    ("large_text", "ab\u00e9" * 40000, None),
    ("large_blob", bytes(range(256)) * 400, None),
]


def sql_literal(value):
    """A SQL expression that yields `value` when the sqlite3 CLI evaluates it."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        raise TypeError(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "9e999" if value > 0 else "-9e999"
        return repr(value)
    if isinstance(value, str):
        if "\x00" in value:
            return "char(" + ", ".join(str(ord(c)) for c in value) + ")"
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bytes):
        return "x'" + value.hex() + "'"
    raise TypeError(value)


def sql_expr(case):
    name, value, expr = case
    return expr if expr is not None else sql_literal(value)
