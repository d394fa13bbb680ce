//! Moving a restored device's own changes to its new identity (`peersync recover`): the changes
//! its old identity made after the version its peers hold alike become the new identity's chain.
//!
//! Each moved change keeps its log row (so every record's slot state, which names writers by
//! log id, stays true), its table, record, values and timestamp; it gets the new device id, the
//! next version of the new chain, bases naming moved changes by their new names, and a hash on
//! the new chain. Everything else that names a moved change by `device:version` follows: open
//! conflicts, shared settings, revocations this device made, changes waiting for their bases.
use super::log::{entry, head, set_head, ENTRY_COLUMNS};
use super::runs;
use crate::error::{Error, Result};
use crate::wire::{parse_reference, Entry};
use rusqlite::{params, Connection};
use std::collections::HashMap;

/// Moves the changes of `from` after version `keep` to the empty chain of `to`. Returns how
/// many moved. The caller holds the write transaction.
pub fn relabel(conn: &Connection, from: &str, keep: i64, to: &str) -> Result<i64> {
    if head(conn, to)?.0 != 0 {
        return Err(Error::invalid(format!("device {to} has changes here already: it cannot take over another's")));
    }
    let moved: Vec<(i64, Entry)> = conn
        .prepare(&format!(
            "SELECT {ENTRY_COLUMNS}, id FROM sync_log WHERE device_id = ?1 AND version > ?2 ORDER BY version"
        ))?
        .query_map(params![from, keep], |r| Ok((r.get(10)?, entry(r)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let map: HashMap<i64, i64> = moved.iter().zip(1..).map(|((_, e), v)| (e.version, v)).collect();
    let rename = |s: &str| rewrite_refs(s, from, to, &map);
    let mut update = conn.prepare(
        "UPDATE sync_log SET device_id = ?2, version = ?3, bases = ?4, hash = ?5, is_synced = 0 WHERE id = ?1",
    )?;
    let mut prev = String::new();
    for (id, mut e) in moved.iter().cloned() {
        e.device_id = crate::wire::name(to);
        e.version = map[&e.version];
        e.bases = rename(&e.bases);
        e.hash = e.compute_hash(&prev);
        update.execute(params![id, to, e.version, e.bases, e.hash])?;
        prev = e.hash;
    }
    let n = moved.len() as i64;
    let kept_hash = match keep {
        0 => String::new(),
        v => runs::hash_at(conn, from, v)?.unwrap_or_default(),
    };
    set_head(conn, from, keep, &kept_hash)?;
    if n > 0 {
        set_head(conn, to, n, &prev)?;
    }
    conn.execute("DELETE FROM sync_signatures WHERE device_id = ?1 AND version > ?2", params![from, keep])?;
    conn.execute("UPDATE sync_peer_vectors SET version = ?2 WHERE origin = ?1 AND version > ?2", params![from, keep])?;
    // What names a moved change by device and version.
    let moved_version = |v: Option<i64>| v.and_then(|v| map.get(&v).copied());
    for (table, dev, ver) in [
        ("sync_conflicts", "local_device_id", "local_version"),
        ("sync_conflicts", "remote_device_id", "remote_version"),
        ("sync_tables", "strategy_by", "strategy_version"),
        ("sync_devices", "revoked_by", "revoked_version"),
    ] {
        let rows: Vec<(i64, Option<i64>)> = conn
            .prepare(&format!("SELECT rowid, {ver} FROM {table} WHERE {dev} = ?1"))?
            .query_map([from], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (rowid, v) in rows {
            if let Some(nv) = moved_version(v) {
                conn.execute(
                    &format!("UPDATE {table} SET {dev} = ?2, {ver} = ?3 WHERE rowid = ?1"),
                    params![rowid, to, nv],
                )?;
            }
        }
    }
    let waiting: Vec<(i64, String)> = conn
        .prepare("SELECT log_id, missing FROM sync_schema_waiting WHERE instr(missing, ?1) > 0")?
        .query_map([format!("{from}:")], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, missing) in waiting {
        conn.execute("UPDATE sync_schema_waiting SET missing = ?2 WHERE log_id = ?1", params![id, rename(&missing)])?;
    }
    runs::rebuild(conn)?;
    Ok(n)
}

/// `text` (JSON holding `"device:version"` references) with each reference to a version of
/// `from` that `map` moves renamed to `to` and its new version.
fn rewrite_refs(text: &str, from: &str, to: &str, map: &HashMap<i64, i64>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices();
    let mut copied = 0;
    while let Some((i, c)) = chars.next() {
        if c != '"' {
            continue;
        }
        // A JSON string: its contents run to the next quote no backslash escapes.
        let start = i + 1;
        let mut end = text.len();
        while let Some((j, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    end = j;
                    break;
                }
                _ => {}
            }
        }
        if let Some((d, v)) = parse_reference(&text[start..end]) {
            if let Some(nv) = map.get(&v).filter(|_| d == from) {
                out.push_str(&text[copied..start]);
                out.push_str(&format!("{to}:{nv}"));
                copied = end;
            }
        }
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_only_the_moved_references() {
        let map = HashMap::from([(5, 1), (6, 2)]);
        let bases = r#"{"live":["aa:4"],"cols":{"x":["aa:5","bb:6"],"y":["aa:6"]},"seen":{"z":"aa:50"}}"#;
        assert_eq!(
            rewrite_refs(bases, "aa", "cc", &map),
            r#"{"live":["aa:4"],"cols":{"x":["cc:1","bb:6"],"y":["cc:2"]},"seen":{"z":"aa:50"}}"#
        );
        assert_eq!(rewrite_refs("{}", "aa", "cc", &map), "{}");
        assert_eq!(rewrite_refs(r#"["aa:5"]"#, "aa", "cc", &map), r#"["cc:1"]"#);
        // A column name with an escaped quote is no reference, nor does it hide one.
        let odd = r#"{"cols":{"q\"aa:5":["aa:5"]}}"#;
        assert_eq!(rewrite_refs(odd, "aa", "cc", &map), r#"{"cols":{"q\"aa:5":["cc:1"]}}"#);
    }
}
