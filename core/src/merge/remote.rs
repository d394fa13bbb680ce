//! Merging one received change into one record, as README's "Merging and conflicts" reads: its
//! liveness write, its column writes, and an update that reaches a record deleted by a change it
//! did not see. A write based on the slot's current writer applies; a concurrent one that agrees
//! is no conflict; one that differs is a conflict, settled by the table's strategy (`rules.rs`).
use super::conflicts::{self, Detected, Slot, SlotVal};
use super::merger::{values_json, Merger, Record};
use super::rules::{How, Settle, Side};
use crate::error::Result;
use crate::model::change::{Change, ColWrite, Op};
use crate::store::log::{Order, Writers};
use crate::store::slots::Slots;
use crate::wire::{parse_reference, Value};

/// The received change being merged.
struct Incoming {
    /// Its log id here.
    id: i64,
    /// `device:version`, how bases name it.
    reference: String,
    /// Its place in the winner rule's order.
    order: Order,
    resolution: bool,
}

/// What merging one change into one record decides, before the table is written.
struct Outcome<'c> {
    /// The record's writers after the merge.
    slots: Slots,
    /// The column writes that became current, to write into the table.
    applied: Vec<(usize, &'c Value)>,
    /// The conflicts to record.
    found: Vec<Detected>,
    /// Slots settled at once by a resolution: (slot, value kept, the writers it supersedes).
    auto: Vec<(Slot, SlotVal, Vec<Option<i64>>)>,
}

/// "The write's base is the receiver's current writer": no writer matches an empty base.
fn based_on(cur: Option<i64>, base: &[i64], refs: &[String]) -> bool {
    match cur {
        None => refs.is_empty(),
        Some(c) => base.contains(&c),
    }
}

impl Merger<'_> {
    /// Merges received change `ch` (already logged as `this`; `data` is its `change_data`)
    /// into record `r`, then writes the table, the slot state, any resolution and conflicts.
    pub fn merge_remote(&mut self, r: &Record<'_>, ch: &Change, this: i64, data: &str) -> Result<()> {
        let w = self.writers.get(self.conn, this)?;
        let inc = Incoming { id: this, reference: w.reference(), order: w.order(), resolution: w.resolution };
        let before = self.slots_before(r, ch, this)?;
        let mut local_values = None;
        let mut out = Outcome { slots: before.clone(), applied: Vec::new(), found: Vec::new(), auto: Vec::new() };
        if let Some(alive) = ch.op.live_write() {
            self.merge_live(r, ch, &inc, alive, &mut out)?;
        }
        for w in &ch.writes {
            self.merge_column(r, w, &inc, &before, &mut local_values, &mut out)?;
        }
        if ch.op == Op::Update {
            self.update_after_delete(r, ch, &inc, &mut out)?;
        }
        self.write_outcome(r, ch, &inc, data, &before, local_values, out)
    }

    /// The record's slot state before the merge. A first INSERT of a record never logged here
    /// claims its state in the same step (see `Slots::claim_new`).
    fn slots_before(&mut self, r: &Record<'_>, ch: &Change, this: i64) -> Result<Slots> {
        let first_insert = ch.op == Op::Insert && ch.live.is_empty() && ch.writes.iter().all(|w| w.base.is_empty());
        if first_insert {
            let expected = Slots::inserted(r.t, this, ch.writes.iter().map(|w| w.col));
            if let Some(before) = Slots::claim_new(&mut self.hot, r.t, r.rid, &expected)? {
                return Ok(before);
            }
        }
        Slots::load(&mut self.hot, r.t, r.rid)
    }

    /// The change's write to the record's liveness (an INSERT's alive, a DELETE's dead).
    fn merge_live(
        &mut self,
        r: &Record<'_>,
        ch: &Change,
        inc: &Incoming,
        alive: bool,
        out: &mut Outcome,
    ) -> Result<()> {
        let base = self.ids(&ch.live)?;
        if base.len() > 1 {
            // A resolution made elsewhere: it closes the conflict between its two sides here.
            conflicts::close_matching(self.conn, r.t, r.rid, Slot::Live, &base, &inc.reference, true)?;
        }
        let cur = out.slots.live;
        if based_on(cur, &base, &ch.live) || self.resolution_saw(inc, cur, &ch.live)? {
            // A delete that reaches a record deleted here already meets no update: the local
            // delete saw the column writers here.
            let held = !alive && out.slots.alive && self.delete_meets_updates(r, ch, inc, out)?;
            if !held {
                out.slots.live = Some(inc.id);
                out.slots.alive = alive;
            }
        } else if alive == out.slots.alive {
            // Concurrent and agreeing: no conflict; the greater writer holds the slot.
            if inc.order > self.order(cur)? {
                out.slots.live = Some(inc.id);
            }
        } else {
            let local = SlotVal::Alive(out.slots.alive);
            if self.contest(r, inc, Slot::Live, cur, local, SlotVal::Alive(alive), How::TimestampWins, out)? {
                out.slots.live = Some(inc.id);
                out.slots.alive = alive;
            }
        }
        Ok(())
    }

    /// A delete based on the record's current liveness that did not see some of its column
    /// writers (updates made beside it): delete against update. By the rules the delete wins;
    /// `manual`, `local_wins` and `remote_wins` hold it back from the liveness slot (the last
    /// two settle it at once by a resolution). Returns whether it is held back.
    fn delete_meets_updates(&mut self, r: &Record<'_>, ch: &Change, inc: &Incoming, out: &mut Outcome) -> Result<bool> {
        let Some(seen) = &ch.seen else { return Ok(false) };
        let mut unseen: Vec<i64> = Vec::new();
        for (c, w) in out.slots.cols.iter().enumerate() {
            let Some(w) = *w else { continue };
            let saw = match seen.iter().find(|(sc, _)| *sc == c).and_then(|(_, r)| r.as_ref()) {
                Some(r) => {
                    let named = std::slice::from_ref(r);
                    self.ids(named)?.first() == Some(&w) || self.resolution_saw(inc, Some(w), named)?
                }
                None => false,
            };
            if !saw && !unseen.contains(&w) {
                unseen.push(w);
            }
        }
        // A resolution against a resolution it did not see is settled by the rules (no
        // cascades); any other pair is an ordinary conflict under the table's strategy.
        let mut updates = Vec::new();
        for &u in &unseen {
            if !self.both_resolutions(inc, u)? {
                updates.push(u);
            }
        }
        let settle = Settle::of(r.strategy, updates.is_empty()).met_by_sender(self.sender_held(&updates)?);
        let conflict = |u: i64| Detected {
            slot: Slot::Live,
            local: Some(u),
            remote: inc.id,
            local_val: SlotVal::Alive(true),
            remote_val: SlotVal::Alive(false),
            how: settle.how(How::DeleteWins),
            winner: None,
        };
        match settle {
            Settle::ByRule | Settle::Elsewhere => {
                out.found.extend(unseen.iter().map(|&u| conflict(u)));
                Ok(false)
            }
            Settle::Hold => {
                out.found.extend(updates.iter().map(|&u| conflict(u)));
                Ok(true)
            }
            Settle::Resolve(side) => {
                out.found.extend(updates.iter().map(|&u| conflict(u)));
                let mut sides: Vec<Option<i64>> = updates.iter().map(|&u| Some(u)).collect();
                sides.push(Some(inc.id));
                out.auto.push((Slot::Live, SlotVal::Alive(side == Side::Local), sides));
                Ok(true)
            }
        }
    }

    /// One of the change's column writes.
    fn merge_column<'c>(
        &mut self,
        r: &Record<'_>,
        w: &'c ColWrite,
        inc: &Incoming,
        before: &Slots,
        local_values: &mut Option<Vec<Value>>,
        out: &mut Outcome<'c>,
    ) -> Result<()> {
        let c = w.col;
        let base = self.ids(&w.base)?;
        if base.len() > 1 {
            conflicts::close_matching(self.conn, r.t, r.rid, Slot::Col(c), &base, &inc.reference, out.slots.alive)?;
        }
        let cur = out.slots.cols[c];
        let based = based_on(cur, &base, &w.base) || self.resolution_saw(inc, cur, &w.base)?;
        // Key columns always hold the record's key: their writes agree, and the row needs none.
        let key = r.t.is_pk(c);
        if based {
            out.slots.cols[c] = Some(inc.id);
            if !key {
                out.applied.push((c, &w.value));
            }
            return Ok(());
        }
        if key || w.value == self.values_once(local_values, r, before)?[c] {
            // Concurrent and agreeing: no conflict; the greater writer holds the slot (the same
            // one on every device, so a later delete that saw it has seen what each holds).
            if inc.order > self.order(cur)? {
                out.slots.cols[c] = Some(inc.id);
            }
            return Ok(());
        }
        let local = SlotVal::Val(self.values_once(local_values, r, before)?[c].clone());
        let remote = SlotVal::Val(w.value.clone());
        if self.contest(r, inc, Slot::Col(c), cur, local, remote, How::TimestampWins, out)? {
            out.slots.cols[c] = Some(inc.id);
            out.applied.push((c, &w.value));
        }
        Ok(())
    }

    /// An update (or a resolution of columns) that reaches a record deleted by a change it did
    /// not see: delete against update, which by the rules the delete wins.
    fn update_after_delete(&mut self, r: &Record<'_>, ch: &Change, inc: &Incoming, out: &mut Outcome) -> Result<()> {
        let Some(deleted_by) = out.slots.live.filter(|_| !out.slots.alive) else { return Ok(()) };
        if self.ids(&ch.live)?.contains(&deleted_by) || self.resolution_saw(inc, Some(deleted_by), &ch.live)? {
            return Ok(());
        }
        let (local, remote) = (SlotVal::Alive(false), SlotVal::Alive(true));
        self.contest(r, inc, Slot::Live, Some(deleted_by), local, remote, How::DeleteWins, out)?;
        Ok(())
    }

    /// Whether the received change and the local writer `w` are both resolutions: two
    /// settlements that did not see each other, which the rules settle (never a further
    /// resolution, so resolutions do not cascade). A resolution supersedes only the writers
    /// its bases name; against any other write it is an ordinary write under the strategy.
    fn both_resolutions(&mut self, inc: &Incoming, w: i64) -> Result<bool> {
        Ok(inc.resolution && self.writers.get(self.conn, w)?.resolution)
    }

    /// Whether the device that sent the batch held every one of the local writers `ws` when it
    /// made it (by the vector it sent): then it met this conflict before, and settled it with
    /// a resolution that follows in its log, so this device writes none (README, "A device
    /// that joins late"). None held when `ws` is empty.
    fn sender_held(&mut self, ws: &[i64]) -> Result<bool> {
        if ws.is_empty() {
            return Ok(false);
        }
        for &w in ws {
            let w = self.writers.get(self.conn, w)?;
            if self.sender.get(&*w.device_id).is_none_or(|&held| held < w.version) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether a received resolution saw the local writer `w` though its bases (`named`) do
    /// not name it: they name a later change of w's origin, and a device that holds `X:v`
    /// holds every `X:u` before it. (A delete held back here as a pending conflict leaves
    /// the insert before it as the liveness writer; the resolution that settles the conflict
    /// names the delete, and supersedes the insert.)
    fn resolution_saw(&mut self, inc: &Incoming, w: Option<i64>, named: &[String]) -> Result<bool> {
        let Some(w) = w.filter(|_| inc.resolution) else { return Ok(false) };
        let w = self.writers.get(self.conn, w)?;
        Ok(named.iter().filter_map(|r| parse_reference(r)).any(|(d, v)| *d == *w.device_id && v >= w.version))
    }

    /// A received write to `slot` concurrent with the local writer `cur` and differing from
    /// it: a conflict, settled by the table's strategy and recorded. `rule` is how the rules
    /// alone settle it (the winner rule, or delete-wins). Returns whether the received write
    /// takes the slot now.
    #[allow(clippy::too_many_arguments)]
    fn contest(
        &mut self,
        r: &Record<'_>,
        inc: &Incoming,
        slot: Slot,
        cur: Option<i64>,
        local: SlotVal,
        remote: SlotVal,
        rule: How,
        out: &mut Outcome,
    ) -> Result<bool> {
        let settle = Settle::of(
            r.strategy,
            match cur {
                Some(cur) => self.both_resolutions(inc, cur)?,
                None => false,
            },
        )
        .met_by_sender(self.sender_held(cur.as_slice())?);
        let (mut takes, mut winner) = (false, None);
        match settle {
            Settle::ByRule | Settle::Elsewhere if rule == How::TimestampWins => {
                takes = inc.order > self.order(cur)?;
                winner = Some(if takes { Side::Remote } else { Side::Local });
            }
            Settle::ByRule | Settle::Elsewhere | Settle::Hold => {}
            Settle::Resolve(side) => {
                let kept = match side {
                    Side::Local => local.clone(),
                    Side::Remote => remote.clone(),
                };
                out.auto.push((slot, kept, vec![cur, Some(inc.id)]));
            }
        }
        let how = settle.how(rule);
        out.found.push(Detected {
            slot,
            local: cur,
            remote: inc.id,
            local_val: local,
            remote_val: remote,
            how,
            winner,
        });
        Ok(takes)
    }

    /// Makes the table hold what the merge decided, then stores the slot state, writes the
    /// resolution (if the strategy settled something at once) and records the conflicts. A
    /// write the table's constraints refuse becomes a pending `constraint` conflict instead.
    #[allow(clippy::too_many_arguments)]
    fn write_outcome(
        &mut self,
        r: &Record<'_>,
        ch: &Change,
        inc: &Incoming,
        data: &str,
        before: &Slots,
        mut local_values: Option<Vec<Value>>,
        out: Outcome,
    ) -> Result<()> {
        let (conn, t) = (self.conn, r.t);
        // A strategy that settles at once writes its resolution too (a delete, say), which the
        // table's constraints may refuse as well: then none of it stays.
        let settles = !out.auto.is_empty();
        if settles {
            conn.execute_batch("SAVEPOINT peersync_settle")?;
        }
        let (mut refused, mut settled) = (None, None);
        match self.write_table(r, before, &out.slots, &out.applied) {
            Err(e) => refused = Some(crate::error::Error::from(e)),
            Ok(()) if settles => match self.settle_at_once(r, out.slots.clone(), &out.auto) {
                Ok(id) => settled = Some(id),
                Err(e) => refused = Some(e),
            },
            Ok(()) => {}
        }
        if settles {
            if refused.is_some() {
                conn.execute_batch("ROLLBACK TO peersync_settle")?;
            }
            conn.execute_batch("RELEASE peersync_settle")?;
        }
        if let Some(e) = refused {
            if !e.is_constraint() {
                return Err(e);
            }
            if before.is_claimed() {
                Slots::unclaim(conn, t, r.rid)?;
            }
            let columns = ch.writes.iter().map(|w| t.columns[w.col].clone()).collect();
            let image = match before.alive {
                true => values_json(t, self.values_once(&mut local_values, r, before)?),
                false => serde_json::Value::Null,
            };
            let (local, remote) = (before.live, inc.id);
            let s = conflicts::record_constraint(
                conn,
                &mut self.writers,
                t,
                r.rid,
                local,
                image,
                remote,
                data,
                columns,
                &e.to_string(),
            )?;
            self.conflicts.push(s);
            return Ok(());
        }
        let resolution = match settled {
            Some(id) => Some(self.writers.get(conn, id)?.reference()),
            None => {
                let mut slots = out.slots;
                slots.save(&mut self.hot, t, r.rid)?;
                None
            }
        };
        if !out.found.is_empty() {
            let mut image_vals = self.values_once(&mut local_values, r, before)?.clone();
            if !before.alive {
                // Deleted here: the record's live side is the incoming change's, so it shows
                // with the change's values over what each column's writer wrote.
                for w in &ch.writes {
                    image_vals[w.col] = w.value.clone();
                }
            }
            let image = move |_: &mut Writers| Ok(values_json(t, &image_vals));
            let recorded =
                conflicts::record(conn, &mut self.writers, t, r.rid, &image, &out.found, resolution.as_deref())?;
            self.conflicts.extend(recorded);
        }
        Ok(())
    }

    /// Stores the slot state and writes the one resolution of the slots a strategy settled at
    /// once (local_wins / remote_wins); returns its log id.
    fn settle_at_once(
        &mut self,
        r: &Record<'_>,
        mut slots: Slots,
        auto: &[(Slot, SlotVal, Vec<Option<i64>>)],
    ) -> Result<i64> {
        slots.save(&mut self.hot, r.t, r.rid)?;
        let mut items: Vec<(Slot, SlotVal, Vec<Option<i64>>)> = Vec::new();
        for it in auto {
            items.retain(|x| x.0 != it.0);
            items.push(it.clone());
        }
        self.resolve_slots(r, &items, None)
    }
}
