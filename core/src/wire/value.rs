//! SQLite values as peersync carries them: exact JSON encoding, SQL-literal record ids, comparison.
//! (Reading and binding them through SQLite is `db/values.rs`.)
//!
//! JSON encoding (used in `change_data`, conflicts and record ids):
//! NULL → `null`; INTEGER → a JSON integer; REAL → a JSON number that always has a `.` or an
//! exponent (shortest text that reads back to the same bits: `0.30000000000000004`, `5e-324`,
//! `-0.0`), or `{"$real":"inf"}` / `{"$real":"-inf"}`; TEXT → a JSON string; BLOB →
//! `{"$blob":"<lowercase hex>"}`. SQLite cannot store NaN (it becomes NULL), so none is sent.
use crate::error::{Error, Result};
use serde_json::Value as Json;
use std::fmt::Write as _;

#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl PartialEq for Value {
    /// Same type and same value; reals compare bit for bit.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Integer(a), Value::Integer(b)) => a == b,
            (Value::Real(a), Value::Real(b)) => a.to_bits() == b.to_bits(),
            (Value::Text(a), Value::Text(b)) => a == b,
            (Value::Blob(a), Value::Blob(b)) => a == b,
            _ => false,
        }
    }
}

impl Value {
    /// SQL's `a IS b` under BINARY collation (1 IS 1.0; -0.0 IS 0.0), as the triggers compare keys.
    pub fn sql_is(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Integer(a), Value::Real(b)) | (Value::Real(b), Value::Integer(a)) => (*a as f64) == *b,
            (Value::Real(a), Value::Real(b)) => a == b,
            _ => self == other,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Appends the JSON encoding of this value to `out`.
    pub fn write_json(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Integer(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Real(f) => write_real_json(*f, out),
            Value::Text(t) => write_json_string(t, out),
            Value::Blob(b) => {
                out.push_str("{\"$blob\":\"");
                out.push_str(&hex::encode(b));
                out.push_str("\"}");
            }
        }
    }

    pub fn to_json_string(&self) -> String {
        let mut s = String::new();
        self.write_json(&mut s);
        s
    }

    /// Reads a value from its JSON encoding; `what` names it in errors.
    pub fn from_json(j: &Json, what: &dyn Fn() -> String) -> Result<Value> {
        match j {
            Json::Null => Ok(Value::Null),
            Json::Bool(_) => Err(Error::invalid(format!("{}: booleans are not SQLite values", what()))),
            Json::String(s) => Ok(Value::Text(s.clone())),
            Json::Number(n) => parse_number(&n.to_string()).ok_or_else(|| {
                Error::invalid(format!("{}: number {} does not fit a 64-bit integer or a finite real", what(), n))
            }),
            Json::Object(m) if m.len() == 1 => {
                if let Some(Json::String(h)) = m.get("$blob") {
                    let b = hex::decode(h).map_err(|_| Error::invalid(format!("{}: $blob is not hex", what())))?;
                    return Ok(Value::Blob(b));
                }
                match m.get("$real").and_then(|v| v.as_str()) {
                    Some("inf") => Ok(Value::Real(f64::INFINITY)),
                    Some("-inf") => Ok(Value::Real(f64::NEG_INFINITY)),
                    _ => Err(Error::invalid(format!("{}: unknown value object", what()))),
                }
            }
            _ => Err(Error::invalid(format!("{}: arrays and objects are not SQLite values", what()))),
        }
    }

    /// [`Value::from_json`] of a value's JSON text (valid JSON, as a parser took it), without
    /// building a `serde_json::Value` for null, plain strings and numbers.
    pub fn from_json_text(text: &str, what: &dyn Fn() -> String) -> Result<Value> {
        match text.as_bytes().first() {
            Some(b'n') if text == "null" => return Ok(Value::Null),
            Some(b'"') if text.len() >= 2 && !text.contains('\\') => {
                return Ok(Value::Text(text[1..text.len() - 1].to_string()))
            }
            Some(b'-' | b'0'..=b'9') => {
                if let Some(v) = parse_number(text) {
                    return Ok(v);
                }
            }
            // A blob as this encoding writes it: decoded from the text itself, not copied
            // into a JSON value first (a large blob is held once less).
            Some(b'{') => {
                if let Some(h) = text.strip_prefix("{\"$blob\":\"").and_then(|t| t.strip_suffix("\"}")) {
                    if let Ok(b) = hex::decode(h) {
                        return Ok(Value::Blob(b));
                    }
                }
            }
            _ => {}
        }
        // Anything else, and the errors, as [`Value::from_json`] reads and words them.
        let j: Json = serde_json::from_str(text).map_err(|e| Error::invalid(format!("{}: {e}", what())))?;
        Value::from_json(&j, what)
    }

    /// The canonical SQL literal of this value, as used in `record_id`.
    pub fn write_literal(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("NULL"),
            Value::Integer(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Real(f) => {
                if f.is_infinite() {
                    out.push_str(if *f > 0.0 { "Inf" } else { "-Inf" });
                } else {
                    let _ = write!(out, "{f:?}");
                }
            }
            Value::Text(t) => out.push_str(&quote_literal(t)),
            Value::Blob(b) => {
                out.push_str("X'");
                out.push_str(&hex::encode_upper(b));
                out.push('\'');
            }
        }
    }
}

fn write_real_json(f: f64, out: &mut String) {
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "{\"$real\":\"inf\"}" } else { "{\"$real\":\"-inf\"}" });
    } else if f.is_nan() {
        out.push_str("null");
    } else {
        // Debug prints the shortest text that reads back to the same bits, always with
        // a '.' or an exponent ("3.0", "1e308", "5e-324", "-0.0").
        let _ = write!(out, "{f:?}");
    }
}

/// Appends `s` as a JSON string: escapes `"`, `\` and control characters only.
pub fn write_json_string(s: &str, out: &mut String) {
    // Runs of characters that need no escape are copied whole (every change's data, bases and
    // slot state is written through here). The characters escaped are all ASCII, and no byte
    // of a multi-byte UTF-8 character is ASCII, so each cut falls between characters.
    out.reserve(s.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..0x20 => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// A JSON number literal as an integer (no `.`/exponent, must fit i64) or a finite real.
fn parse_number(lit: &str) -> Option<Value> {
    if lit.contains(['.', 'e', 'E']) {
        let f: f64 = lit.parse().ok()?;
        f.is_finite().then_some(Value::Real(f))
    } else {
        lit.parse::<i64>().ok().map(Value::Integer)
    }
}

/// Parses a comma-separated list of SQL literals as SQLite's `quote()` writes them (and as
/// [`Value::write_literal`] does): `NULL`, integers, reals (`1.5`, `3.00000000000000044408e-01`,
/// `Inf`), `'text'` with `''` escapes, `X'hex'`.
pub fn parse_literals(s: &str) -> Result<Vec<Value>> {
    let bad = |why: &str| Error::invalid(format!("record_id {s:?}: {why}"));
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    loop {
        if i >= b.len() {
            return Err(bad("expected a value"));
        }
        match b[i] {
            b'\'' => {
                let mut t = String::new();
                let mut j = i + 1;
                loop {
                    let rest = &s[j..];
                    let q = rest.find('\'').ok_or_else(|| bad("unterminated string"))?;
                    t.push_str(&rest[..q]);
                    j += q + 1;
                    if b.get(j) == Some(&b'\'') {
                        t.push('\'');
                        j += 1;
                    } else {
                        break;
                    }
                }
                out.push(Value::Text(t));
                i = j;
            }
            b'X' | b'x' if b.get(i + 1) == Some(&b'\'') => {
                let rest = &s[i + 2..];
                let q = rest.find('\'').ok_or_else(|| bad("unterminated blob"))?;
                let bytes = hex::decode(&rest[..q]).map_err(|_| bad("blob is not hex"))?;
                out.push(Value::Blob(bytes));
                i += 2 + q + 1;
            }
            _ => {
                let end = s[i..].find(',').map(|k| i + k).unwrap_or(s.len());
                let tok = &s[i..end];
                let v = match tok {
                    "NULL" => Value::Null,
                    "Inf" | "+Inf" => Value::Real(f64::INFINITY),
                    "-Inf" => Value::Real(f64::NEG_INFINITY),
                    _ => parse_number(tok)
                        .or_else(|| {
                            // SQLite >= 3.43 may write infinities as 9.0e+999
                            tok.parse::<f64>().ok().filter(|f| f.is_infinite()).map(Value::Real)
                        })
                        .ok_or_else(|| bad("not a SQL literal"))?,
                };
                out.push(v);
                i = end;
            }
        }
        if i == b.len() {
            return Ok(out);
        }
        if b[i] != b',' {
            return Err(bad("expected ',' between values"));
        }
        i += 1;
    }
}

/// `text` as a single-quoted SQL string literal (`'it''s'`): how record ids spell text, and
/// how the capture triggers' SQL spells names.
pub fn quote_literal(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    s.push('\'');
    for ch in text.chars() {
        if ch == '\'' {
            s.push('\'');
        }
        s.push(ch);
    }
    s.push('\'');
    s
}

/// The canonical record id of a primary key: its values' SQL literals joined by `,`.
pub fn record_id(values: &[Value]) -> String {
    let mut s = String::new();
    for (k, v) in values.iter().enumerate() {
        if k > 0 {
            s.push(',');
        }
        v.write_literal(&mut s);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The escaping as it was first written, one character at a time: the fast one must
    /// write the same bytes (they are hashed).
    fn json_string_by_chars(s: &str) -> String {
        use std::fmt::Write;
        let mut out = String::from('"');
        for ch in s.chars() {
            match ch {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn json_strings_escape_as_before() {
        let mut cases: Vec<String> =
            ["", "plain", "\"", "a\"b\\c", "\n\r\t", "\u{0}\u{1f}\u{7f}", "é\"ü\n€𝄞", "\\\\", "x\u{1}"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        cases.push((0u8..128).map(char::from).collect());
        cases.push("ß\u{10}😀\"end".repeat(3));
        for c in cases {
            let mut out = String::from("prefix");
            write_json_string(&c, &mut out);
            assert_eq!(out, format!("prefix{}", json_string_by_chars(&c)), "{c:?}");
            let back: String = serde_json::from_str(&out["prefix".len()..]).unwrap();
            assert_eq!(back, c);
        }
    }

    fn rt(v: Value) {
        let j: Json = serde_json::from_str(&v.to_json_string()).unwrap();
        let back = Value::from_json(&j, &|| "t".into()).unwrap();
        assert_eq!(back, v, "{v:?} via {}", v.to_json_string());
        let lit = record_id(std::slice::from_ref(&v));
        assert_eq!(parse_literals(&lit).unwrap(), vec![v]);
    }

    #[test]
    fn blobs_read_from_their_text_as_the_parser_reads_them() {
        let what = || "t".to_string();
        for text in [r#"{"$blob":"00ff7A"}"#, r#"{"$blob":""}"#, r#"{ "$blob": "0a" }"#, r#"{"$blob":"\u0030a"}"#] {
            let j: Json = serde_json::from_str(text).unwrap();
            assert_eq!(Value::from_json_text(text, &what).unwrap(), Value::from_json(&j, &what).unwrap(), "{text}");
        }
        for bad in [r#"{"$blob":"0"}"#, r#"{"$blob":"zz"}"#] {
            assert!(Value::from_json_text(bad, &what).unwrap_err().to_string().contains("$blob is not hex"), "{bad}");
        }
    }

    #[test]
    fn round_trips() {
        for v in [
            Value::Null,
            Value::Integer(0),
            Value::Integer(-1),
            Value::Integer(i64::MAX),
            Value::Integer(i64::MIN),
            Value::Real(0.1),
            Value::Real(0.1 + 0.2),
            Value::Real(5e-324),
            Value::Real(1e308),
            Value::Real(-0.0),
            Value::Real(3.0),
            Value::Real(f64::INFINITY),
            Value::Real(f64::NEG_INFINITY),
            Value::Text(String::new()),
            Value::Text("it's \"q\" \\ \n \u{1} é 漢 🎉".into()),
            Value::Blob(vec![]),
            Value::Blob(vec![0, 255, 10]),
        ] {
            rt(v);
        }
    }

    #[test]
    fn reads_sqlite_quote_output() {
        let v = parse_literals("'a''b',3.00000000000000044408e-01,X'00FF',NULL,-7,Inf").unwrap();
        assert_eq!(
            v,
            vec![
                Value::Text("a'b".into()),
                Value::Real(0.1 + 0.2),
                Value::Blob(vec![0, 255]),
                Value::Null,
                Value::Integer(-7),
                Value::Real(f64::INFINITY)
            ]
        );
        assert_eq!(parse_literals("'a,b',1").unwrap().len(), 2);
        assert!(parse_literals("'a").is_err());
        assert!(parse_literals("1,").is_err());
        assert!(parse_literals("abc").is_err());
    }

    #[test]
    fn rejects_huge_numbers() {
        let j: Json = serde_json::from_str("99999999999999999999").unwrap();
        assert!(Value::from_json(&j, &|| "x".into()).is_err());
        let j: Json = serde_json::from_str("1e400").unwrap_or(Json::Null);
        if !j.is_null() {
            assert!(Value::from_json(&j, &|| "x".into()).is_err());
        }
        let j: Json = serde_json::from_str("true").unwrap();
        assert!(Value::from_json(&j, &|| "x".into()).is_err());
    }
}
