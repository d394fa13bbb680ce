//! The fuzzing world: fixed devices and keys, the tracked schema, building databases, the committed fixtures.
//!
//! Device ids and keys are fixed so that the committed fixtures (the receiver database and
//! the batches made for it) stay valid across runs. Timestamps came from the wall clock when
//! `gen_seeds` made the fixtures; nothing at fuzz time depends on the clock except fresh
//! resolutions the receiver writes while merging.
use ed25519_dalek::SigningKey;
use peersync_core::Batch;
use rusqlite::Connection;
use std::path::PathBuf;

/// One device of the world: its id and its ed25519 key.
#[derive(Clone, Copy)]
pub struct Dev {
    pub name: &'static str,
    pub id: &'static str,
    pub seed: u8,
}

impl Dev {
    pub fn key(&self) -> SigningKey {
        SigningKey::from_bytes(&[self.seed; 32])
    }
    pub fn public_hex(&self) -> String {
        hex::encode(self.key().verifying_key().to_bytes())
    }
}

/// The sender the receiver trusts (it relays C's, D's and R's changes, and B's own).
pub const A: Dev = Dev { name: "A", id: "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1", seed: 0xA1 };
/// The receiver: the database every fuzz input is applied to.
pub const B: Dev = Dev { name: "B", id: "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2", seed: 0xB2 };
/// Another device the receiver trusts (its changes reach B directly or relayed by A).
pub const C: Dev = Dev { name: "C", id: "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3", seed: 0xC3 };
/// A device the receiver has never heard of (no key: its changes are taken unsigned).
pub const D: Dev = Dev { name: "D", id: "d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4", seed: 0xD4 };
/// A device the receiver trusted, then revoked: its changes must always be refused.
pub const R: Dev = Dev { name: "R", id: "e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5", seed: 0xE5 };

pub const DEVICES: [Dev; 5] = [A, B, C, D, R];

/// Tracked tables, with their strategies: every strategy, a composite key, a key of a blob, a
/// real and an untyped column (WITHOUT ROWID), UNIQUE/CHECK/NOT NULL and a foreign key.
pub const SCHEMA: &str = "
CREATE TABLE t1(id TEXT PRIMARY KEY, a, b, c);
CREATE TABLE t2(k TEXT NOT NULL, n INTEGER NOT NULL, x REAL, y BLOB, z TEXT, PRIMARY KEY(k, n));
CREATE TABLE t3(id INTEGER PRIMARY KEY, u TEXT UNIQUE, v INTEGER CHECK (v IS NULL OR v >= 0));
CREATE TABLE t4(kb BLOB NOT NULL, kr REAL NOT NULL, kv NOT NULL, w, PRIMARY KEY(kb, kr, kv)) WITHOUT ROWID;
CREATE TABLE t5(id TEXT PRIMARY KEY, parent TEXT REFERENCES t1(id) ON DELETE CASCADE, note TEXT);
";

pub const TABLES: [(&str, &str); 5] =
    [("t1", "timestamp_wins"), ("t2", "local_wins"), ("t3", "manual"), ("t4", "remote_wins"), ("t5", "timestamp_wins")];

/// Column names per table (for structure-aware mutations).
pub const COLUMNS: [(&str, &[&str]); 5] = [
    ("t1", &["id", "a", "b", "c"]),
    ("t2", &["k", "n", "x", "y", "z"]),
    ("t3", &["id", "u", "v"]),
    ("t4", &["kb", "kr", "kv", "w"]),
    ("t5", &["id", "parent", "note"]),
];

pub fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    fuzz_dir().join("fixtures").join(name)
}

/// A fresh in-memory database of device `dev`: small pages, the sync tables with `dev`'s
/// fixed id and key, the tracked schema.
pub fn new_device(dev: Dev) -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch("PRAGMA page_size = 1024").unwrap();
    peersync_core::register_functions(&conn).unwrap();
    let random = peersync_core::init(&conn).unwrap();
    conn.execute("UPDATE sync_state SET value = ?1 WHERE key = 'device_id'", [dev.id]).unwrap();
    conn.execute("UPDATE sync_devices SET device_id = ?1 WHERE device_id = ?2", [dev.id, &random]).unwrap();
    assert_eq!(peersync_core::device_id(&conn).unwrap(), dev.id);
    peersync_core::set_identity(&conn, Some(dev.name), &dev.public_hex()).unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    for (t, s) in TABLES {
        peersync_core::track(&conn, t, Some(s)).unwrap();
    }
    conn
}

pub fn trust(conn: &Connection, dev: Dev) {
    peersync_core::trust(conn, dev.id, &dev.public_hex(), Some(dev.name), None).unwrap();
}

/// What the sidecar sends: `sync_changes` for `since`, with the sender's own signature on its
/// last change in the batch beside the stored signatures of relayed origins (core's `outgoing`).
pub fn export(conn: &Connection, sender: Dev, since: &peersync_core::Vector, limit: i64) -> Batch {
    peersync_core::outgoing(conn, &sender.key(), since, limit).unwrap()
}

/// Replaces `origin`'s signature in `b` by a genuine one on its last change in the batch.
pub fn sign_origin(b: &mut Batch, origin: Dev) {
    let Some(last) = b.changes.iter().rev().find(|e| *e.device_id == *origin.id) else { return };
    let s = peersync_core::sign(&origin.key(), origin.id, last.version, &last.hash);
    b.signatures.retain(|x| x.device_id != origin.id);
    b.signatures.push(s);
    b.signatures.sort_by(|x, y| x.device_id.cmp(&y.device_id));
}

pub fn to_json(b: &Batch) -> String {
    serde_json::to_string(b).unwrap()
}

/// Applies `b` (which must succeed).
pub fn deliver(conn: &Connection, b: &Batch) -> peersync_core::Applied {
    let b = peersync_core::parse_batch(&to_json(b)).unwrap();
    peersync_core::apply(conn, &b).unwrap_or_else(|e| panic!("fixture batch refused: {e}"))
}
