//! `sync_changes`: the batch of changes a peer lacks, found through each origin's runs
//! (`store/runs.rs`), cut where every relayed origin ends on a version it signed; and the
//! batches the sidecar sends, signed by this device.
use super::sign;
use crate::capture::follow::seal;
use crate::db::tx::BiggerCache;
use crate::error::{Error, Result};
use crate::store::format::device_id;
use crate::store::log::{self, entry, entry_ref, ENTRY_COLUMNS};
use crate::store::{anchors, runs};
use crate::trust::introductions;
use crate::wire::{Batch, Entry, EntryRef, HeadSignature, Introduction, Vector, BATCH_FORMAT, MAX_LIMIT};
use ed25519_dalek::SigningKey;
use rusqlite::{params, Connection};
use serde::Serialize;
use std::collections::BTreeMap;

/// This database's vector and, read with it, its head hash for every origin (the `vector`
/// and `heads` of the batches it sends). Seals first.
pub fn vector_and_heads(conn: &Connection) -> Result<(Vector, BTreeMap<String, String>)> {
    device_id(conn)?;
    seal(conn)?;
    let (mut vector, mut heads) = (Vector::new(), BTreeMap::new());
    for (dev, version, hash) in log::heads(conn)? {
        vector.insert(dev.clone(), version);
        heads.insert(dev, hash);
    }
    Ok((vector, heads))
}

/// `sync_vector()`: `{device_id: highest contiguous version held}` for every origin. Seals first.
pub fn vector(conn: &Connection) -> Result<Vector> {
    Ok(vector_and_heads(conn)?.0)
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

/// The changes the holder of `since` lacks, at most `limit` of them and, with `max_bytes`, at
/// most that many bytes of entries (see [`entry_bytes`]) but always at least one.
fn page(conn: &Connection, since: &Vector, limit: i64, max_bytes: Option<u64>) -> Result<Page> {
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::invalid(format!("sync_changes: limit must be between 1 and {MAX_LIMIT}")));
    }
    let device = device_id(conn)?;
    conn.set_prepared_statement_cache_capacity(64);
    let (vector, heads) = vector_and_heads(conn)?;
    let origins: Vec<&str> = vector.keys().map(String::as_str).collect();
    // Fetch a few more than asked: a relayed origin's run must end where that origin signed.
    let mut fetch = limit;
    let (page, has_more) = loop {
        let mut found = lacking(conn, &vector, since, fetch + 1)?;
        let more = found.len() as i64 > fetch;
        found.truncate(fetch as usize);
        let cap = match max_bytes {
            Some(budget) => fitting(conn, &found[..found.len().min(limit as usize)], budget)?,
            None => limit as usize,
        };
        match signed_cut(conn, &device, &origins, &found, cap)? {
            Some(cut) => break (found[..cut].to_vec(), more || cut < found.len()),
            // No prefix ends signed: send `limit` as they are; a receiver that holds the
            // origin's key refuses them with a message naming the origin.
            None if !more || fetch >= MAX_LIMIT => {
                let n = found.len().min(cap);
                break (found[..n].to_vec(), more || n < found.len());
            }
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
            let prev = runs::hash_at(conn, dev, p.version - 1)?.unwrap_or_default();
            prevs.insert(dev.to_string(), prev);
        }
    }
    for (dev, v) in last {
        if let Some(s) = sign::stored(conn, dev, v)? {
            signatures.push(s);
        }
    }
    Ok(Page { device, entries: page, has_more, vector, heads, signatures, prevs })
}

/// The changes the holder of `since` lacks, in this log's order (which is causal), at most
/// `limit` of them.
pub fn changes(conn: &Connection, since: &Vector, limit: i64) -> Result<Batch> {
    changes_within(conn, since, limit, None)
}

/// [`changes`], and with `max_bytes` at most that many bytes of entries ([`entry_bytes`]
/// summed) — always at least one change, so a change larger than that travels alone. A page
/// may end past either bound where a relayed origin must end on a version it signed.
pub fn changes_within(conn: &Connection, since: &Vector, limit: i64, max_bytes: Option<u64>) -> Result<Batch> {
    let _cache = BiggerCache::new(conn);
    let p = page(conn, since, limit, max_bytes)?;
    let changes = read_entries(conn, &p)?;
    Ok(Batch {
        format: BATCH_FORMAT,
        device_id: p.device,
        changes,
        has_more: p.has_more,
        vector: p.vector,
        signatures: p.signatures,
        heads: p.heads,
        prevs: p.prevs,
        introductions: Vec::new(),
    })
}

/// [`changes`] as the JSON text of its batch (what `sync_changes` returns), written straight
/// from the log rows: no [`Entry`] is made, so nothing is allocated per change.
pub fn changes_json(conn: &Connection, since: &Vector, limit: i64) -> Result<String> {
    let _cache = BiggerCache::new(conn);
    let p = page(conn, since, limit, None)?;
    let out = BatchJson {
        format: BATCH_FORMAT,
        device_id: &p.device,
        changes: EntriesJson { conn, page: &p, error: Default::default(), kept: None },
        has_more: p.has_more,
        vector: &p.vector,
        signatures: &p.signatures,
        heads: &p.heads,
        prevs: &p.prevs,
        introductions: &[],
    };
    serde_json::to_string(&out).map_err(|e| out.changes.error.take().unwrap_or_else(|| e.into()))
}

/// Log ids, origins and versions of the changes the holder of `since` lacks, in log order,
/// at most `n`. Origins are indexes into `ours`' keys.
fn lacking(conn: &Connection, ours: &Vector, since: &Vector, n: i64) -> Result<Vec<Pos>> {
    let mut found: Vec<Pos> = Vec::new();
    for (origin, (dev, &have)) in ours.iter().enumerate() {
        let theirs = since.get(dev).copied().unwrap_or(0);
        if have > theirs && theirs < anchors::version(conn, dev)? {
            return Err(behind(conn, dev, theirs)?);
        }
        if have > theirs {
            for (id, version) in runs::after(conn, dev, theirs, n as usize)? {
                found.push(Pos { id, origin, version });
            }
        }
    }
    found.sort_unstable_by_key(|p| p.id);
    found.truncate(n as usize);
    Ok(found)
}

/// The error for a holder of `dev:theirs` asking for changes compacted away here.
fn behind(conn: &Connection, dev: &str, theirs: i64) -> Result<Error> {
    let anchor = anchors::version(conn, dev)?;
    Ok(Error::Compacted(format!(
        "sync_changes: the changes of device {dev} after version {theirs} up to {anchor} were compacted here \
         (every trusted device held them); a device that lacks them must join by snapshot \
         (see README \"Bounded history\")"
    )))
}

/// What one entry counts against a page's byte budget: the bytes of its text fields as
/// stored, plus [`ENTRY_OVERHEAD`] for its numbers and the JSON around them.
pub const ENTRY_OVERHEAD: u64 = 256;

/// How many of `entries` (at least one, if any) fit in `budget` bytes, counted as
/// [`ENTRY_OVERHEAD`] plus the stored bytes of each one's text fields, read a run of
/// consecutive log ids at a time.
fn fitting(conn: &Connection, entries: &[Pos], budget: u64) -> Result<usize> {
    // octet_length (SQLite 3.43+) counts bytes without reading the value; before it, the
    // byte length of the text cast to a blob.
    let len = if rusqlite::version_number() >= 3_043_000 { "octet_length(%)" } else { "length(CAST(% AS BLOB))" };
    let size = ["table_name", "record_id", "change_data", "bases", "hash"]
        .map(|c| format!("coalesce({}, 0)", len.replace('%', c)))
        .join(" + ");
    let mut get =
        conn.prepare_cached(&format!("SELECT id, {size} FROM sync_log WHERE id BETWEEN ?1 AND ?2 ORDER BY id"))?;
    let (mut total, mut n) = (0u64, 0usize);
    let mut rest = entries;
    while let Some(first) = rest.first().map(|p| p.id) {
        let run = rest.iter().enumerate().take_while(|&(k, p)| p.id == first + k as i64).count();
        let mut rows = get.query(params![first, first + run as i64 - 1])?;
        while let Some(r) = rows.next()? {
            total = total.saturating_add(ENTRY_OVERHEAD + r.get::<_, i64>(1)?.max(0) as u64);
            if total > budget && n > 0 {
                return Ok(n);
            }
            n += 1;
        }
        rest = &rest[run..];
    }
    Ok(n.max(entries.len().min(1)))
}

/// Runs `each` on the log rows of the page's entries, selected with [`ENTRY_COLUMNS`],
/// reading a run of consecutive ids at a time. Each row must be the change the page expects
/// there.
fn for_entries(conn: &Connection, page: &Page, mut each: impl FnMut(&rusqlite::Row<'_>) -> Result<()>) -> Result<()> {
    let origins: Vec<&str> = page.vector.keys().map(String::as_str).collect();
    let mut get = conn.prepare_cached(&format!(
        "SELECT {}, id FROM sync_log WHERE id BETWEEN ?1 AND ?2 ORDER BY id",
        ENTRY_COLUMNS
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
        out.push(entry(r)?);
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
    #[serde(skip_serializing_if = "<[Introduction]>::is_empty")]
    introductions: &'a [Introduction],
}

/// The page's entries, serialized as a sequence of [`Entry`]s straight from their rows.
struct EntriesJson<'a> {
    conn: &'a Connection,
    page: &'a Page,
    /// What stopped the serialization, if reading the log did (serde's error can only carry
    /// a message).
    error: std::cell::RefCell<Option<Error>>,
    /// When set, each entry serialized is also kept here, without its `change_data`.
    kept: Option<&'a std::cell::RefCell<Vec<Entry>>>,
}

impl Serialize for EntriesJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeSeq};
        let mut seq = s.serialize_seq(Some(self.page.entries.len()))?;
        let read = for_entries(self.conn, self.page, |r| {
            let e = entry_ref(r)?;
            seq.serialize_element(&e).map_err(|e| Error::invalid(format!("sync_changes: {e}")))?;
            if let Some(kept) = self.kept {
                kept.borrow_mut().push(Entry::from(EntryRef { change_data: "", ..e }));
            }
            Ok(())
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
                let signed = sign::stored(conn, dev, e.version)?.is_some();
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

/// What the sidecar sends a peer: [`changes`] for `since`, at most `limit` (more only where a
/// relayed origin must end on a version it signed), with this device's own signature (made
/// with `key`) on the last of its own changes in the batch beside the relayed origins' stored
/// ones, and its introductions of the devices it trusts.
pub fn outgoing(conn: &Connection, key: &SigningKey, since: &Vector, limit: i64) -> Result<Batch> {
    outgoing_within(conn, key, since, limit, None)
}

/// [`outgoing`] with [`changes_within`]'s byte budget.
pub fn outgoing_within(
    conn: &Connection,
    key: &SigningKey,
    since: &Vector,
    limit: i64,
    max_bytes: Option<u64>,
) -> Result<Batch> {
    let mut batch = changes_within(conn, since, limit, max_bytes)?;
    batch.introductions = introductions::own(conn, key)?;
    let me = batch.device_id.clone();
    if let Some(last) = batch.changes.iter().rev().find(|e| *e.device_id == *me) {
        let own = crate::wire::sign(key, &me, last.version, &last.hash);
        batch.signatures.retain(|s| s.device_id != me);
        batch.signatures.push(own);
        batch.signatures.sort_by(|a, b| a.device_id.cmp(&b.device_id));
    }
    Ok(batch)
}

/// [`outgoing_within`]'s batch written as JSON to `out` straight from the log rows (no change's
/// data is copied out of SQLite, so a large value is held once while it is written); returns
/// the batch as written but for the changes' `change_data`, left empty.
pub fn outgoing_to(
    conn: &Connection,
    key: &SigningKey,
    since: &Vector,
    limit: i64,
    max_bytes: Option<u64>,
    out: &mut dyn std::io::Write,
) -> Result<Batch> {
    let _cache = BiggerCache::new(conn);
    let p = page(conn, since, limit, max_bytes)?;
    let mut signatures = p.signatures.clone();
    let me = p.vector.keys().position(|d| *d == p.device);
    if let Some(last) = p.entries.iter().rev().find(|e| Some(e.origin) == me) {
        let hash: String =
            conn.prepare_cached("SELECT hash FROM sync_log WHERE id = ?1")?.query_row([last.id], |r| r.get(0))?;
        signatures.retain(|s| s.device_id != p.device);
        signatures.push(crate::wire::sign(key, &p.device, last.version, &hash));
        signatures.sort_by(|a, b| a.device_id.cmp(&b.device_id));
    }
    let introductions = introductions::own(conn, key)?;
    let kept = std::cell::RefCell::new(Vec::with_capacity(p.entries.len()));
    let json = BatchJson {
        format: BATCH_FORMAT,
        device_id: &p.device,
        changes: EntriesJson { conn, page: &p, error: Default::default(), kept: Some(&kept) },
        has_more: p.has_more,
        vector: &p.vector,
        signatures: &signatures,
        heads: &p.heads,
        prevs: &p.prevs,
        introductions: &introductions,
    };
    serde_json::to_writer(out, &json).map_err(|e| json.changes.error.take().unwrap_or_else(|| e.into()))?;
    Ok(Batch {
        format: BATCH_FORMAT,
        device_id: p.device.clone(),
        changes: kept.into_inner(),
        has_more: p.has_more,
        vector: p.vector.clone(),
        signatures,
        heads: p.heads.clone(),
        prevs: p.prevs.clone(),
        introductions,
    })
}

/// An empty batch: tells a peer this device's vector and heads and introduces the devices it
/// trusts (signed with `key`); the reply tells the peer's own vector.
pub fn hello(conn: &Connection, key: &SigningKey) -> Result<Batch> {
    let (vector, heads) = vector_and_heads(conn)?;
    Ok(Batch {
        format: BATCH_FORMAT,
        device_id: device_id(conn)?,
        changes: Vec::new(),
        has_more: false,
        vector,
        signatures: Vec::new(),
        heads,
        prevs: Default::default(),
        introductions: introductions::own(conn, key)?,
    })
}
