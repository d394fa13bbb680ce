//! The cross-device audit: what a device tells a peer about its content (digests, vector,
//! what is pending or waiting), the comparison of two such accounts, and the divergences found.
//!
//! Two devices that hold the same vector, with no conflict pending on a table and nothing
//! waiting on either side, must hold the same rows in it; if their digests differ, that table
//! has *diverged*: recorded in `sync_divergences` (until an audit finds it equal again), and
//! reported by `sync_status`.
use super::digest::{held, sealed_snapshot, tables_now, TableDigest};
use crate::db::tx;
use crate::error::Result;
use crate::store::format::device_id;
use crate::wire::Vector;
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A device's account of its content, taken in one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audit {
    pub device_id: String,
    pub vector: Vector,
    pub tables: BTreeMap<String, TableDigest>,
    /// Pending conflicts, by table (tables with none are left out).
    #[serde(default)]
    pub pending: BTreeMap<String, i64>,
    /// Changes this device holds back or keeps waiting (for a key, a clock, a quota, a schema).
    #[serde(default)]
    pub waiting: i64,
}

/// What comparing two accounts found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Every table both devices could compare holds the same rows on both.
    Same { tables: Vec<String>, skipped: Vec<String> },
    /// The devices cannot be compared now (they hold different vectors, or something waits).
    NotComparable { reason: String },
    /// These tables differ.
    Diverged { tables: Vec<String>, skipped: Vec<String> },
}

/// This device's account, taken in one snapshot in which everything captured is sealed.
pub fn audit(conn: &Connection) -> Result<Audit> {
    let device = device_id(conn)?;
    sealed_snapshot(conn, |c| {
        let mut pending = BTreeMap::new();
        let mut stmt = c.prepare_cached(
            "SELECT table_name, count(*) FROM sync_conflicts WHERE status = 'pending' GROUP BY table_name",
        )?;
        for r in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (t, n) = r?;
            pending.insert(t, n);
        }
        let waiting: i64 = c.query_row("SELECT count(*) FROM sync_waiting", [], |r| r.get(0))?;
        Ok(Audit { device_id: device.clone(), vector: held(c)?, tables: tables_now(c)?, pending, waiting })
    })
}

/// Compares this device's account `ours` with peer `theirs`' and records what it found: a
/// divergence for each table that differs, and none any more for each that is the same.
pub fn compare(conn: &Connection, ours: &Audit, theirs: &Audit) -> Result<Outcome> {
    let peer = &theirs.device_id;
    let outcome = judge(ours, theirs);
    tx::write(conn, |c| {
        let (same, diverged): (&[String], &[String]) = match &outcome {
            Outcome::Same { tables, .. } => (tables, &[]),
            Outcome::Diverged { tables, .. } => (&[], tables),
            Outcome::NotComparable { .. } => (&[], &[]),
        };
        for t in same {
            c.prepare_cached("DELETE FROM sync_divergences WHERE peer = ?1 AND table_name = ?2")?
                .execute(params![peer, t])?;
        }
        // Tables found the same elsewhere in this account are cleared above; a diverged one
        // keeps the records a narrowing found, unless its digests moved.
        for t in diverged {
            c.prepare_cached(
                "INSERT INTO sync_divergences(peer, table_name, vector, local_digest, peer_digest) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(peer, table_name) DO UPDATE SET
                   records = CASE WHEN local_digest = excluded.local_digest AND peer_digest = excluded.peer_digest THEN records END,
                   vector = excluded.vector, local_digest = excluded.local_digest, peer_digest = excluded.peer_digest,
                   last_seen = excluded.last_seen",
            )?
            .execute(params![
                peer,
                t,
                serde_json::to_string(&ours.vector)?,
                ours.tables[t].digest,
                theirs.tables[t].digest
            ])?;
        }
        let summary = match &outcome {
            Outcome::Same { tables, .. } => format!("same ({} tables)", tables.len()),
            Outcome::Diverged { tables, .. } => format!("diverged: {}", tables.join(", ")),
            Outcome::NotComparable { reason } => format!("not comparable: {reason}"),
        };
        c.prepare_cached(
            "UPDATE sync_devices SET last_audit = ?2, last_audit_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE device_id = ?1",
        )?
        .execute(params![peer, summary])?;
        Ok(())
    })?;
    Ok(outcome)
}

/// What comparing `ours` with `theirs` finds (see [`Outcome`]).
fn judge(ours: &Audit, theirs: &Audit) -> Outcome {
    if ours.vector != theirs.vector {
        return Outcome::NotComparable {
            reason: "the devices hold different changes (sync first; an audit compares devices that hold the same)"
                .into(),
        };
    }
    if ours.waiting > 0 || theirs.waiting > 0 {
        return Outcome::NotComparable {
            reason: format!(
                "changes wait (here {}, there {}): the devices may differ until they are applied",
                ours.waiting, theirs.waiting
            ),
        };
    }
    let (mut same, mut diverged, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for (name, d) in &ours.tables {
        let pending = ours.pending.contains_key(name) || theirs.pending.contains_key(name);
        match theirs.tables.get(name) {
            Some(e) if !pending && e == d => same.push(name.clone()),
            Some(_) if !pending => diverged.push(name.clone()),
            // Not tracked there, or a conflict waits for a person: rows may differ for now.
            _ => skipped.push(name.clone()),
        }
    }
    if diverged.is_empty() {
        Outcome::Same { tables: same, skipped }
    } else {
        Outcome::Diverged { tables: diverged, skipped }
    }
}

/// Records the records a narrowing found different in `table` with `peer` (at most 100 kept).
pub fn note_records(conn: &Connection, peer: &str, table: &str, records: &[String]) -> Result<()> {
    let kept: Vec<&String> = records.iter().take(100).collect();
    conn.prepare_cached("UPDATE sync_divergences SET records = ?3 WHERE peer = ?1 AND table_name = ?2")?
        .execute(params![peer, table, serde_json::to_string(&kept)?])?;
    Ok(())
}

/// A table found different on this device and a peer.
#[derive(Debug, Clone, Serialize)]
pub struct Divergence {
    pub peer: String,
    pub table: String,
    pub vector: serde_json::Value,
    pub local_digest: String,
    pub peer_digest: String,
    /// The differing record ids, once `peersync check` has narrowed it down.
    pub records: Option<serde_json::Value>,
    pub first_seen: String,
    pub last_seen: String,
}

/// The divergences recorded here, oldest first.
pub fn divergences(conn: &Connection) -> Result<Vec<Divergence>> {
    let mut stmt = conn.prepare_cached(
        "SELECT peer, table_name, vector, local_digest, peer_digest, records, first_seen, last_seen FROM sync_divergences ORDER BY first_seen",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, Option<String>>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, String>(7)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (peer, table, vector, local_digest, peer_digest, records, first_seen, last_seen) = row?;
        out.push(Divergence {
            peer,
            table,
            vector: serde_json::from_str(&vector)?,
            local_digest,
            peer_digest,
            records: records.map(|r| serde_json::from_str(&r)).transpose()?,
            first_seen,
            last_seen,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(vector: &[(&str, i64)], tables: &[(&str, &str)]) -> Audit {
        Audit {
            device_id: "d".into(),
            vector: vector.iter().map(|(d, v)| (d.to_string(), *v)).collect(),
            tables: tables
                .iter()
                .map(|(t, d)| (t.to_string(), TableDigest { rows: 1, digest: d.to_string() }))
                .collect(),
            pending: BTreeMap::new(),
            waiting: 0,
        }
    }

    #[test]
    fn only_equal_vectors_with_nothing_waiting_compare() {
        let a = account(&[("x", 2)], &[("t", "1"), ("u", "2")]);
        let mut b = account(&[("x", 2)], &[("t", "1"), ("u", "3")]);
        assert_eq!(judge(&a, &b), Outcome::Diverged { tables: vec!["u".into()], skipped: vec![] });
        b.pending.insert("u".into(), 1);
        assert_eq!(judge(&a, &b), Outcome::Same { tables: vec!["t".into()], skipped: vec!["u".into()] });
        b.waiting = 1;
        assert!(matches!(judge(&a, &b), Outcome::NotComparable { .. }));
        let c = account(&[("x", 3)], &[("t", "1"), ("u", "2")]);
        assert!(matches!(judge(&a, &c), Outcome::NotComparable { .. }));
        let d = account(&[("x", 2)], &[("t", "1")]);
        assert_eq!(judge(&a, &d), Outcome::Same { tables: vec!["t".into()], skipped: vec!["u".into()] });
    }
}
