//! Received changes whose effect waits here (`sync_schema_waiting`): for this database's
//! schema, or for a change they are based on.
//!
//! A change naming a table or a column that is not tracked here is verified and logged like
//! any other (its origin's chain, the vector and the heads move on, so the origin's later
//! changes flow), but not merged; a later change to the same record waits behind it, so each
//! record still takes its changes in log order. Other records and tables go on. Once the local
//! schema has the names (`sync_track`, or tracked tables following an `ALTER TABLE` by
//! themselves), the waiting changes are merged in log order, as if just received.
//!
//! A change based on a change not held here yet (its origin's changes are held back here: no
//! key for it yet, a clock far ahead, over its quota), or held but waiting itself, is logged
//! and waits the same way (`base_missing`), so its own origin's later changes flow; only the
//! changes based on it wait with it. It is merged once what it is based on is. A base of a
//! device revoked here is never waited for (it never comes): the change merges without it.
use super::prepare::parse;
use crate::capture::track as capture;
use crate::capture::{pause_capture, resume_capture};
use crate::db::tx;
use crate::error::Result;
use crate::merge::conflicts::Summary;
use crate::merge::merger::{Merger, Record};
use crate::model::change::{Change, Op};
use crate::model::table::{Table, Tables};
use crate::store::log::{entry, head, ENTRY_COLUMNS};
use crate::trust::devices::device_key;
use crate::wire::{parse_reference, shown};
use rusqlite::{params, Connection};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// The table is not tracked here (not created yet, dropped, or not tracked).
pub const UNKNOWN_TABLE: &str = "unknown_table";
/// The table is tracked, but not some of the columns the change names.
pub const UNKNOWN_COLUMN: &str = "unknown_column";
/// An earlier change to the same record waits: this one waits behind it.
pub const BEHIND: &str = "behind";
/// A change it is based on is not held here, or waits itself: it waits for it.
pub const BASE_MISSING: &str = "base_missing";
/// The schema has the names now, but the change does not fit it (its record id is not a key
/// of the table as declared here, a value its column would convert): it waits for a person.
pub const INVALID: &str = "invalid";

/// Why a change waits: reason, the detail for people, the columns it lacks.
pub struct Why {
    pub reason: &'static str,
    pub detail: String,
    pub missing: Vec<String>,
}

impl Why {
    pub fn unknown_table(table: &str) -> Why {
        Why {
            reason: UNKNOWN_TABLE,
            detail: format!(
                "table \"{}\" is not tracked here: the change waits until the table exists here and `sync_track` tracks it",
                shown(table)
            ),
            missing: Vec::new(),
        }
    }

    pub fn unknown_column(t: &Table, missing: &[String]) -> Why {
        let names = missing.iter().map(|c| format!("\"{}\"", shown(c))).collect::<Vec<_>>().join(", ");
        Why {
            reason: UNKNOWN_COLUMN,
            detail: format!(
                "table \"{}\" has no column {names} here: the change waits until the column is added (ALTER TABLE … ADD COLUMN; tracked tables follow by themselves)",
                shown(&t.name)
            ),
            missing: missing.to_vec(),
        }
    }

    /// Waits for the changes `refs` (`device:version`) it is based on.
    pub fn base_missing(refs: Vec<String>) -> Why {
        Why {
            reason: BASE_MISSING,
            detail: format!(
                "it is based on {} not merged here yet: it waits for {}; the other changes of its origin go on",
                refs.join(", "),
                if refs.len() == 1 { "it" } else { "them" }
            ),
            missing: refs,
        }
    }

    pub fn behind(first: i64) -> Why {
        Why {
            reason: BEHIND,
            detail: format!(
                "an earlier change to this record (log id {first}) waits for the schema: this one waits behind it"
            ),
            missing: Vec::new(),
        }
    }
}

/// Records that the change logged as `log_id` waits, for `why`.
pub fn hold(conn: &Connection, log_id: i64, table: &str, rid: &str, why: &Why) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO sync_schema_waiting(log_id, table_name, record_id, reason, detail, missing) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![log_id, table, rid, why.reason, why.detail, serde_json::to_string(&why.missing)?])?;
    Ok(())
}

/// The records that have a change waiting, and the first such change of each: their later
/// changes wait behind it. Empty (one lookup) when nothing waits.
pub fn records(conn: &Connection) -> Result<HashMap<(String, String), i64>> {
    let mut out = HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT table_name, record_id, min(log_id) FROM sync_schema_waiting WHERE reason != ?1 GROUP BY 1, 2",
    )?;
    let mut rows = stmt.query([BASE_MISSING])?;
    while let Some(r) = rows.next()? {
        out.insert((r.get(0)?, r.get(1)?), r.get(2)?);
    }
    Ok(out)
}

/// The changes (origin, version) logged here whose effect waits: a change based on one waits too.
pub fn unmerged(conn: &Connection) -> Result<HashSet<(String, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT l.device_id, l.version FROM sync_schema_waiting w JOIN sync_log l ON l.id = w.log_id",
    )?;
    let v = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// The bases of `ch` (`device:version`) not merged here: not held (`heads`, the versions held
/// per origin, filled as needed), or held and waiting (`unmerged`). A base of a device revoked
/// here is never missing: it will never be held, and the change merges without it.
pub fn missing_bases(
    conn: &Connection,
    heads: &mut HashMap<String, (i64, String)>,
    unmerged: &HashSet<(String, i64)>,
    ch: &Change,
) -> Result<Vec<String>> {
    let refs = ch
        .live
        .iter()
        .chain(ch.writes.iter().flat_map(|w| w.base.iter()))
        .chain(ch.seen.iter().flatten().filter_map(|(_, r)| r.as_ref()));
    let mut out: Vec<String> = Vec::new();
    for r in refs {
        let Some((dev, version)) = parse_reference(r) else { continue };
        if !heads.contains_key(dev) {
            heads.insert(dev.to_string(), head(conn, dev)?);
        }
        let absent = version > heads[dev].0 && !matches!(device_key(conn, dev)?, Some((_, false)));
        if (absent || (!unmerged.is_empty() && unmerged.contains(&(dev.to_string(), version)))) && !out.contains(r) {
            out.push(r.clone());
        }
    }
    Ok(out)
}

/// Why change `ch` of table `t` waits, if it names columns `t` does not track here.
pub fn unknown_columns(t: &Table, ch: &Change) -> Option<Why> {
    (!ch.unknown.is_empty()).then(|| Why::unknown_column(t, &ch.unknown))
}

/// Whether merging what waits could move anything: some waiting change names a table that is
/// tracked now, or columns that all are, or is based on changes all merged here now. A few
/// rows read, one per table and set of columns or bases.
fn ready(conn: &Connection, tables: &Tables) -> Result<bool> {
    let unmerged = unmerged(conn)?;
    let mut stmt = conn.prepare_cached("SELECT DISTINCT missing FROM sync_schema_waiting WHERE reason = ?1")?;
    let mut rows = stmt.query([BASE_MISSING])?;
    while let Some(r) = rows.next()? {
        let refs: Vec<String> = serde_json::from_str(&r.get::<_, String>(0)?).unwrap_or_default();
        let mut merged = true;
        for r in &refs {
            let Some((dev, version)) = parse_reference(r) else { continue };
            let held = head(conn, dev)?.0 >= version || matches!(device_key(conn, dev)?, Some((_, false)));
            merged &= held && !unmerged.contains(&(dev.to_string(), version));
        }
        if merged {
            return Ok(true);
        }
    }
    drop(rows);
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT table_name, reason, missing FROM sync_schema_waiting WHERE reason IN (?1, ?2)",
    )?;
    let mut rows = stmt.query(params![UNKNOWN_TABLE, UNKNOWN_COLUMN])?;
    while let Some(r) = rows.next()? {
        let (table, reason, missing): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let Some(t) = tables.get(&table) else { continue };
        if reason == UNKNOWN_TABLE {
            return Ok(true);
        }
        let missing: Vec<String> = serde_json::from_str(&missing).unwrap_or_default();
        if missing.iter().all(|c| t.column_index(c).is_some()) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// What [`replay`] merged.
#[derive(Default)]
pub struct Replayed {
    pub merged: i64,
    pub conflicts: Vec<Summary>,
    pub resolutions: i64,
}

/// Merges, in log order, the waiting changes the schema now has names for (`tables`, loaded in
/// the current write transaction), as if just received: conflicts are found and recorded as
/// usual. A change whose record has an earlier change still waiting stays behind it. Does
/// nothing when nothing waiting could move.
pub fn replay(conn: &Connection, tables: &Tables) -> Result<Replayed> {
    if !ready(conn, tables)? {
        return Ok(Replayed::default());
    }
    let rows: Vec<(i64, String, String, String)> = conn
        .prepare("SELECT log_id, table_name, record_id, reason FROM sync_schema_waiting ORDER BY log_id")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut ids: Vec<i64> = rows.iter().filter_map(|r| tables.get(&r.1).map(|t| t.id)).collect();
    ids.sort_unstable();
    ids.dedup();
    let restore = pause_capture(conn, &ids, rows.len())?;
    let mut m = Merger::new(conn)?;
    // Records whose earliest waiting change still waits, and that change.
    let mut blocked: HashMap<(String, String), i64> = HashMap::new();
    let mut merged = 0;
    let mut read = conn.prepare(&format!("SELECT {ENTRY_COLUMNS} FROM sync_log WHERE id = ?1"))?;
    let (mut unmerged, mut heads) = (unmerged(conn)?, HashMap::new());
    for (id, table, rid, reason) in rows {
        let k = (table.clone(), rid.clone());
        if let Some(&first) = blocked.get(&k) {
            if reason != BEHIND {
                note(conn, id, &Why::behind(first))?;
            }
            continue;
        }
        blocked.insert(k.clone(), id);
        let e = read.query_row([id], entry)?;
        let Some(t) = tables.get(&table) else {
            if reason != UNKNOWN_TABLE {
                note(conn, id, &Why::unknown_table(&table))?;
            }
            continue;
        };
        let Some(op) = Op::parse(&e.operation) else { continue };
        let (key, ch) = match parse(t, op, &e) {
            Ok(p) => p,
            Err(err) => {
                let why = Why { reason: INVALID, detail: err.to_string(), missing: Vec::new() };
                note(conn, id, &why)?;
                continue;
            }
        };
        if let Some(why) = unknown_columns(t, &ch) {
            note(conn, id, &why)?;
            continue;
        }
        blocked.remove(&k);
        let missing = missing_bases(conn, &mut heads, &unmerged, &ch)?;
        if !missing.is_empty() {
            // Waits for its bases; the record's other changes go on (those based on it wait).
            note(conn, id, &Why::base_missing(missing))?;
            continue;
        }
        unmerged.remove(&(e.device_id.to_string(), e.version));
        let rec = Record { t, rid: &e.record_id, key, strategy: t.strategy };
        m.merge_remote(&rec, &ch, id, &e.change_data)?;
        conn.prepare_cached("DELETE FROM sync_schema_waiting WHERE log_id = ?1")?.execute([id])?;
        merged += 1;
    }
    m.local.finish(conn, &mut m.writers)?;
    resume_capture(conn, restore)?;
    Ok(Replayed { merged, conflicts: m.conflicts, resolutions: m.resolutions })
}

/// Changes the reason a waiting change waits (its first wait's time stays).
fn note(conn: &Connection, id: i64, why: &Why) -> Result<()> {
    conn.prepare_cached("UPDATE sync_schema_waiting SET reason = ?2, detail = ?3, missing = ?4 WHERE log_id = ?1")?
        .execute(params![id, why.reason, why.detail, serde_json::to_string(&why.missing)?])?;
    Ok(())
}

/// `sync_track`: tracks the table (see `capture/track.rs`), then merges what waited for it, in
/// one transaction.
pub fn track(conn: &Connection, name: &str, strategy: Option<&str>) -> Result<i64> {
    tx::write(conn, |conn| {
        let logged = capture::track(conn, name, strategy)?;
        replay(conn, &Tables::load(conn)?)?;
        Ok(logged)
    })
}

/// What waits for the schema, by table and reason, as `sync_status` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Waiting {
    pub table: String,
    pub reason: String,
    pub changes: i64,
    /// When the oldest of them began to wait.
    pub since: String,
    /// What the oldest of them waits for, for people.
    pub detail: String,
}

pub fn list(conn: &Connection) -> Result<Vec<Waiting>> {
    let mut stmt = conn.prepare_cached(
        "SELECT table_name, reason, count(*), min(since),
           (SELECT detail FROM sync_schema_waiting w2 WHERE w2.table_name = w.table_name AND w2.reason = w.reason ORDER BY log_id LIMIT 1)
         FROM sync_schema_waiting w GROUP BY table_name, reason ORDER BY table_name, reason",
    )?;
    let v = stmt
        .query_map([], |r| {
            Ok(Waiting { table: r.get(0)?, reason: r.get(1)?, changes: r.get(2)?, since: r.get(3)?, detail: r.get(4)? })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}
