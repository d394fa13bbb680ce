//! Owns the tests of recovering a device restored from an old backup (`peersync recover`): its
//! lost changes come back from the peers, what it wrote since the restore is kept on a new
//! identity's chain, the peers take the succession (signed with the old key) and end its
//! quarantine, and every device converges.
mod common;

use common::*;
use ed25519_dalek::SigningKey;
use peersync_core::{Agreement, ChainSearch, Probe, Standing, Succession, SuccessionOutcome};

/// `s`'s database copied as it is now (a backup), opened as another peer with the same key.
fn backup(s: &Signer, name: &str) -> Signer {
    let path = std::env::temp_dir().join(format!("peersync-backup-{}-{name}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    s.p.conn.execute("VACUUM INTO ?1", [path.to_str().unwrap()]).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut p = Peer::setup(conn, name, "");
    p.dev = s.p.dev.clone();
    Signer { p, key: s.key.clone() }
}

fn probe(p: &Peer, origin: &str, versions: &[i64]) -> Probe {
    peersync_core::probe(&p.conn, origin, versions).unwrap()
}

/// What `peer` holds of `me`'s chain, found as `peersync recover` finds it.
fn agreement(me: &Signer, peer: &Signer) -> Agreement {
    let own = &me.p.dev;
    let mut s = ChainSearch::new(peersync_core::vector(&me.p.conn).unwrap().get(own).copied().unwrap_or(0));
    while !s.done() {
        let v = s.probes();
        s.answer(&probe(&me.p, own, &v), &probe(&peer.p, own, &v));
    }
    s.result()
}

/// Recovers `r` (restored) as a new identity, with the peers `reached` taking the succession;
/// returns it as the new device.
fn recover(r: Signer, reached: &[&Signer], seed: u8) -> (Signer, peersync_core::Recovered) {
    let found: Vec<Agreement> = reached.iter().map(|p| agreement(&r, p)).collect();
    let key = SigningKey::from_bytes(&[seed; 32]);
    let new_id = format!("{:032x}", 0xabcdef00u128 + seed as u128);
    let s = Succession::new(&r.key, &r.p.dev, &new_id, &public(&key), "restored");
    for p in reached {
        assert_eq!(peersync_core::take_succession(&p.p.conn, &s).unwrap(), SuccessionOutcome::Taken);
    }
    let done = peersync_core::recover(&r.p.conn, &s, peersync_core::keep_through(&found)).unwrap();
    let Signer { mut p, .. } = r;
    p.dev = new_id;
    (Signer { p, key }, done)
}

fn converge(all: &[&Signer]) {
    for _ in 0..3 {
        for x in all {
            for y in all {
                if x.p.dev != y.p.dev {
                    let _ = peersync_core::apply(&y.p.conn, &x.outgoing(y)).unwrap();
                }
            }
        }
    }
}

#[test]
fn a_restored_device_takes_back_its_lost_changes_and_keeps_what_it_wrote_since() {
    let [a, b, c] = mesh(["a", "b", "c"]);
    let old = a.p.dev.clone();
    a.p.exec("INSERT INTO t1 VALUES ('r1', 'a', 0, 0); INSERT INTO t1 VALUES ('r2', 'a', 0, 0)");
    a.sync_with(&b);
    a.sync_with(&c);
    let restored = backup(&a, "a-restored");
    // Written after the backup, then the device is lost: only b got them.
    a.p.exec("INSERT INTO t1 VALUES ('lost', 'a', 0, 0); UPDATE t1 SET b = 'lost edit' WHERE id = 'r1'");
    a.send(&b);
    drop(a);
    // The restored device writes on the old versions: a fork.
    restored.p.exec("INSERT INTO t1 VALUES ('new', 'r', 0, 0); UPDATE t1 SET c = 'restored edit' WHERE id = 'r2'");
    let refused = peersync_core::apply(&b.p.conn, &restored.outgoing(&b)).unwrap_err().to_string();
    assert!(refused.contains("forked chain"), "{refused}");
    assert!(matches!(peersync_core::standing(&b.p.conn, &old).unwrap(), Standing::Quarantined(_)));
    assert_eq!(agreement(&restored, &b), Agreement { agreed: 2, forked_at: Some(3), peer_head: 4 });
    assert_eq!(agreement(&restored, &c), Agreement { agreed: 2, forked_at: None, peer_head: 2 });

    let (r, done) = recover(restored, &[&b, &c], 40);
    assert_eq!((done.kept_through, done.moved, done.old_id.as_str()), (2, 2, old.as_str()));
    // The peers reached: quarantine over, the old identity retired, the new one trusted.
    for p in [&b, &c] {
        assert_eq!(p.p.int("SELECT count(*) FROM sync_quarantine"), 0, "{}", p.p.name);
        assert!(matches!(peersync_core::standing(&p.p.conn, &old).unwrap(), Standing::Retired(_)));
        assert!(matches!(peersync_core::standing(&p.p.conn, &r.p.dev).unwrap(), Standing::Trusted { .. }));
    }
    // The restored device: its own work is the new chain's (versions 1, 2), then the succession.
    assert_eq!(peersync_core::device_id(&r.p.conn).unwrap(), r.p.dev);
    assert_eq!(r.p.int(&format!("SELECT count(*) FROM sync_log WHERE device_id = '{old}'")), 2);
    assert_eq!(r.p.int(&format!("SELECT max(version) FROM sync_log WHERE device_id = '{}'", r.p.dev)), 3);
    assert_eq!(r.p.json("SELECT sync_verify()")["ok"], true);

    converge(&[&r, &b, &c]);
    assert_same(&r.p, &b.p);
    assert_same(&r.p, &c.p);
    for p in [&r, &b, &c] {
        assert_eq!(p.p.int("SELECT count(*) FROM sync_quarantine"), 0, "{}", p.p.name);
        assert_eq!(p.p.json("SELECT sync_verify()")["ok"], true, "{}", p.p.name);
        assert!(p.p.pending().is_empty(), "{}", p.p.name);
        // Nothing waits for the old identity: it syncs no more, its successor counts.
        let status = p.p.json("SELECT sync_status()");
        assert_eq!(status["log"]["unsynced"], 0, "{}: {status}", p.p.name);
        assert_eq!(p.p.row("t1", "id = 'lost'").unwrap()[1], t("a"), "{}: the lost insert is back", p.p.name);
        assert_eq!(p.p.row("t1", "id = 'r1'").unwrap()[2], t("lost edit"), "{}", p.p.name);
        assert_eq!(p.p.row("t1", "id = 'new'").unwrap()[1], t("r"), "{}: the restored work is kept", p.p.name);
        assert_eq!(p.p.row("t1", "id = 'r2'").unwrap()[3], t("restored edit"), "{}", p.p.name);
        // Both chains verify everywhere: the old identity's real one, the new one.
        assert_eq!(p.p.int(&format!("SELECT count(*) FROM sync_log WHERE device_id = '{old}'")), 4);
        assert_eq!(p.p.int(&format!("SELECT count(*) FROM sync_log WHERE device_id = '{}'", r.p.dev)), 3);
    }
    // c learnt the succession from the event in the new chain, not only from being reached.
    assert!(c.p.int("SELECT count(*) FROM sync_devices WHERE succeeded_by IS NOT NULL") == 1);
}

#[test]
fn a_device_that_hears_of_the_recovery_only_through_the_new_chain_ends_its_quarantine() {
    let [a, b, c] = mesh(["a", "b", "c"]);
    let old = a.p.dev.clone();
    a.p.exec("INSERT INTO t1 VALUES ('r1', 'a', 0, 0)");
    a.sync_with(&b);
    a.sync_with(&c);
    let restored = backup(&a, "a-restored-2");
    a.p.exec("INSERT INTO t1 VALUES ('lost', 'a', 0, 0)");
    a.send(&b);
    a.send(&c);
    drop(a);
    restored.p.exec("INSERT INTO t1 VALUES ('new', 'r', 0, 0)");
    // Both peers caught the fork; only b is reached by the recovery.
    for p in [&b, &c] {
        assert!(peersync_core::apply(&p.p.conn, &restored.outgoing(p)).is_err());
        assert_eq!(p.p.int("SELECT count(*) FROM sync_quarantine"), 1);
    }
    let (r, done) = recover(restored, &[&b], 41);
    assert_eq!((done.kept_through, done.moved), (1, 1));
    assert_eq!(c.p.int("SELECT count(*) FROM sync_quarantine"), 1, "c has not heard yet");
    converge(&[&r, &b, &c]);
    assert_eq!(c.p.int("SELECT count(*) FROM sync_quarantine"), 0, "the succession ended it");
    assert!(matches!(peersync_core::standing(&c.p.conn, &old).unwrap(), Standing::Retired(_)));
    assert_same(&r.p, &b.p);
    assert_same(&r.p, &c.p);
    assert!(r.p.row("t1", "id = 'lost'").is_some() && r.p.row("t1", "id = 'new'").is_some());
}

#[test]
fn a_restored_device_that_wrote_nothing_takes_its_changes_back() {
    let [a, b] = mesh(["a", "b"]);
    a.p.exec("INSERT INTO t1 VALUES ('r1', 'a', 0, 0)");
    a.sync_with(&b);
    let restored = backup(&a, "a-restored-3");
    a.p.exec("UPDATE t1 SET a = 'later' WHERE id = 'r1'");
    a.send(&b);
    drop(a);
    // b sends the restored device changes "it never made": it quarantines b.
    assert!(peersync_core::apply(&restored.p.conn, &b.outgoing(&restored)).is_err());
    assert_eq!(restored.p.int("SELECT count(*) FROM sync_quarantine"), 1);
    let (r, done) = recover(restored, &[&b], 42);
    assert_eq!((done.kept_through, done.moved), (1, 0));
    assert_eq!(done.released, vec![b.p.dev.clone()]);
    converge(&[&r, &b]);
    assert_same(&r.p, &b.p);
    assert_eq!(r.p.row("t1", "id = 'r1'").unwrap()[1], t("later"));
    assert_eq!(r.p.int("SELECT count(*) FROM sync_quarantine"), 0);
}

#[test]
fn a_succession_must_be_signed_by_the_old_key_and_the_first_one_stands() {
    let [a, b] = mesh(["a", "b"]);
    let new = SigningKey::from_bytes(&[50; 32]);
    let id1 = format!("{:032x}", 1);
    let forged = Succession::new(&new, &a.p.dev, &id1, &public(&new), "x");
    let before = b.p.fingerprint();
    let err = peersync_core::take_succession(&b.p.conn, &forged).unwrap_err().to_string();
    assert!(err.contains("not signed by the key"), "{err}");
    assert_eq!(b.p.fingerprint(), before, "nothing changed");
    assert!(matches!(peersync_core::standing(&b.p.conn, &a.p.dev).unwrap(), Standing::Trusted { .. }));
    let good = Succession::new(&a.key, &a.p.dev, &id1, &public(&new), "x");
    assert_eq!(peersync_core::take_succession(&b.p.conn, &good).unwrap(), SuccessionOutcome::Taken);
    assert_eq!(peersync_core::take_succession(&b.p.conn, &good).unwrap(), SuccessionOutcome::Known);
    let second = Succession::new(&a.key, &a.p.dev, &format!("{:032x}", 2), &public(&new), "y");
    assert!(matches!(
        peersync_core::take_succession(&b.p.conn, &second).unwrap(),
        SuccessionOutcome::Ignored(m) if m.contains("recovered as device")
    ));
}

#[test]
fn recovery_refuses_what_it_cannot_do_and_changes_nothing() {
    let [a, _b] = mesh(["a", "b"]);
    a.p.exec("INSERT INTO t1 VALUES ('r1', 'a', 0, 0)");
    let k = SigningKey::from_bytes(&[60; 32]);
    let id = format!("{:032x}", 7);
    a.p.seal();
    let before = a.p.fingerprint();
    let s = Succession::new(&a.key, &a.p.dev, &id, &public(&k), "n");
    let e = peersync_core::recover(&a.p.conn, &s, 5).unwrap_err().to_string();
    assert!(e.contains("cannot keep version 5"), "{e}");
    let other = Succession::new(&k, &a.p.dev, &id, &public(&k), "n");
    let e = peersync_core::recover(&a.p.conn, &other, 0).unwrap_err().to_string();
    assert!(e.contains("not signed with this device's key"), "{e}");
    assert_eq!(a.p.fingerprint(), before);
    assert_eq!(peersync_core::device_id(&a.p.conn).unwrap(), a.p.dev);
}

#[test]
fn the_lost_edit_and_the_restored_edit_of_one_column_are_a_conflict_a_person_settles_once() {
    let [a, b] = mesh(["a", "b"]);
    for p in [&a, &b] {
        p.p.track("t1", "manual");
    }
    a.p.exec("INSERT INTO t1 VALUES ('r1', 'first', 0, 0)");
    a.sync_with(&b);
    let restored = backup(&a, "a-restored-4");
    a.p.exec("UPDATE t1 SET a = 'lost edit' WHERE id = 'r1'");
    a.send(&b);
    drop(a);
    restored.p.exec("UPDATE t1 SET a = 'restored edit' WHERE id = 'r1'");
    let (r, done) = recover(restored, &[&b], 43);
    assert_eq!(done.moved, 1);
    converge(&[&r, &b]);
    // One conflict on each side, between the original's lost edit and the new identity's.
    for p in [&r.p, &b.p] {
        let c = p.conflicts();
        let open: Vec<_> = c.iter().filter(|c| c.status == "pending").collect();
        assert_eq!(open.len(), 1, "{}: {c:?}", p.name);
        let devices = [open[0].local_device_id.clone().unwrap(), open[0].remote_device_id.clone().unwrap()];
        assert!(devices.contains(&r.p.dev), "{}: the new identity's edit: {devices:?}", p.name);
    }
    let id = r.p.pending()[0];
    r.p.resolve(id, "local").unwrap();
    converge(&[&r, &b]);
    assert_same(&r.p, &b.p);
    for p in [&r.p, &b.p] {
        assert!(p.pending().is_empty(), "{}", p.name);
        assert_eq!(p.row("t1", "id = 'r1'").unwrap()[1], t("restored edit"), "{}", p.name);
    }
}
