//! The batch format (`sync_changes` / `sync_apply`, the push and pull bodies): its types, its parse, and every check that needs no database.
use super::entry::Entry;
use super::ids::{is_device_id, is_hash, shown};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Version vector: `{device_id: highest contiguous version held}`.
pub type Vector = BTreeMap<String, i64>;

/// The batch format this engine writes and reads (`format` in a batch).
pub const BATCH_FORMAT: u32 = 1;
/// Changes per batch when the caller names no limit.
pub const DEFAULT_LIMIT: i64 = 1000;
/// The most changes a batch may be asked for.
pub const MAX_LIMIT: i64 = 100_000;

/// The latest timestamp accepted (the end of the year 9999, in microseconds): far enough for
/// any clock, and far from the i64 limit, so a hybrid clock that passed it still moves on.
pub const MAX_TIMESTAMP: i64 = 253_402_300_799_999_999;

/// A signature by `device_id` over the head of its own chain at `version` (see `signature.rs`).
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

/// Parses a batch, with an error that says what is wrong with it.
pub fn parse_batch(json: &str) -> Result<Batch> {
    // The plain parser is fast; on failure, parse again, tracking the path for the message.
    let batch = match serde_json::from_str::<Batch>(json) {
        Ok(b) => b,
        Err(_) => return Err(batch_error(json)),
    };
    check_header(batch)
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

/// The checks of a batch's envelope: its vector, heads and prevs, that they do not contradict
/// its changes, that each origin's changes come in consecutive versions, its sender and format.
fn check_header(batch: Batch) -> Result<Batch> {
    let bad = |what: String| Err(Error::invalid(format!("sync_apply: malformed batch: {what}")));
    for (dev, v) in &batch.vector {
        if !is_device_id(dev) || *v < 0 {
            return bad(format!(
                "vector entry {:?}: {} (keys are device ids, 32 lowercase hex characters; versions are >= 0)",
                shown(dev),
                v
            ));
        }
    }
    for (field, map) in [("heads", &batch.heads), ("prevs", &batch.prevs)] {
        for (dev, h) in map {
            if !is_device_id(dev) || !(is_hash(h) || (field == "prevs" && h.is_empty())) {
                return bad(format!(
                    "{field} entry {:?}: keys are device ids and values 64 lowercase hex characters",
                    shown(dev)
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
                shown(&e.device_id),
                e.version
            ));
        }
    }
    // Each origin's changes come in consecutive versions, as `sync_changes` makes them (an
    // exact repeat of an earlier entry aside).
    let mut chains = Chains::default();
    for e in &batch.changes {
        if let Place::Out { last } = chains.place(e) {
            return bad(format!(
                "change {}:{} follows version {last} of the same device; each device's changes must come in consecutive versions",
                shown(&e.device_id), e.version
            ));
        }
    }
    if !is_device_id(&batch.device_id) {
        return Err(Error::invalid(format!(
            "sync_apply: malformed batch: device_id (the sender) must be 32 lowercase hex characters, not {:?}",
            batch.device_id
        )));
    }
    if batch.format != BATCH_FORMAT {
        return Err(Error::invalid(format!(
            "sync_apply: batch format {} is not supported (this peersync reads format {BATCH_FORMAT})",
            batch.format
        )));
    }
    Ok(batch)
}

/// The checks of one change's own fields: its origin, version, timestamp and hash are well
/// formed. (Its operation, record id and data are read against the local table later.)
pub fn check_entry(e: &Entry) -> Result<()> {
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
    Ok(())
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
        if !is_device_id(k) {
            return Err(Error::invalid(format!(
                "{func}: vector key {:?} is not a device id (32 lowercase hex characters)",
                shown(k)
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

/// `sync_apply: change <device>:<version> (table "…", record …)`, how errors name a change.
pub fn describe(e: &Entry) -> String {
    let (t, r) = (shown(&e.table_name), shown(&e.record_id));
    format!("sync_apply: change {}:{} (table \"{t}\", record {r})", shown(&e.device_id), e.version)
}

/// The error for change `e` whose hash is not the one computed on the chain before it.
pub fn hash_mismatch(e: &Entry) -> Error {
    Error::Integrity(format!(
        "{}: hash mismatch (the change was altered in transit or its chain is broken); nothing was applied, push again",
        describe(e)
    ))
}

/// Where a change sits in its origin's chain of consecutive versions in a batch.
pub enum Place<'b> {
    /// The version after the last one of its origin so far (or its origin's first); `before`
    /// is the batch's hash for the version before it, if the batch has that version.
    Next { before: Option<&'b str> },
    /// An exact repeat (same version and hash) of an earlier change.
    Repeat { before: Option<&'b str> },
    /// Neither: a gap, a step back, or a repeat with another hash; `last` is the origin's
    /// last version so far.
    Out { last: i64 },
}

/// Per origin of a batch: its first version and the hashes of that version and of each one
/// after it, as the batch's changes are placed in order.
#[derive(Default)]
pub struct Chains<'b>(HashMap<&'b str, (i64, Vec<&'b str>)>);

impl<'b> Chains<'b> {
    pub fn place(&mut self, e: &'b Entry) -> Place<'b> {
        let (first, hashes) = self.0.entry(&e.device_id).or_insert_with(|| (e.version, Vec::new()));
        let at = usize::try_from(i128::from(e.version) - i128::from(*first)).ok();
        let before = |k: usize| k.checked_sub(1).map(|k| hashes[k]);
        match at {
            Some(k) if k == hashes.len() => {
                let before = before(k);
                hashes.push(&e.hash);
                Place::Next { before }
            }
            Some(k) if k < hashes.len() && hashes[k] == e.hash => Place::Repeat { before: before(k) },
            _ => Place::Out { last: *first + hashes.len() as i64 - 1 },
        }
    }
}
