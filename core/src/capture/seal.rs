//! Sealing: turns what the triggers captured into this device's versioned, hashed changes.
//!
//! Unsealed rows are always the tail of `sync_log` (anything that appends sealed rows seals
//! first, inside the same write transaction). Sealing walks them in order and, using the
//! stage tables' exact values and the current slot state, fills in `record_id` (canonical),
//! `change_data`, `bases`, `version`, `timestamp` (hybrid logical clock) and `hash` in place.
//! Rows that change nothing are dropped: an UPDATE that rewrote the same values, a DELETE of a
//! record already deleted, a possible REPLACE removal whose row still exists.
use super::stage::stage_table;
use crate::db::hot::Hot;
use crate::db::schema::has_table;
use crate::db::{read_values, tx};
use crate::error::Result;
use crate::model::change::{Change, ColWrite, Op};
use crate::model::table::{Table, Tables};
use crate::store::format::catch_up;
use crate::store::local::LocalLog;
use crate::store::log::{last_id, sealed_upto, Writers};
use crate::store::rows;
use crate::store::slots::Slots;
use crate::wire::{name, parse_literals, record_id, Value};
use rusqlite::{params, Connection};
use std::collections::HashMap;
use std::sync::Arc;

const CHUNK: i64 = 2000;

/// Seals every unsealed row; returns how many changes it sealed. (`follow::seal` is the seal
/// everything else calls: this, after tracked tables have followed any schema change.)
pub fn seal_captured(conn: &Connection) -> Result<i64> {
    catch_up(conn)?;
    if last_id(conn)? <= sealed_upto(conn)? {
        return Ok(0);
    }
    conn.set_prepared_statement_cache_capacity(64);
    let _cache = tx::BiggerCache::new(conn);
    tx::write(conn, |conn| {
        // Read again under the write lock: another connection may have sealed meanwhile.
        let (upto, last) = (sealed_upto(conn)?, last_id(conn)?);
        if last <= upto {
            return Ok(0);
        }
        let tables = Tables::load(conn)?;
        let mut local = LocalLog::open(conn)?;
        let mut hot = Hot::new(conn);
        let mut writers = Writers::default();
        let mut sealed = 0;
        let mut from = upto;
        loop {
            let rows: Vec<Captured> = conn
                .prepare_cached(
                    "SELECT id, table_name, record_id, operation, timestamp FROM sync_log WHERE id > ?1 AND id <= ?2 AND hash IS NULL ORDER BY id LIMIT ?3",
                )?
                .query_map(params![from, last, CHUNK], |r| {
                    // Table names and operations repeat: shared, not copied for every row.
                    let text = |i: usize| r.get_ref(i)?.as_str().map_err(rusqlite::Error::from);
                    let op = name(text(3)?);
                    // Only a DELETE or a REPLACE row is sealed from its record id.
                    let rid = match &*op {
                        "DELETE" | "REPLACE" => r.get(2)?,
                        _ => None,
                    };
                    Ok(Captured { id: r.get(0)?, table: name(text(1)?), rid, op, wall: r.get(4)? })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let Some(end) = rows.last().map(|r| r.id) else { break };
            let mut staged: HashMap<i64, (Vec<Value>, Vec<Value>)> = HashMap::new();
            let mut names: Vec<&str> = rows.iter().map(|r| &*r.table).collect();
            names.sort_unstable();
            names.dedup();
            for n in names {
                if let Some(t) = tables.get(n) {
                    load_stage(conn, t, from, end, &mut staged)?;
                }
            }
            for Captured { id, table, rid, op, wall } in rows {
                let done = match tables.get(&table) {
                    Some(t) => {
                        let stage = staged.remove(&id);
                        seal_row(conn, &mut hot, &mut local, &mut writers, t, id, rid.as_deref(), &op, wall, stage)?
                    }
                    None => false,
                };
                if done {
                    sealed += 1;
                } else {
                    conn.prepare_cached("DELETE FROM sync_log WHERE id = ?1")?.execute([id])?;
                }
            }
            from = end;
        }
        for t in tables.names() {
            let t = tables.get(t).unwrap();
            conn.prepare_cached(&format!("DELETE FROM {} WHERE log_id <= ?1", stage_table(t.id)))?.execute([last])?;
        }
        local.finish(conn, &mut writers)?;
        Ok(sealed)
    })
}

/// A log row as a capture trigger wrote it, before sealing: its table, the record id (for
/// DELETE and REPLACE rows), the operation and the wall clock the trigger read.
struct Captured {
    id: i64,
    table: Arc<str>,
    rid: Option<String>,
    op: Arc<str>,
    wall: Option<i64>,
}

/// Loads the stage rows of `t` for log ids in (from, end].
fn load_stage(
    conn: &Connection,
    t: &Table,
    from: i64,
    end: i64,
    out: &mut HashMap<i64, (Vec<Value>, Vec<Value>)>,
) -> Result<()> {
    let n = t.columns.len();
    let sql =
        t.sql.stage.get_or_init(|| format!("SELECT * FROM {} WHERE log_id > ?1 AND log_id <= ?2", stage_table(t.id)));
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params![from, end])?;
    while let Some(r) = rows.next()? {
        let (new, old) = (read_values(r, 1, n)?, read_values(r, 1 + n, n)?);
        out.insert(r.get(0)?, (new, old));
    }
    Ok(())
}

/// Seals one captured row; false when it changes nothing and is to be dropped.
#[allow(clippy::too_many_arguments)]
fn seal_row(
    conn: &Connection,
    hot: &mut Hot<'_>,
    local: &mut LocalLog,
    writers: &mut Writers,
    t: &Table,
    id: i64,
    rid: Option<&str>,
    op: &str,
    wall: Option<i64>,
    stage: Option<(Vec<Value>, Vec<Value>)>,
) -> Result<bool> {
    let key_of = |vals: &[Value]| t.pk.iter().map(|&i| vals[i].clone()).collect::<Vec<_>>();
    let (rid, change, mut slots) = match op {
        "INSERT" | "UPDATE" => {
            let Some((new, old)) = stage else { return Ok(false) };
            let key = key_of(if op == "INSERT" { &new } else { &old });
            if op == "UPDATE" && !key.iter().zip(key_of(&new)).all(|(a, b)| a.sql_is(&b)) {
                return Ok(false); // a key change: the trigger also logged it as DELETE + INSERT
            }
            if key.iter().any(Value::is_null) {
                return Ok(false); // a NULL key identifies no row (see README, Limits)
            }
            let rid = record_id(&key);
            let claimed = match op {
                "INSERT" => Slots::claim_new(hot, t, &rid, &Slots::inserted(t, id, 0..t.columns.len()))?,
                _ => None,
            };
            let slots = match claimed {
                Some(s) => s,
                None => Slots::load(hot, t, &rid)?,
            };
            let change = if op == "INSERT" || !slots.alive {
                // An UPDATE of a row sync has not seen alive is sent as the whole row.
                insert_change(hot, writers, &slots, new)?
            } else {
                let mut writes = Vec::new();
                for (i, v) in new.into_iter().enumerate() {
                    if !t.is_pk(i) && v != old[i] {
                        writes.push(ColWrite { col: i, value: v, base: base(hot, writers, slots.cols[i])? });
                    }
                }
                if writes.is_empty() {
                    return Ok(false);
                }
                Change {
                    op: Op::Update,
                    writes,
                    live: base(hot, writers, slots.live)?,
                    seen: None,
                    unknown: Vec::new(),
                }
            };
            (rid, change, slots)
        }
        "DELETE" | "REPLACE" => {
            let key = parse_literals(rid.unwrap_or_default())?;
            if key.len() != t.pk.len() || key.iter().any(Value::is_null) {
                return Ok(false);
            }
            let rid = record_id(&key);
            let slots = Slots::load(hot, t, &rid)?;
            if !slots.alive || (op == "REPLACE" && (!has_table(conn, &t.name)? || rows::exists(conn, t, &key)?)) {
                // (A table dropped since the write took its rows with it, and is not a delete.)
                return Ok(false);
            }
            let change = delete_change(hot, writers, t, &slots)?;
            (rid, change, slots)
        }
        _ => return Ok(false),
    };
    local.log(hot, writers, t, &rid, &mut slots, &change, false, wall, Some(id))?;
    Ok(true)
}

fn base(hot: &mut Hot<'_>, writers: &mut Writers, w: Option<i64>) -> Result<Vec<String>> {
    Ok(writers.reference(hot, w)?.into_iter().collect())
}

fn insert_change(hot: &mut Hot<'_>, writers: &mut Writers, slots: &Slots, values: Vec<Value>) -> Result<Change> {
    let mut writes = Vec::with_capacity(values.len());
    for (i, v) in values.into_iter().enumerate() {
        writes.push(ColWrite { col: i, value: v, base: base(hot, writers, slots.cols[i])? });
    }
    Ok(Change { op: Op::Insert, writes, live: base(hot, writers, slots.live)?, seen: None, unknown: Vec::new() })
}

fn delete_change(hot: &mut Hot<'_>, writers: &mut Writers, t: &Table, slots: &Slots) -> Result<Change> {
    let mut seen = Vec::with_capacity(t.columns.len());
    for (i, w) in slots.cols.iter().enumerate() {
        seen.push((i, writers.reference(hot, *w)?));
    }
    Ok(Change {
        op: Op::Delete,
        writes: Vec::new(),
        live: base(hot, writers, slots.live)?,
        seen: Some(seen),
        unknown: Vec::new(),
    })
}
