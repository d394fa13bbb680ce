//! Tracked tables follow schema changes by themselves. Whenever SQLite's schema version
//! (`PRAGMA schema_version`, which every CREATE, ALTER and DROP moves) differs from the one seen
//! last, sealing looks at every tracked table again: one whose columns changed is tracked again
//! (triggers refreshed; values already written to a new column logged, see `track_shape`); one
//! that is gone is marked dropped (its captured writes sealed first, its stage table removed);
//! one whose triggers are gone (dropped and created anew) is tracked again and gets back its
//! rows. Sealing runs before every export, apply, vector, verify and status read, so a write to
//! a new column is logged before any of them.
use super::seal::seal_captured;
use super::stage::{capture_triggers, remove_capture};
use super::track::track_shape;
use crate::db::schema::{get_state, has_table, set_state};
use crate::db::tx;
use crate::error::Result;
use crate::model::table::introspect;
use crate::store::format::device_id;
use rusqlite::Connection;

/// Seals every captured write, after tracked tables have followed any schema change since the
/// last look; returns how many changes it sealed.
pub fn seal(conn: &Connection) -> Result<i64> {
    let mut sealed = seal_captured(conn)?;
    if get_state::<i64>(conn, "schema_seen")? == Some(schema_version(conn)?) {
        return Ok(sealed);
    }
    tx::write(conn, |conn| {
        // Read again under the write lock: another connection may have looked meanwhile.
        if get_state::<i64>(conn, "schema_seen")? != Some(schema_version(conn)?) {
            follow(conn)?;
            // Seen as it is after this look's own schema changes.
            set_state(conn, "schema_seen", &schema_version(conn)?)?;
        }
        Ok(())
    })?;
    sealed += seal_captured(conn)?;
    Ok(sealed)
}

fn schema_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA schema_version", [], |r| r.get(0))?)
}

/// Looks at every tracked table again (inside the caller's write transaction, captured writes
/// sealed).
fn follow(conn: &Connection) -> Result<()> {
    let device = device_id(conn)?;
    let tracked: Vec<(i64, String, String)> = conn
        .prepare("SELECT id, name, columns FROM sync_tables WHERE active ORDER BY id")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, name, columns) in tracked {
        if !has_table(conn, &name)? {
            // Dropped: its triggers went with it; what they captured is sealed already.
            remove_capture(conn, id)?;
            conn.execute(
                "UPDATE sync_tables SET active = 0, dropped_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?1",
                [id],
            )?;
            continue;
        }
        // A table that can no longer be tracked as it is (a primary key gone, say) keeps its
        // triggers; `sync_track` on it says why.
        let Ok(shape) = introspect(conn, "sync_track", &name) else { continue };
        let mut now = shape.columns.clone();
        let mut before: Vec<String> = serde_json::from_str(&columns)?;
        now.sort();
        before.sort();
        if now != before || capture_triggers(conn, id)?.is_empty() {
            track_shape(conn, &shape, None, &device)?;
        }
    }
    Ok(())
}
