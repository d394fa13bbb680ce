//! Forked chains and quarantine: a peer that delivered a fork is refused until a person releases it.
//!
//! A fork is a change that names an (origin, version) this database already holds but hashes
//! differently, or that claims to be this device's own but was never made here: someone
//! altered or forged a chain (or a device was restored from an old backup and wrote again).
//! The batch is rejected, and its sender is quarantined: every later batch from it is refused
//! until `sync_release` (`peersync release`) after a person has looked at what happened.
use crate::db::tx;
use crate::error::{Error, Fork, Result};
use crate::store::{anchors, log::head, runs};
use crate::wire::{check_device_id, shown, Batch};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::collections::HashMap;

/// A quarantined device, as `sync_status` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Quarantined {
    pub device_id: String,
    pub origin: String,
    pub version: i64,
    pub reason: String,
    pub detected_at: String,
}

/// Quarantines `sender` for delivering `fork` (keeps the first report if it already is).
pub fn record(conn: &Connection, sender: &str, fork: &Fork) -> Result<()> {
    tx::write(conn, |conn| {
        conn.execute(
            "INSERT OR IGNORE INTO sync_quarantine(device_id, origin, version, reason) VALUES (?1, ?2, ?3, ?4)",
            params![sender, fork.origin, fork.version, fork.message],
        )?;
        Ok(())
    })
}

pub fn get(conn: &Connection, device: &str) -> Result<Option<Quarantined>> {
    Ok(conn
        .prepare_cached(
            "SELECT device_id, origin, version, reason, detected_at FROM sync_quarantine WHERE device_id = ?1",
        )?
        .query_row([device], row)
        .optional()?)
}

pub fn list(conn: &Connection) -> Result<Vec<Quarantined>> {
    let mut stmt = conn
        .prepare("SELECT device_id, origin, version, reason, detected_at FROM sync_quarantine ORDER BY detected_at")?;
    let out = stmt.query_map([], row)?.collect::<rusqlite::Result<_>>()?;
    Ok(out)
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Quarantined> {
    Ok(Quarantined {
        device_id: r.get(0)?,
        origin: r.get(1)?,
        version: r.get(2)?,
        reason: r.get(3)?,
        detected_at: r.get(4)?,
    })
}

/// Lifts the quarantine of `device`; true if it was quarantined.
pub fn release(conn: &Connection, device: &str) -> Result<bool> {
    check_device_id(device)?;
    tx::write(conn, |conn| Ok(conn.execute("DELETE FROM sync_quarantine WHERE device_id = ?1", [device])? > 0))
}

/// The error for anything coming from a quarantined device.
pub fn refusal(q: &Quarantined) -> Error {
    Error::Unauthorized(format!(
        "device {} is quarantined since {}: it sent a forked chain (origin {} at version {}). \
         Check that device (a restored backup? a stolen key?), then lift the quarantine with \
         `peersync release {}` or select sync_release('{}'), or revoke it; a device restored from a \
         backup ends its quarantine itself with `peersync recover`",
        q.device_id, q.detected_at, q.origin, q.version, q.device_id, q.device_id
    ))
}

/// Finds a fork in `batch` before anything else is checked: a change, a head hash or a
/// chain base (`heads`, `prevs`) that disagrees with what this database holds at the same
/// version, or a change claiming to be this device's that it never made.
pub fn detect(conn: &Connection, me: &str, batch: &Batch) -> Result<()> {
    let mut heads: HashMap<String, i64> = HashMap::new();
    let sender = &batch.device_id;
    // Compares what the sender says `dev:version` hashes to with what is held here.
    let mut differs = |dev: &str, version: i64, theirs: &str, what: &dyn Fn() -> String| -> Result<()> {
        let held = match heads.get(dev) {
            Some(&v) => v,
            None => *heads.entry(dev.to_string()).or_insert(head(conn, dev)?.0),
        };
        if version < 1 || version > held {
            return Ok(());
        }
        let ours = match runs::hash_at(conn, dev, version)? {
            Some(h) => h,
            // Compacted away: the chain up to the anchor is vouched for by the anchor's hash,
            // which a fork through it would not match.
            None if version < anchors::version(conn, dev)? => return Ok(()),
            None => String::new(),
        };
        if ours == theirs {
            return Ok(());
        }
        Err(Error::Fork(Fork {
            origin: dev.to_string(),
            version,
            message: format!(
                "sync_apply: {} of device {dev} at version {version} differs from the change held here \
                 (a forked chain: altered, forged, or written by a device restored from an old backup); \
                 nothing was applied and the sender {sender} is quarantined (if device {dev} was restored \
                 from a backup, run `peersync recover` on it; if it is a copy of another device's \
                 database, `peersync init --new-identity` on the copy)",
                what()
            ),
        }))
    };
    let mine = head(conn, me)?.0;
    for e in &batch.changes {
        if *e.device_id == *me && e.version > mine {
            return Err(Error::Fork(Fork {
                origin: me.to_string(),
                version: e.version,
                message: format!(
                    "sync_apply: change {me}:{} claims to be this device's, but this device never made it \
                     (a forked chain: forged, or this device was restored from an old backup); \
                     nothing was applied and the sender {sender} is quarantined (if this device was \
                     restored from a backup, run `peersync recover` here; if it is a copy of another \
                     device's database, `peersync init --new-identity`)",
                    e.version
                ),
            }));
        }
        let what = || {
            let (t, r) = (shown(&e.table_name), shown(&e.record_id));
            format!("change {}:{} (table \"{t}\", record {r})", e.device_id, e.version)
        };
        differs(&e.device_id, e.version, &e.hash, &what)?;
    }
    for (dev, hash) in &batch.prevs {
        if let Some(first) = batch.changes.iter().find(|e| *e.device_id == **dev) {
            differs(dev, first.version - 1, hash, &|| "the chain the sender's changes build on".into())?;
        }
    }
    for (dev, hash) in &batch.heads {
        if let Some(&v) = batch.vector.get(dev) {
            differs(dev, v, hash, &|| "the sender's head".into())?;
        }
    }
    Ok(())
}

/// Refuses a batch whose sender is quarantined.
pub fn check_sender(conn: &Connection, sender: &str) -> Result<()> {
    match get(conn, sender)? {
        Some(q) => Err(refusal(&q)),
        None => Ok(()),
    }
}
