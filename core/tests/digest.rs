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
