//! The sync tables' DDL and layout number, and the engine's small key-value state (`sync_state`).
//!
//! Every table peersync owns is created here, and only here. Moving a database from an older
//! layout to [`LAYOUT`] is `store/format.rs`, the one migration path.
use crate::error::Result;
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
    "sync_introductions",
    "sync_waiting",
    "sync_quota",
    "sync_divergences",
    "sync_peers",
    "sync_schema_waiting",
    "sync_anchors",
];

/// The layout of the sync tables this engine writes (`format` in `sync_state`). Format 1
/// found changes through an index on `sync_log(device_id, version)`; format 2 through
/// `sync_runs`; format 3 adds introductions (`sync_introductions`,
/// `sync_devices.introduced_by`), the changes waiting here (`sync_waiting`) and each origin's
/// write quota (`sync_quota`); format 4 the audit's divergences (`sync_divergences`), the
/// peers this device syncs with and how that goes, what each holds back (`sync_peers`, the
/// configured ones among them: `configured`, `added_at`, `source`), each device's last refusal
/// and audit (`sync_devices.last_error`, `last_error_at`, `last_audit`, `last_audit_at`), the
/// received changes whose effect waits for this database's schema (`sync_schema_waiting`),
/// when a tracked table was found dropped (`sync_tables.dropped_at`), and shared strategies:
/// who set each table's strategy, and when (`sync_tables.strategy_by`, `strategy_at`,
/// `strategy_version`), and revocations as signed events: when this device paired each
/// device last, and the revocation in force (`sync_devices.trusted_at`, `revoked_by`,
/// `revoked_at`, `revoked_version`); format 5 the identity a recovered device goes on as
/// (`sync_devices.succeeded_by`); format 6 each origin's chain anchor, below which its
/// superseded changes were compacted away (`sync_anchors`).
pub const LAYOUT: i64 = 6;

/// Columns format 4 added to `sync_devices`.
pub const DEVICE_COLUMNS_4: &[&str] = &[
    "last_error TEXT",
    "last_error_at TEXT",
    "last_audit TEXT",
    "last_audit_at TEXT",
    "trusted_at INTEGER",
    "revoked_by TEXT",
    "revoked_at INTEGER",
    "revoked_version INTEGER",
];

/// Columns format 4 added to `sync_peers` after it first appeared (a peer configured by
/// `peersync peers add` or pairing, when, and by what), with their types.
pub const PEER_COLUMNS_4: &[(&str, &str)] =
    &[("configured", "INTEGER NOT NULL DEFAULT 0"), ("added_at", "TEXT"), ("source", "TEXT")];

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
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  introduced_by TEXT,
  last_error TEXT,
  last_error_at TEXT,
  last_audit TEXT,
  last_audit_at TEXT,
  trusted_at INTEGER,
  revoked_by TEXT,
  revoked_at INTEGER,
  revoked_version INTEGER,
  succeeded_by TEXT
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
  active INTEGER NOT NULL DEFAULT 1,
  dropped_at TEXT,
  strategy_by TEXT,
  strategy_at INTEGER,
  strategy_version INTEGER
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
CREATE TABLE IF NOT EXISTS sync_runs(
  device_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  id INTEGER NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY(device_id, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sync_introductions(
  device_id TEXT NOT NULL,
  by TEXT NOT NULL,
  public_key TEXT NOT NULL,
  device_name TEXT,
  signature TEXT NOT NULL,
  outcome TEXT NOT NULL,
  received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  PRIMARY KEY(device_id, by)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sync_waiting(
  origin TEXT NOT NULL,
  reason TEXT NOT NULL,
  version INTEGER NOT NULL,
  detail TEXT NOT NULL,
  offered_by TEXT NOT NULL,
  first_seen TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  last_seen TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  PRIMARY KEY(origin, reason)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sync_schema_waiting(
  log_id INTEGER PRIMARY KEY,
  table_name TEXT NOT NULL,
  record_id TEXT NOT NULL,
  reason TEXT NOT NULL,
  detail TEXT NOT NULL,
  missing TEXT NOT NULL DEFAULT '[]',
  since TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE INDEX IF NOT EXISTS sync_schema_waiting_record ON sync_schema_waiting(table_name, record_id);
CREATE TABLE IF NOT EXISTS sync_quota(
  origin TEXT PRIMARY KEY,
  bytes REAL NOT NULL,
  at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sync_divergences(
  peer TEXT NOT NULL,
  table_name TEXT NOT NULL,
  vector TEXT NOT NULL,
  local_digest TEXT NOT NULL,
  peer_digest TEXT NOT NULL,
  records TEXT,
  first_seen TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  last_seen TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  PRIMARY KEY(peer, table_name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sync_peers(
  url TEXT PRIMARY KEY,
  device_id TEXT,
  last_success_at TEXT,
  last_error TEXT,
  last_error_at TEXT,
  failing_since TEXT,
  failures INTEGER NOT NULL DEFAULT 0,
  lacks INTEGER,
  configured INTEGER NOT NULL DEFAULT 0,
  added_at TEXT,
  source TEXT,
  held_there TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sync_anchors(
  device_id TEXT PRIMARY KEY,
  version INTEGER NOT NULL,
  hash TEXT NOT NULL,
  signature TEXT,
  removed INTEGER NOT NULL DEFAULT 0,
  at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sync_quarantine(
  device_id TEXT PRIMARY KEY,
  origin TEXT NOT NULL,
  version INTEGER NOT NULL,
  reason TEXT NOT NULL,
  detected_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
) WITHOUT ROWID;
"#;

/// Creates every sync table that does not exist yet (idempotent).
pub fn create(conn: &Connection) -> Result<()> {
    conn.execute_batch(SCHEMA)?;
    Ok(())
}

/// Whether table `name` exists.
pub fn has_table(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1")?
        .query_row([name], |r| r.get(0))?)
}

/// Whether table `table` has column `column`.
pub fn has_column(conn: &Connection, table: &str, column: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2")?
        .query_row([table, column], |r| r.get(0))?)
}

/// This database's device id and the layout of its sync tables, as stored (None before `sync_init`).
pub fn identity(conn: &Connection) -> Result<Option<(String, Option<i64>)>> {
    if !has_table(conn, "sync_state")? {
        return Ok(None);
    }
    // One read for both: this runs at the start of every call.
    let (id, format): (Option<String>, Option<i64>) = conn
        .prepare_cached("SELECT (SELECT value FROM sync_state WHERE key = 'device_id'), (SELECT value FROM sync_state WHERE key = 'format')")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(id.map(|id| (id, format)))
}

pub fn get_state<T: rusqlite::types::FromSql>(conn: &Connection, key: &str) -> Result<Option<T>> {
    Ok(conn.prepare_cached("SELECT value FROM sync_state WHERE key = ?1")?.query_row([key], |r| r.get(0)).optional()?)
}

pub fn set_state(conn: &Connection, key: &str, value: &dyn rusqlite::ToSql) -> Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO sync_state(key, value) VALUES (?1, ?2)")?
        .execute(params![key, value])?;
    Ok(())
}
