//! What peers are known to hold: their reported vectors, and `is_synced` derived from them.
use crate::changes::Vector;
use crate::error::Result;
use rusqlite::{params, Connection};

/// Records that authorized peer `peer` holds `vector`, then marks as synced every change that
/// all authorized peers hold.
pub fn note_vector(conn: &Connection, peer: &str, vector: &Vector) -> Result<()> {
    let me = crate::schema::device_id(conn)?;
    if peer == me || !matches!(crate::sign::device_key(conn, peer)?, Some((_, true))) {
        return Ok(());
    }
    for (origin, v) in vector {
        conn.prepare_cached(
            "INSERT INTO sync_peer_vectors(peer, origin, version) VALUES (?1, ?2, ?3) ON CONFLICT(peer, origin) DO UPDATE SET version = max(version, excluded.version)",
        )?
        .execute(params![peer, origin, v])?;
    }
    conn.prepare_cached(
        "UPDATE sync_devices SET last_sync_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE device_id = ?1",
    )?
    .execute([peer])?;
    // For each origin: the least version every authorized peer holds.
    let mut stmt = conn.prepare_cached(
        "SELECT v.device_id, (SELECT min(ifnull((SELECT version FROM sync_peer_vectors p WHERE p.peer = d.device_id AND p.origin = v.device_id), 0)) FROM sync_devices d WHERE d.is_authorized AND d.device_id != ?1) FROM sync_vector v",
    )?;
    let floors: Vec<(String, Option<i64>)> =
        stmt.query_map([&me], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
    // Peer '' remembers how far is_synced has been set, so each call touches only new rows.
    let held: std::collections::HashMap<String, i64> = conn
        .prepare_cached("SELECT device_id, version FROM sync_vector")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (origin, floor) in floors {
        // Only what this database holds can be marked; a peer may report more.
        let Some(floor) = floor.map(|f| f.min(held.get(&origin).copied().unwrap_or(0))).filter(|f| *f > 0) else {
            continue;
        };
        let done: i64 = conn
            .prepare_cached("SELECT ifnull(max(version), 0) FROM sync_peer_vectors WHERE peer = '' AND origin = ?1")?
            .query_row([&origin], |r| r.get(0))?;
        if floor > done {
            conn.prepare_cached(
                "UPDATE sync_log SET is_synced = 1 WHERE device_id = ?1 AND version > ?2 AND version <= ?3",
            )?
            .execute(params![origin, done, floor])?;
            conn.prepare_cached("INSERT OR REPLACE INTO sync_peer_vectors(peer, origin, version) VALUES ('', ?1, ?2)")?
                .execute(params![origin, floor])?;
        }
    }
    Ok(())
}
