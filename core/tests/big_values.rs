//! Owns tests of big values: pages cut by bytes (`changes_within`: a page holds at most its
//! byte budget of entries, a change larger than the budget travels alone, paging by bytes
//! delivers everything), and a row too large to log refused when it is written.
mod common;

use common::*;
use peersync_core::{changes_within, outgoing_to, outgoing_within, Batch, Vector, ENTRY_OVERHEAD};

const SCHEMA: &str = "CREATE TABLE files(id TEXT PRIMARY KEY, data BLOB)";

fn peer(name: &str) -> Peer {
    let p = Peer::new(name, SCHEMA);
    p.track("files", "timestamp_wins");
    p
}

/// Inserts `n` rows of `kib` KiB random blobs each, ids `{prefix}{i}`.
fn fill(p: &Peer, prefix: &str, n: usize, kib: usize) {
    for i in 0..n {
        p.run("INSERT INTO files VALUES (?1, randomblob(?2))", &[&format!("{prefix}{i:03}"), &(kib as i64 * 1024)])
            .unwrap();
    }
}

fn page(p: &Peer, since: &Vector, max_bytes: Option<u64>) -> Batch {
    changes_within(&p.conn, since, 1000, max_bytes).unwrap()
}

/// What an entry counts against the budget: its stored text fields plus the overhead.
fn counted(b: &Batch) -> u64 {
    b.changes
        .iter()
        .map(|e| {
            ENTRY_OVERHEAD
                + (e.table_name.len() + e.record_id.len() + e.change_data.len() + e.bases.len() + e.hash.len()) as u64
        })
        .sum()
}

#[test]
fn pages_are_cut_by_bytes_as_well_as_count() {
    let a = peer("A");
    fill(&a, "r", 10, 100); // each change holds ~200 KiB of hex
    let all = page(&a, &Vector::new(), None);
    assert_eq!(all.changes.len(), 10);
    let one = counted(&page(&a, &Vector::new(), Some(u64::MAX))) / 10;
    // A budget of 3.5 changes holds 3 of them, and says there is more.
    let b = page(&a, &Vector::new(), Some(one * 7 / 2));
    assert_eq!(b.changes.len(), 3, "a page of 3.5 changes' bytes");
    assert!(b.has_more);
    assert!(counted(&b) <= one * 7 / 2);
    // The count still bounds it too.
    let b = changes_within(&a.conn, &Vector::new(), 2, Some(u64::MAX)).unwrap();
    assert_eq!(b.changes.len(), 2);
    // Without a budget nothing changes.
    assert_eq!(serde_json::to_string(&all).unwrap(), serde_json::to_string(&page(&a, &Vector::new(), None)).unwrap());
}

#[test]
fn a_change_larger_than_the_budget_travels_alone() {
    let a = peer("A");
    fill(&a, "big", 1, 2048);
    fill(&a, "small", 3, 1);
    let b = page(&a, &Vector::new(), Some(1000));
    assert_eq!(b.changes.len(), 1, "the large change alone");
    assert_eq!(b.changes[0].record_id, "'big000'");
    assert!(b.has_more);
    // The small ones after it: each page at least one, all of them within a budget of two.
    let mut since = Vector::new();
    since.insert(a.dev.clone(), 1);
    let rest = page(&a, &since, Some(2 * (ENTRY_OVERHEAD + 3000)));
    assert_eq!(rest.changes.len(), 2);
}

#[test]
fn paging_by_bytes_delivers_everything_in_several_pages() {
    let (a, b) = (peer("A"), peer("B"));
    fill(&a, "r", 12, 64);
    a.exec("DELETE FROM files WHERE id = 'r003'");
    let mut pages = 0;
    loop {
        let since = peersync_core::parse_vector("test", &b.vector()).unwrap();
        let batch = page(&a, &since, Some(400 * 1024));
        assert!(!batch.changes.is_empty());
        assert!(counted(&batch) <= 400 * 1024 || batch.changes.len() == 1);
        b.apply(&serde_json::to_string(&batch).unwrap()).unwrap();
        pages += 1;
        if !batch.has_more {
            break;
        }
        assert!(pages < 100);
    }
    assert!(pages >= 4, "13 changes of ~128 KiB in pages of 400 KiB: {pages} pages");
    assert_eq!(a.rows("files"), b.rows("files"));
    assert_eq!(a.vector(), b.vector());
}

#[test]
fn a_row_too_large_to_log_is_refused_when_written_and_nothing_waits_behind_it() {
    let a = peer("A");
    a.exec("INSERT INTO files VALUES ('before', x'01')");
    // 2 x 500,000,000 bytes of hex: over SQLite's longest value once logged.
    let err = a.run("INSERT INTO files VALUES ('huge', zeroblob(500000000))", &[]).unwrap_err().to_string();
    assert!(err.contains("peersync: this row is too large to sync"), "{err}");
    assert_eq!(a.int("SELECT count(*) FROM files WHERE id = 'huge'"), 0, "the write was rolled back");
    // Nor may an update make a row that large.
    let err = a.run("UPDATE files SET data = zeroblob(500000000) WHERE id = 'before'", &[]).unwrap_err();
    assert!(err.to_string().contains("too large to sync"), "{err}");
    // A large value that fits is taken, and everything seals and syncs.
    a.exec("INSERT INTO files VALUES ('fits', zeroblob(1000000))");
    a.exec("INSERT INTO files VALUES ('after', x'02')");
    let b = peer("B");
    sync(&a, &b);
    assert_eq!(a.rows("files"), b.rows("files"));
    assert_eq!(a.rows("files").len(), 3);
}

#[test]
fn a_page_written_from_the_rows_is_the_batch_serialized() {
    let (a, b) = (peer("A"), peer("B"));
    fill(&a, "r", 5, 3);
    fill(&b, "s", 2, 1);
    sync(&b, &a); // A relays B's changes too
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    for (limit, bytes) in [(1000, None), (3, None), (1000, Some(10_000)), (1000, Some(1))] {
        let mut out = Vec::new();
        let kept = outgoing_to(&a.conn, &key, &Vector::new(), limit, bytes, &mut out).unwrap();
        let batch = outgoing_within(&a.conn, &key, &Vector::new(), limit, bytes).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&batch).unwrap(), "{limit} {bytes:?}");
        let mut stripped = batch;
        for e in &mut stripped.changes {
            e.change_data.clear();
        }
        assert_eq!(serde_json::to_string(&kept).unwrap(), serde_json::to_string(&stripped).unwrap());
    }
}
