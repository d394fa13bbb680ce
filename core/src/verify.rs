//! `sync_verify` and `sync_hash`: recomputing hashes and checking every origin's chain.
use crate::error::{Error, Result};
use crate::log::Entry;
use rusqlite::{Connection, OptionalExtension, Row};
use serde_json::json;

fn entry(r: &Row<'_>) -> rusqlite::Result<Entry> {
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
}

const COLS: &str =
    "table_name, record_id, operation, change_data, device_id, version, timestamp, bases, resolution, hash";

/// `sync_hash(log_id)`: the hash of that row's canonical encoding, computed now.
pub fn hash_of(conn: &Connection, log_id: i64) -> Result<String> {
    let row: Option<Option<i64>> = conn
        .query_row("SELECT version FROM sync_log WHERE id = ?1", [log_id], |r| r.get(0))
        .optional()?;
    match row {
        None => return Err(Error::invalid(format!("sync_hash: no sync_log row with id {log_id}"))),
        Some(None) => {
            return Err(Error::invalid(format!(
                "sync_hash: sync_log row {log_id} is not sealed yet (run `select sync_seal()` first)"
            )))
        }
        Some(Some(_)) => {}
    }
    let e = conn.query_row(&format!("SELECT {COLS} FROM sync_log WHERE id = ?1"), [log_id], entry)?;
    let prev = prev_hash(conn, &e.device_id, e.version)?;
    Ok(e.compute_hash(&prev))
}

fn prev_hash(conn: &Connection, device: &str, version: i64) -> Result<String> {
    if version <= 1 {
        return Ok(String::new());
    }
    Ok(conn
        .prepare_cached("SELECT hash FROM sync_log WHERE device_id = ?1 AND version = ?2")?
        .query_row(rusqlite::params![device, version - 1], |r| r.get::<_, Option<String>>(0))
        .optional()?
        .flatten()
        .unwrap_or_default())
}

/// `sync_verify()`: seals, then recomputes every sealed row's hash along its origin's chain.
pub fn verify(conn: &Connection) -> Result<serde_json::Value> {
    crate::seal::seal(conn)?;
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLS}, id FROM sync_log WHERE version IS NOT NULL ORDER BY device_id, version"
    ))?;
    let mut rows = stmt.query([])?;
    let mut checked = 0i64;
    let mut failed: Vec<i64> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let mut prev: Option<(String, i64, String)> = None;
    while let Some(r) = rows.next()? {
        let e = entry(r)?;
        let id: i64 = r.get(10)?;
        checked += 1;
        let (expect_version, prev_hash) = match &prev {
            Some((d, v, h)) if *d == e.device_id => (v + 1, h.clone()),
            _ => (1, String::new()),
        };
        if e.version != expect_version {
            failed.push(id);
            problems.push(format!(
                "row {id}: {} version {} follows version {} (gap in the chain)",
                e.device_id,
                e.version,
                expect_version - 1
            ));
        } else if e.compute_hash(&prev_hash) != e.hash {
            failed.push(id);
            problems.push(format!("row {id}: {}:{} does not match its hash", e.device_id, e.version));
        }
        prev = Some((e.device_id.clone(), e.version, e.hash.clone()));
    }
    Ok(json!({ "ok": failed.is_empty(), "checked": checked, "failed": failed, "problems": problems }))
}
