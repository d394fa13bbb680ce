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

/// Device `by` vouches that `device_id` (named `name`) holds `public_key` (`signature.rs`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Introduction {
    pub by: String,
    pub device_id: String,
    pub public_key: String,
    pub name: String,
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
    /// The devices the sender vouches for: each one's key, signed by the sender.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub introductions: Vec<Introduction>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value as Json};

    const A: &str = "0123456789abcdef0123456789abcdef";
    const B: &str = "fedcba9876543210fedcba9876543210";

    fn hash(c: char) -> String {
        c.to_string().repeat(64)
    }

    fn change(dev: &str, version: i64, h: &str) -> Json {
        json!({"table_name": "t", "record_id": "'k'", "operation": "INSERT", "change_data": "{}", "device_id": dev,
               "version": version, "timestamp": 1, "bases": "{}", "resolution": false, "hash": h})
    }

    fn batch(f: impl FnOnce(&mut Json)) -> Result<Batch> {
        let mut j = json!({"format": 1, "device_id": A, "changes": [change(A, 1, &hash('a')), change(A, 2, &hash('b'))],
                           "has_more": false, "vector": {A: 2}, "signatures": [], "heads": {A: hash('b')}, "prevs": {A: ""}});
        f(&mut j);
        parse_batch(&j.to_string())
    }

    fn refused(f: impl FnOnce(&mut Json), want: &str) {
        match batch(f) {
            Err(Error::Invalid(m)) => assert!(m.starts_with("sync_apply: ") && m.contains(want), "{m} (wanted {want})"),
            other => panic!("expected a refusal containing {want:?}, got {other:?}"),
        }
    }

    #[test]
    fn a_well_formed_batch_parses() {
        let b = batch(|_| {}).unwrap();
        assert_eq!((b.changes.len(), b.vector[A], b.prevs[A].as_str()), (2, 2, ""));
        // Optional envelope fields, a zero version, a prevs hash, and an exact repeat.
        let b = batch(|j| {
            j["vector"] = json!({A: 0, B: 7});
            j["heads"] = json!({});
            j["prevs"] = json!({A: hash('c')});
            j["changes"].as_array_mut().unwrap().push(change(A, 2, &hash('b')));
        })
        .unwrap();
        assert_eq!((b.changes.len(), b.vector[A]), (3, 0));
        let b =
            parse_batch(&json!({"format": 1, "device_id": A, "changes": [], "has_more": true}).to_string()).unwrap();
        assert!(b.vector.is_empty() && b.signatures.is_empty() && b.heads.is_empty() && b.prevs.is_empty());
    }

    #[test]
    fn parse_errors_name_the_field_at_fault() {
        let e = parse_batch("5").unwrap_err().to_string();
        assert!(e.starts_with("sync_apply: malformed batch: invalid type") && !e.contains("field"), "{e}");
        let e = parse_batch("not json").unwrap_err().to_string();
        assert!(e.starts_with("sync_apply: malformed batch: expected") && !e.contains("field"), "{e}");
        let e = batch(|j| j["changes"][1]["version"] = json!("2")).unwrap_err().to_string();
        assert!(e.starts_with("sync_apply: malformed batch: field changes[1].version: invalid type"), "{e}");
        let e = batch(|j| j["extra"] = json!(1)).unwrap_err().to_string();
        assert!(e.contains("unknown field `extra`"), "{e}");
    }

    #[test]
    fn the_envelope_is_checked() {
        refused(|j| j["vector"] = json!({"nope": 1}), "vector entry \"nope\": 1 (keys are device ids");
        refused(|j| j["vector"] = json!({A: -1}), &format!("vector entry \"{A}\": -1"));
        refused(|j| j["heads"] = json!({"nope": hash('b')}), "heads entry \"nope\"");
        refused(|j| j["heads"] = json!({A: "b".repeat(63)}), &format!("heads entry \"{A}\""));
        refused(|j| j["heads"] = json!({A: ""}), &format!("heads entry \"{A}\""));
        refused(|j| j["prevs"] = json!({"nope": ""}), "prevs entry \"nope\"");
        refused(|j| j["prevs"] = json!({A: "B".repeat(64)}), &format!("prevs entry \"{A}\""));
        refused(|j| j["heads"] = json!({A: hash('c')}), &format!("heads names another hash for {A}:2"));
        refused(
            |j| j["device_id"] = json!("ME"),
            "device_id (the sender) must be 32 lowercase hex characters, not \"ME\"",
        );
        refused(|j| j["format"] = json!(2), "batch format 2 is not supported (this peersync reads format 1)");
        // A head for a version the batch does not hold is the sender's word; not a contradiction.
        assert!(batch(|j| j["vector"] = json!({A: 9})).is_ok());
    }

    #[test]
    fn each_origin_comes_in_consecutive_versions() {
        let follows = |v, last| format!("change {A}:{v} follows version {last} of the same device");
        refused(|j| j["changes"][1]["version"] = json!(3), &follows(3, 1));
        refused(|j| j["changes"][1]["version"] = json!(1), &follows(1, 1));
        refused(|j| j["changes"].as_array_mut().unwrap().push(change(A, 1, &hash('z'))), &follows(1, 2));
        // Another origin keeps its own count; an exact repeat is no gap.
        assert!(batch(|j| {
            let c = j["changes"].as_array_mut().unwrap();
            c.insert(1, change(B, 5, &hash('c')));
            c.push(change(B, 6, &hash('d')));
            c.push(change(A, 1, &hash('a')));
        })
        .is_ok());
    }

    #[test]
    fn chains_place_each_change_after_its_predecessor() {
        let entries: Vec<Entry> =
            [(A, 4, 'a'), (A, 5, 'b'), (B, 1, 'c'), (A, 5, 'b'), (A, 4, 'x'), (A, 7, 'y'), (A, 3, 'z')]
                .iter()
                .map(|&(d, v, h)| serde_json::from_value(change(d, v, &hash(h))).unwrap())
                .collect();
        let mut chains = Chains::default();
        let places: Vec<String> = entries
            .iter()
            .map(|e| match chains.place(e) {
                Place::Next { before } => format!("next {}", before.map_or("-".into(), |h| h[..1].to_string())),
                Place::Repeat { before } => format!("repeat {}", before.map_or("-".into(), |h| h[..1].to_string())),
                Place::Out { last } => format!("out {last}"),
            })
            .collect();
        assert_eq!(places, ["next -", "next a", "next -", "repeat a", "out 5", "out 5", "out 5"]);
    }

    #[test]
    fn an_entry_s_own_fields_are_checked() {
        let e = |f: &dyn Fn(&mut Json)| {
            let mut j = change(A, 1, &hash('a'));
            f(&mut j);
            check_entry(&serde_json::from_value(j).unwrap())
        };
        assert!(e(&|_| {}).is_ok());
        assert!(e(&|j| j["timestamp"] = json!(MAX_TIMESTAMP)).is_ok());
        assert!(e(&|j| j["timestamp"] = json!(0)).is_ok());
        for (f, want) in [
            (&(|j: &mut Json| j["device_id"] = json!("x")) as &dyn Fn(&mut Json), "device_id must be 32 lowercase hex"),
            (&|j: &mut Json| j["version"] = json!(0), "version must be >= 1"),
            (&|j: &mut Json| j["timestamp"] = json!(-1), "timestamp between 0 and"),
            (&|j: &mut Json| j["timestamp"] = json!(MAX_TIMESTAMP + 1), "timestamp between 0 and"),
            (&|j: &mut Json| j["hash"] = json!("A".repeat(64)), "hash must be 64 lowercase hex"),
        ] {
            let m = e(f).unwrap_err().to_string();
            assert!(m.starts_with("sync_apply: change ") && m.contains(want), "{m} (wanted {want})");
        }
        let long = "x".repeat(500);
        let m =
            e(&|j| j["table_name"] = json!(long)).map(|_| describe(&serde_json::from_value(change(A, 1, "")).unwrap()));
        assert!(m.is_ok());
        let shown_name = describe(&serde_json::from_value(json!({"table_name": long, "record_id": "'k'", "operation": "INSERT",
            "change_data": "{}", "device_id": A, "version": 1, "timestamp": 1, "bases": "{}", "resolution": false, "hash": ""})).unwrap());
        assert!(shown_name.len() < 200 && shown_name.contains('…'), "{shown_name}");
        assert!(hash_mismatch(&serde_json::from_value(change(A, 3, "")).unwrap())
            .to_string()
            .contains(&format!("change {A}:3")));
    }

    #[test]
    fn vectors_are_read_with_errors_that_name_the_function() {
        assert_eq!(
            parse_vector("f", &json!({A: 3, B: 0}).to_string()).unwrap(),
            Vector::from([(A.into(), 3), (B.into(), 0)])
        );
        for (text, want) in [
            ("nope", "f: the vector is not JSON"),
            ("[1]", "f: the vector must be a JSON object"),
            (r#"{"ABC": 1}"#, "f: vector key \"ABC\" is not a device id"),
            (&format!(r#"{{"{A}": -1}}"#), "must be a non-negative integer"),
            (&format!(r#"{{"{A}": 1.5}}"#), "must be a non-negative integer"),
        ] {
            let m = parse_vector("f", text).unwrap_err().to_string();
            assert!(m.contains(want), "{text}: {m}");
        }
    }
}
