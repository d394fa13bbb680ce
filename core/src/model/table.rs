//! Tracked tables as the engine sees them: columns, primary key, strategy; and their introspection.
use super::affinity::Affinity;
use crate::db::ident::is_reserved_table;
use crate::db::read_values;
use crate::error::{Error, Result};
use crate::wire::Value;
use rusqlite::{Connection, OptionalExtension};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    TimestampWins,
    LocalWins,
    RemoteWins,
    Manual,
}

impl Strategy {
    pub const NAMES: &'static [&'static str] = &["timestamp_wins", "local_wins", "remote_wins", "manual"];

    pub fn parse(s: &str) -> Option<Strategy> {
        Some(match s {
            "timestamp_wins" => Strategy::TimestampWins,
            "local_wins" => Strategy::LocalWins,
            "remote_wins" => Strategy::RemoteWins,
            "manual" => Strategy::Manual,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::TimestampWins => "timestamp_wins",
            Strategy::LocalWins => "local_wins",
            Strategy::RemoteWins => "remote_wins",
            Strategy::Manual => "manual",
        }
    }
}

#[derive(Debug)]
pub struct Table {
    /// SQL text built once per table (see `rows.rs`).
    pub sql: SqlCache,
    pub id: i64,
    pub name: String,
    /// Captured columns, in the order the stage table and triggers use.
    pub columns: Vec<String>,
    /// Indexes into `columns` of the primary key, in key order.
    pub pk: Vec<usize>,
    pub strategy: Strategy,
    /// Each captured column's affinity here, in `columns`' order.
    pub affinity: Vec<Affinity>,
}

/// Statements on a tracked table, built on first use.
#[derive(Debug, Default)]
pub struct SqlCache {
    pub read: std::sync::OnceLock<String>,
    pub insert: std::sync::OnceLock<String>,
    pub delete: std::sync::OnceLock<String>,
    pub stage: std::sync::OnceLock<String>,
}

impl Table {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
    pub fn is_pk(&self, col: usize) -> bool {
        self.pk.contains(&col)
    }

    /// A table as a change names it, for a table that is not tracked here: `columns`, no key,
    /// no affinity. Reading a change against it checks the change's shape and finds its bases.
    pub fn shadow(name: &str, columns: Vec<String>) -> Table {
        let affinity = vec![Affinity::Blob; columns.len()];
        Table {
            sql: SqlCache::default(),
            id: 0,
            name: name.to_string(),
            columns,
            pk: Vec::new(),
            strategy: Strategy::TimestampWins,
            affinity,
        }
    }
}

/// The affinity of each of `columns` of table `name` as declared here now (a column the
/// table no longer has converts nothing).
pub fn affinities(conn: &Connection, name: &str, columns: &[String]) -> Result<Vec<Affinity>> {
    let sql: Option<String> = conn
        .prepare_cached("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?
        .flatten();
    // A STRICT table says so after its column list: `) STRICT` or `) WITHOUT ROWID, STRICT`.
    let strict = sql
        .as_deref()
        .and_then(|s| s.rsplit_once(')'))
        .is_some_and(|(_, tail)| tail.to_ascii_uppercase().contains("STRICT"));
    let mut declared: HashMap<String, String> = HashMap::new();
    let mut stmt = conn.prepare_cached("SELECT name, type FROM pragma_table_xinfo(?1, 'main')")?;
    let mut rows = stmt.query([name])?;
    while let Some(r) = rows.next()? {
        declared.insert(r.get(0)?, r.get::<_, Option<String>>(1)?.unwrap_or_default());
    }
    Ok(columns.iter().map(|c| declared.get(c).map_or(Affinity::Blob, |d| Affinity::of(d, strict))).collect())
}

/// Each column of table `name` and its declared default's value (NULL for a column with no
/// default), None where the default is not a constant (`CURRENT_TIMESTAMP`, say). The default
/// is evaluated from this database's own schema text, as SQLite stored it after parsing it as
/// an expression: never a peer's text.
pub fn column_defaults(conn: &Connection, name: &str) -> Result<HashMap<String, Option<Value>>> {
    let mut out = HashMap::new();
    let mut stmt = conn.prepare_cached("SELECT name, dflt_value FROM pragma_table_info(?1, 'main')")?;
    let cols: Vec<(String, Option<String>)> =
        stmt.query_map([name], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
    for (col, dflt) in cols {
        let value = match dflt {
            None => Some(Value::Null),
            Some(expr) if expr.to_ascii_uppercase().contains("CURRENT_") => None,
            Some(expr) => {
                conn.query_row(&format!("SELECT ({expr})"), [], |r| read_values(r, 0, 1)).ok().and_then(|mut v| v.pop())
            }
        };
        out.insert(col, value);
    }
    Ok(out)
}

/// A table's shape as SQLite reports it now.
pub struct Shape {
    /// The table's name as declared (lookups ignore case, as SQLite does).
    pub name: String,
    pub columns: Vec<String>,
    pub pk: Vec<usize>,
    /// Secondary UNIQUE indexes over plain columns: (columns, collations).
    pub unique: Vec<Vec<(String, String)>>,
}

/// Checks that `name` can be tracked and reads its columns and keys.
pub fn introspect(conn: &Connection, func: &str, name: &str) -> Result<Shape> {
    let row: Option<(String, Option<String>, String)> = conn
        .query_row(
            "SELECT type, sql, name FROM sqlite_master WHERE name = ?1 COLLATE NOCASE AND type IN ('table','view')",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let (kind, sql, name) = match row {
        None => return Err(Error::invalid(format!("{func}: no such table: \"{name}\""))),
        Some(r) => r,
    };
    let name = name.as_str();
    if is_reserved_table(name) {
        return Err(Error::invalid(format!(
            "{func}: \"{name}\" is one of SQLite's or peersync's own tables and cannot be tracked"
        )));
    }
    if kind == "view" {
        return Err(Error::invalid(format!("{func}: \"{name}\" is a view; only tables can be tracked")));
    }
    if sql.unwrap_or_default().trim_start().to_ascii_uppercase().starts_with("CREATE VIRTUAL") {
        return Err(Error::invalid(format!(
            "{func}: \"{name}\" is a virtual table; only ordinary tables can be tracked"
        )));
    }
    let mut columns = Vec::new();
    let mut pk: Vec<(i64, usize)> = Vec::new();
    let mut stmt = conn.prepare("SELECT name, pk, hidden FROM pragma_table_xinfo(?1, 'main') ORDER BY cid")?;
    let mut rows = stmt.query([name])?;
    while let Some(r) = rows.next()? {
        let hidden: i64 = r.get(2)?;
        if hidden != 0 {
            continue; // generated columns are computed on every device
        }
        let col: String = r.get(0)?;
        let k: i64 = r.get(1)?;
        if k > 0 {
            pk.push((k, columns.len()));
        }
        columns.push(col);
    }
    if pk.is_empty() {
        return Err(Error::invalid(format!(
            "{func}: table \"{name}\" has no primary key; peersync identifies rows by their primary key (use e.g. `id TEXT PRIMARY KEY` with UUIDs)"
        )));
    }
    pk.sort();
    let pk = pk.into_iter().map(|(_, i)| i).collect();
    let mut unique = Vec::new();
    let mut idx = conn.prepare("SELECT name FROM pragma_index_list(?1, 'main') WHERE \"unique\" AND origin != 'pk'")?;
    let names: Vec<String> = idx.query_map([name], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    let mut info =
        conn.prepare("SELECT cid, name, coll FROM pragma_index_xinfo(?1, 'main') WHERE key ORDER BY seqno")?;
    'index: for ix in names {
        let mut cols = Vec::new();
        for r in info.query_map([&ix], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?, r.get::<_, Option<String>>(2)?))
        })? {
            let (cid, col, coll) = r?;
            match col {
                Some(c) if cid >= 0 => cols.push((c, coll.unwrap_or_else(|| "BINARY".into()))),
                _ => continue 'index, // expression index: see README "Limits"
            }
        }
        unique.push(cols);
    }
    Ok(Shape { name: name.to_string(), columns, pk, unique })
}

/// The tracked tables, loaded once per call.
#[derive(Default)]
pub struct Tables {
    by_name: HashMap<String, Arc<Table>>,
}

impl Tables {
    pub fn load(conn: &Connection) -> Result<Tables> {
        let mut by_name = HashMap::new();
        let mut stmt = conn.prepare_cached("SELECT id, name, strategy, columns, pk FROM sync_tables WHERE active")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let name: String = r.get(1)?;
            let strategy: String = r.get(2)?;
            let columns: String = r.get(3)?;
            let pk: String = r.get(4)?;
            let columns: Vec<String> = serde_json::from_str(&columns)?;
            let t = Table {
                sql: SqlCache::default(),
                id: r.get(0)?,
                affinity: affinities(conn, &name, &columns)?,
                name: name.clone(),
                columns,
                pk: serde_json::from_str(&pk)?,
                strategy: Strategy::parse(&strategy).unwrap_or(Strategy::TimestampWins),
            };
            by_name.insert(name, Arc::new(t));
        }
        Ok(Tables { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Table>> {
        self.by_name.get(name)
    }

    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.by_name.keys().map(|s| s.as_str()).collect();
        v.sort();
        v
    }
}
