//! The sync tables, this database's device id and the engine's small state (clock, versions).
use crate::error::{Error, Result};
use rusqlite::{params, Connection, OptionalExtension};

/// Every table peersync owns; none of them can be tracked.
pub const SYNC_TABLES: &[&str] = &[
    "sync_log",
    "sync_devices",
    "sync_conflicts",
    "sync_state",
    "sync_tables",
    "sync_meta",
    "sync_vector",
    "sync_signatures",
    "sync_peer_vectors",
    "sync_quarantine",
    "sync_runs",
];

/// The layout of the sync tables this engine writes (`format` in `sync_state`). Format 1
/// found changes through an index on `sync_log(device_id, version)`; format 2 through
/// `sync_runs`.
const FORMAT: i64 = 2;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS sync_log(
  id INTEGER PRIMARY KEY,
  table_name TEXT NOT NULL,
  record_id TEXT,
  operation TEXT NOT NULL,
  change_data TEXT,
  device_id TEXT,
  version INTEGER,
  timestamp INTEGER,
  hash TEXT,
  is_synced INTEGER NOT NULL DEFAULT 0,
  bases TEXT,
  resolution INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sync_devices(
  id INTEGER PRIMARY KEY,
  device_id TEXT NOT NULL UNIQUE,
  device_name TEXT,
  public_key TEXT,
  tailscale_ip TEXT,
  is_authorized INTEGER NOT NULL DEFAULT 0,
  last_sync_at TEXT,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE IF NOT EXISTS sync_conflicts(
  id INTEGER PRIMARY KEY,
  table_name TEXT NOT NULL,
  record_id TEXT NOT NULL,
  local_data TEXT,
  remote_data TEXT,
  local_version INTEGER,
  remote_version INTEGER,
  local_device_id TEXT,
  remote_device_id TEXT,
  status TEXT NOT NULL DEFAULT 'pending',
  resolution TEXT,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  resolved_at TEXT,
  columns TEXT NOT NULL DEFAULT '[]',
  open_columns TEXT NOT NULL DEFAULT '[]',
  kind TEXT NOT NULL DEFAULT 'update',
  local_change INTEGER,
  remote_change INTEGER
);
CREATE INDEX IF NOT EXISTS sync_conflicts_record ON sync_conflicts(table_name, record_id)
  WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS sync_state(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sync_tables(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  strategy TEXT NOT NULL DEFAULT 'timestamp_wins',
  columns TEXT NOT NULL,
  pk TEXT NOT NULL,
  active INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS sync_meta(
  tbl INTEGER NOT NULL,
  record_id TEXT NOT NULL,
  live INTEGER,
  alive INTEGER NOT NULL,
  cw INTEGER,
  cols TEXT NOT NULL,
  PRIMARY KEY(tbl, record_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sync_vector(
  device_id TEXT PRIMARY KEY,
  version INTEGER NOT NULL,
  hash TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sync_signatures(
  device_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  hash TEXT NOT NULL,
  signature TEXT NOT NULL,
  PRIMARY KEY(device_id, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sync_peer_vectors(
  peer TEXT NOT NULL,
  origin TEXT NOT NULL,
  version INTEGER NOT NULL,
  PRIMARY KEY(peer, origin)
) WITHOUT ROWID;
"#;

/// Creates the sync tables if needed and returns this database's device id (made once).
pub fn init(conn: &Connection) -> Result<String> {
    if let Some(id) = device_id_opt(conn)? {
        return Ok(id);
    }
    crate::tx::write(conn, |conn| {
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(crate::runs::SCHEMA)?;
        crate::quarantine::ensure_schema(conn)?;
        if let Some(id) = device_id_opt(conn)? {
            return Ok(id);
        }
        let id: String = conn.query_row("SELECT lower(hex(randomblob(16)))", [], |r| r.get(0))?;
        set_state(conn, "device_id", &id)?;
        set_state(conn, "format", &FORMAT)?;
        conn.execute(
            "INSERT OR IGNORE INTO sync_devices(device_id, device_name, is_authorized) VALUES (?1, 'this device', 1)",
            [&id],
        )?;
        Ok(id)
    })
}

fn device_id_opt(conn: &Connection) -> Result<Option<String>> {
    let exists: bool =
        conn.query_row("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='sync_state'", [], |r| {
            r.get(0)
        })?;
    if !exists {
        return Ok(None);
    }
    // One read for both: this runs at the start of every call.
    let (id, format): (Option<String>, Option<i64>) = conn
        .prepare_cached("SELECT (SELECT value FROM sync_state WHERE key = 'device_id'), (SELECT value FROM sync_state WHERE key = 'format')")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if id.is_some() && format != Some(FORMAT) {
        upgrade(conn)?;
    }
    Ok(id)
}

/// Brings a database made by an earlier peersync to [`FORMAT`], once.
fn upgrade(conn: &Connection) -> Result<()> {
    crate::tx::write(conn, |conn| {
        match get_state::<i64>(conn, "format")? {
        Some(FORMAT) => Ok(()),
        Some(newer) if newer > FORMAT => Err(Error::invalid(format!(
            "this database's sync tables are in format {newer}, made by a newer peersync (this one, {}, reads format {FORMAT}); use a peersync as new as the one that last wrote it",
            crate::VERSION
        ))),
        _ => {
            crate::runs::rebuild(conn)?;
            set_state(conn, "format", &FORMAT)
        }
    }
    })
}

/// This database's device id, or [`Error::NotInitialised`].
pub fn device_id(conn: &Connection) -> Result<String> {
    device_id_opt(conn)?.ok_or(Error::NotInitialised)
}

pub fn get_state<T: rusqlite::types::FromSql>(conn: &Connection, key: &str) -> Result<Option<T>> {
    Ok(conn.prepare_cached("SELECT value FROM sync_state WHERE key = ?1")?.query_row([key], |r| r.get(0)).optional()?)
}

pub fn set_state(conn: &Connection, key: &str, value: &dyn rusqlite::ToSql) -> Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO sync_state(key, value) VALUES (?1, ?2)")?
        .execute(params![key, value])?;
    Ok(())
}
