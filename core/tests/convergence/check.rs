//! Owns the convergence test's final checks (model.py `check`): identical tables, vectors and digests, every change everywhere, no cascade, winning writes.
use crate::common::*;
use crate::scenario::*;
use crate::world::*;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};

impl World {
    pub fn check(&self) -> Res<()> {
        let n = self.n();
        // Nothing pending.
        for p in 0..n {
            let pend = self.peers[p].pending();
            if !pend.is_empty() {
                return self.fail(format!("P{p} still has pending conflicts {pend:?}"));
            }
        }
        // sync_verify ok everywhere.
        for p in 0..n {
            let v = self.peers[p].verify();
            if v["ok"] != true {
                return self.fail(format!("P{p}: sync_verify() = {v}"));
            }
        }
        // Every log holds every change, once.
        let logs: Vec<Vec<LogRow>> = self.peers.iter().map(|p| p.log()).collect();
        let mut union: BTreeMap<(String, i64), LogRow> = BTreeMap::new();
        for l in &logs {
            for r in l {
                let (Some(d), Some(v)) = (r.device_id.clone(), r.version) else {
                    return self.fail(format!("unsealed log row after sync_seal: {r:?}"));
                };
                if let Some(o) = union.get(&(d.clone(), v)) {
                    if o.hash != r.hash {
                        return self.fail(format!("two different changes {d}:{v}: {o:?} / {r:?}"));
                    }
                }
                union.insert((d, v), r.clone());
            }
        }
        for (p, l) in logs.iter().enumerate() {
            if l.len() != union.len() {
                let have: BTreeSet<(String, i64)> =
                    l.iter().map(|r| (r.device_id.clone().unwrap(), r.version.unwrap())).collect();
                let lacks: Vec<_> = union.keys().filter(|k| !have.contains(k)).collect();
                return self.fail(format!(
                    "P{p}'s log has {} rows, the union {}; lacks {lacks:?}",
                    l.len(),
                    union.len()
                ));
            }
        }
        // Identical vectors.
        let v0 = self.peers[0].vector_json();
        for p in 1..n {
            let v = self.peers[p].vector_json();
            if v != v0 {
                return self.fail(format!("vectors differ: P0 {v0} / P{p} {v}"));
            }
        }
        // Equal digests (the audit's view of content, `sync_digest`).
        let d0 = self.peers[0].json("SELECT sync_digest()");
        for p in 1..n {
            let d = self.peers[p].json("SELECT sync_digest()");
            if d != d0 {
                return self.fail(format!("digests differ: P0 {d0} / P{p} {d}"));
            }
        }
        // Identical tables.
        let s0 = self.peers[0].snapshot(&TABLES);
        for p in 1..n {
            let s = self.peers[p].snapshot(&TABLES);
            if s != s0 {
                return self.fail(format!("tables differ:\n  P0: {s0:?}\n  P{p}: {s:?}"));
            }
        }
        // No resolution settles a conflict between resolutions only (those the rules settle,
        // so resolutions never cascade). A resolution may have one as a side: a resolution
        // meeting an ordinary write it did not see is an ordinary conflict under the strategy.
        let is_res: BTreeMap<String, bool> =
            union.iter().map(|((d, v), r)| (format!("{d}:{v}"), r.resolution)).collect();
        for r in union.values().filter(|r| r.resolution) {
            let bases: Json = serde_json::from_str(r.bases.as_deref().unwrap_or("{}")).unwrap();
            let mut lists: Vec<&Json> = vec![&bases["live"]];
            if let Some(m) = bases["cols"].as_object() {
                lists.extend(m.values());
            }
            for l in lists.into_iter().filter_map(|l| l.as_array()).filter(|l| l.len() >= 2) {
                if l.iter().all(|b| is_res.get(b.as_str().unwrap_or("")) == Some(&true)) {
                    return self.fail(format!(
                        "CASCADE: resolution {} settles a conflict between resolutions only ({})",
                        reference(r),
                        r.bases.as_deref().unwrap_or("")
                    ));
                }
            }
        }
        // Every slot holds its greatest (timestamp, device id) write.
        let expected = winners(union.values());
        if expected != s0 {
            let mut why = String::new();
            for tname in TABLES {
                let (e, g) = (&expected[tname], &s0[tname]);
                if e != g {
                    why.push_str(&format!("\n  {tname}: tables {g:?}\n  {tname}: winners {e:?}"));
                }
            }
            return self.fail(format!("tables are not the greatest (timestamp, device id) writes:{why}"));
        }
        Ok(())
    }
}

/// The visible tables implied by the winner rule over all changes: per record and slot, the
/// write with the greatest (timestamp, device id); INSERT writes liveness=alive and DELETE
/// dead; change_data holds the column writes (model.py `expected`).
pub fn winners<'a>(log: impl Iterator<Item = &'a LogRow>) -> BTreeMap<String, Vec<Vec<V>>> {
    type Key = (String, String);
    type Order = (i64, String);
    let mut live: BTreeMap<Key, (Order, bool)> = BTreeMap::new();
    let mut cols: BTreeMap<Key, BTreeMap<String, (Order, V)>> = BTreeMap::new();
    for r in log {
        let k = (r.table_name.clone(), r.record_id.clone().unwrap());
        let tk = (r.timestamp.unwrap(), r.device_id.clone().unwrap());
        let alive = match r.operation.as_str() {
            "INSERT" => Some(true),
            "DELETE" => Some(false),
            _ => None,
        };
        if let Some(a) = alive {
            let e = live.entry(k.clone()).or_insert((tk.clone(), a));
            if tk > e.0 {
                *e = (tk.clone(), a);
            }
        }
        let data: Json = serde_json::from_str(r.change_data.as_deref().unwrap_or("{}")).unwrap();
        let slots = cols.entry(k).or_default();
        for (c, v) in data.as_object().unwrap() {
            let v = V::from_json(v);
            let e = slots.entry(c.clone()).or_insert((tk.clone(), v.clone()));
            if tk > e.0 {
                *e = (tk.clone(), v);
            }
        }
    }
    let mut out: BTreeMap<String, Vec<Vec<V>>> = TABLES.iter().map(|t| (t.to_string(), Vec::new())).collect();
    for (k, (_, alive)) in live {
        if !alive {
            continue;
        }
        let names: Vec<&str> = if k.0 == "t1" { vec!["id", "a", "b", "c"] } else { vec!["k", "n", "x", "y"] };
        let slots = &cols[&k];
        let row: Vec<V> = names
            .iter()
            .map(|c| slots.get(*c).map(|(_, v)| v.clone()).unwrap_or(V::Text(format!("<no write of {c}>"))))
            .collect();
        out.get_mut(&k.0).unwrap().push(row);
    }
    for rows in out.values_mut() {
        rows.sort_by_key(|r| format!("{r:?}"));
    }
    out
}
