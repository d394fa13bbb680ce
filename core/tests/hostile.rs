//! Owns the engine's side of the hostile-peer rules (issue "a hostile or compromised trusted
//! device"): resolutions that name nothing they supersede, record ids that alias a row, values
//! the receiver's column types would change, timestamps far ahead of the receiver's clock, and
//! one origin's changes stamped alike.
mod common;

use common::*;
use serde_json::json;

const FORGER: &str = "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0";

/// B holds row 'r' of t1 (strategy `strategy`), last written by B itself; returns B and the
/// reference of that write.
fn holder(strategy: &str) -> (Peer, String) {
    let b = Peer::standard("B", strategy, strategy);
    b.exec("INSERT INTO t1 VALUES ('r', 'mine', 0, 0)");
    let w = reference(&last_own(&b));
    (b, w)
}

/// The forger's two changes: an INSERT of another record (so B holds a change of the forger to
/// name), then a change flagged as a resolution on 'r' whose bases name that INSERT and `also`
/// (nothing, or the writer B holds).
fn forged(b: &Peer, also: Option<&str>) -> String {
    let ts = last_own(b).timestamp.unwrap();
    let mut f = Forger::new(FORGER);
    let other = f.change("t1", "'s'", "INSERT", r#"{"id":"s","a":1,"b":2,"c":3}"#, "{}", ts + 1, false);
    let mut sides = vec![format!("{FORGER}:1")];
    sides.extend(also.map(str::to_string));
    let res = f.change(
        "t1",
        "'r'",
        "UPDATE",
        r#"{"a":"theirs"}"#,
        &json!({"cols": {"a": sides}}).to_string(),
        ts + 1_000_000,
        true,
    );
    batch_of(FORGER, vec![other, res])
}

#[test]
fn a_resolution_naming_nothing_held_does_not_override_local_wins() {
    let (b, _) = holder("local_wins");
    let res = b.apply(&forged(&b, None)).unwrap();
    assert_eq!(res["accepted"], 2, "{res}");
    assert_eq!(row_r(&b).unwrap()[1], t("mine"), "local_wins keeps the local value against a foreign 'resolution'");
    assert_eq!(res["resolutions"], 1, "{res}");
    let c = b.conflicts().pop().unwrap();
    assert_eq!((c.status.as_str(), c.resolution["strategy"].as_str()), ("resolved", Some("local_wins")), "{c:?}");
}

#[test]
fn a_resolution_naming_nothing_held_waits_on_a_manual_table() {
    let (b, _) = holder("manual");
    let res = b.apply(&forged(&b, None)).unwrap();
    assert_eq!(res["accepted"], 2, "{res}");
    assert_eq!(row_r(&b).unwrap()[1], t("mine"), "manual holds the write back");
    assert_eq!(b.pending().len(), 1, "a pending conflict, not an applied write: {:?}", b.conflicts());
}

#[test]
fn a_resolution_naming_the_writer_held_applies() {
    let (b, w) = holder("manual");
    b.apply(&forged(&b, Some(&w))).unwrap();
    assert_eq!(row_r(&b).unwrap()[1], t("theirs"));
    assert!(b.pending().is_empty());
}

// ------------------------------------------------------------------ one row, one record id

const TYPED: &str = "CREATE TABLE typed(id TEXT PRIMARY KEY, n INTEGER, r REAL, s TEXT, x)";

fn typed_receiver() -> Peer {
    let b = Peer::new("B", TYPED);
    b.track("typed", "local_wins");
    b.exec("INSERT INTO typed VALUES ('4242', 1, 1.5, 'mine', NULL)");
    b.seal();
    b
}

/// A change of `typed` by the forger with `rid` and `data`, as an INSERT.
fn typed_change(b: &Peer, rid: &str, data: &str) -> String {
    let ts = last_own(b).timestamp.unwrap() + 1;
    batch_of(FORGER, vec![Forger::new(FORGER).change("typed", rid, "INSERT", data, "{}", ts, false)])
}

#[test]
fn a_record_id_the_key_column_would_store_otherwise_is_refused() {
    let b = typed_receiver();
    let before = b.fingerprint();
    for (rid, data, want) in [
        ("4242", r#"{"id":4242,"n":2,"r":2.5,"s":"x","x":null}"#, r#"record_id gives column "id" the value 4242"#),
        (
            "4242.0",
            r#"{"id":4242.0,"n":2,"r":2.5,"s":"x","x":null}"#,
            r#"record_id gives column "id" the value 4242.0"#,
        ),
        ("'k'", r#"{"id":"k","n":"2","r":2.5,"s":"x","x":null}"#, r#"change_data gives column "n" the value '2'"#),
        ("'k'", r#"{"id":"k","n":2.0,"r":2.5,"s":"x","x":null}"#, r#"change_data gives column "n" the value 2.0"#),
        ("'k'", r#"{"id":"k","n":2,"r":3,"s":"x","x":null}"#, r#"change_data gives column "r" the value 3"#),
        ("'k'", r#"{"id":"k","n":2,"r":2.5,"s":7,"x":null}"#, r#"change_data gives column "s" the value 7"#),
    ] {
        let err = b.apply(&typed_change(&b, rid, data)).unwrap_err();
        assert!(
            err.contains(&format!("change {FORGER}:1")) && err.contains(want) && err.contains("affinity here"),
            "{rid} {data}: {err}"
        );
        assert_unchanged(&before, &b.fingerprint(), data);
    }
    // Values the columns store as they are, including in the untyped column, apply.
    let res = b.apply(&typed_change(&b, "'k'", r#"{"id":"k","n":2,"r":2.5,"s":"7","x":7}"#)).unwrap();
    assert_eq!(res["accepted"], 1, "{res}");
    assert_eq!(b.row("typed", "id = 'k'"), Some(vec![t("k"), V::Int(2), V::Real(2.5), t("7"), V::Int(7)]));
}

/// A key equal to another record's under the key column's collation is that record's row:
/// the change is kept as a pending `constraint` conflict, the row is left alone.
#[test]
fn a_key_that_names_another_record_s_row_by_collation_is_a_constraint_conflict() {
    let b = Peer::new("B", "CREATE TABLE ci(id TEXT PRIMARY KEY COLLATE NOCASE, v)");
    b.track("ci", "local_wins");
    b.exec("INSERT INTO ci VALUES ('Abc', 'mine')");
    b.seal();
    let ts = last_own(&b).timestamp.unwrap() + 1;
    let batch = batch_of(
        FORGER,
        vec![Forger::new(FORGER).change("ci", "'abc'", "INSERT", r#"{"id":"abc","v":"theirs"}"#, "{}", ts, false)],
    );
    let res = b.apply(&batch).unwrap();
    assert_eq!(res["accepted"], 1, "{res}");
    assert_eq!(res["conflicts"][0]["kind"], "constraint", "{res}");
    assert_eq!(b.rows("ci"), vec![vec![t("Abc"), t("mine")]]);
    assert_eq!(b.pending().len(), 1);
    assert_eq!(b.verify()["ok"], true);
}

#[test]
fn a_resolution_row_the_columns_would_store_otherwise_is_refused() {
    let (a, b) = (Peer::new("A", TYPED), Peer::new("B", TYPED));
    a.track("typed", "manual");
    b.track("typed", "manual");
    a.exec("INSERT INTO typed VALUES ('k', 1, 1.0, 's', NULL)");
    sync(&a, &b);
    a.exec("UPDATE typed SET n = 2");
    b.exec("UPDATE typed SET n = 3");
    let res = b.apply(&a.changes(&b.vector(), 1000)).unwrap();
    let id = res["conflicts"][0]["id"].as_i64().unwrap();
    let before = b.fingerprint();
    let err = b.resolve(id, r#"{"n": "4"}"#).unwrap_err();
    assert!(err.contains(r#"column "n" "4""#) && err.contains("INTEGER affinity"), "{err}");
    assert_unchanged(&before, &b.fingerprint(), "a refused resolution");
    assert_eq!(b.resolve(id, r#"{"n": 4}"#).as_deref(), Ok("resolved"));
}

// ------------------------------------------------------------------ clock

/// A change stamped further ahead of the receiver's clock than the skew allowed (a day by
/// default) waits, and the receiver's clock does not move to it: later local writes keep their
/// own time. Raising `max_clock_skew_secs` lets it in.
#[test]
fn a_change_stamped_too_far_ahead_waits_and_the_clock_stays() {
    let (b, _) = holder("timestamp_wins");
    let now = last_own(&b).timestamp.unwrap();
    let far = now + 2 * 86_400 * 1_000_000;
    let mut f = Forger::new(FORGER);
    let near = f.change("t1", "'n'", "INSERT", r#"{"id":"n","a":1,"b":2,"c":3}"#, "{}", now + 1_000_000, false);
    let ahead = f.change("t1", "'s'", "INSERT", r#"{"id":"s","a":1,"b":2,"c":3}"#, "{}", far, false);
    let batch = batch_of(FORGER, vec![near, ahead]);
    let res = b.apply(&batch).unwrap();
    assert_eq!((res["accepted"].as_i64(), res["deferred"].as_i64()), (Some(1), Some(1)), "{res}");
    assert_eq!(res["held"][0]["reason"], "clock_ahead", "{res}");
    assert_eq!(res["held"][0]["version"], 2);
    assert_eq!(b.json("SELECT sync_status()")["waiting"][0]["reason"], "clock_ahead");
    assert!(b.row("t1", "id = 's'").is_none());
    b.exec("UPDATE t1 SET b = 1 WHERE id = 'r'");
    let own = last_own(&b).timestamp.unwrap();
    assert!(own < now + 86_400 * 1_000_000, "the local clock did not jump to the far change: {own} vs {far}");
    // A person who trusts that clock raises the allowed skew: it applies, and nothing waits.
    b.exec("INSERT OR REPLACE INTO sync_state(key, value) VALUES ('max_clock_skew_secs', 3 * 86400)");
    let res = b.apply(&batch).unwrap();
    assert_eq!(res["accepted"], 1, "{res}");
    assert_eq!(b.json("SELECT sync_status()")["waiting"], json!([]));
    b.exec("UPDATE t1 SET b = 2 WHERE id = 'r'");
    assert!(last_own(&b).timestamp.unwrap() > far, "once applied, later writes are stamped after it");
}

// ------------------------------------------------------------------ quota

/// A device that writes more than its quota here waits; another device's changes in the same
/// batch go on; the allowance grows back over time.
#[test]
fn a_device_over_its_quota_waits_and_the_others_go_on() {
    let b = Peer::standard("B", "timestamp_wins", "timestamp_wins");
    peersync_core::set_origin_quota(&b.conn, 7000.0, 3.6e9 * 1000.0).unwrap(); // 7 KB, then 1 KB/ms
    let other = "abababababababababababababababab";
    let ts = peersync_core::vector(&b.conn).map(|_| 1_700_000_000_000_000i64).unwrap();
    let (mut f, mut o) = (Forger::new(FORGER), Forger::new(other));
    let big = "x".repeat(3000);
    let mut changes = Vec::new();
    for i in 0..3 {
        changes.push(f.change(
            "t1",
            &format!("'f{i}'"),
            "INSERT",
            &format!(r#"{{"id":"f{i}","a":"{big}","b":null,"c":null}}"#),
            "{}",
            ts + i,
            false,
        ));
        changes.push(o.change(
            "t1",
            &format!("'o{i}'"),
            "INSERT",
            &format!(r#"{{"id":"o{i}","a":1,"b":null,"c":null}}"#),
            "{}",
            ts + i,
            false,
        ));
    }
    let res = b.apply(&batch_of(FORGER, changes.clone())).unwrap();
    assert_eq!((res["accepted"].as_i64(), res["deferred"].as_i64()), (Some(5), Some(1)), "{res}");
    assert_eq!(res["held"][0]["reason"], "quota", "{res}");
    assert_eq!(res["held"][0]["device_id"], FORGER);
    assert_eq!(res["held"][0]["version"], 3);
    assert_eq!(b.json("SELECT sync_status()")["waiting"][0]["reason"], "quota");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let res = b.apply(&batch_of(FORGER, changes)).unwrap();
    assert_eq!(res["accepted"], 1, "the allowance grew back: {res}");
    assert_eq!(b.json("SELECT sync_status()")["waiting"], json!([]));
}

/// A change larger than the whole quota burst is taken once the allowance is full (it could
/// never fit otherwise); the same origin's next change then waits for the allowance to grow
/// back past what the large one took.
#[test]
fn a_change_larger_than_the_burst_goes_when_the_allowance_is_full() {
    let b = Peer::standard("B", "timestamp_wins", "timestamp_wins");
    peersync_core::set_origin_quota(&b.conn, 2000.0, 3.6e6 * 10.0).unwrap(); // 2 KB, then 10 B/ms
    let ts = 1_700_000_000_000_000i64;
    let mut f = Forger::new(FORGER);
    let big = "x".repeat(5000);
    let changes = vec![
        f.change("t1", "'big'", "INSERT", &format!(r#"{{"id":"big","a":"{big}","b":null,"c":null}}"#), "{}", ts, false),
        f.change("t1", "'small'", "INSERT", r#"{"id":"small","a":1,"b":null,"c":null}"#, "{}", ts + 1, false),
    ];
    let res = b.apply(&batch_of(FORGER, changes.clone())).unwrap();
    assert_eq!((res["accepted"].as_i64(), res["deferred"].as_i64()), (Some(1), Some(1)), "{res}");
    assert_eq!(res["held"][0]["reason"], "quota", "{res}");
    assert_eq!(res["held"][0]["version"], 2);
    assert!(b.row("t1", "id = 'big'").is_some());
    // Still in debt a moment later (5 KB taken from 2 KB, 10 B/ms back): the small one waits.
    let res = b.apply(&batch_of(FORGER, changes.clone())).unwrap();
    assert_eq!(res["accepted"], 0, "{res}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let res = b.apply(&batch_of(FORGER, changes)).unwrap();
    assert_eq!(res["accepted"], 1, "the allowance grew back: {res}");
}

/// A change based on a change this database does not hold is logged and waits (alone: its
/// origin's later changes go on) for a batch that brings the base, then merges after it.
#[test]
fn a_change_whose_base_is_missing_waits() {
    let b = Peer::standard("B", "timestamp_wins", "timestamp_wins");
    let other = "abababababababababababababababab";
    let ts = 1_700_000_000_000_000;
    let mut o = Forger::new(other);
    let base = o.change("t1", "'k'", "INSERT", r#"{"id":"k","a":1,"b":null,"c":null}"#, "{}", ts, false);
    let mut f = Forger::new(FORGER);
    let upd = f.change(
        "t1",
        "'k'",
        "UPDATE",
        r#"{"a":2}"#,
        &json!({"live": [format!("{other}:1")], "cols": {"a": [format!("{other}:1")]}}).to_string(),
        ts + 1,
        false,
    );
    let res = b.apply(&batch_of(FORGER, vec![upd.clone()])).unwrap();
    assert_eq!(
        (res["accepted"].as_i64(), res["deferred"].as_i64(), res["schema_waiting"].as_i64()),
        (Some(1), Some(0), Some(1)),
        "{res}"
    );
    assert!(b.row("t1", "id = 'k'").is_none());
    assert_eq!(b.json("SELECT sync_status()")["schema_waiting"][0]["reason"], "base_missing");
    let res = b.apply(&batch_of(FORGER, vec![base, upd])).unwrap();
    assert_eq!(
        (res["accepted"].as_i64(), res["duplicates"].as_i64(), res["schema_applied"].as_i64()),
        (Some(1), Some(1), Some(1)),
        "{res}"
    );
    assert_eq!(b.row("t1", "id = 'k'").unwrap()[1], V::Int(2));
    assert!(b.conflicts().is_empty());
}

#[test]
fn two_changes_of_one_origin_with_one_timestamp_are_ordered_by_version() {
    // Timestamps are hybrid logical clocks: an honest origin never stamps two changes alike, but
    // a restored copy or a hostile origin can. The winner order stays total (timestamp, device,
    // version): the later version wins, on every receiver.
    let (b, w) = holder("timestamp_wins");
    let ts = last_own(&b).timestamp.unwrap() + 1;
    let bases = json!({"cols": {"a": [w]}}).to_string();
    let mut f = Forger::new(FORGER);
    let first = f.change("t1", "'r'", "UPDATE", r#"{"a":"first"}"#, &bases, ts, false);
    let second = f.change("t1", "'r'", "UPDATE", r#"{"a":"second"}"#, &bases, ts, false);
    let res = b.apply(&batch_of(FORGER, vec![first, second])).unwrap();
    assert_eq!(res["accepted"], 2, "{res}");
    assert_eq!(row_r(&b).unwrap()[1], t("second"), "{:?}", b.conflicts());
}

#[test]
fn an_update_that_names_the_delete_it_saw_is_no_conflict_and_the_record_stays_deleted() {
    // An honest device cannot update a deleted row; a crafted update that says it saw the
    // delete neither revives the record nor opens a conflict.
    let (b, w) = holder("manual");
    b.exec("DELETE FROM t1 WHERE id='r'");
    let deleted = reference(&last_own(&b));
    let ts = last_own(&b).timestamp.unwrap() + 1;
    let bases = json!({"live": [deleted], "cols": {"a": [w]}}).to_string();
    let mut f = Forger::new(FORGER);
    let late = f.change("t1", "'r'", "UPDATE", r#"{"a":"late"}"#, &bases, ts, false);
    let res = b.apply(&batch_of(FORGER, vec![late])).unwrap();
    assert_eq!(res["accepted"], 1, "{res}");
    assert_eq!(row_r(&b), None);
    assert!(b.conflicts().is_empty(), "{:?}", b.conflicts());
}
