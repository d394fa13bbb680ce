//! Owns running a convergence scenario: the peers, each step, exchanges, the end phase where users resolve.
use crate::common::*;
use crate::scenario::*;
use serde_json::Value as Json;
use std::collections::BTreeSet;

pub struct World {
    pub peers: Vec<Peer>,
    pub batches: Vec<(usize, String)>,
    pub trace: Vec<String>,
    /// Conflicts reported as pending by sync_apply after the end phase's resolving started.
    pub end_phase: bool,
    pub stats: Stats,
}

/// What a run exercised (printed per configuration with `PEERSYNC_STATS=1`).
#[derive(Default, Clone, Copy, Debug)]
pub struct Stats {
    pub cases: u64,
    pub applies: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub deferred: u64,
    pub conflicts: u64,
    pub pending: u64,
    /// Pending conflicts that appeared in the end phase (resolutions meeting a third edit).
    pub end_pending: u64,
    pub auto_resolutions: u64,
    pub user_resolutions: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.cases += o.cases;
        self.applies += o.applies;
        self.accepted += o.accepted;
        self.duplicates += o.duplicates;
        self.deferred += o.deferred;
        self.conflicts += o.conflicts;
        self.pending += o.pending;
        self.end_pending += o.end_pending;
        self.auto_resolutions += o.auto_resolutions;
        self.user_resolutions += o.user_resolutions;
    }
}

pub type Res<T> = Result<T, String>;

impl World {
    pub fn fail<T>(&self, msg: String) -> Res<T> {
        let tail: Vec<&String> = self.trace.iter().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect();
        let mut s = format!("{msg}\n--- trace (last {} of {} events):\n", tail.len(), self.trace.len());
        for l in tail {
            s.push_str("  ");
            s.push_str(l);
            s.push('\n');
        }
        Err(s)
    }

    pub fn n(&self) -> usize {
        self.peers.len()
    }

    /// Applies `batch` on peer `r`; fails the case on an error. A new pending conflict during
    /// the end phase (a user's resolution meeting a third concurrent edit on a `manual` table,
    /// DESIGN's amendment "resolutions supersede only what their bases name") is counted; the
    /// end phase resolves it in a later round, and must end.
    pub fn deliver(&mut self, r: usize, batch: &str, what: &str) -> Res<Json> {
        match self.peers[r].apply(batch) {
            Ok(res) => {
                let st = &mut self.stats;
                st.applies += 1;
                st.accepted += res["accepted"].as_u64().unwrap_or(0);
                st.duplicates += res["duplicates"].as_u64().unwrap_or(0);
                st.deferred += res["deferred"].as_u64().unwrap_or(0);
                st.auto_resolutions += res["resolutions"].as_u64().unwrap_or(0);
                for c in res["conflicts"].as_array().unwrap() {
                    st.conflicts += 1;
                    st.pending += (c["status"] == "pending") as u64;
                }
                let conf: Vec<String> = res["conflicts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| {
                        format!(
                            "{}#{} {} {} {} {}",
                            c["kind"].as_str().unwrap_or("?"),
                            c["id"],
                            c["table_name"].as_str().unwrap_or("?"),
                            c["record_id"].as_str().unwrap_or("?"),
                            c["columns"],
                            c["status"].as_str().unwrap_or("?")
                        )
                    })
                    .collect();
                self.trace.push(format!(
                    "{what}: accepted {} dup {} deferred {} resolutions {} conflicts {:?}",
                    res["accepted"], res["duplicates"], res["deferred"], res["resolutions"], conf
                ));
                if self.end_phase {
                    for c in res["conflicts"].as_array().unwrap() {
                        self.stats.end_pending += (c["status"] == "pending") as u64;
                    }
                }
                Ok(res)
            }
            Err(e) => self.fail(format!("{what}: sync_apply failed: {e}")),
        }
    }

    /// Full sync from s to r (paging), returns changes accepted.
    pub fn sync_full(&mut self, s: usize, r: usize) -> Res<i64> {
        let mut acc = 0;
        for _ in 0..100 {
            let batch = self.peers[s].changes(&self.peers[r].vector(), 1000);
            let b: Json = serde_json::from_str(&batch).unwrap();
            if b["changes"].as_array().unwrap().is_empty() {
                return Ok(acc);
            }
            let res = self.deliver(r, &batch, &format!("end sync P{s} -> P{r}"))?;
            acc += res["accepted"].as_i64().unwrap();
            if !b["has_more"].as_bool().unwrap() {
                return Ok(acc);
            }
        }
        self.fail(format!("P{s} -> P{r}: has_more never ends"))
    }

    pub fn quiet(&mut self, rng: &mut crate::common::Rng) -> Res<()> {
        let n = self.n();
        for _ in 0..30 {
            let mut pairs: Vec<(usize, usize)> =
                (0..n).flat_map(|s| (0..n).filter(move |&r| r != s).map(move |r| (s, r))).collect();
            for i in (1..pairs.len()).rev() {
                pairs.swap(i, rng.below(i + 1));
            }
            let mut moved = 0;
            for (s, r) in pairs {
                moved += self.sync_full(s, r)?;
            }
            if moved == 0 {
                return Ok(());
            }
        }
        self.fail("no quiescence after 30 rounds of full exchange".into())
    }

    pub fn local(&mut self, p: usize, sql: &str, params: &[&dyn rusqlite::ToSql], what: String) {
        match self.peers[p].run(sql, params) {
            Ok(n) => self.trace.push(format!("{what} ({n} row(s))")),
            // An app write SQLite refuses (a key change onto an existing key) is not sync's business.
            Err(e) => self.trace.push(format!("{what}: refused by SQLite: {e}")),
        }
    }

    pub fn resolve(&mut self, p: usize, id: i64, choice: &Choice) -> Res<()> {
        let table: String = self.peers[p]
            .conn
            .query_row("SELECT table_name FROM sync_conflicts WHERE id=?1", [id], |r| r.get(0))
            .unwrap();
        let arg = match choice {
            Choice::Local => "local".to_string(),
            Choice::Remote => "remote".to_string(),
            Choice::Ignore => "ignore".to_string(),
            Choice::Row(vals) => {
                let cols: &[&str] = if table == "t1" { &T1_COLS } else { &T2_COLS };
                let m: serde_json::Map<String, Json> =
                    cols.iter().zip(vals).map(|(c, v)| (c.to_string(), v.to_json())).collect();
                Json::Object(m).to_string()
            }
        };
        let want = if matches!(choice, Choice::Ignore) { "ignored" } else { "resolved" };
        let row = self.peers[p].conflicts().into_iter().find(|c| c.id == id).unwrap();
        match self.peers[p].resolve(id, &arg) {
            Ok(s) if s == want => {
                self.stats.user_resolutions += 1;
                self.trace.push(format!(
                    "P{p}: sync_resolve({id}, {arg}) -> {s}  [conflict {} {} {} cols {} local {} remote {}]",
                    row.kind, row.table_name, row.record_id, row.columns, row.local_data, row.remote_data
                ));
                Ok(())
            }
            Ok(s) => self.fail(format!("P{p}: sync_resolve({id}, {arg}) returned {s:?}, expected {want:?}")),
            Err(e) => self.fail(format!("P{p}: sync_resolve({id}, {arg}) failed: {e} (conflict {row:?})")),
        }
    }

    pub fn step(&mut self, s: &Step) -> Res<()> {
        let n = self.n();
        match s {
            Step::Insert { p, t, key, vals } => {
                let p = p % n;
                let k = t.key(*key);
                let ncols = t.cols().len();
                let mut params: Vec<&dyn rusqlite::ToSql> = k.iter().map(|v| v as &dyn rusqlite::ToSql).collect();
                params.extend(vals[..ncols].iter().map(|v| v as &dyn rusqlite::ToSql));
                let marks = (1..=params.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(",");
                let sql = format!("INSERT OR REPLACE INTO {} VALUES ({marks})", t.name());
                self.local(p, &sql, &params, format!("{:?}", Shown(s, n)));
            }
            Step::Update { p, t, key, set } => {
                let p = p % n;
                let k = t.key(*key);
                let set = dedup(*t, set);
                let assign = set
                    .iter()
                    .enumerate()
                    .map(|(i, (c, _))| format!("{c} = ?{}", i + 1))
                    .collect::<Vec<_>>()
                    .join(", ");
                let cond = t
                    .key_cols()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{c} = ?{}", set.len() + 1 + i))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                let mut params: Vec<&dyn rusqlite::ToSql> =
                    set.iter().map(|(_, v)| *v as &dyn rusqlite::ToSql).collect();
                params.extend(k.iter().map(|v| v as &dyn rusqlite::ToSql));
                let sql = format!("UPDATE {} SET {assign} WHERE {cond}", t.name());
                self.local(p, &sql, &params, format!("{:?}", Shown(s, n)));
            }
            Step::Delete { p, t, key } => {
                let p = p % n;
                let k = t.key(*key);
                let cond = t
                    .key_cols()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{c} = ?{}", i + 1))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                let params: Vec<&dyn rusqlite::ToSql> = k.iter().map(|v| v as &dyn rusqlite::ToSql).collect();
                self.local(p, &format!("DELETE FROM {} WHERE {cond}", t.name()), &params, format!("{:?}", Shown(s, n)));
            }
            Step::Rekey { p, t, key, to } => {
                let p = p % n;
                if key % 3 == to % 3 {
                    return Ok(());
                }
                let (k, nk) = (t.key(*key), t.key(*to));
                let kc = t.key_cols();
                let assign =
                    kc.iter().enumerate().map(|(i, c)| format!("{c} = ?{}", i + 1)).collect::<Vec<_>>().join(", ");
                let cond = kc
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{c} = ?{}", kc.len() + 1 + i))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                let mut params: Vec<&dyn rusqlite::ToSql> = nk.iter().map(|v| v as &dyn rusqlite::ToSql).collect();
                params.extend(k.iter().map(|v| v as &dyn rusqlite::ToSql));
                self.local(
                    p,
                    &format!("UPDATE {} SET {assign} WHERE {cond}", t.name()),
                    &params,
                    format!("{:?}", Shown(s, n)),
                );
            }
            Step::Sync { from, to, limit, dup, twice } => {
                let (s_, r) = pair(*from, *to, n);
                let mut batch = self.peers[s_].changes(&self.peers[r].vector(), *limit);
                let mut b: Json = serde_json::from_str(&batch).unwrap();
                let changes = b["changes"].as_array().unwrap().clone();
                if changes.is_empty() {
                    return Ok(());
                }
                if *dup {
                    let arr = b["changes"].as_array_mut().unwrap();
                    arr.push(changes[0].clone());
                    arr.push(changes[changes.len() - 1].clone());
                    batch = b.to_string();
                }
                let what = format!("{:?} [{} changes]", Shown(s, n), changes.len());
                self.deliver(r, &batch, &what)?;
                if *twice {
                    let before = self.peers[r].fingerprint();
                    let res = self.deliver(r, &batch, "  same batch again")?;
                    if res["accepted"] != 0 {
                        return self.fail(format!(
                            "idempotence: the same batch applied twice accepted {} the second time",
                            res["accepted"]
                        ));
                    }
                    if self.peers[r].fingerprint() != before {
                        return self
                            .fail("idempotence: applying the same batch a second time changed the database".into());
                    }
                }
                self.batches.push((r, batch));
            }
            Step::Redeliver { back, to } => {
                if self.batches.len() >= *back {
                    let (orig, batch) = self.batches[self.batches.len() - back].clone();
                    let r = to.map(|t| t % n).unwrap_or(orig);
                    self.deliver(r, &batch, &format!("{:?} (P{r})", Shown(s, n)))?;
                }
            }
            Step::Clock { p, offset_us } => {
                let p = p % n;
                self.peers[p].set_clock_offset(*offset_us);
                self.trace.push(format!("{:?}", Shown(s, n)));
            }
            Step::Resolve { p, pick, choice } => {
                let p = p % n;
                let pend = self.peers[p].pending();
                if !pend.is_empty() {
                    let id = pend[pick % pend.len()];
                    self.resolve(p, id, choice)?;
                }
            }
        }
        Ok(())
    }

    /// The open parts of this peer's conflicts, each named across peers by record, kind, the
    /// pair of changes and the slot (a column of an update conflict, or the whole record):
    /// model.py closes per slot (`close_matching`).
    pub fn open_parts(&self, p: usize, only_pending: bool) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for c in self.peers[p].conflicts() {
            if only_pending && c.status != "pending" {
                continue;
            }
            let mut sides = vec![
                format!("{}:{}", c.local_device_id.clone().unwrap_or_default(), c.local_version.unwrap_or(0)),
                format!("{}:{}", c.remote_device_id.clone().unwrap_or_default(), c.remote_version.unwrap_or(0)),
            ];
            sides.sort();
            let slots: Vec<String> = match (c.kind.as_str(), c.open_columns.as_array()) {
                ("update", Some(cols)) => cols.iter().map(|v| v.as_str().unwrap_or("?").to_string()).collect(),
                _ => vec!["*".to_string()],
            };
            for s in slots {
                out.insert(format!("{} {} {} {:?} slot {s}", c.table_name, c.record_id, c.kind, sides));
            }
        }
        out
    }

    /// One exchange from `s` to `r` of at most `limit` changes (nothing if nothing is lacking).
    pub fn partial(&mut self, s: usize, r: usize, limit: i64) -> Res<()> {
        let batch = self.peers[s].changes(&self.peers[r].vector(), limit);
        let b: Json = serde_json::from_str(&batch).unwrap();
        if !b["changes"].as_array().unwrap().is_empty() {
            self.deliver(r, &batch, &format!("end partial sync P{s} -> P{r} limit {limit}"))?;
        }
        Ok(())
    }

    /// The end phase (model.py `end_phase`): exchange until quiet, then users resolve every
    /// pending conflict in one of three ways, exchanging again, until nothing is pending.
    pub fn end(&mut self, seed: u64) -> Res<()> {
        let mut rng = crate::common::Rng(seed);
        self.trace.push("--- end: full exchange until quiet".into());
        self.quiet(&mut rng)?;
        self.end_phase = true;
        let n = self.n();
        let mode = rng.below(3);
        for round in 0..400 {
            let with: Vec<usize> = (0..n).filter(|&p| !self.peers[p].pending().is_empty()).collect();
            if with.is_empty() {
                return Ok(());
            }
            if mode == 2 {
                // Interleaved: one conflict at a time, with random partial exchanges between.
                let p = with[rng.below(with.len())];
                let pend = self.peers[p].pending();
                let id = pend[rng.below(pend.len())];
                let choice = random_choice(&mut rng);
                self.resolve(p, id, &choice)?;
                for _ in 0..rng.below(4) {
                    let s = rng.below(n);
                    let r = (s + 1 + rng.below(n - 1)) % n;
                    let limit = [1000, 1, 2][rng.below(3)];
                    self.partial(s, r, limit)?;
                }
                if (0..n).all(|q| self.peers[q].pending().is_empty()) {
                    self.quiet(&mut rng)?;
                }
                continue;
            }
            if round >= 40 {
                break;
            }
            // Mode 0: every peer resolves what it has pending; mode 1: one peer does, and then
            // every copy of what it resolved must be closed everywhere after the exchange.
            let one = mode == 1;
            let chosen: Vec<usize> = if one { vec![with[rng.below(with.len())]] } else { with.clone() };
            self.trace.push(format!(
                "--- end round {round}: {} resolve everything pending",
                chosen.iter().map(|p| format!("P{p}")).collect::<Vec<_>>().join(",")
            ));
            let mut resolved = BTreeSet::new();
            for &p in &chosen {
                resolved.extend(self.open_parts(p, true));
                loop {
                    let pend = self.peers[p].pending();
                    if pend.is_empty() {
                        break;
                    }
                    let id = pend[rng.below(pend.len())];
                    let choice = random_choice(&mut rng);
                    self.resolve(p, id, &choice)?;
                }
            }
            self.trace.push("--- end: exchange until quiet".into());
            self.quiet(&mut rng)?;
            if one {
                for q in 0..n {
                    let still: Vec<String> = self.open_parts(q, true).intersection(&resolved).cloned().collect();
                    if !still.is_empty() {
                        return self.fail(format!(
                            "CLOSE: P{} resolved {still:?}, but after a full exchange P{q} still has it pending",
                            chosen[0]
                        ));
                    }
                }
            }
        }
        self.fail("CASCADE: pending conflicts keep appearing while users resolve them".into())
    }
}

/// A user's choice in the end phase: 'local', 'remote', 'ignore' or a JSON row.
pub fn random_choice(rng: &mut crate::common::Rng) -> Choice {
    const POOL: fn(u64) -> V = |i| match i % 8 {
        0 => V::Null,
        1 => V::Int(42),
        2 => V::Int(i64::MIN),
        3 => V::Real(0.1 + 0.2),
        4 => V::Real(-0.0),
        5 => t("résolu 'x'"),
        6 => V::Blob(vec![1, 2]),
        _ => t(""),
    };
    match rng.below(4) {
        0 => Choice::Local,
        1 => Choice::Remote,
        2 => Choice::Ignore,
        _ => Choice::Row((0..3).map(|_| POOL(rng.next())).collect()),
    }
}

pub fn run_case(c: &Case) -> Res<Stats> {
    let peers: Vec<Peer> = c
        .peers
        .iter()
        .enumerate()
        .map(|(i, cfg)| {
            let p = Peer::new(&format!("P{i}"), &format!("{T1_SQL}; {T2_SQL};"));
            if cfg.offset_us != 0 {
                p.set_clock_offset(cfg.offset_us);
            }
            for (t, k, vals) in &cfg.pre {
                let key = t.key(*k);
                let mut params: Vec<&dyn rusqlite::ToSql> = key.iter().map(|v| v as &dyn rusqlite::ToSql).collect();
                params.extend(vals[..t.cols().len()].iter().map(|v| v as &dyn rusqlite::ToSql));
                let marks = (1..=params.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(",");
                p.run(&format!("INSERT OR REPLACE INTO {} VALUES ({marks})", t.name()), &params).unwrap();
            }
            p.track("t1", cfg.s1);
            p.track("t2", cfg.s2);
            p
        })
        .collect();
    let mut w = World {
        peers,
        batches: Vec::new(),
        trace: Vec::new(),
        end_phase: false,
        stats: Stats { cases: 1, ..Stats::default() },
    };
    for (i, p) in w.peers.iter().enumerate() {
        let dev = p.dev.clone();
        w.trace.push(format!("P{i} is device {dev}"));
    }
    for s in &c.steps {
        w.step(s)?;
    }
    w.end(c.end_seed)?;
    w.check()?;
    Ok(w.stats)
}
