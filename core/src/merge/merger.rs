//! What one write transaction's merges share ([`Merger`]): the writers they compare, the
//! record's current values, writing the table to match the merged slots, and writing a
//! resolution. The merge of a received change is `remote.rs`; its rules, `rules.rs`.
use super::conflicts::{Slot, SlotVal, Summary};
use crate::db::hot::Hot;
use crate::error::Result;
use crate::model::change::{Change, ColWrite, Op};
use crate::model::table::{Strategy, Table};
use crate::store::local::LocalLog;
use crate::store::log::{Order, Writers};
use crate::store::rows;
use crate::store::slots::Slots;
use crate::wire::{parse_reference, write_json_string, Value, Vector};
use rusqlite::Connection;
use std::borrow::Cow;

/// State shared by everything one write transaction merges.
pub struct Merger<'c> {
    pub conn: &'c Connection,
    /// The statements run for every change.
    pub hot: Hot<'c>,
    pub writers: Writers,
    pub local: LocalLog,
    pub conflicts: Vec<Summary>,
    pub resolutions: i64,
    /// The vector of the device that sent the changes being merged (empty when none did):
    /// what it held when it sent them.
    pub sender: Vector,
}

/// One record being merged: its key and what the merge has learned of its values.
pub struct Record<'t> {
    pub t: &'t Table,
    pub rid: &'t str,
    pub key: Vec<Value>,
    /// The table's strategy in force when the change is merged (a setting earlier in the
    /// same batch may have changed it since the table was loaded).
    pub strategy: Strategy,
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
            sender: Vector::new(),
        })
    }

    pub(super) fn ids(&self, refs: &[String]) -> Result<Vec<i64>> {
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

    /// A writer's place in the winner rule's order; no writer sorts first.
    pub(super) fn order(&mut self, id: Option<i64>) -> Result<Order> {
        Ok(match id {
            None => (i64::MIN, "".into(), 0),
            Some(id) => self.writers.get(self.conn, id)?.order(),
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
    pub(super) fn values_once<'v>(
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

    /// Writes the table so it holds what `after` says, given `before`; `applied` are the
    /// column writes that became current.
    pub(super) fn write_table(
        &mut self,
        r: &Record<'_>,
        before: &Slots,
        after: &Slots,
        applied: &[(usize, &Value)],
    ) -> rusqlite::Result<()> {
        let conn = self.conn;
        match (before.alive, after.alive) {
            (_, true) if !before.alive || rows::read(conn, r.t, &r.key).ok().flatten().is_none() => {
                // A column no change ever wrote (one the writers' devices did not have yet)
                // holds its declared default, as on a device that added it to existing rows.
                let unwritten =
                    |c: usize| after.cols[c].is_none() && !r.t.is_pk(c) && !applied.iter().any(|(ac, _)| *ac == c);
                if (0..r.t.columns.len()).any(unwritten) {
                    let mut cols = Vec::with_capacity(r.t.columns.len());
                    let mut vals = Vec::with_capacity(r.t.columns.len());
                    for (c, w) in after.cols.iter().enumerate() {
                        if unwritten(c) {
                            continue;
                        }
                        cols.push(c);
                        vals.push(if let Some(k) = r.t.pk.iter().position(|&p| p == c) {
                            r.key[k].clone()
                        } else if let Some((_, v)) = applied.iter().find(|(ac, _)| *ac == c) {
                            (*v).clone()
                        } else {
                            rows::written_value(conn, r.t, c, *w).map_err(to_sql_err)?
                        });
                    }
                    return rows::insert_some(conn, r.t, &cols, &vals.iter().collect::<Vec<_>>(), false);
                }
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
                rows::insert(&mut self.hot, r.t, vals.iter().map(|v| v.as_ref()))
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
        let mut slots = Slots::load(&mut self.hot, t, r.rid)?;
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
            // What the delete saw of each column: its writer here; where no change wrote it here
            // (a change refused here, whose record never was), the change it settles.
            let settled = live_item.and_then(|i| i.2.iter().rev().flatten().next().copied());
            let mut v = Vec::new();
            for (c, w) in slots.cols.iter().enumerate() {
                v.push((c, self.writers.reference(&mut self.hot, w.or(settled))?));
            }
            Some(v)
        } else {
            None
        };
        let change = Change { op, writes, live, seen, unknown: Vec::new() };
        let mut after = slots.clone();
        if let Some(alive) = op.live_write() {
            after.alive = alive;
        }
        let applied: Vec<(usize, &Value)> = change.writes.iter().map(|w| (w.col, &w.value)).collect();
        self.write_table(r, &before, &after, &applied)?;
        let id = self.local.log(&mut self.hot, &mut self.writers, t, r.rid, &mut slots, &change, true, None, None)?;
        self.resolutions += 1;
        Ok(id)
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

fn to_sql_err(e: crate::error::Error) -> rusqlite::Error {
    match e {
        crate::error::Error::Sqlite(e) => e,
        other => rusqlite::Error::UserFunctionError(other.to_string().into()),
    }
}
