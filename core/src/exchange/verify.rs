//! `sync_verify` and `sync_hash`: recomputing hashes and checking every origin's chain.
use crate::capture::follow::seal;
use crate::error::{Error, Result};
use crate::store::format::device_id;
use crate::store::log::{entry, ENTRY_COLUMNS};
use crate::store::runs;
use rusqlite::{Connection, OptionalExtension};
use serde_json::json;

/// `sync_hash(log_id)`: the hash of that row's canonical encoding, computed now.
pub fn hash_of(conn: &Connection, log_id: i64) -> Result<String> {
    device_id(conn)?;
    let row: Option<Option<i64>> =
        conn.query_row("SELECT version FROM sync_log WHERE id = ?1", [log_id], |r| r.get(0)).optional()?;
    match row {
        None => return Err(Error::invalid(format!("sync_hash: no sync_log row with id {log_id}"))),
        Some(None) => {
            return Err(Error::invalid(format!(
                "sync_hash: sync_log row {log_id} is not sealed yet (run `select sync_seal()` first)"
            )))
        }
        Some(Some(_)) => {}
    }
    let e = conn.query_row(&format!("SELECT {} FROM sync_log WHERE id = ?1", ENTRY_COLUMNS), [log_id], entry)?;
    let prev = prev_hash(conn, &e.device_id, e.version)?;
    Ok(e.compute_hash(&prev))
}

fn prev_hash(conn: &Connection, device: &str, version: i64) -> Result<String> {
    if version <= 1 {
        return Ok(String::new());
    }
    Ok(runs::hash_at(conn, device, version - 1)?.unwrap_or_default())
}

/// `sync_verify()`: seals, then recomputes every sealed row's hash along its origin's chain.
pub fn verify(conn: &Connection) -> Result<serde_json::Value> {
    device_id(conn)?;
    seal(conn)?;
    let mut stmt = conn.prepare(&format!(
        "SELECT {}, id FROM sync_log WHERE version IS NOT NULL ORDER BY device_id, version",
        ENTRY_COLUMNS
    ))?;
    let mut rows = stmt.query([])?;
    let mut checked = 0i64;
    let mut failed: Vec<i64> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let mut prev: Option<(String, i64, String)> = None;
    let mut runs: Vec<runs::Run> = Vec::new();
    while let Some(r) = rows.next()? {
        let e = entry(r)?;
        let id: i64 = r.get(10)?;
        checked += 1;
        if prev.as_ref().is_none_or(|(d, _, _)| **d != *e.device_id) {
            runs = runs::of_device(conn, &e.device_id)?;
        }
        let (expect_version, prev_hash) = match &prev {
            Some((d, v, h)) if **d == *e.device_id => (v + 1, h.clone()),
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
        } else if runs::find(&runs, e.version) != Some(id) {
            failed.push(id);
            problems.push(format!(
                "row {id}: {}:{} is not where sync_runs says it is (the log was changed outside peersync)",
                e.device_id, e.version
            ));
        }
        prev = Some((e.device_id.to_string(), e.version, e.hash.clone()));
    }
    Ok(json!({ "ok": failed.is_empty(), "checked": checked, "failed": failed, "problems": problems }))
}
