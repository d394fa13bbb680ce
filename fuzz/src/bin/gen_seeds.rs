//! Makes the committed fixtures (the receiver database, the sender's whole log, base batches) and the seed corpora.
//!
//! `cargo run --release --bin gen_seeds` (from fuzz/) rewrites fuzz/fixtures/ and fuzz/seeds/.
//! Everything the fuzz targets assume about the receiver comes from here: run it again (and
//! commit the result) after a change to the schema, the hash or the batch format.
use peersync_core::Vector;
use peersync_fuzz::world::{self, deliver, export, new_device, to_json, trust, A, B, C, D, R};
use rusqlite::Connection;
use std::fs;
use std::path::Path;

fn exec(c: &Connection, sql: &str) {
    c.execute_batch(sql).unwrap_or_else(|e| panic!("{e}: {sql}"));
}

fn vector(c: &Connection) -> Vector {
    peersync_core::vector(c).unwrap()
}

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

fn main() {
    let dir = world::fuzz_dir();
    let fixtures = dir.join("fixtures");
    let seeds = dir.join("seeds");
    let _ = fs::remove_dir_all(&fixtures);
    for t in ["batch_apply", "batch_mutate", "httpsig_verify", "httpsig_mutate", "literals"] {
        let _ = fs::remove_dir_all(seeds.join(t));
    }

    let a = new_device(A);
    let b = new_device(B);
    let c = new_device(C);
    let d = new_device(D);
    let r = new_device(R);
    for dev in [B, C, D, R] {
        trust(&a, dev);
    }
    for dev in [A, C, R] {
        trust(&b, dev);
    }
    trust(&c, A);

    // Round 1: C, D and R write; A relays them.
    exec(
        &c,
        "INSERT INTO t1 VALUES ('c1', 'from c', 1.5, x'c0ffee');
              INSERT INTO t3 VALUES (30, 'cu', 3);
              INSERT INTO t4 VALUES (x'00', 0.5, 'c', 'w-c');
              UPDATE t1 SET a = 'from c, edited' WHERE id = 'c1';",
    );
    exec(
        &d,
        "INSERT INTO t2 VALUES ('d', 1, 1e-300, x'', 'dz');
              INSERT INTO t1 VALUES ('d1', NULL, -0.0, 'it''s d');",
    );
    exec(
        &r,
        "INSERT INTO t1 VALUES ('r1', 'from r', 7, NULL);
              INSERT INTO t2 VALUES ('r', -1, 2.5, x'ff', NULL);",
    );
    for (conn, dev) in [(&c, C), (&d, D), (&r, R)] {
        deliver(&a, &export(conn, dev, &vector(&a), 1000));
    }
    // A's own first round.
    exec(
        &a,
        "INSERT INTO t1 VALUES ('L1', 'Ada', 250000, 3.5);
              INSERT INTO t1 VALUES ('L2', 'Bob', 0.30000000000000004, x'00ff');
              INSERT INTO t1 VALUES ('漢🎉', '', 9223372036854775807, -9223372036854775808);
              INSERT INTO t2 VALUES ('k', 1, 1e308, x'0102', 'z1');
              INSERT INTO t2 VALUES ('k', 2, -5e-324, NULL, 'z2');
              INSERT INTO t2 VALUES ('it''s', 0, 0.0, x'', '');
              INSERT INTO t3 VALUES (1, 'one', 1);
              INSERT INTO t3 VALUES (2, 'two', 2);
              INSERT INTO t4 VALUES (x'00ff', -0.0, 1, 'w1');
              INSERT INTO t4 VALUES (x'', 1e308, 'text key', NULL);
              INSERT INTO t4 VALUES (x'01', 2.5, 3.25, 9e999);
              INSERT INTO t5 VALUES ('p1', 'L1', 'child of L1');
              UPDATE t1 SET a = 'Ada L.', c = NULL WHERE id = 'L1';
              DELETE FROM t3 WHERE id = 2;
              INSERT INTO t3 VALUES (2, 'two again', 22);",
    );

    // B receives everything A has so far, then revokes R (it holds R's first changes).
    deliver(&b, &export(&a, A, &vector(&b), 1000));
    peersync_core::revoke(&b, R.id).unwrap();

    // B writes on its own, concurrently with A's second round.
    exec(
        &b,
        "UPDATE t1 SET a = 'Ada (B)', b = 1 WHERE id = 'L1';
              UPDATE t2 SET z = 'z1 (B)' WHERE k = 'k' AND n = 1;
              UPDATE t3 SET v = 100 WHERE id = 1;
              INSERT INTO t3 VALUES (3, 'three', 3);
              INSERT INTO t4 VALUES (x'b2', 1.0, 'b', 'w-b');
              UPDATE t4 SET w = 'w1 (B)' WHERE kb = x'00ff';
              DELETE FROM t1 WHERE id = 'L2';
              INSERT INTO t5 VALUES ('p2', 'c1', 'child of c1 (B)');
              INSERT INTO t1 VALUES ('B1', 'from b', NULL, x'');",
    );

    // Round 2: C, D, R and A write concurrently with B.
    exec(
        &c,
        "UPDATE t1 SET b = 2.75 WHERE id = 'c1';
              INSERT INTO t3 VALUES (31, 'cu2', 0);
              DELETE FROM t4 WHERE kb = x'00';",
    );
    exec(
        &d,
        "UPDATE t2 SET z = NULL WHERE k = 'd';
              INSERT INTO t1 VALUES ('d2', 'd', 'd', 'd');",
    );
    exec(
        &r,
        "UPDATE t1 SET a = 'r, after revocation' WHERE id = 'r1';
              INSERT INTO t1 VALUES ('r2', 1, 2, 3);",
    );
    let c_direct = export(&c, C, &vector(&b), 1000);
    let d_direct = export(&d, D, &vector(&b), 1000);
    let r_direct = export(&r, R, &vector(&b), 1000);
    for (conn, dev) in [(&c, C), (&d, D), (&r, R)] {
        deliver(&a, &export(conn, dev, &vector(&a), 1000));
    }
    // A writes a child before its parent (foreign keys off here): B gets it in that order.
    exec(
        &a,
        "PRAGMA foreign_keys = OFF;
              UPDATE t1 SET a = 'Ada (A)' WHERE id = 'L1';
              UPDATE t1 SET b = 'L2 edited by A' WHERE id = 'L2';
              UPDATE t2 SET z = 'z1 (A)', x = 1.0 WHERE k = 'k' AND n = 1;
              UPDATE t3 SET v = 200 WHERE id = 1;
              INSERT INTO t3 VALUES (4, 'three', 4);
              UPDATE t3 SET v = 0 WHERE id = 30;
              DELETE FROM t4 WHERE kb = x'00ff';
              INSERT INTO t5 VALUES ('orphan', 'not-yet', 'parent comes later');
              INSERT INTO t1 VALUES ('not-yet', 'parent', NULL, NULL);
              DELETE FROM t1 WHERE id = 'c1';
              INSERT OR REPLACE INTO t2 VALUES ('k', 2, 4.0, x'04', 'replaced');",
    );

    // B's changes reach A; A writes once more, having seen them.
    deliver(&a, &export(&b, B, &vector(&a), 1000));
    exec(
        &a,
        "UPDATE t1 SET c = 'after B' WHERE id = 'B1';
              UPDATE t5 SET note = 'seen by A' WHERE id = 'p2';
              DELETE FROM t3 WHERE id = 3;",
    );

    // The receiver, as every fuzz input finds it.
    peersync_core::seal(&b).unwrap();
    let verify = peersync_core::verify(&b).unwrap();
    assert_eq!(verify["ok"], true, "{verify}");
    fs::create_dir_all(&fixtures).unwrap();
    let rx = fixtures.join("receiver.sqlite3");
    b.execute("VACUUM INTO ?1", [rx.to_str().unwrap()]).unwrap();

    // Batches for the receiver: pages of A's, everything, direct ones from C, D and R.
    let since = vector(&b);
    let mut batches: Vec<(String, String)> = Vec::new();
    for limit in [1, 2, 5, 12, 1000] {
        batches.push((format!("a_page_{limit}"), to_json(&export(&a, A, &since, limit))));
    }
    batches.push(("a_everything".into(), to_json(&export(&a, A, &Vector::new(), 1000))));
    // Page two: for the vector B has after page one.
    let first = export(&a, A, &since, 5);
    let mut v2 = since.clone();
    for e in &first.changes {
        let h = v2.entry(e.device_id.to_string()).or_insert(0);
        *h = (*h).max(e.version);
    }
    batches.push(("a_page_two".into(), to_json(&export(&a, A, &v2, 5))));
    batches.push(("c_direct".into(), to_json(&c_direct)));
    batches.push(("d_direct".into(), to_json(&d_direct)));
    batches.push(("r_direct_revoked".into(), to_json(&r_direct)));
    batches.push(("a_hello".into(), to_json(&export(&a, A, &vector(&a), 1000))));
    for (name, json) in &batches {
        write(&seeds.join("batch_apply").join(format!("{name}.json")), json.as_bytes());
    }
    write(&fixtures.join("sender.json"), to_json(&export(&a, A, &Vector::new(), 100_000)).as_bytes());

    // batch_mutate: one byte picks the base batch; no mutations yet.
    for k in 0..batches.len() as u8 {
        write(&seeds.join("batch_mutate").join(format!("base_{k}")), &[k]);
    }
    peersync_fuzz::http::write_seeds(&seeds);
    peersync_fuzz::literals::write_seeds(&seeds);
    println!("fixtures and seeds written under {}", dir.display());
}
