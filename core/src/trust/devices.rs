//! `sync_devices`: this device's identity row, pairing (trust), revocation, listing, and whether
//! another device may talk to this one ([`standing`]).
use super::quarantine;
use crate::error::{Error, Result};
use crate::store::format;
use crate::wire::{check_device_id, check_device_name, check_public_key};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Device {
    pub device_id: String,
    pub device_name: Option<String>,
    pub public_key: Option<String>,
    pub tailscale_ip: Option<String>,
    pub is_authorized: bool,
    pub last_sync_at: Option<String>,
    pub created_at: String,
    /// True for this database's own row.
    pub is_self: bool,
    /// Why it is quarantined, if it is (see `quarantine.rs`).
    pub quarantined: Option<String>,
    /// The device that introduced it here, when it was not paired here directly.
    pub introduced_by: Option<String>,
}

/// Records this device's name and public key in its own row.
pub fn set_identity(conn: &Connection, name: Option<&str>, public_key: &str) -> Result<()> {
    check_public_key(public_key)?;
    name.map(check_device_name).transpose()?;
    let me = format::device_id(conn)?;
    conn.execute(
        "UPDATE sync_devices SET public_key = ?2, device_name = coalesce(?3, device_name), is_authorized = 1 WHERE device_id = ?1",
        params![me, public_key, name],
    )?;
    Ok(())
}

/// Authorizes another device (pairing). Re-trusting updates its key, name and address (an
/// empty address clears it), and makes it paired here directly rather than introduced.
pub fn trust(
    conn: &Connection,
    device_id: &str,
    public_key: &str,
    name: Option<&str>,
    tailscale_ip: Option<&str>,
) -> Result<()> {
    check_device_id(device_id)?;
    check_public_key(public_key)?;
    name.map(check_device_name).transpose()?;
    if let Some(ip) = tailscale_ip.filter(|ip| !ip.is_empty()) {
        ip.parse::<std::net::IpAddr>()
            .map_err(|_| Error::invalid(format!("tailscale ip \"{ip}\" is not an IP address")))?;
    }
    let me = format::device_id(conn)?;
    if device_id == me {
        return Err(Error::invalid("that is this device's own id; trust the other device's id"));
    }
    conn.execute(
        "INSERT INTO sync_devices(device_id, public_key, device_name, tailscale_ip, is_authorized) VALUES (?1, ?2, ?3, nullif(?4, ''), 1)
         ON CONFLICT(device_id) DO UPDATE SET public_key = excluded.public_key, device_name = coalesce(excluded.device_name, device_name),
           tailscale_ip = CASE WHEN ?4 = '' THEN NULL ELSE coalesce(excluded.tailscale_ip, tailscale_ip) END, is_authorized = 1,
           introduced_by = NULL",
        params![device_id, public_key, name, tailscale_ip],
    )?;
    Ok(())
}

/// Withdraws a device's authorization; its key is kept so its changes stay refused, also
/// when other peers relay them.
pub fn revoke(conn: &Connection, device_id: &str) -> Result<()> {
    let me = format::device_id(conn)?;
    if device_id == me {
        return Err(Error::invalid("cannot revoke this device itself"));
    }
    let n = conn.execute("UPDATE sync_devices SET is_authorized = 0 WHERE device_id = ?1", [device_id])?;
    if n == 0 {
        return Err(Error::invalid(format!("no device \"{device_id}\" is known here")));
    }
    Ok(())
}

const SELECT: &str = "SELECT device_id, device_name, public_key, tailscale_ip, is_authorized, last_sync_at, created_at, introduced_by FROM sync_devices";

fn from_row(me: &str, r: &rusqlite::Row<'_>) -> rusqlite::Result<Device> {
    let id: String = r.get(0)?;
    Ok(Device {
        is_self: id == me,
        device_id: id,
        device_name: r.get(1)?,
        public_key: r.get(2)?,
        tailscale_ip: r.get(3)?,
        is_authorized: r.get(4)?,
        last_sync_at: r.get(5)?,
        created_at: r.get(6)?,
        quarantined: None,
        introduced_by: r.get(7)?,
    })
}

fn with_quarantine(conn: &Connection, mut d: Device) -> Result<Device> {
    d.quarantined = quarantine::get(conn, &d.device_id)?.map(|q| q.reason);
    Ok(d)
}

pub fn list(conn: &Connection) -> Result<Vec<Device>> {
    let me = format::device_id(conn)?;
    let mut stmt = conn.prepare(&format!("{SELECT} ORDER BY id"))?;
    let v: Vec<Device> = stmt.query_map([], |r| from_row(&me, r))?.collect::<rusqlite::Result<_>>()?;
    v.into_iter().map(|d| with_quarantine(conn, d)).collect()
}

pub fn get(conn: &Connection, device_id: &str) -> Result<Option<Device>> {
    let me = format::device_id(conn)?;
    let d = conn.query_row(&format!("{SELECT} WHERE device_id = ?1"), [device_id], |r| from_row(&me, r)).optional()?;
    d.map(|d| with_quarantine(conn, d)).transpose()
}

/// (public key hex, authorized) of a device this database knows.
pub fn device_key(conn: &Connection, device: &str) -> Result<Option<(Option<String>, bool)>> {
    Ok(conn
        .prepare_cached("SELECT public_key, is_authorized FROM sync_devices WHERE device_id = ?1")?
        .query_row([device], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Where another device stands with this one: may it talk to us, and with which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Never paired here.
    Unknown,
    /// Paired once, and revoked since.
    Revoked,
    /// Paired, but quarantined for delivering a forked chain; says what happened and what to do.
    Quarantined(String),
    /// Paired and trusted: requests signed with its `public_key` (from `tailscale_ip`, when set) are its own.
    Trusted { public_key: Option<String>, tailscale_ip: Option<String> },
}

/// May device `device` talk to this one? The one answer for requests, for the peers this
/// device syncs with, and for the senders of batches.
pub fn standing(conn: &Connection, device: &str) -> Result<Standing> {
    let row: Option<(Option<String>, bool, Option<String>)> = conn
        .prepare_cached("SELECT public_key, is_authorized, tailscale_ip FROM sync_devices WHERE device_id = ?1")?
        .query_row([device], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((public_key, authorized, tailscale_ip)) = row else { return Ok(Standing::Unknown) };
    if !authorized {
        return Ok(Standing::Revoked);
    }
    if let Some(q) = quarantine::get(conn, device)? {
        return Ok(Standing::Quarantined(quarantine::refusal(&q).to_string()));
    }
    Ok(Standing::Trusted { public_key, tailscale_ip })
}
