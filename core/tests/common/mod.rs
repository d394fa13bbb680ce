//! Shared helpers for peersync-core's merge tests: values, peers, syncing pairs, snapshots, fingerprints.
#![allow(dead_code)]

mod craft;
mod signer;
#[allow(unused_imports)] // not every test binary crafts changes
pub use craft::*;
#[allow(unused_imports)] // nor signs them
pub use signer::*;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, ToSql};
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::fmt;

/// The tracked tables every peer of the property test has.
pub const T1_SQL: &str = "CREATE TABLE t1(id TEXT PRIMARY KEY, a, b, c)";
pub const T2_SQL: &str = "CREATE TABLE t2(k TEXT, n INTEGER, x, y, PRIMARY KEY(k, n))";

// ------------------------------------------------------------------ values

/// An SQLite value as the tests see it: type and value, reals compared bit for bit.
#[derive(Clone)]
pub enum V {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl PartialEq for V {
    fn eq(&self, o: &V) -> bool {
        match (self, o) {
            (V::Null, V::Null) => true,
            (V::Int(a), V::Int(b)) => a == b,
            (V::Real(a), V::Real(b)) => a.to_bits() == b.to_bits(),
            (V::Text(a), V::Text(b)) => a == b,
            (V::Blob(a), V::Blob(b)) => a == b,
            _ => false,
        }
    }
}
impl Eq for V {}

impl fmt::Debug for V {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            V::Null => write!(f, "NULL"),
            V::Int(i) => write!(f, "{i}"),
            V::Real(r) => write!(f, "{r:?}"),
            V::Text(t) => write!(f, "{t:?}"),
            V::Blob(b) => write!(f, "x'{}'", hex::encode(b)),
        }
    }
}

impl V {
    pub fn from_ref(v: ValueRef<'_>) -> V {
        match v {
            ValueRef::Null => V::Null,
            ValueRef::Integer(i) => V::Int(i),
            ValueRef::Real(r) => V::Real(r),
            ValueRef::Text(t) => V::Text(String::from_utf8(t.to_vec()).expect("utf8 text")),
            ValueRef::Blob(b) => V::Blob(b.to_vec()),
        }
    }

    /// Reads DESIGN.md's change_data encoding: integers as JSON ints, reals with '.' or an
    /// exponent, text as strings, blobs as {"$blob":"hex"}, ±inf as {"$real":"inf"}.
    pub fn from_json(j: &Json) -> V {
        match j {
            Json::Null => V::Null,
            Json::String(s) => V::Text(s.clone()),
            Json::Number(n) => {
                let s = n.to_string();
                if s.contains(['.', 'e', 'E']) {
                    V::Real(s.parse().unwrap_or_else(|_| panic!("bad real {s}")))
                } else {
                    V::Int(s.parse().unwrap_or_else(|_| panic!("bad integer {s}")))
                }
            }
            Json::Object(m) if m.contains_key("$blob") => {
                V::Blob(hex::decode(m["$blob"].as_str().expect("$blob hex")).expect("$blob hex"))
            }
            Json::Object(m) if m.contains_key("$real") => match m["$real"].as_str() {
                Some("inf") => V::Real(f64::INFINITY),
                Some("-inf") => V::Real(f64::NEG_INFINITY),
                other => panic!("bad $real {other:?}"),
            },
            other => panic!("not a value encoding: {other}"),
        }
    }

    /// The JSON encoding DESIGN.md documents (for JSON rows given to sync_resolve, crafted changes).
    pub fn to_json(&self) -> Json {
        match self {
            V::Null => Json::Null,
            V::Int(i) => serde_json::from_str(&i.to_string()).unwrap(),
            V::Real(r) if r.is_infinite() => json!({"$real": if *r > 0.0 { "inf" } else { "-inf" }}),
            V::Real(r) => serde_json::from_str(&format!("{r:?}")).unwrap(),
            V::Text(t) => Json::String(t.clone()),
            V::Blob(b) => json!({"$blob": hex::encode(b)}),
        }
    }

    /// SQL literal as in record_id (text and integers are all the tests use in keys).
    pub fn literal(&self) -> String {
        match self {
            V::Null => "NULL".into(),
            V::Int(i) => i.to_string(),
            V::Real(r) => format!("{r:?}"),
            V::Text(t) => format!("'{}'", t.replace('\'', "''")),
            V::Blob(b) => format!("X'{}'", hex::encode_upper(b)),
        }
    }
}

impl ToSql for V {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            V::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            V::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            V::Real(r) => ToSqlOutput::Borrowed(ValueRef::Real(*r)),
            V::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            V::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

pub fn t(s: &str) -> V {
    V::Text(s.to_string())
}

// ------------------------------------------------------------------ peers

/// One database with peersync's functions registered and sync initialised.
pub struct Peer {
    pub conn: Connection,
    pub dev: String,
    pub name: String,
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name, &self.dev[..8])
    }
}

impl Peer {
    /// An in-memory database, functions registered, `sync_init()` run, `schema` executed.
    pub fn new(name: &str, schema: &str) -> Peer {
        let conn = Connection::open_in_memory().unwrap();
        Self::setup(conn, name, schema)
    }

    pub fn setup(conn: Connection, name: &str, schema: &str) -> Peer {
        peersync_core::register_functions(&conn).unwrap();
        let dev: String = conn.query_row("SELECT sync_init()", [], |r| r.get(0)).unwrap();
        assert_eq!(dev.len(), 32, "device id {dev:?}");
        if !schema.is_empty() {
            conn.execute_batch(schema).unwrap();
        }
        Peer { conn, dev, name: name.to_string() }
    }

    /// A peer with t1 and t2 tracked with the given strategies.
    pub fn standard(name: &str, s1: &str, s2: &str) -> Peer {
        let p = Peer::new(name, &format!("{T1_SQL}; {T2_SQL};"));
        p.track("t1", s1);
        p.track("t2", s2);
        p
    }

    pub fn track(&self, table: &str, strategy: &str) -> i64 {
        self.conn
            .query_row("SELECT sync_track(?1, ?2)", params![table, strategy], |r| r.get(0))
            .unwrap_or_else(|e| panic!("sync_track({table}, {strategy}) on {}: {e}", self.name))
    }

    pub fn exec(&self, sql: &str) {
        self.conn.execute_batch(sql).unwrap_or_else(|e| panic!("{}: {sql}: {e}", self.name));
    }

    pub fn run(&self, sql: &str, p: &[&dyn ToSql]) -> rusqlite::Result<usize> {
        self.conn.execute(sql, p)
    }

    pub fn str(&self, sql: &str) -> String {
        self.conn.query_row(sql, [], |r| r.get(0)).unwrap_or_else(|e| panic!("{}: {sql}: {e}", self.name))
    }

    pub fn int(&self, sql: &str) -> i64 {
        self.conn.query_row(sql, [], |r| r.get(0)).unwrap_or_else(|e| panic!("{}: {sql}: {e}", self.name))
    }

    pub fn json(&self, sql: &str) -> Json {
        serde_json::from_str(&self.str(sql)).unwrap()
    }

    pub fn vector(&self) -> String {
        self.str("SELECT sync_vector()")
    }

    pub fn vector_json(&self) -> Json {
        serde_json::from_str(&self.vector()).unwrap()
    }

    /// `sync_changes(since, limit)` as text. It writes the batch straight from the log
    /// (`changes_json`): checked to be exactly the serialized `changes` batch every time.
    pub fn changes(&self, since: &str, limit: i64) -> String {
        let text: String = self
            .conn
            .query_row("SELECT sync_changes(?1, ?2)", params![since, limit], |r| r.get(0))
            .unwrap_or_else(|e| panic!("sync_changes on {}: {e}", self.name));
        let since = peersync_core::parse_vector("test", since).unwrap();
        let batch = peersync_core::changes(&self.conn, &since, limit).unwrap();
        assert_eq!(
            text,
            serde_json::to_string(&batch).unwrap(),
            "sync_changes on {} differs from its batch",
            self.name
        );
        text
    }

    /// `sync_apply(batch)`: the parsed result, or the SQL error's message.
    pub fn apply(&self, batch: &str) -> Result<Json, String> {
        self.conn
            .query_row("SELECT sync_apply(?1)", [batch], |r| r.get::<_, String>(0))
            .map(|s| serde_json::from_str(&s).unwrap())
            .map_err(|e| e.to_string())
    }

    pub fn resolve(&self, id: i64, choice: &str) -> Result<String, String> {
        self.conn.query_row("SELECT sync_resolve(?1, ?2)", params![id, choice], |r| r.get(0)).map_err(|e| e.to_string())
    }

    pub fn set_clock_offset(&self, us: i64) {
        self.conn.execute("INSERT OR REPLACE INTO sync_state(key,value) VALUES('clock_offset_us', ?1)", [us]).unwrap();
    }

    pub fn seal(&self) -> i64 {
        self.int("SELECT sync_seal()")
    }

    pub fn verify(&self) -> Json {
        self.json("SELECT sync_verify()")
    }

    /// Ids of pending conflicts, oldest first.
    pub fn pending(&self) -> Vec<i64> {
        let mut st = self.conn.prepare("SELECT id FROM sync_conflicts WHERE status='pending' ORDER BY id").unwrap();
        let v = st.query_map([], |r| r.get(0)).unwrap().collect::<rusqlite::Result<Vec<i64>>>().unwrap();
        v
    }

    pub fn conflicts(&self) -> Vec<ConflictRow> {
        // `open_columns` (the columns of a pending conflict not yet resolved elsewhere) is the
        // engine's addition; without it every column of a pending conflict is open.
        let has_open: bool = self
            .conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('sync_conflicts') WHERE name = 'open_columns'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT id, table_name, record_id, local_data, remote_data, local_version, remote_version, \
                 local_device_id, remote_device_id, status, resolution, kind, columns, {} FROM sync_conflicts ORDER BY id",
                if has_open { "open_columns" } else { "columns" }
            ))
            .unwrap();
        let j =
            |s: Option<String>| s.map(|s| serde_json::from_str(&s).unwrap_or(Json::String(s))).unwrap_or(Json::Null);
        let v = st
            .query_map([], |r| {
                Ok(ConflictRow {
                    id: r.get(0)?,
                    table_name: r.get(1)?,
                    record_id: r.get(2)?,
                    local_data: j(r.get(3)?),
                    remote_data: j(r.get(4)?),
                    local_version: r.get(5)?,
                    remote_version: r.get(6)?,
                    local_device_id: r.get(7)?,
                    remote_device_id: r.get(8)?,
                    status: r.get(9)?,
                    resolution: j(r.get(10)?),
                    kind: r.get(11)?,
                    columns: j(r.get(12)?),
                    open_columns: j(r.get(13)?),
                })
            })
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap();
        v
    }

    /// Every sealed row of sync_log, in local order.
    pub fn log(&self) -> Vec<LogRow> {
        self.seal();
        let mut st = self
            .conn
            .prepare(
                "SELECT id, table_name, record_id, operation, change_data, device_id, version, timestamp, bases, resolution, hash \
                 FROM sync_log ORDER BY id",
            )
            .unwrap();
        let v = st
            .query_map([], |r| {
                Ok(LogRow {
                    id: r.get(0)?,
                    table_name: r.get(1)?,
                    record_id: r.get(2)?,
                    operation: r.get(3)?,
                    change_data: r.get(4)?,
                    device_id: r.get(5)?,
                    version: r.get(6)?,
                    timestamp: r.get(7)?,
                    bases: r.get(8)?,
                    resolution: r.get(9)?,
                    hash: r.get(10)?,
                })
            })
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap();
        v
    }

    /// All rows of `table` (every column, with its type), sorted.
    pub fn rows(&self, table: &str) -> Vec<Vec<V>> {
        let mut st = self.conn.prepare(&format!("SELECT * FROM \"{}\"", table.replace('"', "\"\""))).unwrap();
        let n = st.column_count();
        let mut v: Vec<Vec<V>> = st
            .query_map([], |r| (0..n).map(|i| r.get_ref(i).map(V::from_ref)).collect())
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        v.sort_by_key(|r| format!("{r:?}"));
        v
    }

    /// One row by a WHERE clause (None when absent).
    pub fn row(&self, table: &str, cond: &str) -> Option<Vec<V>> {
        let mut st = self.conn.prepare(&format!("SELECT * FROM {table} WHERE {cond}")).unwrap();
        let n = st.column_count();
        let mut rows = st.query([]).unwrap();
        rows.next().unwrap().map(|r| (0..n).map(|i| V::from_ref(r.get_ref(i).unwrap())).collect())
    }

    /// The tracked tables' contents.
    pub fn snapshot(&self, tables: &[&str]) -> BTreeMap<String, Vec<Vec<V>>> {
        tables.iter().map(|t| (t.to_string(), self.rows(t))).collect()
    }

    /// Everything in the database (schema, every table including peersync's own), as text,
    /// one line per row. Two equal dumps mean nothing changed; see [`assert_unchanged`].
    pub fn fingerprint(&self) -> String {
        let mut out = String::new();
        let names: Vec<String> = {
            let mut st = self.conn.prepare("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name").unwrap();
            let v = st.query_map([], |r| r.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap();
            v
        };
        for r in self.rows("sqlite_master") {
            out.push_str(&format!("sqlite_master {r:?}\n"));
        }
        for n in names {
            for r in self.rows(&n) {
                out.push_str(&format!("{n} {r:?}\n"));
            }
        }
        out
    }

    pub fn own_version(&self) -> i64 {
        self.vector_json().get(&self.dev).and_then(|v| v.as_i64()).unwrap_or(0)
    }
}

#[derive(Debug, Clone)]
pub struct ConflictRow {
    pub id: i64,
    pub table_name: String,
    pub record_id: String,
    pub local_data: Json,
    pub remote_data: Json,
    pub local_version: Option<i64>,
    pub remote_version: Option<i64>,
    pub local_device_id: Option<String>,
    pub remote_device_id: Option<String>,
    pub status: String,
    pub resolution: Json,
    pub kind: String,
    pub columns: Json,
    pub open_columns: Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    pub id: i64,
    pub table_name: String,
    pub record_id: Option<String>,
    pub operation: String,
    pub change_data: Option<String>,
    pub device_id: Option<String>,
    pub version: Option<i64>,
    pub timestamp: Option<i64>,
    pub bases: Option<String>,
    pub resolution: bool,
    pub hash: Option<String>,
}

// ------------------------------------------------------------------ syncing

/// One exchange: `from` sends what `to` lacks (at most `limit` changes), `to` applies it.
/// Returns (batch, result of sync_apply).
pub fn sync_once(from: &Peer, to: &Peer, limit: i64) -> (String, Result<Json, String>) {
    let batch = from.changes(&to.vector(), limit);
    let res = to.apply(&batch);
    (batch, res)
}

/// Sends everything `from` has that `to` lacks, page by page. Returns the number accepted.
pub fn sync(from: &Peer, to: &Peer) -> i64 {
    let mut accepted = 0;
    for _ in 0..1000 {
        let (batch, res) = sync_once(from, to, 1000);
        let res = res.unwrap_or_else(|e| panic!("{:?} -> {:?}: sync_apply failed: {e}", from, to));
        accepted += res["accepted"].as_i64().unwrap();
        let b: Json = serde_json::from_str(&batch).unwrap();
        if !b["has_more"].as_bool().unwrap() {
            return accepted;
        }
    }
    panic!("{from:?} -> {to:?}: has_more never ends");
}

/// Both directions.
pub fn sync_pair(a: &Peer, b: &Peer) {
    sync(a, b);
    sync(b, a);
}

/// Full exchanges among all pairs until nothing moves; returns the number of rounds.
pub fn quiet(peers: &[&Peer]) -> usize {
    for round in 1..=50 {
        let mut moved = 0;
        for s in peers {
            for r in peers {
                if s.dev != r.dev {
                    moved += sync(s, r);
                }
            }
        }
        if moved == 0 {
            return round;
        }
    }
    panic!("no quiescence after 50 rounds");
}

/// The property tests' run: 256 cases (`PEERSYNC_LONG=1`: 10,000; `PEERSYNC_CASES=n`: n, and no
/// shrinking: `make mutants` runs a few cases per mutant and needs to know only that one fails).
pub fn property_config() -> proptest::test_runner::Config {
    let long = std::env::var("PEERSYNC_LONG").map(|v| v == "1").unwrap_or(false);
    let cases: Option<u32> = std::env::var("PEERSYNC_CASES").ok().and_then(|v| v.parse().ok());
    let shrink = if cases.is_some() { 0 } else { 2_000 };
    let cases = cases.unwrap_or(if long { 10_000 } else { 256 });
    proptest::test_runner::Config { cases, max_shrink_iters: shrink, failure_persistence: None, ..Default::default() }
}
