//! Shared helpers: crafted changes and batches (own hash of the documented encoding), expectations, a small RNG.
use super::*;
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

// ------------------------------------------------------------------ crafting changes

/// The canonical hash documented in DESIGN.md/core: SHA-256 over netstrings of the tag
/// `peersync-v1`, table_name, record_id, operation, change_data, device_id, version, timestamp,
/// bases, resolution (1/0), previous hash of the same origin. Written independently here.
#[allow(clippy::too_many_arguments)]
pub fn hash_entry(e: &Json, prev: &str) -> String {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update(b.len().to_string().as_bytes());
        h.update(b":");
        h.update(b);
        h.update(b",");
    };
    let s = |k: &str| e[k].as_str().unwrap_or_else(|| panic!("field {k}")).to_string();
    field(b"peersync-v1");
    field(s("table_name").as_bytes());
    field(s("record_id").as_bytes());
    field(s("operation").as_bytes());
    field(s("change_data").as_bytes());
    field(s("device_id").as_bytes());
    field(e["version"].to_string().as_bytes());
    field(e["timestamp"].to_string().as_bytes());
    field(s("bases").as_bytes());
    field(if e["resolution"].as_bool().unwrap() { b"1" } else { b"0" });
    field(prev.as_bytes());
    hex::encode(h.finalize())
}

/// A foreign device that writes changes by hand (for exact timestamps, tie-breaks and hostile
/// input), each with a valid hash on its own chain.
pub struct Forger {
    pub dev: String,
    pub version: i64,
    pub head: String,
}

impl Forger {
    pub fn new(dev: &str) -> Forger {
        Forger { dev: dev.to_string(), version: 0, head: String::new() }
    }

    /// A change as it appears in a batch, hashed onto this forger's chain.
    #[allow(clippy::too_many_arguments)]
    pub fn change(&mut self, table: &str, rid: &str, op: &str, data: &str, bases: &str, ts: i64, res: bool) -> Json {
        self.version += 1;
        let mut e = json!({
            "table_name": table, "record_id": rid, "operation": op, "change_data": data,
            "device_id": self.dev, "version": self.version, "timestamp": ts, "bases": bases,
            "resolution": res, "hash": ""
        });
        let h = hash_entry(&e, &self.head);
        e["hash"] = Json::String(h.clone());
        self.head = h;
        e
    }
}

/// A batch envelope around `changes`.
pub fn batch_of(sender: &str, changes: Vec<Json>) -> String {
    json!({"format": 1, "device_id": sender, "changes": changes, "has_more": false, "vector": {}, "signatures": []})
        .to_string()
}

/// Re-hashes a batch's changes in order, each on its origin's chain starting from the hashes in
/// `heads` (origin -> hash of the version before the first in the batch; missing = "").
pub fn rehash(batch: &mut Json, heads: &BTreeMap<String, String>) {
    let mut heads = heads.clone();
    for e in batch["changes"].as_array_mut().unwrap() {
        let dev = e["device_id"].as_str().unwrap().to_string();
        let prev = heads.get(&dev).cloned().unwrap_or_default();
        let h = hash_entry(e, &prev);
        e["hash"] = Json::String(h.clone());
        heads.insert(dev, h);
    }
}

/// `dev:version` reference of a peer's log row.
pub fn reference(r: &LogRow) -> String {
    format!("{}:{}", r.device_id.as_ref().unwrap(), r.version.unwrap())
}

/// Small deterministic RNG (SplitMix64) for choices made inside a property-test case.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next() % den < num
    }
}

// ------------------------------------------------------------------ expectations

/// The value of the greatest (timestamp, device id) write to `col` of record `rid` in `table`,
/// over `p`'s whole log (None when nothing wrote it).
pub fn greatest_write(p: &Peer, table: &str, rid: &str, col: &str) -> Option<V> {
    let mut best: Option<((i64, String), V)> = None;
    for r in p.log() {
        if r.table_name != table || r.record_id.as_deref() != Some(rid) {
            continue;
        }
        let data: Json = serde_json::from_str(r.change_data.as_deref().unwrap_or("{}")).unwrap();
        if let Some(v) = data.get(col) {
            let tk = (r.timestamp.unwrap(), r.device_id.clone().unwrap());
            if best.as_ref().is_none_or(|b| tk > b.0) {
                best = Some((tk, V::from_json(v)));
            }
        }
    }
    best.map(|b| b.1)
}

/// This peer's own log rows (device_id = its own), in order.
pub fn own_rows(p: &Peer) -> Vec<LogRow> {
    // A strategy setting is an entry of the device's chain too, but no change to a table.
    p.log()
        .into_iter()
        .filter(|r| r.device_id.as_deref() == Some(p.dev.as_str()) && r.table_name != "sync_tables")
        .collect()
}

/// The last row this peer logged as its own.
pub fn last_own(p: &Peer) -> LogRow {
    own_rows(p).pop().expect("no own change")
}

pub const HOUR_US: i64 = 3_600_000_000;

/// Fails with the rows that differ between two [`Peer::fingerprint`] dumps.
pub fn assert_unchanged(before: &str, after: &str, what: &str) {
    if before == after {
        return;
    }
    let b: std::collections::BTreeSet<&str> = before.lines().collect();
    let a: std::collections::BTreeSet<&str> = after.lines().collect();
    let gone: Vec<&&str> = b.difference(&a).collect();
    let new: Vec<&&str> = a.difference(&b).collect();
    panic!("{what}: the database changed\n  rows gone: {gone:#?}\n  rows new: {new:#?}");
}

// ------------------------------------------------------------------ two-peer merge fixtures

/// Two peers with t1/t2 tracked under `strategy`, sharing row t1 'r' = (0, 0, 0).
pub fn pair_with_row(strategy: &str) -> (Peer, Peer) {
    let a = Peer::standard("A", strategy, strategy);
    let b = Peer::standard("B", strategy, strategy);
    a.exec("INSERT INTO t1 VALUES ('r', 0, 0, 0)");
    sync(&a, &b);
    assert_eq!(b.row("t1", "id='r'"), Some(vec![t("r"), V::Int(0), V::Int(0), V::Int(0)]));
    (a, b)
}

pub fn row_r(p: &Peer) -> Option<Vec<V>> {
    p.row("t1", "id='r'")
}

pub fn assert_same(a: &Peer, b: &Peer) {
    assert_eq!(a.snapshot(&["t1", "t2"]), b.snapshot(&["t1", "t2"]), "tables differ");
    assert_eq!(a.vector_json(), b.vector_json(), "vectors differ");
    assert_eq!(a.verify()["ok"], true);
    assert_eq!(b.verify()["ok"], true);
}

/// This peer's log rows marked as resolutions.
pub fn resolution_rows(p: &Peer) -> Vec<LogRow> {
    p.log().into_iter().filter(|r| r.resolution).collect()
}
