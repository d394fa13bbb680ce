//! `sync_verify` and `sync_hash`: recomputing hashes and checking every origin's chain.
use crate::capture::follow::seal;
use crate::error::{Error, Result};
use crate::store::anchors::{self, Anchor};
use crate::store::format::device_id;
use crate::store::log::{entry, ENTRY_COLUMNS};
use crate::store::runs;
use crate::trust::devices::device_key;
use crate::wire::HeadSignature;
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
    let mut anchor: Option<Anchor> = None;
    for a in anchors::all(conn)? {
        if let Some(problem) = bad_anchor(conn, &a)? {
            problems.push(problem);
        }
    }
    while let Some(r) = rows.next()? {
        let e = entry(r)?;
        let id: i64 = r.get(10)?;
        checked += 1;
        if prev.as_ref().is_none_or(|(d, _, _)| **d != *e.device_id) {
            runs = runs::of_device(conn, &e.device_id)?;
            anchor = anchors::get(conn, &e.device_id)?;
            // A compacted chain goes on from its anchor.
            prev = anchor.as_ref().map(|a| (a.device_id.clone(), a.version, a.hash.clone()));
        }
        if let Some(a) = anchor.as_ref().filter(|a| e.version <= a.version) {
            // Kept below the anchor (a slot's writer, an open conflict's side): the changes
            // between are gone, so only its place, and at the anchor its hash, can be checked.
            if runs::find(&runs, e.version) != Some(id) || (e.version == a.version && e.hash != a.hash) {
                failed.push(id);
                problems.push(format!(
                    "row {id}: {}:{} kept below the chain's anchor (version {}) does not match it",
                    e.device_id, e.version, a.version
                ));
            }
            continue;
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
    let ok = failed.is_empty() && problems.is_empty();
    Ok(json!({ "ok": ok, "checked": checked, "failed": failed, "problems": problems }))
}

/// What is wrong with anchor `a`, if anything: a signature that does not verify under the
/// origin's key held here.
fn bad_anchor(conn: &Connection, a: &Anchor) -> Result<Option<String>> {
    let (Some(signature), Some((Some(key), _))) = (&a.signature, device_key(conn, &a.device_id)?) else {
        return Ok(None);
    };
    let s = HeadSignature {
        device_id: a.device_id.clone(),
        version: a.version,
        hash: a.hash.clone(),
        signature: signature.clone(),
    };
    Ok((!crate::wire::verify(&key, &s)).then(|| {
        format!("the anchor of {} at version {} does not carry that device's signature", a.device_id, a.version)
    }))
}
