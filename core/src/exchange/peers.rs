//! What peers are known to hold: their reported vectors, and `is_synced` derived from them.
use crate::db::tx;
use crate::error::Result;
use crate::store::format::device_id;
use crate::store::{log, runs};
use crate::trust::devices::device_key;
use crate::wire::Vector;
use rusqlite::{params, Connection};
use std::collections::HashMap;

/// Records that authorized peer `peer` holds `vector`, then marks as synced every change that
/// all authorized peers hold; in one short write transaction.
pub fn note_vector(conn: &Connection, peer: &str, vector: &Vector) -> Result<()> {
    tx::write(conn, |conn| {
        if record(conn, peer, vector)? {
            mark_synced(conn, &floors(conn)?)?;
        }
        Ok(())
    })
}

/// Records `vector` as what `peer` holds, if it is another, authorized device; says whether it was.
pub fn record(conn: &Connection, peer: &str, vector: &Vector) -> Result<bool> {
    let me = device_id(conn)?;
    if peer == me || !matches!(device_key(conn, peer)?, Some((_, true))) {
        return Ok(false);
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
    Ok(true)
}

/// For each origin any peer reported: the least version every authorized peer holds.
pub fn floors(conn: &Connection) -> Result<HashMap<String, i64>> {
    let me = device_id(conn)?;
    let mut stmt = conn.prepare_cached(
        "SELECT o.origin, (SELECT min(ifnull((SELECT version FROM sync_peer_vectors p WHERE p.peer = d.device_id AND p.origin = o.origin), 0)) FROM sync_devices d WHERE d.is_authorized AND d.device_id != ?1) FROM (SELECT DISTINCT origin FROM sync_peer_vectors WHERE peer != '') o",
    )?;
    let rows = stmt.query_map([&me], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?)))?;
    let mut out = HashMap::new();
    for row in rows {
        if let (origin, Some(floor)) = row? {
            out.insert(origin, floor);
        }
    }
    Ok(out)
}

/// Marks as synced every held change that all authorized peers hold, given their [`floors`].
pub fn mark_synced(conn: &Connection, floors: &HashMap<String, i64>) -> Result<()> {
    // Peer '' remembers how far is_synced has been set, so each call touches only new rows.
    let held: HashMap<String, i64> = log::heads(conn)?.into_iter().map(|(d, v, _)| (d, v)).collect();
    for (origin, &floor) in floors {
        // Only what this database holds can be marked; a peer may report more.
        let floor = floor.min(held.get(origin).copied().unwrap_or(0));
        if floor <= 0 {
            continue;
        }
        let done: i64 = conn
            .prepare_cached("SELECT ifnull(max(version), 0) FROM sync_peer_vectors WHERE peer = '' AND origin = ?1")?
            .query_row([&origin], |r| r.get(0))?;
        if floor > done {
            // Changes logged already synced (see `apply`) are left as they are.
            for (first, last) in runs::id_ranges(conn, origin, done, floor)? {
                conn.prepare_cached("UPDATE sync_log SET is_synced = 1 WHERE id BETWEEN ?1 AND ?2 AND NOT is_synced")?
                    .execute(params![first, last])?;
            }
            conn.prepare_cached("INSERT OR REPLACE INTO sync_peer_vectors(peer, origin, version) VALUES ('', ?1, ?2)")?
                .execute(params![origin, floor])?;
        }
    }
    Ok(())
}
