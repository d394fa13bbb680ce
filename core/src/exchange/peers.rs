//! What peers are known to hold: their reported vectors, and `is_synced` derived from them.
use crate::db::tx;
use crate::error::Result;
use crate::store::format::device_id;
use crate::store::{log, runs};
use crate::trust::devices::device_key;
use crate::trust::waiting::Held;
use crate::wire::{is_device_id, Vector};
use rusqlite::{params, Connection};
use std::collections::{BTreeMap, HashMap};

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
            "INSERT INTO sync_peer_vectors(peer, origin, version) VALUES (?1, ?2, ?3) ON CONFLICT(peer, origin) DO UPDATE SET version = excluded.version WHERE excluded.version > version",
        )?
        .execute(params![peer, origin, v])?;
    }
    Ok(true)
}

/// What this device knows each other authorized device holds (the vectors they reported), to
/// tell a peer: it learns what the devices it does not sync with hold, and compacts for them.
pub fn known(conn: &Connection) -> Result<BTreeMap<String, Vector>> {
    let me = device_id(conn)?;
    let mut stmt = conn.prepare_cached(
        "SELECT p.peer, p.origin, p.version FROM sync_peer_vectors p JOIN sync_devices d ON d.device_id = p.peer
          WHERE p.peer != '' AND p.peer != ?1 AND d.is_authorized AND d.succeeded_by IS NULL",
    )?;
    let mut out: BTreeMap<String, Vector> = BTreeMap::new();
    let rows = stmt.query_map([&me], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))?;
    for row in rows {
        let (peer, origin, v) = row?;
        out.entry(peer).or_default().insert(origin, v);
    }
    Ok(out)
}

/// Records what authorized peer `via` says the other devices hold (`known`, as [`known`] made
/// it there): a device this one trusts too is taken to hold at least that (what a device
/// holds only grows). What `via` says of itself or of this device is ignored.
pub fn note_known(conn: &Connection, via: &str, known: &BTreeMap<String, Vector>) -> Result<()> {
    let me = device_id(conn)?;
    if known.is_empty() || via == me || !matches!(device_key(conn, via)?, Some((_, true))) || known.len() > 10_000 {
        return Ok(());
    }
    tx::write(conn, |conn| {
        let before = conn.total_changes();
        for (device, vector) in known {
            if device != via && is_device_id(device) && vector.keys().all(|o| is_device_id(o)) {
                record(conn, device, vector)?;
            }
        }
        // Only what is new is written: a peer that says nothing new costs no write.
        if conn.total_changes() != before {
            mark_synced(conn, &floors(conn)?)?;
        }
        Ok(())
    })
}

/// An exchange with device `peer` succeeded (it took our changes, or we took its): its
/// `last_sync_at`. Hearing its vector alone is not an exchange.
pub fn exchanged(conn: &Connection, peer: &str) -> Result<()> {
    conn.prepare_cached(
        "UPDATE sync_devices SET last_sync_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE device_id = ?1",
    )?
    .execute([peer])?;
    Ok(())
}

/// Device `peer` was refused (by us, or it refused us), for `reason`.
pub fn refused(conn: &Connection, peer: &str, reason: &str) -> Result<()> {
    conn.prepare_cached(
        "UPDATE sync_devices SET last_error = ?2, last_error_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE device_id = ?1",
    )?
    .execute(params![peer, reason])?;
    Ok(())
}

/// How the last sync with the peer at a URL went.
#[derive(Debug, Clone)]
pub enum Link<'a> {
    /// It succeeded with device `device`, which holds back (defers, or refuses: an origin it
    /// revoked) the changes of the origins in `held`, and why.
    Ok { device: &'a str, held: &'a [Held] },
    /// It failed (`device` when the peer said who it is); `refused` when a device refused the
    /// other (not a network failure).
    Failed { device: Option<&'a str>, error: &'a str, refused: bool },
}

/// Records how a sync with the peer at `url` went (`sync_peers`; the device's own record too).
pub fn note_link(conn: &Connection, url: &str, link: Link<'_>) -> Result<()> {
    tx::write(conn, |conn| {
        conn.prepare_cached("INSERT OR IGNORE INTO sync_peers(url) VALUES (?1)")?.execute([url])?;
        match link {
            Link::Ok { device, held } => {
                let lacks = lacks(conn, device)?;
                let held = (!held.is_empty()).then(|| serde_json::to_string(held)).transpose()?;
                conn.prepare_cached(
                    "UPDATE sync_peers SET device_id = ?2, last_success_at = strftime('%Y-%m-%dT%H:%M:%fZ','now'),
                       failing_since = NULL, failures = 0, lacks = ?3, held_there = ?4 WHERE url = ?1",
                )?
                .execute(params![url, device, lacks, held])?;
                exchanged(conn, device)?;
            }
            Link::Failed { device, error, refused: was_refused } => {
                conn.prepare_cached(
                    "UPDATE sync_peers SET device_id = ifnull(?2, device_id), last_error = ?3,
                       last_error_at = strftime('%Y-%m-%dT%H:%M:%fZ','now'),
                       failing_since = ifnull(failing_since, strftime('%Y-%m-%dT%H:%M:%fZ','now')), failures = failures + 1
                     WHERE url = ?1",
                )?
                .execute(params![url, device, error])?;
                if was_refused {
                    // The device at this URL, as this failure or an earlier success said.
                    let known: Option<String> = conn
                        .prepare_cached("SELECT device_id FROM sync_peers WHERE url = ?1")?
                        .query_row([url], |r| r.get(0))?;
                    if let Some(d) = known {
                        refused(conn, &d, error)?;
                    }
                }
            }
        }
        Ok(())
    })
}

/// How many changes this database holds that device `peer` is not known to hold.
pub fn lacks(conn: &Connection, peer: &str) -> Result<i64> {
    let mut n = 0;
    for (origin, head, _) in log::heads(conn)? {
        let has: i64 = conn
            .prepare_cached("SELECT ifnull(max(version), 0) FROM sync_peer_vectors WHERE peer = ?1 AND origin = ?2")?
            .query_row([peer, &origin], |r| r.get(0))?;
        n += (head - has).max(0);
    }
    Ok(n)
}

/// For each origin any peer reported: the least version every authorized peer holds (a device
/// recovered as another syncs no more: its successor counts instead).
pub fn floors(conn: &Connection) -> Result<HashMap<String, i64>> {
    let me = device_id(conn)?;
    let mut stmt = conn.prepare_cached(
        "SELECT o.origin, (SELECT min(ifnull((SELECT version FROM sync_peer_vectors p WHERE p.peer = d.device_id AND p.origin = o.origin), 0)) FROM sync_devices d WHERE d.is_authorized AND d.succeeded_by IS NULL AND d.device_id != ?1) FROM (SELECT DISTINCT origin FROM sync_peer_vectors WHERE peer != '') o",
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
