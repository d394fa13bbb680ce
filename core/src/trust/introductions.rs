//! Introductions: a trusted device vouches for another device's key, so a person pairs a new
//! device with one device and the rest of the mesh learns it. Who introduced whom is kept
//! (`sync_devices.introduced_by`, `sync_introductions`), and a key paired here is never
//! replaced by an introduction: another key for a known device is a dispute, kept and shown.
use super::devices::{device_key, standing, Standing};
use crate::error::{Error, Result};
use crate::store::format::device_id;
use crate::wire::{
    check_device_id, check_device_name, check_public_key, introduce, shown, verify_introduction, Introduction,
};
use ed25519_dalek::SigningKey;
use rusqlite::{params, Connection};
use serde::Serialize;

/// The introductions this device makes (signed with its `key`): one for each other device it
/// trusts and holds a key for.
pub fn own(conn: &Connection, key: &SigningKey) -> Result<Vec<Introduction>> {
    let me = device_id(conn)?;
    let mut stmt = conn.prepare_cached(
        "SELECT device_id, public_key, ifnull(device_name, '') FROM sync_devices WHERE is_authorized AND public_key IS NOT NULL AND device_id != ?1 ORDER BY device_id",
    )?;
    let rows =
        stmt.query_map([&me], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (id, pk, name) = row?;
        // A name stored before names were checked, that peers would refuse: sent as none.
        let name = if check_device_name(&name).is_ok() { name } else { String::new() };
        out.push(introduce(key, &me, &id, &pk, &name));
    }
    Ok(out)
}

/// What became of an introduction received here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A device new here: trusted from now on with the key it was introduced with.
    Added,
    /// A device known here with that key already.
    Known,
    /// A device known here with another key: the key paired here stays; a person should look.
    Disputed,
    /// A device revoked here: an introduction does not re-admit it.
    Revoked,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Added => "added",
            Outcome::Known => "known",
            Outcome::Disputed => "disputed",
            Outcome::Revoked => "revoked",
        }
    }
}

/// Takes the introductions of a batch from `sender`: those made by a device trusted here are
/// checked (a bad signature refuses the batch) and recorded; others are not this device's to
/// judge and are left aside.
pub fn receive(conn: &Connection, me: &str, intros: &[Introduction]) -> Result<()> {
    for i in intros {
        let introducer_key = match standing(conn, &i.by)? {
            Standing::Trusted { public_key: Some(k), .. } => k,
            _ => continue,
        };
        // Every batch of a peer repeats its introductions: one recorded as it is now was
        // checked when it came first.
        let recorded = conn
            .prepare_cached(
                "SELECT 1 FROM sync_introductions WHERE device_id = ?1 AND by = ?2 AND public_key = ?3 AND device_name IS ?4 AND signature = ?5",
            )?
            .exists(params![i.device_id, i.by, i.public_key, i.name, i.signature])?;
        if recorded {
            continue;
        }
        let bad = |why: String| {
            Error::Unauthorized(format!(
                "sync_apply: the introduction of device {} by {}: {why}; nothing was applied",
                shown(&i.device_id),
                i.by
            ))
        };
        check_device_id(&i.device_id).map_err(|e| bad(e.to_string()))?;
        check_public_key(&i.public_key).map_err(|e| bad(e.to_string()))?;
        check_device_name(&i.name).map_err(|e| bad(e.to_string()))?;
        if !verify_introduction(&introducer_key, i) {
            return Err(bad("it carries no valid signature of its introducer".into()));
        }
        if i.device_id == me {
            continue;
        }
        let outcome = match device_key(conn, &i.device_id)? {
            None => {
                conn.prepare_cached(
                    "INSERT INTO sync_devices(device_id, public_key, device_name, is_authorized, introduced_by) VALUES (?1, ?2, nullif(?3, ''), 1, ?4)",
                )?
                .execute(params![i.device_id, i.public_key, i.name, i.by])?;
                Outcome::Added
            }
            Some((_, false)) => Outcome::Revoked,
            Some((Some(k), true)) if k == i.public_key => Outcome::Known,
            Some((_, true)) => Outcome::Disputed,
        };
        conn.prepare_cached(
            "INSERT INTO sync_introductions(device_id, by, public_key, device_name, signature, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(device_id, by) DO UPDATE SET public_key = excluded.public_key, device_name = excluded.device_name,
               signature = excluded.signature, outcome = excluded.outcome, received_at = excluded.received_at",
        )?
        .execute(params![i.device_id, i.by, i.public_key, i.name, i.signature, outcome.as_str()])?;
    }
    Ok(())
}

/// A key for a known device that another device vouched for: shown until a person settles it
/// (pairing the device again with the right key, or revoking the introducer).
#[derive(Debug, Clone, Serialize)]
pub struct Dispute {
    pub device_id: String,
    pub by: String,
    pub public_key: String,
    pub received_at: String,
}

/// The disputed introductions: a known device introduced with another key than the one held here.
pub fn disputes(conn: &Connection) -> Result<Vec<Dispute>> {
    let mut stmt = conn.prepare_cached(
        "SELECT i.device_id, i.by, i.public_key, i.received_at FROM sync_introductions i JOIN sync_devices d USING (device_id)
         WHERE d.public_key IS NOT i.public_key AND d.is_authorized ORDER BY i.received_at",
    )?;
    let v = stmt
        .query_map([], |r| {
            Ok(Dispute { device_id: r.get(0)?, by: r.get(1)?, public_key: r.get(2)?, received_at: r.get(3)? })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// The devices `by` introduced here (to review when `by` is revoked).
pub fn introduced_by(conn: &Connection, by: &str) -> Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT device_id FROM sync_devices WHERE introduced_by = ?1 ORDER BY device_id")?;
    let v = stmt.query_map([by], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    Ok(v)
}
