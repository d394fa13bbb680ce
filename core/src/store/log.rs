//! `sync_log`'s rows: reading and writing entries, the writers the merge compares, origin heads
//! (`sync_vector`), the highest log id and the seal watermark.
use super::runs::Pending;
use crate::db::hot::{Arg, Hot};
use crate::db::schema::set_state;
use crate::error::Result;
use crate::wire::{name, reference, Entry, EntryRef};
use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::sync::Arc;

/// The `sync_log` columns [`entry_ref`] reads, in order.
pub const ENTRY_COLUMNS: &str =
    "table_name, record_id, operation, change_data, device_id, version, timestamp, bases, resolution, hash";

/// Reads an entry, borrowed, from a row selected with [`ENTRY_COLUMNS`] first.
pub fn entry_ref<'r>(r: &'r rusqlite::Row<'_>) -> rusqlite::Result<EntryRef<'r>> {
    let text = |i: usize| -> rusqlite::Result<&'r str> {
        use rusqlite::types::{Type, ValueRef};
        match r.get_ref(i)? {
            ValueRef::Text(t) => std::str::from_utf8(t)
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, Type::Text, Box::new(e))),
            other => {
                Err(rusqlite::Error::InvalidColumnType(i, r.as_ref().column_name(i)?.to_string(), other.data_type()))
            }
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

/// Reads an entry from a row selected with [`ENTRY_COLUMNS`] first.
pub fn entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    Ok(entry_ref(r)?.into())
}

/// The statement [`insert`] runs.
const INSERT: &str = "INSERT INTO sync_log(table_name, record_id, operation, change_data, device_id, version, timestamp, hash, bases, resolution, is_synced) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)";

/// The statement [`update`] runs.
const UPDATE: &str = "UPDATE sync_log SET table_name=?1, record_id=?2, operation=?3, change_data=?4, device_id=?5, version=?6, timestamp=?7, hash=?8, bases=?9, resolution=?10 WHERE id=?11";

/// Logs `e` as a new row; `synced` when every authorized peer already holds it. Returns its log id.
pub fn insert(hot: &mut Hot<'_>, e: &Entry, synced: bool) -> Result<i64> {
    Ok(hot.execute(INSERT, args(e, synced.into()))?.1)
}

/// Seals the unsealed log row `id` in place with `e`'s fields.
pub fn update(hot: &mut Hot<'_>, e: &Entry, id: i64) -> Result<()> {
    hot.execute(UPDATE, args(e, id.into()))?;
    Ok(())
}

/// `e`'s fields in [`INSERT`]'s and [`UPDATE`]'s order, then `last`.
fn args<'a>(e: &'a Entry, last: Arg<'a>) -> [Arg<'a>; 11] {
    [
        Arg::Text(&e.table_name),
        Arg::Text(&e.record_id),
        Arg::Text(&e.operation),
        Arg::Text(&e.change_data),
        Arg::Text(&e.device_id),
        Arg::Int(e.version),
        Arg::Int(e.timestamp),
        Arg::Text(&e.hash),
        Arg::Text(&e.bases),
        Arg::from(e.resolution),
        last,
    ]
}

/// The highest log id (0 for an empty log).
pub fn last_id(conn: &Connection) -> Result<i64> {
    Ok(conn.prepare_cached("SELECT ifnull(max(id), 0) FROM sync_log")?.query_row([], |r| r.get(0))?)
}

/// The last log row: its id (0 when the log is empty) and whether it is still unsealed (a
/// write captured by a trigger that no seal has turned into a change yet).
pub fn tail(conn: &Connection) -> Result<(i64, bool)> {
    Ok(conn
        .prepare_cached("SELECT id, version IS NULL FROM sync_log ORDER BY id DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, false)))
}

/// How far the log is sealed: every row up to this id is (rows after it are new captures).
pub fn sealed_upto(conn: &Connection) -> Result<i64> {
    Ok(crate::db::schema::get_state(conn, "sealed_upto")?.unwrap_or(0))
}

/// Records that every row now in the log is sealed; the end of every write transaction that
/// seals, applies or resolves. (A seal that dropped rows at the tail gave their ids back to
/// SQLite, whose next rowid is max + 1: so this is the highest id that remains.)
pub fn mark_sealed(conn: &Connection) -> Result<()> {
    set_state(conn, "sealed_upto", &last_id(conn)?)
}

/// The operation (`INSERT`, `UPDATE`, `DELETE`) of log row `id`, if the log holds it.
pub fn operation(conn: &Connection, id: i64) -> Result<Option<String>> {
    Ok(conn.query_row("SELECT operation FROM sync_log WHERE id = ?1", [id], |r| r.get(0)).optional()?)
}

/// A writer's place in the winner rule's order; see [`Writer::order`].
pub type Order = (i64, Arc<str>, i64);

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
        reference(&self.device_id, self.version)
    }

    /// Its place in the winner rule's order: (timestamp, device id), then version, so that two
    /// distinct changes never tie, not even two of one origin with one timestamp (a restored
    /// copy, or a hostile origin), and every device picks the same winner.
    pub fn order(&self) -> Order {
        (self.timestamp, self.device_id.clone(), self.version)
    }
}

/// What one write transaction knows of the log: writers by log id (cached), and where the
/// changes it logs sit ([`Pending`], written by [`Writers::flush`]).
#[derive(Default)]
pub struct Writers {
    /// Writers of consecutive log ids from `first`: the rows one batch logs, kept without
    /// hashing.
    run: Vec<Writer>,
    first: i64,
    by_id: HashMap<i64, Writer>,
    pending: Pending,
}

impl Writers {
    pub fn get(&mut self, conn: &Connection, id: i64) -> Result<Writer> {
        if let Some(w) = self.cached(id) {
            return Ok(w.clone());
        }
        let w = conn.prepare_cached(Self::WRITER)?.query_row([id], |r| {
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

    /// The statement that reads a writer from its log row.
    const WRITER: &'static str = "SELECT device_id, version, timestamp, resolution FROM sync_log WHERE id = ?1";

    /// The statement that reads the writers of the sealed log rows with ids in [?1, ?2).
    const WRITERS: &'static str = "SELECT id, device_id, version, timestamp, resolution FROM sync_log WHERE id >= ?1 AND id < ?2 AND version IS NOT NULL";

    /// How many log rows [`Writers::get_hot`] reads at once when writers are asked for in log
    /// order.
    const READ_AHEAD: i64 = 64;

    /// [`Writers::get`] through `hot`'s statements, for loops over many changes. When the
    /// writer just before `id` is known already, the writers are likely asked for in log order
    /// (a seal of updates to records logged together): it reads the next [`Self::READ_AHEAD`]
    /// sealed rows in one statement. (Sealed rows do not change within a transaction.)
    fn get_hot(&mut self, hot: &mut Hot<'_>, id: i64) -> Result<Writer> {
        if let Some(w) = self.cached(id) {
            return Ok(w.clone());
        }
        let end = match id.checked_sub(1).and_then(|before| self.cached(before)) {
            Some(_) => id.saturating_add(Self::READ_AHEAD),
            None => id.saturating_add(1),
        };
        let by_id = &mut self.by_id;
        hot.query_each(Self::WRITERS, [Arg::Int(id), Arg::Int(end)], |r| {
            let (at, device, version, timestamp) = (r.int(0)?, r.text(1)?, r.int(2)?, r.int(3)?);
            let null = |i: usize, what: &str| rusqlite::Error::InvalidColumnType(i, what.into(), Type::Null);
            let w = Writer {
                device_id: name(device),
                version: version.ok_or_else(|| null(2, "version"))?,
                timestamp: timestamp.ok_or_else(|| null(3, "timestamp"))?,
                resolution: r.int(4)?.unwrap_or(0) != 0,
            };
            by_id.entry(at.ok_or_else(|| null(0, "id"))?).or_insert(w);
            Ok(())
        })?;
        Ok(self.cached(id).ok_or(rusqlite::Error::QueryReturnedNoRows)?.clone())
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
            None => super::runs::id_of(conn, device, version),
        }
    }

    /// Stores where the changes logged in this transaction sit (before it commits).
    pub fn flush(&mut self, conn: &Connection) -> Result<()> {
        self.pending.flush(conn)
    }

    /// The reference (`device:version`) of the change logged at `id`, if any.
    pub fn reference(&mut self, hot: &mut Hot<'_>, id: Option<i64>) -> Result<Option<String>> {
        Ok(match id {
            None => None,
            Some(id) => Some(self.get_hot(hot, id)?.reference()),
        })
    }
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

/// Every origin's head held here: (device id, highest contiguous version, its hash).
pub fn heads(conn: &Connection) -> Result<Vec<(String, i64, String)>> {
    let mut stmt = conn.prepare_cached("SELECT device_id, version, hash FROM sync_vector")?;
    let v = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<_>>()?;
    Ok(v)
}
