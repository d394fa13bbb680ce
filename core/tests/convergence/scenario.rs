//! Owns the convergence test's scenarios: tables, keys, values, steps, peers, and their proptest generators (readable when shrunk).
use crate::common::*;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::fmt;

pub const STRATS: [&str; 4] = ["timestamp_wins", "local_wins", "remote_wins", "manual"];
pub const T1_KEYS: [&str; 3] = ["k1", "it's", "漢🎉"];
pub const T2_KEYS: [(&str, i64); 3] = [("a", 1), ("a", i64::MIN), ("q'\"", i64::MAX)];
pub const T1_COLS: [&str; 3] = ["a", "b", "c"];
pub const T2_COLS: [&str; 2] = ["x", "y"];
pub const TABLES: [&str; 2] = ["t1", "t2"];

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Tbl {
    T1,
    T2,
}

impl Tbl {
    pub fn name(self) -> &'static str {
        match self {
            Tbl::T1 => "t1",
            Tbl::T2 => "t2",
        }
    }
    pub fn cols(self) -> &'static [&'static str] {
        match self {
            Tbl::T1 => &T1_COLS,
            Tbl::T2 => &T2_COLS,
        }
    }
    pub fn key(self, k: usize) -> Vec<V> {
        match self {
            Tbl::T1 => vec![t(T1_KEYS[k % 3])],
            Tbl::T2 => vec![t(T2_KEYS[k % 3].0), V::Int(T2_KEYS[k % 3].1)],
        }
    }
    pub fn key_cols(self) -> &'static [&'static str] {
        match self {
            Tbl::T1 => &["id"],
            Tbl::T2 => &["k", "n"],
        }
    }
    pub fn key_text(self, k: usize) -> String {
        self.key(k).iter().map(|v| v.literal()).collect::<Vec<_>>().join(",")
    }
}

#[derive(Clone)]
pub enum Choice {
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
pub enum Step {
    /// `INSERT OR REPLACE` of the whole row.
    Insert {
        p: usize,
        t: Tbl,
        key: usize,
        vals: Vec<V>,
    },
    Update {
        p: usize,
        t: Tbl,
        key: usize,
        set: Vec<(usize, V)>,
    },
    Delete {
        p: usize,
        t: Tbl,
        key: usize,
    },
    /// `UPDATE ... SET <key> = <other key>`: a DELETE of the old key and an INSERT of the new.
    Rekey {
        p: usize,
        t: Tbl,
        key: usize,
        to: usize,
    },
    /// `to` applies `sync_changes(to's vector, limit)` of `from`; `dup` appends copies of the
    /// first and last entries; `twice` applies the same batch again.
    Sync {
        from: usize,
        to: usize,
        limit: i64,
        dup: bool,
        twice: bool,
    },
    /// The `back`-th latest batch delivered again, out of order, to its receiver (as model.py
    /// does) or to peer `to`, which may lack the changes it is based on (DESIGN.md: "in any
    /// order"; the receiver must defer what it cannot apply yet).
    Redeliver {
        back: usize,
        to: Option<usize>,
    },
    /// The device's wall clock is set again (jumps back or forward by hours, or a little).
    Clock {
        p: usize,
        offset_us: i64,
    },
    /// A user resolves a pending conflict (the `pick`-th) mid-run.
    Resolve {
        p: usize,
        pick: usize,
        choice: Choice,
    },
}

pub struct Shown<'a>(pub &'a Step, pub usize);

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
                write!(
                    f,
                    "P{}: UPDATE {} SET key=({}) WHERE key=({})",
                    p % n,
                    t.name(),
                    t.key_text(*to),
                    t.key_text(*key)
                )
            }
            Step::Sync { from, to, limit, dup, twice } => {
                let (s, r) = pair(*from, *to, n);
                write!(
                    f,
                    "sync P{s} -> P{r} limit {limit}{}{}",
                    if *dup { " +dup entries" } else { "" },
                    if *twice { " applied twice" } else { "" }
                )
            }
            Step::Redeliver { back, to: None } => write!(f, "redeliver batch #-{back} to its receiver"),
            Step::Redeliver { back, to: Some(to) } => write!(f, "redeliver batch #-{back} to P{}", to % n),
            Step::Clock { p, offset_us } => {
                write!(f, "P{}: wall clock offset now {} s", p % n, *offset_us as f64 / 1e6)
            }
            Step::Resolve { p, pick, choice } => write!(f, "P{}: sync_resolve(pending #{pick}, {choice:?})", p % n),
        }
    }
}

/// The columns an Update step sets: the first value given for each column.
pub fn dedup(t: Tbl, set: &[(usize, V)]) -> Vec<(&'static str, &V)> {
    let cols = t.cols();
    let mut seen = BTreeSet::new();
    set.iter().filter(|(c, _)| seen.insert(c % cols.len())).map(|(c, v)| (cols[c % cols.len()], v)).collect()
}

pub fn pair(from: usize, to: usize, n: usize) -> (usize, usize) {
    let s = from % n;
    let mut r = to % n;
    if r == s {
        r = (r + 1) % n;
    }
    (s, r)
}

#[derive(Clone, Debug)]
pub struct PeerCfg {
    pub s1: &'static str,
    pub s2: &'static str,
    pub offset_us: i64,
    /// Rows the database already holds when its tables are tracked (e.g. a restored backup).
    pub pre: Vec<(Tbl, usize, Vec<V>)>,
}

#[derive(Clone)]
pub struct Case {
    pub peers: Vec<PeerCfg>,
    pub steps: Vec<Step>,
    pub end_seed: u64,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Case (end_seed {}):", self.end_seed)?;
        for (i, p) in self.peers.iter().enumerate() {
            writeln!(f, "  P{i}: t1 {}, t2 {}, clock offset {} s", p.s1, p.s2, p.offset_us as f64 / 1e6)?;
            for (t, k, vals) in &p.pre {
                writeln!(
                    f,
                    "      already holds {} ({}) = {:?} when tracked",
                    t.name(),
                    t.key_text(*k),
                    &vals[..t.cols().len()]
                )?;
            }
        }
        for s in &self.steps {
            writeln!(f, "  {:?}", Shown(s, self.peers.len()))?;
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ generators

pub fn value() -> impl Strategy<Value = V> {
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

pub fn table() -> impl Strategy<Value = Tbl> {
    prop_oneof![Just(Tbl::T1), Just(Tbl::T2)]
}

/// `Default`: 3 keys per table, 1–40 steps; `Contention`: (mostly) one key, 20–80 steps.
#[derive(Clone, Copy, Debug)]
pub enum Profile {
    Default,
    Contention,
}

/// Key 0 is the most contended.
pub fn key(profile: Profile) -> BoxedStrategy<usize> {
    match profile {
        Profile::Default => prop_oneof![3 => Just(0usize), 1 => Just(1usize), 1 => Just(2usize)].boxed(),
        Profile::Contention => prop_oneof![5 => Just(0usize), 1 => Just(1usize)].boxed(),
    }
}

pub fn choice() -> impl Strategy<Value = Choice> {
    prop_oneof![
        Just(Choice::Local),
        Just(Choice::Remote),
        Just(Choice::Ignore),
        proptest::collection::vec(value(), 3).prop_map(Choice::Row),
    ]
}

pub fn step(profile: Profile) -> impl Strategy<Value = Step> {
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
        7 => (1usize..=5, proptest::option::weighted(0.3, p.clone())).prop_map(|(back, to)| Step::Redeliver { back, to }),
        2 => (p.clone(), offset()).prop_map(|(p, offset_us)| Step::Clock { p, offset_us }),
        5 => (p, 0usize..4, choice()).prop_map(|(p, pick, choice)| Step::Resolve { p, pick, choice }),
    ]
}

pub fn offset() -> impl Strategy<Value = i64> {
    const H: i64 = 3_600_000_000;
    prop_oneof![
        35 => Just(0i64),
        35 => (1i64..=5).prop_map(|h| -h * H),
        10 => (1i64..=3).prop_map(|h| h * H),
        20 => -3_000_000i64..=3_000_000,
    ]
}

#[derive(Clone, Copy)]
pub enum Mode {
    One(&'static str),
    Mixed,
}

pub fn strategy_for(mode: Mode) -> BoxedStrategy<&'static str> {
    match mode {
        Mode::One(s) => Just(s).boxed(),
        Mode::Mixed => proptest::sample::select(STRATS.to_vec()).boxed(),
    }
}

pub fn case(mode: Mode, profile: Profile) -> impl Strategy<Value = Case> {
    let small = prop_oneof![Just(V::Int(0)), Just(V::Int(1)), Just(t("1"))];
    let pre = prop_oneof![
        4 => Just(Vec::new()),
        1 => proptest::collection::vec((table(), key(profile), proptest::collection::vec(small, 3)), 1..=3),
    ];
    let peer = (strategy_for(mode), strategy_for(mode), offset(), pre).prop_map(|(s1, s2, offset_us, pre)| PeerCfg {
        s1,
        s2,
        offset_us,
        pre,
    });
    let steps = match profile {
        Profile::Default => 1..40,
        Profile::Contention => 20..80,
    };
    (proptest::collection::vec(peer, 2..=5), proptest::collection::vec(step(profile), steps), any::<u64>())
        .prop_map(|(peers, steps, end_seed)| Case { peers, steps, end_seed })
}
