//! Snapshots: a device that lacks changes compacted away everywhere (a new device, or one
//! away past the anchors) joins from another device's current state instead of its history.
//!
//! [`take`] writes a snapshot file: a SQLite database holding, read in one transaction, the
//! tracked tables' rows, their slot state, the log as it stands (compacted or not), each
//! origin's runs, head, anchor and signatures, and the vector it was taken at. No untracked
//! table and nothing about the source's peers, conflicts or keys is in it. [`bootstrap`]
//! replaces this database's tracked rows and log with a snapshot's, in one transaction that
//! commits only if every chain then verifies from its anchor (anchors' signatures included).
use super::verify::verify;
use crate::capture::follow::seal;
use crate::capture::{pause_capture, resume_capture};
use crate::db::ident::{quote_ident, quote_list};
use crate::db::tx;
use crate::error::{Error, Result};
use crate::model::clock::Clock;
use crate::store::format::device_id;
use crate::store::log::{entry, head, mark_sealed, ENTRY_COLUMNS};
use crate::trust::{devices, succession};
use crate::wire::{is_revocation, is_succession, parse_revocation, parse_succession, Entry, Vector, REVOCATIONS_TABLE};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// The layout of a snapshot file this engine writes and reads.
pub const SNAPSHOT_FORMAT: i64 = 1;

/// The `sync_log` columns a snapshot carries, in order.
const LOG: &str = "id, table_name, record_id, operation, change_data, device_id, version, timestamp, hash, is_synced, bases, resolution";

/// What a snapshot holds, as [`take`] and [`bootstrap`] report it.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// The device it was taken on.
    pub device_id: String,
    /// The vector it was taken at.
    pub vector: Vector,
    /// Rows of the tracked tables.
    pub rows: i64,
    /// Changes in its log.
    pub changes: i64,
}

/// Detaches the snapshot database whatever happens.
struct Attached<'c>(&'c Connection);

impl<'c> Attached<'c> {
    fn new(conn: &'c Connection, path: &str, what: &str) -> Result<Attached<'c>> {
        if !conn.is_autocommit() {
            return Err(Error::invalid(format!("{what}: cannot run inside a transaction")));
        }
        conn.execute("ATTACH DATABASE ?1 AS peersync_snapshot", [path])?;
        Ok(Attached(conn))
    }
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        if !self.0.is_autocommit() {
            let _ = self.0.execute_batch("ROLLBACK");
        }
        let _ = self.0.execute_batch("DETACH DATABASE peersync_snapshot");
    }
}

/// Writes a snapshot of this database to a new file at `path` (which must not exist).
pub fn take(conn: &Connection, path: &str) -> Result<Snapshot> {
    let me = device_id(conn)?;
    seal(conn)?;
    // Made here, empty and owner-only, so that a connection opened without SQLITE_OPEN_CREATE
    // can attach it, and the rows in it are nobody else's to read.
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
    file.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Error::invalid(format!("snapshot: {path} exists already")),
        _ => Error::invalid(format!("snapshot: cannot create {path}: {e}")),
    })?;
    let written = write(conn, path, &me);
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}

/// [`take`]'s work once the empty file is there.
fn write(conn: &Connection, path: &str, me: &str) -> Result<Snapshot> {
    let att = Attached::new(conn, path, "snapshot")?;
    let c = att.0;
    // One read of the source (and the only writes go to the new file): app writes go on.
    c.execute_batch("BEGIN")?;
    let s = "peersync_snapshot";
    c.execute_batch(&format!(
        "CREATE TABLE {s}.info(key TEXT PRIMARY KEY, value);
         CREATE TABLE {s}.log AS SELECT {LOG} FROM main.sync_log WHERE version IS NOT NULL;
         CREATE TABLE {s}.runs AS SELECT device_id, version, id, count FROM main.sync_runs;
         CREATE TABLE {s}.heads AS SELECT device_id, version, hash FROM main.sync_vector;
         CREATE TABLE {s}.anchors AS SELECT device_id, version, hash, signature, removed FROM main.sync_anchors;
         CREATE TABLE {s}.signatures AS SELECT device_id, version, hash, signature FROM main.sync_signatures;
         CREATE TABLE {s}.tables AS SELECT t.id, t.name, t.strategy, t.columns, t.strategy_by, t.strategy_at, t.strategy_version
           FROM main.sync_tables t WHERE t.active AND t.name IN (SELECT name FROM main.sqlite_master WHERE type = 'table');
         CREATE TABLE {s}.meta AS SELECT t.name AS table_name, m.record_id, m.live, m.alive, m.cw, m.cols
           FROM main.sync_meta m JOIN {s}.tables t ON t.id = m.tbl;"
    ))?;
    let tables: Vec<(i64, String, String)> = c
        .prepare(&format!("SELECT id, name, columns FROM {s}.tables"))?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut rows = 0;
    for (id, name, columns) in &tables {
        let cols: Vec<String> = serde_json::from_str(columns)?;
        c.execute_batch(&format!(
            "CREATE TABLE {s}.rows_{id} AS SELECT {} FROM main.{}",
            quote_list("", &cols),
            quote_ident(name)
        ))?;
        rows += c.query_row(&format!("SELECT count(*) FROM {s}.rows_{id}"), [], |r| r.get::<_, i64>(0))?;
    }
    let vector = super::export::vector(c)?;
    let changes: i64 = c.query_row(&format!("SELECT count(*) FROM {s}.log"), [], |r| r.get(0))?;
    for (k, v) in [
        ("format", SNAPSHOT_FORMAT.to_string()),
        ("device_id", me.to_string()),
        ("vector", serde_json::to_string(&vector)?),
    ] {
        c.execute(&format!("INSERT INTO {s}.info(key, value) VALUES (?1, ?2)"), params![k, v])?;
    }
    c.execute_batch("COMMIT")?;
    drop(att);
    Ok(Snapshot { device_id: me.to_string(), vector, rows, changes })
}

/// Takes up the trust events of the log a snapshot brought (revocations and successions: the
/// source applied them when they reached it, and they will not reach this device again), in
/// log order. Strategies come with the snapshot's table settings.
fn trust_events(conn: &Connection, me: &str) -> Result<()> {
    let mut stmt = conn.prepare(&format!("SELECT {ENTRY_COLUMNS} FROM sync_log WHERE table_name = ?1 ORDER BY id"))?;
    let events: Vec<Entry> = stmt.query_map([REVOCATIONS_TABLE], entry)?.collect::<rusqlite::Result<_>>()?;
    for e in events.iter().filter(|e| is_revocation(e)) {
        if is_succession(e) {
            succession::receive(conn, me, &parse_succession(e)?)?;
        } else {
            devices::receive_revocation(conn, me, &e.device_id, e.version, e.timestamp, &parse_revocation(e)?)?;
        }
    }
    Ok(())
}

/// Replaces this database's tracked rows and log with the snapshot at `path`, taken on a
/// trusted device. Refused, changing nothing, when this device holds changes of its own the
/// snapshot lacks (push them first), has pending conflicts, lacks a tracked table the snapshot
/// has (or tracks it with other columns), or when the result would not verify.
pub fn bootstrap(conn: &Connection, path: &str) -> Result<Snapshot> {
    let me = device_id(conn)?;
    seal(conn)?;
    let att = Attached::new(conn, path, "bootstrap")?;
    let c = att.0;
    let s = "peersync_snapshot";
    let info = |key: &str| -> Result<Option<String>> {
        Ok(c.query_row(&format!("SELECT CAST(value AS TEXT) FROM {s}.info WHERE key = ?1"), [key], |r| r.get(0))
            .optional()?)
    };
    let not_snapshot = || Error::invalid(format!("bootstrap: {path} is not a peersync snapshot"));
    let format = c.query_row(&format!("SELECT count(*) FROM {s}.sqlite_master WHERE name = 'info'"), [], |r| {
        r.get::<_, i64>(0)
    })?;
    if format == 0 {
        return Err(not_snapshot());
    }
    if info("format")?.as_deref() != Some(&SNAPSHOT_FORMAT.to_string()) {
        return Err(Error::invalid(format!(
            "bootstrap: the snapshot's format is {}, this peersync reads {SNAPSHOT_FORMAT}",
            info("format")?.unwrap_or_default()
        )));
    }
    let source = info("device_id")?.ok_or_else(not_snapshot)?;
    let vector: Vector = serde_json::from_str(&info("vector")?.ok_or_else(not_snapshot)?)?;
    let own = head(c, &me)?.0;
    if own > vector.get(&me).copied().unwrap_or(0) {
        return Err(Error::invalid(format!(
            "bootstrap: this device has changes of its own (up to version {own}) the snapshot lacks (it holds {}): push them to {source} first, then take a new snapshot",
            vector.get(&me).copied().unwrap_or(0)
        )));
    }
    let pending: i64 = c.query_row("SELECT count(*) FROM sync_conflicts WHERE status = 'pending'", [], |r| r.get(0))?;
    if pending > 0 {
        return Err(Error::invalid(format!(
            "bootstrap: this device has {pending} pending conflict(s); resolve them first (`peersync conflicts`)"
        )));
    }
    let tables: Vec<(i64, String, String, i64)> = c
        .prepare(&format!(
            "SELECT s.id, s.name, s.columns, l.id FROM {s}.tables s LEFT JOIN main.sync_tables l ON l.name = s.name AND l.active AND l.columns = s.columns"
        ))?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, Option<i64>>(3)?.unwrap_or(0))))?
        .collect::<rusqlite::Result<_>>()?;
    if let Some((_, name, columns, _)) = tables.iter().find(|t| t.3 == 0) {
        return Err(Error::invalid(format!(
            "bootstrap: the snapshot's table \"{}\" (columns {columns}) is not tracked here with those columns: create and track it first (`peersync pair` does)",
            crate::wire::shown(name)
        )));
    }
    let out = tx::write(c, |c| {
        let ids: Vec<i64> = tables.iter().map(|t| t.3).collect();
        let paused = pause_capture(c, &ids, usize::MAX)?;
        let mut rows = 0;
        for (snap_id, name, columns, _) in &tables {
            let cols: Vec<String> = serde_json::from_str(columns)?;
            let list = quote_list("", &cols);
            c.execute_batch(&format!("DELETE FROM main.{}", quote_ident(name)))?;
            rows += c.execute(
                &format!("INSERT INTO main.{}({list}) SELECT {list} FROM {s}.rows_{snap_id}", quote_ident(name)),
                [],
            )? as i64;
        }
        c.execute_batch(&format!(
            "DELETE FROM main.sync_log;
             INSERT INTO main.sync_log({LOG}) SELECT {LOG} FROM {s}.log;
             DELETE FROM main.sync_runs;
             INSERT INTO main.sync_runs(device_id, version, id, count) SELECT device_id, version, id, count FROM {s}.runs;
             DELETE FROM main.sync_vector;
             INSERT INTO main.sync_vector(device_id, version, hash) SELECT device_id, version, hash FROM {s}.heads;
             DELETE FROM main.sync_anchors;
             INSERT INTO main.sync_anchors(device_id, version, hash, signature, removed) SELECT device_id, version, hash, signature, removed FROM {s}.anchors;
             INSERT OR REPLACE INTO main.sync_signatures(device_id, version, hash, signature) SELECT device_id, version, hash, signature FROM {s}.signatures;
             DELETE FROM main.sync_meta;
             INSERT INTO main.sync_meta(tbl, record_id, live, alive, cw, cols)
               SELECT l.id, m.record_id, m.live, m.alive, m.cw, m.cols FROM {s}.meta m JOIN main.sync_tables l ON l.name = m.table_name AND l.active;
             DELETE FROM main.sync_schema_waiting;
             DELETE FROM main.sync_conflicts WHERE status = 'pending';
             UPDATE main.sync_tables SET (strategy, strategy_by, strategy_at, strategy_version) =
               (SELECT strategy, strategy_by, strategy_at, strategy_version FROM {s}.tables t WHERE t.name = sync_tables.name)
               WHERE active AND name IN (SELECT name FROM {s}.tables);
             DELETE FROM main.sync_peer_vectors WHERE peer = '';"
        ))?;
        resume_capture(c, paused)?;
        trust_events(c, &me)?;
        mark_sealed(c)?;
        let mut clock = Clock::load(c)?;
        clock.receive(c.query_row("SELECT ifnull(max(timestamp), 0) FROM sync_log", [], |r| r.get(0))?);
        clock.save(c)?;
        let checked = verify(c)?;
        if checked["ok"] != true {
            return Err(Error::Integrity(format!(
                "bootstrap: the snapshot from {source} does not verify; nothing was changed: {}",
                checked["problems"]
            )));
        }
        let changes: i64 = c.query_row("SELECT count(*) FROM sync_log", [], |r| r.get(0))?;
        Ok(Snapshot { device_id: source.clone(), vector: vector.clone(), rows, changes })
    })?;
    drop(att);
    Ok(out)
}
