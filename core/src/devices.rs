//! `sync_devices`: this device's identity row, pairing (trust), revocation, listing.
use crate::error::{Error, Result};
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
}

/// `s` is `n` lowercase hex characters.
pub fn is_hex(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `s` is a device id: 32 lowercase hex characters.
pub fn is_device_id(s: &str) -> bool {
    is_hex(s, 32)
}

pub fn check_device_id(id: &str) -> Result<()> {
    if is_device_id(id) {
        Ok(())
    } else {
        Err(Error::invalid(format!("device id \"{id}\" must be 32 lowercase hex characters")))
    }
}

pub fn check_public_key(key: &str) -> Result<()> {
    let ok = is_hex(key, 64)
        && hex::decode(key)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .is_some_and(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("public key \"{key}\" must be an ed25519 public key: 64 lowercase hex characters")))
    }
}

/// Records this device's name and public key in its own row.
pub fn set_identity(conn: &Connection, name: Option<&str>, public_key: &str) -> Result<()> {
    check_public_key(public_key)?;
    let me = crate::schema::device_id(conn)?;
    conn.execute(
        "UPDATE sync_devices SET public_key = ?2, device_name = coalesce(?3, device_name), is_authorized = 1 WHERE device_id = ?1",
        params![me, public_key, name],
    )?;
    Ok(())
}

/// Authorizes another device (pairing). Re-trusting updates its key, name and address.
pub fn trust(
    conn: &Connection,
    device_id: &str,
    public_key: &str,
    name: Option<&str>,
    tailscale_ip: Option<&str>,
) -> Result<()> {
    check_device_id(device_id)?;
    check_public_key(public_key)?;
    if let Some(ip) = tailscale_ip {
        ip.parse::<std::net::IpAddr>()
            .map_err(|_| Error::invalid(format!("tailscale ip \"{ip}\" is not an IP address")))?;
    }
    let me = crate::schema::device_id(conn)?;
    if device_id == me {
        return Err(Error::invalid("that is this device's own id; trust the other device's id"));
    }
    conn.execute(
        "INSERT INTO sync_devices(device_id, public_key, device_name, tailscale_ip, is_authorized) VALUES (?1, ?2, ?3, ?4, 1)
         ON CONFLICT(device_id) DO UPDATE SET public_key = excluded.public_key, device_name = coalesce(excluded.device_name, device_name),
           tailscale_ip = coalesce(excluded.tailscale_ip, tailscale_ip), is_authorized = 1",
        params![device_id, public_key, name, tailscale_ip],
    )?;
    Ok(())
}

/// Withdraws a device's authorization; its key is kept so its changes stay refused, also
/// when other peers relay them.
pub fn revoke(conn: &Connection, device_id: &str) -> Result<()> {
    let me = crate::schema::device_id(conn)?;
    if device_id == me {
        return Err(Error::invalid("cannot revoke this device itself"));
    }
    let n = conn.execute("UPDATE sync_devices SET is_authorized = 0 WHERE device_id = ?1", [device_id])?;
    if n == 0 {
        return Err(Error::invalid(format!("no device \"{device_id}\" is known here")));
    }
    Ok(())
}

const SELECT: &str = "SELECT device_id, device_name, public_key, tailscale_ip, is_authorized, last_sync_at, created_at FROM sync_devices";

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
    })
}

fn with_quarantine(conn: &Connection, mut d: Device) -> Result<Device> {
    d.quarantined = crate::quarantine::get(conn, &d.device_id)?.map(|q| q.reason);
    Ok(d)
}

pub fn list(conn: &Connection) -> Result<Vec<Device>> {
    let me = crate::schema::device_id(conn)?;
    let mut stmt = conn.prepare(&format!("{SELECT} ORDER BY id"))?;
    let v: Vec<Device> = stmt.query_map([], |r| from_row(&me, r))?.collect::<rusqlite::Result<_>>()?;
    v.into_iter().map(|d| with_quarantine(conn, d)).collect()
}

pub fn get(conn: &Connection, device_id: &str) -> Result<Option<Device>> {
    let me = crate::schema::device_id(conn)?;
    let d = conn.query_row(&format!("{SELECT} WHERE device_id = ?1"), [device_id], |r| from_row(&me, r)).optional()?;
    d.map(|d| with_quarantine(conn, d)).transpose()
}
