//! Owns the tests of `sync_digest()`: a digest of every tracked table's rows, with the vector
//! it was taken at, equal on devices that hold the same rows and different where one differs.
mod common;

use common::*;
use serde_json::Value as Json;

fn digest(p: &Peer) -> Json {
    p.json("SELECT sync_digest()")
}

#[test]
fn devices_that_hold_the_same_rows_have_the_same_digest_whatever_the_column_order() {
    let a = Peer::new("A", "CREATE TABLE t(id TEXT PRIMARY KEY, x, y)");
    let b = Peer::new("B", "CREATE TABLE t(y, id TEXT PRIMARY KEY, x)");
    a.track("t", "timestamp_wins");
    b.track("t", "timestamp_wins");
    a.exec("INSERT INTO t VALUES ('r1', 1, 'one'), ('r2', 2.5, x'00ff'), ('r3', NULL, '')");
    b.exec("INSERT INTO t(id, x, y) VALUES ('r4', -0.0, 'four')");
    sync_pair(&a, &b);
    let (da, db) = (digest(&a), digest(&b));
    assert_eq!(da, db, "same rows, same digest");
    assert_eq!(da["vector"], a.json("SELECT sync_vector()"));
    assert_eq!(da["tables"]["t"]["rows"], 4);
    assert_eq!(da["tables"]["t"]["digest"].as_str().unwrap().len(), 64);
}

#[test]
fn a_row_that_differs_in_value_or_type_changes_the_digest_and_the_vector_does_not() {
    let a = Peer::new("A", "CREATE TABLE t(id TEXT PRIMARY KEY, x)");
    let b = Peer::new("B", "CREATE TABLE t(id TEXT PRIMARY KEY, x)");
    a.track("t", "timestamp_wins");
    b.track("t", "timestamp_wins");
    a.exec("INSERT INTO t VALUES ('r1', 1), ('r2', 'two')");
    sync_pair(&a, &b);
    let same = digest(&a);
    assert_eq!(same, digest(&b));
    // A write the triggers do not see (capture removed, then installed again): the devices
    // now differ, and nothing in the logs says so.
    for (i, change) in [
        "UPDATE t SET x = 1.0 WHERE id = 'r1'",
        "UPDATE t SET x = '1' WHERE id = 'r1'",
        "DELETE FROM t WHERE id = 'r2'",
    ]
    .iter()
    .enumerate()
    {
        let c = Peer::new(&format!("C{i}"), "CREATE TABLE t(id TEXT PRIMARY KEY, x)");
        c.track("t", "timestamp_wins");
        sync_pair(&a, &c);
        assert_eq!(digest(&c)["tables"], same["tables"]);
        c.exec("SELECT sync_untrack('t')");
        c.exec(change);
        c.track("t", "timestamp_wins");
        let d = digest(&c);
        assert_ne!(d["tables"]["t"]["digest"], same["tables"]["t"]["digest"], "{change}");
        assert_eq!(c.json("SELECT sync_vector()"), a.json("SELECT sync_vector()"), "{change}: the logs agree");
    }
}

#[test]
fn sync_digest_needs_an_initialised_database_and_lists_only_tracked_tables() {
    let p = Peer::new("A", "CREATE TABLE t(id TEXT PRIMARY KEY, x); CREATE TABLE u(id TEXT PRIMARY KEY)");
    p.track("t", "manual");
    let d = digest(&p);
    assert_eq!(d["tables"].as_object().unwrap().keys().collect::<Vec<_>>(), vec!["t"]);
    assert_eq!(d["tables"]["t"], serde_json::json!({"rows": 0, "digest": "0".repeat(64)}));
    let raw = rusqlite::Connection::open_in_memory().unwrap();
    peersync_core::register_functions(&raw).unwrap();
    let e = raw.query_row("SELECT sync_digest()", [], |r| r.get::<_, String>(0)).unwrap_err().to_string();
    assert!(e.contains("sync_init"), "{e}");
}

/// Two devices that agree on the log; `b` then takes a write its triggers do not see.
fn silently_apart(rows: usize) -> (Peer, Peer) {
    let a = Peer::new("A", "CREATE TABLE t(id TEXT PRIMARY KEY, x); CREATE TABLE u(id INTEGER PRIMARY KEY, y)");
    let b = Peer::new("B", "CREATE TABLE t(id TEXT PRIMARY KEY, x); CREATE TABLE u(id INTEGER PRIMARY KEY, y)");
    for p in [&a, &b] {
        p.track("t", "timestamp_wins");
        p.track("u", "manual");
    }
    for i in 0..rows {
        a.exec(&format!("INSERT INTO t VALUES ('r{i}', {i}); INSERT INTO u VALUES ({i}, 'y{i}')"));
    }
    sync_pair(&a, &b);
    b.exec("SELECT sync_untrack('t')");
    b.exec("UPDATE t SET x = -1 WHERE id = 'r7'");
    b.track("t", "timestamp_wins");
    (a, b)
}

#[test]
fn the_audit_records_a_divergence_at_equal_vectors_and_clears_it_once_the_rows_agree() {
    let (a, b) = silently_apart(20);
    let (ours, theirs) = (peersync_core::audit(&b.conn).unwrap(), peersync_core::audit(&a.conn).unwrap());
    assert_eq!(ours.vector, theirs.vector);
    let outcome = peersync_core::compare_audit(&b.conn, &ours, &theirs).unwrap();
    assert_eq!(outcome, peersync_core::Outcome::Diverged { tables: vec!["t".into()], skipped: vec![] });
    let status = b.json("SELECT sync_status()");
    let d = &status["divergences"][0];
    assert_eq!((d["peer"].as_str(), d["table"].as_str()), (Some(&*theirs.device_id), Some("t")));
    assert_eq!(d["local_digest"], ours.tables["t"].digest.as_str());
    assert_eq!(status["divergences"].as_array().unwrap().len(), 1, "u is the same");
    // The row is written again, captured this time: the next audit finds them the same.
    b.exec("UPDATE t SET x = 7 WHERE id = 'r7'");
    sync_pair(&a, &b);
    let (ours, theirs) = (peersync_core::audit(&b.conn).unwrap(), peersync_core::audit(&a.conn).unwrap());
    assert!(matches!(
        peersync_core::compare_audit(&b.conn, &ours, &theirs).unwrap(),
        peersync_core::Outcome::Same { .. }
    ));
    assert_eq!(b.json("SELECT sync_status()")["divergences"], serde_json::json!([]));
}

#[test]
fn a_table_with_a_pending_conflict_or_changes_that_differ_is_not_called_diverged() {
    let (a, b) = silently_apart(10);
    a.exec("UPDATE u SET y = 'a' WHERE id = 1");
    b.exec("UPDATE u SET y = 'b' WHERE id = 1");
    let (ours, theirs) = (peersync_core::audit(&b.conn).unwrap(), peersync_core::audit(&a.conn).unwrap());
    assert!(matches!(
        peersync_core::compare_audit(&b.conn, &ours, &theirs).unwrap(),
        peersync_core::Outcome::NotComparable { .. }
    ));
    sync_pair(&a, &b);
    assert_eq!(b.pending().len(), 1, "a manual conflict on u");
    let (ours, theirs) = (peersync_core::audit(&b.conn).unwrap(), peersync_core::audit(&a.conn).unwrap());
    assert_eq!(ours.pending.get("u"), Some(&1));
    let outcome = peersync_core::compare_audit(&b.conn, &ours, &theirs).unwrap();
    assert_eq!(outcome, peersync_core::Outcome::Diverged { tables: vec!["t".into()], skipped: vec!["u".into()] });
}

#[test]
fn range_digests_narrow_a_difference_down_to_its_record() {
    let (a, b) = silently_apart(500);
    let (mut todo, mut found, mut rounds) = (vec![String::new()], Vec::new(), 0);
    while let Some(prefix) = todo.pop() {
        rounds += 1;
        let (x, y) = (
            peersync_core::digest_range(&a.conn, "t", &prefix).unwrap(),
            peersync_core::digest_range(&b.conn, "t", &prefix).unwrap(),
        );
        assert_eq!(x.vector, y.vector);
        match (&x.rows, &y.rows) {
            (Some(r), Some(s)) => found.extend(r.keys().filter(|k| r.get(*k) != s.get(*k)).cloned()),
            _ => todo.extend(x.ranges.keys().filter(|p| x.ranges.get(*p) != y.ranges.get(*p)).cloned()),
        }
    }
    assert_eq!(found, vec!["'r7'".to_string()]);
    assert!(rounds <= 4, "{rounds} rounds for 500 rows");
    let top = peersync_core::digest_range(&a.conn, "t", "").unwrap();
    assert_eq!(top.ranges.values().map(|r| r.rows).sum::<i64>(), 500);
    assert!(top.rows.is_none(), "500 rows are too many to list");
    for bad in ["G", "0".repeat(64).as_str(), "A"] {
        let e = peersync_core::digest_range(&a.conn, "t", bad).unwrap_err().to_string();
        assert!(e.contains("lowercase hex"), "{e}");
    }
    let e = peersync_core::digest_range(&a.conn, "nope\"; DROP TABLE t; --", "").unwrap_err().to_string();
    assert!(e.contains("not tracked"), "{e}");
    assert_eq!(a.int("SELECT count(*) FROM t"), 500);
}
