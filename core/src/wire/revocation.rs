//! Revocations as the wire carries them: withdrawing trust from a device is an entry of the
//! revoking device's own chain (signed, relayed, ordered and counted like any change), on the
//! reserved pseudo-table `sync_devices`, record id the revoked device's id as a literal.
//!
//! Its one spelling (anything else is refused, so one hash has one meaning): table_name
//! `sync_devices`, record_id the canonical literal of the revoked device's id
//! (`'00112233445566778899aabbccddeeff'`), operation `UPDATE`, change_data
//! `{"authorized":false}`, bases `{}`, not a resolution. There is no spelling that grants
//! trust: only a pairing on the device itself does.
use super::batch::describe;
use super::entry::Entry;
use super::ids::is_device_id;
use super::setting::{event_envelope, event_name, event_record_id};
use crate::error::{Error, Result};

/// The pseudo-table revocations are entries of (one of peersync's own tables: no user table
/// can have this name).
pub const REVOCATIONS_TABLE: &str = "sync_devices";
/// A revocation's change_data: the only one there is.
pub const REVOCATION_DATA: &str = "{\"authorized\":false}";

/// Whether `e` is a revocation rather than a change to a table.
pub fn is_revocation(e: &Entry) -> bool {
    &*e.table_name == REVOCATIONS_TABLE
}

/// The record id of the revocation of device `device`.
pub fn revocation_record_id(device: &str) -> String {
    event_record_id(device)
}

/// Reads revocation `e`: the id of the device it revokes. Any spelling but the one
/// [`revocation_record_id`] and [`REVOCATION_DATA`] write is refused.
pub fn parse_revocation(e: &Entry) -> Result<String> {
    let bad = |why: &str| Err(Error::invalid(format!("{}: malformed revocation: {why}", describe(e))));
    if !event_envelope(e) {
        return bad("a revocation's operation is UPDATE, its bases {} and it is no resolution");
    }
    if e.change_data != REVOCATION_DATA {
        return bad("change_data must be {\"authorized\":false} exactly");
    }
    match event_name(e) {
        Some(d) if is_device_id(&d) => Ok(d),
        _ => bad("record_id must be a device id (32 lowercase hex) as one text literal"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::name;

    const D: &str = "00112233445566778899aabbccddeeff";

    fn entry(rid: &str, op: &str, data: &str, bases: &str, resolution: bool) -> Entry {
        Entry {
            table_name: name(REVOCATIONS_TABLE),
            record_id: rid.into(),
            operation: name(op),
            change_data: data.into(),
            device_id: name("ffeeddccbbaa99887766554433221100"),
            version: 1,
            timestamp: 1,
            bases: bases.into(),
            resolution,
            hash: String::new(),
        }
    }

    #[test]
    fn a_revocation_has_one_spelling_and_none_grants_trust() {
        let rid = revocation_record_id(D);
        assert_eq!(rid, format!("'{D}'"));
        let ok = entry(&rid, "UPDATE", REVOCATION_DATA, "{}", false);
        assert!(is_revocation(&ok));
        assert_eq!(parse_revocation(&ok).unwrap(), D);
        for e in [
            entry(&rid, "UPDATE", r#"{"authorized":true}"#, "{}", false),
            entry(&rid, "INSERT", REVOCATION_DATA, "{}", false),
            entry(&rid, "DELETE", REVOCATION_DATA, "{}", false),
            entry(&rid, "UPDATE", REVOCATION_DATA, "", false),
            entry(&rid, "UPDATE", REVOCATION_DATA, "{}", true),
            entry(&rid, "UPDATE", r#"{"authorized": false}"#, "{}", false),
            entry(&rid, "UPDATE", "{}", "{}", false),
            entry("'ABCDEF00112233445566778899aabbcc'", "UPDATE", REVOCATION_DATA, "{}", false),
            entry("'abc'", "UPDATE", REVOCATION_DATA, "{}", false),
            entry(&format!("'{D}',1"), "UPDATE", REVOCATION_DATA, "{}", false),
            entry("1", "UPDATE", REVOCATION_DATA, "{}", false),
        ] {
            let m = parse_revocation(&e).unwrap_err().to_string();
            assert!(m.starts_with("sync_apply: change ") && m.contains("malformed revocation"), "{m}");
        }
    }
}
