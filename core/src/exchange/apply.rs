//! `sync_apply`: verifies a batch (format, hashes, chains, signatures) and merges it, atomically.
use super::export::vector;
use super::held::{self, Why};
use super::peers;
use super::prepare::{self, Preparer};
use super::sign::{self, Verdict};
use crate::capture::follow::seal;
use crate::capture::{pause_capture, resume_capture};
use crate::db::ident::is_reserved_table;
use crate::db::tx;
use crate::error::{Error, Result};
use crate::merge::conflicts::Summary;
use crate::merge::merger::{Merger, Record};
use crate::model::change::{Change, Op};
use crate::model::table::{Strategy, Table, Tables};
use crate::store::format::device_id;
use crate::store::log::{self, head, set_head, Writer};
use crate::store::settings;
use crate::trust::devices;
use crate::trust::quota::Quota;
use crate::trust::waiting::{self, Held};
use crate::trust::{introductions, quarantine, succession};
use crate::wire::{
    check_entry, describe, hash_mismatch, is_revocation, is_setting, is_succession, parse_revocation, parse_setting,
    parse_succession, shown, Batch, Succession, Value, Vector, REVOCATIONS_TABLE, SETTINGS_TABLE,
};
use rusqlite::Connection;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// What `sync_apply` reports.
#[derive(Debug, Serialize)]
pub struct Applied {
    /// Changes new to this database, logged and merged.
    pub accepted: i64,
    /// Changes this database already held (same hash).
    pub duplicates: i64,
    /// Changes left for a later batch: an earlier version of their origin is not here yet, or
    /// their origin is held back here (`held`).
    pub deferred: i64,
    /// Changes from devices this device has revoked (relayed by others): refused.
    pub refused: i64,
    /// The devices those refused changes came from.
    pub refused_devices: Vec<String>,
    /// Conflicts detected while merging (pending ones wait for `sync_resolve`).
    pub conflicts: Vec<Summary>,
    /// Resolutions this device wrote (local_wins / remote_wins tables).
    pub resolutions: i64,
    /// Origins whose changes wait here, and why: the first such change of each (they are
    /// among `deferred`; `sync_status` lists what waits).
    pub held: Vec<Held>,
    /// Changes of this batch logged here (among `accepted`) whose effect waits: for this
    /// database's schema (they name a table or column not tracked here, or a record that has
    /// such a change waiting), or for a change they are based on that is not merged here yet
    /// (`sync_status` lists them under `schema_waiting`).
    pub schema_waiting: i64,
    /// Changes that waited and were merged by this call, the schema or their bases having
    /// caught up.
    pub schema_applied: i64,
    /// This database's vector after the batch.
    pub vector: Vector,
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
    device_id(conn)?;
    quarantine::check_sender(conn, &batch.device_id)?;
    let autocommit = conn.is_autocommit();
    let fk: bool = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
    let mut result = None;
    if fk && autocommit {
        match apply_once(conn, batch, true) {
            // The commit's foreign-key check fails as SQLITE_CONSTRAINT_FOREIGNKEY, or as plain
            // SQLITE_CONSTRAINT in older SQLite (3.40 among them); other constraints never
            // reach here: each becomes a `constraint` conflict where it happens.
            Err(Error::Sqlite(rusqlite::Error::SqliteFailure(f, _)))
                if f.code == rusqlite::ErrorCode::ConstraintViolation => {}
            other => result = Some(other),
        }
    }
    let result = result.unwrap_or_else(|| apply_once(conn, batch, false));
    if let (Err(Error::Fork(fork)), true) = (&result, autocommit) {
        quarantine::record(conn, &batch.device_id, fork)?;
    }
    result
}

fn apply_once(conn: &Connection, batch: &Batch, defer_fk: bool) -> Result<Applied> {
    let me = device_id(conn)?;
    conn.set_prepared_statement_cache_capacity(64);
    let _cache = tx::BiggerCache::new(conn);
    tx::write(conn, |conn| {
        if defer_fk {
            conn.execute_batch("PRAGMA defer_foreign_keys = ON")?;
        }
        seal(conn)?;
        let tables = Tables::load(conn)?;
        quarantine::detect(conn, &me, batch)?;
        introductions::receive(conn, &me, &batch.introductions)?;
        let verdict = sign::check_batch(conn, &me, batch)?;
        // What waited for the schema, if the schema has caught up, before the batch's changes
        // (which come later in log order).
        let replayed = held::replay(conn, &tables)?;
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
                (!verdict.refuses()).then(|| merge_all(conn, batch, &tables, &verdict, heads.clone(), &mut prep));
            (merged, prep.finish())
        });
        verdict.confirm(batch, &matched)?;
        let mut applied = merged.unwrap_or_else(|| {
            Err(Error::Integrity("sync_apply: the batch's signatures do not vouch for its changes".into()))
        })?;
        applied.schema_applied = replayed.merged;
        applied.resolutions += replayed.resolutions;
        applied.conflicts.splice(0..0, replayed.conflicts);
        // What waited for a change this batch brought.
        let after = held::replay(conn, &tables)?;
        applied.schema_applied += after.merged;
        applied.resolutions += after.resolutions;
        applied.conflicts.extend(after.conflicts);
        sign::store_batch_signatures(conn, batch)?;
        Ok(applied)
    })
}

/// Merges the batch's changes one by one, in its order (the body of [`apply_once`]).
fn merge_all<'b>(
    conn: &Connection,
    batch: &'b Batch,
    tables: &Tables,
    verdict: &Verdict,
    mut heads: HashMap<String, (i64, String)>,
    prep: &mut Preparer<'b>,
) -> Result<Applied> {
    // Origins whose remaining changes in this batch wait for a later one.
    let mut blocked = verdict.deferred.clone();
    let mut names: Vec<&str> = batch.changes.iter().map(|c| &*c.table_name).collect();
    names.sort_unstable();
    names.dedup();
    // Changes of tables not tracked here are logged, and wait (see `held.rs`); settings and
    // revocations are no table's.
    let paused: Vec<i64> = names
        .iter()
        .filter(|n| **n != SETTINGS_TABLE && **n != REVOCATIONS_TABLE)
        .filter_map(|n| tables.get(n).map(|t| t.id))
        .collect();
    // Records with a change waiting for the schema: their later changes wait behind it.
    let mut waiting = held::records(conn)?;
    // Changes logged here whose effect waits: the changes based on them wait too.
    let mut unmerged = held::unmerged(conn)?;
    let mut schema_waiting = 0i64;
    // What the sender holds is known now, so changes every authorized peer holds are
    // logged as synced at once rather than marked afterwards.
    let noted = peers::record(conn, &batch.device_id, &batch.vector)?;
    let floors = peers::floors(conn)?;
    let restore = pause_capture(conn, &paused, batch.changes.len())?;
    let mut m = Merger::new(conn)?;
    m.sender.clone_from(&batch.vector);
    let mut advanced: std::collections::BTreeSet<&str> = Default::default();
    let (mut accepted, mut duplicates, mut deferred, mut refused) = (0i64, 0i64, 0i64, 0i64);
    let mut held: Vec<Held> = Vec::new();
    let (wall, horizon) = (m.local.clock.wall(), m.local.clock.horizon());
    let mut quota = Quota::load(conn, wall)?;
    // Origins revoked here: by this device, or by a revocation earlier in this batch.
    let mut revoked = verdict.revoked.clone();
    let mut refused_from: std::collections::BTreeSet<String> = Default::default();
    // Strategies set by settings earlier in this batch, by table id.
    let mut in_force: HashMap<i64, Strategy> = HashMap::new();
    for e in &batch.changes {
        let p = prep.next();
        check_entry(e)?;
        let op = Op::parse(&e.operation)
            .ok_or_else(|| Error::invalid(format!("{}: unknown operation \"{}\"", describe(e), e.operation)))?;
        if revoked.contains(&*e.device_id) {
            refused += 1;
            refused_from.insert(e.device_id.to_string());
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
        // Changes that wait here, and their origin's later ones with them.
        if let Some(h) = waits(e, verdict, wall, horizon) {
            blocked.insert(e.device_id.to_string());
            deferred += 1;
            held.push(h);
            continue;
        }
        if !hash_matches(e, p.hash, prev_hash) {
            return Err(hash_mismatch(e));
        }
        // What the entry is: a shared event (a setting or a revocation), or a change to a table
        // (read before anything is logged: a malformed one fails the batch).
        let entry = if is_setting(e) {
            Event::Setting(read_setting(e)?)
        } else if is_revocation(e) && is_succession(e) {
            Event::Succession(parse_succession(e)?)
        } else if is_revocation(e) {
            Event::Revocation(parse_revocation(e)?)
        } else {
            let t = tables.get(&e.table_name);
            let (key, change, why) = match t {
                Some(t) => {
                    let (key, change) = match p.parsed {
                        Some(parsed) => parsed?,
                        None => prepare::parse(t, op, e)?,
                    };
                    let behind = || match waiting.is_empty() {
                        true => None,
                        false => waiting.get(&(e.table_name.to_string(), e.record_id.clone())).map(|&f| Why::behind(f)),
                    };
                    let why = held::unknown_columns(t, &change).or_else(behind);
                    (key, change, why)
                }
                None => (Vec::new(), prepare::parse_untracked(op, e)?, Some(Why::unknown_table(&e.table_name))),
            };
            // A change can arrive before a change it is based on (a batch made for another
            // peer's vector, or the base's origin is held back here): it is logged, and waits
            // for it (see `held.rs`), its origin's later changes going on.
            let missing = match t.is_some() {
                true => held::missing_bases(conn, &mut heads, &unmerged, &change)?,
                false => Vec::new(),
            };
            let why = match (why, missing.is_empty()) {
                (None, false) => Some(Why::base_missing(missing)),
                (why, _) => why,
            };
            Event::Change { t, key, change, why }
        };
        // A device that writes more than its quota here waits; the others go on.
        if !quota.take(conn, &e.device_id, entry_bytes(e))? {
            blocked.insert(e.device_id.to_string());
            deferred += 1;
            held.push(over_quota(e, &quota));
            continue;
        }
        let id = log::insert(&mut m.hot, e, floors.get(&*e.device_id).is_some_and(|&f| e.version <= f))?;
        m.writers.logged(id, writer(e));
        m.local.clock.receive(e.timestamp);
        match entry {
            Event::Setting((table, strategy)) => {
                if let Some(name) = settings::record(conn, &table, strategy, &e.device_id, e.version, e.timestamp)? {
                    // The changes after it in this batch are judged by it.
                    if let Some(t) = tables.get(&name) {
                        in_force.insert(t.id, strategy);
                    }
                }
            }
            Event::Revocation(device) => {
                let me = m.local.device.clone();
                if devices::receive_revocation(conn, &me, &e.device_id, e.version, e.timestamp, &device)? {
                    // Its changes after the revocation in this batch are refused too.
                    revoked.insert(device);
                }
            }
            Event::Succession(s) => {
                // Ignored when it is not this device's to judge (see `trust/succession.rs`).
                let me = m.local.device.clone();
                succession::receive(conn, &me, &s)?;
            }
            Event::Change { t: Some(t), key, change, why: None } => {
                let strategy = in_force.get(&t.id).copied().unwrap_or(t.strategy);
                let rec = Record { t, rid: &e.record_id, key, strategy };
                m.merge_remote(&rec, &change, id, &e.change_data)?;
                prep.done((rec.key, change));
            }
            Event::Change { why, .. } => {
                // Logged, its effect waits: for the schema (and the record's later changes with
                // it), or for its bases (and the changes based on it with it).
                let why = why.unwrap_or_else(|| Why::unknown_table(&e.table_name));
                held::hold(conn, id, &e.table_name, &e.record_id, &why)?;
                if why.reason != held::BASE_MISSING {
                    waiting.entry((e.table_name.to_string(), e.record_id.clone())).or_insert(id);
                }
                unmerged.insert((e.device_id.to_string(), e.version));
                schema_waiting += 1;
            }
        }
        advance(&mut heads, e);
        advanced.insert(&e.device_id);
        accepted += 1;
    }
    for dev in advanced {
        let (version, hash) = &heads[dev];
        set_head(conn, dev, *version, hash)?;
        waiting::advanced(conn, dev, *version)?;
    }
    for h in &held {
        waiting::note(conn, h, &batch.device_id)?;
    }
    quota.save(conn)?;
    m.local.finish(conn, &mut m.writers)?;
    resume_capture(conn, restore)?;
    if noted {
        peers::mark_synced(conn, &floors)?;
        // A batch that brought something is an exchange; a bare hello is not.
        if accepted + duplicates > 0 {
            peers::exchanged(conn, &batch.device_id)?;
        }
    }
    Ok(Applied {
        accepted,
        duplicates,
        deferred,
        refused,
        refused_devices: refused_from.into_iter().collect(),
        conflicts: m.conflicts,
        resolutions: m.resolutions,
        held,
        schema_waiting,
        schema_applied: 0,
        vector: vector(conn)?,
    })
}

/// An entry of a batch, as read from the wire: a shared event, or a change to a table (`t`
/// None: not tracked here) with why its effect waits here, if it does.
enum Event<'t> {
    Setting((String, Strategy)),
    Revocation(String),
    Succession(Succession),
    Change { t: Option<&'t Arc<Table>>, key: Vec<Value>, change: Change, why: Option<Why> },
}

/// The writer `e` is once logged.
fn writer(e: &crate::wire::Entry) -> Writer {
    Writer { device_id: e.device_id.clone(), version: e.version, timestamp: e.timestamp, resolution: e.resolution }
}

/// Notes `e` as the head of its origin held here.
fn advance(heads: &mut HashMap<String, (i64, String)>, e: &crate::wire::Entry) {
    match heads.get_mut(&*e.device_id) {
        Some(head) => {
            head.0 = e.version;
            head.1.clone_from(&e.hash);
        }
        None => _ = heads.insert(e.device_id.to_string(), (e.version, e.hash.clone())),
    }
}

/// Why `e` waits: its origin wrote more here than its quota allows.
fn over_quota(e: &crate::wire::Entry, quota: &Quota) -> Held {
    let detail = format!(
        "device {} wrote more here than its quota allows ({}): its changes wait until the allowance grows back, or a person raises it",
        e.device_id,
        quota.describe()
    );
    Held::new(e, "quota", detail)
}

/// Setting `e` read: the table it is about (never one of peersync's own) and a strategy this
/// peersync knows; anything else refuses the batch, as a malformed change does.
fn read_setting(e: &crate::wire::Entry) -> Result<(String, Strategy)> {
    let s = parse_setting(e)?;
    if is_reserved_table(&s.table) {
        return Err(Error::invalid(format!(
            "{}: a setting for \"{}\", one of peersync's own tables",
            describe(e),
            shown(&s.table)
        )));
    }
    let strategy = Strategy::parse(&s.strategy).ok_or_else(|| {
        Error::invalid(format!(
            "{}: unknown strategy \"{}\" (this peersync knows: {}; a newer peersync may know more)",
            describe(e),
            shown(&s.strategy),
            Strategy::NAMES.join(", ")
        ))
    })?;
    Ok((s.table, strategy))
}

/// Why change `e` waits here, if it does: its origin's key is unknown here, or it is stamped
/// later than `horizon` (this device's clock, `wall`, plus the skew allowed).
fn waits(e: &crate::wire::Entry, verdict: &Verdict, wall: i64, horizon: i64) -> Option<Held> {
    if verdict.unknown.contains(&*e.device_id) {
        let detail = format!(
            "no key of device {} is known here: its changes wait until a trusted device introduces it, or it is paired here",
            e.device_id
        );
        return Some(Held::new(e, "unknown_origin", detail));
    }
    if e.timestamp > horizon {
        let detail = format!(
            "stamped {} s ahead of this device's clock, more than the {} s allowed: it waits until this clock catches up (or a person raises max_clock_skew_secs)",
            (e.timestamp - wall) / 1_000_000,
            (horizon - wall) / 1_000_000
        );
        return Some(Held::new(e, "clock_ahead", detail));
    }
    None
}

/// Whether `e`'s hash is the one computed on `prev_hash` (the head held here): what was
/// prepared says, when it was prepared on that same hash (as it always is for a change that
/// gets this far); else it is computed now.
fn hash_matches(e: &crate::wire::Entry, prepared: Option<(&str, bool)>, prev_hash: &str) -> bool {
    match prepared {
        Some((prev, matched)) if prev == prev_hash => matched,
        _ => e.compute_hash(prev_hash) == e.hash,
    }
}

/// About what logging `e` costs here, in bytes (its text and the log row's own fields).
fn entry_bytes(e: &crate::wire::Entry) -> usize {
    e.change_data.len() + e.bases.len() + e.record_id.len() + e.table_name.len() + 160
}

#[cfg(test)]
mod tests {
    use super::entry_bytes;
    use crate::wire::{name, Entry};

    #[test]
    fn an_entry_costs_its_texts_and_a_fixed_row() {
        let e = Entry {
            table_name: name("loans"),
            record_id: "'L1'".into(),
            operation: name("INSERT"),
            change_data: "{\"id\":\"L1\"}".into(),
            device_id: name("00112233445566778899aabbccddeeff"),
            version: 1,
            timestamp: 0,
            bases: "{}".into(),
            resolution: false,
            hash: String::new(),
        };
        assert_eq!(entry_bytes(&e), 11 + 2 + 4 + 5 + 160);
        let bigger = Entry { change_data: "x".repeat(1000), ..e.clone() };
        assert_eq!(entry_bytes(&bigger) - entry_bytes(&e), 1000 - 11);
    }
}
