//! Owns the engine's side of the hostile-peer rules (issue "a hostile or compromised trusted
//! device"): resolutions that name nothing they supersede, record ids that alias a row, values
//! the receiver's column types would change, and timestamps far ahead of the receiver's clock.
mod common;

use common::*;
use serde_json::json;

const FORGER: &str = "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0";

/// B holds row 'r' of t1 (strategy `strategy`), last written by B itself; returns B and the
/// reference of that write.
fn holder(strategy: &str) -> (Peer, String) {
    let b = Peer::standard("B", strategy, strategy);
    b.exec("INSERT INTO t1 VALUES ('r', 'mine', 0, 0)");
    let w = reference(&last_own(&b));
    (b, w)
}

/// The forger's two changes: an INSERT of another record (so B holds a change of the forger to
/// name), then a change flagged as a resolution on 'r' whose bases name that INSERT and `also`
/// (nothing, or the writer B holds).
fn forged(b: &Peer, also: Option<&str>) -> String {
    let ts = last_own(b).timestamp.unwrap();
    let mut f = Forger::new(FORGER);
    let other = f.change("t1", "'s'", "INSERT", r#"{"id":"s","a":1,"b":2,"c":3}"#, "{}", ts + 1, false);
    let mut sides = vec![format!("{FORGER}:1")];
    sides.extend(also.map(str::to_string));
    let res = f.change(
        "t1",
        "'r'",
        "UPDATE",
        r#"{"a":"theirs"}"#,
        &json!({"cols": {"a": sides}}).to_string(),
        ts + 1_000_000,
        true,
    );
    batch_of(FORGER, vec![other, res])
}

#[test]
fn a_resolution_naming_nothing_held_does_not_override_local_wins() {
    let (b, _) = holder("local_wins");
    let res = b.apply(&forged(&b, None)).unwrap();
    assert_eq!(res["accepted"], 2, "{res}");
    assert_eq!(row_r(&b).unwrap()[1], t("mine"), "local_wins keeps the local value against a foreign 'resolution'");
    assert_eq!(res["resolutions"], 1, "{res}");
    let c = b.conflicts().pop().unwrap();
    assert_eq!((c.status.as_str(), c.resolution["strategy"].as_str()), ("resolved", Some("local_wins")), "{c:?}");
}

#[test]
fn a_resolution_naming_nothing_held_waits_on_a_manual_table() {
    let (b, _) = holder("manual");
    let res = b.apply(&forged(&b, None)).unwrap();
    assert_eq!(res["accepted"], 2, "{res}");
    assert_eq!(row_r(&b).unwrap()[1], t("mine"), "manual holds the write back");
    assert_eq!(b.pending().len(), 1, "a pending conflict, not an applied write: {:?}", b.conflicts());
}

#[test]
fn a_resolution_naming_the_writer_held_applies() {
    let (b, w) = holder("manual");
    b.apply(&forged(&b, Some(&w))).unwrap();
    assert_eq!(row_r(&b).unwrap()[1], t("theirs"));
    assert!(b.pending().is_empty());
}
