//! Owns the tests of shared strategies (DESIGN.md amendments, "Shared settings travel like
//! changes"; README "Merging and conflicts"): a table's strategy is one setting across devices,
//! latest wins; conflicts are judged by the strategy in force when the change is merged; a
//! device that joins late judges as the others did and ends as they do.
mod common;

use common::*;
use ed25519_dalek::SigningKey;
use peersync_core::{Batch, Vector};
use serde_json::Value as Json;

/// A peer with t1 tracked as `sync_track('t1')` (no strategy) or with `strategy`.
fn peer(name: &str, strategy: Option<&str>) -> Peer {
    let p = Peer::new(name, &format!("{T1_SQL}; {T2_SQL}"));
    p.int("SELECT sync_track('t2')");
    match strategy {
        Some(s) => _ = p.track("t1", s),
        None => _ = p.int("SELECT sync_track('t1')"),
    }
    p
}

fn strategy(p: &Peer) -> String {
    p.str("SELECT strategy FROM sync_tables WHERE name = 't1'")
}

fn set_by(p: &Peer) -> Option<String> {
    p.conn.query_row("SELECT strategy_by FROM sync_tables WHERE name = 't1'", [], |r| r.get(0)).unwrap()
}

fn log_size(p: &Peer) -> i64 {
    p.int("SELECT count(*) FROM sync_log")
}

fn value_a(p: &Peer) -> Option<V> {
    p.row("t1", "id = 'r'").map(|r| r[1].clone())
}

/// Both peers hold row r, then each edits column a while apart.
fn concurrent_edits(a: &Peer, b: &Peer) {
    a.exec("INSERT INTO t1 VALUES ('r', 'base', 1, 1)");
    sync_pair(a, b);
    b.exec("UPDATE t1 SET a = 'B' WHERE id = 'r'");
    a.exec("UPDATE t1 SET a = 'A' WHERE id = 'r'");
}

#[test]
fn a_device_tracking_without_a_strategy_settles_conflicts_as_the_one_that_set_it() {
    let a = peer("A", Some("manual"));
    for b in [peer("B", None), peer("B", Some("timestamp_wins"))] {
        let a = peer("A", Some("manual"));
        // Tracking with the default (named or not) sets nothing: A's manual is not overridden.
        sync_pair(&a, &b);
        assert_eq!((strategy(&a), strategy(&b)), ("manual".into(), "manual".into()));
        assert_eq!(set_by(&b).as_deref(), Some(a.dev.as_str()));
        concurrent_edits(&a, &b);
        sync_pair(&a, &b);
        // Both hold the conflict for a person, each keeping its own value meanwhile.
        assert_eq!((a.pending().len(), b.pending().len()), (1, 1), "{:?}", b.conflicts());
        assert_eq!((value_a(&a), value_a(&b)), (Some(t("A")), Some(t("B"))));
        let id = a.pending()[0];
        a.resolve(id, "remote").unwrap();
        sync_pair(&a, &b);
        assert!(b.pending().is_empty());
        assert_eq!(value_a(&b), Some(t("B")));
        assert_same(&a, &b);
    }
    // `sync_track(t)` again, and the same strategy again, log nothing.
    let before = log_size(&a);
    a.int("SELECT sync_track('t1')");
    a.track("t1", "manual");
    assert_eq!(log_size(&a), before);
    assert_eq!(strategy(&a), "manual");
}

#[test]
fn a_new_strategy_on_any_device_changes_it_everywhere() {
    let (a, b, c) = (peer("A", None), peer("B", None), peer("C", None));
    a.exec("INSERT INTO t1 VALUES ('r', 'base', 1, 1)");
    quiet(&[&a, &b, &c]);
    assert_eq!(set_by(&a), None, "the default is no setting");
    b.track("t1", "local_wins");
    quiet(&[&a, &b, &c]);
    for p in [&a, &b, &c] {
        assert_eq!(strategy(p), "local_wins", "{p:?}");
        assert_eq!(set_by(p).as_deref(), Some(b.dev.as_str()), "{p:?}");
        let status = p.json("SELECT sync_status()");
        assert_eq!(status["tables"][0]["strategy"], "local_wins", "{status}");
        assert_eq!(status["tables"][0]["strategy_set_by"], b.dev.as_str(), "{status}");
        assert!(status["tables"][0]["strategy_set_at"].as_str().is_some_and(|s| s.ends_with('Z')), "{status}");
    }
    // And back, from another device.
    c.track("t1", "timestamp_wins");
    quiet(&[&a, &b, &c]);
    assert!([&a, &b, &c].iter().all(|p| strategy(p) == "timestamp_wins" && set_by(p).as_deref() == Some(&*c.dev)));
    assert_same(&a, &b);
    assert_same(&a, &c);
}

#[test]
fn of_two_concurrent_settings_the_latest_wins_everywhere() {
    let (a, b, c) = (peer("A", None), peer("B", None), peer("C", None));
    a.track("t1", "manual");
    b.set_clock_offset(5_000_000);
    b.track("t1", "remote_wins");
    // Whatever order they arrive in: C gets B's first, A's next; A and B get each other's.
    sync(&b, &c);
    sync(&a, &c);
    sync_pair(&a, &b);
    for p in [&a, &b, &c] {
        assert_eq!(strategy(p), "remote_wins", "{p:?}");
        assert_eq!(set_by(p).as_deref(), Some(b.dev.as_str()), "{p:?}");
    }
    // A setting made after seeing the other wins, whatever the wall clocks say.
    a.track("t1", "local_wins");
    quiet(&[&a, &b, &c]);
    assert!([&a, &b, &c].iter().all(|p| strategy(p) == "local_wins"));
}

#[test]
fn a_setting_for_a_table_not_tracked_yet_is_kept_for_when_it_is() {
    let a = peer("A", Some("manual"));
    let b = Peer::new("B", &format!("{T1_SQL}; {T2_SQL}"));
    b.track("t2", "timestamp_wins");
    sync(&a, &b);
    assert_eq!(b.int("SELECT active FROM sync_tables WHERE name = 't1'"), 0);
    b.int("SELECT sync_track('t1')");
    assert_eq!(strategy(&b), "manual");
    assert_eq!(set_by(&b).as_deref(), Some(a.dev.as_str()));
}

#[test]
fn changes_after_a_setting_in_one_batch_are_judged_by_it() {
    let (a, b) = (peer("A", None), peer("B", None));
    a.exec("INSERT INTO t1 VALUES ('r', 'base', 1, 1)");
    sync_pair(&a, &b);
    b.exec("UPDATE t1 SET a = 'B' WHERE id = 'r'");
    // A's batch holds its setting, then its edit: B judges the edit as manual.
    a.track("t1", "manual");
    a.exec("UPDATE t1 SET a = 'A' WHERE id = 'r'");
    sync(&a, &b);
    assert_eq!(b.pending().len(), 1, "{:?}", b.conflicts());
    assert_eq!(value_a(&b), Some(t("B")));
}

#[test]
fn a_malformed_setting_is_refused_with_its_batch() {
    let (a, b) = (peer("A", None), peer("B", None));
    a.track("t1", "manual");
    let batch = a.changes(&b.vector(), 1000);
    for (from, to, want) in [
        (r#"{\"strategy\":\"manual\"}"#, r#"{\"strategy\":\"newest\"}"#, "unknown strategy \"newest\""),
        (r#"{\"strategy\":\"manual\"}"#, r#"{\"strategy\": \"manual\"}"#, "malformed setting"),
        ("\"record_id\":\"'t1'\"", "\"record_id\":\"'sync_log'\"", "one of peersync's own tables"),
    ] {
        assert!(batch.contains(from), "{batch}");
        let bad = rehash(&batch.replacen(from, to, 1));
        let e = b.apply(&bad).unwrap_err();
        assert!(e.contains(want), "{e}");
        assert_eq!(strategy(&b), "timestamp_wins");
    }
}

/// `batch` with every hash computed again (a sender that means what it sends).
fn rehash(batch: &str) -> String {
    let mut b: Batch = peersync_core::parse_batch(batch).unwrap();
    let mut prev = String::new();
    for e in &mut b.changes {
        e.hash = e.compute_hash(&prev);
        prev = e.hash.clone();
    }
    b.heads.clear();
    serde_json::to_string(&b).unwrap()
}

// ------------------------------------------------------------------ late joiner

/// A and B (manual, set by A) edit row r apart; A resolves the conflict choosing B's value;
/// B gets the resolution. Returns them.
fn settled_elsewhere() -> (Peer, Peer) {
    let (a, b) = (peer("A", Some("manual")), peer("B", None));
    concurrent_edits(&a, &b);
    sync_pair(&a, &b);
    let id = a.pending()[0];
    a.resolve(id, "remote").unwrap();
    sync_pair(&a, &b);
    assert!(a.pending().is_empty() && b.pending().is_empty());
    assert_same(&a, &b);
    assert_eq!(value_a(&a), Some(t("B")));
    (a, b)
}

#[test]
fn a_late_joiner_ends_with_what_the_others_settled_and_nothing_pending() {
    for limit in [1, 2, 3, 1000] {
        for from_b in [false, true] {
            let (a, b) = settled_elsewhere();
            let c = peer("C", Some("timestamp_wins"));
            let from = if from_b { &b } else { &a };
            let mut shown = Vec::new();
            loop {
                let (batch, res) = sync_once(from, &c, limit);
                res.unwrap_or_else(|e| panic!("limit {limit}: {e}"));
                shown.push(value_a(&c));
                if !serde_json::from_str::<Json>(&batch).unwrap()["has_more"].as_bool().unwrap() {
                    break;
                }
            }
            let what = format!("limit {limit}, from {}: shown {shown:?}, conflicts {:?}", from.name, c.conflicts());
            assert_eq!(strategy(&c), "manual", "{what}");
            assert!(c.pending().is_empty(), "{what}");
            assert!(c.conflicts().iter().all(|k| k.status == "resolved"), "{what}");
            assert_same(&a, &c);
            assert_eq!(value_a(&c), Some(t("B")), "{what}");
            // In one page it never shows the value the resolution replaced.
            if limit == 1000 {
                assert_eq!(shown, vec![Some(t("B"))], "{what}");
            }
            // Nothing C holds changes A or B: it wrote nothing of its own.
            sync_pair(&c, &a);
            sync_pair(&c, &b);
            assert_eq!(c.own_version(), 0, "{what}");
            assert_same(&a, &b);
        }
    }
}

/// With a strategy that settles at once (remote_wins), A and B each resolved the conflict
/// when they met it. C, new, meets the same two writes: it must not settle again what the
/// others settled, nor undo their settlement.
#[test]
fn a_late_joiner_does_not_settle_again_what_was_settled() {
    for (limit, from_b) in [(1, false), (1000, false), (1, true), (1000, true)] {
        let (a, b) = (peer("A", Some("remote_wins")), peer("B", None));
        concurrent_edits(&a, &b);
        sync_pair(&a, &b);
        sync_pair(&a, &b);
        assert_same(&a, &b);
        let settled = value_a(&a);
        let c = peer("C", None);
        loop {
            let (batch, res) = sync_once(if from_b { &b } else { &a }, &c, limit);
            res.unwrap();
            if !serde_json::from_str::<Json>(&batch).unwrap()["has_more"].as_bool().unwrap() {
                break;
            }
        }
        quiet(&[&a, &b, &c]);
        let what = format!("limit {limit}, from {}", if from_b { "B" } else { "A" });
        assert_eq!(value_a(&a), settled, "{what}: C's arrival changed what A and B settled");
        assert_eq!(c.own_version(), 0, "{what}: C settled again what A and B settled");
        assert!(c
            .conflicts()
            .iter()
            .all(|k| k.status == "resolved" && k.resolution["strategy"] == "settled_elsewhere"));
        assert_same(&a, &c);
        assert_same(&b, &c);
    }
}

// ------------------------------------------------------------------ relayed and signed

struct Signer {
    p: Peer,
    key: SigningKey,
}

impl Signer {
    fn new(name: &str, seed: u8, strategy: Option<&str>) -> Signer {
        let p = peer(name, strategy);
        let key = SigningKey::from_bytes(&[seed; 32]);
        peersync_core::set_identity(&p.conn, Some(name), &hex::encode(key.verifying_key().to_bytes())).unwrap();
        Signer { p, key }
    }

    fn trusts(&self, other: &Signer) {
        let public = hex::encode(other.key.verifying_key().to_bytes());
        peersync_core::trust(&self.p.conn, &other.p.dev, &public, Some(&other.p.name), None).unwrap();
    }

    fn outgoing(&self, to: &Peer) -> Batch {
        let since: Vector = peersync_core::vector(&to.conn).unwrap();
        peersync_core::outgoing(&self.p.conn, &self.key, &since, 1000).unwrap()
    }
}

#[test]
fn a_setting_relayed_by_another_device_is_verified_against_its_origin() {
    let a = Signer::new("A", 1, Some("manual"));
    let (b, c) = (Signer::new("B", 2, None), Signer::new("C", 3, None));
    b.trusts(&a);
    c.trusts(&b);
    c.trusts(&a);
    peersync_core::apply(&b.p.conn, &a.outgoing(&b.p)).unwrap();
    // B relays A's setting with A's signature; a forged one (B rewrote it) is refused.
    let batch = b.outgoing(&c.p);
    let mut forged: Batch = peersync_core::parse_batch(&serde_json::to_string(&batch).unwrap()).unwrap();
    let e = forged.changes.iter_mut().find(|e| &*e.table_name == "sync_tables").unwrap();
    e.change_data = r#"{"strategy":"remote_wins"}"#.into();
    e.hash = e.compute_hash("");
    forged.heads.clear();
    assert!(peersync_core::apply(&c.p.conn, &forged).is_err());
    assert_eq!(strategy(&c.p), "timestamp_wins");
    let applied = peersync_core::apply(&c.p.conn, &batch).unwrap();
    assert_eq!(applied.accepted, 1);
    assert_eq!(strategy(&c.p), "manual");
    assert_eq!(set_by(&c.p).as_deref(), Some(a.p.dev.as_str()));
    assert_eq!(c.p.verify()["ok"], true);
}

/// A database from before strategies were shared (format 3): its next use adds who set each
/// strategy; a strategy set then is this device's own until `sync_track` shares it.
#[test]
fn a_format_3_database_upgrades_and_shares_its_strategy_on_the_next_track() {
    let a = peer("A", None);
    a.exec(
        "UPDATE sync_tables SET strategy = 'manual' WHERE name = 't1';
         ALTER TABLE sync_tables DROP COLUMN strategy_by; ALTER TABLE sync_tables DROP COLUMN strategy_at;
         ALTER TABLE sync_tables DROP COLUMN strategy_version; UPDATE sync_state SET value = 3 WHERE key = 'format';",
    );
    let before = log_size(&a);
    assert_eq!(a.json("SELECT sync_status()")["tables"][0]["strategy"], "manual");
    assert_eq!(a.int("SELECT value FROM sync_state WHERE key = 'format'"), 6);
    assert_eq!((set_by(&a), log_size(&a)), (None, before), "upgrading sets nothing");
    a.int("SELECT sync_track('t1')");
    assert_eq!((set_by(&a).as_deref(), log_size(&a)), (Some(a.dev.as_str()), before + 1));
    let b = peer("B", None);
    sync(&a, &b);
    assert_eq!(strategy(&b), "manual");
}
