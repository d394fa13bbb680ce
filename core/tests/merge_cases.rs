//! Owns deterministic tests of each merge outcome of DESIGN.md "Merging and conflicts" (and model.py): columns, winner rule, liveness, strategies, manual resolution, HLC.
mod common;

use common::*;
use serde_json::{json, Value as Json};

/// Two peers with t1/t2 tracked under `strategy`, sharing row t1 'r' = (0, 0, 0).
fn pair_with_row(strategy: &str) -> (Peer, Peer) {
    let a = Peer::standard("A", strategy, strategy);
    let b = Peer::standard("B", strategy, strategy);
    a.exec("INSERT INTO t1 VALUES ('r', 0, 0, 0)");
    sync(&a, &b);
    assert_eq!(b.row("t1", "id='r'"), Some(vec![t("r"), V::Int(0), V::Int(0), V::Int(0)]));
    (a, b)
}

fn row_r(p: &Peer) -> Option<Vec<V>> {
    p.row("t1", "id='r'")
}

fn assert_same(a: &Peer, b: &Peer) {
    assert_eq!(a.snapshot(&["t1", "t2"]), b.snapshot(&["t1", "t2"]), "tables differ");
    assert_eq!(a.vector_json(), b.vector_json(), "vectors differ");
    assert_eq!(a.verify()["ok"], true);
    assert_eq!(b.verify()["ok"], true);
}

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
        assert!(p.log().iter().any(|r| r.change_data.as_deref() == Some(r#"{"a":"A"}"#)), "{p:?} lost the losing write");
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
            assert_eq!((c.local_device_id.as_deref(), c.local_version), (local.device_id.as_deref(), local.version), "{c:?}");
            assert_eq!((c.remote_device_id.as_deref(), c.remote_version), (remote.device_id.as_deref(), remote.version), "{c:?}");
        }
        // The update's value is not lost: B's update stays in A's log.
        assert!(a.log().iter().any(|r| r.change_data.as_deref() == Some(r#"{"a":"B"}"#)));
    }
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

fn resolution_rows(p: &Peer) -> Vec<LogRow> {
    p.log().into_iter().filter(|r| r.resolution).collect()
}

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

// ------------------------------------------------------------------ manual

/// Both manual; B edited a, then A edited a and b in one change; A's change reaches B.
fn manual_setup() -> (Peer, Peer, i64) {
    let (a, b) = pair_with_row("manual");
    b.exec("UPDATE t1 SET a = 'B' WHERE id = 'r'");
    a.exec("UPDATE t1 SET a = 'A', b = 'A' WHERE id = 'r'");
    let res = b.apply(&a.changes(&b.vector(), 1000)).unwrap();
    let confs = res["conflicts"].as_array().unwrap();
    assert_eq!(confs.len(), 1, "{res}");
    assert_eq!(confs[0]["status"], "pending");
    let id = confs[0]["id"].as_i64().unwrap();
    (a, b, id)
}

#[test]
fn manual_holds_back_only_the_conflicting_column() {
    let (a, b, id) = manual_setup();
    // a stays local, b (no conflict) applied.
    assert_eq!(row_r(&b), Some(vec![t("r"), t("B"), t("A"), V::Int(0)]));
    assert_eq!(b.pending(), vec![id]);
    let c = b.conflicts().into_iter().find(|c| c.id == id).unwrap();
    assert_eq!(c.columns, json!(["a"]));
    assert_eq!(c.local_data, json!({"a": "B"}));
    assert_eq!(c.remote_data, json!({"a": "A"}));
    assert_eq!((c.local_device_id.as_deref(), c.local_version), (Some(b.dev.as_str()), last_own(&b).version));
    assert_eq!((c.remote_device_id.as_deref(), c.remote_version), (Some(a.dev.as_str()), last_own(&a).version));
    assert!(c.resolution.is_null());
    // The held-back write is logged (and so relayed): B's vector holds A's change.
    assert_eq!(b.vector_json()[&a.dev], a.vector_json()[&a.dev]);
    // A gets its own pending conflict from B's write; its local value stays too.
    let res = a.apply(&b.changes(&a.vector(), 1000)).unwrap();
    assert_eq!(res["conflicts"][0]["status"], "pending", "{res}");
    assert_eq!(row_r(&a), Some(vec![t("r"), t("A"), t("A"), V::Int(0)]));
}

fn manual_resolve(choice: &str, want_status: &str, want_a: V) {
    let (a, b, id) = manual_setup();
    sync(&b, &a); // A now has the same conflict pending
    assert_eq!(a.pending().len(), 1);
    assert_eq!(b.resolve(id, choice).as_deref(), Ok(want_status), "sync_resolve({id}, {choice})");
    assert!(b.pending().is_empty());
    let c = b.conflicts().into_iter().find(|c| c.id == id).unwrap();
    assert_eq!(c.status, want_status);
    assert_eq!(row_r(&b).unwrap()[1], want_a, "B after sync_resolve(.., {choice})");
    let res = resolution_rows(&b);
    assert_eq!(res.len(), 1, "the resolution is a change marked as one: {res:?}");
    // The resolution propagates and closes A's copy of the conflict.
    sync_pair(&a, &b);
    assert!(a.pending().is_empty(), "A still pending after receiving B's resolution: {:?}", a.conflicts());
    assert_eq!(row_r(&a).unwrap()[1], want_a);
    assert_same(&a, &b);
    // No new conflict pending anywhere, and b kept A's non-conflicting write.
    assert_eq!(row_r(&a).unwrap()[2], t("A"));
    quiet(&[&a, &b]);
    assert!(a.pending().is_empty() && b.pending().is_empty());
}

#[test]
fn manual_resolve_remote() {
    manual_resolve("remote", "resolved", t("A"));
}

#[test]
fn manual_resolve_local() {
    manual_resolve("local", "resolved", t("B"));
}

#[test]
fn manual_resolve_ignore_keeps_local_and_is_recorded_as_ignored() {
    manual_resolve("ignore", "ignored", t("B"));
}

#[test]
fn manual_resolve_json_row() {
    manual_resolve(r#"{"a": "custom \"é\"", "b": "A", "c": 0}"#, "resolved", t("custom \"é\""));
}

#[test]
fn manual_resolve_json_row_with_typed_values() {
    manual_resolve(r#"{"a": {"$blob": "00ff"}, "b": "A", "c": 0}"#, "resolved", V::Blob(vec![0, 255]));
    manual_resolve(r#"{"a": 0.30000000000000004, "b": "A", "c": 0}"#, "resolved", V::Real(0.1 + 0.2));
}

#[test]
fn resolve_errors_name_the_problem() {
    let (_a, b, id) = manual_setup();
    let e = b.resolve(id, "sideways").unwrap_err();
    assert!(e.contains("sync_resolve") && e.contains("local"), "{e}");
    let e = b.resolve(9999, "local").unwrap_err();
    assert!(e.contains("sync_resolve") && e.contains("9999"), "{e}");
    assert_eq!(b.resolve(id, "local").as_deref(), Ok("resolved"));
    let e = b.resolve(id, "remote").unwrap_err();
    assert!(e.contains("sync_resolve") && e.contains("already"), "{e}");
}

/// Both peers resolve their copies of the same conflict, differently, before exchanging: the
/// two resolutions meet and the winner rule settles it; no new conflict is pending.
#[test]
fn resolutions_never_cascade() {
    let (a, b, idb) = manual_setup();
    sync(&b, &a);
    let ida = a.pending()[0];
    b.set_clock_offset(HOUR_US);
    assert_eq!(a.resolve(ida, "local").as_deref(), Ok("resolved")); // 'A'
    assert_eq!(b.resolve(idb, "local").as_deref(), Ok("resolved")); // 'B', later
    for (from, to) in [(&a, &b), (&b, &a)] {
        let res = to.apply(&from.changes(&to.vector(), 1000)).unwrap();
        for c in res["conflicts"].as_array().unwrap() {
            assert_ne!(c["status"], "pending", "a resolution met a resolution and made a pending conflict: {res}");
        }
        assert_eq!(res["resolutions"], 0, "a resolution produced another resolution: {res}");
    }
    quiet(&[&a, &b]);
    assert!(a.pending().is_empty() && b.pending().is_empty());
    assert_same(&a, &b);
    assert_eq!(row_r(&a).unwrap()[1], t("B"), "the later resolution wins");
}

#[test]
fn manual_delete_vs_update_is_pending_and_local_value_stays() {
    let (a, b) = pair_with_row("manual");
    a.exec("DELETE FROM t1 WHERE id = 'r'");
    b.exec("UPDATE t1 SET a = 'B' WHERE id = 'r'");
    sync_pair(&a, &b);
    assert_eq!(row_r(&a), None, "A's local delete stays");
    assert_eq!(row_r(&b), Some(vec![t("r"), t("B"), V::Int(0), V::Int(0)]), "B's local update stays");
    let (pa, pb) = (a.pending(), b.pending());
    assert_eq!((pa.len(), pb.len()), (1, 1), "A {:?} B {:?}", a.conflicts(), b.conflicts());
    // A chooses the remote side (the row with B's update): the row comes back everywhere.
    assert_eq!(a.resolve(pa[0], "remote").as_deref(), Ok("resolved"));
    assert_eq!(row_r(&a), Some(vec![t("r"), t("B"), V::Int(0), V::Int(0)]));
    sync_pair(&a, &b);
    assert!(b.pending().is_empty(), "B's copy is closed by A's resolution: {:?}", b.conflicts());
    assert_same(&a, &b);
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

/// A resolution made by a device whose clock is behind is stamped after both sides.
#[test]
fn hlc_resolution_is_stamped_after_both_sides() {
    let (a, b, id) = manual_setup();
    b.set_clock_offset(-5 * HOUR_US);
    assert_eq!(b.resolve(id, "local").as_deref(), Ok("resolved"));
    let r = resolution_rows(&b).pop().unwrap();
    let max_side = b.log().iter().filter(|x| !x.resolution).map(|x| x.timestamp.unwrap()).max().unwrap();
    assert!(r.timestamp.unwrap() > max_side, "resolution {r:?} not after {max_side}");
    quiet(&[&a, &b]);
    assert_eq!(row_r(&a).unwrap()[1], t("B"));
    assert_same(&a, &b);
}

#[test]
fn manual_delete_conflict_resolved_with_a_json_row_revives_the_row() {
    let (a, b) = pair_with_row("manual");
    a.exec("DELETE FROM t1 WHERE id = 'r'");
    b.exec("UPDATE t1 SET a = 'B' WHERE id = 'r'");
    sync_pair(&a, &b);
    let id = a.pending()[0];
    assert_eq!(a.resolve(id, r#"{"a": "new", "b": {"$blob": "ff"}, "c": null}"#).as_deref(), Ok("resolved"));
    let want = Some(vec![t("r"), t("new"), V::Blob(vec![255]), V::Null]);
    assert_eq!(row_r(&a), want);
    quiet(&[&a, &b]);
    assert!(a.pending().is_empty() && b.pending().is_empty(), "A {:?} B {:?}", a.conflicts(), b.conflicts());
    assert_eq!(row_r(&b), want);
    assert_same(&a, &b);
}

/// A JSON row that names the primary key with another value: sync_resolve may refuse it or
/// ignore the key, but must not write a change that peers refuse (that would stop this
/// device's sync for good) nor move the record.
#[test]
fn json_row_with_a_different_primary_key_value() {
    for kind in ["update", "delete"] {
        let (a, b) = pair_with_row("manual");
        if kind == "delete" {
            a.exec("DELETE FROM t1 WHERE id = 'r'");
        } else {
            a.exec("UPDATE t1 SET a = 'A' WHERE id = 'r'");
        }
        b.exec("UPDATE t1 SET a = 'B' WHERE id = 'r'");
        sync_pair(&a, &b);
        let id = a.pending()[0];
        let r = a.resolve(id, r#"{"id": "other", "a": "new", "b": 1, "c": 2}"#);
        assert!(a.row("t1", "id='other'").is_none(), "{kind}: sync_resolve moved the record: {:?}", a.rows("t1"));
        if let Err(e) = &r {
            assert!(e.contains("sync_resolve"), "{kind}: {e}");
            continue;
        }
        for (from, to) in [(&a, &b), (&b, &a)] {
            let (_, res) = sync_once(from, to, 1000);
            assert!(res.is_ok(), "{kind}: after sync_resolve(.., row with id 'other') = {r:?}, {from:?} -> {to:?} fails: {res:?}");
        }
        quiet(&[&a, &b]);
        assert_same(&a, &b);
    }
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
/// does not have, or holds a value that is not an SQLite value: an error naming the problem,
/// nothing changed, the conflict still pending.
#[test]
fn resolve_with_a_bad_json_row_is_refused() {
    let (_a, b, id) = manual_setup();
    let cases: [(&str, &[&str]); 4] = [
        (r#"{"b": 1}"#, &["\"a\""]),
        (r#"{"a": true}"#, &["\"a\""]),
        (r#"{"a": 1e400}"#, &["\"a\""]),
        (r#"{"a": 1, "nosuch": 2}"#, &["nosuch"]),
    ];
    let mut problems = Vec::new();
    for (row, words) in cases {
        let fp = b.fingerprint();
        match b.resolve(id, row) {
            Ok(s) => problems.push(format!("sync_resolve({id}, {row}) accepted: {s}")),
            Err(e) => {
                if !e.contains("sync_resolve") || !words.iter().all(|w| e.contains(w)) {
                    problems.push(format!("sync_resolve({id}, {row}): error {e:?} should name {words:?}"));
                }
                if b.fingerprint() != fp {
                    problems.push(format!("sync_resolve({id}, {row}) failed but changed the database"));
                }
            }
        }
        if b.pending() != vec![id] {
            break;
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
