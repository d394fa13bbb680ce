//! Owns the tests of origin signatures in batches (DESIGN.md "The sidecar", head signatures): a
//! receiver that holds an origin's key applies only what that origin signed, keeps the
//! signatures to relay, refuses revoked origins whoever relays them; relays cut pages at
//! signed versions.
mod common;

use common::*;
use peersync_core::{Batch, HeadSignature, Vector};
use serde_json::{json, Value as Json};

fn apply(to: &Peer, b: &Batch) -> Result<peersync_core::Applied, peersync_core::Error> {
    peersync_core::apply(&to.conn, b)
}

fn json_of(b: &Batch) -> Json {
    serde_json::to_value(b).unwrap()
}

fn batch_from(j: Json) -> Batch {
    peersync_core::parse_batch(&j.to_string()).unwrap()
}

/// `n` inserts into t1 on `p`.
fn write(p: &Peer, from: usize, n: usize) {
    for i in from..from + n {
        p.exec(&format!("INSERT INTO t1 VALUES ('r{i}', {i}, 'x', NULL)"));
    }
}

/// The refusal of a batch whose origin `dev` did not sign it, and nothing changed.
fn assert_unsigned_refused(to: &Peer, b: &Batch, dev: &str) {
    let before = to.fingerprint();
    match apply(to, b) {
        Err(peersync_core::Error::Unauthorized(m)) => {
            assert!(m.contains(&format!("changes from device {dev}")) && m.contains("no valid signature"), "{m}")
        }
        other => panic!("expected a refusal for want of {dev}'s signature, got {other:?}"),
    }
    assert_unchanged(&before, &to.fingerprint(), "a batch its origin did not sign");
}

#[test]
fn a_receiver_that_holds_the_key_applies_what_its_origin_signed() {
    let (a, b) = (Signer::new("a", 1), Signer::new("b", 2));
    b.trusts(&a);
    write(&a.p, 0, 3);
    let batch = a.batch_for(&b.p, 1000);
    assert_eq!(batch.signatures.len(), 1, "one signature, on A's last change");
    let s = &batch.signatures[0];
    assert_eq!(
        (s.device_id.as_str(), s.version, s.hash.as_str()),
        (a.p.dev.as_str(), 3, batch.changes[2].hash.as_str())
    );
    let applied = apply(&b.p, &batch).unwrap();
    assert_eq!((applied.accepted, applied.refused, applied.deferred), (3, 0, 0));
    assert_eq!(b.p.rows("t1"), a.p.rows("t1"));
    // B keeps A's signature on the head it now holds, to relay.
    let kept: (i64, String) =
        b.p.conn
            .query_row("SELECT version, signature FROM sync_signatures WHERE device_id = ?1", [&a.p.dev], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
    assert_eq!(kept, (3, s.signature.clone()));
}

#[test]
fn unsigned_or_wrongly_signed_batches_are_refused_whole() {
    let (a, b, c) = (Signer::new("a", 1), Signer::new("b", 2), Signer::new("c", 3));
    b.trusts(&a);
    write(&a.p, 0, 2);
    let good = json_of(&a.batch_for(&b.p, 1000));

    // sync_changes from SQL carries no signature of A.
    let unsigned = peersync_core::changes(&a.p.conn, &vector(&b.p), 1000).unwrap();
    assert!(unsigned.signatures.is_empty());
    assert_unsigned_refused(&b.p, &unsigned, &a.p.dev);

    // Signed by another device's key.
    let mut j = good.clone();
    let last = &j["changes"][1];
    let forged = peersync_core::sign(&c.key, &a.p.dev, 2, last["hash"].as_str().unwrap());
    j["signatures"] = json!([forged]);
    assert_unsigned_refused(&b.p, &batch_from(j), &a.p.dev);

    // A genuine signature, but on the first change, not the last: it does not vouch for the second.
    let mut j = good.clone();
    let first = peersync_core::sign(&a.key, &a.p.dev, 1, j["changes"][0]["hash"].as_str().unwrap());
    j["signatures"] = json!([first]);
    assert_unsigned_refused(&b.p, &batch_from(j), &a.p.dev);

    // A genuine signature over another hash than the change's.
    let mut j = good.clone();
    let other = peersync_core::sign(&a.key, &a.p.dev, 2, &"0".repeat(64));
    j["signatures"] = json!([other]);
    assert_unsigned_refused(&b.p, &batch_from(j), &a.p.dev);

    // The right signature under another origin's name.
    let mut j = good.clone();
    j["signatures"][0]["device_id"] = json!(c.p.dev);
    assert_unsigned_refused(&b.p, &batch_from(j), &a.p.dev);

    // The genuine batch still applies.
    assert_eq!(apply(&b.p, &batch_from(good)).unwrap().accepted, 2);
}

#[test]
fn a_signed_batch_whose_change_was_altered_is_a_hash_mismatch() {
    let (a, b) = (Signer::new("a", 1), Signer::new("b", 2));
    b.trusts(&a);
    write(&a.p, 0, 3);
    for k in 0..3 {
        let mut j = json_of(&a.batch_for(&b.p, 1000));
        j["changes"][k]["change_data"] = json!(r#"{"id":"r0","a":666,"b":"x","c":null}"#);
        let before = b.p.fingerprint();
        match apply(&b.p, &batch_from(j)) {
            Err(peersync_core::Error::Integrity(m)) => {
                assert!(m.contains(&format!("{}:{}", a.p.dev, k + 1)) && m.contains("hash mismatch"), "{m}")
            }
            other => panic!("change {k} altered: expected a hash mismatch, got {other:?}"),
        }
        assert_unchanged(&before, &b.p.fingerprint(), "an altered signed batch");
    }
}

#[test]
fn a_batch_that_starts_past_the_head_held_waits() {
    let (a, b) = (Signer::new("a", 1), Signer::new("b", 2));
    b.trusts(&a);
    write(&a.p, 0, 2);
    assert_eq!(apply(&b.p, &a.batch_for(&b.p, 1)).unwrap().accepted, 1);
    write(&a.p, 2, 2);
    // A batch made for a peer that holds A:3 starts at A:4: B (at A:1) defers it.
    let mut ahead = vector(&b.p);
    ahead.insert(a.p.dev.clone(), 3);
    let batch = peersync_core::outgoing(&a.p.conn, &a.key, &ahead, 1000).unwrap();
    assert_eq!(batch.changes.len(), 1);
    let applied = apply(&b.p, &batch).unwrap();
    assert_eq!((applied.accepted, applied.deferred, applied.refused), (0, 1, 0));
    assert_eq!(applied.vector[&a.p.dev], 1);
    // What it lacks, in order, applies.
    assert_eq!(apply(&b.p, &a.batch_for(&b.p, 1000)).unwrap().accepted, 3);
    assert_eq!(b.p.rows("t1"), a.p.rows("t1"));
}

#[test]
fn revoked_origins_are_refused_whoever_relays_them() {
    let (a, b, c) = (Signer::new("a", 1), Signer::new("b", 2), Signer::new("c", 3));
    b.trusts(&a);
    c.trusts(&a);
    c.trusts(&b);
    write(&a.p, 0, 2);
    apply(&b.p, &a.batch_for(&b.p, 1000)).unwrap();
    b.p.exec("INSERT INTO t1 VALUES ('from-b', 1, 'b', NULL)");
    peersync_core::revoke(&c.p.conn, &a.p.dev).unwrap();
    let batch = b.batch_for(&c.p, 1000);
    assert_eq!(batch.changes.len(), 3, "B relays A's two changes and its own");
    let applied = apply(&c.p, &batch).unwrap();
    assert_eq!((applied.accepted, applied.refused), (1, 2));
    assert_eq!(applied.refused_devices, vec![a.p.dev.clone()]);
    assert_eq!(c.p.rows("t1"), vec![vec![t("from-b"), V::Int(1), t("b"), V::Null]]);
    assert!(!applied.vector.contains_key(&a.p.dev));
    // C keeps no signature of the device it revoked.
    assert_eq!(c.p.int(&format!("SELECT count(*) FROM sync_signatures WHERE device_id = '{}'", a.p.dev)), 0);
}

#[test]
fn a_relay_cuts_pages_where_each_origin_signed() {
    let (a, b, c) = (Signer::new("a", 1), Signer::new("b", 2), Signer::new("c", 3));
    b.trusts(&a);
    c.trusts(&a);
    c.trusts(&b);
    // B receives A:1..3 then A:4..5: it holds A's signatures at versions 3 and 5.
    write(&a.p, 0, 3);
    apply(&b.p, &a.batch_for(&b.p, 1000)).unwrap();
    write(&a.p, 3, 2);
    apply(&b.p, &a.batch_for(&b.p, 1000)).unwrap();
    let signed: Vec<i64> = {
        let mut st =
            b.p.conn.prepare("SELECT version FROM sync_signatures WHERE device_id = ?1 ORDER BY version").unwrap();
        let v = st.query_map([&a.p.dev], |r| r.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap();
        v
    };
    assert_eq!(signed, vec![3, 5]);

    // Asked for 4, B sends A:1..3, the longest prefix that ends on a signed version.
    let page = b.batch_for(&c.p, 4);
    assert_eq!(page.changes.iter().map(|e| e.version).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(page.has_more);
    assert_eq!(
        page.signatures.iter().map(|s| (s.device_id.as_str(), s.version)).collect::<Vec<_>>(),
        [(a.p.dev.as_str(), 3)]
    );
    // The same cut through sync_changes: the rule lives in core, the sidecar only adds its own signature.
    let plain = peersync_core::changes(&b.p.conn, &vector(&c.p), 4).unwrap();
    assert_eq!(plain.changes.len(), 3);
    assert_eq!(apply(&c.p, &page).unwrap().accepted, 3);

    // Asked for 1, B sends A:4..5: the shortest prefix that ends signed, beyond the limit.
    let page = b.batch_for(&c.p, 1);
    assert_eq!(page.changes.iter().map(|e| e.version).collect::<Vec<_>>(), vec![4, 5]);
    assert!(!page.has_more);
    assert_eq!(apply(&c.p, &page).unwrap().accepted, 2);
    assert_eq!(c.p.rows("t1"), a.p.rows("t1"));

    // B's own changes end anywhere: B signs them when it sends.
    b.p.exec("INSERT INTO t1 VALUES ('b1', 1, 'b', NULL); INSERT INTO t1 VALUES ('b2', 2, 'b', NULL)");
    let page = b.batch_for(&c.p, 1);
    assert_eq!(page.changes.len(), 1);
    let own: &HeadSignature = page.signatures.iter().find(|s| s.device_id == b.p.dev).expect("B's own signature");
    assert_eq!((own.version, &own.hash), (page.changes[0].version, &page.changes[0].hash));
    assert_eq!(apply(&c.p, &page).unwrap().accepted, 1);
}

/// Forgets `dev` and its key, and drops this database's own key: a database without keys
/// takes changes unsigned (SQL-only sync), as these tests need to make a relay that holds
/// changes no signature vouches for.
fn without_keys(p: &Peer, dev: &str) {
    p.exec(&format!(
        "DELETE FROM sync_devices WHERE device_id = '{dev}'; UPDATE sync_devices SET public_key = NULL WHERE device_id = '{}'",
        p.dev
    ));
}

#[test]
fn with_no_signed_version_to_end_on_a_page_keeps_to_its_limit() {
    let (a, b, c) = (Signer::new("a", 1), Signer::new("b", 2), Signer::new("c", 3));
    b.trusts(&a);
    c.trusts(&a);
    c.trusts(&b);
    write(&a.p, 0, 2);
    apply(&b.p, &a.batch_for(&b.p, 1000)).unwrap(); // B keeps A's signature at 2
                                                    // A:3..6 reach B with no signature.
    write(&a.p, 2, 4);
    without_keys(&b.p, &a.p.dev);
    let unsigned = peersync_core::changes(&a.p.conn, &vector(&b.p), 1000).unwrap();
    assert_eq!(apply(&b.p, &unsigned).unwrap().accepted, 4);
    apply(&c.p, &b.batch_for(&c.p, 1000)).unwrap(); // C: A:1..2
    let page = b.batch_for(&c.p, 3);
    assert_eq!(page.changes.len(), 3, "no prefix ends signed: the limit, as it is");
    assert!(page.has_more);
    assert_unsigned_refused(&c.p, &page, &a.p.dev);
}

#[test]
fn a_database_without_keys_keeps_the_signatures_it_cannot_check() {
    let (a, b) = (Signer::new("a", 1), Signer::new("b", 2));
    b.trusts(&a);
    write(&a.p, 0, 2);
    apply(&b.p, &a.batch_for(&b.p, 1000)).unwrap();
    let relayed = b.batch_for(&a.p, 1000); // nothing for A; use a fresh receiver below
    assert!(relayed.changes.is_empty());
    // D has no key of its own: it applies A's changes relayed by B, unsigned checks aside, and
    // keeps A's signature as it came, for receivers that can check it.
    let d = Peer::standard("d", "timestamp_wins", "timestamp_wins");
    let relayed = peersync_core::outgoing(&b.p.conn, &b.key, &vector(&d), 1000).unwrap();
    let sig = relayed.signatures.iter().find(|s| s.device_id == a.p.dev).unwrap().clone();
    let mut j = json_of(&relayed);
    assert_eq!(apply(&d, &relayed).unwrap().accepted, 2);
    let kept: String = d
        .conn
        .query_row("SELECT signature FROM sync_signatures WHERE device_id = ?1 AND version = 2", [&a.p.dev], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(kept, sig.signature);
    assert_eq!(
        d.int("SELECT count(*) FROM sync_devices"),
        1,
        "introductions from a device it does not trust are left aside"
    );

    // A signature that is not even 128 hex characters is not kept; one on a version this
    // database does not hold is not kept either.
    let e = Peer::standard("e", "timestamp_wins", "timestamp_wins");
    for s in j["signatures"].as_array_mut().unwrap() {
        if s["device_id"] == json!(a.p.dev) {
            s["signature"] = json!("zz");
        }
    }
    j["signatures"].as_array_mut().unwrap().push(json!(peersync_core::sign(&a.key, &a.p.dev, 9, &"1".repeat(64))));
    assert_eq!(apply(&e, &batch_from(j)).unwrap().accepted, 2);
    assert_eq!(e.int(&format!("SELECT count(*) FROM sync_signatures WHERE device_id = '{}'", a.p.dev)), 0);
}

// ------------------------------------------------------------------ keys: pairing and introductions

/// A keyed database applies nothing of an origin it has no key for: the changes wait (listed
/// in `sync_status`), the rest of the batch applies, and an introduction later brings the key.
#[test]
fn changes_of_an_origin_without_a_key_wait_until_it_is_introduced() {
    let (a, b, c) = (Signer::new("a", 1), Signer::new("b", 2), Signer::new("c", 3));
    b.trusts(&a);
    c.trusts(&b);
    write(&a.p, 0, 2);
    apply(&b.p, &a.batch_for(&b.p, 1000)).unwrap();
    b.p.exec("INSERT INTO t1 VALUES ('from-b', 1, 'b', NULL)");
    // B's page without its introductions (as `sync_changes` from SQL makes it, plus B's signature).
    let mut page = b.batch_for(&c.p, 1000);
    page.introductions.clear();
    let before = c.p.fingerprint();
    let applied = apply(&c.p, &page).unwrap();
    assert_eq!((applied.accepted, applied.deferred), (1, 2), "B's own change applies, A's wait");
    assert_eq!(applied.held.len(), 1);
    assert_eq!(
        (applied.held[0].device_id.as_str(), applied.held[0].version, applied.held[0].reason.as_str()),
        (a.p.dev.as_str(), 1, "unknown_origin")
    );
    assert!(!applied.vector.contains_key(&a.p.dev));
    assert_ne!(before, c.p.fingerprint());
    let status = c.p.json("SELECT sync_status()");
    assert_eq!(status["waiting"][0]["origin"], json!(a.p.dev), "{status}");
    assert_eq!(status["waiting"][0]["offered_by"], json!(b.p.dev));
    // With B's introduction of A, A's changes apply, and nothing waits any more.
    let page = b.batch_for(&c.p, 1000);
    assert_eq!(page.introductions.iter().map(|i| i.device_id.as_str()).collect::<Vec<_>>(), [a.p.dev.as_str()]);
    let applied = apply(&c.p, &page).unwrap();
    assert_eq!((applied.accepted, applied.deferred), (2, 0));
    assert_eq!(c.p.rows("t1"), b.p.rows("t1"));
    assert_eq!(c.p.json("SELECT sync_status()")["waiting"], json!([]));
    let introduced = peersync_core::device(&c.p.conn, &a.p.dev).unwrap().unwrap();
    assert_eq!((introduced.is_authorized, introduced.introduced_by.as_deref()), (true, Some(b.p.dev.as_str())));
    assert_eq!(peersync_core::introduced_by(&c.p.conn, &b.p.dev).unwrap(), vec![a.p.dev.clone()]);
}

#[test]
fn an_introduction_never_replaces_a_key_nor_readmits_a_revoked_device() {
    let (a, b, c, fake) = (Signer::new("a", 1), Signer::new("b", 2), Signer::new("c", 3), Signer::new("fake", 9));
    c.trusts(&a);
    c.trusts(&b);
    // B vouches for A with another key: the key paired at C stays, and the dispute shows.
    let mut hello = peersync_core::hello(&b.p.conn, &b.key).unwrap();
    hello.introductions = vec![peersync_core::introduce(&b.key, &b.p.dev, &a.p.dev, &public(&fake.key), "a")];
    apply(&c.p, &hello).unwrap();
    assert_eq!(peersync_core::device(&c.p.conn, &a.p.dev).unwrap().unwrap().public_key, Some(public(&a.key)));
    let status = c.p.json("SELECT sync_status()");
    assert_eq!(status["disputed_keys"][0]["device_id"], json!(a.p.dev), "{status}");
    assert_eq!(status["disputed_keys"][0]["by"], json!(b.p.dev));
    // A device revoked at C stays revoked, whoever introduces it.
    peersync_core::revoke(&c.p.conn, &fake.p.dev).unwrap_err(); // not known yet
    hello.introductions = vec![peersync_core::introduce(&b.key, &b.p.dev, &fake.p.dev, &public(&fake.key), "f")];
    apply(&c.p, &hello).unwrap();
    peersync_core::revoke(&c.p.conn, &fake.p.dev).unwrap();
    apply(&c.p, &hello).unwrap();
    assert!(!peersync_core::device(&c.p.conn, &fake.p.dev).unwrap().unwrap().is_authorized);
}

#[test]
fn introductions_are_checked_by_their_introducer_s_key() {
    let (a, b, c, x) = (Signer::new("a", 1), Signer::new("b", 2), Signer::new("c", 3), Signer::new("x", 4));
    c.trusts(&b);
    let mut hello = peersync_core::hello(&b.p.conn, &b.key).unwrap();
    // Signed with another key than the introducer's: the batch is refused, nothing changes.
    hello.introductions = vec![peersync_core::introduce(&x.key, &b.p.dev, &a.p.dev, &public(&a.key), "a")];
    let before = c.p.fingerprint();
    match apply(&c.p, &hello) {
        Err(peersync_core::Error::Unauthorized(m)) => {
            assert!(m.contains("no valid signature of its introducer"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert_unchanged(&before, &c.p.fingerprint(), "a forged introduction");
    // By a device C does not trust: not C's to judge, left aside.
    hello.introductions = vec![peersync_core::introduce(&x.key, &x.p.dev, &a.p.dev, &public(&a.key), "a")];
    apply(&c.p, &hello).unwrap();
    assert!(peersync_core::device(&c.p.conn, &a.p.dev).unwrap().is_none());
    // A malformed key or name from a trusted introducer is refused.
    for (dev, key, name, want) in [
        (a.p.dev.clone(), "zz".repeat(32), "a", "public key"),
        ("nope".to_string(), public(&a.key), "a", "device id"),
        (a.p.dev.clone(), public(&a.key), "a\nb", "control characters"),
    ] {
        hello.introductions = vec![peersync_core::introduce(&b.key, &b.p.dev, &dev, &key, name)];
        match apply(&c.p, &hello) {
            Err(peersync_core::Error::Unauthorized(m)) => assert!(m.contains(want), "{m}"),
            other => panic!("{want}: {other:?}"),
        }
    }
}

#[test]
fn an_introduction_repeated_by_every_batch_is_recorded_once() {
    let (a, b, c) = (Signer::new("a", 1), Signer::new("b", 2), Signer::new("c", 3));
    b.trusts(&a);
    c.trusts(&b);
    let received_at = || -> String {
        let sql = "SELECT received_at FROM sync_introductions WHERE device_id = ?1";
        c.p.conn.query_row(sql, [&a.p.dev], |r| r.get(0)).unwrap()
    };
    apply(&c.p, &peersync_core::hello(&b.p.conn, &b.key).unwrap()).unwrap();
    let first = received_at();
    std::thread::sleep(std::time::Duration::from_millis(5));
    apply(&c.p, &peersync_core::hello(&b.p.conn, &b.key).unwrap()).unwrap();
    assert_eq!(first, received_at(), "the same introduction again is neither checked nor written again");
}

#[test]
fn a_device_name_an_introduction_could_not_carry_is_refused_where_it_is_set() {
    let (a, b) = (Signer::new("a", 1), Signer::new("b", 2));
    for name in ["two\nlines".to_string(), "x".repeat(201)] {
        let e = peersync_core::trust(&b.p.conn, &a.p.dev, &public(&a.key), Some(&name), None).unwrap_err().to_string();
        assert!(e.contains("control characters"), "{e}");
        assert!(peersync_core::device(&b.p.conn, &a.p.dev).unwrap().is_none(), "nothing was trusted");
    }
    peersync_core::trust(&b.p.conn, &a.p.dev, &public(&a.key), Some(&"x".repeat(200)), None).unwrap();
}

// ------------------------------------------------------------------ what a receiver keeps

#[test]
fn overlapping_and_repeated_changes_of_a_keyed_origin_apply_once() {
    let (a, b) = (Signer::new("a", 1), Signer::new("b", 2));
    b.trusts(&a);
    write(&a.p, 0, 3);
    assert_eq!(apply(&b.p, &a.batch_for(&b.p, 1)).unwrap().accepted, 1);
    // A page made for a peer that holds nothing: A:1 again, then A:2..3.
    let page = peersync_core::outgoing(&a.p.conn, &a.key, &Vector::new(), 1000).unwrap();
    let applied = apply(&b.p, &page).unwrap();
    assert_eq!((applied.accepted, applied.duplicates, applied.deferred), (2, 1, 0));
    // An exact repeat of a new change inside one batch is a duplicate, not a broken chain.
    write(&a.p, 3, 2);
    let mut j = json_of(&a.batch_for(&b.p, 1000));
    let again = j["changes"][0].clone();
    j["changes"].as_array_mut().unwrap().insert(1, again);
    let applied = apply(&b.p, &batch_from(j)).unwrap();
    assert_eq!((applied.accepted, applied.duplicates), (2, 1));
    assert_eq!(b.p.rows("t1"), a.p.rows("t1"));
}

#[test]
fn signatures_that_do_not_verify_or_name_a_revoked_device_are_not_kept() {
    let (a, b, c) = (Signer::new("a", 1), Signer::new("b", 2), Signer::new("c", 3));
    b.trusts(&a);
    c.trusts(&a);
    c.trusts(&b);
    write(&a.p, 0, 2);
    // A's batch carries, besides its genuine signature on A:2, a bogus one on A:1.
    let mut j = json_of(&a.batch_for(&b.p, 1000));
    let h1 = j["changes"][0]["hash"].as_str().unwrap().to_string();
    j["signatures"]
        .as_array_mut()
        .unwrap()
        .push(json!({"device_id": a.p.dev, "version": 1, "hash": h1, "signature": "ab".repeat(64)}));
    assert_eq!(apply(&b.p, &batch_from(j)).unwrap().accepted, 2);
    let kept = |p: &Peer, v: i64| {
        p.int(&format!("SELECT count(*) FROM sync_signatures WHERE device_id = '{}' AND version = {v}", a.p.dev))
    };
    assert_eq!((kept(&b.p, 1), kept(&b.p, 2)), (0, 1), "only the signature that verifies is kept");
    // C holds A's changes, then revokes A: a signature of A arriving later is not kept.
    apply(&c.p, &a.batch_for(&c.p, 1)).unwrap();
    assert_eq!(kept(&c.p, 1), 1);
    peersync_core::revoke(&c.p.conn, &a.p.dev).unwrap();
    c.p.exec(&format!("DELETE FROM sync_signatures WHERE device_id = '{}'", a.p.dev));
    let mut relayed = b.batch_for(&c.p, 1000);
    relayed.signatures.push(peersync_core::sign(&a.key, &a.p.dev, 1, &h1));
    apply(&c.p, &relayed).unwrap();
    assert_eq!(kept(&c.p, 1), 0, "a genuine signature of a revoked device is not kept");
}

/// Changes every trusted peer is known to hold are logged as synced at once.
#[test]
fn changes_every_peer_holds_are_logged_as_synced() {
    let (a, b) = (Signer::new("a", 1), Signer::new("b", 2));
    b.trusts(&a);
    write(&a.p, 0, 2);
    b.p.exec("INSERT INTO t1 VALUES ('b1', 1, 'b', NULL)");
    apply(&b.p, &a.batch_for(&b.p, 1000)).unwrap();
    let synced =
        |dev: &str| b.p.int(&format!("SELECT ifnull(sum(is_synced), 0) FROM sync_log WHERE device_id = '{dev}'"));
    assert_eq!(synced(&a.p.dev), 2, "A holds its own changes: synced everywhere B knows of");
    assert_eq!(synced(&b.p.dev), 0, "A has not said it holds B's change");
}

/// A change some trusted peer is not known to hold is not synced, until that peer says it is.
#[test]
fn a_change_some_peer_lacks_is_not_synced_until_it_holds_it() {
    let (a, b, c) = (Signer::new("a", 1), Signer::new("b", 2), Signer::new("c", 3));
    b.trusts(&a);
    b.trusts(&c);
    write(&a.p, 0, 2);
    apply(&b.p, &a.batch_for(&b.p, 1000)).unwrap();
    let synced = || b.p.int(&format!("SELECT ifnull(sum(is_synced), 0) FROM sync_log WHERE device_id = '{}'", a.p.dev));
    assert_eq!(synced(), 0, "C has not said it holds A's changes");
    assert_eq!(b.p.json("SELECT sync_status()")["log"]["unsynced"], 2);
    let holds: peersync_core::Vector = [(a.p.dev.clone(), 1)].into_iter().collect();
    peersync_core::note_peer_vector(&b.p.conn, &c.p.dev, &holds).unwrap();
    assert_eq!(synced(), 1, "C holds A:1 only");
}
