//! Owns the merge engine's convergence property test (DESIGN.md "Convergence is the law", model.py `check`).
//!
//! 2–5 in-memory databases with the same tracked tables (t1: one TEXT key; t2: a (TEXT, INTEGER)
//! key) take random inserts (INSERT OR REPLACE), updates of column subsets, deletes and key
//! changes on a few shared keys with values of every type; random partial exchanges between
//! random pairs (small limits, duplicated entries, batches applied twice, old batches delivered
//! again out of order, to anyone); skewed clocks; and (manual tables) users resolving conflicts.
//! Then: full exchange until quiet, every pending conflict resolved on random peers, exchange
//! again. Every database must then hold the same tables and vector, verify, hold every change,
//! and every slot must hold the value of its greatest (timestamp, device id) write.
//!
//! `cargo test --release -p peersync-core --test convergence` runs 256 cases per configuration;
//! `PEERSYNC_LONG=1` runs 10,000.
mod common;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

const STRATS: [&str; 4] = ["timestamp_wins", "local_wins", "remote_wins", "manual"];
const T1_KEYS: [&str; 3] = ["k1", "it's", "漢🎉"];
const T2_KEYS: [(&str, i64); 3] = [("a", 1), ("a", i64::MIN), ("q'\"", i64::MAX)];
const T1_COLS: [&str; 3] = ["a", "b", "c"];
const T2_COLS: [&str; 2] = ["x", "y"];
const TABLES: [&str; 2] = ["t1", "t2"];

#[derive(Clone, Copy, PartialEq, Debug)]
enum Tbl {
    T1,
    T2,
}

impl Tbl {
    fn name(self) -> &'static str {
        match self {
            Tbl::T1 => "t1",
            Tbl::T2 => "t2",
        }
    }
    fn cols(self) -> &'static [&'static str] {
        match self {
            Tbl::T1 => &T1_COLS,
            Tbl::T2 => &T2_COLS,
        }
    }
    fn key(self, k: usize) -> Vec<V> {
        match self {
            Tbl::T1 => vec![t(T1_KEYS[k % 3])],
            Tbl::T2 => vec![t(T2_KEYS[k % 3].0), V::Int(T2_KEYS[k % 3].1)],
        }
    }
    fn key_cols(self) -> &'static [&'static str] {
        match self {
            Tbl::T1 => &["id"],
            Tbl::T2 => &["k", "n"],
        }
    }
    fn key_text(self, k: usize) -> String {
        self.key(k).iter().map(|v| v.literal()).collect::<Vec<_>>().join(",")
    }
}

#[derive(Clone)]
enum Choice {
    Local,
    Remote,
    Ignore,
    Row(Vec<V>),
}

impl fmt::Debug for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Choice::Local => write!(f, "'local'"),
            Choice::Remote => write!(f, "'remote'"),
            Choice::Ignore => write!(f, "'ignore'"),
            Choice::Row(v) => write!(f, "row {v:?}"),
        }
    }
}

/// One step of a scenario. Peer indices are taken modulo the number of peers.
#[derive(Clone)]
enum Step {
    /// `INSERT OR REPLACE` of the whole row.
    Insert { p: usize, t: Tbl, key: usize, vals: Vec<V> },
    Update { p: usize, t: Tbl, key: usize, set: Vec<(usize, V)> },
    Delete { p: usize, t: Tbl, key: usize },
    /// `UPDATE ... SET <key> = <other key>`: a DELETE of the old key and an INSERT of the new.
    Rekey { p: usize, t: Tbl, key: usize, to: usize },
    /// `to` applies `sync_changes(to's vector, limit)` of `from`; `dup` appends copies of the
    /// first and last entries; `twice` applies the same batch again.
    Sync { from: usize, to: usize, limit: i64, dup: bool, twice: bool },
    /// The `back`-th latest batch delivered again, out of order, to its receiver (as in
    /// model.py; delivering it to a peer that lacks its causal past is another test:
    /// merge_transport.rs `change_arriving_before_its_base_from_another_origin`).
    Redeliver { back: usize },
    /// A user resolves a pending conflict (the `pick`-th) mid-run.
    Resolve { p: usize, pick: usize, choice: Choice },
}

struct Shown<'a>(&'a Step, usize);

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Shown(self, usize::MAX).fmt(f)
    }
}

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.1;
        match self.0 {
            Step::Insert { p, t, key, vals } => write!(
                f,
                "P{}: INSERT OR REPLACE {} ({}) = {:?}",
                p % n,
                t.name(),
                t.key_text(*key),
                &vals[..t.cols().len()]
            ),
            Step::Update { p, t, key, set } => {
                let s: Vec<String> = dedup(*t, set).iter().map(|(c, v)| format!("{c}={v:?}")).collect();
                write!(f, "P{}: UPDATE {} SET {} WHERE key=({})", p % n, t.name(), s.join(", "), t.key_text(*key))
            }
            Step::Delete { p, t, key } => write!(f, "P{}: DELETE {} ({})", p % n, t.name(), t.key_text(*key)),
            Step::Rekey { p, t, key, to } => {
                write!(f, "P{}: UPDATE {} SET key=({}) WHERE key=({})", p % n, t.name(), t.key_text(*to), t.key_text(*key))
            }
            Step::Sync { from, to, limit, dup, twice } => {
                let (s, r) = pair(*from, *to, n);
                write!(f, "sync P{s} -> P{r} limit {limit}{}{}", if *dup { " +dup entries" } else { "" }, if *twice { " applied twice" } else { "" })
            }
            Step::Redeliver { back } => write!(f, "redeliver batch #-{back} to its receiver"),
            Step::Resolve { p, pick, choice } => write!(f, "P{}: sync_resolve(pending #{pick}, {choice:?})", p % n),
        }
    }
}

/// The columns an Update step sets: the first value given for each column.
fn dedup(t: Tbl, set: &[(usize, V)]) -> Vec<(&'static str, &V)> {
    let cols = t.cols();
    let mut seen = BTreeSet::new();
    set.iter().filter(|(c, _)| seen.insert(c % cols.len())).map(|(c, v)| (cols[c % cols.len()], v)).collect()
}

fn pair(from: usize, to: usize, n: usize) -> (usize, usize) {
    let s = from % n;
    let mut r = to % n;
    if r == s {
        r = (r + 1) % n;
    }
    (s, r)
}

#[derive(Clone, Debug)]
struct PeerCfg {
    s1: &'static str,
    s2: &'static str,
    offset_us: i64,
    /// Rows the database already holds when its tables are tracked (e.g. a restored backup).
    pre: Vec<(Tbl, usize, Vec<V>)>,
}

#[derive(Clone)]
struct Case {
    peers: Vec<PeerCfg>,
    steps: Vec<Step>,
    end_seed: u64,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Case (end_seed {}):", self.end_seed)?;
        for (i, p) in self.peers.iter().enumerate() {
            writeln!(f, "  P{i}: t1 {}, t2 {}, clock offset {} s", p.s1, p.s2, p.offset_us as f64 / 1e6)?;
            for (t, k, vals) in &p.pre {
                writeln!(f, "      already holds {} ({}) = {:?} when tracked", t.name(), t.key_text(*k), &vals[..t.cols().len()])?;
            }
        }
        for s in &self.steps {
            writeln!(f, "  {:?}", Shown(s, self.peers.len()))?;
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ generators

fn value() -> impl Strategy<Value = V> {
    prop_oneof![
        Just(V::Int(1)),
        Just(V::Null),
        Just(V::Int(0)),
        Just(V::Int(i64::MAX)),
        Just(V::Int(i64::MIN)),
        Just(V::Real(1.0)),
        Just(V::Real(0.1 + 0.2)),
        Just(V::Real(-0.0)),
        Just(V::Real(0.0)),
        Just(V::Real(f64::INFINITY)),
        Just(V::Real(5e-324)),
        Just(t("1")),
        Just(t("it's \"q\" \\ \n")),
        Just(t("é漢🎉")),
        Just(t("")),
        Just(V::Blob(vec![])),
        Just(V::Blob(vec![0, 255, 39])),
    ]
}

fn table() -> impl Strategy<Value = Tbl> {
    prop_oneof![Just(Tbl::T1), Just(Tbl::T2)]
}

/// `Default`: 3 keys per table, 1–40 steps; `Contention`: (mostly) one key, 20–80 steps.
#[derive(Clone, Copy, Debug)]
enum Profile {
    Default,
    Contention,
}

/// Key 0 is the most contended.
fn key(profile: Profile) -> BoxedStrategy<usize> {
    match profile {
        Profile::Default => prop_oneof![3 => Just(0usize), 1 => Just(1usize), 1 => Just(2usize)].boxed(),
        Profile::Contention => prop_oneof![5 => Just(0usize), 1 => Just(1usize)].boxed(),
    }
}

fn choice() -> impl Strategy<Value = Choice> {
    prop_oneof![
        Just(Choice::Local),
        Just(Choice::Remote),
        Just(Choice::Ignore),
        proptest::collection::vec(value(), 3).prop_map(Choice::Row),
    ]
}

fn step(profile: Profile) -> impl Strategy<Value = Step> {
    let p = 0usize..5;
    let key = move || key(profile);
    prop_oneof![
        16 => (p.clone(), table(), key(), proptest::collection::vec(value(), 3))
            .prop_map(|(p, t, key, vals)| Step::Insert { p, t, key, vals }),
        22 => (p.clone(), table(), key(), proptest::collection::vec((0usize..3, value()), 1..=3))
            .prop_map(|(p, t, key, set)| Step::Update { p, t, key, set }),
        10 => (p.clone(), table(), key()).prop_map(|(p, t, key)| Step::Delete { p, t, key }),
        2 => (p.clone(), table(), key(), key()).prop_map(|(p, t, key, to)| Step::Rekey { p, t, key, to }),
        36 => (p.clone(), p.clone(), prop_oneof![2 => Just(1000i64), 1 => 1i64..6], proptest::bool::weighted(0.15), proptest::bool::weighted(0.1))
            .prop_map(|(from, to, limit, dup, twice)| Step::Sync { from, to, limit, dup, twice }),
        7 => (1usize..=5).prop_map(|back| Step::Redeliver { back }),
        5 => (p, 0usize..4, choice()).prop_map(|(p, pick, choice)| Step::Resolve { p, pick, choice }),
    ]
}

fn offset() -> impl Strategy<Value = i64> {
    const H: i64 = 3_600_000_000;
    prop_oneof![
        35 => Just(0i64),
        35 => (1i64..=5).prop_map(|h| -h * H),
        10 => (1i64..=3).prop_map(|h| h * H),
        20 => -3_000_000i64..=3_000_000,
    ]
}

#[derive(Clone, Copy)]
enum Mode {
    One(&'static str),
    Mixed,
}

fn strategy_for(mode: Mode) -> BoxedStrategy<&'static str> {
    match mode {
        Mode::One(s) => Just(s).boxed(),
        Mode::Mixed => proptest::sample::select(STRATS.to_vec()).boxed(),
    }
}

fn case(mode: Mode, profile: Profile) -> impl Strategy<Value = Case> {
    let small = prop_oneof![Just(V::Int(0)), Just(V::Int(1)), Just(t("1"))];
    let pre = prop_oneof![
        4 => Just(Vec::new()),
        1 => proptest::collection::vec((table(), key(profile), proptest::collection::vec(small, 3)), 1..=3),
    ];
    let peer = (strategy_for(mode), strategy_for(mode), offset(), pre)
        .prop_map(|(s1, s2, offset_us, pre)| PeerCfg { s1, s2, offset_us, pre });
    let steps = match profile {
        Profile::Default => 1..40,
        Profile::Contention => 20..80,
    };
    (proptest::collection::vec(peer, 2..=5), proptest::collection::vec(step(profile), steps), any::<u64>())
        .prop_map(|(peers, steps, end_seed)| Case { peers, steps, end_seed })
}

// ------------------------------------------------------------------ running a case

struct World {
    peers: Vec<Peer>,
    batches: Vec<(usize, String)>,
    trace: Vec<String>,
    /// Conflicts reported as pending by sync_apply after the end phase's resolving started.
    end_phase: bool,
    stats: Stats,
}

/// What a run exercised (printed per configuration with `PEERSYNC_STATS=1`).
#[derive(Default, Clone, Copy, Debug)]
struct Stats {
    cases: u64,
    applies: u64,
    accepted: u64,
    duplicates: u64,
    deferred: u64,
    conflicts: u64,
    pending: u64,
    auto_resolutions: u64,
    user_resolutions: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.cases += o.cases;
        self.applies += o.applies;
        self.accepted += o.accepted;
        self.duplicates += o.duplicates;
        self.deferred += o.deferred;
        self.conflicts += o.conflicts;
        self.pending += o.pending;
        self.auto_resolutions += o.auto_resolutions;
        self.user_resolutions += o.user_resolutions;
    }
}

type Res<T> = Result<T, String>;

impl World {
    fn fail<T>(&self, msg: String) -> Res<T> {
        let tail: Vec<&String> = self.trace.iter().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect();
        let mut s = format!("{msg}\n--- trace (last {} of {} events):\n", tail.len(), self.trace.len());
        for l in tail {
            s.push_str("  ");
            s.push_str(l);
            s.push('\n');
        }
        Err(s)
    }

    fn n(&self) -> usize {
        self.peers.len()
    }

    /// Applies `batch` on peer `r`; fails the case on an error, or on a new pending conflict
    /// during the end phase (a cascade).
    fn deliver(&mut self, r: usize, batch: &str, what: &str) -> Res<Json> {
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
                    .map(|c| format!("{}#{} {} {} {} {}", c["kind"].as_str().unwrap_or("?"), c["id"], c["table_name"].as_str().unwrap_or("?"), c["record_id"].as_str().unwrap_or("?"), c["columns"], c["status"].as_str().unwrap_or("?")))
                    .collect();
                self.trace.push(format!(
                    "{what}: accepted {} dup {} deferred {} resolutions {} conflicts {:?}",
                    res["accepted"], res["duplicates"], res["deferred"], res["resolutions"], conf
                ));
                if self.end_phase {
                    for c in res["conflicts"].as_array().unwrap() {
                        if c["status"] == "pending" {
                            return self.fail(format!(
                                "CASCADE: a new pending conflict appeared after every change had been exchanged and users started resolving: {c}"
                            ));
                        }
                    }
                }
                Ok(res)
            }
            Err(e) => self.fail(format!("{what}: sync_apply failed: {e}")),
        }
    }

    /// Full sync from s to r (paging), returns changes accepted.
    fn sync_full(&mut self, s: usize, r: usize) -> Res<i64> {
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

    fn quiet(&mut self, rng: &mut common::Rng) -> Res<()> {
        let n = self.n();
        for _ in 0..30 {
            let mut pairs: Vec<(usize, usize)> = (0..n).flat_map(|s| (0..n).filter(move |&r| r != s).map(move |r| (s, r))).collect();
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

    fn local(&mut self, p: usize, sql: &str, params: &[&dyn rusqlite::ToSql], what: String) {
        match self.peers[p].run(sql, params) {
            Ok(n) => self.trace.push(format!("{what} ({n} row(s))")),
            // An app write SQLite refuses (a key change onto an existing key) is not sync's business.
            Err(e) => self.trace.push(format!("{what}: refused by SQLite: {e}")),
        }
    }

    fn resolve(&mut self, p: usize, id: i64, choice: &Choice) -> Res<()> {
        let table: String = self.peers[p].conn.query_row("SELECT table_name FROM sync_conflicts WHERE id=?1", [id], |r| r.get(0)).unwrap();
        let arg = match choice {
            Choice::Local => "local".to_string(),
            Choice::Remote => "remote".to_string(),
            Choice::Ignore => "ignore".to_string(),
            Choice::Row(vals) => {
                let cols: &[&str] = if table == "t1" { &T1_COLS } else { &T2_COLS };
                let m: serde_json::Map<String, Json> = cols.iter().zip(vals).map(|(c, v)| (c.to_string(), v.to_json())).collect();
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

    fn step(&mut self, s: &Step) -> Res<()> {
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
                let assign = set.iter().enumerate().map(|(i, (c, _))| format!("{c} = ?{}", i + 1)).collect::<Vec<_>>().join(", ");
                let cond = t.key_cols().iter().enumerate().map(|(i, c)| format!("{c} = ?{}", set.len() + 1 + i)).collect::<Vec<_>>().join(" AND ");
                let mut params: Vec<&dyn rusqlite::ToSql> = set.iter().map(|(_, v)| *v as &dyn rusqlite::ToSql).collect();
                params.extend(k.iter().map(|v| v as &dyn rusqlite::ToSql));
                let sql = format!("UPDATE {} SET {assign} WHERE {cond}", t.name());
                self.local(p, &sql, &params, format!("{:?}", Shown(s, n)));
            }
            Step::Delete { p, t, key } => {
                let p = p % n;
                let k = t.key(*key);
                let cond = t.key_cols().iter().enumerate().map(|(i, c)| format!("{c} = ?{}", i + 1)).collect::<Vec<_>>().join(" AND ");
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
                let assign = kc.iter().enumerate().map(|(i, c)| format!("{c} = ?{}", i + 1)).collect::<Vec<_>>().join(", ");
                let cond = kc.iter().enumerate().map(|(i, c)| format!("{c} = ?{}", kc.len() + 1 + i)).collect::<Vec<_>>().join(" AND ");
                let mut params: Vec<&dyn rusqlite::ToSql> = nk.iter().map(|v| v as &dyn rusqlite::ToSql).collect();
                params.extend(k.iter().map(|v| v as &dyn rusqlite::ToSql));
                self.local(p, &format!("UPDATE {} SET {assign} WHERE {cond}", t.name()), &params, format!("{:?}", Shown(s, n)));
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
                        return self.fail(format!("idempotence: the same batch applied twice accepted {} the second time", res["accepted"]));
                    }
                    if self.peers[r].fingerprint() != before {
                        return self.fail("idempotence: applying the same batch a second time changed the database".into());
                    }
                }
                self.batches.push((r, batch));
            }
            Step::Redeliver { back } => {
                if self.batches.len() >= *back {
                    let (r, batch) = self.batches[self.batches.len() - back].clone();
                    self.deliver(r, &batch, &format!("{:?} (P{r})", Shown(s, n)))?;
                }
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
    fn open_parts(&self, p: usize, only_pending: bool) -> BTreeSet<String> {
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
    fn partial(&mut self, s: usize, r: usize, limit: i64) -> Res<()> {
        let batch = self.peers[s].changes(&self.peers[r].vector(), limit);
        let b: Json = serde_json::from_str(&batch).unwrap();
        if !b["changes"].as_array().unwrap().is_empty() {
            self.deliver(r, &batch, &format!("end partial sync P{s} -> P{r} limit {limit}"))?;
        }
        Ok(())
    }

    /// The end phase (model.py `end_phase`): exchange until quiet, then users resolve every
    /// pending conflict in one of three ways, exchanging again, until nothing is pending.
    fn end(&mut self, seed: u64) -> Res<()> {
        let mut rng = common::Rng(seed);
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
            self.trace.push(format!("--- end round {round}: {} resolve everything pending", chosen.iter().map(|p| format!("P{p}")).collect::<Vec<_>>().join(",")));
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

    fn check(&self) -> Res<()> {
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
                let have: BTreeSet<(String, i64)> = l.iter().map(|r| (r.device_id.clone().unwrap(), r.version.unwrap())).collect();
                let lacks: Vec<_> = union.keys().filter(|k| !have.contains(k)).collect();
                return self.fail(format!("P{p}'s log has {} rows, the union {}; lacks {lacks:?}", l.len(), union.len()));
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
        // Identical tables.
        let s0 = self.peers[0].snapshot(&TABLES);
        for p in 1..n {
            let s = self.peers[p].snapshot(&TABLES);
            if s != s0 {
                return self.fail(format!("tables differ:\n  P0: {s0:?}\n  P{p}: {s:?}"));
            }
        }
        // No resolution has a resolution as one of its sides (resolutions never cascade).
        let is_res: BTreeMap<String, bool> = union.iter().map(|((d, v), r)| (format!("{d}:{v}"), r.resolution)).collect();
        for r in union.values().filter(|r| r.resolution) {
            let bases: Json = serde_json::from_str(r.bases.as_deref().unwrap_or("{}")).unwrap();
            let mut lists: Vec<&Json> = vec![&bases["live"]];
            if let Some(m) = bases["cols"].as_object() {
                lists.extend(m.values());
            }
            for l in lists.into_iter().filter_map(|l| l.as_array()).filter(|l| l.len() >= 2) {
                for b in l {
                    if is_res.get(b.as_str().unwrap_or("")) == Some(&true) {
                        return self.fail(format!("CASCADE: resolution {} has resolution {b} as a side ({})", reference(r), r.bases.as_deref().unwrap_or("")));
                    }
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
fn winners<'a>(log: impl Iterator<Item = &'a LogRow>) -> BTreeMap<String, Vec<Vec<V>>> {
    type Key = (String, String);
    let mut live: BTreeMap<Key, ((i64, String), bool)> = BTreeMap::new();
    let mut cols: BTreeMap<Key, BTreeMap<String, ((i64, String), V)>> = BTreeMap::new();
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
        let row: Vec<V> = names.iter().map(|c| slots.get(*c).map(|(_, v)| v.clone()).unwrap_or(V::Text(format!("<no write of {c}>")))).collect();
        out.get_mut(&k.0).unwrap().push(row);
    }
    for rows in out.values_mut() {
        rows.sort_by_key(|r| format!("{r:?}"));
    }
    out
}

/// A user's choice in the end phase: 'local', 'remote', 'ignore' or a JSON row.
fn random_choice(rng: &mut common::Rng) -> Choice {
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

fn run_case(c: &Case) -> Res<Stats> {
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
    let mut w = World { peers, batches: Vec::new(), trace: Vec::new(), end_phase: false, stats: Stats { cases: 1, ..Stats::default() } };
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

fn config() -> Config {
    let long = std::env::var("PEERSYNC_LONG").map(|v| v == "1").unwrap_or(false);
    Config { cases: if long { 10_000 } else { 256 }, max_shrink_iters: 2_000, failure_persistence: None, ..Config::default() }
}

fn property(mode: Mode, profile: Profile) {
    let mut runner = proptest::test_runner::TestRunner::new(config());
    let total = std::cell::RefCell::new(Stats::default());
    let res = runner.run(&case(mode, profile), |c| {
        let st = run_case(&c).map_err(TestCaseError::fail)?;
        total.borrow_mut().add(&st);
        Ok(())
    });
    if std::env::var("PEERSYNC_STATS").is_ok_and(|v| v == "1") {
        let label = match mode {
            Mode::One(s) => s,
            Mode::Mixed => "mixed",
        };
        eprintln!("stats {label} {profile:?}: {:?}", total.borrow());
    }
    if let Err(e) = res {
        panic!("{e}");
    }
}

macro_rules! configurations {
    ($($name:ident: $mode:expr, $profile:expr;)*) => {$(
        #[test]
        fn $name() {
            property($mode, $profile);
        }
    )*};
}

configurations! {
    converges_timestamp_wins: Mode::One("timestamp_wins"), Profile::Default;
    converges_local_wins: Mode::One("local_wins"), Profile::Default;
    converges_remote_wins: Mode::One("remote_wins"), Profile::Default;
    converges_manual: Mode::One("manual"), Profile::Default;
    converges_mixed_strategies: Mode::Mixed, Profile::Default;
    converges_timestamp_wins_contention: Mode::One("timestamp_wins"), Profile::Contention;
    converges_local_wins_contention: Mode::One("local_wins"), Profile::Contention;
    converges_remote_wins_contention: Mode::One("remote_wins"), Profile::Contention;
    converges_manual_contention: Mode::One("manual"), Profile::Contention;
    converges_mixed_strategies_contention: Mode::Mixed, Profile::Contention;
}
