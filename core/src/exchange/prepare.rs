//! The part of applying a batch that needs no database: hashing each change and parsing its key
//! and data. A large batch does it on a second thread while `apply` writes; results come back
//! in batch order, and `apply` still decides, change by change, what to do with them. What
//! `apply` is done with goes back to that thread to be freed, where it was allocated.
use crate::db::ident::is_reserved_table;
use crate::error::{Error, Result};
use crate::model::change::{Change, Op};
use crate::model::table::{Table, Tables};
use crate::wire::{describe, parse_literals, record_id, shown, Batch, Chains, Entry, Place, Value};
use std::collections::HashMap;
use std::sync::mpsc;

/// Batches at least this long are prepared on a second thread (a thread costs tens of µs).
const THREADED_FROM: usize = 64;
/// Changes the second thread sends at a time.
const CHUNK: usize = 128;

/// What was prepared for one change of the batch.
#[derive(Default)]
pub struct Prepared<'b> {
    /// `prev`, and whether the hash computed from the change's fields on it is the one the
    /// change claims. `prev` is the hash that the batch claims for the same origin's previous
    /// version, or the head held here when the batch came. None when neither is at hand, or
    /// the change is one this database held already.
    pub hash: Option<(&'b str, bool)>,
    /// The record's key and the change, read against its table (None: the table is not
    /// tracked, the operation unknown, or the change held already).
    pub parsed: Option<Result<Parsed>>,
}

/// A change's record key and its parsed data.
pub type Parsed = (Vec<Value>, Change);

/// Reads change `e`'s key (its `record_id`) and data against its table `t`.
pub fn parse(t: &Table, op: Op, e: &Entry) -> Result<Parsed> {
    let what = || describe(e);
    let key = parse_literals(&e.record_id).map_err(|err| Error::invalid(format!("{}: {err}", what())))?;
    if key.iter().any(|v| v.is_null()) {
        return Err(Error::invalid(format!("{}: record_id holds NULL; a NULL primary key identifies no row", what())));
    }
    if key.len() != t.pk.len() || record_id(&key) != e.record_id {
        return Err(Error::invalid(format!(
            "{}: record_id does not name a primary key of \"{}\" ({} column(s))",
            what(),
            t.name,
            t.pk.len()
        )));
    }
    // One row, one record id: the key must be stored here as it is spelled, or the change
    // would name a row by a second record id (4242 for a TEXT key '4242').
    for (k, v) in key.iter().enumerate() {
        let c = t.pk[k];
        if t.affinity[c].converts(v) {
            return Err(converted(&what(), t, c, v, "record_id"));
        }
    }
    let change = Change::parse(t, op, &e.change_data, &e.bases, &what)?;
    // Values are stored as they are sent: one this database's column types would convert is
    // another value here than at its origin (and in the change's hash).
    for w in &change.writes {
        if t.affinity[w.col].converts(&w.value) {
            return Err(converted(&what(), t, w.col, &w.value, "change_data"));
        }
    }
    // An INSERT's primary key columns must equal the record id's key.
    for w in &change.writes {
        if let Some(k) = t.pk.iter().position(|&p| p == w.col) {
            if w.value != key[k] {
                return Err(Error::invalid(format!(
                    "{}: column \"{}\" disagrees with the record_id",
                    what(),
                    t.columns[w.col]
                )));
            }
        }
    }
    Ok((key, change))
}

/// Reads change `e` of a table that is not tracked here, as far as that can be done without the
/// table: its record id must be canonical literals with no NULL, its data and bases well formed
/// (their values and references). Its effect waits until the table is tracked (then [`parse`]
/// reads it in full). A table that can never be tracked (SQLite's or peersync's own) is refused.
pub fn parse_untracked(op: Op, e: &Entry) -> Result<Change> {
    let what = || describe(e);
    if is_reserved_table(&e.table_name) || e.table_name.is_empty() || e.table_name.contains('\0') {
        return Err(Error::invalid(format!(
            "sync_apply: table \"{}\" is not tracked here and can never be (SQLite's or peersync's own name, or no table's name)",
            shown(&e.table_name)
        )));
    }
    let key = parse_literals(&e.record_id).map_err(|err| Error::invalid(format!("{}: {err}", what())))?;
    if key.is_empty() || key.iter().any(|v| v.is_null()) || record_id(&key) != e.record_id {
        return Err(Error::invalid(format!("{}: record_id is not a primary key's canonical literals", what())));
    }
    // The names the change uses: its data's members and the columns its bases saw.
    let names = |text: &str, field: &str| -> Result<Vec<String>> {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(m)) => Ok(m.keys().cloned().collect()),
            Ok(_) => Err(Error::invalid(format!("{}: {field} is not a JSON object", what()))),
            Err(err) => Err(Error::invalid(format!("{}: {field} is not JSON ({err})", what()))),
        }
    };
    let mut columns = names(&e.change_data, "change_data")?;
    if let Ok(serde_json::Value::Object(b)) = serde_json::from_str::<serde_json::Value>(&e.bases) {
        if let Some(serde_json::Value::Object(seen)) = b.get("seen") {
            columns.extend(seen.keys().filter(|k| !columns.contains(k)).cloned().collect::<Vec<_>>());
        }
    }
    let shadow = Table::shadow(&e.table_name, columns);
    let change = Change::parse(&shadow, op, &e.change_data, &e.bases, &what)?;
    Ok(change)
}

/// The refusal of a change whose `field` holds `v` for column `c`, which `t`'s declared type
/// here would store as another value.
fn converted(what: &str, t: &Table, c: usize, v: &Value, field: &str) -> Error {
    let mut lit = String::new();
    v.write_literal(&mut lit);
    Error::invalid(format!(
        "{what}: {field} gives column \"{}\" the value {}, which this database stores as another value (the column has {} affinity here); refused: one row, one record id, one value",
        shown(&t.columns[c]),
        shown(&lit),
        t.affinity[c].as_str()
    ))
}

/// Prepares the changes of one batch in order, on the thread `spawn` started or on demand, and
/// keeps, for every change, whether its hash was found to match.
pub struct Preparer<'b> {
    work: Work<'b>,
    prevs: Vec<Option<&'b str>>,
    rx: Option<mpsc::Receiver<Vec<Prepared<'b>>>>,
    /// Parsed changes done with, sent back a chunk at a time to be freed.
    done: Vec<Parsed>,
    done_tx: Option<mpsc::Sender<Vec<Parsed>>>,
    ready: std::vec::IntoIter<Prepared<'b>>,
    /// For each change taken so far: its prepared hash matches the one it claims.
    matched: Vec<bool>,
}

/// What a change needs to be prepared: the batch, its tables, and where each hash chains from.
#[derive(Clone, Copy)]
struct Work<'b> {
    batch: &'b Batch,
    tables: &'b Tables,
}

impl<'b> Work<'b> {
    /// For each change, the hash its chain builds on, when the batch or `heads` (the head
    /// held here of every origin in the batch) tell it; None for a change held already.
    fn prevs(&self, heads: &'b HashMap<String, (i64, String)>) -> Vec<Option<&'b str>> {
        let mut chains = Chains::default();
        let mut prevs = Vec::with_capacity(self.batch.changes.len());
        for e in &self.batch.changes {
            let before = match chains.place(e) {
                Place::Next { before } | Place::Repeat { before } => before,
                Place::Out { .. } => None,
            };
            let prev = match heads.get(&*e.device_id) {
                Some((v, _)) if e.version <= *v => None,
                Some((v, h)) if Some(e.version) == v.checked_add(1) => Some(h.as_str()),
                _ => before,
            };
            prevs.push(prev);
        }
        prevs
    }

    fn prepare(&self, e: &'b Entry, prev: Option<&'b str>) -> Prepared<'b> {
        let Some(prev) = prev else { return Prepared::default() };
        let parsed = match (self.tables.get(&e.table_name), Op::parse(&e.operation)) {
            (Some(t), Some(op)) => Some(parse(t, op, e)),
            _ => None,
        };
        Prepared { hash: Some((prev, e.compute_hash(prev) == e.hash)), parsed }
    }
}

impl<'b> Preparer<'b> {
    /// Starts preparing `batch`: on a thread of `scope` when it is large, else on demand.
    /// `heads` holds the head (version, hash) held here of every origin in the batch.
    pub fn spawn<'s>(
        scope: &'s std::thread::Scope<'s, 'b>,
        batch: &'b Batch,
        tables: &'b Tables,
        heads: &'b HashMap<String, (i64, String)>,
    ) -> Preparer<'b> {
        let work = Work { batch, tables };
        let prevs = work.prevs(heads);
        let (mut rx, mut done_tx) = (None, None);
        if batch.changes.len() >= THREADED_FROM {
            let (tx, r) = mpsc::channel();
            let (dtx, done_rx) = mpsc::channel::<Vec<Parsed>>();
            (rx, done_tx) = (Some(r), Some(dtx));
            let prevs = prevs.clone();
            scope.spawn(move || {
                let mut chunk = Vec::with_capacity(CHUNK);
                for (e, prev) in batch.changes.iter().zip(prevs) {
                    chunk.push(work.prepare(e, prev));
                    if chunk.len() == CHUNK
                        && tx.send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK))).is_err()
                    {
                        break;
                    }
                }
                let _ = tx.send(chunk);
                drop(tx);
                // Free here what `apply` is done with, until it is done with the batch.
                for chunk in done_rx {
                    drop(chunk);
                }
            });
        }
        Preparer {
            work,
            prevs,
            rx,
            done: Vec::with_capacity(CHUNK),
            done_tx,
            ready: Vec::new().into_iter(),
            matched: Vec::with_capacity(batch.changes.len()),
        }
    }

    /// What was prepared for the next change of the batch (changes are taken in order).
    pub fn next(&mut self) -> Prepared<'b> {
        let i = self.matched.len();
        let e = &self.work.batch.changes[i];
        let p = match self.ready.next() {
            Some(p) => p,
            None => match self.rx.as_ref().and_then(|rx| rx.recv().ok()) {
                Some(chunk) => {
                    self.ready = chunk.into_iter();
                    self.ready.next().unwrap_or_default()
                }
                None => self.work.prepare(e, self.prevs[i]),
            },
        };
        self.matched.push(p.hash.is_some_and(|(_, matched)| matched));
        p
    }

    /// Hands back a change's parsed key and data once `apply` is done with them: freed on the
    /// thread that made them (freeing across threads contends for the allocator's locks).
    pub fn done(&mut self, parsed: Parsed) {
        if let Some(tx) = &self.done_tx {
            self.done.push(parsed);
            if self.done.len() == CHUNK
                && tx.send(std::mem::replace(&mut self.done, Vec::with_capacity(CHUNK))).is_err()
            {
                self.done_tx = None;
            }
        }
    }

    /// Takes every change not taken yet (hashing those prepared on demand, not parsing them)
    /// and returns, for each change of the batch, whether its hash matched.
    pub fn finish(mut self) -> Vec<bool> {
        if let Some(tx) = self.done_tx.take() {
            let _ = tx.send(std::mem::take(&mut self.done)); // the second thread ends after these
        }
        let n = self.work.batch.changes.len();
        if self.rx.is_some() {
            while self.matched.len() < n {
                self.next();
            }
        }
        for i in self.matched.len()..n {
            let e = &self.work.batch.changes[i];
            self.matched.push(self.prevs[i].is_some_and(|prev| e.compute_hash(prev) == e.hash));
        }
        self.matched
    }
}
