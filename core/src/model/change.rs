//! A change's writes and bases: building `change_data`/`bases` JSON and reading them back.
//!
//! `change_data` is `{"column": value, ...}` for the columns the change writes (an INSERT writes
//! every column, an UPDATE those whose value it changed, a DELETE none). The operation says what
//! it writes to the record's liveness: INSERT alive, DELETE dead, UPDATE nothing.
//! `bases` is `{"live":[refs],"cols":{"column":[refs]},"seen":{"column":ref}}`: the writer
//! (`device:version`) of each written slot at the origin when the change was made (two for a
//! resolution: both sides); for an UPDATE, `live` is the liveness writer it saw; a change that
//! deletes also lists in `seen` the column writers it saw. A slot that had no writer is left
//! out (an empty list), so a first INSERT has bases `{}`; a DELETE always has `seen`.
use super::table::Table;
use crate::error::{Error, Result};
use crate::wire::{parse_reference, shown, write_json_string, Value};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value as Json;

/// A JSON object's plain members in order, each value as its JSON text; a repeated name keeps
/// its first place and takes the last value, as a parse into `serde_json::Map` does.
struct Members<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<Members<'de>, A::Error> {
                let mut out: Vec<(&'de str, &'de RawValue)> = Vec::new();
                // Names are borrowed: one with an escape fails here. So does a value with an
                // escape or nested more than one level: those take the plain parse, whose
                // checks (escapes, depth) and errors they need.
                while let Some(k) = m.next_key::<&'de str>()? {
                    let v: &'de RawValue = m.next_value()?;
                    let t = v.get();
                    if t.contains('\\') || (t.starts_with(['{', '[']) && t[1..].contains(['{', '['])) {
                        return Err(serde::de::Error::custom("not a plain member"));
                    }
                    match out.iter_mut().find(|(n, _)| *n == k) {
                        Some(slot) => slot.1 = v,
                        None => out.push((k, v)),
                    }
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Insert,
    Update,
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "INSERT",
            Op::Update => "UPDATE",
            Op::Delete => "DELETE",
        }
    }
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "INSERT" => Op::Insert,
            "UPDATE" => Op::Update,
            "DELETE" => Op::Delete,
            _ => return None,
        })
    }
    /// What the operation writes to liveness.
    pub fn live_write(self) -> Option<bool> {
        match self {
            Op::Insert => Some(true),
            Op::Delete => Some(false),
            Op::Update => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ColWrite {
    pub col: usize,
    pub value: Value,
    pub base: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Change {
    pub op: Op,
    pub writes: Vec<ColWrite>,
    pub live: Vec<String>,
    /// DELETE-type changes: the column writers seen, by column index.
    pub seen: Option<Vec<(usize, Option<String>)>>,
    /// Columns the change names (in `change_data` or `bases.seen`) that the table does not
    /// track here: a change read with some waits until the local schema has them (their
    /// writes are not in `writes`).
    pub unknown: Vec<String>,
}

impl Change {
    pub fn data_json(&self, t: &Table) -> String {
        let mut s = String::with_capacity(128);
        s.push('{');
        for (k, w) in self.writes.iter().enumerate() {
            if k > 0 {
                s.push(',');
            }
            write_json_string(&t.columns[w.col], &mut s);
            s.push(':');
            w.value.write_json(&mut s);
        }
        s.push('}');
        s
    }

    /// `bases` JSON, compact: empty lists and unseen (null) entries are left out.
    pub fn bases_json(&self, t: &Table) -> String {
        fn refs(s: &mut String, v: &[String]) {
            s.push('[');
            for (k, r) in v.iter().enumerate() {
                if k > 0 {
                    s.push(',');
                }
                write_json_string(r, s);
            }
            s.push(']');
        }
        let mut s = String::with_capacity(128);
        s.push('{');
        let sep = |s: &mut String| {
            if s.len() > 1 {
                s.push(',');
            }
        };
        if !self.live.is_empty() {
            s.push_str("\"live\":");
            refs(&mut s, &self.live);
        }
        if self.writes.iter().any(|w| !w.base.is_empty()) {
            sep(&mut s);
            s.push_str("\"cols\":{");
            let mut first = true;
            for w in self.writes.iter().filter(|w| !w.base.is_empty()) {
                if !first {
                    s.push(',');
                }
                first = false;
                write_json_string(&t.columns[w.col], &mut s);
                s.push(':');
                refs(&mut s, &w.base);
            }
            s.push('}');
        }
        if let Some(seen) = &self.seen {
            sep(&mut s);
            s.push_str("\"seen\":{");
            let mut first = true;
            for (c, r) in seen {
                if let Some(r) = r {
                    if !first {
                        s.push(',');
                    }
                    first = false;
                    write_json_string(&t.columns[*c], &mut s);
                    s.push(':');
                    write_json_string(r, &mut s);
                }
            }
            s.push('}');
        }
        s.push('}');
        s
    }

    /// Reads a change's `change_data` and `bases` against the local table `t`.
    pub fn parse(t: &Table, op: Op, data: &str, bases: &str, what: &dyn Fn() -> String) -> Result<Change> {
        let bad = |why: String| Error::invalid(format!("{}: {why}", what()));
        let fallback: Vec<(String, Box<RawValue>)>;
        let data: Vec<(&str, &RawValue)> = match serde_json::from_str::<Members<'_>>(data) {
            Ok(Members(m)) => m,
            Err(_) => {
                // The errors, as a plain parse reports them.
                let data: Json =
                    serde_json::from_str(data).map_err(|e| bad(format!("change_data is not JSON ({e})")))?;
                let data = data.as_object().ok_or_else(|| bad("change_data is not a JSON object".into()))?;
                fallback = data
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), serde_json::value::to_raw_value(v)?)))
                    .collect::<Result<_>>()?;
                fallback.iter().map(|(k, v)| (k.as_str(), &**v)).collect()
            }
        };
        let bases: Json = match bases {
            "{}" => Json::Object(Default::default()),
            _ => serde_json::from_str(bases).map_err(|e| bad(format!("bases is not JSON ({e})")))?,
        };
        let bases = bases.as_object().ok_or_else(|| bad("bases is not a JSON object".into()))?;
        let ref_list = |j: Option<&Json>, name: &str| -> Result<Vec<String>> {
            match j {
                None => Ok(Vec::new()),
                Some(Json::Array(a)) => a
                    .iter()
                    .map(|r| match r.as_str() {
                        Some(s) if parse_reference(s).is_some() => Ok(s.to_string()),
                        _ => Err(bad(format!("bases.{name} holds something that is not a device:version reference"))),
                    })
                    .collect(),
                Some(_) => Err(bad(format!("bases.{name} is not a list"))),
            }
        };
        if let Some(k) = bases.keys().find(|k| !["live", "cols", "seen"].contains(&k.as_str())) {
            return Err(bad(format!("bases has an unknown field \"{}\"", shown(k))));
        }
        let live = ref_list(bases.get("live"), "live")?;
        let col_bases = match bases.get("cols") {
            None => None,
            Some(Json::Object(m)) => Some(m),
            Some(_) => return Err(bad("bases.cols is not an object".into())),
        };
        if let Some(k) = col_bases.and_then(|m| m.keys().find(|k| !data.iter().any(|(n, _)| n == k))) {
            return Err(bad(format!("bases.cols names column \"{}\", which the change does not write", shown(k))));
        }
        // A column this table does not track here is kept aside (the change waits for it); a
        // name no SQLite column can have is refused.
        let mut unknown: Vec<String> = Vec::new();
        let mut col = |name: &str| -> Result<Option<usize>> {
            if let Some(c) = t.column_index(name) {
                return Ok(Some(c));
            }
            if name.is_empty() || name.contains('\0') {
                return Err(bad(format!(
                    "column \"{}\" does not exist in table \"{}\" here, and no SQLite column can have that name",
                    shown(name),
                    shown(&t.name)
                )));
            }
            if !unknown.iter().any(|u| u == name) {
                unknown.push(name.to_string());
            }
            Ok(None)
        };
        let mut writes = Vec::with_capacity(data.len());
        for (name, v) in data {
            let c = col(name)?;
            let value = Value::from_json_text(v.get(), &|| format!("{}: column \"{name}\"", what()))?;
            let base = ref_list(col_bases.and_then(|m| m.get(name)), name)?;
            if let Some(c) = c {
                writes.push(ColWrite { col: c, value, base });
            }
        }
        if op == Op::Delete && writes.iter().any(|w| t.is_pk(w.col)) {
            return Err(bad("a DELETE cannot write primary key columns".into()));
        }
        let seen = match bases.get("seen") {
            None if op == Op::Delete => Some(Vec::new()),
            None => None,
            Some(Json::Object(m)) => {
                let mut v = Vec::new();
                for (name, r) in m {
                    let c = col(name)?;
                    let r = match r {
                        Json::Null => None,
                        Json::String(s) if parse_reference(s).is_some() => Some(s.clone()),
                        _ => return Err(bad(format!("bases.seen.{name} is not a reference or null"))),
                    };
                    if let Some(c) = c {
                        v.push((c, r));
                    }
                }
                Some(v)
            }
            Some(_) => return Err(bad("bases.seen is not an object".into())),
        };
        Ok(Change { op, writes, live, seen, unknown })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::table::{SqlCache, Strategy};

    fn table() -> Table {
        Table {
            sql: SqlCache::default(),
            id: 1,
            name: "t".into(),
            columns: vec!["id".into(), "a".into(), "b\"q".into(), "c".into()],
            pk: vec![0],
            strategy: Strategy::TimestampWins,
            affinity: vec![crate::model::affinity::Affinity::Blob; 4],
        }
    }

    /// The reading before the fast path: every member through `serde_json::Value`.
    fn plain(t: &Table, data: &str) -> std::result::Result<Vec<(usize, Value)>, String> {
        let j: Json = serde_json::from_str(data).map_err(|e| format!("change_data is not JSON ({e})"))?;
        let m = j.as_object().ok_or("change_data is not a JSON object")?;
        let mut out = Vec::new();
        for (name, v) in m {
            let c = t.column_index(name).ok_or(format!("column \"{name}\" does not exist"))?;
            out.push((c, Value::from_json(v, &|| format!("x: column \"{name}\"")).map_err(|e| e.to_string())?));
        }
        Ok(out)
    }

    fn fast(t: &Table, data: &str) -> std::result::Result<Vec<(usize, Value)>, String> {
        let ch = Change::parse(t, Op::Insert, data, "{}", &|| "x".into()).map_err(|e| e.to_string())?;
        // Unknown columns are kept aside (the change waits for them); the plain reading refused them.
        if let Some(c) = ch.unknown.first() {
            return Err(format!("column \"{c}\" does not exist"));
        }
        Ok(ch.writes.into_iter().map(|w| (w.col, w.value)).collect())
    }

    #[test]
    fn reads_change_data_as_a_plain_parse_does() {
        let t = table();
        for data in [
            r#"{"id":"k","a":1,"b\"q":2.5,"c":null}"#,
            r#"{"id":"k","a":1,"c":null}"#,
            r#"{ "id" : "k" , "a" : -0 , "c" : -0.0 }"#,
            r#"{"a":1E5,"c":1e-5,"id":0}"#,
            r#"{"a":12345678901234567890}"#,
            r#"{"a":9223372036854775807,"c":-9223372036854775808}"#,
            r#"{"a":1e400}"#,
            r#"{"a":"tab\tnew\nline \u00e9 \ud83d\ude00","c":"plain é 😀"}"#,
            r#"{"a":{"$blob":"0aff"},"c":{"$real":"-inf"}}"#,
            r#"{"a":{"$blob":"zz"}}"#,
            r#"{"a":[1],"c":true}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"\u0061":5}"#,
            r#"{"nope":1}"#,
            r#"{}"#,
            r#"[1,2]"#,
            r#""text""#,
            r#"{"a":1"#,
            r#"not json"#,
            r#"{"a":1} trailing"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":"x","nope":{"$blob":"00"}}"#,
            &format!(r#"{{"a":{}1{}}}"#, "[".repeat(200), "]".repeat(200)),
            &format!(r#"{{"nope":{}1{}}}"#, "{\"x\":".repeat(200), "}".repeat(200)),
        ] {
            let (want, got) = (plain(&t, data), fast(&t, data));
            match (&want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(w, g, "{data}"),
                (Err(w), Err(g)) => {
                    let w = w.trim_start_matches("x: ");
                    assert!(
                        g.contains(w) || w.contains("does not exist") && g.contains("does not exist"),
                        "{data}: {w} / {g}"
                    )
                }
                _ => panic!("{data}: {want:?} vs {got:?}"),
            }
        }
    }
}
