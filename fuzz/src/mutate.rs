//! Structure-aware batch mutations: edit a real batch field by field, optionally re-hash and re-sign, so inputs get past the parser and the hash checks.
use crate::batch::{self, Allowances};
use crate::world::{self, Dev, COLUMNS, DEVICES};
use arbitrary::{Arbitrary, Unstructured};
use peersync_core::Batch;
use peersync_core::Entry;
use std::collections::BTreeMap;

/// A value as the fuzzer makes it, encoded per the documented change_data format (or not).
#[derive(Arbitrary, Debug, Clone)]
pub enum Val {
    Null,
    Int(i64),
    SmallInt(i8),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Inf(bool),
    /// Anything as JSON text (objects, arrays, booleans, bad `$blob`s...).
    Raw(String),
    Bool(bool),
    Nested(u8),
}

impl Val {
    fn json(&self) -> String {
        match self {
            Val::Null => "null".into(),
            Val::Int(i) => i.to_string(),
            Val::SmallInt(i) => i.to_string(),
            Val::Real(f) if f.is_finite() => format!("{f:?}"),
            Val::Real(_) => "1e999".into(),
            Val::Text(t) => serde_json::to_string(t).unwrap(),
            Val::Blob(b) => format!("{{\"$blob\":\"{}\"}}", hex::encode(b)),
            Val::Inf(neg) => format!("{{\"$real\":\"{}inf\"}}", if *neg { "-" } else { "" }),
            Val::Raw(s) => s.clone(),
            Val::Bool(b) => b.to_string(),
            Val::Nested(n) => "[".repeat(*n as usize) + &"]".repeat(*n as usize),
        }
    }

    /// The SQL literal (record ids).
    fn literal(&self) -> String {
        match self {
            Val::Null => "NULL".into(),
            Val::Int(i) => i.to_string(),
            Val::SmallInt(i) => i.to_string(),
            Val::Real(f) if f.is_infinite() => {
                if *f > 0.0 {
                    "Inf".into()
                } else {
                    "-Inf".into()
                }
            }
            Val::Real(f) => format!("{f:?}"),
            Val::Text(t) => format!("'{}'", t.replace('\'', "''")),
            Val::Blob(b) => format!("X'{}'", hex::encode_upper(b)),
            Val::Inf(neg) => {
                if *neg {
                    "-Inf".into()
                } else {
                    "Inf".into()
                }
            }
            Val::Raw(s) => s.clone(),
            Val::Bool(b) => b.to_string(),
            Val::Nested(n) => "'".repeat(*n as usize),
        }
    }
}

/// A column name: one of the table's, or anything.
#[derive(Arbitrary, Debug, Clone)]
pub enum Col {
    Known(u8),
    Other(String),
}

/// A writer reference in `bases`: a real one, a nearly real one, or anything.
#[derive(Arbitrary, Debug, Clone)]
pub enum Ref {
    Dev(u8, i64),
    Near(u8, i8),
    Raw(String),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Field {
    Table(u8),
    TableRaw(String),
    RecordId(Vec<Val>),
    RecordIdRaw(String),
    Operation(u8),
    OperationRaw(String),
    Data(Vec<(Col, Val)>),
    DataRaw(String),
    /// bases: live refs, per-column refs, seen refs.
    Bases(Vec<Ref>, Vec<(Col, Vec<Ref>)>, Vec<(Col, Option<Ref>)>),
    BasesRaw(String),
    Device(u8),
    DeviceRaw(String),
    Version(i64),
    VersionDelta(i8),
    Timestamp(i64),
    TimestampDelta(i32),
    Resolution(bool),
    HashRaw(String),
    /// Flip one byte of a text field (0..=5: table, record, op, data, bases, hash).
    Flip(u8, u16, u8),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
    Set(u8, Field),
    Drop(u8),
    Dup(u8, u8),
    Swap(u8, u8),
    /// Insert a change from the sender's whole log at a position.
    Take(u16, u8),
    Sender(u8),
    SenderRaw(String),
    HasMore(bool),
    Vector(Vec<(u8, i64)>),
    DropSignature(u8),
    SignatureField(u8, u8, String),
    SignatureVersion(u8, i64),
    /// Re-hash every change on its origin's chain, from the receiver's heads.
    Rehash,
    /// Make each origin's versions contiguous from the receiver's head.
    Renumber,
    /// Sign the origin's last change in the batch with its key (the input then holds that key).
    Resign(u8),
    /// Set the batch format number.
    Format(u32),
    /// Set (or remove) an entry of the batch's `heads` (sender's hash at each vector version).
    Head(u8, HashPick),
    /// Set (or remove) an entry of the batch's `prevs` (hash before each origin's first change).
    Prev(u8, HashPick),
}

/// A hash for `heads`/`prevs`: a real one from the sender's log, empty, anything, or none.
#[derive(Arbitrary, Debug, Clone)]
pub enum HashPick {
    Genuine(u16),
    Empty,
    Raw(String),
    Remove,
}

#[derive(Debug)]
pub struct Input {
    pub base: u8,
    pub ops: Vec<Op>,
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let base = u.arbitrary()?;
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < 64 {
            ops.push(u.arbitrary()?);
        }
        Ok(Input { base, ops })
    }
}

fn pick<T: Clone>(xs: &[T], i: impl Into<u64>) -> Option<T> {
    if xs.is_empty() {
        None
    } else {
        Some(xs[(i.into() % xs.len() as u64) as usize].clone())
    }
}

fn dev(i: u8) -> Dev {
    DEVICES[i as usize % DEVICES.len()]
}

fn table_cols(table: &str) -> &'static [&'static str] {
    COLUMNS.iter().find(|(t, _)| *t == table).map_or(&[], |(_, c)| c)
}

fn col_name(table: &str, c: &Col) -> String {
    match c {
        Col::Known(i) => pick(table_cols(table), *i).unwrap_or("id").to_string(),
        Col::Other(s) => s.clone(),
    }
}

fn reference(r: &Ref, heads: &BTreeMap<String, i64>) -> String {
    match r {
        Ref::Dev(d, v) => format!("{}:{v}", dev(*d).id),
        Ref::Near(d, delta) => {
            let id = dev(*d).id;
            format!("{id}:{}", heads.get(id).copied().unwrap_or(0) + *delta as i64)
        }
        Ref::Raw(s) => s.clone(),
    }
}

fn set(e: &mut Entry, f: &Field, heads: &BTreeMap<String, i64>) {
    let q = |s: &str| serde_json::to_string(s).unwrap();
    match f {
        Field::Table(i) => e.table_name = pick(&COLUMNS, *i).unwrap().0.into(),
        Field::TableRaw(s) => e.table_name = s.as_str().into(),
        Field::RecordId(vals) => {
            e.record_id = vals.iter().map(Val::literal).collect::<Vec<_>>().join(",");
        }
        Field::RecordIdRaw(s) => e.record_id = s.clone(),
        Field::Operation(i) => {
            e.operation = pick(&["INSERT", "UPDATE", "DELETE", "REPLACE", "insert", ""], *i).unwrap().into()
        }
        Field::OperationRaw(s) => e.operation = s.as_str().into(),
        Field::Data(kv) => {
            let body: Vec<String> =
                kv.iter().map(|(c, v)| format!("{}:{}", q(&col_name(&e.table_name, c)), v.json())).collect();
            e.change_data = format!("{{{}}}", body.join(","));
        }
        Field::DataRaw(s) => e.change_data = s.clone(),
        Field::Bases(live, cols, seen) => {
            let list =
                |rs: &[Ref]| format!("[{}]", rs.iter().map(|r| q(&reference(r, heads))).collect::<Vec<_>>().join(","));
            let cols: Vec<String> =
                cols.iter().map(|(c, rs)| format!("{}:{}", q(&col_name(&e.table_name, c)), list(rs))).collect();
            let seen: Vec<String> = seen
                .iter()
                .map(|(c, r)| {
                    let v = r.as_ref().map_or("null".to_string(), |r| q(&reference(r, heads)));
                    format!("{}:{v}", q(&col_name(&e.table_name, c)))
                })
                .collect();
            let mut parts = Vec::new();
            if !live.is_empty() {
                parts.push(format!("\"live\":{}", list(live)));
            }
            if !cols.is_empty() {
                parts.push(format!("\"cols\":{{{}}}", cols.join(",")));
            }
            if !seen.is_empty() {
                parts.push(format!("\"seen\":{{{}}}", seen.join(",")));
            }
            e.bases = format!("{{{}}}", parts.join(","));
        }
        Field::BasesRaw(s) => e.bases = s.clone(),
        Field::Device(i) => e.device_id = dev(*i).id.into(),
        Field::DeviceRaw(s) => e.device_id = s.as_str().into(),
        Field::Version(v) => e.version = *v,
        Field::VersionDelta(d) => e.version = e.version.saturating_add(*d as i64),
        Field::Timestamp(t) => e.timestamp = *t,
        Field::TimestampDelta(d) => e.timestamp = e.timestamp.saturating_add(*d as i64),
        Field::Resolution(r) => e.resolution = *r,
        Field::HashRaw(s) => e.hash = s.clone(),
        Field::Flip(which, pos, x) => {
            let flip = |s: &str| {
                let mut bytes = s.as_bytes().to_vec();
                if !bytes.is_empty() {
                    let k = *pos as usize % bytes.len();
                    bytes[k] ^= x.max(&1);
                }
                String::from_utf8_lossy(&bytes).into_owned()
            };
            match which % 6 {
                0 => e.table_name = flip(&e.table_name).into(),
                1 => e.record_id = flip(&e.record_id),
                2 => e.operation = flip(&e.operation).into(),
                3 => e.change_data = flip(&e.change_data),
                4 => e.bases = flip(&e.bases),
                _ => e.hash = flip(&e.hash),
            }
        }
    }
}

/// Re-hashes each change on its origin's chain, from the receiver's heads.
pub fn rehash(b: &mut Batch) {
    let mut heads = batch::receiver_heads();
    for e in &mut b.changes {
        let prev = heads.get(&*e.device_id).cloned().unwrap_or_default();
        // The chain links to the previous version: only when versions follow on does the head apply.
        e.hash = e.compute_hash(&prev);
        heads.insert(e.device_id.to_string(), e.hash.clone());
    }
}

fn renumber(b: &mut Batch) {
    let f = batch::fixtures();
    let mut next: BTreeMap<String, i64> = BTreeMap::new();
    for e in &mut b.changes {
        let n = next.entry(e.device_id.to_string()).or_insert_with(|| f.heads.get(&*e.device_id).map_or(0, |h| h.0));
        *n += 1;
        e.version = *n;
    }
}

/// Builds the mutated batch and what the input may sign for.
pub fn build(input: &Input) -> (Batch, Allowances) {
    let f = batch::fixtures();
    let base = &f.batches[input.base as usize % f.batches.len()];
    let mut b: Batch = serde_json::from_value(serde_json::to_value(base).unwrap()).unwrap();
    let mut allow = Allowances::default();
    let heads: BTreeMap<String, i64> = f.heads.iter().map(|(d, (v, _))| (d.clone(), *v)).collect();
    for op in &input.ops {
        let n = b.changes.len();
        match op {
            Op::Set(i, field) if n > 0 => set(&mut b.changes[*i as usize % n], field, &heads),
            Op::Set(..) => {}
            Op::Drop(i) if n > 0 => {
                b.changes.remove(*i as usize % n);
            }
            Op::Drop(_) => {}
            Op::Dup(i, j) if n > 0 => {
                let e = b.changes[*i as usize % n].clone();
                b.changes.insert(*j as usize % (n + 1), e);
            }
            Op::Dup(..) => {}
            Op::Swap(i, j) if n > 0 => b.changes.swap(*i as usize % n, *j as usize % n),
            Op::Swap(..) => {}
            Op::Take(k, at) => {
                if let Some(e) = pick(&f.sender.changes, *k) {
                    b.changes.insert(*at as usize % (n + 1), e);
                }
            }
            Op::Sender(i) => b.device_id = dev(*i).id.to_string(),
            Op::SenderRaw(s) => b.device_id = s.clone(),
            Op::HasMore(h) => b.has_more = *h,
            Op::Vector(kv) => {
                b.vector = kv.iter().map(|(d, v)| (dev(*d).id.to_string(), *v)).collect();
            }
            Op::DropSignature(i) if !b.signatures.is_empty() => {
                let k = *i as usize % b.signatures.len();
                b.signatures.remove(k);
            }
            Op::DropSignature(_) => {}
            Op::SignatureField(i, which, s) if !b.signatures.is_empty() => {
                let k = *i as usize % b.signatures.len();
                let sig = &mut b.signatures[k];
                match which % 3 {
                    0 => sig.device_id = s.clone(),
                    1 => sig.hash = s.clone(),
                    _ => sig.signature = s.clone(),
                }
            }
            Op::SignatureField(..) => {}
            Op::SignatureVersion(i, v) if !b.signatures.is_empty() => {
                let k = *i as usize % b.signatures.len();
                b.signatures[k].version = *v;
            }
            Op::SignatureVersion(..) => {}
            Op::Rehash => rehash(&mut b),
            Op::Renumber => renumber(&mut b),
            Op::Resign(d) => {
                let d = dev(*d);
                world::sign_origin(&mut b, d);
                allow.signed_by_input.insert(d.id.to_string());
            }
            Op::Format(v) => b.format = *v,
            Op::Head(..) | Op::Prev(..) => {}
        }
    }
    (b, allow)
}

/// The batch as sent, with the `heads`/`prevs` edits (made on the JSON, whatever fields the
/// batch type has now).
pub fn wire(input: &Input, b: &Batch) -> String {
    let mut j = serde_json::to_value(b).unwrap();
    let f = batch::fixtures();
    for op in &input.ops {
        let (field, d, pick) = match op {
            Op::Head(d, p) => ("heads", d, p),
            Op::Prev(d, p) => ("prevs", d, p),
            _ => continue,
        };
        let obj = j.as_object_mut().unwrap().entry(field).or_insert_with(|| serde_json::json!({}));
        let Some(obj) = obj.as_object_mut() else { continue };
        let key = dev(*d).id.to_string();
        match pick {
            HashPick::Genuine(k) => {
                if let Some(e) = pick_entry(&f.sender.changes, *k) {
                    obj.insert(key, e.hash.clone().into());
                }
            }
            HashPick::Empty => {
                obj.insert(key, "".into());
            }
            HashPick::Raw(s) => {
                obj.insert(key, s.clone().into());
            }
            HashPick::Remove => {
                obj.remove(&key);
            }
        }
    }
    j.to_string()
}

fn pick_entry(xs: &[Entry], k: u16) -> Option<&Entry> {
    (!xs.is_empty()).then(|| &xs[k as usize % xs.len()])
}

pub fn run(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let (b, allow) = build(&input);
    // The batch goes through the wire format as a peer would send it.
    let json = wire(&input, &b);
    if std::env::var_os("PEERSYNC_FUZZ_DEBUG").is_some() {
        eprintln!("batch: {json}");
    }
    match peersync_core::parse_batch(&json) {
        Ok(parsed) => batch::run_batch(&parsed, &allow),
        Err(e) => assert!(matches!(e, peersync_core::Error::Invalid(_)), "{e:?}"),
    }
}
