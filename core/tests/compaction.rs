//! Owns the tests of bounded history (`sync_compact`): what every trusted device holds and
//! nothing needs leaves the log, each chain verifies from its anchor, forks are still caught,
//! a device behind an anchor is told to join by snapshot, and devices go on converging.
mod common;

use common::*;
use serde_json::Value as Json;

fn compact(p: &Peer) -> Json {
    p.json("SELECT sync_compact()")
}

fn log_rows(p: &Peer, origin: &str) -> i64 {
    p.int(&format!("SELECT count(*) FROM sync_log WHERE device_id = '{origin}'"))
}

fn sync_all(s: &[&Signer]) {
    for a in s {
        for b in s {
            if a.p.dev != b.p.dev {
                a.sync_with(b);
            }
        }
    }
}

fn assert_converged(s: &[&Signer]) {
    let first = s[0].p.snapshot(&["t1", "t2"]);
    for x in &s[1..] {
        assert_eq!(first, x.p.snapshot(&["t1", "t2"]), "{} differs from {}", x.p.name, s[0].p.name);
    }
    for x in s {
        let v = x.p.verify();
        assert_eq!(v["ok"], true, "{}: {v}", x.p.name);
    }
}

/// Edits `id`'s column `a` `n` times, each its own change.
fn edit(p: &Peer, id: &str, n: usize) {
    for i in 0..n {
        p.exec(&format!("UPDATE t1 SET a = {i} WHERE id = '{id}'"));
        p.seal();
    }
}

#[test]
fn a_row_edited_many_times_costs_constant_log_once_everyone_holds_it() {
    let [a, b, c] = mesh(["a", "b", "c"]);
    a.p.exec("INSERT INTO t1 VALUES ('r', 0, 'b', 'c'), ('s', 1, 2, 3)");
    edit(&a.p, "r", 600);
    sync_all(&[&a, &b, &c]);
    assert!(log_rows(&a.p, &a.p.dev) > 600);

    for s in [&a, &b, &c] {
        let out = compact(&s.p);
        assert_eq!(out["done"], true, "{out}");
        assert!(out["removed"].as_i64().unwrap() >= 590, "{}: {out}", s.p.name);
        // The insert (liveness and the untouched columns), the last edit of `a`, the row `s`,
        // and the head stay.
        assert!(log_rows(&s.p, &a.p.dev) <= 4, "{}: {} rows", s.p.name, log_rows(&s.p, &a.p.dev));
        let anchor = &out["anchors"].as_array().unwrap().iter().find(|x| x["device_id"] == a.p.dev.as_str()).unwrap();
        assert!(anchor["version"].as_i64().unwrap() >= 590, "{anchor}");
        // Others' chains are anchored where a holds a signature; a's own needs none.
        assert_eq!(anchor["signed"], s.p.dev != a.p.dev, "{}: {anchor}", s.p.name);
        let status = s.p.json("SELECT sync_status()");
        assert_eq!(status["log"]["compacted"], out["removed"], "{status}");
    }
    assert_converged(&[&a, &b, &c]);

    // A second compaction finds nothing more, and changes nothing.
    let before = b.p.fingerprint();
    let again = compact(&b.p);
    assert_eq!((again["removed"].as_i64(), again["done"].as_bool()), (Some(0), Some(true)), "{again}");
    assert!(before == b.p.fingerprint(), "nothing changed");

    // Life goes on: edits on every side, concurrent ones included, merge as before.
    edit(&a.p, "r", 5);
    b.p.exec("UPDATE t1 SET b = 'from b' WHERE id = 'r'");
    c.p.exec("DELETE FROM t1 WHERE id = 's'; INSERT INTO t1 VALUES ('t', 1, 1, 1)");
    sync_all(&[&a, &b, &c]);
    assert_converged(&[&a, &b, &c]);
    assert_eq!(a.p.row("t1", "id = 'r'").unwrap()[2], t("from b"));
    assert!(a.p.row("t1", "id = 's'").is_none());
    for s in [&a, &b, &c] {
        compact(&s.p);
    }
    sync_all(&[&a, &b, &c]);
    assert_converged(&[&a, &b, &c]);
}

#[test]
fn nothing_is_compacted_that_a_trusted_device_lacks() {
    let [a, b, c] = mesh(["a", "b", "c"]);
    a.p.exec("INSERT INTO t1 VALUES ('r', 0, 0, 0)");
    edit(&a.p, "r", 50);
    // c has never synced: nobody knows it holds anything.
    a.sync_with(&b);
    let before = a.p.fingerprint();
    let out = compact(&a.p);
    assert_eq!(out["removed"], 0, "{out}");
    assert!(before == a.p.fingerprint(), "a compaction that removes nothing changes nothing");
    assert_eq!(compact(&b.p)["removed"], 0);
    // Once c holds everything, it goes.
    sync_all(&[&a, &b, &c]);
    assert!(compact(&a.p)["removed"].as_i64().unwrap() >= 40);
    assert_converged(&[&a, &b, &c]);
}

#[test]
fn a_lone_device_compacts_nothing() {
    let p = Peer::standard("alone", "timestamp_wins", "timestamp_wins");
    p.exec("INSERT INTO t1 VALUES ('r', 0, 0, 0)");
    edit(&p, "r", 20);
    let before = p.fingerprint();
    let out = compact(&p);
    assert_eq!((out["removed"].as_i64(), out["done"].as_bool()), (Some(0), Some(true)), "{out}");
    assert!(before == p.fingerprint(), "nothing changed");
}

#[test]
fn a_device_behind_an_anchor_is_told_to_join_by_snapshot_and_forks_are_still_caught() {
    let [a, b] = mesh(["a", "b"]);
    a.p.exec("INSERT INTO t1 VALUES ('r', 0, 0, 0)");
    edit(&a.p, "r", 30);
    // A batch of a's early changes, as a peer with a stale view would send them again.
    let stale = a.batch_for(&b.p, 10);
    a.sync_with(&b);
    for s in [&a, &b] {
        assert!(compact(&s.p)["removed"].as_i64().unwrap() > 20);
    }
    // The stale batch: duplicates below b's anchor, taken as such (no fork, nothing changes).
    let before = (b.p.snapshot(&["t1", "t2"]), b.p.log());
    let got = peersync_core::apply(&b.p.conn, &stale).expect("duplicates below the anchor are not a fork");
    assert_eq!(got.accepted, 0);
    assert!(before == (b.p.snapshot(&["t1", "t2"]), b.p.log()), "the stale batch changed nothing");

    // A forged change above the anchor is still a fork.
    edit(&a.p, "r", 1);
    let mut forged = a.batch_for(&b.p, 10);
    a.sync_with(&b);
    forged.changes.last_mut().unwrap().hash = "ab".repeat(32);
    let err = peersync_core::apply(&b.p.conn, &forged).unwrap_err();
    assert!(err.to_string().contains("forked chain"), "{err}");
    b.p.exec(&format!("SELECT sync_release('{}')", a.p.dev));

    // A new device: a and b's history before their anchors is gone, so it is told to bootstrap.
    let [d] = mesh(["d"]);
    a.trusts(&d);
    d.trusts(&a);
    let before = a.p.log();
    let err = peersync_core::outgoing(&a.p.conn, &a.key, &vector(&d.p), 100).unwrap_err();
    assert!(matches!(err, peersync_core::Error::Compacted(_)), "{err}");
    assert!(err.to_string().contains("snapshot") && err.to_string().contains(&a.p.dev), "{err}");
    assert!(before == a.p.log());
    // And with d trusted but behind, nothing more is compacted.
    edit(&a.p, "r", 10);
    a.sync_with(&b);
    assert_eq!(compact(&a.p)["removed"], 0);
}

#[test]
fn pending_conflicts_keep_both_sides() {
    let [a, b] = mesh(["a", "b"]);
    for s in [&a, &b] {
        s.p.exec("SELECT sync_track('t1', 'manual')");
    }
    a.p.exec("INSERT INTO t1 VALUES ('r', 0, 0, 0)");
    a.sync_with(&b);
    a.p.exec("UPDATE t1 SET a = 'mine' WHERE id = 'r'");
    b.p.exec("UPDATE t1 SET a = 'theirs' WHERE id = 'r'");
    a.sync_with(&b);
    a.p.exec("INSERT INTO t1 VALUES ('z', 1, 1, 1)");
    a.sync_with(&b);
    assert_eq!(a.p.pending().len(), 1);
    for s in [&a, &b] {
        compact(&s.p);
        let c = &s.p.conflicts()[0];
        let sides: i64 = s.p.int(&format!(
            "SELECT count(*) FROM sync_log WHERE id IN (SELECT local_change FROM sync_conflicts WHERE id = {0} UNION SELECT remote_change FROM sync_conflicts WHERE id = {0})",
            c.id
        ));
        assert_eq!(sides, 2, "{}: both sides of the pending conflict stay", s.p.name);
    }
    let id = a.p.pending()[0];
    a.p.resolve(id, "local").unwrap();
    a.sync_with(&b);
    assert_converged(&[&a, &b]);
    assert_eq!(b.p.row("t1", "id = 'r'").unwrap()[1], t("mine"));
}

#[test]
fn sync_compact_takes_a_step_budget_and_refuses_a_bad_one() {
    let [a, b] = mesh(["a", "b"]);
    a.p.exec("INSERT INTO t1 VALUES ('r', 0, 0, 0)");
    edit(&a.p, "r", 2 * peersync_core::COMPACT_STEP as usize + 10);
    a.sync_with(&b);
    let one = a.p.json("SELECT sync_compact(1)");
    assert_eq!((one["steps"].as_i64(), one["done"].as_bool()), (Some(1), Some(false)), "{one}");
    assert_eq!(one["removed"].as_i64(), Some(peersync_core::COMPACT_STEP - 1), "{one}");
    assert_eq!(a.p.verify()["ok"], true);
    let rest = compact(&a.p);
    assert_eq!(rest["done"], true);
    assert_eq!(a.p.verify()["ok"], true);
    let before = a.p.fingerprint();
    for bad in ["sync_compact(-1)", "sync_compact('x')", "sync_compact(1.5)"] {
        let err = a.p.conn.query_row(&format!("SELECT {bad}"), [], |r| r.get::<_, String>(0)).unwrap_err().to_string();
        assert!(err.contains("sync_compact") && err.contains("steps"), "{bad}: {err}");
    }
    assert!(before == a.p.fingerprint(), "nothing changed");
}

fn temp(name: &str) -> String {
    let p = std::env::temp_dir().join(format!("peersync-snap-{}-{name}.db", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p.to_str().unwrap().to_string()
}

#[test]
fn a_new_device_joins_by_snapshot_after_compaction_and_then_syncs_incrementally() {
    let [a, b] = mesh(["a", "b"]);
    a.p.exec("INSERT INTO t1 VALUES ('r', 0, 0, 0), ('s', 's', 's', 's'); INSERT INTO t2 VALUES ('k', 1, 'x', NULL)");
    edit(&a.p, "r", 300);
    b.p.exec("UPDATE t1 SET b = 'b was here' WHERE id = 's'");
    sync_all(&[&a, &b]);
    for s in [&a, &b] {
        assert!(compact(&s.p)["removed"].as_i64().unwrap() > 250);
    }
    // A new device with the same tables, trusted both ways.
    let [d] = mesh(["d"]);
    for s in [&a, &b] {
        s.trusts(&d);
        d.trusts(s);
    }
    // A device the others trusted, revoked by a before the snapshot: the revocation is in
    // the log the snapshot brings, and d takes it up.
    let [z] = mesh(["z"]);
    for s in [&a, &d] {
        s.trusts(&z);
    }
    peersync_core::revoke(&a.p.conn, &z.p.dev).unwrap();
    assert!(d.authorized(&z));
    let path = temp("join");
    let taken = peersync_core::take_snapshot(&a.p.conn, &path).unwrap();
    assert_eq!(taken.rows, 3);
    // a goes on writing after the snapshot.
    a.p.exec("UPDATE t1 SET c = 'after' WHERE id = 'r'");
    let got = peersync_core::bootstrap(&d.p.conn, &path).unwrap();
    assert_eq!((got.rows, got.device_id.as_str()), (3, a.p.dev.as_str()));
    assert_eq!(d.p.verify()["ok"], true);
    assert!(!d.authorized(&z), "the revocation came with the snapshot");
    // Incremental sync from here: what a wrote since, and d's own writes, travel.
    d.p.exec("INSERT INTO t1 VALUES ('from d', 1, 2, 3)");
    sync_all(&[&a, &b, &d]);
    assert_converged(&[&a, &b, &d]);
    assert_eq!(d.p.row("t1", "id = 'r'").unwrap()[3], t("after"));
    assert_eq!(b.p.row("t1", "id = 'from d'").unwrap()[1], V::Int(1));
    // With d holding everything, compaction goes on.
    for s in [&a, &b, &d] {
        compact(&s.p);
    }
    edit(&b.p, "s", 3);
    sync_all(&[&a, &b, &d]);
    assert_converged(&[&a, &b, &d]);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_bootstrap_that_would_lose_or_forge_something_is_refused_and_changes_nothing() {
    let [a, b] = mesh(["a", "b"]);
    a.p.exec("INSERT INTO t1 VALUES ('r', 0, 0, 0)");
    edit(&a.p, "r", 20);
    a.sync_with(&b);
    compact(&a.p);
    let path = temp("refuse");
    peersync_core::take_snapshot(&a.p.conn, &path).unwrap();
    let err = peersync_core::take_snapshot(&a.p.conn, &path).unwrap_err().to_string();
    assert!(err.contains("exists"), "{err}");

    // b wrote something a's snapshot lacks: refused, b keeps it.
    b.p.exec("INSERT INTO t1 VALUES ('only b', 1, 1, 1)");
    b.p.seal();
    let before = b.p.fingerprint();
    let err = peersync_core::bootstrap(&b.p.conn, &path).unwrap_err().to_string();
    assert!(err.contains("push them"), "{err}");
    assert!(before == b.p.fingerprint(), "nothing changed");

    // A tampered snapshot (a change's data altered above the anchor) does not verify.
    let [d] = mesh(["d"]);
    a.trusts(&d);
    d.trusts(&a);
    a.p.exec("UPDATE t1 SET b = 'late' WHERE id = 'r'");
    let fresh = temp("tampered");
    peersync_core::take_snapshot(&a.p.conn, &fresh).unwrap();
    let f = rusqlite::Connection::open(&fresh).unwrap();
    let n = f
        .execute(
            "UPDATE log SET change_data = replace(change_data, 'late', 'forged') WHERE change_data LIKE '%late%'",
            [],
        )
        .unwrap();
    assert_eq!(n, 1);
    drop(f);
    d.p.seal();
    let before = d.p.fingerprint();
    let err = peersync_core::bootstrap(&d.p.conn, &fresh).unwrap_err().to_string();
    assert!(err.contains("does not verify"), "{err}");
    assert!(before == d.p.fingerprint(), "nothing changed");

    // Not a snapshot at all.
    let other = temp("other");
    rusqlite::Connection::open(&other).unwrap().execute_batch("CREATE TABLE x(y)").unwrap();
    let err = peersync_core::bootstrap(&d.p.conn, &other).unwrap_err().to_string();
    assert!(err.contains("not a peersync snapshot"), "{err}");
    assert!(before == d.p.fingerprint(), "nothing changed");
    for p in [path, fresh, other] {
        let _ = std::fs::remove_file(p);
    }
}

#[derive(Clone, Debug)]
enum Step {
    /// A write on device `d` to record `k`.
    Write(usize, usize, u8),
    /// Device `from` sends device `to` one page of what it lacks (at most 7 changes).
    Send(usize, usize),
    /// Device `d` compacts (at most `steps` steps).
    Compact(usize, i64),
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        5 => (0..3usize, 0..3usize, 0..5u8).prop_map(|(d, k, w)| Step::Write(d, k, w)),
        4 => (0..3usize, 0..3usize).prop_map(|(a, b)| Step::Send(a, b)),
        2 => (0..3usize, 1..3i64).prop_map(|(d, n)| Step::Compact(d, n)),
    ]
}

/// Random writes, partial exchanges and compactions on three devices that trust each other:
/// compaction never stops them converging, never breaks a chain, and a fourth device joining
/// by snapshot at the end (then syncing) ends up with the same rows.
#[test]
fn compaction_interleaved_with_life_converges() {
    use proptest::prelude::*;
    let mut config = common::property_config();
    config.cases = config.cases.min(48);
    let mut runner = proptest::test_runner::TestRunner::new(config);
    // Changes compacted away in the middle of the cases, all cases together.
    let midway = std::sync::atomic::AtomicI64::new(0);
    runner
        .run(&proptest::collection::vec(step(), 10..60), |steps| {
            let s = mesh(["a", "b", "c"]);
            let ids = ["k0", "k1", "k2"];
            for st in &steps {
                match *st {
                    Step::Write(d, k, w) => {
                        let id = ids[k];
                        let sql = match w {
                            0 => format!("INSERT OR REPLACE INTO t1 VALUES ('{id}', {d}, 'b{d}', NULL)"),
                            1 => format!("UPDATE t1 SET a = coalesce(a, 0) + 1 WHERE id = '{id}'"),
                            2 => format!("UPDATE t1 SET b = 'by {d}' WHERE id = '{id}'"),
                            3 => format!("DELETE FROM t1 WHERE id = '{id}'"),
                            _ => format!("INSERT OR IGNORE INTO t2 VALUES ('{id}', {d}, 'x', 'y')"),
                        };
                        s[d].p.exec(&sql);
                    }
                    Step::Send(a, b) if a != b => {
                        let batch = s[a].batch_for(&s[b].p, 7);
                        peersync_core::apply(&s[b].p.conn, &batch).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    }
                    Step::Send(..) => {}
                    Step::Compact(d, n) => {
                        let out = s[d].p.json(&format!("SELECT sync_compact({n})"));
                        midway.fetch_add(out["removed"].as_i64().unwrap(), std::sync::atomic::Ordering::Relaxed);
                        let v = s[d].p.verify();
                        prop_assert_eq!(&v["ok"], &Json::Bool(true), "{}: {}", s[d].p.name, v);
                    }
                }
            }
            let all: Vec<&Signer> = s.iter().collect();
            sync_all(&all);
            for x in &s {
                compact(&x.p);
            }
            sync_all(&all);
            let first = s[0].p.snapshot(&["t1", "t2"]);
            for x in &s {
                prop_assert_eq!(&first, &x.p.snapshot(&["t1", "t2"]), "{} differs", x.p.name);
                prop_assert_eq!(&x.p.verify()["ok"], &Json::Bool(true));
            }
            let [d] = mesh(["d"]);
            for x in &s {
                x.trusts(&d);
                d.trusts(x);
            }
            let path = temp(&format!("prop-{}", steps.len()));
            peersync_core::take_snapshot(&s[1].p.conn, &path).map_err(|e| TestCaseError::fail(e.to_string()))?;
            peersync_core::bootstrap(&d.p.conn, &path).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let _ = std::fs::remove_file(&path);
            let mut all = all;
            all.push(&d);
            sync_all(&all);
            for x in &all {
                prop_assert_eq!(&first, &x.p.snapshot(&["t1", "t2"]), "{} differs after d joined", x.p.name);
            }
            Ok(())
        })
        .unwrap();
    assert!(midway.into_inner() > 0, "the cases compacted something while devices still wrote and synced");
}

#[test]
fn a_device_compacts_for_devices_it_never_syncs_with_once_a_peer_says_what_they_hold() {
    // a — b — c: a and c never sync with each other.
    let [a, b, c] = mesh(["a", "b", "c"]);
    a.p.exec("INSERT INTO t1 VALUES ('r', 0, 0, 0)");
    edit(&a.p, "r", 40);
    for _ in 0..2 {
        a.sync_with(&b);
        b.sync_with(&c);
    }
    assert_eq!(compact(&a.p)["removed"], 0, "a does not know what c holds");
    // b tells a what it knows c holds (the sidecar does this in its hello's reply).
    let known = peersync_core::known_vectors(&b.p.conn).unwrap();
    assert!(known.contains_key(&c.p.dev), "{known:?}");
    // Not from a device a does not trust, and nothing about a itself or the teller.
    let [stranger] = mesh(["stranger"]);
    let before = a.p.fingerprint();
    peersync_core::note_known(&a.p.conn, &stranger.p.dev, &known).unwrap();
    assert!(before == a.p.fingerprint(), "a stranger's word changes nothing");
    peersync_core::note_known(&a.p.conn, &b.p.dev, &known).unwrap();
    assert!(compact(&a.p)["removed"].as_i64().unwrap() >= 30);
    edit(&a.p, "r", 3);
    for _ in 0..2 {
        a.sync_with(&b);
        b.sync_with(&c);
    }
    assert_converged(&[&a, &b, &c]);
}

#[test]
fn recovery_searches_a_compacted_peer_without_seeing_a_fork() {
    use peersync_core::{ChainSearch, Probe};
    let [a, b] = mesh(["a", "b"]);
    a.p.exec("INSERT INTO t1 VALUES ('r', 0, 0, 0)");
    edit(&a.p, "r", 300);
    a.sync_with(&b);
    compact(&b.p);
    let probe = |p: &Peer, v: &[i64]| -> Probe { peersync_core::probe(&p.conn, &a.p.dev, v).unwrap() };
    let head = a.p.own_version();
    for local_head in [head, 5] {
        // `local_head` 5: a restored copy far behind the peer's anchor.
        let mut s = ChainSearch::new(local_head);
        let mut rounds = 0;
        while !s.done() {
            let v = s.probes();
            let local = probe(&a.p, &v);
            let local = Probe { hashes: local.hashes.into_iter().filter(|(k, _)| *k <= local_head).collect(), ..local };
            s.answer(&local, &probe(&b.p, &v));
            rounds += 1;
            assert!(rounds < 20, "the search ends");
        }
        let found = s.result();
        assert_eq!(found.forked_at, None, "{local_head}: {found:?}");
        if local_head == head {
            assert_eq!(found.agreed, head, "the anchor and the chain above it agree");
        }
    }
}

#[test]
fn a_failed_compaction_shows_in_status_until_one_succeeds() {
    let [a, b] = mesh(["a", "b"]);
    a.p.exec("INSERT INTO t1 VALUES ('r', 0, 0, 0)");
    edit(&a.p, "r", 20);
    a.sync_with(&b);
    assert_eq!(a.p.json("SELECT sync_status()")["log"]["compaction_error"], Json::Null);
    // Something refuses the log's deletes (here a trigger; on a device, a full disk).
    a.p.exec("CREATE TRIGGER refuse BEFORE DELETE ON sync_log BEGIN SELECT RAISE(ABORT, 'no deletes today'); END");
    let log = a.p.log();
    let err = a.p.conn.query_row("SELECT sync_compact()", [], |r| r.get::<_, String>(0)).unwrap_err().to_string();
    assert!(err.contains("no deletes today"), "{err}");
    assert!(log == a.p.log(), "the failed step changed nothing");
    let failure = &a.p.json("SELECT sync_status()")["log"]["compaction_error"];
    assert!(failure["error"].as_str().unwrap().contains("no deletes today") && failure["at"].is_string(), "{failure}");
    a.p.exec("DROP TRIGGER refuse");
    assert!(compact(&a.p)["removed"].as_i64().unwrap() > 10);
    assert_eq!(a.p.json("SELECT sync_status()")["log"]["compaction_error"], Json::Null);
}
