//! Owns deterministic tests of each merge outcome of DESIGN.md "Merging and conflicts" (and model.py): columns, winner rule, liveness, strategies, manual resolution, HLC.
mod common;

use common::*;
use serde_json::{json, Value as Json};

// ------------------------------------------------------------------ columns and the winner rule

#[test]
fn concurrent_edits_to_different_columns_both_survive() {
    let (a, b) = pair_with_row("timestamp_wins");
    a.exec("UPDATE t1 SET a = 'A' WHERE id = 'r'");
    b.exec("UPDATE t1 SET b = 'B' WHERE id = 'r'");
    sync_pair(&a, &b);
    sync_pair(&a, &b);
    let want = Some(vec![t("r"), t("A"), t("B"), V::Int(0)]);
    assert_eq!(row_r(&a), want);
    assert_eq!(row_r(&b), want);
    assert!(a.conflicts().is_empty(), "A recorded {:?}", a.conflicts());
    assert!(b.conflicts().is_empty(), "B recorded {:?}", b.conflicts());
    assert_same(&a, &b);
}

#[test]
fn same_column_greater_timestamp_wins_and_both_sides_are_recorded() {
    let (a, b) = pair_with_row("timestamp_wins");
    b.set_clock_offset(HOUR_US); // B's edit is the later one
    a.exec("UPDATE t1 SET a = 'A' WHERE id = 'r'");
    b.exec("UPDATE t1 SET a = 'B' WHERE id = 'r'");
    let (wa, wb) = (last_own(&a), last_own(&b));
    assert!(wb.timestamp > wa.timestamp);
    sync_pair(&a, &b);
    assert_eq!(row_r(&a), Some(vec![t("r"), t("B"), V::Int(0), V::Int(0)]));
    assert_same(&a, &b);

    // A received the winning write: recorded as resolved, with both sides' data and versions.
    let ca = a.conflicts();
    assert_eq!(ca.len(), 1, "A: {ca:?}");
    let c = &ca[0];
    assert_eq!((c.table_name.as_str(), c.record_id.as_str(), c.status.as_str()), ("t1", "'r'", "resolved"));
    assert_eq!(c.columns, json!(["a"]));
    assert_eq!(c.local_data, json!({"a": "A"}));
    assert_eq!(c.remote_data, json!({"a": "B"}));
    assert_eq!(c.local_device_id.as_deref(), Some(a.dev.as_str()));
    assert_eq!(c.local_version, wa.version);
    assert_eq!(c.remote_device_id.as_deref(), Some(b.dev.as_str()));
    assert_eq!(c.remote_version, wb.version);
    assert!(!c.resolution.is_null(), "an automatic conflict is recorded with its resolution");

    // B received the losing write: recorded too, the other way round.
    let cb = b.conflicts();
    assert_eq!(cb.len(), 1, "B: {cb:?}");
    let c = &cb[0];
    assert_eq!(c.status, "resolved");
    assert_eq!(c.local_data, json!({"a": "B"}));
    assert_eq!(c.remote_data, json!({"a": "A"}));
    assert_eq!((c.local_version, c.remote_version), (wb.version, wa.version));

    // The losing value is not lost: it stays in both logs.
    for p in [&a, &b] {
        assert!(
            p.log().iter().any(|r| r.change_data.as_deref() == Some(r#"{"a":"A"}"#)),
            "{p:?} lost the losing write"
        );
    }
}

/// Equal timestamps: the greater device id wins (crafted changes with an exact timestamp).
#[test]
fn timestamp_tie_is_broken_by_device_id() {
    for (forger, wins) in [("ffffffffffffffffffffffffffffffff", true), ("00000000000000000000000000000000", false)] {
        let b = Peer::standard("B", "timestamp_wins", "timestamp_wins");
        b.exec("INSERT INTO t1 VALUES ('r', 0, 0, 0)");
        b.exec("UPDATE t1 SET a = 'B' WHERE id = 'r'");
        let log = b.log();
        let (ins, upd) = (&log[0], &log[1]);
        let mut f = Forger::new(forger);
        let base = reference(ins);
        let ch = f.change(
            "t1",
            "'r'",
            "UPDATE",
            r#"{"a":"F"}"#,
            &json!({"live": [base], "cols": {"a": [base]}}).to_string(),
            upd.timestamp.unwrap(),
            false,
        );
        let res = b.apply(&batch_of(forger, vec![ch])).unwrap();
        assert_eq!(res["accepted"], 1);
        let want = if wins { t("F") } else { t("B") };
        assert_eq!(row_r(&b).unwrap()[1], want, "forger {forger} vs {}", b.dev);
        let c = b.conflicts();
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].status, "resolved");
    }
}

// ------------------------------------------------------------------ liveness

#[test]
fn delete_vs_update_delete_wins_whichever_is_later() {
    for delete_later in [false, true] {
        let (a, b) = pair_with_row("timestamp_wins");
        if delete_later {
            a.set_clock_offset(HOUR_US);
        } else {
            b.set_clock_offset(HOUR_US);
        }
        a.exec("DELETE FROM t1 WHERE id = 'r'");
        b.exec("UPDATE t1 SET a = 'B' WHERE id = 'r'");
        let (del, upd) = (last_own(&a), last_own(&b));
        sync_pair(&a, &b);
        assert_eq!(row_r(&a), None, "delete_later={delete_later}");
        assert_eq!(row_r(&b), None, "delete_later={delete_later}");
        assert_same(&a, &b);
        for (p, local, remote) in [(&a, &del, &upd), (&b, &upd, &del)] {
            let c = p.conflicts();
            assert_eq!(c.len(), 1, "{p:?} delete_later={delete_later}: {c:?}");
            let c = &c[0];
            assert_eq!(c.status, "resolved", "{c:?}");
            assert_eq!(c.record_id, "'r'");
            assert_eq!(
                (c.local_device_id.as_deref(), c.local_version),
                (local.device_id.as_deref(), local.version),
                "{c:?}"
            );
            assert_eq!(
                (c.remote_device_id.as_deref(), c.remote_version),
                (remote.device_id.as_deref(), remote.version),
                "{c:?}"
            );
        }
        // The update's value is not lost: B's update stays in A's log.
        assert!(a.log().iter().any(|r| r.change_data.as_deref() == Some(r#"{"a":"B"}"#)));
        // Settled by the rule, whichever side saw which first: no winner by timestamp.
        for p in [&a, &b] {
            assert_eq!(p.conflicts()[0].resolution, json!({"strategy": "delete_wins"}), "{p:?}");
        }
    }
}

/// A delete that saw every column's writer, where the columns were last written by different
/// changes, meets no update it did not see: no conflict.
#[test]
fn a_delete_that_saw_every_column_writer_is_no_conflict() {
    let (a, b) = pair_with_row("manual");
    a.exec("UPDATE t1 SET a = 'A1' WHERE id = 'r'");
    sync(&a, &b);
    b.exec("UPDATE t1 SET b = 'B1' WHERE id = 'r'");
    sync(&b, &a);
    b.exec("DELETE FROM t1 WHERE id = 'r'");
    sync(&b, &a);
    assert!(a.conflicts().is_empty(), "{:?}", a.conflicts());
    assert_eq!(row_r(&a), None);
    assert_same(&a, &b);
}

#[test]
fn delete_vs_delete_agrees_without_conflict() {
    let (a, b) = pair_with_row("timestamp_wins");
    a.exec("DELETE FROM t1 WHERE id = 'r'");
    b.exec("DELETE FROM t1 WHERE id = 'r'");
    sync_pair(&a, &b);
    assert_eq!(row_r(&a), None);
    assert_eq!(row_r(&b), None);
    assert!(a.conflicts().is_empty(), "{:?}", a.conflicts());
    assert!(b.conflicts().is_empty(), "{:?}", b.conflicts());
    assert_same(&a, &b);
}

#[test]
fn reinsert_after_a_seen_delete_revives_without_conflict() {
    let (a, b) = pair_with_row("timestamp_wins");
    a.exec("DELETE FROM t1 WHERE id = 'r'");
    sync(&a, &b);
    assert_eq!(row_r(&b), None);
    b.exec("INSERT INTO t1 VALUES ('r', 9, 'nine', x'09')");
    sync_pair(&a, &b);
    let want = Some(vec![t("r"), V::Int(9), t("nine"), V::Blob(vec![9])]);
    assert_eq!(row_r(&a), want);
    assert_eq!(row_r(&b), want);
    assert!(a.conflicts().is_empty() && b.conflicts().is_empty());
    assert_same(&a, &b);
}

#[test]
fn later_insert_concurrent_with_a_delete_revives() {
    let (a, b) = pair_with_row("timestamp_wins");
    b.set_clock_offset(HOUR_US);
    a.exec("DELETE FROM t1 WHERE id = 'r'");
    b.exec("INSERT OR REPLACE INTO t1 VALUES ('r', 7, 7, 7)");
    sync_pair(&a, &b);
    let want = Some(vec![t("r"), V::Int(7), V::Int(7), V::Int(7)]);
    assert_eq!(row_r(&a), want);
    assert_eq!(row_r(&b), want);
    assert_same(&a, &b);
}

#[test]
fn earlier_insert_concurrent_with_a_later_delete_stays_deleted() {
    let (a, b) = pair_with_row("timestamp_wins");
    a.set_clock_offset(HOUR_US);
    b.exec("INSERT OR REPLACE INTO t1 VALUES ('r', 7, 7, 7)");
    a.exec("DELETE FROM t1 WHERE id = 'r'");
    sync_pair(&a, &b);
    assert_eq!(row_r(&a), None);
    assert_eq!(row_r(&b), None);
    assert_same(&a, &b);
}

#[test]
fn insert_of_the_same_key_on_two_devices() {
    let a = Peer::standard("A", "timestamp_wins", "timestamp_wins");
    let b = Peer::standard("B", "timestamp_wins", "timestamp_wins");
    b.set_clock_offset(HOUR_US);
    a.exec("INSERT INTO t2 VALUES ('k', 1, 'from A', 'same')");
    b.exec("INSERT INTO t2 VALUES ('k', 1, 'from B', 'same')");
    sync_pair(&a, &b);
    let want = vec![vec![t("k"), V::Int(1), t("from B"), t("same")]];
    assert_eq!(a.rows("t2"), want);
    assert_eq!(b.rows("t2"), want);
    assert_same(&a, &b);
    // Only the column whose values differ is a conflict; key columns and 'y' agree.
    for p in [&a, &b] {
        let c = p.conflicts();
        assert_eq!(c.len(), 1, "{p:?}: {c:?}");
        assert_eq!(c[0].columns, json!(["x"]), "{c:?}");
        assert_eq!(c[0].record_id, "'k',1");
        assert_eq!(c[0].status, "resolved");
    }
}

// ------------------------------------------------------------------ local_wins / remote_wins

fn auto_strategy(strategy: &str) {
    let (a, b) = pair_with_row(strategy);
    b.set_clock_offset(HOUR_US);
    a.exec("UPDATE t1 SET a = 'A' WHERE id = 'r'");
    b.exec("UPDATE t1 SET a = 'B' WHERE id = 'r'");
    // B receives A's concurrent write and resolves at once, with a resolution change.
    let res = b.apply(&a.changes(&b.vector(), 1000)).unwrap();
    assert_eq!(res["resolutions"], 1, "{res}");
    let kept = if strategy == "local_wins" { t("B") } else { t("A") };
    assert_eq!(row_r(&b).unwrap()[1], kept, "{strategy}");
    let r = resolution_rows(&b);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].device_id.as_deref(), Some(b.dev.as_str()));
    assert_eq!(r[0].record_id.as_deref(), Some("'r'"));
    let data: Json = serde_json::from_str(r[0].change_data.as_deref().unwrap()).unwrap();
    assert_eq!(V::from_json(&data["a"]), kept, "the resolution writes the resolved slot");
    let bases: Json = serde_json::from_str(r[0].bases.as_deref().unwrap()).unwrap();
    let mut sides: Vec<&str> = bases["cols"]["a"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    sides.sort();
    let mut want = vec![reference(&last_own(&a)), reference(&own_rows(&b)[0])];
    want.sort();
    assert_eq!(sides, want, "a resolution's base is both sides");
    let c = b.conflicts();
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].status, "resolved");
    assert_eq!(c[0].resolution["change"].as_str(), Some(reference(&r[0]).as_str()), "{:?}", c[0]);
    // Everything converges, to the greatest write, with nothing pending.
    quiet(&[&a, &b]);
    assert_same(&a, &b);
    assert!(a.pending().is_empty() && b.pending().is_empty());
    assert_eq!(Some(row_r(&a).unwrap()[1].clone()), greatest_write(&a, "t1", "'r'", "a"));
    // The resolution mark is covered by the hash: both logs verify, and every resolution is marked.
    assert!(!resolution_rows(&a).is_empty());
}

#[test]
fn local_wins_writes_a_resolution_and_converges() {
    auto_strategy("local_wins");
}

#[test]
fn remote_wins_writes_a_resolution_and_converges() {
    auto_strategy("remote_wins");
}

/// local_wins against a delete: the resolution keeps the row alive (an INSERT of every column).
#[test]
fn local_wins_delete_vs_update_keeps_the_local_update() {
    let (a, b) = pair_with_row("local_wins");
    a.exec("DELETE FROM t1 WHERE id = 'r'");
    b.exec("UPDATE t1 SET a = 'B' WHERE id = 'r'");
    let res = b.apply(&a.changes(&b.vector(), 1000)).unwrap();
    assert_eq!(res["resolutions"], 1, "{res}");
    assert_eq!(row_r(&b), Some(vec![t("r"), t("B"), V::Int(0), V::Int(0)]));
    quiet(&[&a, &b]);
    assert_same(&a, &b);
    assert!(a.pending().is_empty() && b.pending().is_empty());
}

#[test]
fn remote_wins_delete_vs_update_converges() {
    let (a, b) = pair_with_row("remote_wins");
    a.exec("DELETE FROM t1 WHERE id = 'r'");
    b.exec("UPDATE t1 SET a = 'B' WHERE id = 'r'");
    quiet(&[&a, &b]);
    assert!(a.pending().is_empty() && b.pending().is_empty());
    assert_same(&a, &b);
    assert!(!resolution_rows(&a).is_empty());
}

/// sync_resolve with a JSON row that lacks the conflicting column, names a column the table
/// does not have, holds a value that is not an SQLite value or moves the record's key; and
/// choices that are not choices, or conflicts that are not pending: an error naming the
/// problem, nothing changed, the conflict still pending.
#[test]
fn resolve_refuses_bad_rows_and_changes_nothing() {
    let (a, b) = pair_with_row("manual");
    b.exec("UPDATE t1 SET a = 'B' WHERE id = 'r'");
    a.exec("UPDATE t1 SET a = 'A' WHERE id = 'r'");
    let res = b.apply(&a.changes(&b.vector(), 1000)).unwrap();
    let id = res["conflicts"][0]["id"].as_i64().unwrap();
    let before = b.fingerprint();
    for (choice, want) in [
        (r#"{"b": 1}"#, r#"the JSON row must give a value for column "a""#),
        (r#"{"a": 1, "nope": 2}"#, r#"the JSON row names column "nope", which table "t1" does not have"#),
        (r#"{"a": [1, 2]}"#, r#"column "a": arrays and objects are not SQLite values"#),
        (r#"{"a": true}"#, r#"column "a": booleans are not SQLite values"#),
        (r#"{"a": 1, "id": "elsewhere"}"#, "a resolution cannot move a record"),
        ("keep mine", "choice must be 'local', 'remote', 'ignore' or a JSON object"),
        ("[1]", "choice must be 'local', 'remote', 'ignore' or a JSON object"),
    ] {
        let err = b.resolve(id, choice).expect_err(choice);
        assert!(err.starts_with("sync_resolve: ") && err.contains(want), "{choice}: {err}");
        assert_unchanged(&before, &b.fingerprint(), choice);
    }
    assert_eq!(b.pending(), vec![id]);
    let err = b.resolve(id + 100, "local").unwrap_err();
    assert!(err.contains(&format!("no conflict with id {}", id + 100)), "{err}");
    // The key column given its own value is fine; so is a real for an integer key elsewhere.
    assert_eq!(b.resolve(id, r#"{"a": "both", "id": "r"}"#).as_deref(), Ok("resolved"));
    assert_eq!(row_r(&b).unwrap()[1], t("both"));
    let err = b.resolve(id, "local").unwrap_err();
    assert!(err.contains(&format!("conflict {id} is already resolved")), "{err}");
}

// ------------------------------------------------------------------ hybrid logical clock

/// A device whose wall clock is 5 hours behind wins an edit it makes after seeing the other's.
#[test]
fn hlc_clock_behind_still_wins_an_edit_made_after_seeing_the_other() {
    let (a, b) = pair_with_row("timestamp_wins");
    a.set_clock_offset(-5 * HOUR_US);
    b.exec("UPDATE t1 SET a = 'B' WHERE id = 'r'");
    sync(&b, &a);
    a.exec("UPDATE t1 SET a = 'A after B' WHERE id = 'r'");
    let (wa, wb) = (last_own(&a), last_own(&b));
    assert!(wa.timestamp > wb.timestamp, "A's edit is stamped after B's: {wa:?} {wb:?}");
    sync_pair(&a, &b);
    assert_eq!(row_r(&b).unwrap()[1], t("A after B"));
    assert!(b.conflicts().is_empty(), "A's write was based on B's: no conflict, {:?}", b.conflicts());
    assert_same(&a, &b);
}

/// Control for the test above: the offset is real, so the same device loses an edit it made
/// (later in real time) without having seen the other's.
#[test]
fn hlc_clock_behind_loses_a_concurrent_edit() {
    let (a, b) = pair_with_row("timestamp_wins");
    a.set_clock_offset(-5 * HOUR_US);
    // B's wall clock moves past the shared insert's stamp (stamps are in whole milliseconds).
    std::thread::sleep(std::time::Duration::from_millis(3));
    b.exec("UPDATE t1 SET a = 'B' WHERE id = 'r'");
    a.exec("UPDATE t1 SET a = 'A concurrent' WHERE id = 'r'");
    assert!(last_own(&a).timestamp < last_own(&b).timestamp);
    sync_pair(&a, &b);
    assert_eq!(row_r(&a).unwrap()[1], t("B"));
    assert_same(&a, &b);
}
