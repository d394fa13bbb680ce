//! Bounded history (`sync_compact`): removing the changes every trusted device holds and
//! nothing here needs any more, in short transactions, each origin's chain going on from an
//! anchor.
//!
//! An origin's horizon is the least version every other authorized device is known to hold
//! ([`peers::floors`]), below its head. Its chain is anchored at a version up to the horizon
//! that carries the origin's signature (any version for this device's own chain, and in a
//! database without keys); the changes from the old anchor up to the new one leave the log
//! unless something still needs them: a slot's current writer (the merge compares against
//! it), a side of a pending conflict, a change waiting for this database's schema, a settings
//! or trust event, the origin's head, the log's last row. A device with no other authorized device compacts
//! nothing: nobody has acknowledged anything.
use super::peers;
use super::sign;
use crate::db::schema::{get_state, set_state};
use crate::db::tx;
use crate::error::{Error, Result};
use crate::store::anchors::{self, Anchor};
use crate::store::format::device_id;
use crate::store::{log, runs};
use crate::trust::devices::device_key;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::collections::HashSet;

/// At most this many versions of one origin are compacted in one transaction (a few
/// milliseconds of holding the write lock).
pub const STEP: i64 = 2000;

/// What a call of [`compact`] did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Compacted {
    /// Changes removed from the log.
    pub removed: i64,
    /// Changes at or below a new anchor kept because something still needs them.
    pub kept: i64,
    /// Transactions run.
    pub steps: i64,
    /// Whether nothing more can be compacted now (false: `max_steps` ran out first).
    pub done: bool,
    /// Every origin's anchor after the call.
    pub anchors: Vec<AnchorInfo>,
}

/// An origin's anchor, as `sync_compact` and `sync_status` show it.
#[derive(Debug, Clone, Serialize)]
pub struct AnchorInfo {
    pub device_id: String,
    pub version: i64,
    pub hash: String,
    pub signed: bool,
    /// How many of its changes compaction has removed here, in all.
    pub removed: i64,
}

impl From<Anchor> for AnchorInfo {
    fn from(a: Anchor) -> Self {
        AnchorInfo {
            device_id: a.device_id,
            version: a.version,
            hash: a.hash,
            signed: a.signature.is_some(),
            removed: a.removed,
        }
    }
}

/// Every origin's anchor.
pub fn anchors(conn: &Connection) -> Result<Vec<AnchorInfo>> {
    Ok(anchors::all(conn)?.into_iter().map(AnchorInfo::from).collect())
}

/// Compacts what can be, one transaction per [`STEP`], at most `max_steps` of them (all when
/// None). App writes wait at most one step for the write lock; a crash loses at most the
/// step in flight, which leaves the log as it was.
pub fn compact(conn: &Connection, max_steps: Option<i64>) -> Result<Compacted> {
    device_id(conn)?;
    if max_steps.is_some_and(|n| n < 0) {
        return Err(Error::invalid("sync_compact: the number of steps must not be negative"));
    }
    let mut out = Compacted::default();
    loop {
        if max_steps.is_some_and(|n| out.steps >= n) {
            break;
        }
        let stepped = tx::write(conn, step).inspect_err(|e| failed(conn, e));
        match stepped? {
            Some((removed, kept)) => {
                out.removed += removed;
                out.kept += kept;
                out.steps += 1;
            }
            None => {
                out.done = true;
                break;
            }
        }
    }
    if get_state::<String>(conn, FAILED)?.is_some() {
        tx::write(conn, |c| Ok(c.execute("DELETE FROM sync_state WHERE key = ?1", [FAILED])?))?;
    }
    out.anchors = anchors(conn)?;
    Ok(out)
}

/// Where the last failed compaction step is kept (`sync_status().log.compaction_error`) until
/// a compaction succeeds.
const FAILED: &str = "compaction_error";

/// Records that a step failed with `e` (its transaction rolled back), for `sync_status`; best
/// effort: a database that cannot take this small write shows the error to the caller alone.
fn failed(conn: &Connection, e: &Error) {
    let at: std::result::Result<String, _> =
        conn.query_row("SELECT strftime('%Y-%m-%dT%H:%M:%fZ','now')", [], |r| r.get(0));
    let record = serde_json::json!({ "error": e.to_string(), "at": at.unwrap_or_default() }).to_string();
    let _ = tx::write(conn, |c| set_state(c, FAILED, &record));
}

/// The last compaction failure not yet followed by a success: `{"error", "at"}`.
pub fn last_failure(conn: &Connection) -> Result<Option<serde_json::Value>> {
    Ok(get_state::<String>(conn, FAILED)?.and_then(|t| serde_json::from_str(&t).ok()))
}

/// One step: moves the first origin's anchor that can move, at most [`STEP`] versions (or to
/// the next version it signed). Returns (removed, kept), or None when no anchor can move.
fn step(conn: &Connection) -> Result<Option<(i64, i64)>> {
    let me = device_id(conn)?;
    let strict = matches!(device_key(conn, &me)?, Some((Some(_), _)));
    let mut floors: Vec<(String, i64)> = peers::floors(conn)?.into_iter().collect();
    floors.sort();
    for (origin, floor) in floors {
        let old = anchors::get(conn, &origin)?;
        let from = old.as_ref().map_or(0, |a| a.version);
        let head = log::head(conn, &origin)?.0;
        let horizon = floor.min(head);
        if horizon <= from {
            continue;
        }
        let signs = strict && origin != me;
        let Some(to) = target(conn, &origin, from, horizon, signs)? else { continue };
        let Some(hash) = runs::hash_at(conn, &origin, to)? else { continue };
        let signature = if signs { sign::stored(conn, &origin, to)?.map(|s| s.signature) } else { None };
        let (removed, kept) = remove(conn, &origin, from, to, head)?;
        let total = old.map_or(0, |a| a.removed) + removed;
        anchors::set(conn, &Anchor { device_id: origin, version: to, hash, signature, removed: total })?;
        return Ok(Some((removed, kept)));
    }
    Ok(None)
}

/// The version to anchor `origin` at next, after `from` and at most `horizon`: [`STEP`]
/// versions on; where the origin's signature is required, the last version it signed within
/// that, or else the first one it signed beyond it.
fn target(conn: &Connection, origin: &str, from: i64, horizon: i64, signs: bool) -> Result<Option<i64>> {
    let within = horizon.min(from + STEP);
    if !signs {
        return Ok(Some(within));
    }
    let signed = |sql: &str, a: i64, b: i64| -> Result<Option<i64>> {
        Ok(conn.prepare_cached(sql)?.query_row(params![origin, a, b], |r| r.get(0)).optional()?.flatten())
    };
    if let Some(v) = signed(
        "SELECT max(version) FROM sync_signatures WHERE device_id = ?1 AND version > ?2 AND version <= ?3",
        from,
        within,
    )? {
        return Ok(Some(v));
    }
    signed(
        "SELECT min(version) FROM sync_signatures WHERE device_id = ?1 AND version > ?2 AND version <= ?3",
        within,
        horizon,
    )
}

/// Removes `origin`'s changes in `(from, to]` that nothing needs; returns (removed, kept).
/// Its `head` stays in the log: where its chain goes on, and where `sync_runs` ends.
fn remove(conn: &Connection, origin: &str, from: i64, to: i64, head: i64) -> Result<(i64, i64)> {
    let needed_ids = needed(conn)?;
    let last = log::last_id(conn)?;
    let mut kept: Vec<(i64, i64)> = Vec::new();
    let mut removed = 0;
    let mut rows = conn.prepare_cached(
        "SELECT l.id, l.version, l.record_id, t.id, m.live, m.cw, m.cols FROM sync_log l
           LEFT JOIN sync_tables t ON t.name = l.table_name
           LEFT JOIN sync_meta m ON m.tbl = t.id AND m.record_id = l.record_id
         WHERE l.id BETWEEN ?1 AND ?2 ORDER BY l.id",
    )?;
    let mut delete = conn.prepare_cached("DELETE FROM sync_log WHERE id = ?1")?;
    for (lo, hi) in runs::id_ranges(conn, origin, from, to)? {
        let found: Vec<(i64, i64, bool)> = rows
            .query_map(params![lo, hi], |r| {
                let id: i64 = r.get(0)?;
                let tracked: Option<i64> = r.get(3)?;
                let live: Option<i64> = r.get(4)?;
                let cw: Option<i64> = r.get(5)?;
                let cols: Option<String> = r.get(6)?;
                let writes = live == Some(id) || cw == Some(id) || cols.as_deref().is_some_and(|c| names(c, id));
                Ok((id, r.get(1)?, tracked.is_none() || writes))
            })?
            .collect::<rusqlite::Result<_>>()?;
        for (id, version, writes) in found {
            if writes || id == last || version == head || needed_ids.contains(&id) {
                kept.push((version, id));
            } else {
                delete.execute([id])?;
                removed += 1;
            }
        }
    }
    runs::keep_only(conn, origin, from, to, &kept)?;
    Ok((removed, kept.len() as i64))
}

/// Whether slot state `cols` (`{"col": log id, ...}`) names log id `id`.
fn names(cols: &str, id: i64) -> bool {
    if cols.is_empty() {
        return false;
    }
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(cols) {
        Ok(m) => m.values().any(|v| v.as_i64() == Some(id)),
        // Unreadable state: keep the change, to be safe.
        Err(_) => true,
    }
}

/// Log ids something other than slot state needs: the sides of pending conflicts and the
/// changes waiting for this database's schema.
fn needed(conn: &Connection) -> Result<HashSet<i64>> {
    let mut out = HashSet::new();
    let mut stmt = conn.prepare_cached(
        "SELECT local_change FROM sync_conflicts WHERE status = 'pending' AND local_change IS NOT NULL
         UNION SELECT remote_change FROM sync_conflicts WHERE status = 'pending' AND remote_change IS NOT NULL
         UNION SELECT log_id FROM sync_schema_waiting",
    )?;
    for id in stmt.query_map([], |r| r.get::<_, i64>(0))? {
        out.insert(id?);
    }
    Ok(out)
}
