//! The merge rules (DESIGN.md "Merging and conflicts", the model in shared/model): how a
//! received change's writes meet the record's current writers, and resolutions.
use super::conflicts::{self, Detected, Slot, SlotVal, Status, Summary};
use crate::db::hot::Hot;
use crate::error::Result;
use crate::model::change::{Change, ColWrite, Op};
use crate::model::table::{Strategy, Table};
use crate::store::local::LocalLog;
use crate::store::log::Writers;
use crate::store::rows;
use crate::store::slots::Slots;
use crate::wire::{parse_reference, write_json_string, Value};
use rusqlite::Connection;
use std::borrow::Cow;
use std::sync::Arc;

/// State shared by everything one write transaction merges.
pub struct Merger<'c> {
    pub conn: &'c Connection,
    /// The statements run for every change.
    pub hot: Hot<'c>,
    pub writers: Writers,
    pub local: LocalLog,
    pub conflicts: Vec<Summary>,
    pub resolutions: i64,
}

/// One record being merged: its key and what the merge has learned of its values.
pub struct Record<'t> {
    pub t: &'t Table,
    pub rid: &'t str,
    pub key: Vec<Value>,
}

impl<'c> Merger<'c> {
    pub fn new(conn: &'c Connection) -> Result<Merger<'c>> {
        Ok(Merger {
            conn,
            hot: Hot::new(conn),
            writers: Writers::default(),
            local: LocalLog::open(conn)?,
            conflicts: Vec::new(),
            resolutions: 0,
        })
    }

    fn ids(&self, refs: &[String]) -> Result<Vec<i64>> {
        let mut v = Vec::with_capacity(refs.len());
        for r in refs {
            if let Some((d, ver)) = parse_reference(r) {
                if let Some(id) = self.writers.id_of(self.conn, d, ver)? {
                    v.push(id);
                }
            }
        }
        Ok(v)
    }

    /// (timestamp, device id) of a writer; no writer sorts first.
    fn order(&mut self, id: Option<i64>) -> Result<(i64, Arc<str>)> {
        Ok(match id {
            None => (i64::MIN, "".into()),
            Some(id) => {
                let w = self.writers.get(self.conn, id)?;
                (w.timestamp, w.device_id)
            }
        })
    }

    fn is_resolution(&mut self, id: Option<i64>) -> Result<bool> {
        Ok(match id {
            None => false,
            Some(id) => self.writers.get(self.conn, id)?.resolution,
        })
    }

    /// Current value of every column: the table's row when alive, else what each column's
    /// writer wrote.
    fn current_values(&mut self, r: &Record<'_>, slots: &Slots) -> Result<Vec<Value>> {
        if slots.alive {
            if let Some(row) = rows::read(self.conn, r.t, &r.key)? {
                return Ok(row);
            }
        }
        let mut v = Vec::with_capacity(r.t.columns.len());
        for (c, w) in slots.cols.iter().enumerate() {
            v.push(if r.t.is_pk(c) {
                r.key[r.t.pk.iter().position(|&p| p == c).unwrap()].clone()
            } else {
                rows::written_value(self.conn, r.t, c, *w)?
            });
        }
        Ok(v)
    }

    /// [`Self::current_values`], computed once per merge and only when needed.
    fn values_once<'v>(
        &mut self,
        cache: &'v mut Option<Vec<Value>>,
        r: &Record<'_>,
        slots: &Slots,
    ) -> Result<&'v Vec<Value>> {
        if cache.is_none() {
            *cache =
                Some(if slots.known { self.current_values(r, slots)? } else { vec![Value::Null; r.t.columns.len()] });
        }
        Ok(cache.as_ref().unwrap())
    }

    /// Merges received change `this` (already logged) into record `r`.
    pub fn merge_remote(&mut self, r: &Record<'_>, ch: &Change, this: i64, data: &str) -> Result<()> {
        let conn = self.conn;
        let t = r.t;
        let me = self.writers.get(conn, this)?;
        let res = me.resolution;
        let first_insert = ch.op == Op::Insert && ch.live.is_empty() && ch.writes.iter().all(|w| w.base.is_empty());
        let claimed = match first_insert {
            true => {
                Slots::claim_new(&mut self.hot, t, r.rid, &Slots::inserted(t, this, ch.writes.iter().map(|w| w.col)))?
            }
            false => None,
        };
        let before = match claimed {
            Some(s) => s,
            None => Slots::load(conn, t, &r.rid)?,
        };
        let mut slots = before.clone();
        let mut cur_vals: Option<Vec<Value>> = None;
        let strat = t.strategy;
        let mut found: Vec<Detected> = Vec::new();
        let mut auto: Vec<(Slot, SlotVal, Vec<Option<i64>>)> = Vec::new();
        let mut applied: Vec<(usize, &Value)> = Vec::new();
        let this_order = (me.timestamp, me.device_id.clone());

        if let Some(val) = ch.op.live_write() {
            let base = self.ids(&ch.live)?;
            if base.len() > 1 {
                conflicts::close_matching(conn, t, &r.rid, Slot::Live, &base, &me.reference())?;
            }
            let cur = slots.live;
            if matches(cur, &base, &ch.live) {
                let mut hold = false;
                if !val && !res {
                    if let Some(seen) = &ch.seen {
                        // A DELETE that did not see some column writer we hold: delete vs update.
                        let mut unseen: Vec<i64> = Vec::new();
                        for (c, w) in slots.cols.iter().enumerate() {
                            let Some(w) = *w else { continue };
                            let saw = match seen.iter().find(|(sc, _)| *sc == c).and_then(|(_, r)| r.as_ref()) {
                                Some(r) => self.ids(std::slice::from_ref(r))?.first().copied(),
                                None => None,
                            };
                            if saw != Some(w) && !unseen.contains(&w) {
                                unseen.push(w);
                            }
                        }
                        let mut nonres = Vec::new();
                        for &u in &unseen {
                            if !self.is_resolution(Some(u))? {
                                nonres.push(u);
                            }
                        }
                        let det = |u: i64, status, how| Detected {
                            slot: Slot::Live,
                            local: Some(u),
                            remote: this,
                            local_val: SlotVal::Alive(true),
                            remote_val: SlotVal::Alive(false),
                            status,
                            how,
                            winner: None,
                        };
                        if !nonres.is_empty() && strat != Strategy::TimestampWins {
                            hold = true;
                            let (status, how, keep) = match strat {
                                Strategy::Manual => (Status::Pending, "manual", None),
                                Strategy::LocalWins => (Status::Resolved, "local_wins", Some(true)),
                                _ => (Status::Resolved, "remote_wins", Some(false)),
                            };
                            for &u in &nonres {
                                found.push(det(u, status, how));
                            }
                            if let Some(alive) = keep {
                                let mut sides: Vec<Option<i64>> = nonres.iter().map(|&u| Some(u)).collect();
                                sides.push(Some(this));
                                auto.push((Slot::Live, SlotVal::Alive(alive), sides));
                            }
                        } else {
                            for &u in &unseen {
                                found.push(det(u, Status::Resolved, "delete_wins"));
                            }
                        }
                    }
                }
                if !hold {
                    slots.live = Some(this);
                    slots.alive = val;
                }
            } else if val == slots.alive {
                if this_order > self.order(cur)? {
                    slots.live = Some(this);
                }
            } else {
                let curval = slots.alive;
                let d = |status, how, winner| Detected {
                    slot: Slot::Live,
                    local: cur,
                    remote: this,
                    local_val: SlotVal::Alive(curval),
                    remote_val: SlotVal::Alive(val),
                    status,
                    how,
                    winner,
                };
                if res || self.is_resolution(cur)? || strat == Strategy::TimestampWins {
                    let win = this_order > self.order(cur)?;
                    if win {
                        slots.live = Some(this);
                        slots.alive = val;
                    }
                    found.push(d(Status::Resolved, "timestamp_wins", Some(if win { "remote" } else { "local" })));
                } else {
                    match strat {
                        Strategy::Manual => found.push(d(Status::Pending, "manual", None)),
                        Strategy::LocalWins => {
                            auto.push((Slot::Live, SlotVal::Alive(curval), vec![cur, Some(this)]));
                            found.push(d(Status::Resolved, "local_wins", None));
                        }
                        _ => {
                            auto.push((Slot::Live, SlotVal::Alive(val), vec![cur, Some(this)]));
                            found.push(d(Status::Resolved, "remote_wins", None));
                        }
                    }
                }
            }
        }

        for w in &ch.writes {
            let c = w.col;
            let base = self.ids(&w.base)?;
            if base.len() > 1 {
                conflicts::close_matching(conn, t, &r.rid, Slot::Col(c), &base, &me.reference())?;
            }
            let cur = slots.cols[c];
            if t.is_pk(c) {
                // Key columns always hold the record's key: writes to them agree.
                if matches(cur, &base, &w.base) || this_order > self.order(cur)? {
                    slots.cols[c] = Some(this);
                }
                continue;
            }
            if matches(cur, &base, &w.base) {
                slots.cols[c] = Some(this);
                applied.push((c, &w.value));
                continue;
            }
            let curval = self.values_once(&mut cur_vals, r, &before)?[c].clone();
            if w.value == curval {
                if this_order > self.order(cur)? {
                    slots.cols[c] = Some(this);
                }
                continue;
            }
            let d = |status, how, winner| Detected {
                slot: Slot::Col(c),
                local: cur,
                remote: this,
                local_val: SlotVal::Val(curval.clone()),
                remote_val: SlotVal::Val(w.value.clone()),
                status,
                how,
                winner,
            };
            if res || self.is_resolution(cur)? || strat == Strategy::TimestampWins {
                let win = this_order > self.order(cur)?;
                if win {
                    slots.cols[c] = Some(this);
                    applied.push((c, &w.value));
                }
                found.push(d(Status::Resolved, "timestamp_wins", Some(if win { "remote" } else { "local" })));
            } else {
                match strat {
                    Strategy::Manual => found.push(d(Status::Pending, "manual", None)),
                    Strategy::LocalWins => {
                        auto.push((Slot::Col(c), SlotVal::Val(curval.clone()), vec![cur, Some(this)]));
                        found.push(d(Status::Resolved, "local_wins", None));
                    }
                    _ => {
                        auto.push((Slot::Col(c), SlotVal::Val(w.value.clone()), vec![cur, Some(this)]));
                        found.push(d(Status::Resolved, "remote_wins", None));
                    }
                }
            }
        }

        // An UPDATE that reaches a record killed by a delete it did not see.
        if ch.op == Op::Update && !res && !slots.alive {
            if let Some(dl) = slots.live {
                if !self.ids(&ch.live)?.contains(&dl) {
                    let d = |status, how| Detected {
                        slot: Slot::Live,
                        local: Some(dl),
                        remote: this,
                        local_val: SlotVal::Alive(false),
                        remote_val: SlotVal::Alive(true),
                        status,
                        how,
                        winner: None,
                    };
                    if self.is_resolution(Some(dl))? || strat == Strategy::TimestampWins {
                        found.push(d(Status::Resolved, "delete_wins"));
                    } else {
                        match strat {
                            Strategy::Manual => found.push(d(Status::Pending, "manual")),
                            Strategy::LocalWins => {
                                auto.push((Slot::Live, SlotVal::Alive(false), vec![Some(dl), Some(this)]));
                                found.push(d(Status::Resolved, "local_wins"));
                            }
                            _ => {
                                auto.push((Slot::Live, SlotVal::Alive(true), vec![Some(dl), Some(this)]));
                                found.push(d(Status::Resolved, "remote_wins"));
                            }
                        }
                    }
                }
            }
        }

        // Make the table match the merged slots.
        if let Err(e) = self.write_table(r, &before, &slots, &applied) {
            let e = crate::Error::from(e);
            if !e.is_constraint() {
                return Err(e);
            }
            if before.is_claimed() {
                Slots::unclaim(conn, t, &r.rid)?;
            }
            let msg = e.to_string();
            let columns = ch.writes.iter().map(|w| t.columns[w.col].clone()).collect();
            let image = if before.alive {
                values_json(t, self.values_once(&mut cur_vals, r, &before)?)
            } else {
                serde_json::Value::Null
            };
            let s = conflicts::record_constraint(
                conn,
                &mut self.writers,
                t,
                &r.rid,
                before.live,
                image,
                this,
                data,
                columns,
                &msg,
            )?;
            self.conflicts.push(s);
            return Ok(());
        }
        slots.save(conn, t, &r.rid)?;

        // Automatic resolutions (local_wins / remote_wins): one change for all resolved slots.
        let mut res_ref = None;
        if !auto.is_empty() {
            let mut items: Vec<(Slot, SlotVal, Vec<Option<i64>>)> = Vec::new();
            for it in auto {
                items.retain(|x| x.0 != it.0);
                items.push(it);
            }
            let id = self.resolve_slots(r, &items, None)?;
            res_ref = Some(self.writers.get(conn, id)?.reference());
        }
        if !found.is_empty() {
            let image_vals = self.values_once(&mut cur_vals, r, &before)?.clone();
            let image = move |_: &mut Writers| Ok(values_json(t, &image_vals));
            let recorded = conflicts::record(conn, &mut self.writers, t, &r.rid, &image, &found, res_ref.as_deref())?;
            self.conflicts.extend(recorded);
        }
        Ok(())
    }

    /// Writes the table so it holds what `after` says, given `before`; `applied` are the
    /// column writes that became current.
    fn write_table(
        &mut self,
        r: &Record<'_>,
        before: &Slots,
        after: &Slots,
        applied: &[(usize, &Value)],
    ) -> rusqlite::Result<()> {
        let conn = self.conn;
        match (before.alive, after.alive) {
            (_, true) if !before.alive || rows::read(conn, r.t, &r.key).ok().flatten().is_none() => {
                let mut vals = Vec::with_capacity(r.t.columns.len());
                for (c, w) in after.cols.iter().enumerate() {
                    let v = if let Some(k) = r.t.pk.iter().position(|&p| p == c) {
                        Cow::Borrowed(&r.key[k])
                    } else if let Some((_, v)) = applied.iter().find(|(ac, _)| *ac == c) {
                        Cow::Borrowed(*v)
                    } else {
                        Cow::Owned(rows::written_value(conn, r.t, c, *w).map_err(to_sql_err)?)
                    };
                    vals.push(v);
                }
                rows::upsert(&mut self.hot, r.t, vals.iter().map(|v| v.as_ref()))
            }
            (true, true) => rows::update(conn, r.t, &r.key, applied),
            (true, false) => rows::delete(conn, r.t, &r.key),
            _ => Ok(()),
        }
    }

    /// Writes a resolution: one local change writing every item's slot with its value, based
    /// on its sides. A revival writes every column (from `custom` if given, else current values).
    pub fn resolve_slots(
        &mut self,
        r: &Record<'_>,
        items: &[(Slot, SlotVal, Vec<Option<i64>>)],
        custom: Option<&[Value]>,
    ) -> Result<i64> {
        let conn = self.conn;
        let t = r.t;
        let mut slots = Slots::load(conn, t, &r.rid)?;
        let before = slots.clone();
        let cur_vals = self.current_values(r, &slots)?;
        let refs = |m: &mut Self, sides: &[Option<i64>]| -> Result<Vec<String>> {
            let mut v = Vec::new();
            for s in sides.iter().flatten() {
                v.push(m.writers.get(conn, *s)?.reference());
            }
            v.sort();
            v.dedup();
            Ok(v)
        };
        let live_item = items.iter().find(|i| i.0 == Slot::Live);
        let op = match live_item.map(|i| &i.1) {
            Some(SlotVal::Alive(true)) => Op::Insert,
            Some(_) => Op::Delete,
            None => Op::Update,
        };
        let mut writes: Vec<ColWrite> = Vec::new();
        for (slot, val, sides) in items {
            if let (Slot::Col(c), SlotVal::Val(v)) = (slot, val) {
                writes.push(ColWrite { col: *c, value: v.clone(), base: refs(self, sides)? });
            }
        }
        if op == Op::Insert {
            for c in 0..t.columns.len() {
                if writes.iter().any(|w| w.col == c) {
                    continue;
                }
                let value = match custom {
                    Some(row) => row[c].clone(),
                    None => cur_vals[c].clone(),
                };
                writes.push(ColWrite { col: c, value, base: refs(self, &[slots.cols[c]])? });
            }
        }
        writes.sort_by_key(|w| w.col);
        let live = match live_item {
            Some((_, _, sides)) => refs(self, sides)?,
            None => refs(self, &[slots.live])?,
        };
        let seen = if op == Op::Delete {
            let mut v = Vec::new();
            for (c, w) in slots.cols.iter().enumerate() {
                v.push((c, self.writers.reference(conn, *w)?));
            }
            Some(v)
        } else {
            None
        };
        let change = Change { op, writes, live, seen };
        let mut after = slots.clone();
        if let Some(alive) = op.live_write() {
            after.alive = alive;
        }
        let applied: Vec<(usize, &Value)> = change.writes.iter().map(|w| (w.col, &w.value)).collect();
        self.write_table(r, &before, &after, &applied)?;
        let id =
            self.local.log(conn, &mut self.hot, &mut self.writers, t, &r.rid, &mut slots, &change, true, None, None)?;
        self.resolutions += 1;
        Ok(id)
    }
}

/// "The base is the receiver's current writer": no writer matches an empty base.
fn matches(cur: Option<i64>, base: &[i64], refs: &[String]) -> bool {
    match cur {
        None => refs.is_empty(),
        Some(c) => base.contains(&c),
    }
}

pub fn values_json(t: &Table, vals: &[Value]) -> serde_json::Value {
    let mut s = String::from("{");
    for (i, v) in vals.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        write_json_string(&t.columns[i], &mut s);
        s.push(':');
        v.write_json(&mut s);
    }
    s.push('}');
    serde_json::from_str(&s).unwrap_or(serde_json::Value::Null)
}

fn to_sql_err(e: crate::Error) -> rusqlite::Error {
    match e {
        crate::Error::Sqlite(e) => e,
        other => rusqlite::Error::UserFunctionError(other.to_string().into()),
    }
}
