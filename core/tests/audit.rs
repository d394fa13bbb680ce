//! Owns the tests of the audits of one database: `sync_hash` (a row's hash computed now) and
//! `sync_verify` (every hash along every origin's chain).
mod common;

use common::*;

fn peer_with_history() -> (Peer, Peer) {
    let (a, b) = (
        Peer::standard("A", "timestamp_wins", "timestamp_wins"),
        Peer::standard("B", "timestamp_wins", "timestamp_wins"),
    );
    a.exec("INSERT INTO t1 VALUES ('x', 1, 2, 3); UPDATE t1 SET a = 9 WHERE id = 'x'; INSERT INTO t1 VALUES ('y', 1, 2, 3)");
    b.exec("INSERT INTO t1 VALUES ('z', 1, 2, 3)");
    sync(&a, &b);
    b.exec("DELETE FROM t1 WHERE id = 'x'");
    b.seal();
    (a, b)
}

#[test]
fn sync_hash_is_each_row_s_hash_along_its_chain() {
    let (_, b) = peer_with_history();
    let rows = b.log();
    assert!(rows.len() >= 5);
    for r in &rows {
        let h = b.str(&format!("SELECT sync_hash({})", r.id));
        assert_eq!(Some(h), r.hash.clone(), "row {} ({:?}:{:?})", r.id, r.device_id, r.version);
    }
    let e = b.conn.query_row("SELECT sync_hash(9999)", [], |r| r.get::<_, String>(0)).unwrap_err().to_string();
    assert!(e.contains("no sync_log row with id 9999"), "{e}");
    b.exec("INSERT INTO t1 VALUES ('w', 1, 2, 3)");
    let last: i64 = b.int("SELECT max(id) FROM sync_log");
    let e =
        b.conn.query_row(&format!("SELECT sync_hash({last})"), [], |r| r.get::<_, String>(0)).unwrap_err().to_string();
    assert!(e.contains("not sealed yet"), "{e}");
}

#[test]
fn sync_verify_checks_every_row_and_names_what_differs() {
    let (_, b) = peer_with_history();
    let n = b.int("SELECT count(*) FROM sync_log");
    let v = b.verify();
    assert_eq!((v["ok"].as_bool(), v["checked"].as_i64()), (Some(true), Some(n)), "{v}");
    // A row changed by hand: its hash no longer matches, and verify says which.
    let id = b.int("SELECT min(id) FROM sync_log WHERE operation = 'UPDATE'");
    b.exec(&format!("UPDATE sync_log SET change_data = '{{\"a\":10}}' WHERE id = {id}"));
    let v = b.verify();
    assert_eq!(v["ok"], false);
    assert_eq!(v["failed"], serde_json::json!([id]));
    assert!(v["problems"][0].as_str().unwrap().contains("does not match its hash"), "{v}");
    assert_eq!(v["checked"].as_i64(), Some(n));
}
