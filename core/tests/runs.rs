//! Owns tests of `sync_runs` (where each origin's changes sit in the log): it always matches the
//! log, old databases are upgraded to it, and a log changed by hand is reported, not misread.
mod common;

use common::*;

/// The runs the log itself implies: (device, first version, first id, count), in order.
fn runs_of_log(p: &Peer) -> Vec<(String, i64, i64, i64)> {
    let mut stmt = p
        .conn
        .prepare("SELECT device_id, version, id FROM sync_log WHERE version IS NOT NULL ORDER BY device_id, version")
        .unwrap();
    let rows: Vec<(String, i64, i64)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect();
    let mut out: Vec<(String, i64, i64, i64)> = Vec::new();
    for (d, v, id) in rows {
        match out.last_mut() {
            Some(run) if run.0 == d && run.1 + run.3 == v && run.2 + run.3 == id => run.3 += 1,
            _ => out.push((d, v, id, 1)),
        }
    }
    out
}

fn stored_runs(p: &Peer) -> Vec<(String, i64, i64, i64)> {
    let mut stmt =
        p.conn.prepare("SELECT device_id, version, id, count FROM sync_runs ORDER BY device_id, version").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap().map(Result::unwrap).collect()
}

fn assert_runs_match(p: &Peer) {
    assert_eq!(stored_runs(p), runs_of_log(p), "{p:?}: sync_runs differs from the log");
    assert_eq!(p.verify()["ok"], true, "{p:?}: {}", p.verify());
}

/// A, C and B write; B receives A's and C's changes in small interleaved pages between its
/// own writes (some of which change nothing and leave gaps in the log's ids), resolves a
/// conflict, then relays everything to D.
fn interleaved() -> (Peer, Peer, Peer, Peer) {
    let a = Peer::standard("A", "timestamp_wins", "manual");
    let b = Peer::standard("B", "timestamp_wins", "manual");
    let c = Peer::standard("C", "timestamp_wins", "manual");
    // D sets no strategy: it takes up the others' `manual` setting with everything else from B.
    let d = Peer::standard("D", "timestamp_wins", "timestamp_wins");
    for i in 0..30 {
        a.exec(&format!("INSERT INTO t1 VALUES ('a{i}', {i}, 'x', NULL)"));
        c.exec(&format!("INSERT INTO t1 VALUES ('c{i}', {i}, 'y', NULL)"));
    }
    a.exec("INSERT INTO t2 VALUES ('k', 1, 'from a', NULL)");
    c.exec("INSERT INTO t2 VALUES ('k', 1, 'from c', NULL)");
    for round in 0..8 {
        b.exec(&format!("INSERT INTO t1 VALUES ('b{round}', {round}, 'z', NULL)"));
        b.exec(&format!("UPDATE t1 SET a = a WHERE id = 'b{round}'")); // changes nothing: dropped
        sync_once(&a, &b, 4).1.unwrap();
        sync_once(&c, &b, 3).1.unwrap();
        b.seal();
    }
    quiet(&[&a, &b, &c]);
    for id in b.pending() {
        b.resolve(id, "remote").unwrap();
    }
    quiet(&[&a, &b, &c]);
    sync(&b, &d);
    (a, b, c, d)
}

#[test]
fn runs_match_the_log_through_interleaved_applies_seals_resolutions_and_relays() {
    let (a, b, c, d) = interleaved();
    for p in [&a, &b, &c, &d] {
        assert_runs_match(p);
    }
    // B's log interleaves three origins: more than one run each, fewer runs than changes.
    let runs = stored_runs(&b);
    assert!(runs.len() > 3 && (runs.len() as i64) < b.int("SELECT count(*) FROM sync_log"), "{runs:?}");
    // D got everything from B alone, in B's order, as one run per stretch of B's log.
    assert_eq!(d.snapshot(&["t1", "t2"]), b.snapshot(&["t1", "t2"]));
    assert_eq!(d.vector(), b.vector());
    assert_eq!(d.int("SELECT count(*) FROM sync_log"), b.int("SELECT count(*) FROM sync_log"));
}

#[test]
fn a_database_made_with_the_origin_index_is_upgraded_on_its_next_use() {
    let (a, b, _c, d) = interleaved();
    let before = stored_runs(&b);
    // What an earlier peersync left: no sync_runs, the (device_id, version) index, format 1.
    b.exec(
        "DROP TABLE sync_runs;
         CREATE UNIQUE INDEX sync_log_origin ON sync_log(device_id, version) WHERE version IS NOT NULL;
         UPDATE sync_state SET value = 1 WHERE key = 'format';",
    );
    let vector = b.vector(); // any use upgrades
    assert_eq!(b.int("SELECT value FROM sync_state WHERE key = 'format'"), 6);
    assert_eq!(b.int("SELECT count(*) FROM sqlite_master WHERE name = 'sync_log_origin'"), 0);
    assert_eq!(stored_runs(&b), before);
    assert_runs_match(&b);
    // And it syncs on: new changes on both sides reach the others.
    a.exec("INSERT INTO t1 VALUES ('after', 1, 2, 3)");
    b.exec("INSERT INTO t1 VALUES ('after b', 1, 2, 3)");
    quiet(&[&a, &b, &d]);
    assert_ne!(b.vector(), vector);
    assert_eq!(a.snapshot(&["t1", "t2"]), b.snapshot(&["t1", "t2"]));
    assert_eq!(d.snapshot(&["t1", "t2"]), b.snapshot(&["t1", "t2"]));
    assert_runs_match(&b);
}

/// Format 2 (before introductions and waiting changes): its next use adds what formats 3 and 4 have.
#[test]
fn a_format_2_database_gains_introductions_and_waiting_on_its_next_use() {
    let a = Peer::standard("A", "timestamp_wins", "timestamp_wins");
    a.exec("INSERT INTO t1 VALUES ('r', 1, 2, 3)");
    a.seal();
    a.exec(
        "DROP TABLE sync_introductions; DROP TABLE sync_waiting; ALTER TABLE sync_devices DROP COLUMN introduced_by;
         UPDATE sync_state SET value = 2 WHERE key = 'format';",
    );
    let status = a.json("SELECT sync_status()");
    assert_eq!(status["waiting"], serde_json::json!([]));
    assert_eq!(a.int("SELECT value FROM sync_state WHERE key = 'format'"), 6);
    assert_eq!(a.int("SELECT count(*) FROM pragma_table_info('sync_devices') WHERE name = 'introduced_by'"), 1);
    assert_eq!(a.int("SELECT count(*) FROM sqlite_master WHERE name IN ('sync_introductions', 'sync_waiting')"), 2);
    assert_runs_match(&a);
    assert_eq!(a.verify()["ok"], true);
}

/// Format 3 (before the audit and peers' health): its next use adds what format 4 has.
#[test]
fn a_format_3_database_gains_divergences_and_peers_on_its_next_use() {
    let a = Peer::standard("A", "timestamp_wins", "timestamp_wins");
    a.exec("INSERT INTO t1 VALUES ('r', 1, 2, 3)");
    a.seal();
    a.exec(
        "DROP TABLE sync_divergences; DROP TABLE sync_peers;
         ALTER TABLE sync_devices DROP COLUMN last_error; ALTER TABLE sync_devices DROP COLUMN last_error_at;
         ALTER TABLE sync_devices DROP COLUMN last_audit; ALTER TABLE sync_devices DROP COLUMN last_audit_at;
         UPDATE sync_state SET value = 3 WHERE key = 'format';",
    );
    let status = a.json("SELECT sync_status()");
    assert_eq!(status["divergences"], serde_json::json!([]));
    assert_eq!(a.int("SELECT value FROM sync_state WHERE key = 'format'"), 6);
    assert_eq!(a.int("SELECT count(*) FROM pragma_table_info('sync_devices') WHERE name LIKE 'last_%'"), 5);
    assert_eq!(a.int("SELECT count(*) FROM sqlite_master WHERE name IN ('sync_divergences', 'sync_peers')"), 2);
    assert_eq!(a.verify()["ok"], true);
}

#[test]
fn a_database_from_a_newer_peersync_is_refused_unchanged() {
    let a = Peer::standard("A", "timestamp_wins", "timestamp_wins");
    a.exec("INSERT INTO t1 VALUES ('r', 1, 2, 3)");
    a.seal();
    a.exec("UPDATE sync_state SET value = 9 WHERE key = 'format'");
    let err = a.conn.query_row("SELECT sync_changes('{}')", [], |r| r.get::<_, String>(0)).unwrap_err().to_string();
    assert!(err.contains("format 9") && err.contains("newer peersync") && err.contains("reads format 6"), "{err}");
    assert_eq!(a.int("SELECT value FROM sync_state WHERE key = 'format'"), 9);
    assert_eq!(a.int("SELECT count(*) FROM sync_runs"), 1);
}

#[test]
fn a_run_index_changed_by_hand_is_reported_and_never_exported() {
    let a = Peer::standard("A", "timestamp_wins", "timestamp_wins");
    for i in 0..5 {
        a.exec(&format!("INSERT INTO t1 VALUES ('r{i}', {i}, NULL, NULL)"));
    }
    a.seal();
    assert_runs_match(&a);
    a.exec("UPDATE sync_runs SET id = id + 1");
    let v = a.verify();
    assert_eq!(v["ok"], false, "{v}");
    assert!(v["problems"][0].as_str().unwrap().contains("is not where sync_runs says it is"), "{v}");
    let err = a.conn.query_row("SELECT sync_changes('{}')", [], |r| r.get::<_, String>(0)).unwrap_err().to_string();
    assert!(err.contains("does not hold a change where sync_runs places it"), "{err}");
    // Lookups landing on the wrong row find nothing rather than another change.
    let b = Peer::standard("B", "timestamp_wins", "timestamp_wins");
    b.exec("INSERT INTO t1 VALUES ('b', 1, NULL, NULL)");
    let res = sync_once(&b, &a, 100).1.unwrap();
    assert_eq!(res["accepted"], 1);
}

#[test]
fn logging_a_version_twice_is_refused_before_commit() {
    let a = Peer::standard("A", "timestamp_wins", "timestamp_wins");
    a.exec("INSERT INTO t1 VALUES ('r', 1, NULL, NULL)");
    a.seal();
    // Pretend this device's head is one version behind, so sealing logs version 1 again.
    a.exec(
        "UPDATE sync_vector SET version = 0 WHERE device_id = (SELECT value FROM sync_state WHERE key = 'device_id');
         INSERT INTO t1 VALUES ('s', 2, NULL, NULL);",
    );
    let log = a.int("SELECT count(*) FROM sync_log WHERE version IS NOT NULL");
    let err = a.conn.query_row("SELECT sync_seal()", [], |r| r.get::<_, i64>(0)).unwrap_err().to_string();
    assert!(err.contains("would be logged twice"), "{err}");
    assert_eq!(a.int("SELECT count(*) FROM sync_log WHERE version IS NOT NULL"), log);
    assert_eq!(stored_runs(&a).len(), 1);
}

#[test]
fn runs_missing_changes_an_earlier_build_logged_are_rebuilt_before_use() {
    let (a, b, _c, d) = interleaved();
    a.exec("INSERT INTO t1 VALUES ('late', 1, 2, 3)");
    sync(&a, &b);
    // An earlier build of peersync logged A's last changes here without knowing sync_runs.
    let a_runs = b.int(&format!("SELECT count(*) FROM sync_runs WHERE device_id = '{}'", a.dev));
    b.exec(&format!(
        "DELETE FROM sync_runs WHERE device_id = '{}' AND version = (SELECT max(version) FROM sync_runs WHERE device_id = '{}')",
        a.dev, a.dev
    ));
    assert_eq!(b.int(&format!("SELECT count(*) FROM sync_runs WHERE device_id = '{}'", a.dev)), a_runs - 1);
    // B relays them all the same, and its runs match its log again.
    assert_eq!(sync(&b, &d), 1);
    assert_eq!(d.snapshot(&["t1", "t2"]), a.snapshot(&["t1", "t2"]));
    assert_runs_match(&b);
}
