//! Owns the tests of revocation as a signed event (DESIGN.md amendments: "a revocation is a
//! signed event that reaches every device"; "a refused change never stalls the rest"): a
//! revocation travels in its maker's chain, every device takes it up at its next sync, the
//! revoked device cannot undo it, and a change built on a refused one never stalls its origin.
mod common;

use common::*;
use serde_json::{json, Value as Json};

/// Three devices that all trust each other.
fn mesh() -> (Signer, Signer, Signer) {
    let [a, b, c] = common::mesh(["a", "b", "c"]);
    (a, b, c)
}

#[test]
fn a_change_built_on_a_refused_change_never_stalls_its_origin() {
    // c (the laptop) revoked a (the tablet); b (the phone) still trusts a, takes a's row and
    // edits it, then writes elsewhere.
    let (a, b, c) = mesh();
    peersync_core::revoke(&c.p.conn, &a.p.dev).unwrap();
    a.p.exec("INSERT INTO t1 VALUES ('tab', 1, 'from a', NULL)");
    assert_eq!(a.send(&b).accepted, 1);
    b.p.exec("UPDATE t1 SET b = 'edited by b' WHERE id = 'tab'");
    b.p.exec("INSERT INTO t1 VALUES ('phone', 2, 'b', NULL)");
    b.p.exec("INSERT INTO t2 VALUES ('k', 1, 'x', 'y')");
    let applied = b.send(&c);
    // a's change is refused; b's three changes, the edit built on it among them, are taken.
    assert_eq!((applied.refused, applied.deferred), (1, 0), "{applied:?}");
    assert_eq!(applied.refused_devices, vec![a.p.dev.clone()]);
    assert_eq!(applied.vector.get(&b.p.dev), vector(&b.p).get(&b.p.dev), "every change of b is at c");
    assert!(!applied.vector.contains_key(&a.p.dev));
    assert!(c.p.row("t1", "id = 'phone'").is_some());
    assert_eq!(c.p.rows("t2").len(), 1);
    // The edit merged as a write concurrent with what c holds: the row has b's edit, and a's
    // values are nowhere here.
    let tab = c.p.row("t1", "id = 'tab'");
    assert!(tab.as_ref().is_none_or(|r| r[2] == t("edited by b")), "{tab:?}");
    // Nothing is left to send: a second round moves nothing and stalls nothing.
    let again = b.send(&c);
    assert_eq!((again.accepted, again.deferred), (0, 0), "{again:?}");
}

#[test]
fn a_change_built_on_a_held_back_change_waits_alone_and_merges_when_its_base_comes() {
    // The general case: c holds back a's changes (no key for a yet: b's page carries no
    // introduction); b edited a's row, then wrote elsewhere. b's other changes flow; the edit
    // waits for a's change, and merges when it comes.
    let (a, b, c) = (Signer::new("a", 1), Signer::new("b", 2), Signer::new("c", 3));
    b.trusts(&a);
    c.trusts(&b);
    a.p.exec("INSERT INTO t1 VALUES ('tab', 1, 'from a', NULL)");
    a.send(&b);
    b.p.exec("UPDATE t1 SET b = 'edited by b' WHERE id = 'tab'");
    b.p.exec("INSERT INTO t1 VALUES ('phone', 2, 'b', NULL)");
    b.p.exec("INSERT INTO t2 VALUES ('k', 1, 'x', 'y')");
    let mut page = b.outgoing(&c);
    page.introductions.clear();
    let applied = peersync_core::apply(&c.p.conn, &page).unwrap();
    assert_eq!((applied.accepted, applied.deferred, applied.schema_waiting), (3, 1, 1), "{applied:?}");
    assert_eq!(applied.held[0].reason, "unknown_origin");
    assert_eq!(applied.vector.get(&b.p.dev), vector(&b.p).get(&b.p.dev), "every change of b is logged at c");
    assert!(c.p.row("t1", "id = 'phone'").is_some());
    assert_eq!(c.p.rows("t2").len(), 1);
    assert!(c.p.row("t1", "id = 'tab'").is_none(), "the edit waits for the insert it is based on");
    let status = c.p.json("SELECT sync_status()");
    let w = &status["schema_waiting"][0];
    assert_eq!((w["table"].as_str(), w["reason"].as_str()), (Some("t1"), Some("base_missing")), "{status}");
    // b is sent again what c holds back: nothing of b's is deferred, nothing is logged twice.
    let mut again = b.outgoing(&c);
    again.introductions.clear();
    let applied = peersync_core::apply(&c.p.conn, &again).unwrap();
    assert_eq!((applied.accepted, applied.deferred), (0, 1), "{applied:?}");
    // With the introduction, a's change comes, and the edit merges after it.
    let applied = b.send(&c);
    assert_eq!((applied.accepted, applied.schema_applied), (1, 1), "{applied:?}");
    assert_eq!(c.p.rows("t1"), b.p.rows("t1"));
    assert_eq!(c.p.rows("t2"), b.p.rows("t2"));
    assert!(c.p.conflicts().is_empty(), "{:?}", c.p.conflicts());
    assert_eq!(c.p.json("SELECT sync_status()")["schema_waiting"], json!([]));
}

#[test]
fn a_revocation_reaches_every_device_through_relays_and_stops_the_revoked_device() {
    // c never talks to a; a revokes d (a's lost tablet), and c learns it through b.
    let (a, b, c) = mesh();
    let d = Signer::new("d", 4);
    for x in [&a, &b, &c] {
        x.trusts(&d);
        d.trusts(x);
    }
    d.p.exec("INSERT INTO t1 VALUES ('before', 1, 'd', NULL)");
    d.send(&c);
    assert!(c.p.row("t1", "id = 'before'").is_some());
    peersync_core::revoke(&a.p.conn, &d.p.dev).unwrap();
    let log = a.p.log();
    let ev = log.last().unwrap();
    assert_eq!((ev.table_name.as_str(), ev.record_id.clone()), ("sync_devices", Some(format!("'{}'", d.p.dev))));
    assert!(!a.authorized(&d));
    // Revoking again logs nothing more.
    peersync_core::revoke(&a.p.conn, &d.p.dev).unwrap();
    assert_eq!(a.p.log().len(), log.len());

    a.send(&b);
    assert!(!b.authorized(&d), "b took up a's revocation");
    assert!(c.authorized(&d));
    b.send(&c);
    assert!(!c.authorized(&d), "c took it up from b, a relay");
    let dev = peersync_core::device(&c.p.conn, &d.p.dev).unwrap().unwrap();
    assert_eq!(dev.revoked_by.as_deref(), Some(a.p.dev.as_str()));
    // d's earlier change stays; its later ones are refused at c, sent by d or relayed.
    d.p.exec("INSERT INTO t1 VALUES ('after', 2, 'd', NULL)");
    let direct = d.send(&c);
    assert_eq!((direct.accepted, direct.refused), (0, 1), "{direct:?}");
    assert!(c.p.row("t1", "id = 'before'").is_some());
    assert!(c.p.row("t1", "id = 'after'").is_none());
    // A device that has not heard of the revocation yet takes d's change; relayed to c, it is
    // refused.
    let e = Signer::new("e", 5);
    for x in [&c, &d] {
        e.trusts(x);
        x.trusts(&e);
    }
    c.trusts(&e);
    d.send(&e);
    assert!(e.p.row("t1", "id = 'after'").is_some());
    let relayed = e.send(&c);
    assert_eq!(relayed.refused_devices, vec![d.p.dev.clone()]);
    assert!(c.p.row("t1", "id = 'after'").is_none());
    // The revocation is part of a's signed chain: everyone's logs verify, and c's status says
    // who revoked d.
    for p in [&a.p, &b.p, &c.p] {
        assert_eq!(p.verify()["failed"], json!([]), "{:?}", p);
    }
    let status = c.p.json("SELECT sync_status()");
    let row = status["peers"].as_array().unwrap().iter().find(|p| p["device_id"] == json!(d.p.dev)).unwrap();
    assert_eq!(row["authorized"], json!(false));
    assert_eq!(row["revoked_by"], json!(a.p.dev));
}

#[test]
fn a_revocation_is_checked_by_its_maker_s_signature() {
    let (a, b, c) = mesh();
    peersync_core::revoke(&a.p.conn, &b.p.dev).unwrap();
    // b relays nothing of it; but a forger that alters a's revocation to name c instead fails
    // the chain; one that re-signs it with another key fails the signature.
    let batch = a.outgoing(&b);
    let mut j: Json = serde_json::to_value(&batch).unwrap();
    let last = j["changes"].as_array().unwrap().len() - 1;
    j["changes"][last]["record_id"] = json!(format!("'{}'", c.p.dev));
    let forged = peersync_core::parse_batch(&j.to_string()).unwrap();
    let other = Signer::new("x", 9);
    let before = b.p.fingerprint();
    assert!(peersync_core::apply(&b.p.conn, &forged).is_err());
    assert_unchanged(&before, &b.p.fingerprint(), "a forged revocation");
    let resigned = peersync_core::outgoing(&a.p.conn, &other.key, &vector(&b.p), 1000).unwrap();
    assert!(matches!(peersync_core::apply(&b.p.conn, &resigned), Err(peersync_core::Error::Unauthorized(_))));
    assert!(b.authorized(&c) && c.authorized(&b));
    // The genuine one, relayed by c, is taken; a revocation of the receiver itself does nothing.
    a.send(&c);
    assert!(!c.authorized(&b));
    let applied = c.send(&b);
    assert!(applied.accepted > 0);
    assert!(b.authorized(&a), "b never revokes its revoker, nor itself");
    assert!(peersync_core::device(&b.p.conn, &b.p.dev).unwrap().unwrap().is_authorized);
}

#[test]
fn the_revoked_device_cannot_undo_its_revocation() {
    let (a, b, c) = mesh();
    peersync_core::revoke(&a.p.conn, &b.p.dev).unwrap();
    a.send(&c);
    assert!(!c.authorized(&b));
    // b signs an entry that would re-admit it, in every spelling it might try: its changes are
    // refused at c, and no spelling grants trust anyway.
    b.p.exec("INSERT INTO t1 VALUES ('b', 1, 'b', NULL)");
    b.p.seal();
    let mut hello = peersync_core::hello(&b.p.conn, &b.key).unwrap();
    let dev = b.p.dev.clone();
    for data in [r#"{"authorized":true}"#, r#"{"authorized":false}"#] {
        let mut e = peersync_core::Entry {
            table_name: "sync_devices".into(),
            record_id: format!("'{dev}'"),
            operation: "UPDATE".into(),
            change_data: data.into(),
            device_id: dev.as_str().into(),
            version: peersync_core::vector(&b.p.conn).unwrap().get(&dev).copied().unwrap_or(0) + 1,
            timestamp: now_us(),
            bases: "{}".into(),
            resolution: false,
            hash: String::new(),
        };
        let prev =
            b.p.str(&format!("SELECT hash FROM sync_log WHERE device_id = '{dev}' ORDER BY version DESC LIMIT 1"));
        e.hash = e.compute_hash(&prev);
        hello.changes = vec![e.clone()];
        hello.signatures = vec![peersync_core::sign(&b.key, &dev, e.version, &e.hash)];
        let applied = peersync_core::apply(&c.p.conn, &hello).unwrap();
        assert_eq!((applied.accepted, applied.refused), (0, 1), "{applied:?}");
        assert!(!c.authorized(&b));
        // At a device that still trusts b, the un-revocation spelling is refused as malformed.
        if data.contains("true") {
            let f = Signer::new("f", 6);
            f.trusts(&b);
            b.send(&f);
            let m = peersync_core::apply(&f.p.conn, &hello).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(m.contains("malformed revocation"), "{m}");
        }
    }
    // Only a fresh pairing re-admits b. A revocation made before the pairing (by its
    // timestamp) does not undo it when it arrives later.
    c.trusts(&b);
    assert!(c.authorized(&b));
    let (d, e) = (Signer::new("d", 4), Signer::new("e", 5));
    for (x, y) in [(&d, &e), (&e, &d)] {
        x.trusts(y);
    }
    d.trusts(&b);
    peersync_core::revoke(&e.p.conn, &b.p.dev).unwrap_err(); // e does not know b
    e.trusts(&b);
    peersync_core::revoke(&e.p.conn, &b.p.dev).unwrap();
    d.trusts(&b); // paired again at d, after e's revocation was made, before it arrives
    e.send(&d);
    assert!(d.authorized(&b), "a pairing after the revocation wins");
    let dev_d = peersync_core::device(&d.p.conn, &b.p.dev).unwrap().unwrap();
    assert_eq!(dev_d.revoked_by, None);
}

/// Microseconds since the Unix epoch, the hybrid clock's unit.
fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
}
