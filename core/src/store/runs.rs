//! Where each origin's changes sit in `sync_log`: `sync_runs`, one row per run of consecutive
//! versions at consecutive log ids.
//!
//! A batch from one origin is logged as one run, so finding `device:version` is arithmetic on
//! a few rows rather than one index entry per change (an index on `(device_id, version)` cost
//! about a tenth of `sync_apply`). A write transaction notes what it logs in a [`Pending`]
//! and writes its runs once, at its end. Every lookup in the stored runs is checked against
//! the log row it lands on, so a log changed by hand is never misread.
use crate::error::{Error, Result};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::sync::Arc;

/// Versions `version .. version + count` of one origin, at log ids `id .. id + count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub version: i64,
    pub id: i64,
    pub count: i64,
}

impl Run {
    /// Reads a run from a row selected as `version, id, count`.
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
        Ok(Run { version: r.get(0)?, id: r.get(1)?, count: r.get(2)? })
    }
    fn end(&self) -> i64 {
        self.version + self.count
    }
    /// The log id of `version`, if the run holds it.
    fn id_of(&self, version: i64) -> Option<i64> {
        (self.version..self.end()).contains(&version).then(|| self.id + (version - self.version))
    }
    /// Whether `version` at log id `id` comes right after this run.
    fn continues(&self, version: i64, id: i64) -> bool {
        version == self.end() && id == self.id + self.count
    }
}

/// The runs a write transaction has logged and not yet written to `sync_runs`.
#[derive(Default)]
pub struct Pending {
    by_device: HashMap<Arc<str>, Vec<Run>>,
}

impl Pending {
    /// Notes that `device:version` was just logged at `id`.
    pub fn note(&mut self, device: &Arc<str>, version: i64, id: i64) {
        let runs = match self.by_device.get_mut(device) {
            Some(r) => r,
            None => self.by_device.entry(device.clone()).or_default(),
        };
        match runs.last_mut() {
            Some(last) if last.continues(version, id) => last.count += 1,
            _ => runs.push(Run { version, id, count: 1 }),
        }
    }

    /// The log id of `device:version`, if this transaction logged it.
    pub fn id_of(&self, device: &str, version: i64) -> Option<i64> {
        find(self.by_device.get(device)?, version)
    }

    /// Writes the noted runs to `sync_runs`, each joined to the stored run it continues.
    /// A run that overlaps one already stored (a change logged twice) is an error: the
    /// transaction must not commit.
    pub fn flush(&mut self, conn: &Connection) -> Result<()> {
        for (device, runs) in self.by_device.drain() {
            for run in runs {
                store(conn, &device, run)?;
            }
        }
        Ok(())
    }
}

/// The log id of `version` in `runs` (one origin's, in version order).
pub fn find(runs: &[Run], version: i64) -> Option<i64> {
    let k = runs.partition_point(|r| r.version <= version);
    runs[..k].last()?.id_of(version)
}

fn store(conn: &Connection, device: &str, run: Run) -> Result<()> {
    let before = stored_at(conn, device, run.version)?;
    let after: Option<i64> = conn
        .prepare_cached(
            "SELECT version FROM sync_runs WHERE device_id = ?1 AND version >= ?2 ORDER BY version LIMIT 1",
        )?
        .query_row(params![device, run.version], |r| r.get(0))
        .optional()?;
    if before.is_some_and(|b| b.end() > run.version) || after.is_some_and(|a| a < run.end()) {
        return Err(Error::Integrity(format!(
            "internal error: versions {}..{} of {device} would be logged twice; nothing was changed. Please report this",
            run.version,
            run.end() - 1
        )));
    }
    match before {
        Some(b) if b.continues(run.version, run.id) => {
            conn.prepare_cached("UPDATE sync_runs SET count = count + ?3 WHERE device_id = ?1 AND version = ?2")?
                .execute(params![device, b.version, run.count])?;
        }
        _ => {
            conn.prepare_cached("INSERT INTO sync_runs(device_id, version, id, count) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![device, run.version, run.id, run.count])?;
        }
    }
    Ok(())
}

/// The stored run of `device` that starts at or last before `version`.
fn stored_at(conn: &Connection, device: &str, version: i64) -> Result<Option<Run>> {
    Ok(conn
        .prepare_cached(
            "SELECT version, id, count FROM sync_runs WHERE device_id = ?1 AND version <= ?2 ORDER BY version DESC LIMIT 1",
        )?
        .query_row(params![device, version], Run::from_row)
        .optional()?)
}

/// The log id of `device:version` in the stored runs, if this database holds it there.
pub fn id_of(conn: &Connection, device: &str, version: i64) -> Result<Option<i64>> {
    Ok(lookup::<i64>(conn, device, version, "1")?.map(|(id, _)| id))
}

/// The hash of `device:version` held here, if it is: in the log, or as the origin's anchor
/// (the change itself may have been compacted away).
pub fn hash_at(conn: &Connection, device: &str, version: i64) -> Result<Option<String>> {
    match lookup(conn, device, version, "hash")? {
        Some((_, h)) => Ok(Some(h)),
        None => super::anchors::hash_at(conn, device, version),
    }
}

/// Finds `device:version`'s row through the stored runs and reads `column` from it; None when
/// no run holds it, or the row found is not that change (the log was changed by hand).
fn lookup<T: rusqlite::types::FromSql>(
    conn: &Connection,
    device: &str,
    version: i64,
    column: &str,
) -> Result<Option<(i64, T)>> {
    let Some(id) = stored_at(conn, device, version)?.and_then(|r| r.id_of(version)) else { return Ok(None) };
    Ok(conn
        .prepare_cached(&format!("SELECT {column} FROM sync_log WHERE id = ?1 AND device_id = ?2 AND version = ?3"))?
        .query_row(params![id, device, version], |r| r.get(0))
        .optional()?
        .map(|v| (id, v)))
}

/// Calls `each` on the stored runs of `device` in version order, from the one that holds
/// `version` (or the first after it), until it returns false.
fn walk(conn: &Connection, device: &str, version: i64, mut each: impl FnMut(Run) -> bool) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT version, id, count FROM sync_runs WHERE device_id = ?1 AND version >= ifnull((SELECT max(version) FROM sync_runs WHERE device_id = ?1 AND version <= ?2), 0) ORDER BY version",
    )?;
    let mut rows = stmt.query(params![device, version])?;
    while let Some(r) = rows.next()? {
        if !each(Run::from_row(r)?) {
            break;
        }
    }
    Ok(())
}

/// `(log id, version)` of `device`'s changes after version `since`, in version order, at most `n`.
pub fn after(conn: &Connection, device: &str, since: i64, n: usize) -> Result<Vec<(i64, i64)>> {
    let mut out = Vec::new();
    walk(conn, device, since + 1, |run| {
        for v in run.version.max(since + 1)..run.end() {
            if out.len() == n {
                return false;
            }
            out.push((run.id + (v - run.version), v));
        }
        true
    })?;
    Ok(out)
}

/// The log id ranges (inclusive) that hold `device`'s versions in `(from, to]`.
pub fn id_ranges(conn: &Connection, device: &str, from: i64, to: i64) -> Result<Vec<(i64, i64)>> {
    let mut out = Vec::new();
    walk(conn, device, from + 1, |run| {
        let (lo, hi) = (run.version.max(from + 1), (run.end() - 1).min(to));
        if lo <= hi {
            out.push((run.id + (lo - run.version), run.id + (hi - run.version)));
        }
        run.end() <= to
    })?;
    Ok(out)
}

/// The last version the stored runs of `device` hold (0 when none).
pub fn last_version(conn: &Connection, device: &str) -> Result<i64> {
    Ok(stored_at(conn, device, i64::MAX)?.map_or(0, |r| r.end() - 1))
}

/// Every stored run of `device`, in version order.
pub fn of_device(conn: &Connection, device: &str) -> Result<Vec<Run>> {
    let mut runs = Vec::new();
    walk(conn, device, 1, |run| {
        runs.push(run);
        true
    })?;
    Ok(runs)
}

/// Rewrites the stored runs of `device` that hold versions in `(from, to]` after some of
/// those versions left the log (compaction): `kept` lists the `(version, log id)` that remain
/// there, in version order. The versions of those runs outside the range stay as they were.
pub fn keep_only(conn: &Connection, device: &str, from: i64, to: i64, kept: &[(i64, i64)]) -> Result<()> {
    let mut overlapping = Vec::new();
    walk(conn, device, from + 1, |run| {
        if run.version > to {
            return false;
        }
        if run.end() > from + 1 {
            overlapping.push(run);
        }
        true
    })?;
    let mut insert =
        conn.prepare_cached("INSERT INTO sync_runs(device_id, version, id, count) VALUES (?1, ?2, ?3, ?4)")?;
    for run in &overlapping {
        conn.prepare_cached("DELETE FROM sync_runs WHERE device_id = ?1 AND version = ?2")?
            .execute(params![device, run.version])?;
        if run.version <= from {
            insert.execute(params![device, run.version, run.id, from + 1 - run.version])?;
        }
        if run.end() > to + 1 {
            insert.execute(params![device, to + 1, run.id + (to + 1 - run.version), run.end() - (to + 1)])?;
        }
    }
    let mut pending = Pending::default();
    let name: Arc<str> = device.into();
    for &(version, id) in kept {
        pending.note(&name, version, id);
    }
    pending.flush(conn)
}

/// Builds `sync_runs` from the log (for a database made before it existed, whose log had an
/// index on `(device_id, version)` instead, which this drops).
pub fn rebuild(conn: &Connection) -> Result<()> {
    conn.execute("DELETE FROM sync_runs", [])?;
    let mut pending = Pending::default();
    {
        let mut stmt = conn.prepare(
            "SELECT device_id, version, id FROM sync_log WHERE version IS NOT NULL ORDER BY device_id, version",
        )?;
        let mut rows = stmt.query([])?;
        let mut device: Arc<str> = "".into();
        while let Some(r) = rows.next()? {
            let d: &str = r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
            if *device != *d {
                pending.flush(conn)?;
                device = d.into();
            }
            pending.note(&device, r.get(1)?, r.get(2)?);
        }
    }
    pending.flush(conn)?;
    conn.execute_batch("DROP INDEX IF EXISTS sync_log_origin")?;
    Ok(())
}
