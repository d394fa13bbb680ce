//! Shared settings as the wire carries them: a table's strategy is an entry of the setting
//! device's own chain (signed, relayed, ordered and counted like any change), on the reserved
//! pseudo-table `sync_tables`, record id the table's name as a literal.
//!
//! Its one spelling (anything else is refused, so one hash has one meaning): table_name
//! `sync_tables`, record_id the canonical literal of the table's name (`'loans'`), operation
//! `UPDATE`, change_data `{"strategy":"<name>"}`, bases `{}`, not a resolution.
use super::batch::describe;
use super::entry::Entry;
use super::value::write_json_string;
use super::value::{parse_literals, record_id, Value};
use crate::error::{Error, Result};

/// The pseudo-table settings are entries of. No user table can have this name: it is one of
/// peersync's own tables, which `sync_track` refuses.
pub const SETTINGS_TABLE: &str = "sync_tables";
/// A setting's operation.
pub const SETTING_OPERATION: &str = "UPDATE";
/// A setting's bases: none (the latest setting wins, by the winner rule's order).
pub const SETTING_BASES: &str = "{}";

/// Whether `e` is a setting rather than a change to a table.
pub fn is_setting(e: &Entry) -> bool {
    &*e.table_name == SETTINGS_TABLE
}

/// The record id of the setting of table `table`.
pub fn setting_record_id(table: &str) -> String {
    event_record_id(table)
}

/// The record id of a shared event (a setting, a revocation) about `name`: its text literal.
pub(super) fn event_record_id(name: &str) -> String {
    record_id(&[Value::Text(name.to_string())])
}

/// Whether shared event `e` (a setting, a revocation) has the one operation, bases and
/// resolution flag events have.
pub(super) fn event_envelope(e: &Entry) -> bool {
    &*e.operation == SETTING_OPERATION && e.bases == SETTING_BASES && !e.resolution
}

/// The name shared event `e` is about: its record id's one text literal, written as
/// [`event_record_id`] writes it.
pub(super) fn event_name(e: &Entry) -> Option<String> {
    match parse_literals(&e.record_id).ok().as_deref() {
        Some([Value::Text(t)]) if event_record_id(t) == e.record_id => Some(t.clone()),
        _ => None,
    }
}

/// The change_data of a setting of strategy `strategy`.
pub fn setting_data(strategy: &str) -> String {
    let mut s = String::from("{\"strategy\":");
    write_json_string(strategy, &mut s);
    s.push('}');
    s
}

/// A setting read from the wire: the table it is about and the strategy's name as sent (the
/// names a strategy may have are the model's to check).
#[derive(Debug, PartialEq, Eq)]
pub struct Setting {
    pub table: String,
    pub strategy: String,
}

/// Reads setting `e`, refusing any spelling but the one [`setting_data`] and
/// [`setting_record_id`] write.
pub fn parse_setting(e: &Entry) -> Result<Setting> {
    let bad = |why: &str| Err(Error::invalid(format!("{}: malformed setting: {why}", describe(e))));
    if !event_envelope(e) {
        return bad("a setting's operation is UPDATE, its bases {} and it is no resolution");
    }
    let table = match event_name(e) {
        Some(t) if !t.is_empty() => t,
        _ => return bad("record_id must be the table's name as one text literal"),
    };
    let strategy = match serde_json::from_str::<serde_json::Value>(&e.change_data) {
        Ok(serde_json::Value::Object(m)) if m.len() == 1 => match m.get("strategy") {
            Some(serde_json::Value::String(s)) if setting_data(s) == e.change_data => s.clone(),
            _ => return bad("change_data must be {\"strategy\": name} exactly"),
        },
        _ => return bad("change_data must be {\"strategy\": name} exactly"),
    };
    Ok(Setting { table, strategy })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::name;

    fn entry(rid: &str, op: &str, data: &str, bases: &str, resolution: bool) -> Entry {
        Entry {
            table_name: name(SETTINGS_TABLE),
            record_id: rid.into(),
            operation: name(op),
            change_data: data.into(),
            device_id: name("00112233445566778899aabbccddeeff"),
            version: 1,
            timestamp: 1,
            bases: bases.into(),
            resolution,
            hash: String::new(),
        }
    }

    #[test]
    fn a_setting_has_one_spelling() {
        let rid = setting_record_id("it's");
        assert_eq!(rid, "'it''s'");
        assert_eq!(setting_data("manual"), r#"{"strategy":"manual"}"#);
        let ok = entry(&rid, "UPDATE", &setting_data("manual"), "{}", false);
        assert!(is_setting(&ok));
        assert_eq!(parse_setting(&ok).unwrap(), Setting { table: "it's".into(), strategy: "manual".into() });
        for e in [
            entry(&rid, "INSERT", &setting_data("manual"), "{}", false),
            entry(&rid, "UPDATE", &setting_data("manual"), "", false),
            entry(&rid, "UPDATE", &setting_data("manual"), "{}", true),
            entry("'a','b'", "UPDATE", &setting_data("manual"), "{}", false),
            entry("1", "UPDATE", &setting_data("manual"), "{}", false),
            entry("''", "UPDATE", &setting_data("manual"), "{}", false),
            entry("'a'", "UPDATE", r#"{"strategy": "manual"}"#, "{}", false),
            entry("'a'", "UPDATE", r#"{"strategy":"manual","x":1}"#, "{}", false),
            entry("'a'", "UPDATE", r#"{"strategy":1}"#, "{}", false),
            entry("'a'", "UPDATE", "[]", "{}", false),
            entry("'a'", "UPDATE", "not json", "{}", false),
        ] {
            let m = parse_setting(&e).unwrap_err().to_string();
            assert!(m.starts_with("sync_apply: change ") && m.contains("malformed setting"), "{m}");
        }
    }
}
