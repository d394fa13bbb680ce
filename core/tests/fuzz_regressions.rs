//! Owns regression tests for what fuzzing (fuzz/, `make fuzz`) found in peersync-core: each test reproduces one minimized finding.
use peersync_core::{apply, changes, device_id, parse_batch, vector, Error};
use rusqlite::Connection;

/// A device with one tracked table.
fn device() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    peersync_core::register_functions(&conn).unwrap();
    peersync_core::init(&conn).unwrap();
    conn.execute_batch("CREATE TABLE t(id TEXT PRIMARY KEY, v)").unwrap();
    peersync_core::track(&conn, "t", None).unwrap();
    conn
}

fn quarantined(conn: &Connection) -> usize {
    peersync_core::quarantined(conn).unwrap().len()
}

/// Finding 1 (batch_mutate, idempotence invariant): a batch whose envelope `heads` names, for a
/// version the batch itself carries, another hash than that change's. The first delivery was
/// accepted (the receiver did not hold that version yet, so nothing was compared); delivering
/// the very same batch again (a retry after a lost reply) was then a "fork" that quarantined
/// the sender. The same batch must get the same verdict every time: either it is refused the
/// first time already (it contradicts itself), or the repeat is a plain duplicate.
#[test]
fn a_batch_whose_heads_contradict_its_own_changes_gets_the_same_verdict_every_time() {
    let a = device();
    let b = device();
    a.execute_batch("INSERT INTO t VALUES ('x', 1); UPDATE t SET v = 2 WHERE id = 'x';").unwrap();
    let a_id = device_id(&a).unwrap();
    let mut batch = changes(&a, &vector(&b).unwrap(), 1000).unwrap();
    assert_eq!(batch.changes.len(), 2);
    assert_eq!(batch.changes[1].version, 2);
    // The (unsigned, advisory) envelope claims A's head at version 2 hashes to something else.
    batch.vector.insert(a_id.clone(), 2);
    batch.heads.insert(a_id.clone(), "0".repeat(64));
    let json = serde_json::to_string(&batch).unwrap();

    let deliver = || parse_batch(&json).and_then(|batch| apply(&b, &batch));
    let first = deliver();
    let second = deliver();
    match (&first, &second) {
        (Ok(r1), Ok(r2)) => {
            assert_eq!((r1.accepted, r1.duplicates), (2, 0));
            assert_eq!((r2.accepted, r2.duplicates), (0, 2), "the repeat must be a plain duplicate");
            assert_eq!(quarantined(&b), 0);
        }
        (Err(Error::Invalid(m1)), Err(Error::Invalid(m2))) if m1 == m2 && m1.contains("heads") => {
            assert_eq!(vector(&b).unwrap().get(&a_id), None, "a refused batch applied nothing");
            assert_eq!(quarantined(&b), 0);
        }
        (Err(Error::Fork(_)), Err(Error::Fork(_))) => {
            assert_eq!(vector(&b).unwrap().get(&a_id), None, "a refused batch applied nothing");
        }
        _ => panic!(
            "the same batch got two verdicts: first {:?}, then {:?}",
            first.as_ref().map(|r| (r.accepted, r.duplicates)).map_err(|e| e.to_string()),
            second.as_ref().map(|r| (r.accepted, r.duplicates)).map_err(|e| e.to_string()),
        ),
    }
}
