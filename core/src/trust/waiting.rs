//! `sync_waiting`: origins whose changes peers offered and this device holds back (no key for
//! the origin yet, a timestamp too far ahead), so status shows what waits, since when and why.
use crate::error::Result;
use crate::wire::Entry;
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

/// An origin whose changes wait at a receiver: from `version` on, for `reason`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Held {
    pub device_id: String,
    pub version: i64,
    /// `unknown_origin` (no key for it here yet: an introduction or a pairing brings one) or
    /// `clock_ahead` (stamped later than this device's clock allows; applied once it is not) or
    /// `quota` (its device wrote more here than its quota allows; applied as it grows back).
    pub reason: String,
    /// The same, for people.
    pub detail: String,
}

impl Held {
    /// Change `e` waits here, for `reason` (explained to people in `detail`).
    pub fn new(e: &Entry, reason: &str, detail: String) -> Held {
        Held { device_id: e.device_id.to_string(), version: e.version, reason: reason.into(), detail }
    }
}

/// Records that `h` waits here, offered by device `by` (the first version and time it was
/// seen are kept; the last offer updates the rest).
pub fn note(conn: &Connection, h: &Held, by: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO sync_waiting(origin, reason, version, detail, offered_by) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(origin, reason) DO UPDATE SET version = min(version, excluded.version), detail = excluded.detail,
           offered_by = excluded.offered_by, last_seen = excluded.last_seen",
    )?
    .execute(params![h.device_id, h.reason, h.version, h.detail, by])?;
    Ok(())
}

/// `origin`'s changes up to `version` are applied now: what waited of them no longer does.
pub fn advanced(conn: &Connection, origin: &str, version: i64) -> Result<()> {
    conn.prepare_cached("DELETE FROM sync_waiting WHERE origin = ?1 AND version <= ?2")?
        .execute(params![origin, version])?;
    Ok(())
}

/// What waits here, as `sync_status` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Waiting {
    pub origin: String,
    pub reason: String,
    pub version: i64,
    pub detail: String,
    pub offered_by: String,
    pub first_seen: String,
    pub last_seen: String,
}

pub fn list(conn: &Connection) -> Result<Vec<Waiting>> {
    let mut stmt = conn.prepare_cached(
        "SELECT origin, reason, version, detail, offered_by, first_seen, last_seen FROM sync_waiting ORDER BY first_seen",
    )?;
    let v = stmt
        .query_map([], |r| {
            Ok(Waiting {
                origin: r.get(0)?,
                reason: r.get(1)?,
                version: r.get(2)?,
                detail: r.get(3)?,
                offered_by: r.get(4)?,
                first_seen: r.get(5)?,
                last_seen: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}
