//! Reading and writing `sync_log` entries, writer references (`device:version`) and origin heads.
use crate::error::Result;
use crate::hash::HashInput;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::sync::Arc;

/// An [`Entry`] borrowed from its `sync_log` row: it serializes as the entry does, without
/// copying the row's text.
#[derive(serde::Serialize)]
pub struct EntryRef<'r> {
    pub table_name: &'r str,
    pub record_id: &'r str,
    pub operation: &'r str,
    pub change_data: &'r str,
    pub device_id: &'r str,
    pub version: i64,
    pub timestamp: i64,
    pub bases: &'r str,
    pub resolution: bool,
    pub hash: &'r str,
}

impl<'r> EntryRef<'r> {
    /// Reads an entry from a row selected with [`Entry::COLUMNS`] first.
    pub fn from_row(r: &'r rusqlite::Row<'_>) -> rusqlite::Result<EntryRef<'r>> {
        let text = |i: usize| -> rusqlite::Result<&'r str> {
            use rusqlite::types::{Type, ValueRef};
            match r.get_ref(i)? {
                ValueRef::Text(t) => std::str::from_utf8(t)
                    .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, Type::Text, Box::new(e))),
                other => Err(rusqlite::Error::InvalidColumnType(
                    i,
                    r.as_ref().column_name(i)?.to_string(),
                    other.data_type(),
                )),
            }
        };
        Ok(EntryRef {
            table_name: text(0)?,
            record_id: text(1)?,
            operation: text(2)?,
            change_data: text(3)?,
            device_id: text(4)?,
            version: r.get(5)?,
            timestamp: r.get(6)?,
            bases: text(7)?,
            resolution: r.get(8)?,
            hash: text(9)?,
        })
    }
}

/// A sealed change, as logged and as sent to peers (the wire form of a change).
///
/// Its table name, operation and device id are shared ([`name`]): a batch's thousands of
/// entries hold a few distinct ones.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    #[serde(deserialize_with = "shared_name")]
    pub table_name: Arc<str>,
    pub record_id: String,
    #[serde(deserialize_with = "shared_name")]
    pub operation: Arc<str>,
    pub change_data: String,
    #[serde(deserialize_with = "shared_name")]
    pub device_id: Arc<str>,
    pub version: i64,
    pub timestamp: i64,
    pub bases: String,
    pub resolution: bool,
    pub hash: String,
}

impl Entry {
    /// The `sync_log` columns [`Entry::from_row`] reads, in order.
    pub const COLUMNS: &'static str =
        "table_name, record_id, operation, change_data, device_id, version, timestamp, bases, resolution, hash";

    /// Reads an entry from a row selected with [`Entry::COLUMNS`] first.
    pub fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
        let e = EntryRef::from_row(r)?;
        Ok(Entry {
            table_name: name(e.table_name),
            record_id: e.record_id.to_string(),
            operation: name(e.operation),
            change_data: e.change_data.to_string(),
            device_id: name(e.device_id),
            version: e.version,
            timestamp: e.timestamp,
            bases: e.bases.to_string(),
            resolution: e.resolution,
            hash: e.hash.to_string(),
        })
    }

    pub fn compute_hash(&self, prev_hash: &str) -> String {
        HashInput {
            table_name: &self.table_name,
            record_id: &self.record_id,
            operation: &self.operation,
            change_data: &self.change_data,
            device_id: &self.device_id,
            version: self.version,
            timestamp: self.timestamp,
            bases: &self.bases,
            resolution: self.resolution,
            prev_hash,
        }
        .hash()
    }

    /// `device:version`, how bases name a change.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.device_id, self.version)
    }

    /// The statement [`Entry::update`] runs.
    const UPDATE: &'static str = "UPDATE sync_log SET table_name=?1, record_id=?2, operation=?3, change_data=?4, device_id=?5, version=?6, timestamp=?7, hash=?8, bases=?9, resolution=?10 WHERE id=?11";

    /// The statement [`Entry::insert`] runs.
    const INSERT: &'static str = "INSERT INTO sync_log(table_name, record_id, operation, change_data, device_id, version, timestamp, hash, bases, resolution, is_synced) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)";

    /// Logs this entry as a new row ([`Entry::INSERT`]); `synced` when every authorized peer
    /// already holds it. Returns its log id.
    pub fn insert(&self, hot: &mut crate::hot::Hot<'_>, synced: bool) -> Result<i64> {
        Ok(hot.execute(Self::INSERT, self.args(synced.into()))?.1)
    }

    /// The entry's fields in [`Entry::INSERT`]'s and [`Entry::UPDATE`]'s order, then `last`.
    fn args<'a>(&'a self, last: crate::hot::Arg<'a>) -> [crate::hot::Arg<'a>; 11] {
        use crate::hot::Arg;
        [
            Arg::Text(&self.table_name),
            Arg::Text(&self.record_id),
            Arg::Text(&self.operation),
            Arg::Text(&self.change_data),
            Arg::Text(&self.device_id),
            Arg::Int(self.version),
            Arg::Int(self.timestamp),
            Arg::Text(&self.hash),
            Arg::Text(&self.bases),
            Arg::from(self.resolution),
            last,
        ]
    }

    /// Seals the unsealed log row `id` in place with this entry's fields.
    pub fn update(&self, hot: &mut crate::hot::Hot<'_>, id: i64) -> Result<()> {
        hot.execute(Self::UPDATE, self.args(id.into()))?;
        Ok(())
    }
}

thread_local! {
    /// The names [`name`] handed out last on this thread.
    static NAMES: std::cell::RefCell<Vec<Arc<str>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `s` as a shared string, the same allocation as for the last equal names on this thread:
/// table names, operations and device ids repeat across a batch's entries.
pub fn name(s: &str) -> Arc<str> {
    const KEEP: usize = 16;
    NAMES.with(|names| {
        let mut names = names.borrow_mut();
        if let Some(n) = names.iter().find(|n| ***n == *s) {
            return n.clone();
        }
        let n: Arc<str> = s.into();
        if names.len() == KEEP {
            names.remove(0);
        }
        names.push(n.clone());
        n
    })
}

/// Deserializes a string with [`name`] (serde's error for a non-string is the same as for a
/// `String` field).
fn shared_name<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Arc<str>, D::Error> {
    struct Name;
    impl serde::de::Visitor<'_> for Name {
        type Value = Arc<str>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> std::result::Result<Arc<str>, E> {
            Ok(name(s))
        }
    }
    d.deserialize_str(Name)
}

/// What the merge needs to know about a slot's writer.
#[derive(Debug, Clone)]
pub struct Writer {
    /// Shared: writers are cloned for every slot the merge compares.
    pub device_id: Arc<str>,
    pub version: i64,
    pub timestamp: i64,
    pub resolution: bool,
}

impl Writer {
    pub fn reference(&self) -> String {
        format!("{}:{}", self.device_id, self.version)
    }
    /// The winner rule's order: (timestamp, device id).
    pub fn order_key(&self) -> (i64, &str) {
        (self.timestamp, &self.device_id)
    }
}

/// What one write transaction knows of the log: writers by log id (cached), and where the
/// changes it logs sit ([`crate::runs::Pending`], written by [`Writers::flush`]).
#[derive(Default)]
pub struct Writers {
    /// Writers of consecutive log ids from `first`: the rows one batch logs, kept without
    /// hashing.
    run: Vec<Writer>,
    first: i64,
    by_id: HashMap<i64, Writer>,
    pending: crate::runs::Pending,
}

impl Writers {
    pub fn get(&mut self, conn: &Connection, id: i64) -> Result<Writer> {
        if let Some(w) = self.cached(id) {
            return Ok(w.clone());
        }
        let w = conn
            .prepare_cached("SELECT device_id, version, timestamp, resolution FROM sync_log WHERE id = ?1")?
            .query_row([id], |r| {
                Ok(Writer {
                    device_id: r.get::<_, String>(0)?.into(),
                    version: r.get(1)?,
                    timestamp: r.get(2)?,
                    resolution: r.get(3)?,
                })
            })?;
        self.by_id.insert(id, w.clone());
        Ok(w)
    }

    fn cached(&self, id: i64) -> Option<&Writer> {
        let k = id.checked_sub(self.first).and_then(|k| usize::try_from(k).ok());
        k.and_then(|k| self.run.get(k)).or_else(|| self.by_id.get(&id))
    }

    /// Notes the change just logged at `id`.
    pub fn logged(&mut self, id: i64, w: Writer) {
        self.pending.note(&w.device_id, w.version, id);
        if self.run.is_empty() {
            self.first = id;
        }
        let k = id.checked_sub(self.first).and_then(|k| usize::try_from(k).ok());
        match k {
            Some(k) if k == self.run.len() => self.run.push(w),
            Some(k) if k < self.run.len() => self.run[k] = w,
            _ => _ = self.by_id.insert(id, w),
        }
    }

    /// The log id of change `device:version`, if this database holds it.
    pub fn id_of(&self, conn: &Connection, device: &str, version: i64) -> Result<Option<i64>> {
        match self.pending.id_of(device, version) {
            Some(id) => Ok(Some(id)),
            None => crate::runs::id_of(conn, device, version),
        }
    }

    /// Stores where the changes logged in this transaction sit (before it commits).
    pub fn flush(&mut self, conn: &Connection) -> Result<()> {
        self.pending.flush(conn)
    }

    pub fn reference(&mut self, conn: &Connection, id: Option<i64>) -> Result<Option<String>> {
        Ok(match id {
            None => None,
            Some(id) => Some(self.get(conn, id)?.reference()),
        })
    }
}

/// Splits `device:version`.
pub fn parse_reference(s: &str) -> Option<(&str, i64)> {
    let (d, v) = s.rsplit_once(':')?;
    let v: i64 = v.parse().ok()?;
    (v > 0 && !d.is_empty()).then_some((d, v))
}

/// The highest version held of `device` and its hash (0 and "" when none).
pub fn head(conn: &Connection, device: &str) -> Result<(i64, String)> {
    Ok(conn
        .prepare_cached("SELECT version, hash FROM sync_vector WHERE device_id = ?1")?
        .query_row([device], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, String::new())))
}

pub fn set_head(conn: &Connection, device: &str, version: i64, hash: &str) -> Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO sync_vector(device_id, version, hash) VALUES (?1, ?2, ?3)")?
        .execute(params![device, version, hash])?;
    Ok(())
}
