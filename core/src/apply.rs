//! `sync_apply`: verifies a batch (format, hashes, chains, signatures) and merges it, atomically.
use crate::change::{Change, Op};
use crate::changes::Batch;
use crate::devices::is_device_id;
use crate::error::{Error, Result};
use crate::log::{head, set_head, Writer};
use crate::merge::{Merger, Record};
use crate::prepare::{describe, Place, Preparer};
use crate::table::Tables;
use rusqlite::Connection;
use serde::Serialize;
use std::collections::HashMap;

/// What `sync_apply` reports.
#[derive(Debug, Serialize)]
pub struct Applied {
    /// Changes new to this database, logged and merged.
    pub accepted: i64,
    /// Changes this database already held (same hash).
    pub duplicates: i64,
    /// Changes left for a later batch: an earlier version of their origin, or a change they
    /// are based on, is not here yet.
    pub deferred: i64,
    /// Changes from devices this device has revoked (relayed by others): refused.
    pub refused: i64,
    /// The devices those refused changes came from.
    pub refused_devices: Vec<String>,
    /// Conflicts detected while merging (pending ones wait for `sync_resolve`).
    pub conflicts: Vec<crate::conflicts::Summary>,
    /// Resolutions this device wrote (local_wins / remote_wins tables).
    pub resolutions: i64,
    /// This database's vector after the batch.
    pub vector: crate::changes::Vector,
}

/// The latest timestamp accepted (the end of the year 9999, in microseconds): far enough for
/// any clock, and far from the i64 limit, so a hybrid clock that passed it still moves on.
pub const MAX_TIMESTAMP: i64 = 253_402_300_799_999_999;

fn is_hash(s: &str) -> bool {
    crate::devices::is_hex(s, 64)
}

/// Parses a batch, with an error that says what is wrong with it.
pub fn parse_batch(json: &str) -> Result<Batch> {
    // The plain parser is fast; on failure, parse again, tracking the path for the message.
    let batch = match serde_json::from_str::<Batch>(json) {
        Ok(b) => b,
        Err(_) => return Err(batch_error(json)),
    };
    check_batch_header(batch)
}

/// The error for a batch the parser refused, naming the field at fault.
fn batch_error(json: &str) -> Error {
    let de = &mut serde_json::Deserializer::from_str(json);
    match serde_path_to_error::deserialize::<_, Batch>(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            Error::invalid(format!("sync_apply: malformed batch: {inner}"))
        } else {
            Error::invalid(format!("sync_apply: malformed batch: field {path}: {inner}"))
        }
    }) {
        Err(e) => e,
        Ok(_) => Error::invalid("sync_apply: malformed batch"),
    }
}

fn check_batch_header(batch: Batch) -> Result<Batch> {
    let bad = |what: String| Err(Error::invalid(format!("sync_apply: malformed batch: {what}")));
    for (dev, v) in &batch.vector {
        if !is_device_id(dev) || *v < 0 {
            return bad(format!(
                "vector entry {:?}: {} (keys are device ids, 32 lowercase hex characters; versions are >= 0)",
                crate::ident::shown(dev),
                v
            ));
        }
    }
    for (field, map) in [("heads", &batch.heads), ("prevs", &batch.prevs)] {
        for (dev, h) in map {
            if !is_device_id(dev) || !(is_hash(h) || (field == "prevs" && h.is_empty())) {
                return bad(format!(
                    "{field} entry {:?}: keys are device ids and values 64 lowercase hex characters",
                    crate::ident::shown(dev)
                ));
            }
        }
    }
    // The envelope must not contradict the batch's own changes.
    for e in &batch.changes {
        if batch.vector.get(&*e.device_id) == Some(&e.version)
            && batch.heads.get(&*e.device_id).is_some_and(|h| *h != e.hash)
        {
            return bad(format!(
                "heads names another hash for {}:{} than the batch's own change",
                crate::ident::shown(&e.device_id),
                e.version
            ));
        }
    }
    // Each origin's changes come in consecutive versions, as `sync_changes` makes them (an
    // exact repeat of an earlier entry aside).
    let mut runs = crate::prepare::Runs::default();
    for e in &batch.changes {
        if let Place::Out { last } = runs.place(e) {
            return bad(format!(
                "change {}:{} follows version {last} of the same device; each device's changes must come in consecutive versions",
                crate::ident::shown(&e.device_id), e.version
            ));
        }
    }
    if !is_device_id(&batch.device_id) {
        return Err(Error::invalid(format!(
            "sync_apply: malformed batch: device_id (the sender) must be 32 lowercase hex characters, not {:?}",
            batch.device_id
        )));
    }
    if batch.format != crate::changes::FORMAT {
        return Err(Error::invalid(format!(
            "sync_apply: batch format {} is not supported (this peersync reads format {})",
            batch.format,
            crate::changes::FORMAT
        )));
    }
    Ok(batch)
}

/// Applies `batch` in one transaction: all of it, or (on any error) none of it.
///
/// When the connection enforces foreign keys, the batch is first applied with the checks
/// deferred to its commit: a batch is in its origin's order, in which a cascaded child
/// change can come before its parent's. If the batch as a whole still violates a foreign
/// key, it is applied again with immediate checks, so the offending changes become
/// `constraint` conflicts and the rest applies.
///
/// A batch that forks a chain held here is rejected and, when the call is not inside the
/// caller's own transaction, its sender is quarantined (see `quarantine.rs`); batches from a
/// quarantined sender are refused.
pub fn apply(conn: &Connection, batch: &Batch) -> Result<Applied> {
    crate::schema::device_id(conn)?;
    crate::quarantine::check_sender(conn, &batch.device_id)?;
    let autocommit = conn.is_autocommit();
    let fk: bool = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
    let mut result = None;
    if fk && autocommit {
        match apply_once(conn, batch, true) {
            Err(Error::Sqlite(rusqlite::Error::SqliteFailure(f, _)))
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {}
            other => result = Some(other),
        }
    }
    let result = result.unwrap_or_else(|| apply_once(conn, batch, false));
    if let (Err(Error::Fork(fork)), true) = (&result, autocommit) {
        crate::quarantine::record(conn, &batch.device_id, fork)?;
    }
    result
}

fn apply_once(conn: &Connection, batch: &Batch, defer_fk: bool) -> Result<Applied> {
    let me = crate::schema::device_id(conn)?;
    conn.set_prepared_statement_cache_capacity(64);
    let _cache = crate::tx::BiggerCache::new(conn);
    crate::tx::write(conn, |conn| {
        if defer_fk {
            conn.execute_batch("PRAGMA defer_foreign_keys = ON")?;
        }
        crate::seal::seal(conn)?;
        let tables = Tables::load(conn)?;
        crate::quarantine::detect(conn, &me, batch)?;
        let verdict = crate::sign::check_batch(conn, &me, batch)?;
        let mut heads: HashMap<String, (i64, String)> = HashMap::new();
        for e in &batch.changes {
            if !heads.contains_key(&*e.device_id) {
                heads.insert(e.device_id.to_string(), head(conn, &e.device_id)?);
            }
        }
        // Hashing and parsing run beside the merge (on a second thread for a large batch). The
        // signatures' verdict on the hashes comes first: a batch it refuses is not merged, and
        // its error is the one reported whatever else the merge found.
        let (merged, matched) = std::thread::scope(|s| {
            let mut prep = Preparer::spawn(s, batch, &tables, &heads);
            let merged =
                (!verdict.refuses(batch)).then(|| merge_all(conn, batch, &tables, &verdict, heads.clone(), &mut prep));
            (merged, prep.finish())
        });
        verdict.confirm(batch, &matched)?;
        let applied = merged.unwrap_or_else(|| {
            Err(Error::Integrity("sync_apply: the batch's signatures do not vouch for its changes".into()))
        })?;
        crate::sign::store_batch_signatures(conn, batch)?;
        Ok(applied)
    })
}

/// Merges the batch's changes one by one, in its order (the body of [`apply_once`]).
fn merge_all<'b>(
    conn: &Connection,
    batch: &'b Batch,
    tables: &Tables,
    verdict: &crate::sign::Verdict,
    mut heads: HashMap<String, (i64, String)>,
    prep: &mut Preparer<'b>,
) -> Result<Applied> {
    // Origins whose remaining changes in this batch wait for a later one.
    let mut blocked = verdict.deferred.clone();
    let mut names: Vec<&str> = batch.changes.iter().map(|c| &*c.table_name).collect();
    names.sort_unstable();
    names.dedup();
    let mut paused = Vec::new();
    for n in names {
        match tables.get(n) {
            Some(t) => paused.push(t.id),
            None => {
                return Err(Error::invalid(format!(
                    "sync_apply: table \"{}\" is not tracked here (create it and run sync_track on it first)",
                    crate::ident::shown(n)
                )))
            }
        }
    }
    // What the sender holds is known now, so changes every authorized peer holds are
    // logged as synced at once rather than marked afterwards.
    let noted = crate::peers::record(conn, &batch.device_id, &batch.vector)?;
    let floors = crate::peers::floors(conn)?;
    let restore = crate::track::pause_capture(conn, &paused, batch.changes.len())?;
    let mut m = Merger::new(conn)?;
    let mut advanced: std::collections::BTreeSet<&str> = Default::default();
    let (mut accepted, mut duplicates, mut deferred, mut refused) = (0i64, 0i64, 0i64, 0i64);
    for e in &batch.changes {
        let p = prep.next();
        let what = || describe(e);
        if !is_device_id(&e.device_id) {
            return Err(Error::invalid(format!("{}: device_id must be 32 lowercase hex characters", what())));
        }
        if e.version < 1 || !(0..=MAX_TIMESTAMP).contains(&e.timestamp) {
            return Err(Error::invalid(format!(
                "{}: version must be >= 1 and timestamp between 0 and {MAX_TIMESTAMP} (microseconds; the year 9999)",
                what()
            )));
        }
        if !is_hash(&e.hash) {
            return Err(Error::invalid(format!("{}: hash must be 64 lowercase hex characters", what())));
        }
        let op = Op::parse(&e.operation)
            .ok_or_else(|| Error::invalid(format!("{}: unknown operation \"{}\"", what(), e.operation)))?;
        if verdict.revoked.contains(&*e.device_id) {
            refused += 1;
            continue;
        }
        if blocked.contains(&*e.device_id) {
            deferred += 1;
            continue;
        }
        let (have, prev_hash) = heads.get(&*e.device_id).map_or((0, ""), |(v, h)| (*v, h.as_str()));
        if e.version <= have {
            // Held already; `quarantine::detect` made sure with the same hash.
            duplicates += 1;
            continue;
        }
        if e.version > have + 1 {
            blocked.insert(e.device_id.to_string());
            deferred += 1;
            continue;
        }
        let hash_ok = match p.hash {
            Some((prev, matched)) if prev == prev_hash => matched,
            _ => e.compute_hash(prev_hash) == e.hash,
        };
        if !hash_ok {
            return Err(crate::prepare::hash_mismatch(e));
        }
        let t = tables.get(&e.table_name).unwrap();
        let (key, change) = match p.parsed {
            Some(parsed) => parsed?,
            None => crate::prepare::parse(t, op, e)?,
        };
        // A change can arrive before a change it is based on (a batch made for another
        // peer's vector, say): leave it, and its origin's later ones, for a later batch.
        if !bases_held(conn, &mut heads, &change)? {
            blocked.insert(e.device_id.to_string());
            deferred += 1;
            continue;
        }
        let id = e.insert(&mut m.hot, floors.get(&*e.device_id).is_some_and(|&f| e.version <= f))?;
        m.writers.logged(
            id,
            Writer {
                device_id: e.device_id.clone(),
                version: e.version,
                timestamp: e.timestamp,
                resolution: e.resolution,
            },
        );
        m.local.clock.receive(e.timestamp);
        let rec = Record { t, rid: &e.record_id, key };
        m.merge_remote(&rec, &change, id, &e.change_data)?;
        prep.done((rec.key, change));
        match heads.get_mut(&*e.device_id) {
            Some(head) => {
                head.0 = e.version;
                head.1.clone_from(&e.hash);
            }
            None => _ = heads.insert(e.device_id.to_string(), (e.version, e.hash.clone())),
        }
        advanced.insert(&e.device_id);
        accepted += 1;
    }
    for dev in advanced {
        let (version, hash) = &heads[dev];
        set_head(conn, dev, *version, hash)?;
    }
    m.local.finish(conn, &mut m.writers)?;
    crate::track::resume_capture(conn, restore)?;
    let last: i64 = conn.query_row("SELECT ifnull(max(id), 0) FROM sync_log", [], |r| r.get(0))?;
    crate::schema::set_state(conn, "sealed_upto", &last)?;
    if noted {
        crate::peers::mark_synced(conn, &floors)?;
    }
    Ok(Applied {
        accepted,
        duplicates,
        deferred,
        refused,
        refused_devices: verdict.revoked.iter().cloned().collect(),
        conflicts: m.conflicts,
        resolutions: m.resolutions,
        vector: crate::vector(conn)?,
    })
}

/// Whether this database holds every change that `ch`'s bases name.
fn bases_held(conn: &Connection, heads: &mut HashMap<String, (i64, String)>, ch: &Change) -> Result<bool> {
    let refs = ch
        .live
        .iter()
        .chain(ch.writes.iter().flat_map(|w| w.base.iter()))
        .chain(ch.seen.iter().flatten().filter_map(|(_, r)| r.as_ref()));
    for r in refs {
        let Some((dev, version)) = crate::log::parse_reference(r) else { continue };
        if !heads.contains_key(dev) {
            heads.insert(dev.to_string(), head(conn, dev)?);
        }
        if version > heads[dev].0 {
            return Ok(false);
        }
    }
    Ok(true)
}
