//! `make bench`: capture, export/apply and lookup costs of peersync against plain SQLite.
//!
//! Every figure is measured in this run, on the same machine and SQLite, next to the plain
//! SQLite figure it is compared with. Pass a number to scale the row counts (default 100000),
//! and after it `seal`, `exchange` or `digest` to run only that part (`peersync-bench 1000000
//! seal`: capture plus seal at 1,000,000 rows).
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("peersync-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn open_with(path: &Path, synchronous: &str) -> Connection {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let c = Connection::open(path).unwrap();
    c.execute_batch(&format!("PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous};")).unwrap();
    if let Ok(kb) = std::env::var("BENCH_CACHE_KB") {
        c.execute_batch(&format!("PRAGMA cache_size=-{kb}")).unwrap();
    }
    peersync_core::register_functions(&c).unwrap();
    c
}

const TABLE: &str = "CREATE TABLE loans(id TEXT PRIMARY KEY, borrower TEXT, amount INTEGER, rate REAL, doc BLOB)";

fn key(i: usize) -> String {
    format!("{:08x}-{:04x}-loan", (i as u64).wrapping_mul(2654435761) % 4294967296, i % 65536)
}

/// The same loans under sequential keys (each greater than the one before).
fn seq_key(i: usize) -> String {
    format!("{i:012}-loan")
}

/// How the workloads name loan `i`: random (scattered) or sequential keys.
#[derive(Clone, Copy)]
enum Keys {
    Random,
    Sequential,
}

impl Keys {
    fn of(self, i: usize) -> String {
        match self {
            Keys::Random => key(i),
            Keys::Sequential => seq_key(i),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Keys::Random => "random",
            Keys::Sequential => "sequential",
        }
    }
}

fn setup(path: &Path, tracked: bool) -> Connection {
    setup_with(path, tracked, "NORMAL")
}

fn setup_with(path: &Path, tracked: bool, synchronous: &str) -> Connection {
    let c = open_with(path, synchronous);
    c.execute_batch(TABLE).unwrap();
    if tracked {
        c.query_row("SELECT sync_init()", [], |_| Ok(())).unwrap();
        c.query_row("SELECT sync_track('loans')", [], |_| Ok(())).unwrap();
    }
    c
}

fn secs(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

/// INSERT, UPDATE, DELETE of `n` single rows, in one transaction or in autocommit mode.
fn workload(c: &Connection, n: usize, one_tx: bool) -> [f64; 3] {
    workload_sealed(c, n, one_tx, Keys::Random, false).0
}

/// [`workload`] with keys `keys`; when `seal`, each step is followed by `sync_seal()`, timed
/// apart. Returns each step's time, then each seal's.
fn workload_sealed(c: &Connection, n: usize, one_tx: bool, keys: Keys, seal: bool) -> ([f64; 3], [f64; 3]) {
    let mut seals = [0.0; 3];
    let mut sealed = |k: usize| {
        if seal {
            seals[k] = secs(|| c.query_row("SELECT sync_seal()", [], |_| Ok(())).unwrap());
        }
    };
    let begin = |c: &Connection| {
        if one_tx {
            c.execute_batch("BEGIN").unwrap()
        }
    };
    let commit = |c: &Connection| {
        if one_tx {
            c.execute_batch("COMMIT").unwrap()
        }
    };
    let ins = secs(|| {
        begin(c);
        insert_keyed(c, 0..n, keys);
        commit(c);
    });
    sealed(0);
    let upd = secs(|| {
        begin(c);
        let mut s = c.prepare("UPDATE loans SET amount = ?2 WHERE id = ?1").unwrap();
        for i in 0..n {
            s.execute(params![keys.of(i), i as i64 * 7]).unwrap();
        }
        commit(c);
    });
    sealed(1);
    let del = secs(|| {
        begin(c);
        let mut s = c.prepare("DELETE FROM loans WHERE id = ?1").unwrap();
        for i in 0..n {
            s.execute(params![keys.of(i)]).unwrap();
        }
        commit(c);
    });
    sealed(2);
    ([ins, upd, del], seals)
}

/// Capture plus seal: `n` single-row INSERTs, then UPDATEs, then DELETEs, each in one
/// transaction, on a plain and on a tracked table; on the tracked one each step is followed by
/// `sync_seal()`. Best of 3 of each figure; the ratio is (capture + seal) over plain.
fn capture_sealed(d: &Path, n: usize) {
    println!("\n== Capture + seal: {n} single-row writes in one transaction, then sync_seal(), best of 3 ==");
    println!(
        "{:<11} {:<7} {:>9} {:>10} {:>8} {:>9} {:>9}",
        "keys", "op", "plain s", "capture s", "seal s", "capture", "+ seal"
    );
    for keys in [Keys::Random, Keys::Sequential] {
        let (mut p, mut t, mut s) = ([f64::MAX; 3], [f64::MAX; 3], [f64::MAX; 3]);
        for _ in 0..3 {
            let plain = workload_sealed(&setup(&d.join("plain.db"), false), n, true, keys, false).0;
            let (tracked, seals) = workload_sealed(&setup(&d.join("tracked.db"), true), n, true, keys, true);
            for k in 0..3 {
                p[k] = p[k].min(plain[k]);
                t[k] = t[k].min(tracked[k]);
                s[k] = s[k].min(seals[k]);
            }
        }
        for (k, op) in ["INSERT", "UPDATE", "DELETE"].iter().enumerate() {
            println!(
                "{:<11} {:<7} {:>9.3} {:>10.3} {:>8.3} {:>8.2}x {:>8.2}x",
                keys.label(),
                op,
                p[k],
                t[k],
                s[k],
                t[k] / p[k],
                (t[k] + s[k]) / p[k]
            );
        }
    }
}

fn capture(d: &Path, n: usize) {
    println!("\n== Capture: {n} single-row writes, plain table vs tracked table ==");
    println!("{:<24} {:<8} {:>10} {:>10} {:>8}", "mode", "op", "plain s", "tracked s", "ratio");
    let modes = [
        ("one transaction", true, "NORMAL"),
        ("autocommit, sync=FULL", false, "FULL"),
        ("autocommit, sync=NORMAL", false, "NORMAL"),
    ];
    for (mode, one_tx, sync) in modes {
        // best of 3 for the in-transaction runs (short), one run for autocommit
        let runs = if one_tx { 3 } else { 1 };
        let mut best_p = [f64::MAX; 3];
        let mut best_t = [f64::MAX; 3];
        for _ in 0..runs {
            let p = workload(&setup_with(&d.join("plain.db"), false, sync), n, one_tx);
            let t = workload(&setup_with(&d.join("tracked.db"), true, sync), n, one_tx);
            for k in 0..3 {
                best_p[k] = best_p[k].min(p[k]);
                best_t[k] = best_t[k].min(t[k]);
            }
        }
        for (k, op) in ["INSERT", "UPDATE", "DELETE"].iter().enumerate() {
            println!("{:<24} {:<8} {:>10.3} {:>10.3} {:>7.2}x", mode, op, best_p[k], best_t[k], best_t[k] / best_p[k]);
        }
        let (p, t): (f64, f64) = (best_p.iter().sum(), best_t.iter().sum());
        println!("{:<24} {:<8} {:>10.3} {:>10.3} {:>7.2}x", mode, "all", p, t, t / p);
    }
}

fn fill(c: &Connection, n: usize, offset: usize) {
    c.execute_batch("BEGIN").unwrap();
    insert_rows(c, offset..offset + n);
    c.execute_batch("COMMIT").unwrap();
}

/// One INSERT statement per loan, for the loans numbered `rows`.
fn insert_rows(c: &Connection, rows: std::ops::Range<usize>) {
    insert_keyed(c, rows, Keys::Random)
}

/// [`insert_rows`] with keys `keys`.
fn insert_keyed(c: &Connection, rows: std::ops::Range<usize>, keys: Keys) {
    let mut s = c.prepare("INSERT INTO loans VALUES (?1, ?2, ?3, ?4, ?5)").unwrap();
    for i in rows {
        s.execute(params![
            keys.of(i),
            format!("borrower {i}"),
            i as i64 * 100,
            3.5 + i as f64 / 1000.0,
            &[1u8, 2, 3, 4][..]
        ])
        .unwrap();
    }
}

/// Times of one exchange run: the plain insert and each step of the sync.
#[derive(Clone, Copy)]
struct Run {
    plain: f64,
    seal: f64,
    export: f64,
    apply: f64,
}

/// One run: a plain insert of `n` rows, then A seals and exports them and B applies them, in
/// batches of `page` changes. The plain insert commits as often as apply does (every `page`
/// rows), so both pay for the same number of transactions. Returns the batches' JSON too.
fn exchange_once(d: &Path, n: usize, page: usize) -> (Run, Vec<String>) {
    let page = page.max(1);
    let c = setup(&d.join("plain.db"), false);
    let plain = secs(|| {
        for start in (0..n).step_by(page) {
            fill(&c, page.min(n - start), start);
        }
    });
    let a = setup(&d.join("a.db"), true);
    let b = setup(&d.join("b.db"), true);
    fill(&a, n, 0);
    let seal = secs(|| {
        a.query_row("SELECT sync_seal()", [], |_| Ok(())).unwrap();
    });
    // Batch by batch, as peers do: export a batch from A (to JSON text), apply it on B.
    let (mut export, mut apply) = (0.0, 0.0);
    let mut pages = Vec::new();
    let mut since = peersync_core::vector(&b).unwrap();
    loop {
        let mut text = String::new();
        let mut more = false;
        // What sync_changes and sync_apply do, without the SQL call around them.
        export += secs(|| {
            text = peersync_core::changes_json(&a, &since, page as i64).unwrap();
        });
        apply += secs(|| {
            let batch = peersync_core::parse_batch(&text).unwrap();
            more = batch.has_more;
            since = peersync_core::apply(&b, &batch).unwrap().vector;
        });
        pages.push(text);
        if !more {
            break;
        }
    }
    let rows: i64 = b.query_row("SELECT count(*) FROM loans", [], |r| r.get(0)).unwrap();
    assert_eq!(rows as usize, n, "apply lost rows");
    (Run { plain, seal, export, apply }, pages)
}

/// Seal + export on A, apply on B, of `n` inserted rows in batches of `page`, against a plain
/// bulk insert of the same rows in as many transactions; each time the best of 3 runs.
fn exchange(d: &Path, n: usize, page: usize) {
    let mut best = Run { plain: f64::MAX, seal: f64::MAX, export: f64::MAX, apply: f64::MAX };
    let mut pages = Vec::new();
    for _ in 0..3 {
        let (r, p) = exchange_once(d, n, page);
        best = Run {
            plain: best.plain.min(r.plain),
            seal: best.seal.min(r.seal),
            export: best.export.min(r.export),
            apply: best.apply.min(r.apply),
        };
        pages = p;
    }
    let Run { plain, seal, export, apply } = best;
    let batches = format!("{} x {}", pages.len(), page.min(n));
    println!(
        "{:>9} {:>14} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>12.2}x {:>10.2}x {:>10.0}",
        n,
        batches,
        plain,
        seal,
        export,
        apply,
        (export + apply) / plain,
        (seal + export + apply) / plain,
        n as f64 / (export + apply)
    );
    let floor = storage_floor(d, &pages);
    println!(
        "{:>24} storage floor of apply: {floor:.3} s = {:.2}x the plain insert (export + floor: {:.2}x)",
        "",
        floor / plain,
        (export + floor) / plain
    );
}

/// What apply writes, and nothing else: for each change of `pages`, its log row, its
/// record's slot state and the table row, one statement each, a transaction
/// per page, as apply does; no parsing, hashing, checks or merge. The least apply can cost in
/// this storage layout.
fn storage_floor(d: &Path, pages: &[String]) -> f64 {
    let c = setup(&d.join("floor.db"), true);
    c.execute_batch("PRAGMA cache_size = -32768").unwrap();
    let triggers: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    for t in triggers {
        c.execute_batch(&format!("DROP TRIGGER \"{t}\"")).unwrap();
    }
    let batches: Vec<peersync_core::Batch> = pages.iter().map(|p| peersync_core::parse_batch(p).unwrap()).collect();
    let rows: Vec<Vec<(String, String, i64, f64)>> = batches
        .iter()
        .map(|b| {
            b.changes
                .iter()
                .map(|e| {
                    let row: serde_json::Value = serde_json::from_str(&e.change_data).unwrap();
                    let text = |k: &str| row[k].as_str().unwrap().to_string();
                    (text("id"), text("borrower"), row["amount"].as_i64().unwrap(), row["rate"].as_f64().unwrap())
                })
                .collect()
        })
        .collect();
    secs(|| {
        for (b, rows) in batches.iter().zip(&rows) {
            c.execute_batch("BEGIN IMMEDIATE").unwrap();
            let mut log = c
                .prepare_cached("INSERT INTO sync_log(table_name, record_id, operation, change_data, device_id, version, timestamp, hash, bases, resolution, is_synced) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,0)")
                .unwrap();
            let mut meta = c
                .prepare_cached("INSERT INTO sync_meta(tbl, record_id, live, alive, cw, cols) VALUES (1, ?1, ?2, 1, ?2, '') ON CONFLICT DO NOTHING")
                .unwrap();
            let mut row = c
                .prepare_cached("INSERT INTO loans VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(id) DO UPDATE SET borrower = excluded.borrower, amount = excluded.amount, rate = excluded.rate, doc = excluded.doc")
                .unwrap();
            for (e, (id, borrower, amount, rate)) in b.changes.iter().zip(rows) {
                log.execute(params![
                    e.table_name,
                    e.record_id,
                    e.operation,
                    e.change_data,
                    e.device_id,
                    e.version,
                    e.timestamp,
                    e.hash,
                    e.bases,
                    e.resolution
                ])
                .unwrap();
                let logged = c.last_insert_rowid();
                meta.execute(params![e.record_id, logged]).unwrap();
                row.execute(params![id, borrower, amount, rate, &[1u8, 2, 3, 4][..]]).unwrap();
            }
            c.execute_batch("COMMIT").unwrap();
        }
    })
}

/// sync_changes for 10 new changes on a log of `n` entries.
fn lookup(d: &Path, n: usize) {
    let a = setup(&d.join("big.db"), true);
    let t = secs(|| {
        fill(&a, n, 0);
        a.query_row("SELECT sync_seal()", [], |_| Ok(())).unwrap();
    });
    let since: String = a.query_row("SELECT sync_vector()", [], |r| r.get(0)).unwrap();
    fill(&a, 10, n);
    a.query_row("SELECT sync_seal()", [], |_| Ok(())).unwrap();
    let mut best = f64::MAX;
    for _ in 0..5 {
        best = best.min(secs(|| {
            let b: String = a.query_row("SELECT sync_changes(?1)", [&since], |r| r.get(0)).unwrap();
            assert_eq!(serde_json::from_str::<serde_json::Value>(&b).unwrap()["changes"].as_array().unwrap().len(), 10);
        }));
    }
    println!("log of {n} entries (built in {t:.1} s): sync_changes for the 10 newest = {:.2} ms", best * 1e3);
}

/// `sync_digest()` over a tracked table of `n` rows, against reading every row of it.
fn digest(d: &Path, n: usize) {
    let a = setup(&d.join("digest.db"), true);
    fill(&a, n, 0);
    a.query_row("SELECT sync_seal()", [], |_| Ok(())).unwrap();
    let best = |f: &dyn Fn()| (0..3).map(|_| secs(f)).fold(f64::MAX, f64::min);
    let scan = best(&|| {
        let rows: i64 = a
            .query_row(
                "SELECT count(*) FROM (SELECT id, borrower, amount, rate, doc FROM loans WHERE doc IS NOT x'')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(rows as usize, n);
    });
    let dig = best(&|| {
        a.query_row("SELECT sync_digest()", [], |r| r.get::<_, String>(0)).unwrap();
    });
    println!(
        "{n} rows: sync_digest() {:.3} s ({:.2} µs a row); reading every row {:.3} s; ratio {:.1}x",
        dig,
        dig * 1e6 / n as f64,
        scan,
        dig / scan
    );
    // The sidecar's audit account (digests, pending conflicts, waiting changes) and one round
    // of `peersync check`'s narrowing (16 range digests of one table), each a pass over the rows.
    let audit = best(&|| {
        peersync_core::audit(&a).unwrap();
    });
    let range = best(&|| {
        let r = peersync_core::digest_range(&a, "loans", "").unwrap();
        assert_eq!(r.ranges.values().map(|x| x.rows).sum::<i64>() as usize, n);
    });
    let rounds = ((n as f64 / peersync_core::RANGE_ROWS as f64).log(16.0).ceil() as usize) + 1;
    println!(
        "{n} rows: audit account {:.3} s; one narrowing round {:.3} s ({:.2} µs a row), about {rounds} rounds to a record",
        audit,
        range,
        range * 1e6 / n as f64
    );
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let only = std::env::args().nth(2).unwrap_or_default();
    let d = dir();
    println!("peersync bench: SQLite {}, WAL; in-transaction runs best of 3", rusqlite::version());
    let exchange_header = || {
        println!("\n== Export + apply: A exports, B applies; vs a plain insert of the same rows, best of 3 ==");
        println!("(the plain insert commits once per batch, as apply does; ratio: export + apply over the plain");
        println!("insert; with seal: also capture's deferred hashing, done by whoever first exports)");
        println!(
            "{:>9} {:>14} {:>8} {:>8} {:>8} {:>8} {:>13} {:>11} {:>10}",
            "changes", "batches", "plain s", "seal s", "export s", "apply s", "ratio", "with seal", "changes/s"
        );
    };
    let pages = |n: usize| if n > 10_000 { vec![n, 10_000] } else { vec![n] };
    if only == "digest" {
        digest(&d, n);
        let _ = std::fs::remove_dir_all(&d);
        return;
    }
    if only == "seal" {
        capture_sealed(&d, n);
        let _ = std::fs::remove_dir_all(&d);
        return;
    }
    if only == "exchange" {
        exchange_header();
        for page in pages(n) {
            exchange(&d, n, page);
        }
        let _ = std::fs::remove_dir_all(&d);
        return;
    }
    capture(&d, n);
    for k in [n / 10, n] {
        capture_sealed(&d, k);
    }
    exchange_header();
    for k in [n / 10, n] {
        for page in pages(k) {
            exchange(&d, k, page);
        }
    }
    println!("\n== sync_digest: a digest of every row, on demand ==");
    digest(&d, n);
    println!("\n== sync_changes on a large log ==");
    lookup(&d, n * 10);
    let _ = std::fs::remove_dir_all(&d);
}
