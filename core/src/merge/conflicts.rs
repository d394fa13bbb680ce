//! `sync_conflicts`: recording conflicts, closing them when a resolution arrives, listing them.
use super::rules::{How, Side};
use crate::error::Result;
use crate::model::table::Table;
use crate::store::log::Writers;
use crate::wire::Value;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// A slot of a record: its liveness or one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Live,
    Col(usize),
}

/// What a slot holds: liveness or a column value.
#[derive(Debug, Clone, PartialEq)]
pub enum SlotVal {
    Alive(bool),
    Val(Value),
}

/// One detected conflict between the local writer of a slot and a received write.
#[derive(Debug, Clone)]
pub struct Detected {
    pub slot: Slot,
    pub local: Option<i64>,
    pub remote: i64,
    pub local_val: SlotVal,
    pub remote_val: SlotVal,
    /// How it is settled (`manual`: pending).
    pub how: How,
    /// Which side the winner rule chose, when it settled the conflict.
    pub winner: Option<Side>,
}

/// A conflict as `sync_apply` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub id: i64,
    pub table_name: String,
    pub record_id: String,
    pub kind: String,
    pub columns: Vec<String>,
    pub status: String,
}

/// Writes the detected conflicts of one received change on one record: one row per pair of
/// changes (column conflicts of the same pair share a row; liveness conflicts get their own).
pub fn record(
    conn: &Connection,
    writers: &mut Writers,
    t: &Table,
    rid: &str,
    row_image: &dyn Fn(&mut Writers) -> Result<serde_json::Value>,
    found: &[Detected],
    resolution_ref: Option<&str>,
) -> Result<Vec<Summary>> {
    let mut out = Vec::new();
    let mut done = vec![false; found.len()];
    for i in 0..found.len() {
        if done[i] {
            continue;
        }
        let d = &found[i];
        let same = |a: &Detected, b: &Detected| {
            a.slot != Slot::Live
                && b.slot != Slot::Live
                && a.local == b.local
                && a.remote == b.remote
                && a.how.is_pending() == b.how.is_pending()
        };
        let group: Vec<usize> = (i..found.len()).filter(|&j| j == i || (!done[j] && same(d, &found[j]))).collect();
        for &j in &group {
            done[j] = true;
        }
        let (kind, columns, local_data, remote_data) = if d.slot == Slot::Live {
            let side = |v: &SlotVal, w: &mut Writers| -> Result<serde_json::Value> {
                Ok(match v {
                    SlotVal::Alive(true) => row_image(w)?,
                    _ => serde_json::Value::Null,
                })
            };
            ("delete", Vec::new(), side(&d.local_val, writers)?, side(&d.remote_val, writers)?)
        } else {
            let mut cols = Vec::new();
            let mut l = serde_json::Map::new();
            let mut r = serde_json::Map::new();
            for &j in &group {
                if let Slot::Col(c) = found[j].slot {
                    let name = t.columns[c].clone();
                    l.insert(name.clone(), slot_json(&found[j].local_val));
                    r.insert(name.clone(), slot_json(&found[j].remote_val));
                    cols.push(name);
                }
            }
            ("update", cols, serde_json::Value::Object(l), serde_json::Value::Object(r))
        };
        let lw = match d.local {
            Some(id) => Some(writers.get(conn, id)?),
            None => None,
        };
        let rw = writers.get(conn, d.remote)?;
        let (status, resolution, resolved) = if d.how.is_pending() {
            ("pending", None, false)
        } else {
            let mut m = serde_json::Map::new();
            m.insert("strategy".into(), d.how.as_str().into());
            if let Some(w) = d.winner {
                m.insert("winner".into(), w.as_str().into());
            }
            if let Some(r) = resolution_ref.filter(|_| d.how.by_resolution()) {
                m.insert("change".into(), r.into());
            }
            ("resolved", Some(serde_json::Value::Object(m).to_string()), true)
        };
        conn.prepare_cached(
            "INSERT INTO sync_conflicts(table_name, record_id, local_data, remote_data, local_version, remote_version, local_device_id, remote_device_id, status, resolution, resolved_at, columns, open_columns, kind, local_change, remote_change) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10, CASE WHEN ?11 THEN strftime('%Y-%m-%dT%H:%M:%fZ','now') END, ?12, CASE WHEN ?11 THEN '[]' ELSE ?12 END, ?13, ?14, ?15)",
        )?
        .execute(params![
            t.name,
            rid,
            local_data.to_string(),
            remote_data.to_string(),
            lw.as_ref().map(|w| w.version),
            rw.version,
            lw.as_ref().map(|w| w.device_id.clone()),
            rw.device_id,
            status,
            resolution,
            resolved,
            serde_json::to_string(&columns)?,
            kind,
            d.local,
            d.remote
        ])?;
        out.push(Summary {
            id: conn.last_insert_rowid(),
            table_name: t.name.clone(),
            record_id: rid.to_string(),
            kind: kind.to_string(),
            columns,
            status: status.to_string(),
        });
    }
    Ok(out)
}

/// Records a change that could not be applied because it violates a constraint here.
#[allow(clippy::too_many_arguments)]
pub fn record_constraint(
    conn: &Connection,
    writers: &mut Writers,
    t: &Table,
    rid: &str,
    local_live: Option<i64>,
    local_data: serde_json::Value,
    remote: i64,
    remote_data: &str,
    columns: Vec<String>,
    error: &str,
) -> Result<Summary> {
    let rw = writers.get(conn, remote)?;
    let lw = match local_live {
        Some(id) => Some(writers.get(conn, id)?),
        None => None,
    };
    conn.execute(
        "INSERT INTO sync_conflicts(table_name, record_id, local_data, remote_data, local_version, remote_version, local_device_id, remote_device_id, status, resolution, columns, open_columns, kind, local_change, remote_change) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,'pending',?9,?10,?10,'constraint',?11,?12)",
        params![
            t.name,
            rid,
            local_data.to_string(),
            remote_data,
            lw.as_ref().map(|w| w.version),
            rw.version,
            lw.as_ref().map(|w| w.device_id.clone()),
            rw.device_id,
            serde_json::json!({ "error": error }).to_string(),
            serde_json::to_string(&columns)?,
            local_live,
            remote
        ],
    )?;
    Ok(Summary {
        id: conn.last_insert_rowid(),
        table_name: t.name.clone(),
        record_id: rid.to_string(),
        kind: "constraint".into(),
        columns,
        status: "pending".into(),
    })
}

fn slot_json(v: &SlotVal) -> serde_json::Value {
    match v {
        SlotVal::Alive(b) => (*b).into(),
        SlotVal::Val(v) => serde_json::from_str(&v.to_json_string()).unwrap_or(serde_json::Value::Null),
    }
}

/// Closes, on pending conflicts of the record whose both sides are in `base`, the slot
/// `slot`: a resolution made elsewhere has arrived. A conflict over several columns closes
/// when each of them has been. A constraint conflict closes by a column resolution only where
/// the record is `alive` here. Returns how many conflicts it closed.
pub fn close_matching(
    conn: &Connection,
    t: &Table,
    rid: &str,
    slot: Slot,
    base: &[i64],
    by: &str,
    alive: bool,
) -> Result<usize> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, kind, open_columns, local_change, remote_change FROM sync_conflicts WHERE status = 'pending' AND table_name = ?1 AND record_id = ?2",
    )?;
    type Pending = (i64, String, String, Option<i64>, Option<i64>);
    let rows: Vec<Pending> = stmt
        .query_map(params![t.name, rid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut closed = 0;
    for (id, kind, open, local, remote) in rows {
        let sides = local.is_none_or(|l| base.contains(&l)) && remote.is_some_and(|r| base.contains(&r));
        if !sides {
            continue;
        }
        let mut open: Vec<String> = serde_json::from_str(&open)?;
        let now_closed = match (kind.as_str(), slot) {
            ("delete", Slot::Live) | ("constraint", Slot::Live) => true,
            // A column resolution cannot bring back a record refused here: the refusal stays
            // for a person (see `resolve.rs`).
            ("constraint", Slot::Col(_)) => alive,
            ("update", Slot::Col(c)) => {
                let before = open.len();
                open.retain(|n| *n != t.columns[c]);
                if open.len() == before {
                    continue;
                }
                open.is_empty()
            }
            _ => continue,
        };
        if now_closed {
            conn.prepare_cached(
                "UPDATE sync_conflicts SET status = 'resolved', open_columns = '[]', resolution = ?2, resolved_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?1",
            )?
            .execute(params![id, serde_json::json!({ "closed_by": by }).to_string()])?;
            closed += 1;
        } else {
            conn.prepare_cached("UPDATE sync_conflicts SET open_columns = ?2 WHERE id = ?1")?
                .execute(params![id, serde_json::to_string(&open)?])?;
        }
    }
    Ok(closed)
}

/// A conflict row, for `sync_resolve` and the sidecar's `/conflicts`.
#[derive(Debug, Clone, Serialize)]
pub struct Conflict {
    pub id: i64,
    pub table_name: String,
    pub record_id: String,
    pub kind: String,
    pub columns: Vec<String>,
    /// Columns not yet settled by a resolution received from another device.
    pub open_columns: Vec<String>,
    pub local_data: serde_json::Value,
    pub remote_data: serde_json::Value,
    pub local_device_id: Option<String>,
    pub local_version: Option<i64>,
    pub remote_device_id: Option<String>,
    pub remote_version: Option<i64>,
    pub status: String,
    pub resolution: serde_json::Value,
    pub created_at: String,
    pub resolved_at: Option<String>,
    #[serde(skip)]
    pub local_change: Option<i64>,
    #[serde(skip)]
    pub remote_change: Option<i64>,
}

const SELECT: &str = "SELECT id, table_name, record_id, kind, columns, open_columns, local_data, remote_data, local_device_id, local_version, remote_device_id, remote_version, status, resolution, created_at, resolved_at, local_change, remote_change FROM sync_conflicts";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Conflict> {
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or(serde_json::Value::Null);
    Ok(Conflict {
        id: r.get(0)?,
        table_name: r.get(1)?,
        record_id: r.get(2)?,
        kind: r.get(3)?,
        columns: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
        // A settled conflict has nothing open, also one settled by a peersync that left its
        // columns in `open_columns`.
        open_columns: if r.get_ref(12)?.as_str().ok() == Some("pending") {
            serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default()
        } else {
            Vec::new()
        },
        local_data: json(r.get(6)?),
        remote_data: json(r.get(7)?),
        local_device_id: r.get(8)?,
        local_version: r.get(9)?,
        remote_device_id: r.get(10)?,
        remote_version: r.get(11)?,
        status: r.get(12)?,
        resolution: json(r.get(13)?),
        created_at: r.get(14)?,
        resolved_at: r.get(15)?,
        local_change: r.get(16)?,
        remote_change: r.get(17)?,
    })
}

pub fn get(conn: &Connection, id: i64) -> Result<Option<Conflict>> {
    Ok(conn.query_row(&format!("{SELECT} WHERE id = ?1"), [id], from_row).optional()?)
}

/// Conflicts with `status` (all when None), newest first.
pub fn list(conn: &Connection, status: Option<&str>) -> Result<Vec<Conflict>> {
    let mut stmt = conn.prepare(&format!("{SELECT} WHERE ?1 IS NULL OR status = ?1 ORDER BY id DESC"))?;
    let v = stmt.query_map([status], from_row)?.collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// How many conflicts wait for a person.
pub fn pending_count(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM sync_conflicts WHERE status = 'pending'")?
        .query_row([], |r| r.get(0))?)
}

/// What a page shows beside a conflict: when each side was written (the changes' stamps, ISO
/// 8601) and the record as it is here now, every column (null when the row is gone or the
/// table is no longer tracked).
#[derive(Debug, Clone, Serialize)]
pub struct Context {
    pub local_written_at: Option<String>,
    pub remote_written_at: Option<String>,
    pub current: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The [`Context`] of conflict `c`.
pub fn context(conn: &Connection, c: &Conflict) -> Result<Context> {
    let stamp = |change: Option<i64>| -> Result<Option<String>> {
        let Some(id) = change else { return Ok(None) };
        Ok(conn
            .prepare_cached(
                "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', timestamp / 1000000.0, 'unixepoch') FROM sync_log WHERE id = ?1",
            )?
            .query_row([id], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    };
    let tables = crate::model::table::Tables::load(conn)?;
    let current = match (tables.get(&c.table_name), crate::wire::parse_literals(&c.record_id)) {
        (Some(t), Ok(key)) => crate::store::rows::read(conn, t, &key)?.map(|vals| {
            t.columns.iter().cloned().zip(vals.iter().map(|v| slot_json(&SlotVal::Val(v.clone())))).collect()
        }),
        _ => None,
    };
    Ok(Context { local_written_at: stamp(c.local_change)?, remote_written_at: stamp(c.remote_change)?, current })
}
