//! A copied database made a device of its own (`new_identity`): its data kept, the original's
//! chain kept under the original's id, its own changes on a new chain; all devices converge.
mod common;
use common::*;

/// `p`'s database copied (VACUUM INTO a file), opened as another peer.
fn copy_of(p: &Peer, name: &str) -> Peer {
    let path = std::env::temp_dir().join(format!("peersync-copy-{}-{name}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    p.conn.execute("VACUUM INTO ?1", [path.to_str().unwrap()]).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    Peer::setup(conn, name, "")
}

#[test]
fn a_copy_with_a_new_identity_converges_with_the_original() {
    let a = Peer::standard("A", "timestamp_wins", "timestamp_wins");
    let b = Peer::standard("B", "timestamp_wins", "timestamp_wins");
    a.exec("INSERT INTO t1 VALUES ('r', 0, 0, 0)");
    sync_pair(&a, &b);
    let mut c = copy_of(&a, "C");
    assert_eq!(c.dev, a.dev, "a copy carries the original's id");
    let (old, new) = peersync_core::new_identity(&c.conn).unwrap();
    assert_eq!(old, a.dev);
    assert_ne!(new, a.dev);
    c.dev = new.clone();
    assert_eq!(peersync_core::device_id(&c.conn).unwrap(), new);
    let orig = peersync_core::device(&c.conn, &a.dev).unwrap().unwrap();
    assert!(!orig.is_self && orig.is_authorized);
    assert!(peersync_core::device(&c.conn, &new).unwrap().unwrap().is_self);
    // Everyone writes, the copy too; the original's chain goes on under its id.
    a.exec("INSERT INTO t1 VALUES ('a2', 1, 1, 1)");
    b.exec("INSERT INTO t1 VALUES ('b2', 2, 2, 2)");
    c.exec("INSERT INTO t1 VALUES ('c2', 3, 3, 3); UPDATE t1 SET a = 'C' WHERE id = 'r'");
    for _ in 0..2 {
        sync_pair(&a, &c);
        sync_pair(&b, &c);
        sync_pair(&a, &b);
    }
    assert_same(&a, &b);
    assert_same(&a, &c);
    for p in [&a, &b, &c] {
        assert_eq!(p.int("SELECT count(*) FROM sync_quarantine"), 0, "{}: no fork", p.name);
        assert_eq!(p.json("SELECT sync_verify()")["ok"], true, "{}", p.name);
        // The copy's own changes are on a chain of its own from version 1.
        assert_eq!(p.int(&format!("SELECT min(version) FROM sync_log WHERE device_id = '{new}'")), 1, "{}", p.name);
    }
    assert_eq!(a.row("t1", "id='r'").unwrap()[1], t("C"));
}
