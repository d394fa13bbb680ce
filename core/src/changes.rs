//! `sync_changes`: the batch of changes a peer lacks, found through the (device, version) index.
use crate::error::{Error, Result};
use crate::log::Entry;
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version vector: `{device_id: highest contiguous version held}`.
pub type Vector = BTreeMap<String, i64>;

pub const FORMAT: u32 = 1;
pub const DEFAULT_LIMIT: i64 = 1000;
pub const MAX_LIMIT: i64 = 100_000;

/// A signature by `device_id` over the head of its own chain at `version` (see `sign.rs`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeadSignature {
    pub device_id: String,
    pub version: i64,
    pub hash: String,
    pub signature: String,
}

/// What `sync_changes` returns and `sync_apply` takes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub format: u32,
    /// The device that made this batch.
    pub device_id: String,
    pub changes: Vec<Entry>,
    pub has_more: bool,
    /// The sender's version vector when it made the batch.
    #[serde(default)]
    pub vector: Vector,
    #[serde(default)]
    pub signatures: Vec<HeadSignature>,
    /// The sender's hash at each version of its `vector`: a receiver holding that version
    /// with another hash knows the two chains forked.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub heads: BTreeMap<String, String>,
    /// For each origin with changes in the batch, the hash of the version before its first
    /// one ("" before version 1): what the sender's chain builds on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prevs: BTreeMap<String, String>,
}

/// This database's vector and, read with it, its head hash for every origin (the `vector`
/// and `heads` of the batches it sends). Seals first.
pub fn vector_and_heads(conn: &Connection) -> Result<(Vector, BTreeMap<String, String>)> {
    crate::schema::device_id(conn)?;
    crate::seal::seal(conn)?;
    let (mut vector, mut heads) = (Vector::new(), BTreeMap::new());
    let mut stmt = conn.prepare_cached("SELECT device_id, version, hash FROM sync_vector")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let dev: String = r.get(0)?;
        vector.insert(dev.clone(), r.get(1)?);
        heads.insert(dev, r.get(2)?);
    }
    Ok((vector, heads))
}

/// Reads a version vector from JSON, with errors that name the function.
pub fn parse_vector(func: &str, json: &str) -> Result<Vector> {
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| Error::invalid(format!("{func}: the vector is not JSON ({e})")))?;
    let obj = v.as_object().ok_or_else(|| {
        Error::invalid(format!("{func}: the vector must be a JSON object {{\"device_id\": version}}"))
    })?;
    let mut out = Vector::new();
    for (k, v) in obj {
        if !crate::devices::is_device_id(k) {
            return Err(Error::invalid(format!(
                "{func}: vector key {:?} is not a device id (32 lowercase hex characters)",
                crate::ident::shown(k)
            )));
        }
        let n = v.as_i64().filter(|n| *n >= 0).ok_or_else(|| {
            Error::invalid(format!("{func}: version of \"{k}\" must be a non-negative integer"))
        })?;
        out.insert(k.clone(), n);
    }
    Ok(out)
}

/// The changes the holder of `since` lacks, in this log's order (which is causal), at most
/// `limit` of them.
pub fn changes(conn: &Connection, since: &Vector, limit: i64) -> Result<Batch> {
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::invalid(format!("sync_changes: limit must be between 1 and {MAX_LIMIT}")));
    }
    let device = crate::schema::device_id(conn)?;
    conn.set_prepared_statement_cache_capacity(64);
    let _cache = crate::tx::BiggerCache::new(conn);
    let (ours, heads) = vector_and_heads(conn)?;
    // Fetch a few more than asked: a relayed origin's run must end where that origin signed.
    let mut fetch = limit;
    let (page, has_more) = loop {
        let ids = lacking_ids(conn, &ours, since, fetch + 1)?;
        let more = ids.len() as i64 > fetch;
        let entries = read_entries(conn, &ids[..ids.len().min(fetch as usize)])?;
        match signed_cut(conn, &device, &entries, limit as usize)? {
            Some(cut) => break (entries.into_iter().take(cut).collect::<Vec<_>>(), more || cut < ids.len()),
            None if !more || fetch >= MAX_LIMIT => break (entries, more),
            None => fetch = (fetch * 2).min(MAX_LIMIT),
        }
    };
    let mut signatures = Vec::new();
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    let mut prevs = BTreeMap::new();
    for e in &page {
        last.insert(&e.device_id, e.version);
        if !prevs.contains_key(&*e.device_id) {
            let prev = crate::log::hash_at(conn, &e.device_id, e.version - 1)?.unwrap_or_default();
            prevs.insert(e.device_id.to_string(), prev);
        }
    }
    for (dev, v) in last {
        if let Some(s) = crate::sign::stored(conn, dev, v)? {
            signatures.push(s);
        }
    }
    Ok(Batch { format: FORMAT, device_id: device, changes: page, has_more, vector: ours, signatures, heads, prevs })
}

/// Log ids of the changes the holder of `since` lacks, in log order, at most `n`.
fn lacking_ids(conn: &Connection, ours: &Vector, since: &Vector, n: i64) -> Result<Vec<i64>> {
    let mut ids: Vec<i64> = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM sync_log WHERE device_id = ?1 AND version > ?2 ORDER BY version LIMIT ?3",
    )?;
    for (dev, &have) in ours {
        let theirs = since.get(dev).copied().unwrap_or(0);
        if have > theirs {
            for id in stmt.query_map(params![dev, theirs, n], |r| r.get::<_, i64>(0))? {
                ids.push(id?);
            }
        }
    }
    ids.sort_unstable();
    ids.truncate(n as usize);
    Ok(ids)
}

/// The entries with log ids `ids` (ascending), read a run of consecutive ids at a time.
fn read_entries(conn: &Connection, ids: &[i64]) -> Result<Vec<Entry>> {
    let mut get = conn.prepare_cached(&format!("SELECT {} FROM sync_log WHERE id BETWEEN ?1 AND ?2 ORDER BY id", Entry::COLUMNS))?;
    let mut out = Vec::with_capacity(ids.len());
    let mut rest = ids;
    while let Some(&first) = rest.first() {
        let run = rest.iter().enumerate().take_while(|&(k, &id)| id == first + k as i64).count();
        let last = first + run as i64 - 1;
        for e in get.query_map(params![first, last], Entry::from_row)? {
            out.push(e?);
        }
        rest = &rest[run..];
    }
    Ok(out)
}

/// Where to end a page of `entries` so that every relayed origin whose signatures this
/// database keeps ends on a signed version (the receiver checks that signature). The
/// largest such prefix up to `limit`, else the smallest beyond it; None if there is none.
/// This device's own changes are signed when sent, so they can end anywhere.
fn signed_cut(conn: &Connection, me: &str, entries: &[Entry], limit: usize) -> Result<Option<usize>> {
    let mut keeps_sigs: BTreeMap<&str, bool> = BTreeMap::new();
    let mut open: BTreeMap<&str, bool> = BTreeMap::new(); // origin -> its last version so far is unsigned
    let mut within = None; // largest valid cut <= limit
    for (k, e) in entries.iter().enumerate() {
        let dev = &*e.device_id;
        if dev != me {
            let keeps = match keeps_sigs.get(dev) {
                Some(&b) => b,
                None => {
                    let b: bool = conn
                        .prepare_cached("SELECT EXISTS(SELECT 1 FROM sync_signatures WHERE device_id = ?1)")?
                        .query_row([dev], |r| r.get(0))?;
                    keeps_sigs.insert(dev, b);
                    b
                }
            };
            if keeps {
                let signed = crate::sign::stored(conn, dev, e.version)?.is_some();
                open.insert(dev, !signed);
            }
        }
        if !open.values().any(|&unsigned| unsigned) {
            if k < limit {
                within = Some(k + 1);
            } else if within.is_none() {
                return Ok(Some(k + 1));
            }
        }
        if k + 1 >= limit && within.is_some() {
            break;
        }
    }
    Ok(if entries.is_empty() { Some(0) } else { within })
}
