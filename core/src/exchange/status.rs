//! `sync_status`: what this database is and holds, as JSON.
use super::export::vector;
use super::{audit, held, peers::lacks};
use crate::db::host::{sqlite_version, sqlite_warning};
use crate::error::Result;
use crate::store::format::device_id;
use crate::trust::{introductions, quarantine, waiting};
use rusqlite::Connection;
use serde_json::{json, Value};

pub fn status(conn: &Connection) -> Result<Value> {
    let device = device_id(conn)?;
    let vector = vector(conn)?;
    let mut tables = Vec::new();
    let mut stmt = conn.prepare("SELECT name, strategy, columns, strategy_by, strftime('%Y-%m-%dT%H:%M:%fZ', strategy_at / 1000000.0, 'unixepoch') FROM sync_tables WHERE active AND name IN (SELECT name FROM sqlite_master WHERE type = 'table') ORDER BY name")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let cols: String = r.get(2)?;
        tables.push(json!({
            "table": r.get::<_, String>(0)?,
            "strategy": r.get::<_, String>(1)?,
            "columns": serde_json::from_str::<Value>(&cols)?,
            "strategy_set_by": r.get::<_, Option<String>>(3)?,
            "strategy_set_at": r.get::<_, Option<String>>(4)?,
        }));
    }
    let mut dropped = Vec::new();
    let mut stmt =
        conn.prepare("SELECT name, dropped_at FROM sync_tables WHERE dropped_at IS NOT NULL ORDER BY name")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        dropped.push(json!({ "table": r.get::<_, String>(0)?, "dropped_at": r.get::<_, String>(1)? }));
    }
    let (entries, unsynced): (i64, i64) =
        conn.query_row("SELECT count(*), ifnull(sum(is_synced = 0), 0) FROM sync_log", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let pending: i64 =
        conn.query_row("SELECT count(*) FROM sync_conflicts WHERE status = 'pending'", [], |r| r.get(0))?;
    let mut peers = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT device_id, device_name, is_authorized, last_sync_at, tailscale_ip, public_key IS NOT NULL,
           last_error, last_error_at, last_audit, last_audit_at, revoked_by, succeeded_by FROM sync_devices WHERE device_id != ?1 ORDER BY id",
    )?;
    let mut rows = stmt.query([&device])?;
    while let Some(r) = rows.next()? {
        let id = r.get::<_, String>(0)?;
        let authorized = r.get::<_, bool>(2)?;
        let succeeded_by = r.get::<_, Option<String>>(11)?;
        peers.push(json!({
            "name": r.get::<_, Option<String>>(1)?,
            "authorized": authorized,
            "last_sync_at": r.get::<_, Option<String>>(3)?,
            "tailscale_ip": r.get::<_, Option<String>>(4)?,
            "has_key": r.get::<_, bool>(5)?,
            "last_error": r.get::<_, Option<String>>(6)?,
            "last_error_at": r.get::<_, Option<String>>(7)?,
            "last_audit": r.get::<_, Option<String>>(8)?,
            "last_audit_at": r.get::<_, Option<String>>(9)?,
            "lacks": if authorized && succeeded_by.is_none() { Some(lacks(conn, &id)?) } else { None },
            "revoked_by": r.get::<_, Option<String>>(10)?,
            "succeeded_by": succeeded_by,
            "device_id": id,
        }));
    }
    let mut links = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT url, device_id, last_success_at, last_error, last_error_at, failing_since, failures, lacks, configured, held_there FROM sync_peers ORDER BY url",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let failing_since = r.get::<_, Option<String>>(5)?;
        links.push(json!({
            "url": r.get::<_, String>(0)?,
            "device_id": r.get::<_, Option<String>>(1)?,
            "state": if failing_since.is_some() { "failing" } else { "ok" },
            "last_success_at": r.get::<_, Option<String>>(2)?,
            "last_error": r.get::<_, Option<String>>(3)?,
            "last_error_at": r.get::<_, Option<String>>(4)?,
            "failing_since": failing_since,
            "failures": r.get::<_, i64>(6)?,
            "lacks": r.get::<_, Option<i64>>(7)?,
            "configured": r.get::<_, bool>(8)?,
            "held_there": r.get::<_, Option<String>>(9)?.and_then(|h| serde_json::from_str::<Value>(&h).ok()).unwrap_or(json!([])),
        }));
    }
    let anchors = super::compact::anchors(conn)?;
    Ok(json!({
        "device_id": device,
        "version": crate::wire::VERSION,
        "sqlite_version": sqlite_version(conn)?.0,
        "sqlite_warning": sqlite_warning(conn)?,
        "tables": tables,
        "log": {
            "entries": entries,
            "unsynced": unsynced,
            "own_version": vector.get(&device).copied().unwrap_or(0),
            "compacted": anchors.iter().map(|a| a.removed).sum::<i64>(),
            "anchors": anchors,
            "compaction_error": super::compact::last_failure(conn)?,
        },
        "vector": vector,
        "conflicts_pending": pending,
        "peers": peers,
        "links": links,
        "divergences": audit::divergences(conn)?,
        "quarantined": quarantine::list(conn)?,
        "waiting": waiting::list(conn)?,
        "schema_waiting": held::list(conn)?,
        "dropped_tables": dropped,
        "disputed_keys": introductions::disputes(conn)?,
    }))
}
