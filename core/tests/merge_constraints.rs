//! Owns tests of changes that violate a constraint on apply: UNIQUE, NOT NULL, CHECK, FOREIGN KEY become pending 'constraint' conflicts, nothing half-applied.
mod common;

use common::*;
use serde_json::Value as Json;

/// A and B with their own schemas for table(s) `tables`, all tracked (timestamp_wins).
fn peers(schema_a: &str, schema_b: &str, tables: &[&str]) -> (Peer, Peer) {
    let a = Peer::new("A", schema_a);
    let b = Peer::new("B", schema_b);
    for t in tables {
        a.track(t, "timestamp_wins");
        b.track(t, "timestamp_wins");
    }
    (a, b)
}

fn constraint_conflicts(res: &Json) -> Vec<Json> {
    res["conflicts"].as_array().unwrap().iter().filter(|c| c["kind"] == "constraint").cloned().collect()
}

/// Applies what A has to B; returns the result (which must not be an error).
fn push(a: &Peer, b: &Peer) -> Json {
    let batch = a.changes(&b.vector(), 1000);
    match b.apply(&batch) {
        Ok(r) => r,
        Err(e) => panic!("a change violating a constraint failed the whole batch: {e}"),
    }
}

/// A constraint conflict over a record new here waits for a person: a later change of the
/// same origin to that record, based on the refused one, does not close it.
#[test]
fn a_later_change_of_the_refused_record_leaves_the_constraint_conflict_pending() {
    let schema = "CREATE TABLE u(id TEXT PRIMARY KEY, email TEXT UNIQUE, note)";
    let (a, b) = peers(schema, schema, &["u"]);
    a.exec("INSERT INTO u VALUES ('1', 'x@', 'A1')");
    b.exec("INSERT INTO u VALUES ('2', 'x@', 'B2')");
    assert_eq!(constraint_conflicts(&push(&a, &b)).len(), 1);
    let id = b.pending()[0];
    for later in ["UPDATE u SET note = 'A1 again' WHERE id = '1'", "DELETE FROM u WHERE id = '1'"] {
        a.exec(later);
        push(&a, &b);
        assert!(b.pending().contains(&id), "after {later}: {:?}", b.conflicts());
    }
}

#[test]
fn unique_violation_becomes_a_pending_constraint_conflict() {
    let schema = "CREATE TABLE u(id TEXT PRIMARY KEY, email TEXT UNIQUE, note)";
    let (a, b) = peers(schema, schema, &["u"]);
    a.exec("INSERT INTO u VALUES ('1', 'x@', 'A1'); INSERT INTO u VALUES ('3', 'y@', 'A3')");
    b.exec("INSERT INTO u VALUES ('2', 'x@', 'B2')");
    let res = push(&a, &b);
    assert_eq!(res["accepted"], 2, "{res}");
    let cc = constraint_conflicts(&res);
    assert_eq!(cc.len(), 1, "{res}");
    assert_eq!((cc[0]["record_id"].as_str(), cc[0]["status"].as_str()), (Some("'1'"), Some("pending")), "{res}");
    // Nothing of the refused change applied; the other change of the batch applied.
    assert_eq!(b.rows("u"), vec![vec![t("2"), t("x@"), t("B2")], vec![t("3"), t("y@"), t("A3")]], "B after the batch");
    // The refused change is logged (held, relayable) and the conflict names both sides.
    assert_eq!(b.vector_json()[&a.dev], 2);
    assert_eq!(b.verify()["ok"], true);
    let c = b.conflicts().into_iter().find(|c| c.kind == "constraint").unwrap();
    assert_eq!(c.status, "pending");
    assert_eq!(c.remote_device_id.as_deref(), Some(a.dev.as_str()));
    assert_eq!(c.remote_version, Some(1));
    assert!(c.remote_data.to_string().contains("A1"), "remote data {:?}", c.remote_data);
    assert!(!c.resolution.to_string().is_empty());

    // Choosing the remote side while the clash remains is refused, and changes nothing.
    let fp = b.fingerprint();
    let e = b.resolve(c.id, "remote").unwrap_err();
    assert!(e.contains("sync_resolve") && e.to_lowercase().contains("constraint"), "{e}");
    assert_unchanged(&fp, &b.fingerprint(), "refused sync_resolve");
    assert_eq!(b.pending(), vec![c.id]);
    // Once B frees the email, the remote side can be taken.
    b.exec("UPDATE u SET email = 'z@' WHERE id = '2'");
    assert_eq!(b.resolve(c.id, "remote").as_deref(), Ok("resolved"));
    assert_eq!(b.row("u", "id='1'"), Some(vec![t("1"), t("x@"), t("A1")]));
    assert!(b.pending().is_empty());
}

#[test]
fn unique_violation_resolved_local_keeps_the_table() {
    let schema = "CREATE TABLE u(id TEXT PRIMARY KEY, email TEXT UNIQUE, note)";
    let (a, b) = peers(schema, schema, &["u"]);
    a.exec("INSERT INTO u VALUES ('1', 'x@', 'A1')");
    b.exec("INSERT INTO u VALUES ('2', 'x@', 'B2')");
    let res = push(&a, &b);
    let id = constraint_conflicts(&res)[0]["id"].as_i64().unwrap();
    let before = b.rows("u");
    assert_eq!(b.resolve(id, "local").as_deref(), Ok("resolved"));
    assert_eq!(b.rows("u"), before);
    assert!(b.pending().is_empty());
}

#[test]
fn not_null_violation_becomes_a_constraint_conflict() {
    let (a, b) =
        peers("CREATE TABLE n(id TEXT PRIMARY KEY, v)", "CREATE TABLE n(id TEXT PRIMARY KEY, v NOT NULL)", &["n"]);
    a.exec("INSERT INTO n VALUES ('1', NULL); INSERT INTO n VALUES ('2', 'ok')");
    let res = push(&a, &b);
    assert_eq!(res["accepted"], 2, "{res}");
    let cc = constraint_conflicts(&res);
    assert_eq!(cc.len(), 1, "{res}");
    assert_eq!(cc[0]["record_id"], "'1'");
    assert_eq!(b.rows("n"), vec![vec![t("2"), t("ok")]]);
    assert_eq!(b.pending().len(), 1);
}

/// One change writing two columns, one of which breaks a CHECK: neither column changes.
#[test]
fn check_violation_applies_no_column_of_the_change() {
    let (a, b) = peers(
        "CREATE TABLE c(id TEXT PRIMARY KEY, a, b)",
        "CREATE TABLE c(id TEXT PRIMARY KEY, a, b CHECK (b >= 0))",
        &["c"],
    );
    a.exec("INSERT INTO c VALUES ('1', 'a0', 5)");
    push(&a, &b);
    assert_eq!(b.rows("c"), vec![vec![t("1"), t("a0"), V::Int(5)]]);
    a.exec("UPDATE c SET a = 'a1', b = -1 WHERE id = '1'");
    let res = push(&a, &b);
    let cc = constraint_conflicts(&res);
    assert_eq!(cc.len(), 1, "{res}");
    assert_eq!(cc[0]["status"], "pending");
    assert_eq!(b.rows("c"), vec![vec![t("1"), t("a0"), V::Int(5)]], "half-applied");
    assert_eq!(b.verify()["ok"], true);
}

#[test]
fn check_violation_on_insert_inserts_nothing() {
    let (a, b) = peers(
        "CREATE TABLE c(id TEXT PRIMARY KEY, a, b)",
        "CREATE TABLE c(id TEXT PRIMARY KEY, a, b CHECK (b >= 0))",
        &["c"],
    );
    a.exec("INSERT INTO c VALUES ('1', 'a0', -5); INSERT INTO c VALUES ('2', 'a2', 2)");
    let res = push(&a, &b);
    assert_eq!(constraint_conflicts(&res).len(), 1, "{res}");
    assert_eq!(b.rows("c"), vec![vec![t("2"), t("a2"), V::Int(2)]]);
}

const FK: &str = "CREATE TABLE parent(id TEXT PRIMARY KEY, name);
                  CREATE TABLE child(id TEXT PRIMARY KEY, pid REFERENCES parent(id))";

#[test]
fn foreign_key_violation_becomes_a_constraint_conflict() {
    let (a, b) = peers(FK, FK, &["parent", "child"]);
    b.exec("PRAGMA foreign_keys = ON");
    // A does not enforce foreign keys.
    a.exec("PRAGMA foreign_keys = OFF");
    a.exec(
        "INSERT INTO child VALUES ('c1', 'nope');
         INSERT INTO parent VALUES ('p1', 'P');
         INSERT INTO child VALUES ('c2', 'p1');",
    );
    let res = push(&a, &b);
    assert_eq!(res["accepted"], 3, "{res}");
    let cc = constraint_conflicts(&res);
    assert_eq!(cc.len(), 1, "{res}");
    assert_eq!((cc[0]["table_name"].as_str(), cc[0]["record_id"].as_str()), (Some("child"), Some("'c1'")));
    assert_eq!(b.rows("child"), vec![vec![t("c2"), t("p1")]]);
    assert_eq!(b.rows("parent"), vec![vec![t("p1"), t("P")]]);
    assert_eq!(b.int("SELECT count(*) FROM pragma_foreign_key_check"), 0);
}

/// Deleting a parent that still has children here violates the foreign key: the delete is
/// held as a constraint conflict and the parent stays.
#[test]
fn foreign_key_violating_delete_becomes_a_constraint_conflict() {
    let (a, b) = peers(FK, FK, &["parent", "child"]);
    b.exec("PRAGMA foreign_keys = ON");
    a.exec("INSERT INTO parent VALUES ('p1', 'P'); INSERT INTO child VALUES ('c2', 'p1')");
    push(&a, &b);
    a.exec("PRAGMA foreign_keys = OFF");
    a.exec("DELETE FROM parent WHERE id = 'p1'");
    let res = push(&a, &b);
    let cc = constraint_conflicts(&res);
    assert_eq!(cc.len(), 1, "{res}");
    assert_eq!(cc[0]["record_id"], "'p1'");
    assert_eq!(b.rows("parent"), vec![vec![t("p1"), t("P")]]);
    assert_eq!(b.int("SELECT count(*) FROM pragma_foreign_key_check"), 0);
}

/// A constraint conflict in the middle of a batch: the changes before and after it apply,
/// and applying the batch again changes nothing (no second conflict).
#[test]
fn constraint_conflict_mid_batch_and_idempotence() {
    let schema = "CREATE TABLE u(id TEXT PRIMARY KEY, email TEXT UNIQUE, note)";
    let (a, b) = peers(schema, schema, &["u"]);
    b.exec("INSERT INTO u VALUES ('b', 'x@', 'B')");
    a.exec(
        "INSERT INTO u VALUES ('0', 'a@', 'first');
         INSERT INTO u VALUES ('1', 'x@', 'clash');
         INSERT INTO u VALUES ('2', 'c@', 'last');",
    );
    let batch = a.changes(&b.vector(), 1000);
    let r = b.apply(&batch).unwrap();
    assert_eq!((r["accepted"].as_i64(), constraint_conflicts(&r).len()), (Some(3), 1), "{r}");
    assert_eq!(b.rows("u").len(), 3);
    let fp = b.fingerprint();
    let r2 = b.apply(&batch).unwrap();
    assert_eq!(r2["accepted"], 0, "{r2}");
    assert_unchanged(&fp, &b.fingerprint(), "second apply");
}

/// DESIGN.md's trap: `INSERT OR REPLACE` that removes another row through a secondary UNIQUE
/// index fires no DELETE trigger. Whatever peersync does about it, the peers must agree.
#[test]
fn insert_or_replace_removing_another_row_through_a_unique_index_syncs() {
    let schema = "CREATE TABLE u(id TEXT PRIMARY KEY, email TEXT UNIQUE, note)";
    let (a, b) = peers(schema, schema, &["u"]);
    a.exec("INSERT INTO u VALUES ('1', 'x@', 'one'); INSERT INTO u VALUES ('3', 'y@', 'three')");
    push(&a, &b);
    a.exec("INSERT OR REPLACE INTO u VALUES ('2', 'x@', 'two')"); // removes row '1'
    assert_eq!(a.rows("u"), vec![vec![t("2"), t("x@"), t("two")], vec![t("3"), t("y@"), t("three")]]);
    let res = push(&a, &b);
    assert!(b.pending().is_empty(), "{res}");
    assert_eq!(b.rows("u"), a.rows("u"));
    // And the other way round, through an UPDATE OR REPLACE.
    b.exec("UPDATE OR REPLACE u SET email = 'y@' WHERE id = '2'"); // removes row '3'
    assert_eq!(b.rows("u"), vec![vec![t("2"), t("y@"), t("two")]]);
    let res = push(&b, &a);
    assert!(a.pending().is_empty(), "{res}");
    assert_eq!(a.rows("u"), b.rows("u"));
}

/// An error on B that is not a constraint (a trigger of the app's that reads a table B lacks)
/// is not a conflict: the batch fails whole, with SQLite's error, and nothing changes.
#[test]
fn an_error_that_is_not_a_constraint_fails_the_batch() {
    let schema = "CREATE TABLE u(id TEXT PRIMARY KEY, note)";
    let (a, b) = peers(schema, schema, &["u"]);
    b.exec("CREATE TABLE audit(x); CREATE TRIGGER u_audit AFTER INSERT ON u BEGIN INSERT INTO audit SELECT * FROM gone_away; END");
    b.exec("CREATE TABLE gone_away(x); DROP TABLE gone_away");
    a.exec("INSERT INTO u VALUES ('1', 'A1')");
    let batch = a.changes(&b.vector(), 1000); // (B's vector: tracked tables look at the new schema)
    let fp = b.fingerprint();
    let e = b.apply(&batch).unwrap_err();
    assert!(e.contains("no such table: main.gone_away"), "{e}");
    assert_unchanged(&fp, &b.fingerprint(), "a batch failed by a non-constraint error");
    assert!(b.pending().is_empty());
}

/// Inside the caller's own transaction (foreign keys on), a change that violates a foreign key
/// becomes a constraint conflict at once, so the caller's COMMIT has nothing left to fail on.
#[test]
fn a_foreign_key_violation_inside_the_caller_s_transaction_is_a_conflict() {
    let (a, b) = peers(
        "CREATE TABLE p(id TEXT PRIMARY KEY); CREATE TABLE ch(id TEXT PRIMARY KEY, pid TEXT)",
        "CREATE TABLE p(id TEXT PRIMARY KEY); CREATE TABLE ch(id TEXT PRIMARY KEY, pid TEXT REFERENCES p(id))",
        &["p", "ch"],
    );
    a.exec("INSERT INTO ch VALUES ('c1', 'nope'); INSERT INTO p VALUES ('p2')");
    b.exec("PRAGMA foreign_keys = ON; BEGIN");
    let res = b.apply(&a.changes(&b.vector(), 1000)).unwrap();
    b.exec("COMMIT");
    assert_eq!(constraint_conflicts(&res).len(), 1, "{res}");
    assert_eq!(b.rows("ch"), Vec::<Vec<V>>::new());
    assert_eq!(b.rows("p"), vec![vec![t("p2")]]);
}

/// The loan story (issue "never silently differ"): A deletes a loan, B edits it and adds a
/// payment (B enforces foreign keys). A keeps its delete; on B that delete meets the payment
/// and waits as a `constraint` conflict. However B settles it, both devices end alike with
/// nothing pending: taking the delete (after removing the payment) removes the loan
/// everywhere; keeping the loan (or a row of B's own) brings it back on A.
#[test]
fn a_delete_refused_by_a_constraint_is_settled_alike_everywhere() {
    const LOANS: &str = "CREATE TABLE loans(id TEXT PRIMARY KEY, amount INTEGER);
                         CREATE TABLE payments(id TEXT PRIMARY KEY, loan_id TEXT REFERENCES loans(id), amt INTEGER)";
    for choice in ["remote", "local", r#"{"amount": 300}"#] {
        let a = Peer::new("A", LOANS);
        let b = Peer::new("B", LOANS);
        for t in ["loans", "payments"] {
            a.track(t, "manual");
            b.track(t, "manual");
        }
        b.exec("PRAGMA foreign_keys = ON");
        a.exec("PRAGMA foreign_keys = OFF");
        a.exec("INSERT INTO loans VALUES ('L1', 100)");
        sync_pair(&a, &b);
        a.exec("DELETE FROM loans WHERE id = 'L1'");
        b.exec("UPDATE loans SET amount = 200 WHERE id = 'L1'; INSERT INTO payments VALUES ('P1', 'L1', 10)");
        sync_pair(&a, &b);
        let on_a = a.pending();
        assert_eq!(on_a.len(), 1, "A: {:?}", a.conflicts());
        assert_eq!(a.resolve(on_a[0], "local").as_deref(), Ok("resolved"));
        sync_pair(&a, &b);
        let on_b: Vec<_> = b.conflicts().into_iter().filter(|c| c.status == "pending").collect();
        assert_eq!(on_b.len(), 1, "B: {:?}", b.conflicts());
        assert_eq!(on_b[0].kind, "constraint", "{on_b:?}");
        if choice == "remote" {
            b.exec("DELETE FROM payments WHERE id = 'P1'");
        }
        assert_eq!(b.resolve(on_b[0].id, choice).as_deref(), Ok("resolved"));
        quiet(&[&a, &b]);
        let what = format!("B chose {choice}");
        assert!(
            a.pending().is_empty() && b.pending().is_empty(),
            "{what}: A {:?} B {:?}",
            a.conflicts(),
            b.conflicts()
        );
        assert_eq!(b.rows("loans"), a.rows("loans"), "{what}: loans differ");
        assert_eq!(b.rows("payments"), a.rows("payments"), "{what}: payments differ");
        let want = match choice {
            "remote" => vec![],
            "local" => vec![vec![t("L1"), V::Int(200)]],
            _ => vec![vec![t("L1"), V::Int(300)]],
        };
        assert_eq!(a.rows("loans"), want, "{what}");
    }
}

/// Found by the life property test: an insert refused here (a payment whose loan this device
/// never had), resolved `local` ("keep what is here": no row). The resolution must take the
/// record away everywhere; it used to write the columns as NULL, leaving the inserting device a
/// row of NULLs and this one none.
#[test]
fn an_insert_refused_by_a_constraint_and_resolved_local_is_gone_everywhere() {
    const LOANS: &str = "CREATE TABLE loans(id TEXT PRIMARY KEY, amount INTEGER);
                         CREATE TABLE payments(id TEXT PRIMARY KEY, loan_id TEXT REFERENCES loans(id), amt INTEGER)";
    for choice in ["local", "ignore", "remote"] {
        let a = Peer::new("A", LOANS);
        let b = Peer::new("B", LOANS);
        for t in ["loans", "payments"] {
            a.track(t, "manual");
            b.track(t, "manual");
        }
        a.exec("PRAGMA foreign_keys = OFF");
        b.exec("PRAGMA foreign_keys = ON");
        a.exec("INSERT INTO payments VALUES ('P1', 'L9', 10)"); // no such loan anywhere
        sync(&a, &b);
        let on_b: Vec<_> = b.conflicts().into_iter().filter(|c| c.status == "pending").collect();
        assert_eq!(on_b.len(), 1, "{:?}", b.conflicts());
        assert_eq!(on_b[0].kind, "constraint");
        if choice == "remote" {
            b.exec("INSERT INTO loans VALUES ('L9', 5)"); // the person fixes the data first
        }
        let status = if choice == "ignore" { "ignored" } else { "resolved" };
        assert_eq!(b.resolve(on_b[0].id, choice).as_deref(), Ok(status));
        quiet(&[&a, &b]);
        let what = format!("B chose {choice}");
        assert!(a.pending().is_empty() && b.pending().is_empty(), "{what}");
        assert_eq!(a.rows("payments"), b.rows("payments"), "{what}");
        assert_eq!(a.rows("loans"), b.rows("loans"), "{what}");
        let want = if choice == "remote" { vec![vec![t("P1"), t("L9"), V::Int(10)]] } else { vec![] };
        assert_eq!(a.rows("payments"), want, "{what}");
    }
}
