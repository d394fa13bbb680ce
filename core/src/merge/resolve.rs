//! `sync_resolve`: settles a pending conflict with 'local', 'remote', 'ignore' or a JSON row.
use super::conflicts::{self, Slot, SlotVal};
use super::merger::{Merger, Record};
use crate::capture::follow::seal;
use crate::capture::{pause_capture, resume_capture};
use crate::db::hot::Hot;
use crate::db::tx;
use crate::error::{Error, Result};
use crate::model::table::Tables;
use crate::store::format::device_id;
use crate::store::slots::Slots;
use crate::store::{log, rows};
use crate::wire::{parse_literals, Value};
use rusqlite::params;
use rusqlite::Connection;

pub enum Choice {
    Local,
    Remote,
    Ignore,
    Row(serde_json::Map<String, serde_json::Value>),
}

impl Choice {
    pub fn parse(s: &str) -> Result<Choice> {
        Ok(match s {
            "local" => Choice::Local,
            "remote" => Choice::Remote,
            "ignore" => Choice::Ignore,
            _ => {
                match serde_json::from_str::<serde_json::Value>(s) {
                    Ok(serde_json::Value::Object(m)) => Choice::Row(m),
                    _ => return Err(Error::invalid(
                        "sync_resolve: choice must be 'local', 'remote', 'ignore' or a JSON object of column values",
                    )),
                }
            }
        })
    }
}

/// Resolves pending conflict `id`; returns its new status (`resolved` or `ignored`).
pub fn resolve(conn: &Connection, id: i64, choice: Choice) -> Result<String> {
    const F: &str = "sync_resolve";
    device_id(conn)?;
    tx::write(conn, |conn| {
        seal(conn)?;
        let c = conflicts::get(conn, id)?.ok_or_else(|| Error::invalid(format!("{F}: no conflict with id {id}")))?;
        if c.status != "pending" {
            return Err(Error::invalid(format!("{F}: conflict {id} is already {}", c.status)));
        }
        let tables = Tables::load(conn)?;
        let t = tables.get(&c.table_name).ok_or_else(|| {
            Error::invalid(format!("{F}: table \"{}\" is no longer tracked; track it again first", c.table_name))
        })?;
        let key = parse_literals(&c.record_id)?;
        if let Choice::Row(row) = &choice {
            for (name, v) in row {
                let ci = t.column_index(name).ok_or_else(|| {
                    Error::invalid(format!(
                        "{F}: the JSON row names column \"{name}\", which table \"{}\" does not have",
                        t.name
                    ))
                })?;
                let v = Value::from_json(v, &|| format!("{F}: column \"{name}\""))?;
                if t.affinity[ci].converts(&v) {
                    return Err(Error::invalid(format!(
                        "{F}: the JSON row gives column \"{name}\" {}, which this database would store as another value (the column has {} affinity); give the value as the column stores it",
                        v.to_json_string(),
                        t.affinity[ci].as_str()
                    )));
                }
                if let Some(k) = t.pk.iter().position(|&p| p == ci) {
                    if !v.sql_is(&key[k]) {
                        return Err(Error::invalid(format!(
                            "{F}: the JSON row gives key column \"{name}\" another value; a resolution cannot move a record"
                        )));
                    }
                }
            }
        }
        let rec = Record { t, rid: &c.record_id, key, strategy: t.strategy };
        let slots = Slots::load(&mut Hot::new(conn), t, rec.rid)?;
        let sides = vec![c.local_change, c.remote_change];
        let custom_val = |m: &serde_json::Map<String, serde_json::Value>, col: &str| -> Result<Value> {
            let v = m
                .get(col)
                .ok_or_else(|| Error::invalid(format!("{F}: the JSON row must give a value for column \"{col}\"")))?;
            Value::from_json(v, &|| format!("{F}: column \"{col}\""))
        };
        let restore = pause_capture(conn, &[t.id], 1)?;
        let mut m = Merger::new(conn)?;
        let mut custom_row: Option<Vec<Value>> = None;
        let mut items: Vec<(Slot, SlotVal, Vec<Option<i64>>)> = Vec::new();
        let current = || -> Result<Vec<Value>> {
            match rows::read(conn, t, &rec.key)? {
                Some(r) if slots.alive => Ok(r),
                _ => (0..t.columns.len()).map(|i| rows::written_value(conn, t, i, slots.cols[i])).collect(),
            }
        };
        let refused_delete = c.kind == "constraint"
            && c.remote_change.map(|id| log::operation(conn, id)).transpose()?.flatten().as_deref() == Some("DELETE");
        match c.kind.as_str() {
            // A delete refused by a constraint is settled as a delete against an update is.
            k if k == "delete" || refused_delete => {
                let alive = match &choice {
                    Choice::Local | Choice::Ignore => slots.alive,
                    Choice::Remote => !refused_delete && !c.remote_data.is_null(),
                    Choice::Row(row) => {
                        let cur = current()?;
                        let mut vals = Vec::new();
                        for (i, name) in t.columns.iter().enumerate() {
                            vals.push(if row.contains_key(name) && !t.is_pk(i) {
                                custom_val(row, name)?
                            } else {
                                cur[i].clone()
                            });
                        }
                        custom_row = Some(vals);
                        true
                    }
                };
                items.push((Slot::Live, SlotVal::Alive(alive), sides));
            }
            // A change refused here by a constraint while the record is not here (an insert, say):
            // keeping what is here keeps it away, on every device.
            "constraint" if !slots.alive && matches!(choice, Choice::Local | Choice::Ignore) => {
                items.push((Slot::Live, SlotVal::Alive(false), sides));
            }
            _ => {
                // column conflicts, and changes refused by a constraint
                let cur = current()?;
                let remote = c.remote_data.as_object().cloned().unwrap_or_default();
                let cols = if c.kind == "update" { &c.open_columns } else { &c.columns };
                for name in cols {
                    let Some(ci) = t.column_index(name) else { continue };
                    if t.is_pk(ci) {
                        continue;
                    }
                    let v = match &choice {
                        Choice::Local | Choice::Ignore => cur[ci].clone(),
                        Choice::Remote => match remote.get(name) {
                            Some(v) => Value::from_json(v, &|| format!("{F}: column \"{name}\""))?,
                            None => cur[ci].clone(),
                        },
                        Choice::Row(row) => custom_val(row, name)?,
                    };
                    items.push((Slot::Col(ci), SlotVal::Val(v), sides.clone()));
                }
                if c.kind == "constraint" && !slots.alive && matches!(choice, Choice::Remote | Choice::Row(_)) {
                    items.push((Slot::Live, SlotVal::Alive(true), sides.clone()));
                }
            }
        }
        let change = m.resolve_slots(&rec, &items, custom_row.as_deref()).map_err(|e| {
            if e.is_constraint() {
                Error::invalid(format!("{F}: that choice violates a constraint here ({e}); change the conflicting data first, or choose differently"))
            } else {
                e
            }
        })?;
        m.local.finish(conn, &mut m.writers)?;
        resume_capture(conn, restore)?;
        let status = if matches!(choice, Choice::Ignore) { "ignored" } else { "resolved" };
        let how = match &choice {
            Choice::Local => "local",
            Choice::Remote => "remote",
            Choice::Ignore => "ignore",
            Choice::Row(_) => "row",
        };
        let reference = m.writers.get(conn, change)?.reference();
        conn.execute(
            "UPDATE sync_conflicts SET status = ?2, open_columns = '[]', resolution = ?3, resolved_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?1",
            params![id, status, serde_json::json!({ "choice": how, "change": reference }).to_string()],
        )?;
        Ok(status.to_string())
    })
}
