//! Owns the "life" convergence property test: a loans app (loans and payments, a foreign key)
//! on 2–4 devices, some with `foreign_keys=ON` and some without, some joining late, a column
//! added on some devices first, constraint conflicts and their resolution. Every case must end
//! with nothing pending and equal vectors, digests (`sync_digest`) and tables everywhere.
//!
//! `cargo test --release -p peersync-core --test convergence_life` runs 256 cases per
//! configuration; `PEERSYNC_LONG=1` runs 10,000 (`PEERSYNC_CASES=n` runs n). `LIFE_DEBUG=1` prints
//! every exchange (the changes sent, the receiver's conflicts and rows) when replaying a found case.
mod common;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::Value as Json;

const SCHEMA: &str = "CREATE TABLE loans(id TEXT PRIMARY KEY, amount INTEGER, note TEXT);
     CREATE TABLE payments(id TEXT PRIMARY KEY, loan TEXT REFERENCES loans(id), amount INTEGER);";
const STRATS: [&str; 4] = ["timestamp_wins", "local_wins", "remote_wins", "manual"];
const LOANS: [&str; 3] = ["L0", "L1", "L2"];
const PAYMENTS: [&str; 3] = ["P0", "P1", "P2"];

#[derive(Clone, Debug)]
enum Op {
    InsertLoan(usize, i64),
    UpdateLoan(usize, i64, Option<String>),
    DeleteLoan(usize),
    InsertPayment(usize, usize, i64),
    UpdatePayment(usize, i64),
    DeletePayment(usize),
    /// `ALTER TABLE loans ADD COLUMN tag` on this device (once; later ones are no-ops).
    AddColumn,
    /// Sets the new column, where this device has it.
    Tag(usize, String),
}

#[derive(Clone, Debug)]
enum Step {
    Write(usize, Op),
    /// `from` sends `to` at most `limit` changes of what it lacks.
    Send {
        from: usize,
        to: usize,
        limit: i64,
    },
    /// A person on `peer` settles its oldest pending conflict with the case's choice for it.
    Settle(usize, usize),
}

#[derive(Clone, Debug)]
struct Case {
    /// Per device: `foreign_keys=ON`, and the step it joins at (devices act only from then on).
    devices: Vec<(bool, usize)>,
    strategies: (usize, usize),
    steps: Vec<Step>,
    /// Choices people make, used in turn: 0 local, 1 remote.
    choices: Vec<u8>,
}

fn op(alter: bool) -> impl Strategy<Value = Op> {
    let note = proptest::option::of(prop_oneof![Just("a".to_string()), Just("b".to_string())]);
    prop_oneof![
        4 => (0..3usize, 0..3i64).prop_map(|(k, a)| Op::InsertLoan(k, a)),
        4 => (0..3usize, 0..3i64, note).prop_map(|(k, a, n)| Op::UpdateLoan(k, a, n)),
        2 => (0..3usize).prop_map(Op::DeleteLoan),
        4 => (0..3usize, 0..3usize, 0..3i64).prop_map(|(p, l, a)| Op::InsertPayment(p, l, a)),
        2 => (0..3usize, 0..3i64).prop_map(|(p, a)| Op::UpdatePayment(p, a)),
        2 => (0..3usize).prop_map(Op::DeletePayment),
        if alter { 1 } else { 0 } => Just(Op::AddColumn),
        if alter { 2 } else { 0 } => (0..3usize, prop_oneof![Just("x".to_string()), Just("y".to_string())])
            .prop_map(|(k, t)| Op::Tag(k, t)),
    ]
}

fn case(alter: bool) -> impl Strategy<Value = Case> {
    let device = (any::<bool>(), prop_oneof![3 => Just(0usize), 1 => 1usize..30]);
    (proptest::collection::vec(device, 2..=4), 0..4usize, 0..4usize, 10..60usize).prop_flat_map(
        move |(devices, s1, s2, n)| {
            let k = devices.len();
            let step = prop_oneof![
                10 => (0..k, op(alter)).prop_map(|(p, o)| Step::Write(p, o)),
                8 => (0..k, 0..k, prop_oneof![Just(1000i64), 1i64..4])
                    .prop_map(|(from, to, limit)| Step::Send { from, to, limit }),
                2 => (0..k, 0..8usize).prop_map(|(p, c)| Step::Settle(p, c)),
            ];
            (Just(devices), Just((s1, s2)), proptest::collection::vec(step, n), proptest::collection::vec(0..2u8, 8))
                .prop_map(|(mut devices, strategies, steps, choices)| {
                    devices[0].1 = 0;
                    Case { devices, strategies, steps, choices }
                })
        },
    )
}

struct Life {
    peers: Vec<Peer>,
    joined: Vec<bool>,
    altered: Vec<bool>,
    strategies: (&'static str, &'static str),
    trace: Vec<String>,
}

impl Life {
    fn fail<T>(&self, msg: String) -> Result<T, String> {
        let tail = self.trace.iter().rev().take(80).rev().cloned().collect::<Vec<_>>().join("\n  ");
        Err(format!("{msg}\n--- trace:\n  {tail}"))
    }

    /// A device joins: it creates the tables (with the new column if it was added somewhere
    /// already: a person installs the app's current version) and tracks them.
    fn join(&mut self, p: usize, fk: bool) {
        // (SQLite's default here is ON: say it either way.)
        self.peers[p].exec(if fk { "PRAGMA foreign_keys=ON" } else { "PRAGMA foreign_keys=OFF" });
        self.peers[p].track("loans", self.strategies.0);
        self.peers[p].track("payments", self.strategies.1);
        self.joined[p] = true;
        self.trace.push(format!("P{p} joins (foreign_keys={fk})"));
    }

    fn add_column(&mut self, p: usize) {
        if !self.altered[p] {
            self.peers[p].exec("ALTER TABLE loans ADD COLUMN tag TEXT");
            self.peers[p].track("loans", self.strategies.0);
            self.altered[p] = true;
        }
    }

    /// An app write; one the database refuses (a foreign key, say) changes nothing.
    fn write(&mut self, p: usize, op: &Op) {
        let sql = match op {
            Op::InsertLoan(k, a) => format!("INSERT OR REPLACE INTO loans(id, amount) VALUES ('{}', {a})", LOANS[*k]),
            Op::UpdateLoan(k, a, n) => format!(
                "UPDATE loans SET amount = {a}{} WHERE id = '{}'",
                n.as_ref().map(|n| format!(", note = '{n}'")).unwrap_or_default(),
                LOANS[*k]
            ),
            Op::DeleteLoan(k) => format!("DELETE FROM loans WHERE id = '{}'", LOANS[*k]),
            Op::InsertPayment(q, l, a) => {
                format!("INSERT OR REPLACE INTO payments VALUES ('{}', '{}', {a})", PAYMENTS[*q], LOANS[*l])
            }
            Op::UpdatePayment(q, a) => format!("UPDATE payments SET amount = {a} WHERE id = '{}'", PAYMENTS[*q]),
            Op::DeletePayment(q) => format!("DELETE FROM payments WHERE id = '{}'", PAYMENTS[*q]),
            Op::AddColumn => {
                self.add_column(p);
                self.trace.push(format!("P{p} adds loans.tag"));
                return;
            }
            Op::Tag(k, t) if self.altered[p] => format!("UPDATE loans SET tag = '{t}' WHERE id = '{}'", LOANS[*k]),
            Op::Tag(..) => return,
        };
        let r = self.peers[p].conn.execute_batch(&sql);
        self.trace.push(format!("P{p}: {sql}{}", r.err().map(|e| format!("  -- refused: {e}")).unwrap_or_default()));
    }

    fn send(&mut self, from: usize, to: usize, limit: i64) -> Result<bool, String> {
        let (batch, res) = sync_once(&self.peers[from], &self.peers[to], limit);
        let b: Json = serde_json::from_str(&batch).unwrap();
        let n = b["changes"].as_array().map_or(0, |c| c.len());
        match res {
            Ok(r) => {
                let accepted = r["accepted"].as_i64().unwrap_or(0);
                let conflicts: Vec<String> = r["conflicts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| format!("{}:{}:{}:{}", c["kind"], c["table_name"], c["record_id"], c["status"]))
                    .collect();
                if n > 0 {
                    self.trace
                        .push(format!("P{from} -> P{to}: {n} sent, {accepted} accepted, conflicts {conflicts:?}"));
                    if std::env::var("LIFE_DEBUG").is_ok() {
                        eprintln!(
                            "P{from} -> P{to}: {}",
                            b["changes"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|c| format!(
                                    "\n   {}:{} {} {} {} {} {} res={}",
                                    &c["device_id"].as_str().unwrap()[..4],
                                    c["version"],
                                    c["table_name"],
                                    c["operation"],
                                    c["record_id"],
                                    c["change_data"],
                                    c["bases"],
                                    c["resolution"]
                                ))
                                .collect::<String>()
                        );
                        for c in self.peers[to].conflicts() {
                            eprintln!("   P{to} conflict {:?}", c);
                        }
                        eprintln!("   P{to} rows {:?}", self.peers[to].snapshot(&["loans", "payments"]));
                    }
                }
                Ok(accepted > 0)
            }
            Err(e) => {
                let shown: Vec<String> = b["changes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| {
                        format!(
                            "{} {} {} {} {}",
                            c["table_name"], c["operation"], c["record_id"], c["change_data"], c["bases"]
                        )
                    })
                    .collect();
                let here = self.peers[to].snapshot(&["loans", "payments"]);
                self.fail(format!(
                    "P{from} -> P{to}: sync_apply failed: {e}\n  batch: {shown:#?}\n  P{to} holds {here:?}"
                ))
            }
        }
    }

    /// A person settles pending conflict `id` on `p`: `choice` if the database takes it, else
    /// the other side.
    fn settle(&mut self, p: usize, id: i64, choice: u8) -> Result<(), String> {
        let first = if choice == 0 { "local" } else { "remote" };
        let second = if choice == 0 { "remote" } else { "local" };
        for c in [first, second] {
            match self.peers[p].resolve(id, c) {
                Ok(s) => {
                    self.trace.push(format!("P{p} resolves conflict {id} with {c}: {s}"));
                    return Ok(());
                }
                Err(e) => self.trace.push(format!("P{p} cannot resolve conflict {id} with {c}: {e}")),
            }
        }
        self.fail(format!("P{p}: conflict {id} can be resolved neither way"))
    }
}

fn run(c: &Case) -> Result<(), String> {
    let n = c.devices.len();
    let mut life = Life {
        peers: (0..n).map(|i| Peer::new(&format!("P{i}"), SCHEMA)).collect(),
        joined: vec![false; n],
        altered: vec![false; n],
        strategies: (STRATS[c.strategies.0], STRATS[c.strategies.1]),
        trace: Vec::new(),
    };
    let mut choices = c.choices.iter().cycle();
    for (i, step) in c.steps.iter().enumerate() {
        for (p, &(fk, at)) in c.devices.iter().enumerate() {
            if at == i && !life.joined[p] {
                if life.altered.iter().any(|&a| a) {
                    life.add_column(p);
                }
                life.join(p, fk);
            }
        }
        match step {
            Step::Write(p, op) if life.joined[*p] => life.write(*p, op),
            Step::Send { from, to, limit } if from != to && life.joined[*from] && life.joined[*to] => {
                life.send(*from, *to, *limit)?;
            }
            Step::Settle(p, k) if life.joined[*p] => {
                let pending = life.peers[*p].pending();
                if !pending.is_empty() {
                    let id = pending[k % pending.len()];
                    life.settle(*p, id, *choices.next().unwrap())?;
                }
            }
            _ => {}
        }
    }
    // The end: everyone joins and has the app's current schema; exchange until quiet, people
    // settle what is pending, again until nothing is pending and nothing moves.
    for (p, &(fk, _)) in c.devices.iter().enumerate() {
        if !life.joined[p] {
            if life.altered.iter().any(|&a| a) {
                life.add_column(p);
            }
            life.join(p, fk);
        }
    }
    if life.altered.iter().any(|&a| a) {
        for p in 0..n {
            life.add_column(p);
        }
    }
    for round in 0..30 {
        let mut moved = true;
        let mut passes = 0;
        while moved {
            moved = false;
            passes += 1;
            if passes > 50 {
                return life.fail("no quiet after 50 passes".into());
            }
            for a in 0..n {
                for b in 0..n {
                    if a != b {
                        loop {
                            let more = life.send(a, b, 1000)?;
                            moved |= more;
                            if !more {
                                break;
                            }
                        }
                    }
                }
            }
        }
        let mut settled = false;
        for p in 0..n {
            for id in life.peers[p].pending() {
                life.settle(p, id, *choices.next().unwrap())?;
                settled = true;
            }
        }
        if !settled {
            return check(&life);
        }
        if round == 29 {
            return life.fail("conflicts keep coming after 30 rounds of settling".into());
        }
    }
    unreachable!()
}

fn check(life: &Life) -> Result<(), String> {
    let d0 = life.peers[0].json("SELECT sync_digest()");
    let s0 = life.peers[0].snapshot(&["loans", "payments"]);
    for (p, peer) in life.peers.iter().enumerate() {
        let v = peer.verify();
        if v["ok"] != true {
            return life.fail(format!("P{p}: sync_verify() = {v}"));
        }
        let d = peer.json("SELECT sync_digest()");
        let s = peer.snapshot(&["loans", "payments"]);
        if d != d0 || s != s0 {
            return life.fail(format!("P{p} differs from P0:\n  P0 {d0}\n     {s0:?}\n  P{p} {d}\n     {s:?}"));
        }
    }
    Ok(())
}

fn property(alter: bool) {
    let mut runner = proptest::test_runner::TestRunner::new(property_config());
    if let Err(e) = runner.run(&case(alter), |c| run(&c).map_err(TestCaseError::fail)) {
        panic!("{e}");
    }
}

#[test]
fn converges_with_foreign_keys_constraints_and_late_joiners() {
    property(false);
}

#[test]
fn converges_with_a_column_added_on_some_devices_first() {
    property(true);
}

/// Cases the property found, kept as they were found.
#[test]
fn found_a_batch_failed_on_a_foreign_key_with_remote_wins() {
    let c = Case {
        devices: vec![(true, 0), (true, 2)],
        strategies: (2, 2),
        steps: vec![
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(1, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(2, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertPayment(0, 0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertPayment(0, 0, 0)),
            Step::Write(0, Op::InsertPayment(0, 0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(1, Op::InsertLoan(2, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertPayment(0, 0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertPayment(0, 1, 0)),
            Step::Write(1, Op::InsertLoan(0, 0)),
            Step::Write(1, Op::InsertLoan(1, 1)),
            Step::Write(0, Op::DeleteLoan(2)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Send { from: 1, to: 0, limit: 1000 },
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Send { from: 0, to: 0, limit: 1000 },
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertPayment(0, 0, 0)),
            Step::Write(0, Op::InsertPayment(0, 2, 0)),
            Step::Send { from: 0, to: 0, limit: 1000 },
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(2, 0)),
            Step::Write(0, Op::UpdateLoan(0, 0, Some("b".to_string()))),
            Step::Write(0, Op::UpdateLoan(1, 2, None::<String>)),
        ],
        choices: vec![1, 1, 0, 0, 1, 0, 0, 0],
    };
    run(&c).unwrap();
}

#[test]
fn found_a_constraint_conflict_closed_by_a_resolution_it_refuses() {
    let c = Case {
        devices: vec![(false, 0), (false, 0), (true, 0)],
        strategies: (1, 2),
        steps: vec![
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Write(0, Op::UpdatePayment(0, 0)),
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertPayment(2, 2, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(1, Op::InsertPayment(1, 0, 0)),
            Step::Write(1, Op::InsertPayment(2, 1, 0)),
            Step::Send { from: 0, to: 0, limit: 1000 },
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Send { from: 0, to: 0, limit: 1000 },
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
        ],
        choices: vec![0, 0, 0, 0, 0, 0, 0, 0],
    };
    run(&c).unwrap();
}

#[test]
fn found_resolutions_of_a_deleted_payment_that_never_end() {
    let c = Case {
        devices: vec![(true, 0), (false, 0)],
        strategies: (1, 3),
        steps: vec![
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(2, 0)),
            Step::Write(0, Op::UpdatePayment(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(2, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Send { from: 1, to: 0, limit: 1000 },
            Step::Write(0, Op::DeleteLoan(2)),
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Write(1, Op::InsertPayment(1, 0, 0)),
            Step::Write(0, Op::InsertLoan(2, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertPayment(2, 0, 0)),
            Step::Write(0, Op::InsertLoan(2, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(2, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(2, 0)),
            Step::Write(0, Op::InsertLoan(2, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Write(0, Op::InsertLoan(2, 0)),
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(2, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Send { from: 0, to: 0, limit: 1000 },
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Write(0, Op::InsertLoan(2, 0)),
            Step::Write(0, Op::InsertLoan(2, 0)),
            Step::Write(0, Op::DeletePayment(2)),
            Step::Write(0, Op::InsertLoan(2, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(1, Op::InsertPayment(0, 0, 0)),
            Step::Write(0, Op::UpdatePayment(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::UpdatePayment(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertPayment(0, 0, 1)),
            Step::Send { from: 0, to: 1, limit: 1000 },
            Step::Send { from: 0, to: 0, limit: 1000 },
            Step::Write(1, Op::InsertPayment(2, 1, 0)),
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Write(0, Op::InsertLoan(0, 0)),
        ],
        choices: vec![0, 0, 0, 1, 0, 0, 0, 0],
    };
    run(&c).unwrap();
}

#[test]
fn found_resolutions_after_a_column_was_added_that_never_end() {
    let c = Case {
        devices: vec![(true, 0), (false, 0)],
        strategies: (1, 3),
        steps: vec![
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::UpdatePayment(0, 0)),
            Step::Write(0, Op::UpdatePayment(0, 0)),
            Step::Send { from: 0, to: 0, limit: 1000 },
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(1, Op::InsertPayment(1, 2, 0)),
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(1, 0)),
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Send { from: 0, to: 1, limit: 1000 },
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Send { from: 0, to: 0, limit: 1000 },
            Step::Send { from: 0, to: 0, limit: 1000 },
            Step::Write(0, Op::InsertPayment(1, 0, 0)),
            Step::Write(1, Op::DeleteLoan(0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::DeletePayment(1)),
            Step::Send { from: 0, to: 1, limit: 1000 },
            Step::Write(0, Op::UpdateLoan(1, 0, None::<String>)),
            Step::Write(0, Op::InsertPayment(0, 0, 0)),
            Step::Send { from: 1, to: 0, limit: 1 },
            Step::Write(0, Op::InsertLoan(1, 0)),
            Step::Write(0, Op::InsertPayment(0, 1, 0)),
            Step::Write(1, Op::UpdatePayment(0, 0)),
            Step::Send { from: 1, to: 0, limit: 1000 },
            Step::Write(0, Op::InsertLoan(1, 0)),
            Step::Write(0, Op::DeletePayment(0)),
            Step::Write(0, Op::InsertLoan(1, 0)),
            Step::Write(0, Op::InsertLoan(1, 0)),
            Step::Write(0, Op::InsertLoan(1, 0)),
            Step::Write(0, Op::InsertPayment(1, 1, 2)),
            Step::Write(0, Op::InsertLoan(1, 0)),
            Step::Write(0, Op::InsertLoan(1, 0)),
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Send { from: 0, to: 0, limit: 1000 },
            Step::Write(0, Op::InsertLoan(1, 0)),
            Step::Write(0, Op::InsertLoan(1, 0)),
            Step::Write(1, Op::InsertPayment(1, 0, 0)),
            Step::Send { from: 0, to: 1, limit: 1000 },
            Step::Write(0, Op::InsertLoan(1, 0)),
            Step::Write(1, Op::InsertPayment(0, 0, 0)),
            Step::Write(0, Op::UpdateLoan(0, 0, None::<String>)),
            Step::Write(0, Op::InsertLoan(1, 0)),
            Step::Write(0, Op::InsertLoan(1, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::InsertLoan(0, 0)),
            Step::Write(0, Op::DeleteLoan(0)),
        ],
        choices: vec![0, 0, 0, 0, 0, 1, 0, 1],
    };
    run(&c).unwrap();
}
