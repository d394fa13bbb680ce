//! The sync tables' layout over time: setting them up (`sync_init`), and the one migration path
//! that brings a database made by an earlier peersync to this one's layout, on its first use.
use super::{log, runs};
use crate::db::schema::{self, get_state, set_state, LAYOUT};
use crate::db::tx;
use crate::error::{Error, Result};
use rusqlite::{params, Connection};

/// Creates the sync tables if needed and returns this database's device id (made once).
pub fn init(conn: &Connection) -> Result<String> {
    if let Some(id) = device_id_opt(conn)? {
        return Ok(id);
    }
    tx::write(conn, |conn| {
        schema::create(conn)?;
        if let Some(id) = device_id_opt(conn)? {
            return Ok(id);
        }
        let id: String = conn.query_row("SELECT lower(hex(randomblob(16)))", [], |r| r.get(0))?;
        set_state(conn, "device_id", &id)?;
        set_state(conn, "format", &LAYOUT)?;
        conn.execute(
            "INSERT OR IGNORE INTO sync_devices(device_id, device_name, is_authorized) VALUES (?1, 'this device', 1)",
            [&id],
        )?;
        Ok(id)
    })
}

/// This database file's instance: a random value the sidecar records beside the key file, so
/// that a copy of the file (same device id, same instance, another path) is told from the
/// original. None until the sidecar first sets it.
pub fn instance(conn: &Connection) -> Result<Option<String>> {
    device_id(conn)?;
    get_state(conn, "instance")
}

/// Sets this file's instance (see [`instance`]).
pub fn set_instance(conn: &Connection, instance: &str) -> Result<()> {
    device_id(conn)?;
    tx::write(conn, |conn| set_state(conn, "instance", &instance))
}

/// Gives this database a new device id, keeping its data: a copy of another device's file
/// becomes a device of its own. The old id stays as an ordinary device here (trusted, its
/// chain kept and still verifying: the original goes on under it); this file's own changes
/// start a new chain under the new id. Returns (old id, new id). The caller sets the new key.
pub fn new_identity(conn: &Connection) -> Result<(String, String)> {
    let old = device_id(conn)?;
    tx::write(conn, |conn| {
        let new: String = conn.query_row("SELECT lower(hex(randomblob(16)))", [], |r| r.get(0))?;
        become_device(conn, &new, "this device", None)?;
        Ok((old.clone(), new))
    })
}

/// Makes this database device `new` (named `name`, with `public_key` when known), in the
/// caller's transaction: its old id stays an ordinary device here, and the file's instance is
/// forgotten (the sidecar records the new one).
pub fn become_device(conn: &Connection, new: &str, name: &str, public_key: Option<&str>) -> Result<()> {
    set_state(conn, "device_id", &new)?;
    conn.execute("DELETE FROM sync_state WHERE key = 'instance'", [])?;
    conn.execute(
        "INSERT INTO sync_devices(device_id, device_name, public_key, is_authorized) VALUES (?1, ?2, ?3, 1)",
        params![new, name, public_key],
    )?;
    Ok(())
}

/// This database's device id, or [`Error::NotInitialised`]. Every call into the engine starts
/// here, so a database in an older layout is upgraded before anything reads it.
pub fn device_id(conn: &Connection) -> Result<String> {
    device_id_opt(conn)?.ok_or(Error::NotInitialised)
}

fn device_id_opt(conn: &Connection) -> Result<Option<String>> {
    let Some((id, format)) = schema::identity(conn)? else { return Ok(None) };
    if format != Some(LAYOUT) {
        upgrade(conn)?;
    }
    Ok(Some(id))
}

/// Brings a database made by an earlier peersync to [`LAYOUT`], once, in one transaction; a
/// database in a newer layout is refused and left as it is.
fn upgrade(conn: &Connection) -> Result<()> {
    tx::write(conn, |conn| {
        match get_state::<i64>(conn, "format")? {
        Some(LAYOUT) => Ok(()),
        Some(newer) if newer > LAYOUT => Err(Error::invalid(format!(
            "this database's sync tables are in format {newer}, made by a newer peersync (this one, {}, reads format {LAYOUT}); use a peersync as new as the one that last wrote it",
            crate::wire::VERSION
        ))),
        older => {
            let from = older.unwrap_or(1);
            // Tables a newer layout added.
            schema::create(conn)?;
            // 1 → 2: sync_runs replaces the index on sync_log(device_id, version).
            if from < 2 {
                runs::rebuild(conn)?;
            }
            // 2 → 3: who introduced each device.
            if !schema::has_column(conn, "sync_devices", "introduced_by")? {
                conn.execute_batch("ALTER TABLE sync_devices ADD COLUMN introduced_by TEXT")?;
            }
            // 3 → 4: each device's last refusal and audit, when it was paired here and the
            // revocation in force, and when a tracked table was found dropped
            // (`sync_divergences`, `sync_peers` and `sync_schema_waiting` are new).
            for col in schema::DEVICE_COLUMNS_4 {
                let name = col.split(' ').next().unwrap_or_default();
                if !schema::has_column(conn, "sync_devices", name)? {
                    conn.execute_batch(&format!("ALTER TABLE sync_devices ADD COLUMN {col}"))?;
                }
            }
            if !schema::has_column(conn, "sync_tables", "dropped_at")? {
                conn.execute_batch("ALTER TABLE sync_tables ADD COLUMN dropped_at TEXT")?;
            }
            // 3 → 4: who set each table's strategy, and when (a strategy set before is this
            // device's own until `sync_track` shares it: see `capture/track.rs`).
            for col in ["strategy_by TEXT", "strategy_at INTEGER", "strategy_version INTEGER"] {
                let name = col.split(' ').next().unwrap_or_default();
                if !schema::has_column(conn, "sync_tables", name)? {
                    conn.execute_batch(&format!("ALTER TABLE sync_tables ADD COLUMN {col}"))?;
                }
            }
            // 3 → 4: peers configured as data (`peersync peers add`, pairing).
            for (col, ty) in schema::PEER_COLUMNS_4 {
                if !schema::has_column(conn, "sync_peers", col)? {
                    conn.execute_batch(&format!("ALTER TABLE sync_peers ADD COLUMN {col} {ty}"))?;
                }
            }
            // 4 → 5: the identity a device recovered from a backup goes on as.
            if !schema::has_column(conn, "sync_devices", "succeeded_by")? {
                conn.execute_batch("ALTER TABLE sync_devices ADD COLUMN succeeded_by TEXT")?;
            }
            // 5 → 6: chain anchors (`sync_anchors`, made by `schema::create` above).
            set_state(conn, "format", &LAYOUT)
        }
    }
    })
}

/// Rebuilds `sync_runs` from the log if it has fallen behind: if some origin's runs do not
/// end at its head in `sync_vector`, an earlier build of peersync (which knows no runs) has
/// logged changes here. A log that still disagrees after a rebuild (rows deleted by hand) is
/// left as it is until it grows again: `sync_verify` reports it.
pub fn catch_up(conn: &Connection) -> Result<()> {
    let behind = |conn: &Connection| -> Result<bool> {
        for (device, head, _) in log::heads(conn)? {
            if runs::last_version(conn, &device)? != head {
                return Ok(true);
            }
        }
        Ok(false)
    };
    if !behind(conn)? {
        return Ok(());
    }
    let last = log::last_id(conn)?;
    if get_state::<i64>(conn, "runs_rebuilt_at")? == Some(last) {
        return Ok(());
    }
    tx::write(conn, |conn| {
        if behind(conn)? {
            runs::rebuild(conn)?;
        }
        set_state(conn, "runs_rebuilt_at", &last)
    })
}
