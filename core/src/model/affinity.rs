//! Column affinity (SQLite's datatype3 rules): which declared type converts which values, so a
//! received value the receiver would store as another value is refused, never half-applied.
use crate::wire::Value;

/// A column's affinity, from its declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affinity {
    Text,
    Numeric,
    Integer,
    Real,
    /// No conversion (SQLite's BLOB affinity, also a STRICT table's `ANY`).
    Blob,
}

impl Affinity {
    /// The affinity SQLite gives a column declared as `decl` (datatype3.html, 3.1), in a
    /// STRICT table when `strict` (where `ANY` converts nothing).
    pub fn of(decl: &str, strict: bool) -> Affinity {
        let d = decl.to_ascii_uppercase();
        if strict && d == "ANY" {
            Affinity::Blob
        } else if d.contains("INT") {
            Affinity::Integer
        } else if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") {
            Affinity::Text
        } else if d.contains("BLOB") || d.is_empty() {
            Affinity::Blob
        } else if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
            Affinity::Real
        } else {
            Affinity::Numeric
        }
    }

    /// The affinity's name, as errors show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Affinity::Text => "TEXT",
            Affinity::Numeric => "NUMERIC",
            Affinity::Integer => "INTEGER",
            Affinity::Real => "REAL",
            Affinity::Blob => "BLOB",
        }
    }

    /// Whether storing `v` in a column of this affinity stores another value (another type)
    /// than `v`: an INTEGER in a TEXT column becomes text, the text `'42'` in a NUMERIC one
    /// becomes an integer, the integer 4 in a REAL one becomes 4.0.
    pub fn converts(self, v: &Value) -> bool {
        match (self, v) {
            (_, Value::Null | Value::Blob(_)) | (Affinity::Blob, _) => false,
            (Affinity::Text, Value::Text(_)) => false,
            (Affinity::Text, Value::Integer(_) | Value::Real(_)) => true,
            (Affinity::Numeric | Affinity::Integer | Affinity::Real, Value::Text(s)) => is_numeric_text(s),
            (Affinity::Numeric | Affinity::Integer, Value::Integer(_)) => false,
            (Affinity::Numeric | Affinity::Integer, Value::Real(f)) => real_is_integer(*f),
            (Affinity::Real, Value::Integer(_)) => true,
            // Stored as the integer 0 on disk (SQLite's optimization for integral reals), so
            // it reads back as 0.0.
            (Affinity::Real, Value::Real(f)) => *f == 0.0 && f.is_sign_negative(),
        }
    }
}

/// A REAL that NUMERIC and INTEGER affinity store as an INTEGER: no fractional part, and
/// inside the 64-bit range.
fn real_is_integer(f: f64) -> bool {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    f.fract() == 0.0 && f > -LIMIT && f < LIMIT
}

/// Text that SQLite reads as a number when a numeric affinity applies: optional spaces, an
/// optional sign, digits with an optional `.`, an optional exponent, optional spaces.
fn is_numeric_text(s: &str) -> bool {
    let b = s.trim_matches(|c: char| c.is_ascii_whitespace()).as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let mut n = digits(&mut i);
    if b.get(i) == Some(&b'.') {
        i += 1;
        n += digits(&mut i);
    }
    if n == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What SQLite itself stores for `v` in a column declared `decl`.
    fn stored(conn: &rusqlite::Connection, decl: &str, v: &Value) -> Value {
        conn.execute_batch(&format!("DROP TABLE IF EXISTS t; CREATE TABLE t(c {decl})")).unwrap();
        conn.execute("INSERT INTO t VALUES (?1)", [v]).unwrap();
        conn.query_row("SELECT c FROM t", [], |r| Ok(Value::from(r.get_ref(0)?))).unwrap()
    }

    #[test]
    fn affinity_of_declared_types() {
        for (decl, want) in [
            ("INTEGER", Affinity::Integer),
            ("bigint", Affinity::Integer),
            ("VARCHAR(10)", Affinity::Text),
            ("text", Affinity::Text),
            ("CLOB", Affinity::Text),
            ("BLOB", Affinity::Blob),
            ("", Affinity::Blob),
            ("REAL", Affinity::Real),
            ("double precision", Affinity::Real),
            ("FLOAT", Affinity::Real),
            ("NUMERIC", Affinity::Numeric),
            ("DECIMAL(10,5)", Affinity::Numeric),
            ("BOOLEAN", Affinity::Numeric),
            ("DATE", Affinity::Numeric),
            ("ANY", Affinity::Numeric),
            ("CHARINT", Affinity::Integer),
        ] {
            assert_eq!(Affinity::of(decl, false), want, "{decl}");
        }
        assert_eq!(Affinity::of("ANY", true), Affinity::Blob);
    }

    /// The prediction agrees with SQLite for every declared type and a range of tricky values.
    #[test]
    fn converts_exactly_when_sqlite_would() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let mut values = vec![
            Value::Null,
            Value::Integer(0),
            Value::Integer(-7),
            Value::Integer(i64::MAX),
            Value::Integer(i64::MIN),
            Value::Real(0.0),
            Value::Real(-0.0),
            Value::Real(4.0),
            Value::Real(4.5),
            Value::Real(1e18),
            Value::Real(9_223_372_036_854_775_807_f64), // 2^63, the first real past the 64-bit range
            Value::Real(-9_223_372_036_854_775_808_f64),
            Value::Real(1e300),
            Value::Real(f64::INFINITY),
            Value::Blob(vec![]),
            Value::Blob(b"12".to_vec()),
        ];
        for s in [
            "",
            " ",
            "abc",
            "12",
            "-12",
            "+12",
            " 12 ",
            "12 ",
            "\t12\n",
            "1.5",
            ".5",
            "5.",
            ".",
            "-",
            "+",
            "1e5",
            "1E5",
            "1e",
            "1e+",
            "1e-3",
            "1.5e+3",
            "0x10",
            "12abc",
            "1 2",
            "00012",
            "-0",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775809",
            "1e400",
            "Inf",
            "NaN",
            "٣",
            "1_000",
            "--1",
            "1.2.3",
            "e5",
        ] {
            values.push(Value::Text(s.to_string()));
        }
        for decl in ["INTEGER", "TEXT", "BLOB", "REAL", "NUMERIC", ""] {
            let a = Affinity::of(decl, false);
            for v in &values {
                let after = stored(&conn, decl, v);
                let sqlite_converts = !(after == *v);
                assert_eq!(a.converts(v), sqlite_converts, "{decl} {v:?}: SQLite stores {after:?}");
            }
        }
    }
}
