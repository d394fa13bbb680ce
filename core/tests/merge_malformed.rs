//! Owns tests of malformed batches: each gets a clear `sync_apply` error naming the problem and changes nothing.
mod common;

use common::*;
use serde_json::{json, Value as Json};

const F: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const TS: i64 = 1_700_000_000_000_000;

/// The receiver: t1/t2 tracked, an untracked table, some data, everything sealed.
fn receiver() -> Peer {
    let b = Peer::new("B", &format!("{T1_SQL}; {T2_SQL}; CREATE TABLE plain(id TEXT PRIMARY KEY, v);"));
    b.track("t1", "timestamp_wins");
    b.track("t2", "timestamp_wins");
    b.exec("INSERT INTO t1 VALUES ('mine', 1, 2, 3); INSERT INTO plain VALUES ('p', 1)");
    b.seal();
    b
}

/// A valid first change of forger F: INSERT t1 'k'.
fn good() -> Json {
    Forger::new(F).change("t1", "'k'", "INSERT", r#"{"id":"k","a":1,"b":2,"c":3}"#, "{}", TS, false)
}

/// The good change altered by `f`, then re-hashed (so only the alteration is wrong).
fn hashed(f: impl FnOnce(&mut Json)) -> String {
    let mut e = good();
    f(&mut e);
    e["hash"] = json!(hash_entry(&e, ""));
    batch_of(F, vec![e])
}

/// The good change altered by `f`, not re-hashed (for alterations of the wire shape).
fn raw(f: impl FnOnce(&mut Json)) -> String {
    let mut e = good();
    f(&mut e);
    batch_of(F, vec![e])
}

/// The batch must be refused with an error that contains "sync_apply" and, for each group
/// of `any_of`, at least one of its words (case-insensitive); the database must not change.
fn refused(what: &str, batch: &str, any_of: &[&[&str]]) -> Vec<String> {
    let b = receiver();
    let fp = b.fingerprint();
    let e = match b.apply(batch) {
        Ok(r) => return vec![format!("{what}: ACCEPTED ({r})")],
        Err(e) => e,
    };
    let mut problems = Vec::new();
    let low = e.to_lowercase();
    if !low.contains("sync_apply") {
        problems.push(format!("{what}: error does not name sync_apply: {e:?}"));
    }
    for group in any_of {
        if !group.iter().any(|w| low.contains(&w.to_lowercase())) {
            problems.push(format!("{what}: error {e:?} mentions none of {group:?}"));
        }
    }
    let after = b.fingerprint();
    if after != fp {
        problems.push(format!("{what}: the database changed ({e})"));
    }
    assert!(b.row("t1", "id='mine'").is_some() && b.row("plain", "id='p'").is_some(), "{what}: tables damaged");
    problems
}

fn check_all(cases: Vec<(&str, String, &[&[&str]])>) {
    let mut problems = Vec::new();
    for (what, batch, words) in &cases {
        problems.extend(refused(what, batch, words));
    }
    assert!(
        problems.is_empty(),
        "{} of {} malformed batches handled badly:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
}

/// Sanity: the crafted change the others alter is accepted as it is.
#[test]
fn crafted_good_batch_applies() {
    let b = receiver();
    let r = b.apply(&batch_of(F, vec![good()])).unwrap();
    assert_eq!(r["accepted"], 1, "{r}");
    assert_eq!(b.row("t1", "id='k'"), Some(vec![t("k"), V::Int(1), V::Int(2), V::Int(3)]));
}

#[test]
fn not_json_or_wrong_shape() {
    check_all(vec![
        ("not JSON", "this is not json".into(), &[&["json", "malformed"]]),
        ("empty", "".into(), &[&["json", "malformed", "empty"]]),
        ("truncated", batch_of(F, vec![good()])[..40].to_string(), &[&["json", "malformed"]]),
        ("a JSON array", "[]".into(), &[&["object", "malformed"]]),
        ("a JSON string", "\"batch\"".into(), &[&["object", "malformed"]]),
        (
            "format 2",
            json!({"format": 2, "device_id": F, "changes": [], "has_more": false}).to_string(),
            &[&["format"]],
        ),
    ]);
}

#[test]
fn missing_fields() {
    let mut cases: Vec<(String, String, &[&[&str]])> = Vec::new();
    for field in ["format", "device_id", "changes", "has_more"] {
        let mut b: Json = serde_json::from_str(&batch_of(F, vec![good()])).unwrap();
        b.as_object_mut().unwrap().remove(field);
        cases.push((format!("batch without {field}"), b.to_string(), &[]));
    }
    for field in [
        "table_name",
        "record_id",
        "operation",
        "change_data",
        "device_id",
        "version",
        "timestamp",
        "bases",
        "resolution",
        "hash",
    ] {
        cases.push((
            format!("change without {field}"),
            raw(|e| {
                e.as_object_mut().unwrap().remove(field);
            }),
            &[],
        ));
    }
    // Each message must name the missing field.
    let mut problems = Vec::new();
    for (what, batch, _) in &cases {
        let field = what.rsplit(' ').next().unwrap();
        problems.extend(refused(what, batch, &[&[field]]));
    }
    assert!(problems.is_empty(), "{} of {} handled badly:\n{}", problems.len(), cases.len(), problems.join("\n"));
}

#[test]
fn wrong_types() {
    check_all(vec![
        (
            "changes is a string",
            json!({"format": 1, "device_id": F, "changes": "x", "has_more": false}).to_string(),
            &[&["changes"]],
        ),
        (
            "format is a string",
            json!({"format": "1", "device_id": F, "changes": [], "has_more": false}).to_string(),
            &[&["format"]],
        ),
        (
            "has_more is a string",
            json!({"format": 1, "device_id": F, "changes": [], "has_more": "no"}).to_string(),
            &[&["has_more"]],
        ),
        (
            "vector is a list",
            json!({"format": 1, "device_id": F, "changes": [], "has_more": false, "vector": [1]}).to_string(),
            &[&["vector"]],
        ),
        ("version is a string", raw(|e| e["version"] = json!("1")), &[&["version"]]),
        ("timestamp is a real", raw(|e| e["timestamp"] = json!(1.5)), &[&["timestamp"]]),
        ("change_data is an object", raw(|e| e["change_data"] = json!({"id": "k"})), &[&["change_data"]]),
        ("resolution is a string", raw(|e| e["resolution"] = json!("no")), &[&["resolution"]]),
        ("table_name is a number", raw(|e| e["table_name"] = json!(1)), &[&["table_name"]]),
        ("a change is a string", batch_of(F, vec![json!("change")]), &[&["change", "malformed"]]),
        ("change_data is not JSON", hashed(|e| e["change_data"] = json!("{\"id\":")), &[&["change_data"]]),
        ("change_data is a list", hashed(|e| e["change_data"] = json!("[1]")), &[&["change_data"]]),
        ("bases is not JSON", hashed(|e| e["bases"] = json!("{")), &[&["bases"]]),
        ("bases.live is not a list", hashed(|e| e["bases"] = json!(r#"{"live":"x"}"#)), &[&["bases"]]),
        ("bases holds a bad reference", hashed(|e| e["bases"] = json!(r#"{"cols":{"a":["nocolon"]}}"#)), &[&["bases"]]),
        (
            "value is a boolean",
            hashed(|e| e["change_data"] = json!(r#"{"id":"k","a":true,"b":2,"c":3}"#)),
            &[&["boolean"]],
        ),
        ("value is a list", hashed(|e| e["change_data"] = json!(r#"{"id":"k","a":[1],"b":2,"c":3}"#)), &[&["\"a\""]]),
        (
            "value is an unknown object",
            hashed(|e| e["change_data"] = json!(r#"{"id":"k","a":{"$date":"x"},"b":2,"c":3}"#)),
            &[&["\"a\""]],
        ),
        (
            "blob is not hex",
            hashed(|e| e["change_data"] = json!(r#"{"id":"k","a":{"$blob":"zz"},"b":2,"c":3}"#)),
            &[&["blob"]],
        ),
        ("hash is not hex", raw(|e| e["hash"] = json!("z".repeat(64))), &[&["hash"]]),
        ("unknown operation", hashed(|e| e["operation"] = json!("MERGE")), &[&["operation", "MERGE"]]),
    ]);
}

/// A change naming a table or column not tracked here is no malformed batch: it is logged and
/// waits for the schema (see `schema_changes.rs`), whatever the name holds, and no name reaches
/// SQL as text. Only names no table or column can ever have are refused.
fn held(what: &str, batch: &str, reason: &str) -> Vec<String> {
    let b = receiver();
    let schema = b.rows("sqlite_master");
    let mut problems = Vec::new();
    match b.apply(batch) {
        Err(e) => problems.push(format!("{what}: refused ({e})")),
        Ok(r) if r["accepted"] != 1 || r["schema_waiting"] != 1 => problems.push(format!("{what}: {r}")),
        Ok(_) => {}
    }
    let got = b.str("SELECT ifnull((SELECT group_concat(reason) FROM sync_schema_waiting), '')");
    if got != reason {
        problems.push(format!("{what}: waits for {got:?}, not {reason:?}"));
    }
    if b.rows("sqlite_master") != schema {
        problems.push(format!("{what}: the schema changed"));
    }
    assert!(b.row("t1", "id='mine'").is_some() && b.row("plain", "id='p'").is_some(), "{what}: tables damaged");
    assert_eq!(b.row("t1", "id='k'"), None, "{what}: applied");
    problems
}

fn check_held(cases: Vec<(&str, String, &str)>) {
    let problems: Vec<String> = cases.iter().flat_map(|(what, batch, reason)| held(what, batch, reason)).collect();
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn unknown_untracked_and_nonexistent_names() {
    check_held(vec![
        ("unknown table", hashed(|e| e["table_name"] = json!("nosuch")), "unknown_table"),
        (
            "untracked table",
            hashed(|e| {
                e["table_name"] = json!("plain");
                e["change_data"] = json!(r#"{"id":"k","v":1}"#);
            }),
            "unknown_table",
        ),
        (
            "column that does not exist",
            hashed(|e| e["change_data"] = json!(r#"{"id":"k","a":1,"b":2,"c":3,"zzz":4}"#)),
            "unknown_column",
        ),
        (
            "column name differing in case",
            hashed(|e| e["change_data"] = json!(r#"{"id":"k","A":1,"b":2,"c":3}"#)),
            "unknown_column",
        ),
    ]);
    check_all(vec![(
        "peersync's own table",
        hashed(|e| {
            e["table_name"] = json!("sync_log");
            e["record_id"] = json!("1");
            e["change_data"] = json!(r#"{"id":1}"#);
        }),
        &[&["sync_log"], &["can never be"]],
    )]);
}

#[test]
fn hostile_identifiers() {
    check_held(vec![
        ("table name with SQL", hashed(|e| e["table_name"] = json!("t1\"; DROP TABLE t1; --")), "unknown_table"),
        (
            "table name with quote",
            hashed(|e| e["table_name"] = json!("t1'); DELETE FROM sync_log; --")),
            "unknown_table",
        ),
        (
            "column name with SQL",
            hashed(|e| e["change_data"] = json!(r#"{"id":"k","a\" = 1; DROP TABLE t1; --":1}"#)),
            "unknown_column",
        ),
        (
            "bases column with SQL",
            hashed(|e| {
                e["operation"] = json!("DELETE");
                e["change_data"] = json!("{}");
                e["bases"] = json!(r#"{"seen":{"x\"; DROP TABLE t1; --":null}}"#);
            }),
            "unknown_column",
        ),
    ]);
    check_all(vec![
        (
            "column name with NUL",
            hashed(|e| e["change_data"] = json!("{\"id\":\"k\",\"a\\u0000\":1}")),
            &[&["does not exist"]],
        ),
        ("table name with NUL", hashed(|e| e["table_name"] = json!("t1\u{0}")), &[&["can never be"]]),
        ("record_id with SQL", hashed(|e| e["record_id"] = json!("'k'); DROP TABLE t1; --")), &[&["record_id"]]),
    ]);
}

#[test]
fn huge_numbers() {
    check_all(vec![
        ("value 1e400", hashed(|e| e["change_data"] = json!(r#"{"id":"k","a":1e400,"b":2,"c":3}"#)), &[&["1e400", "fit", "range"]]),
        ("value 99999999999999999999", hashed(|e| e["change_data"] = json!(r#"{"id":"k","a":99999999999999999999,"b":2,"c":3}"#)), &[&["99999999999999999999", "fit", "range"]]),
        ("value -99999999999999999999", hashed(|e| e["change_data"] = json!(r#"{"id":"k","a":-99999999999999999999,"b":2,"c":3}"#)), &[&["99999999999999999999", "fit", "range"]]),
        ("version 99999999999999999999", r#"{"format":1,"device_id":"F","changes":[{"table_name":"t1","record_id":"'k'","operation":"INSERT","change_data":"{}","device_id":"F","version":99999999999999999999,"timestamp":1,"bases":"{}","resolution":false,"hash":"H"}],"has_more":false}"#.replace('F', F).replace('H', &"0".repeat(64)), &[&["version", "99999999999999999999"]]),
        ("timestamp 1e400", r#"{"format":1,"device_id":"F","changes":[{"table_name":"t1","record_id":"'k'","operation":"INSERT","change_data":"{}","device_id":"F","version":1,"timestamp":1e400,"bases":"{}","resolution":false,"hash":"H"}],"has_more":false}"#.replace('F', F).replace('H', &"0".repeat(64)), &[&["timestamp", "1e400"]]),
        ("format 1e400", json!({"format": 1, "device_id": F, "changes": [], "has_more": false}).to_string().replace("\"format\":1", "\"format\":1e400"), &[&["format"]]),
    ]);
}

#[test]
fn bad_record_ids() {
    check_all(vec![
        ("unterminated text", hashed(|e| e["record_id"] = json!("'k")), &[&["record_id"]]),
        ("not a literal", hashed(|e| e["record_id"] = json!("k")), &[&["record_id"]]),
        ("empty", hashed(|e| e["record_id"] = json!("")), &[&["record_id"]]),
        ("two values for a one-column key", hashed(|e| e["record_id"] = json!("'k','x'")), &[&["record_id"]]),
        ("trailing space", hashed(|e| e["record_id"] = json!("'k' ")), &[&["record_id"]]),
        ("disagrees with the key column", hashed(|e| e["record_id"] = json!("'j'")), &[&["record_id", "disagree"]]),
        (
            "NULL key",
            hashed(|e| {
                e["record_id"] = json!("NULL");
                e["change_data"] = json!(r#"{"id":null,"a":1,"b":2,"c":3}"#);
            }),
            &[&["record_id", "null"]],
        ),
        (
            "one value for a two-column key",
            hashed(|e| {
                e["table_name"] = json!("t2");
                e["record_id"] = json!("'k'");
                e["change_data"] = json!(r#"{"k":"k","n":1,"x":1,"y":2}"#);
            }),
            &[&["record_id"]],
        ),
    ]);
}

#[test]
fn bad_device_ids_versions_timestamps() {
    let dev = |d: &str| {
        let d = d.to_string();
        hashed(move |e| e["device_id"] = json!(d))
    };
    check_all(vec![
        ("device id not hex", dev("XYZ"), &[&["device_id"]]),
        ("device id uppercase", dev(&F.to_uppercase()), &[&["device_id"]]),
        ("device id 31 characters", dev(&F[1..]), &[&["device_id"]]),
        ("device id empty", dev(""), &[&["device_id"]]),
        ("device id with SQL", dev("a'; DROP TABLE t1; --"), &[&["device_id"]]),
        ("negative version", hashed(|e| e["version"] = json!(-1)), &[&["version"]]),
        ("version 0", hashed(|e| e["version"] = json!(0)), &[&["version"]]),
        ("negative timestamp", hashed(|e| e["timestamp"] = json!(-5)), &[&["timestamp"]]),
        (
            "batch sender not a device id",
            {
                let mut b: Json = serde_json::from_str(&batch_of(F, vec![good()])).unwrap();
                b["device_id"] = json!("<script>");
                b.to_string()
            },
            &[&["device_id"]],
        ),
    ]);
}

/// A change that claims to come from the receiver itself, which never made it.
#[test]
fn change_claiming_to_be_the_receivers_own_is_refused() {
    let b = receiver();
    let fp = b.fingerprint();
    let mut e = good();
    e["device_id"] = json!(b.dev);
    e["version"] = json!(b.own_version() + 1);
    e["hash"] = json!(hash_entry(&e, &b.log().last().unwrap().hash.clone().unwrap()));
    let err = b.apply(&batch_of(F, vec![e])).unwrap_err();
    assert!(err.contains("sync_apply") && err.contains(&b.dev) && err.contains("quarantined"), "{err}");
    assert_eq!(b.int(&format!("SELECT sync_release('{F}')")), 1, "the sender was quarantined");
    assert_unchanged(&fp, &b.fingerprint(), "forged own change");
}

/// Atomicity for malformed input: valid changes before a malformed one are not applied.
#[test]
fn malformed_change_after_valid_ones_applies_nothing() {
    let mut f = Forger::new(F);
    let c1 = f.change("t1", "'k1'", "INSERT", r#"{"id":"k1","a":1,"b":2,"c":3}"#, "{}", TS, false);
    let c2 = f.change("t2", "'k',1", "INSERT", r#"{"k":"k","n":1,"x":1,"y":2}"#, "{}", TS + 1, false);
    let c3 = f.change("t1", "'k3'", "INSERT", r#"{"id":"k3","a":true}"#, "{}", TS + 2, false);
    let problems =
        refused("a boolean in the last change", &batch_of(F, vec![c1, c2, c3]), &[&["boolean"], &[&format!("{F}:3")]]);
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A NULL primary key identifies no row (local capture ignores such rows): a received change
/// naming record NULL must be refused. Seen failing: accepted, and an INSERT, an UPDATE and a
/// re-INSERT of record NULL made three different rows.
#[test]
fn null_key_changes_are_refused() {
    let b = receiver();
    let fp = b.fingerprint();
    let mut f = Forger::new(F);
    let r1 = format!("{F}:1");
    let c1 = f.change("t1", "NULL", "INSERT", r#"{"id":null,"a":1,"b":2,"c":3}"#, "{}", TS, false);
    let c2 = f.change(
        "t1",
        "NULL",
        "UPDATE",
        r#"{"a":5}"#,
        &json!({"live": [r1], "cols": {"a": [r1]}}).to_string(),
        TS + 1,
        false,
    );
    let c3 = f.change(
        "t1",
        "NULL",
        "INSERT",
        r#"{"id":null,"a":7,"b":7,"c":7}"#,
        &json!({"live": [r1]}).to_string(),
        TS + 2,
        false,
    );
    let res = b.apply(&batch_of(F, vec![c1, c2, c3]));
    let rows: Vec<Vec<V>> = b.rows("t1").into_iter().filter(|r| r[0] == V::Null).collect();
    assert!(res.is_err(), "accepted: {res:?}; t1 now holds NULL-key rows {rows:?}");
    let e = res.unwrap_err();
    assert!(e.contains("sync_apply") && e.contains("record_id"), "{e}");
    assert_unchanged(&fp, &b.fingerprint(), "NULL-key batch");
}

/// Each origin's changes must come in consecutive versions; an exact repeat of an earlier
/// change is a duplicate, but a "repeat" with another hash, a gap or a step back is refused.
#[test]
fn versions_out_of_order_within_a_batch() {
    let mut f = Forger::new(F);
    let c: Vec<Json> = (1..=3)
        .map(|i| {
            f.change(
                "t1",
                &format!("'k{i}'"),
                "INSERT",
                &format!(r#"{{"id":"k{i}","a":{i},"b":2,"c":3}}"#),
                "{}",
                TS + i,
                false,
            )
        })
        .collect();
    let mut altered = c[0].clone();
    altered["timestamp"] = json!(TS + 100);
    altered["hash"] = json!(hash_entry(&altered, ""));
    let order = "consecutive versions";
    check_all(vec![
        ("a gap", batch_of(F, vec![c[0].clone(), c[2].clone()]), &[&[order], &[&format!("{F}:3")], &["version 1"]]),
        (
            "a step back",
            batch_of(F, vec![c[1].clone(), c[0].clone()]),
            &[&[order], &[&format!("{F}:1")], &["version 2"]],
        ),
        (
            "a repeat with another hash",
            batch_of(F, vec![c[0].clone(), c[1].clone(), altered]),
            &[&[order], &[&format!("{F}:1")]],
        ),
    ]);
    let b = receiver();
    let r = b.apply(&batch_of(F, vec![c[0].clone(), c[1].clone(), c[0].clone(), c[2].clone(), c[1].clone()])).unwrap();
    assert_eq!((r["accepted"].as_i64(), r["duplicates"].as_i64()), (Some(3), Some(2)), "{r}");
}
