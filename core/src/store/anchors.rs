//! Chain anchors (`sync_anchors`): for each origin whose history was compacted, the version
//! and hash its chain verifies from, with the origin's signature over them when one is held.
//!
//! Below an anchor, the log keeps only the changes something still needs (each slot's
//! current writer, open conflicts, changes waiting for the schema, settings and trust
//! events); the others are gone, and with them the hashes between. What was there is vouched
//! for by the anchor: its hash covers the whole chain up to it.
use crate::error::Result;
use rusqlite::{params, Connection, OptionalExtension};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub device_id: String,
    pub version: i64,
    pub hash: String,
    /// The origin's signature over (version, hash), as `wire::HeadSignature` checks it; None
    /// for this device's own chain (it vouches for itself) and in a database without keys.
    pub signature: Option<String>,
    /// How many of the origin's changes compaction has removed so far.
    pub removed: i64,
}

const COLUMNS: &str = "device_id, version, hash, signature, removed";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Anchor> {
    Ok(Anchor { device_id: r.get(0)?, version: r.get(1)?, hash: r.get(2)?, signature: r.get(3)?, removed: r.get(4)? })
}

/// The anchor of `device`'s chain, if its history was compacted here.
pub fn get(conn: &Connection, device: &str) -> Result<Option<Anchor>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM sync_anchors WHERE device_id = ?1"))?
        .query_row([device], from_row)
        .optional()?)
}

/// The version `device`'s chain is anchored at here (0 when it was never compacted).
pub fn version(conn: &Connection, device: &str) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT ifnull((SELECT version FROM sync_anchors WHERE device_id = ?1), 0)")?
        .query_row([device], |r| r.get(0))?)
}

/// Every anchor, by origin.
pub fn all(conn: &Connection) -> Result<Vec<Anchor>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM sync_anchors ORDER BY device_id"))?;
    let v = stmt.query_map([], from_row)?.collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// Stores `a` as its origin's anchor.
pub fn set(conn: &Connection, a: &Anchor) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO sync_anchors(device_id, version, hash, signature, removed) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![a.device_id, a.version, a.hash, a.signature, a.removed])?;
    Ok(())
}

/// The hash of `device:version` if it is `device`'s anchor here.
pub fn hash_at(conn: &Connection, device: &str, version: i64) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT hash FROM sync_anchors WHERE device_id = ?1 AND version = ?2")?
        .query_row(params![device, version], |r| r.get(0))
        .optional()?)
}
