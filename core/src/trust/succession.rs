//! Successions received: a device recovered from a backup goes on under a new identity that its
//! old identity named, signed with its old key (`wire/succession.rs`). Here the new identity is
//! trusted in the old one's place, the old one speaks no more (its changes, made before, stay
//! valid and travel on), and any quarantine of it ends: what it forked was the restore.
use super::devices::device_key;
use crate::error::{Error, Result};
use crate::wire::{shown, Succession};
use rusqlite::{params, Connection, OptionalExtension};

/// What became of a succession received here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Taken up: the new identity is trusted here, the old one retired.
    Taken,
    /// Taken up before.
    Known,
    /// Not this device's to judge: the old identity is not known here, is revoked, or is this
    /// device (its key signed elsewhere: a copy that should have taken `init --new-identity`).
    Ignored(String),
}

/// Takes up succession `s`, checked against the old identity's key held here. A succession
/// not signed by that key is an error (a forgery); one naming another successor than a
/// succession taken up before, or a successor known here with another key, is ignored (the
/// first stands; a person looks).
pub fn receive(conn: &Connection, me: &str, s: &Succession) -> Result<Outcome> {
    s.check()?;
    if s.from == me || s.to == me {
        return Ok(Outcome::Ignored(format!("device {} is this device", if s.from == me { &s.from } else { &s.to })));
    }
    let row: Option<(Option<String>, bool, Option<String>)> = conn
        .prepare_cached("SELECT public_key, is_authorized, succeeded_by FROM sync_devices WHERE device_id = ?1")?
        .query_row([&s.from], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let (key, authorized, succeeded_by) = match row {
        Some((Some(k), a, by)) => (k, a, by),
        _ => return Ok(Outcome::Ignored(format!("device {} is not known here", s.from))),
    };
    if !s.verifies(&key) {
        return Err(Error::Unauthorized(format!(
            "the succession of device {} by {} is not signed by the key {} holds here",
            s.from, s.to, s.from
        )));
    }
    if !authorized {
        return Ok(Outcome::Ignored(format!("device {} is revoked here: it names no successor", s.from)));
    }
    match succeeded_by {
        Some(by) if by == s.to => return Ok(Outcome::Known),
        Some(by) => {
            return Ok(Outcome::Ignored(format!(
                "device {} was recovered as device {by} already; a second recovery (as {}) is refused",
                s.from, s.to
            )))
        }
        None => {}
    }
    match device_key(conn, &s.to)? {
        None => {
            conn.prepare_cached(
                "INSERT INTO sync_devices(device_id, public_key, device_name, is_authorized, introduced_by) VALUES (?1, ?2, nullif(?3, ''), 1, ?4)",
            )?
            .execute(params![s.to, s.public_key, s.name, s.from])?;
        }
        Some((Some(k), _)) if k == s.public_key => {}
        Some(_) => {
            return Ok(Outcome::Ignored(format!(
                "device {} is known here with another key than the succession of {} names ({})",
                s.to,
                s.from,
                shown(&s.public_key)
            )))
        }
    }
    conn.prepare_cached("UPDATE sync_devices SET succeeded_by = ?2 WHERE device_id = ?1")?
        .execute(params![s.from, s.to])?;
    conn.prepare_cached("DELETE FROM sync_quarantine WHERE device_id = ?1")?.execute([&s.from])?;
    Ok(Outcome::Taken)
}
