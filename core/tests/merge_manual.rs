//! Owns deterministic tests of the manual strategy and sync_resolve (DESIGN.md "Strategies", "A resolution"): held-back writes, pending conflicts, choices, propagation, no cascade.
mod common;

use common::*;
use serde_json::json;

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

/// Resolving a delete-vs-update conflict for the delete logs a DELETE resolution that, as
/// every DELETE does, names the column writers it saw; the row stays gone everywhere.
#[test]
fn manual_delete_vs_update_resolved_for_the_delete() {
    let (a, b) = pair_with_row("manual");
    a.exec("DELETE FROM t1 WHERE id = 'r'");
    b.exec("UPDATE t1 SET a = 'B' WHERE id = 'r'");
    sync_pair(&a, &b);
    let id = a.pending()[0];
    assert_eq!(a.resolve(id, "local").as_deref(), Ok("resolved"));
    let r = resolution_rows(&a).pop().unwrap();
    let bases: serde_json::Value = serde_json::from_str(r.bases.as_deref().unwrap()).unwrap();
    assert_eq!(
        (r.operation.as_str(), bases["seen"]["a"].as_str()),
        ("DELETE", Some(&*reference(&own_rows(&b)[0]))),
        "{r:?}"
    );
    quiet(&[&a, &b]);
    assert!(a.pending().is_empty() && b.pending().is_empty(), "A {:?} B {:?}", a.conflicts(), b.conflicts());
    assert_eq!((row_r(&a), row_r(&b)), (None, None));
    assert_same(&a, &b);
    // A resolution that keeps the row is no DELETE and names nothing as seen.
    let (_, b, id) = manual_setup();
    assert_eq!(b.resolve(id, "local").as_deref(), Ok("resolved"));
    let r = resolution_rows(&b).pop().unwrap();
    assert!(r.operation != "DELETE" && !r.bases.unwrap().contains("seen"), "{:?}", resolution_rows(&b));
}

/// However a delete-vs-update conflict is settled, on either device and for either side, the
/// other device's copy closes and no new conflict appears: one decision, made once.
#[test]
fn a_delete_vs_update_settled_anywhere_closes_everywhere() {
    for resolver in ["deleter", "updater"] {
        for choice in ["local", "remote", "ignore", r#"{"a": "J"}"#] {
            let (a, b) = pair_with_row("manual");
            a.exec("DELETE FROM t1 WHERE id = 'r'");
            b.exec("UPDATE t1 SET a = 'B' WHERE id = 'r'");
            sync_pair(&a, &b);
            let p = if resolver == "deleter" { &a } else { &b };
            let id = p.pending()[0];
            assert_eq!(p.resolve(id, choice).as_deref(), Ok(if choice == "ignore" { "ignored" } else { "resolved" }));
            quiet(&[&a, &b]);
            let what = format!("{resolver} resolved with {choice}");
            assert!(
                a.pending().is_empty() && b.pending().is_empty(),
                "{what}: A {:?} B {:?}",
                a.conflicts(),
                b.conflicts()
            );
            assert_same(&a, &b);
        }
    }
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
            assert!(
                res.is_ok(),
                "{kind}: after sync_resolve(.., row with id 'other') = {r:?}, {from:?} -> {to:?} fails: {res:?}"
            );
        }
        quiet(&[&a, &b]);
        assert_same(&a, &b);
    }
}

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

#[test]
fn a_delete_after_one_row_was_inserted_alike_on_two_devices_is_no_conflict() {
    // Both devices insert the same row before they sync: the writes agree, so no conflict. Every
    // column's writer (the key's too) must then be the same on both, so that a later delete on
    // either has seen what the other holds.
    for deleter in [0, 1] {
        let a = Peer::standard("A", "manual", "manual");
        let b = Peer::standard("B", "manual", "manual");
        a.exec("INSERT INTO t1 VALUES ('r', 1, 2, 3)");
        b.exec("INSERT INTO t1 VALUES ('r', 1, 2, 3)");
        sync_pair(&a, &b);
        assert!(a.conflicts().is_empty() && b.conflicts().is_empty(), "{:?} {:?}", a.conflicts(), b.conflicts());
        let (d, other) = if deleter == 0 { (&a, &b) } else { (&b, &a) };
        d.exec("DELETE FROM t1 WHERE id='r'");
        sync_pair(d, other);
        assert_eq!(row_r(other), None, "the delete applied on {}", other.dev);
        assert!(other.conflicts().is_empty(), "no conflict on {}: {:?}", other.dev, other.conflicts());
        assert_same(&a, &b);
    }
}

/// A delete-vs-update conflict shows each side as it is: on the deleting device the remote
/// side is the row with the update's values (not the record's first INSERT), on the updating
/// device the local side is; under every strategy.
#[test]
fn a_delete_vs_update_conflict_shows_the_update_s_values() {
    for s in ["manual", "timestamp_wins", "local_wins", "remote_wins"] {
        let (a, b) = pair_with_row(s);
        a.exec("DELETE FROM t1 WHERE id = 'r'");
        b.exec("UPDATE t1 SET a = 'B' WHERE id = 'r'");
        sync_pair(&a, &b);
        let updated = json!({"id": "r", "a": "B", "b": 0, "c": 0});
        let on_a: Vec<_> = a.conflicts().into_iter().filter(|c| c.local_data.is_null()).collect();
        assert!(!on_a.is_empty(), "{s}: {:?}", a.conflicts());
        for c in on_a {
            assert_eq!(c.remote_data, updated, "{s}: the deleter's conflict {c:?}");
        }
        let on_b = b.conflicts();
        assert_eq!(on_b.len(), 1, "{s}: {on_b:?}");
        assert_eq!((&on_b[0].local_data, &on_b[0].remote_data), (&updated, &json!(null)), "{s}: {on_b:?}");
    }
}

/// A column added after a record was written has no writer for it until its first write:
/// a device that joins with the table as it is now takes that write without a conflict.
#[test]
fn a_column_added_later_is_first_written_without_a_conflict() {
    let a = Peer::new("A", "CREATE TABLE t(id TEXT PRIMARY KEY, x)");
    a.track("t", "manual");
    a.exec("INSERT INTO t VALUES ('r', 1)");
    a.exec("ALTER TABLE t ADD COLUMN y");
    a.track("t", "manual");
    a.exec("UPDATE t SET y = 'new' WHERE id = 'r'");
    let b = Peer::new("B", "CREATE TABLE t(id TEXT PRIMARY KEY, x, y)");
    b.track("t", "manual");
    sync_pair(&a, &b);
    assert!(b.conflicts().is_empty() && a.conflicts().is_empty(), "A {:?} B {:?}", a.conflicts(), b.conflicts());
    assert_eq!(b.row("t", "id = 'r'"), Some(vec![t("r"), V::Int(1), t("new")]));
    assert_eq!(a.snapshot(&["t"]), b.snapshot(&["t"]));
}

/// What the sync_conflicts table says is open, for each conflict, in id order.
fn open_columns(p: &Peer) -> Vec<(String, String)> {
    let rows = p.json(
        "SELECT json_group_array(json_array(status, open_columns)) FROM (SELECT * FROM sync_conflicts ORDER BY id)",
    );
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn a_settled_conflict_has_no_open_columns() {
    // Settled here by sync_resolve (resolved and ignored), and closed on the other device
    // by the resolution arriving: nothing stays open in sync_conflicts.
    for choice in ["remote", "ignore"] {
        let (a, b, id) = manual_setup();
        sync(&b, &a);
        assert_eq!(open_columns(&a), vec![("pending".to_string(), r#"["a"]"#.to_string())]);
        b.resolve(id, choice).unwrap();
        sync_pair(&a, &b);
        for p in [&a, &b] {
            for (status, open) in open_columns(p) {
                assert_ne!(status, "pending", "{}: {choice}", p.name);
                assert_eq!(open, "[]", "{}: {status} after {choice}", p.name);
            }
        }
    }
    // Settled on arrival by a strategy: never open.
    let (a, b) = pair_with_row("timestamp_wins");
    b.exec("UPDATE t1 SET a = 'B' WHERE id = 'r'");
    a.exec("UPDATE t1 SET a = 'A' WHERE id = 'r'");
    sync_pair(&a, &b);
    let all: Vec<_> = open_columns(&a).into_iter().chain(open_columns(&b)).collect();
    assert!(!all.is_empty());
    for (status, open) in all {
        assert_eq!((status.as_str(), open.as_str()), ("resolved", "[]"));
    }
}

/// What a page shows beside a conflict: when each side wrote (each change's stamp) and the
/// record as it is here now, every column; nothing once the row is gone.
#[test]
fn a_conflict_s_context_has_both_stamps_and_the_record_now() {
    let (a, b, id) = manual_setup();
    let iso = |p: &Peer| -> String {
        let us = last_own(p).timestamp.unwrap();
        p.str(&format!("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', {us} / 1000000.0, 'unixepoch')"))
    };
    let c = peersync_core::conflict(&b.conn, id).unwrap().unwrap();
    let ctx = peersync_core::conflict_context(&b.conn, &c).unwrap();
    assert_eq!(ctx.local_written_at, Some(iso(&b)));
    assert_eq!(ctx.remote_written_at, Some(iso(&a)));
    assert_eq!(serde_json::Value::Object(ctx.current.unwrap()), json!({"id": "r", "a": "B", "b": "A", "c": 0}));
    b.exec("DELETE FROM t1 WHERE id = 'r'");
    assert!(peersync_core::conflict_context(&b.conn, &c).unwrap().current.is_none());
}
