//! Peers as data: the configured peers (`sync_peers.configured`), kept apart from the URLs a
//! sync merely used, and an older format 4 database without those columns upgrading.
mod common;
use common::*;
use peersync_core::{add_peer, configured_peers, note_link, remove_peer, Link};

#[test]
fn configured_peers_are_added_listed_and_removed() {
    let a = Peer::new("A", "CREATE TABLE t(id TEXT PRIMARY KEY)");
    let b_id = "0123456789abcdef0123456789abcdef";
    assert!(add_peer(&a.conn, "http://127.0.0.2:8080", "pair", Some(b_id)).unwrap());
    assert!(add_peer(&a.conn, "http://127.0.0.3:8080", "manual", None).unwrap());
    // Adding again keeps where it came from and when.
    assert!(!add_peer(&a.conn, "http://127.0.0.2:8080", "manual", None).unwrap());
    // A URL only synced with (`--peer`, `peersync sync`) is not configured.
    note_link(&a.conn, "http://127.0.0.4:8080", Link::Failed { device: None, error: "down", refused: false }).unwrap();
    let list = configured_peers(&a.conn).unwrap();
    let got: Vec<_> = list.iter().map(|p| (p.url.as_str(), p.device_id.as_deref(), p.source.as_str())).collect();
    assert_eq!(got, [("http://127.0.0.2:8080", Some(b_id), "pair"), ("http://127.0.0.3:8080", None, "manual")]);
    assert!(list.iter().all(|p| p.added_at.ends_with('Z')));
    // A link's outcome is recorded on the configured row.
    note_link(&a.conn, "http://127.0.0.3:8080", Link::Failed { device: None, error: "refused", refused: false })
        .unwrap();
    assert_eq!(configured_peers(&a.conn).unwrap()[1].failures, 1);
    let status = a.json("SELECT sync_status()");
    let configured: Vec<bool> =
        status["links"].as_array().unwrap().iter().map(|l| l["configured"].as_bool().unwrap()).collect();
    assert_eq!(configured, [true, true, false]);
    // A URL seen only through a sync becomes configured when added.
    assert!(add_peer(&a.conn, "http://127.0.0.4:8080", "discover", None).unwrap());
    assert!(remove_peer(&a.conn, "http://127.0.0.2:8080").unwrap());
    assert!(!remove_peer(&a.conn, "http://127.0.0.2:8080").unwrap());
    let urls: Vec<String> = configured_peers(&a.conn).unwrap().into_iter().map(|p| p.url).collect();
    assert_eq!(urls, ["http://127.0.0.3:8080", "http://127.0.0.4:8080"]);
    for bad in ["127.0.0.2:8080", "http://", "http://a b", "ftp://x"] {
        assert!(add_peer(&a.conn, bad, "manual", None).is_err(), "{bad}");
    }
    assert!(add_peer(&a.conn, "http://x:1", "gossip", None).is_err());
    assert!(add_peer(&a.conn, "http://x:1", "manual", Some("not-an-id")).is_err());
}

/// A database whose `sync_peers` predates configured peers (format 3, or a format 4 made
/// before them) gains the columns on its next use, keeping its links.
#[test]
fn an_older_database_gains_the_configured_peer_columns() {
    let a = Peer::new("A", "CREATE TABLE t(id TEXT PRIMARY KEY)");
    note_link(&a.conn, "http://127.0.0.4:8080", Link::Failed { device: None, error: "down", refused: false }).unwrap();
    a.exec(
        "ALTER TABLE sync_peers DROP COLUMN configured; ALTER TABLE sync_peers DROP COLUMN added_at;
         ALTER TABLE sync_peers DROP COLUMN source; UPDATE sync_state SET value = 3 WHERE key = 'format';",
    );
    let _ = a.json("SELECT sync_status()");
    assert_eq!(a.int("SELECT value FROM sync_state WHERE key = 'format'"), 6);
    assert_eq!(
        a.int(
            "SELECT count(*) FROM pragma_table_info('sync_peers') WHERE name IN ('configured', 'added_at', 'source')"
        ),
        3
    );
    assert_eq!(a.int("SELECT failures FROM sync_peers WHERE url = 'http://127.0.0.4:8080' AND NOT configured"), 1);
    assert!(add_peer(&a.conn, "http://127.0.0.2:8080", "manual", None).unwrap());
    assert_eq!(configured_peers(&a.conn).unwrap().len(), 1);
}
