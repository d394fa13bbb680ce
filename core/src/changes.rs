//! `sync_changes`: the batch of changes a peer lacks, found through each origin's runs (`runs.rs`).
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
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| Error::invalid(format!("{func}: the vector is not JSON ({e})")))?;
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
        let n = v
            .as_i64()
            .filter(|n| *n >= 0)
            .ok_or_else(|| Error::invalid(format!("{func}: version of \"{k}\" must be a non-negative integer")))?;
        out.insert(k.clone(), n);
    }
    Ok(out)
}

/// What a page of `sync_changes` holds, short of the entries themselves: where they are, in
/// this log's order (which is causal), and the envelope around them.
struct Page {
    device: String,
    /// Origins index the keys of `vector`.
    entries: Vec<Pos>,
    has_more: bool,
    vector: Vector,
    heads: BTreeMap<String, String>,
    signatures: Vec<HeadSignature>,
    prevs: BTreeMap<String, String>,
}

/// A change a page may hold: its log id, origin (an index into the page's origins) and version.
#[derive(Clone, Copy)]
struct Pos {
    id: i64,
    origin: usize,
    version: i64,
}

/// The changes the holder of `since` lacks, at most `limit` of them.
fn page(conn: &Connection, since: &Vector, limit: i64) -> Result<Page> {
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::invalid(format!("sync_changes: limit must be between 1 and {MAX_LIMIT}")));
    }
    let device = crate::schema::device_id(conn)?;
    conn.set_prepared_statement_cache_capacity(64);
    let (vector, heads) = vector_and_heads(conn)?;
    let origins: Vec<&str> = vector.keys().map(String::as_str).collect();
    // Fetch a few more than asked: a relayed origin's run must end where that origin signed.
    let mut fetch = limit;
    let (page, has_more) = loop {
        let mut found = lacking(conn, &vector, since, fetch + 1)?;
        let more = found.len() as i64 > fetch;
        found.truncate(fetch as usize);
        match signed_cut(conn, &device, &origins, &found, limit as usize)? {
            Some(cut) => break (found[..cut].to_vec(), more || cut < found.len()),
            None if !more || fetch >= MAX_LIMIT => break (found, more),
            None => fetch = (fetch * 2).min(MAX_LIMIT),
        }
    };
    let mut signatures = Vec::new();
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    let mut prevs = BTreeMap::new();
    for p in &page {
        let dev = origins[p.origin];
        last.insert(dev, p.version);
        if !prevs.contains_key(dev) {
            let prev = crate::runs::hash_at(conn, dev, p.version - 1)?.unwrap_or_default();
            prevs.insert(dev.to_string(), prev);
        }
    }
    for (dev, v) in last {
        if let Some(s) = crate::sign::stored(conn, dev, v)? {
            signatures.push(s);
        }
    }
    Ok(Page { device, entries: page, has_more, vector, heads, signatures, prevs })
}

/// The changes the holder of `since` lacks, in this log's order (which is causal), at most
/// `limit` of them.
pub fn changes(conn: &Connection, since: &Vector, limit: i64) -> Result<Batch> {
    let _cache = crate::tx::BiggerCache::new(conn);
    let p = page(conn, since, limit)?;
    let changes = read_entries(conn, &p)?;
    Ok(Batch {
        format: FORMAT,
        device_id: p.device,
        changes,
        has_more: p.has_more,
        vector: p.vector,
        signatures: p.signatures,
        heads: p.heads,
        prevs: p.prevs,
    })
}

/// [`changes`] as the JSON text of its batch (what `sync_changes` returns), written straight
/// from the log rows: no [`Entry`] is made, so nothing is allocated per change.
pub fn changes_json(conn: &Connection, since: &Vector, limit: i64) -> Result<String> {
    let _cache = crate::tx::BiggerCache::new(conn);
    let p = page(conn, since, limit)?;
    let out = BatchJson {
        format: FORMAT,
        device_id: &p.device,
        changes: EntriesJson { conn, page: &p, error: Default::default() },
        has_more: p.has_more,
        vector: &p.vector,
        signatures: &p.signatures,
        heads: &p.heads,
        prevs: &p.prevs,
    };
    serde_json::to_string(&out).map_err(|e| out.changes.error.take().unwrap_or_else(|| e.into()))
}

/// Log ids, origins and versions of the changes the holder of `since` lacks, in log order,
/// at most `n`. Origins are indexes into `ours`' keys.
fn lacking(conn: &Connection, ours: &Vector, since: &Vector, n: i64) -> Result<Vec<Pos>> {
    let mut found: Vec<Pos> = Vec::new();
    for (origin, (dev, &have)) in ours.iter().enumerate() {
        let theirs = since.get(dev).copied().unwrap_or(0);
        if have > theirs {
            for (id, version) in crate::runs::after(conn, dev, theirs, n as usize)? {
                found.push(Pos { id, origin, version });
            }
        }
    }
    found.sort_unstable_by_key(|p| p.id);
    found.truncate(n as usize);
    Ok(found)
}

/// Runs `each` on the log rows of the page's entries, selected with [`Entry::COLUMNS`],
/// reading a run of consecutive ids at a time. Each row must be the change the page expects
/// there.
fn for_entries(conn: &Connection, page: &Page, mut each: impl FnMut(&rusqlite::Row<'_>) -> Result<()>) -> Result<()> {
    let origins: Vec<&str> = page.vector.keys().map(String::as_str).collect();
    let mut get = conn.prepare_cached(&format!(
        "SELECT {}, id FROM sync_log WHERE id BETWEEN ?1 AND ?2 ORDER BY id",
        Entry::COLUMNS
    ))?;
    let mut rest = &page.entries[..];
    while let Some(first) = rest.first().map(|p| p.id) {
        let run = rest.iter().enumerate().take_while(|&(k, p)| p.id == first + k as i64).count();
        let mut rows = get.query(params![first, first + run as i64 - 1])?;
        let mut want = rest[..run].iter();
        while let Some(r) = rows.next()? {
            let expected = |p: &Pos| -> Option<bool> {
                Some(
                    r.get_ref(10).ok()?.as_i64().ok()? == p.id
                        && r.get_ref(4).ok()?.as_str().ok()? == origins[p.origin]
                        && r.get_ref(5).ok()?.as_i64().ok()? == p.version,
                )
            };
            if !want.next().and_then(expected).unwrap_or(false) {
                return Err(misplaced());
            }
            each(r)?;
        }
        if want.next().is_some() {
            return Err(misplaced());
        }
        rest = &rest[run..];
    }
    Ok(())
}

fn misplaced() -> Error {
    Error::Integrity(
        "sync_changes: the log does not hold a change where sync_runs places it (the log was changed outside peersync); `select sync_verify()` lists what differs".into(),
    )
}

/// The page's entries.
fn read_entries(conn: &Connection, page: &Page) -> Result<Vec<Entry>> {
    let mut out = Vec::with_capacity(page.entries.len());
    for_entries(conn, page, |r| {
        out.push(Entry::from_row(r)?);
        Ok(())
    })?;
    Ok(out)
}

/// A [`Batch`] to serialize, its changes read from the log as they are written.
/// Its fields are [`Batch`]'s, in the same order, so the JSON is the same.
#[derive(Serialize)]
struct BatchJson<'a> {
    format: u32,
    device_id: &'a str,
    changes: EntriesJson<'a>,
    has_more: bool,
    vector: &'a Vector,
    signatures: &'a [HeadSignature],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    heads: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    prevs: &'a BTreeMap<String, String>,
}

/// The page's entries, serialized as a sequence of [`Entry`]s straight from their rows.
struct EntriesJson<'a> {
    conn: &'a Connection,
    page: &'a Page,
    /// What stopped the serialization, if reading the log did (serde's error can only carry
    /// a message).
    error: std::cell::RefCell<Option<Error>>,
}

impl Serialize for EntriesJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeSeq};
        let mut seq = s.serialize_seq(Some(self.page.entries.len()))?;
        let read = for_entries(self.conn, self.page, |r| {
            let entry = crate::log::EntryRef::from_row(r)?;
            seq.serialize_element(&entry).map_err(|e| Error::invalid(format!("sync_changes: {e}")))
        });
        if let Err(e) = read {
            let message = e.to_string();
            *self.error.borrow_mut() = Some(e);
            return Err(S::Error::custom(message));
        }
        seq.end()
    }
}

/// Where to end a page of `entries` (whose origins index `origins`) so that every relayed
/// origin whose signatures this database keeps ends on a signed version (the receiver checks
/// that signature). The largest such prefix up to `limit`, else the smallest beyond it; None
/// if there is none. This device's own changes are signed when sent, so they can end anywhere.
fn signed_cut(conn: &Connection, me: &str, origins: &[&str], entries: &[Pos], limit: usize) -> Result<Option<usize>> {
    let mut keeps_sigs: BTreeMap<&str, bool> = BTreeMap::new();
    let mut open: BTreeMap<&str, bool> = BTreeMap::new(); // origin -> its last version so far is unsigned
    let mut within = None; // largest valid cut <= limit
    for (k, e) in entries.iter().enumerate() {
        let dev = origins[e.origin];
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
