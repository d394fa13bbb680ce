//! Schemas that differ for a while (DESIGN's amendment, issue 16 item 3): a change naming a
//! table or column the receiver lacks is logged and held (never dropped, never blocking other
//! tables or records), shown in status, and applied once the local schema has it; tracked
//! tables follow ALTER TABLE and DROP TABLE by themselves, before a write is missed.
mod common;
use common::*;
use rusqlite::Connection;
use serde_json::{json, Value as Json};

fn status(p: &Peer) -> Json {
    p.json("SELECT sync_status()")
}

/// `schema_waiting` of `p`'s status as {(table, reason): changes}.
fn waiting(p: &Peer) -> std::collections::BTreeMap<(String, String), i64> {
    status(p)["schema_waiting"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                (w["table"].as_str().unwrap().to_string(), w["reason"].as_str().unwrap().to_string()),
                w["changes"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn key(t: &str, r: &str) -> (String, String) {
    (t.to_string(), r.to_string())
}

/// Every tracked table of both peers (t1, t2 and any `more`) equal, vectors equal, chains whole.
fn assert_all_same(a: &Peer, b: &Peer, more: &[&str]) {
    assert_same(a, b);
    assert_eq!(a.snapshot(more), b.snapshot(more), "tables {more:?} differ");
}

#[test]
fn a_change_naming_a_column_the_receiver_lacks_is_logged_held_and_lands_once_the_column_is_added() {
    let a = Peer::standard("A", "timestamp_wins", "timestamp_wins");
    let b = Peer::standard("B", "timestamp_wins", "timestamp_wins");
    a.exec("INSERT INTO t1 VALUES ('r0', 0, 0, 0); INSERT INTO t1 VALUES ('r1', 1, 1, 1)");
    sync(&a, &b);
    // A adds a column and writes it; no sync_track: A's triggers follow by themselves. These
    // writes were captured by the triggers from before the ALTER: their other columns are
    // logged as they were captured, and the new column's values when the triggers follow.
    a.exec("ALTER TABLE t1 ADD COLUMN x");
    a.exec("UPDATE t1 SET x = 'new', a = 10 WHERE id = 'r1'");
    a.exec("INSERT INTO t1 VALUES ('r2', 2, 2, 2, 'x2')");
    let res = sync_once(&a, &b, 1000).1.expect("B takes the batch: nothing refused, nothing blocked");
    assert_eq!((res["accepted"].as_i64(), res["schema_waiting"].as_i64()), (Some(4), Some(2)), "{res}");
    assert_eq!(b.row("t1", "id='r1'"), Some(vec![t("r1"), V::Int(10), V::Int(1), V::Int(1)]));
    assert_eq!(b.row("t1", "id='r2'"), Some(vec![t("r2"), V::Int(2), V::Int(2), V::Int(2)]));
    // Written after the triggers followed: each change names the column.
    a.exec("UPDATE t1 SET b = 20 WHERE id = 'r1'"); // names no new column, but r1 waits at B
    a.exec("INSERT INTO t1 VALUES ('r3', 3, 3, 3, 'x3')");
    a.exec("UPDATE t1 SET b = 9 WHERE id = 'r0'"); // another record: flows
    a.exec("INSERT INTO t2 VALUES ('k', 1, 'x', 'y')"); // another table: flows
    let res = sync_once(&a, &b, 1000).1.expect("B takes the batch");
    assert_eq!((res["accepted"].as_i64(), res["schema_waiting"].as_i64()), (Some(4), Some(2)), "{res}");
    assert_eq!(res["deferred"], 0, "{res}");
    // Logged: B holds all of A's chain, and relays it.
    assert_eq!(b.vector_json(), a.vector_json());
    assert_eq!(b.verify()["ok"], true);
    // The held records keep their value; the rest applied.
    assert_eq!(b.row("t1", "id='r1'"), Some(vec![t("r1"), V::Int(10), V::Int(1), V::Int(1)]));
    assert_eq!(b.row("t1", "id='r3'"), None);
    assert_eq!(b.row("t1", "id='r0'"), Some(vec![t("r0"), V::Int(0), V::Int(9), V::Int(0)]));
    assert_eq!(b.rows("t2"), vec![vec![t("k"), V::Int(1), t("x"), t("y")]]);
    let w = waiting(&b);
    assert_eq!(w.get(&key("t1", "unknown_column")), Some(&3), "{w:?}");
    assert_eq!(w.get(&key("t1", "behind")), Some(&1), "{w:?}");
    let s = status(&b);
    let first = s["schema_waiting"].as_array().unwrap().iter().find(|w| w["reason"] == "unknown_column").unwrap();
    assert!(first["detail"].as_str().unwrap().contains("\"x\""), "{first}");
    assert!(first["since"].as_str().is_some(), "{first}");
    // B keeps writing and syncing both ways; A's later changes keep flowing.
    b.exec("INSERT INTO t2 VALUES ('kb', 2, 'b', 'b')");
    sync(&b, &a);
    a.exec("UPDATE t1 SET a = 11 WHERE id = 'r0'");
    sync(&a, &b);
    assert_eq!(b.row("t1", "id='r0'"), Some(vec![t("r0"), V::Int(11), V::Int(9), V::Int(0)]));
    // B adds the column: the next apply (here an empty one) merges what waited, in log order.
    b.exec("ALTER TABLE t1 ADD COLUMN x");
    let (_, res) = sync_once(&a, &b, 1000);
    let res = res.unwrap();
    assert_eq!(res["schema_applied"], 4, "{res}");
    assert_eq!(waiting(&b), Default::default());
    assert_eq!(b.row("t1", "id='r1'"), Some(vec![t("r1"), V::Int(10), V::Int(20), V::Int(1), t("new")]));
    assert_all_same(&a, &b, &[]);
    // And the new column syncs from B too (its triggers followed the ALTER).
    b.exec("UPDATE t1 SET x = 'from b' WHERE id = 'r0'");
    sync_pair(&b, &a);
    assert_eq!(a.row("t1", "id='r0'").unwrap()[4], t("from b"));
    assert_all_same(&a, &b, &[]);
}

#[test]
fn waiting_changes_are_merged_as_if_just_received_conflicts_included() {
    let a = Peer::standard("A", "manual", "manual");
    let b = Peer::standard("B", "manual", "manual");
    a.exec("INSERT INTO t1 VALUES ('r', 0, 0, 0)");
    sync(&a, &b);
    a.exec("ALTER TABLE t1 ADD COLUMN x");
    a.seal(); // the triggers follow: the next change names x and a
    a.exec("UPDATE t1 SET x = 1, a = 1 WHERE id = 'r'");
    sync(&a, &b);
    b.exec("UPDATE t1 SET a = 2 WHERE id = 'r'"); // concurrent with A's held change
    sync(&b, &a);
    assert_eq!(a.pending().len(), 1, "A sees B's edit of a as a conflict");
    b.exec("ALTER TABLE t1 ADD COLUMN x");
    let res = sync_once(&a, &b, 1000).1.unwrap();
    assert_eq!(res["schema_applied"], 1, "{res}");
    assert_eq!(res["conflicts"].as_array().unwrap().len(), 1, "{res}");
    assert_eq!(b.pending().len(), 1);
    // x applied, a kept (manual) on both sides until resolved.
    assert_eq!(row_r(&b), Some(vec![t("r"), V::Int(2), V::Int(0), V::Int(0), V::Int(1)]));
    let (ca, cb) = (a.pending()[0], b.pending()[0]);
    a.resolve(ca, "local").unwrap();
    sync_pair(&a, &b);
    let _ = cb;
    assert!(b.pending().is_empty() && a.pending().is_empty());
    assert_all_same(&a, &b, &[]);
}

#[test]
fn a_change_to_a_table_the_receiver_lacks_is_held_until_it_is_created_and_tracked() {
    let a = Peer::standard("A", "timestamp_wins", "timestamp_wins");
    let b = Peer::standard("B", "timestamp_wins", "timestamp_wins");
    a.exec("CREATE TABLE t3(id TEXT PRIMARY KEY, v)");
    a.track("t3", "timestamp_wins");
    a.exec("INSERT INTO t3 VALUES ('p', 1); INSERT INTO t3 VALUES ('q', 2); UPDATE t3 SET v = 3 WHERE id = 'p'");
    a.exec("DELETE FROM t3 WHERE id = 'q'");
    a.exec("INSERT INTO t1 VALUES ('r', 1, 2, 3)");
    let res = sync_once(&a, &b, 1000).1.expect("no whole-batch failure");
    assert_eq!(res["schema_waiting"], 4, "{res}");
    assert_eq!(b.rows("t1").len(), 1, "t1 applied");
    assert_eq!(waiting(&b), [(key("t3", "unknown_table"), 4)].into_iter().collect());
    assert_eq!(b.vector_json(), a.vector_json());
    // A third device learns t3's changes through B, which relays what it holds.
    let c = Peer::standard("C", "timestamp_wins", "timestamp_wins");
    c.exec("CREATE TABLE t3(id TEXT PRIMARY KEY, v)");
    c.track("t3", "timestamp_wins");
    sync(&b, &c);
    assert_eq!(c.rows("t3"), vec![vec![t("p"), V::Int(3)]]);
    // A's later changes keep flowing to B.
    a.exec("UPDATE t1 SET a = 5 WHERE id = 'r'; INSERT INTO t3 VALUES ('s', 4)");
    sync(&a, &b);
    assert_eq!(b.row("t1", "id='r'").unwrap()[1], V::Int(5));
    // B creates and tracks the table: what waited lands (sync_track merges it at once).
    b.exec("CREATE TABLE t3(id TEXT PRIMARY KEY, v)");
    b.track("t3", "timestamp_wins");
    assert_eq!(waiting(&b), Default::default());
    assert_eq!(b.rows("t3"), vec![vec![t("p"), V::Int(3)], vec![t("s"), V::Int(4)]]);
    quiet(&[&a, &b, &c]);
    assert_all_same(&a, &b, &["t3"]);
    assert_all_same(&a, &c, &["t3"]);
}

#[test]
fn names_no_table_can_have_are_still_refused() {
    let a = Peer::standard("A", "timestamp_wins", "timestamp_wins");
    let b = Peer::standard("B", "timestamp_wins", "timestamp_wins");
    let mut f = Forger::new(&a.dev);
    let c = f.change("sync_log", "1", "INSERT", r#"{"id":1}"#, "{}", 1_700_000_000_000_000, false);
    let err = b.apply(&batch_of(&a.dev, vec![c])).unwrap_err();
    assert!(err.contains("sync_log") && err.contains("can never be"), "{err}");
    let mut f = Forger::new(&a.dev);
    let c = f.change("t1", "'k'", "INSERT", "{\"id\":\"k\",\"a\\u0000\":1}", "{}", 1_700_000_000_000_000, false);
    let err = b.apply(&batch_of(&a.dev, vec![c])).unwrap_err();
    assert!(err.contains("no SQLite column"), "{err}");
    assert_eq!(b.int("SELECT count(*) FROM sync_log"), 0);
}

#[test]
fn a_dropped_table_stops_cleanly_is_reported_and_nothing_else_stalls() {
    let a = Peer::standard("A", "timestamp_wins", "timestamp_wins");
    let b = Peer::standard("B", "timestamp_wins", "timestamp_wins");
    a.exec("INSERT INTO t2 VALUES ('k', 1, 'x', 'y'); INSERT INTO t1 VALUES ('r', 1, 2, 3)");
    sync_pair(&a, &b);
    // Captured, not sealed yet, then the table goes: the captured writes are sealed as logged.
    a.exec("INSERT INTO t2 VALUES ('k', 2, 'before drop', 'y'); DROP TABLE t2");
    assert_eq!(a.seal(), 1);
    let s = status(&a);
    assert_eq!(s["dropped_tables"][0]["table"], "t2", "{s}");
    assert!(s["tables"].as_array().unwrap().iter().all(|t| t["table"] != "t2"), "{s}");
    // B keeps writing t2: pushing those changes to A fails nothing; t1 keeps syncing.
    b.exec("INSERT INTO t2 VALUES ('k', 3, 'b', 'b'); UPDATE t2 SET x = 'bx' WHERE k = 'k' AND n = 1");
    b.exec("UPDATE t1 SET a = 7 WHERE id = 'r'");
    let res = sync_once(&b, &a, 1000).1.expect("no HTTP 500 / batch failure for the dropped table");
    assert_eq!(res["schema_waiting"], 2, "{res}");
    assert_eq!(a.row("t1", "id='r'").unwrap()[1], V::Int(7));
    assert_eq!(waiting(&a).get(&key("t2", "unknown_table")), Some(&2));
    a.exec("UPDATE t1 SET b = 8 WHERE id = 'r'");
    sync_pair(&a, &b);
    assert_eq!(b.row("t1", "id='r'").unwrap()[2], V::Int(8));
    assert_eq!(a.verify()["ok"], true);
    let d = a.json("SELECT sync_digest()");
    assert!(d["tables"].get("t2").is_none(), "{d}");
    // A creates the table again and tracks it: its rows come back from the log, what waited
    // applies, and both devices are equal.
    a.exec(T2_SQL);
    a.track("t2", "timestamp_wins");
    assert_eq!(waiting(&a), Default::default());
    assert_eq!(status(&a)["dropped_tables"], json!([]));
    assert_eq!(a.rows("t2").len(), 3);
    sync_pair(&a, &b);
    assert_all_same(&a, &b, &[]);
}

/// The write the issue saw lost: ALTER TABLE ADD COLUMN, then a write to the new column, then
/// sync, without running sync_track again.
#[test]
fn a_value_written_to_a_new_column_before_the_triggers_refresh_is_not_lost() {
    let a = Peer::standard("A", "timestamp_wins", "timestamp_wins");
    let b = Peer::standard("B", "timestamp_wins", "timestamp_wins");
    a.exec("INSERT INTO t1 VALUES ('r', 1, 2, 3); INSERT INTO t1 VALUES ('s', 1, 2, 3)");
    sync(&a, &b);
    b.exec("ALTER TABLE t1 ADD COLUMN x DEFAULT 'd'");
    a.exec("ALTER TABLE t1 ADD COLUMN x DEFAULT 'd'");
    a.exec("UPDATE t1 SET x = 'v' WHERE id = 'r'");
    a.exec("INSERT INTO t1 VALUES ('u', 1, 2, 3, 'w')"); // captured by the old triggers
    a.exec("INSERT INTO t1(id, a, b, c) VALUES ('dflt', 1, 2, 3)"); // the default: nothing to log
    sync(&a, &b);
    assert_eq!(b.row("t1", "id='r'").unwrap()[4], t("v"));
    assert_eq!(b.row("t1", "id='u'").unwrap()[4], t("w"));
    assert_eq!(b.row("t1", "id='s'").unwrap()[4], t("d"));
    assert_eq!(b.row("t1", "id='dflt'").unwrap()[4], t("d"));
    assert_all_same(&a, &b, &[]);
    // One UPDATE per row whose new column is not its default, nothing for the others.
    let updates = a.int("SELECT count(*) FROM sync_log WHERE change_data LIKE '%\"x\"%' AND operation = 'UPDATE'");
    assert_eq!(updates, 2);
    let d = (a.json("SELECT sync_digest()"), b.json("SELECT sync_digest()"));
    assert_eq!(d.0, d.1);
}

static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A database file of its own, removed when dropped.
struct File(std::path::PathBuf);

impl File {
    fn new() -> File {
        let n = FILES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        File(std::env::temp_dir().join(format!("peersync-schema-{}-{n}.db", std::process::id())))
    }
}

impl Drop for File {
    fn drop(&mut self) {
        for ext in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{}{ext}", self.0.display()));
        }
    }
}

/// The same, written from a second connection that never loaded peersync (triggers are plain
/// SQL), with the ALTER made there too.
#[test]
fn a_write_after_alter_from_a_plain_connection_is_not_lost() {
    let file = File::new();
    let a = Peer::setup(Connection::open(&file.0).unwrap(), "A", &format!("{T1_SQL}; {T2_SQL};"));
    a.track("t1", "timestamp_wins");
    a.track("t2", "timestamp_wins");
    let b = Peer::standard("B", "timestamp_wins", "timestamp_wins");
    a.exec("INSERT INTO t1 VALUES ('r', 1, 2, 3)");
    sync(&a, &b);
    let plain = Connection::open(&file.0).unwrap();
    plain.execute_batch("ALTER TABLE t1 ADD COLUMN x INTEGER DEFAULT 0").unwrap();
    plain.execute_batch("UPDATE t1 SET x = 42 WHERE id = 'r'").unwrap();
    plain.execute_batch("INSERT INTO t1 VALUES ('p', 0, 0, 0, 7)").unwrap();
    drop(plain);
    b.exec("ALTER TABLE t1 ADD COLUMN x INTEGER DEFAULT 0");
    sync(&a, &b);
    assert_eq!(b.row("t1", "id='r'").unwrap()[4], V::Int(42));
    assert_eq!(b.row("t1", "id='p'").unwrap()[4], V::Int(7));
    // Later writes to the new column from the plain connection are captured as any other.
    let plain = Connection::open(&file.0).unwrap();
    plain.execute_batch("UPDATE t1 SET x = 43 WHERE id = 'r'").unwrap();
    sync(&a, &b);
    assert_eq!(b.row("t1", "id='r'").unwrap()[4], V::Int(43));
    assert_all_same(&a, &b, &[]);
}

/// A database of the previous layout (format 3) gains `sync_schema_waiting` and
/// `sync_tables.dropped_at` on its next use.
#[test]
fn a_format_3_database_is_upgraded_on_its_next_use() {
    let a = Peer::standard("A", "timestamp_wins", "timestamp_wins");
    a.exec("INSERT INTO t1 VALUES ('r', 1, 2, 3)");
    a.seal();
    a.exec(
        "DROP TABLE sync_schema_waiting; ALTER TABLE sync_tables DROP COLUMN dropped_at;
         UPDATE sync_state SET value = 3 WHERE key = 'format';",
    );
    let s = status(&a);
    assert_eq!(s["schema_waiting"], json!([]));
    assert_eq!(a.int("SELECT value FROM sync_state WHERE key = 'format'"), 6);
    assert_eq!(a.int("SELECT count(*) FROM pragma_table_info('sync_tables') WHERE name = 'dropped_at'"), 1);
    assert_eq!(a.verify()["ok"], true);
}
