//! `sync_changes`: the batch of changes a peer lacks, found through the (device, version) index.
use crate::error::{Error, Result};
use crate::log::Entry;
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version vector: `{device_id: highest contiguous version held}`.
pub type Vector = BTreeMap<String, i64>;

pub const FORMAT: u32 = 1;
pub const DEFAULT_LIMIT: i64 = 1000;
pub const MAX_LIMIT: i64 = 100_000;

/// A signature by `device_id` over the head of its own chain at `version` (see `sign.rs`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HeadSignature {
    pub device_id: String,
    pub version: i64,
    pub hash: String,
    pub signature: String,
}

/// What `sync_changes` returns and `sync_apply` takes.
#[derive(Debug, Serialize, Deserialize)]
pub struct Batch {
    pub format: u32,
    /// The device that made this batch.
    pub device_id: String,
    pub changes: Vec<Entry>,
    pub has_more: bool,
    /// The sender's version vector when it made the batch.
    #[serde(default)]
    pub vector: Vector,
    #[serde(default)]
    pub signatures: Vec<HeadSignature>,
}

/// Reads a version vector from JSON, with errors that name the function.
pub fn parse_vector(func: &str, json: &str) -> Result<Vector> {
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| Error::invalid(format!("{func}: the vector is not JSON ({e})")))?;
    let obj = v.as_object().ok_or_else(|| {
        Error::invalid(format!("{func}: the vector must be a JSON object {{\"device_id\": version}}"))
    })?;
    let mut out = Vector::new();
    for (k, v) in obj {
        let n = v.as_i64().filter(|n| *n >= 0).ok_or_else(|| {
            Error::invalid(format!("{func}: version of \"{k}\" must be a non-negative integer"))
        })?;
        out.insert(k.clone(), n);
    }
    Ok(out)
}

/// The changes the holder of `since` lacks, in this log's order (which is causal), at most
/// `limit` of them.
pub fn changes(conn: &Connection, since: &Vector, limit: i64) -> Result<Batch> {
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::invalid(format!("sync_changes: limit must be between 1 and {MAX_LIMIT}")));
    }
    let device = crate::schema::device_id(conn)?;
    crate::seal::seal(conn)?;
    let ours = crate::vector(conn)?;
    let mut ids: Vec<i64> = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM sync_log WHERE device_id = ?1 AND version > ?2 ORDER BY version LIMIT ?3",
    )?;
    for (dev, &have) in &ours {
        let theirs = since.get(dev).copied().unwrap_or(0);
        if have > theirs {
            let found = stmt.query_map(params![dev, theirs, limit + 1], |r| r.get::<_, i64>(0))?;
            for id in found {
                ids.push(id?);
            }
        }
    }
    ids.sort_unstable();
    let has_more = ids.len() as i64 > limit;
    ids.truncate(limit as usize);
    let mut get = conn.prepare_cached(
        "SELECT table_name, record_id, operation, change_data, device_id, version, timestamp, bases, resolution, hash FROM sync_log WHERE id = ?1",
    )?;
    let mut changes = Vec::with_capacity(ids.len());
    for id in ids {
        changes.push(get.query_row([id], |r| {
            Ok(Entry {
                table_name: r.get(0)?,
                record_id: r.get(1)?,
                operation: r.get(2)?,
                change_data: r.get(3)?,
                device_id: r.get(4)?,
                version: r.get(5)?,
                timestamp: r.get(6)?,
                bases: r.get(7)?,
                resolution: r.get(8)?,
                hash: r.get(9)?,
            })
        })?);
    }
    Ok(Batch { format: FORMAT, device_id: device, changes, has_more, vector: ours, signatures: Vec::new() })
}
