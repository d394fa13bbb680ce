//! The batch harness: a fresh copy of the receiver per input, parse + apply, and the invariants checked after.
//!
//! Invariants (any violation panics, which libFuzzer reports as a crash):
//! - no panic inside peersync-core;
//! - an error leaves the database exactly as it was (every table and the schema), except
//!   that a forked chain quarantines the sender (one `sync_quarantine` row, nothing else);
//! - an error is never an internal one (SQLite or JSON) and always has a message;
//! - on success: `sync_verify` is ok, `PRAGMA integrity_check` and `foreign_key_check` are
//!   clean, the reported vector is the database's, no change of a revoked device (R) was
//!   logged, no change claiming to be the receiver's own was logged, every new change of an
//!   origin whose key the receiver holds (A, C) is genuine (one its origin made) unless the
//!   input holds that origin's key (structure-aware re-signing), and applying the same batch
//!   again succeeds and accepts only what the first apply deferred.
use crate::world::{self, A, B, C, R};
use peersync_core::{Batch, Error};
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::OnceLock;

pub struct Fixtures {
    /// The receiver database file's bytes.
    pub receiver: Vec<u8>,
    /// Its dump, as an error must leave it.
    pub dump: String,
    /// Every change the world's devices really made: (origin, version) -> hash.
    pub genuine: HashSet<(String, i64, String)>,
    /// The sender's whole log (material for mutations).
    pub sender: Batch,
    /// The base batches: the seeds of batch_apply, sorted by file name.
    pub batches: Vec<Batch>,
    /// The receiver's heads (origin -> (version, hash)) before any input.
    pub heads: BTreeMap<String, (i64, String)>,
}

pub fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let receiver =
            std::fs::read(world::fixture("receiver.sqlite3")).expect("fuzz/fixtures/receiver.sqlite3 (run gen_seeds)");
        let sender: Batch =
            serde_json::from_str(&std::fs::read_to_string(world::fixture("sender.json")).unwrap()).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(world::fuzz_dir().join("seeds").join("batch_apply"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        let batches =
            names.iter().map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()).collect();
        let genuine = sender.changes.iter().map(|e| (e.device_id.to_string(), e.version, e.hash.clone())).collect();
        // The committed fixture may be in an earlier format of the sync tables: upgrade it once
        // (any use does), so that every input starts from the current one.
        let conn = open(&receiver);
        peersync_core::device_id(&conn).expect("the receiver fixture upgrades");
        let receiver = conn.serialize(rusqlite::MAIN_DB).unwrap().to_vec();
        let dump = dump(&conn);
        let mut heads = BTreeMap::new();
        let mut st = conn.prepare("SELECT device_id, version, hash FROM sync_vector").unwrap();
        for row in st.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?)))).unwrap() {
            let (d, h): (String, (i64, String)) = row.unwrap();
            heads.insert(d, h);
        }
        drop(st);
        Fixtures { receiver, dump, genuine, sender, batches, heads }
    })
}

/// A fresh in-memory copy of the receiver, foreign keys enforced, functions registered.
pub fn open(bytes: &[u8]) -> Connection {
    let mut conn = Connection::open_in_memory().unwrap();
    conn.deserialize_read_exact(rusqlite::MAIN_DB, bytes, bytes.len(), false).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    peersync_core::register_functions(&conn).unwrap();
    conn
}

/// Every table's rows and the schema, as text (the "content hash" compared after an error).
pub fn dump(conn: &Connection) -> String {
    dump_except(conn, &[], false)
}

/// The dump without the tables in `skip`; `mask_sync_times` blanks when a peer last synced
/// (a successful apply records it, so a second apply of the same batch changes it legitimately).
fn dump_except(conn: &Connection, skip: &[&str], mask_sync_times: bool) -> String {
    let mut out = String::new();
    let mut st = conn.prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").unwrap();
    let mut tables = Vec::new();
    for row in st
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, Option<String>>(3)?))
        })
        .unwrap()
    {
        let (ty, name, tbl, sql) = row.unwrap();
        if skip.contains(&tbl.as_str()) {
            continue;
        }
        out.push_str(&format!("{ty} {name} {tbl} {sql:?}\n"));
        if ty == "table" {
            tables.push(name);
        }
    }
    for t in tables {
        let mut st = conn.prepare(&format!("SELECT * FROM \"{t}\" ORDER BY 1, 2")).unwrap();
        let names: Vec<String> = st.column_names().iter().map(|s| s.to_string()).collect();
        let mut rows = st.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            out.push_str(&t);
            for (k, name) in names.iter().enumerate() {
                if mask_sync_times && t == "sync_devices" && name == "last_sync_at" {
                    out.push_str(" -");
                    continue;
                }
                match r.get_ref(k).unwrap() {
                    ValueRef::Text(b) => out.push_str(&format!(" {:?}", String::from_utf8_lossy(b))),
                    ValueRef::Blob(b) => out.push_str(&format!(" x'{}'", hex::encode(b))),
                    v => out.push_str(&format!(" {v:?}")),
                }
            }
            out.push('\n');
        }
    }
    out
}

/// Who holds which keys in this input: origins the input may sign for (structure-aware
/// mutations that re-sign), so their changes need not be genuine.
#[derive(Default)]
pub struct Allowances {
    pub signed_by_input: BTreeSet<String>,
}

fn is_internal(e: &Error) -> bool {
    matches!(e, Error::Sqlite(_) | Error::Json(_) | Error::NotInitialised)
}

/// Raw bytes: parse, then apply.
pub fn run_bytes(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let batch = match peersync_core::parse_batch(text) {
        Ok(b) => b,
        Err(e) => {
            assert!(matches!(e, Error::Invalid(_)), "parse_batch gave a non-Invalid error: {e:?}");
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    run_batch(&batch, &Allowances::default());
}

/// Applies `batch` to a fresh receiver and checks every invariant.
pub fn run_batch(batch: &Batch, allow: &Allowances) {
    let f = fixtures();
    let conn = open(&f.receiver);
    let result = peersync_core::apply(&conn, batch);
    if std::env::var_os("PEERSYNC_FUZZ_DEBUG").is_some() {
        match &result {
            Ok(a) => eprintln!("apply: {}", serde_json::to_string(a).unwrap()),
            Err(e) => eprintln!("apply error: {e}"),
        }
    }
    match result {
        Err(e) => check_error(&conn, batch, &e),
        Ok(applied) => check_success(&conn, batch, allow, &applied),
    }
}

fn check_error(conn: &Connection, batch: &Batch, e: &Error) {
    let f = fixtures();
    assert!(!is_internal(e), "apply failed with an internal error (hostile input should get a clear refusal): {e:?}");
    assert!(!e.to_string().is_empty(), "an error without a message: {e:?}");
    assert!(conn.is_autocommit(), "apply left a transaction open after {e}");
    if let Error::Fork(fork) = e {
        let rows: Vec<(String, String, i64)> = conn
            .prepare("SELECT device_id, origin, version FROM sync_quarantine")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows, vec![(batch.device_id.clone(), fork.origin.clone(), fork.version)], "quarantine after {e}");
        let before = dump_except(&open(&f.receiver), &["sync_quarantine"], false);
        assert_eq!(dump_except(conn, &["sync_quarantine"], false), before, "a forked batch changed the database: {e}");
    } else {
        let after = dump(conn);
        if after != f.dump {
            panic!("apply failed ({e}) but changed the database:\n{}", diff(&f.dump, &after));
        }
    }
}

fn check_success(conn: &Connection, batch: &Batch, allow: &Allowances, applied: &peersync_core::Applied) {
    let f = fixtures();
    assert!(conn.is_autocommit(), "apply left a transaction open");
    let verify = peersync_core::verify(conn).unwrap();
    assert_eq!(verify["ok"], true, "sync_verify after a successful apply: {verify}");
    let ic: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ic, "ok");
    let fk: Vec<String> = conn
        .prepare("PRAGMA foreign_key_check")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(fk.is_empty(), "foreign key violations after apply: {fk:?}");
    let vector = peersync_core::vector(conn).unwrap();
    assert_eq!(applied.vector, vector, "the reported vector is not the database's");
    // New log rows, by origin.
    let mut st = conn.prepare("SELECT device_id, version, hash FROM sync_log WHERE version IS NOT NULL").unwrap();
    let rows: Vec<(String, i64, String)> =
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect();
    for (dev, version, hash) in &rows {
        let held_before = f.heads.get(dev).map_or(0, |h| h.0);
        if *version <= held_before {
            continue;
        }
        assert_ne!(dev, R.id, "a change of the revoked device R was logged: {dev}:{version}");
        if dev == B.id {
            // The receiver's own new changes are resolutions it wrote while merging.
            continue;
        }
        if (dev == A.id || dev == C.id) && !allow.signed_by_input.contains(dev) {
            assert!(
                f.genuine.contains(&(dev.clone(), *version, hash.clone())),
                "a change of {dev}:{version} that its origin never made was accepted (hash {hash})"
            );
        }
    }
    // The receiver's own new changes can only be the resolutions it wrote while merging.
    let own_before = f.heads.get(B.id).map_or(0, |h| h.0);
    let own_plain: i64 = conn
        .query_row(
            "SELECT count(*) FROM sync_log WHERE device_id = ?1 AND version > ?2 AND resolution = 0",
            rusqlite::params![B.id, own_before],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(own_plain, 0, "apply logged changes under the receiver's own id that are not resolutions");
    // Idempotence: the same batch again is fine and takes at most what was deferred.
    // Finding 1 (core/tests/fuzz_regressions.rs, fixed in core c7a58c3): a batch whose `heads`
    // contradict its own changes was accepted once and quarantined its sender on repeat.
    assert!(!envelope_contradicts(batch), "a batch whose heads contradict its own changes was accepted");
    let dump1 = dump_except(conn, &[], true);
    match peersync_core::apply(conn, batch) {
        Ok(again) => {
            assert!(
                again.accepted <= applied.deferred,
                "the same batch applied twice accepted {} new changes the second time (deferred the first time: {})",
                again.accepted,
                applied.deferred
            );
            if applied.deferred == 0 && again.resolutions == 0 {
                let dump2 = dump_except(conn, &[], true);
                if dump1 != dump2 {
                    panic!("applying the same batch twice changed the database:\n{}", diff(&dump1, &dump2));
                }
            }
        }
        Err(e) => panic!("a batch that applied once fails the second time: {e}"),
    }
}

/// Whether the batch's `heads` contradict its own changes (same origin and version, other hash).
pub fn envelope_contradicts(batch: &Batch) -> bool {
    batch.heads.iter().any(|(dev, hash)| {
        batch
            .vector
            .get(dev)
            .is_some_and(|&v| batch.changes.iter().any(|e| *e.device_id == **dev && e.version == v && &e.hash != hash))
    })
}

/// The lines that differ between two dumps (for crash reports).
pub fn diff(a: &str, b: &str) -> String {
    let la: BTreeSet<&str> = a.lines().collect();
    let lb: BTreeSet<&str> = b.lines().collect();
    let mut out = String::new();
    for l in la.difference(&lb).take(20) {
        out.push_str(&format!("- {l}\n"));
    }
    for l in lb.difference(&la).take(20) {
        out.push_str(&format!("+ {l}\n"));
    }
    out
}

/// The heads a re-hash starts from: the receiver's.
pub fn receiver_heads() -> BTreeMap<String, String> {
    fixtures().heads.iter().map(|(d, (_, h))| (d.clone(), h.clone())).collect()
}

pub const SIGNERS: [world::Dev; 5] = world::DEVICES;
pub const TRUSTED: [world::Dev; 2] = [A, C];
