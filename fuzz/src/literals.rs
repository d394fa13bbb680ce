//! The value harness: record_id literals, change_data values and vectors (core/src/wire/value.rs, model/change.rs) parse without panics and round-trip.
use peersync_core::{parse_literals, record_id, Value};
use std::path::Path;

pub fn run(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    // record_id: whatever parses has a canonical form that parses back to the same values.
    if let Ok(vals) = parse_literals(s) {
        let canon = record_id(&vals);
        let back = parse_literals(&canon)
            .unwrap_or_else(|e| panic!("canonical record id {canon:?} of {s:?} does not parse: {e}"));
        assert_eq!(back, vals, "record id {s:?} -> {canon:?} does not round-trip");
        assert_eq!(record_id(&back), canon, "the canonical form of {canon:?} is not stable");
    }
    // change_data values: whatever parses encodes back to the same value.
    if let Ok(j) = serde_json::from_str::<serde_json::Value>(s) {
        if let Ok(v) = Value::from_json(&j, &|| "fuzz".into()) {
            let text = v.to_json_string();
            let j2: serde_json::Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{v:?} encodes as invalid JSON {text:?}: {e}"));
            let v2 =
                Value::from_json(&j2, &|| "fuzz".into()).unwrap_or_else(|e| panic!("{text:?} does not read back: {e}"));
            assert_eq!(v2, v, "{s:?} -> {text:?} does not round-trip");
            if !v.is_null() {
                let lit = record_id(std::slice::from_ref(&v));
                assert_eq!(parse_literals(&lit).ok(), Some(vec![v.clone()]), "literal {lit:?} of {v:?}");
            }
        }
    }
    let _ = peersync_core::parse_vector("sync_changes", s);
    let _ = peersync_core::parse_reference(s);
}

pub fn write_seeds(seeds: &Path) {
    let dir = seeds.join("literals");
    std::fs::create_dir_all(&dir).unwrap();
    for (k, s) in [
        "'L1'",
        "1,'a'",
        "X'00FF'",
        "'a''b',3.00000000000000044408e-01,X'00FF',NULL,-7,Inf",
        "-9223372036854775808,9.0e+999,-0.0,5e-324",
        "{\"$blob\":\"00ff\"}",
        "{\"$real\":\"-inf\"}",
        "0.30000000000000004",
        "\"it's \\u0001 é 漢 🎉\"",
        "{\"a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1\":3}",
        "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1:7",
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(dir.join(format!("seed_{k}")), s).unwrap();
    }
}
